import { describe, expect, it } from 'vitest';
import { challengeOf, checkSignCount, createChallenge } from './ceremony.ts';
import { toBase64Url } from './inputs.ts';
import { webAuthnSupportFor } from './relying-party.ts';

describe('checkSignCount (WebAuthn §7.2 step 21)', () => {
  it('accepts a higher counter, and zero after zero (authenticators without a counter)', () => {
    expect(checkSignCount(0, 0)).toBe('ok');
    expect(checkSignCount(0, 1)).toBe('ok');
    expect(checkSignCount(41, 42)).toBe('ok');
  });
  it('refuses a counter that goes backwards or stays the same once it is counting', () => {
    expect(checkSignCount(42, 41)).toBe('regressed');
    expect(checkSignCount(42, 42)).toBe('regressed');
    expect(checkSignCount(5, 0)).toBe('regressed');
  });
});

describe('challenges', () => {
  it('are 32 random bytes, base64url', () => {
    const c = createChallenge(() => Buffer.alloc(32, 7));
    expect(c).toBe(Buffer.alloc(32, 7).toString('base64url'));
    expect(c).toHaveLength(43);
  });
  it('are read back from client data, or undefined when it is not JSON with one', () => {
    const data = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    expect(challengeOf(data({ type: 'webauthn.get', challenge: 'abc', origin: 'http://localhost' }))).toBe('abc');
    expect(challengeOf(data({ type: 'webauthn.get' }))).toBeUndefined();
    expect(challengeOf(data({ challenge: 'x'.repeat(101) }))).toBeUndefined();
    expect(challengeOf('not base64 json')).toBeUndefined();
  });
});

describe('toBase64Url', () => {
  it("turns Okta's standard base64 into base64url and keeps base64url", () => {
    expect(toBase64Url('a+b/c==')).toBe('a-b_c');
    expect(toBase64Url('a-b_c')).toBe('a-b_c');
    expect(toBase64Url('not*base64')).toBeUndefined();
    expect(toBase64Url('')).toBeUndefined();
  });
});

describe('webAuthnSupportFor (the relying party is the idp public URL)', () => {
  it('uses the host as relying-party id and the origin as expected origin', () => {
    expect(webAuthnSupportFor('https://mpp-test.traqs.example/', 'TRAQS NTF')).toEqual({
      available: true,
      rp: { id: 'mpp-test.traqs.example', name: 'TRAQS NTF', origin: 'https://mpp-test.traqs.example' },
    });
    expect(webAuthnSupportFor('http://localhost:3101', 'TRAQS NTF')).toMatchObject({
      available: true,
      rp: { id: 'localhost', origin: 'http://localhost:3101' },
    });
  });
  it('is not available over plain http elsewhere, or on an IP address', () => {
    const insecure = webAuthnSupportFor('http://mpp-test.traqs.example', 'x');
    expect(insecure.available).toBe(false);
    expect(insecure.available ? '' : insecure.reason).toContain('The sign-in URL is not secure');
    for (const url of ['http://127.0.0.1:3101', 'https://[::1]:3101', 'https://10.0.0.5']) {
      const r = webAuthnSupportFor(url, 'x');
      expect(r.available ? '' : r.reason).toContain('not an IP address');
    }
  });
});
