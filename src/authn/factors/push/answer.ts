import { createPublicKey, type JsonWebKey, type KeyObject, sign, verify } from 'node:crypto';
import type { RandomBytes } from '../../../lib/tokens.ts';

/**
 * The pure core of push with number matching: the numbers, and the device's signed answer. Shared
 * by the idp (verification) and `traqs-verify` (signing), so both build the same bytes.
 */

/** What the user does on the device. */
export type PushDecision = 'APPROVE' | 'DENY';

export interface NumberChallenge {
  /** The three numbers the device offers, in random order. */
  numbers: [number, number, number];
  /** The one the browser shows (Okta's `correctAnswer`). */
  correct: number;
}

/** A uniformly random integer in [0, n) by rejection sampling (no modulo bias). */
function uniform(random: RandomBytes, n: number): number {
  const limit = 256 - (256 % n);
  for (;;) {
    const b = random(1)[0] ?? 0;
    if (b < limit) return b % n;
  }
}

/**
 * Three distinct two-digit numbers (10–99) and the right one among them. NIST SP 800-63B-4
 * no longer accepts an approve-only push: the user must carry a value from the sign-in screen to
 * the device, which defeats push fatigue and a phisher's "just approve it".
 */
export function createNumberChallenge(random: RandomBytes): NumberChallenge {
  const numbers: number[] = [];
  while (numbers.length < 3) {
    const n = 10 + uniform(random, 90);
    if (!numbers.includes(n)) numbers.push(n);
  }
  const [a, b, c] = numbers as [number, number, number];
  return { numbers: [a, b, c], correct: numbers[uniform(random, 3)] ?? a };
}

export interface SignedAnswerFields {
  challengeId: string;
  deviceId: string;
  decision: PushDecision;
  /** The number the user picked; null for a denial. */
  number: number | null;
}

/**
 * The exact bytes the device signs: a fixed label (domain separation, so the signature cannot be
 * taken for anything else), the challenge id (a server nonce, single use), the device, the
 * decision and the number. A signature over one challenge is worthless for any other.
 */
export function canonicalAnswer(f: SignedAnswerFields): Buffer {
  return Buffer.from(
    ['traqs-push-answer/v1', f.challengeId, f.deviceId, f.decision, f.number === null ? '-' : String(f.number)].join(
      '\n',
    ),
    'utf8',
  );
}

/** ECDSA P-256 with SHA-256, the signature as r‖s (IEEE P1363, as WebCrypto gives it), base64url. */
export function signAnswer(privateKey: KeyObject, f: SignedAnswerFields): string {
  return sign('sha256', canonicalAnswer(f), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

/** The public key of a JWK the device sent, if it is an EC P-256 public key (and only that). */
export function parseDevicePublicKey(jwk: unknown): { key: KeyObject; jwk: JsonWebKey } | undefined {
  if (typeof jwk !== 'object' || jwk === null) return undefined;
  const { kty, crv, x, y, d } = jwk as Record<string, unknown>;
  if (kty !== 'EC' || crv !== 'P-256' || typeof x !== 'string' || typeof y !== 'string' || d !== undefined) {
    return undefined;
  }
  if (!/^[A-Za-z0-9_-]{43}$/.test(x) || !/^[A-Za-z0-9_-]{43}$/.test(y)) return undefined;
  const clean: JsonWebKey = { kty, crv, x, y };
  try {
    // Refuses a point that is not on the curve.
    return { key: createPublicKey({ key: clean, format: 'jwk' }), jwk: clean };
  } catch {
    return undefined;
  }
}

/** Whether `signature` is the device key's signature over the canonical answer. */
export function verifyAnswerSignature(publicKey: KeyObject, f: SignedAnswerFields, signature: string): boolean {
  if (!/^[A-Za-z0-9_-]{86}$/.test(signature)) return false;
  try {
    return verify(
      'sha256',
      canonicalAnswer(f),
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signature, 'base64url'),
    );
  } catch {
    return false;
  }
}
