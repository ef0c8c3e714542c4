import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalAnswer,
  createNumberChallenge,
  parseDevicePublicKey,
  signAnswer,
  verifyAnswerSignature,
} from './answer.ts';

const key = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const fields = {
  challengeId: 'pchAAAAAAAAAAAAAAAAA',
  deviceId: 'pfdBBBBBBBBBBBBBBBBB',
  decision: 'APPROVE',
  number: 42,
} as const;

describe('number challenge', () => {
  it('gives three distinct two-digit numbers, one of them right', () => {
    let i = 0;
    // A fixed stream of bytes: 0 → 10, 0 again (a duplicate, skipped), 1 → 11, 89 → 99, then 2 → the third.
    const bytes = [0, 0, 1, 89, 2];
    const random = (n: number) => Buffer.from(Array.from({ length: n }, () => bytes[i++ % bytes.length] ?? 0));
    const c = createNumberChallenge(random);
    expect(c.numbers).toEqual([10, 11, 99]);
    expect(c.correct).toBe(99);
  });

  it('draws without modulo bias: bytes at or above 180 are rejected for 90 values', () => {
    let i = 0;
    const bytes = [250, 180, 5, 255, 6, 7, 1];
    const random = (n: number) => Buffer.from(Array.from({ length: n }, () => bytes[i++] ?? 0));
    expect(createNumberChallenge(random).numbers).toEqual([15, 16, 17]);
  });
});

describe('signed answers', () => {
  it('verifies a device signature over the canonical answer and nothing else', () => {
    const { privateKey, publicKey } = key();
    const parsed = parseDevicePublicKey(publicKey.export({ format: 'jwk' }));
    if (!parsed) throw new Error('key refused');
    const signature = signAnswer(privateKey, fields);
    expect(verifyAnswerSignature(parsed.key, fields, signature)).toBe(true);
    // The same signature does not cover another push, number, decision or device.
    expect(verifyAnswerSignature(parsed.key, { ...fields, challengeId: 'pchCCCCCCCCCCCCCCCCC' }, signature)).toBe(
      false,
    );
    expect(verifyAnswerSignature(parsed.key, { ...fields, number: 43 }, signature)).toBe(false);
    expect(verifyAnswerSignature(parsed.key, { ...fields, decision: 'DENY', number: null }, signature)).toBe(false);
    expect(verifyAnswerSignature(parsed.key, { ...fields, deviceId: 'pfdDDDDDDDDDDDDDDDDD' }, signature)).toBe(false);
    // Another key's signature, and malformed ones, are refused.
    expect(verifyAnswerSignature(parsed.key, fields, signAnswer(key().privateKey, fields))).toBe(false);
    expect(verifyAnswerSignature(parsed.key, fields, 'not-a-signature')).toBe(false);
  });

  it('signs a fixed, labelled message', () => {
    expect(canonicalAnswer(fields).toString()).toBe(
      'traqs-push-answer/v1\npchAAAAAAAAAAAAAAAAA\npfdBBBBBBBBBBBBBBBBB\nAPPROVE\n42',
    );
    expect(canonicalAnswer({ ...fields, decision: 'DENY', number: null }).toString()).toMatch(/\nDENY\n-$/);
  });

  it('accepts only an EC P-256 public JWK', () => {
    const { publicKey, privateKey } = key();
    const jwk = publicKey.export({ format: 'jwk' });
    expect(parseDevicePublicKey(jwk)?.jwk).toEqual({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y });
    expect(parseDevicePublicKey(privateKey.export({ format: 'jwk' }))).toBeUndefined();
    expect(parseDevicePublicKey({ ...jwk, crv: 'P-384' })).toBeUndefined();
    // A point that is not on the curve.
    expect(parseDevicePublicKey({ ...jwk, y: jwk.x })).toBeUndefined();
    expect(parseDevicePublicKey('EC')).toBeUndefined();
  });
});
