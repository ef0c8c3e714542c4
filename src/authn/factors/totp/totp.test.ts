import * as crypto from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  base32Decode,
  base32Encode,
  buildOtpauthUri,
  createTotpSecret,
  generateHotp,
  generateTotp,
  type OtpAlgorithm,
  totpStep,
  verifyTotp,
} from './totp.ts';

vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>();
  return { ...original, timingSafeEqual: vi.fn(original.timingSafeEqual) };
});

// RFC 6238 Appendix B: each mode has its own ASCII seed, of the hash's output length.
const SEEDS: Record<OtpAlgorithm, Buffer> = {
  sha1: Buffer.from('12345678901234567890', 'ascii'),
  sha256: Buffer.from('12345678901234567890123456789012', 'ascii'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234', 'ascii'),
};

const RFC6238_VECTORS: ReadonlyArray<[seconds: number, step: number, algorithm: OtpAlgorithm, totp: string]> = [
  [59, 0x1, 'sha1', '94287082'],
  [59, 0x1, 'sha256', '46119246'],
  [59, 0x1, 'sha512', '90693936'],
  [1111111109, 0x23523ec, 'sha1', '07081804'],
  [1111111109, 0x23523ec, 'sha256', '68084774'],
  [1111111109, 0x23523ec, 'sha512', '25091201'],
  [1111111111, 0x23523ed, 'sha1', '14050471'],
  [1111111111, 0x23523ed, 'sha256', '67062674'],
  [1111111111, 0x23523ed, 'sha512', '99943326'],
  [1234567890, 0x273ef07, 'sha1', '89005924'],
  [1234567890, 0x273ef07, 'sha256', '91819424'],
  [1234567890, 0x273ef07, 'sha512', '93441116'],
  [2000000000, 0x3f940aa, 'sha1', '69279037'],
  [2000000000, 0x3f940aa, 'sha256', '90698825'],
  [2000000000, 0x3f940aa, 'sha512', '38618901'],
  [20000000000, 0x27bc86aa, 'sha1', '65353130'],
  [20000000000, 0x27bc86aa, 'sha256', '77737706'],
  [20000000000, 0x27bc86aa, 'sha512', '47863826'],
];

// RFC 4226 Appendix D: HOTP values and the truncated decimal values they come from.
const RFC4226_VECTORS: ReadonlyArray<[counter: number, truncated: number, hotp: string]> = [
  [0, 1284755224, '755224'],
  [1, 1094287082, '287082'],
  [2, 137359152, '359152'],
  [3, 1726969429, '969429'],
  [4, 1640338314, '338314'],
  [5, 868254676, '254676'],
  [6, 1918287922, '287922'],
  [7, 82162583, '162583'],
  [8, 673399871, '399871'],
  [9, 645520489, '520489'],
];

describe('RFC 6238 Appendix B test vectors', () => {
  it.each(RFC6238_VECTORS)('at %i s (step %i) %s gives %s', (seconds, step, algorithm, totp) => {
    expect(totpStep(seconds * 1000)).toBe(step);
    expect(generateTotp({ secret: SEEDS[algorithm], now: seconds * 1000, digits: 8, algorithm })).toBe(totp);
  });
});

describe('RFC 4226 Appendix D test vectors', () => {
  it.each(RFC4226_VECTORS)('counter %i gives %s', (counter, truncated, hotp) => {
    expect(generateHotp(SEEDS.sha1, counter)).toBe(hotp);
    expect(generateHotp(SEEDS.sha1, counter, 8)).toBe(String(truncated % 1e8).padStart(8, '0'));
  });

  it('refuses code lengths under 6 (RFC 4226 §5.3 R4) and counters that are not integers', () => {
    expect(() => generateHotp(SEEDS.sha1, 0, 4)).toThrow(RangeError);
    expect(() => generateHotp(SEEDS.sha1, 0, 9)).toThrow(RangeError);
    expect(() => generateHotp(SEEDS.sha1, -1)).toThrow(RangeError);
    expect(() => generateHotp(SEEDS.sha1, 1.5)).toThrow(RangeError);
  });
});

describe('totpStep', () => {
  it('counts whole steps from the Unix epoch', () => {
    expect(totpStep(0)).toBe(0);
    expect(totpStep(29_999)).toBe(0);
    expect(totpStep(30_000)).toBe(1);
    expect(totpStep(59_999, 60)).toBe(0);
    expect(totpStep(60_000, 60)).toBe(1);
  });

  it('refuses a step size that is not a positive integer', () => {
    expect(() => totpStep(0, 0)).toThrow(RangeError);
    expect(() => totpStep(0, 1.5)).toThrow(RangeError);
  });
});

describe('verifyTotp', () => {
  const secret = SEEDS.sha1;
  const step = 56_789_012;
  // Mid-step, so neither boundary is near.
  const now = step * 30_000 + 12_345;
  const codeAt = (s: number) => generateHotp(secret, s);

  beforeEach(() => {
    vi.mocked(crypto.timingSafeEqual).mockClear();
  });

  it('accepts the code of the current step and returns that step', () => {
    expect(verifyTotp({ secret, code: codeAt(step), now, lastUsedStep: null })).toEqual({ ok: true, step });
  });

  it('accepts one step of drift either way by default (RFC 6238 §5.2)', () => {
    expect(verifyTotp({ secret, code: codeAt(step - 1), now, lastUsedStep: null })).toEqual({
      ok: true,
      step: step - 1,
    });
    expect(verifyTotp({ secret, code: codeAt(step + 1), now, lastUsedStep: null })).toEqual({
      ok: true,
      step: step + 1,
    });
  });

  it('refuses codes outside the drift window', () => {
    for (const s of [step - 2, step + 2, step - 100]) {
      expect(verifyTotp({ secret, code: codeAt(s), now, lastUsedStep: null })).toEqual({
        ok: false,
        reason: 'INVALID_CODE',
      });
    }
  });

  it('honours a configured window', () => {
    expect(verifyTotp({ secret, code: codeAt(step - 1), now, lastUsedStep: null, driftSteps: 0 })).toEqual({
      ok: false,
      reason: 'INVALID_CODE',
    });
    expect(verifyTotp({ secret, code: codeAt(step - 2), now, lastUsedStep: null, driftSteps: 2 })).toEqual({
      ok: true,
      step: step - 2,
    });
    const minuteNow = Math.floor(now / 60_000) * 60_000 + 1_000;
    const minuteCode = generateTotp({ secret, now: minuteNow, stepSeconds: 60 });
    expect(verifyTotp({ secret, code: minuteCode, now: minuteNow, lastUsedStep: null, stepSeconds: 60 })).toEqual({
      ok: true,
      step: totpStep(minuteNow, 60),
    });
  });

  it('refuses a wrong code', () => {
    const wrong = String((Number(codeAt(step)) + 1) % 1e6).padStart(6, '0');
    expect(verifyTotp({ secret, code: wrong, now, lastUsedStep: null })).toEqual({ ok: false, reason: 'INVALID_CODE' });
    expect(verifyTotp({ secret: SEEDS.sha256, code: codeAt(step), now, lastUsedStep: null })).toEqual({
      ok: false,
      reason: 'INVALID_CODE',
    });
  });

  it('ignores spaces the user typed', () => {
    const code = codeAt(step);
    expect(verifyTotp({ secret, code: ` ${code.slice(0, 3)} ${code.slice(3)} `, now, lastUsedStep: null })).toEqual({
      ok: true,
      step,
    });
  });

  it.each([
    ['empty', ''],
    ['five digits', '12345'],
    ['seven digits', '1234567'],
    ['eight digits', '12345678'],
    ['a letter', '12a456'],
    ['a sign', '-12345'],
    ['Arabic-Indic digits', '\u0661\u0662\u0663\u0664\u0665\u0666'],
    ['full-width digits', '\uff11\uff12\uff13\uff14\uff15\uff16'],
  ])('refuses %s as INVALID_FORMAT', (_name, code) => {
    expect(verifyTotp({ secret, code, now, lastUsedStep: null })).toEqual({ ok: false, reason: 'INVALID_FORMAT' });
  });
});

describe('verifyTotp replay refusal (RFC 6238 §5.2)', () => {
  const secret = SEEDS.sha1;
  const step = 56_789_012;
  const now = step * 30_000 + 12_345;
  const codeAt = (s: number) => generateHotp(secret, s);

  it('refuses the code of a step already used', () => {
    const first = verifyTotp({ secret, code: codeAt(step), now, lastUsedStep: null });
    expect(first).toEqual({ ok: true, step });
    const again = verifyTotp({ secret, code: codeAt(step), now: now + 5_000, lastUsedStep: step });
    expect(again).toEqual({ ok: false, reason: 'CODE_REUSED' });
  });

  it('refuses an older code once a newer step was used', () => {
    expect(verifyTotp({ secret, code: codeAt(step - 1), now, lastUsedStep: step })).toEqual({
      ok: false,
      reason: 'CODE_REUSED',
    });
  });

  it('refuses the current code after a future-drift code was used', () => {
    expect(verifyTotp({ secret, code: codeAt(step), now, lastUsedStep: step + 1 })).toEqual({
      ok: false,
      reason: 'CODE_REUSED',
    });
  });

  it('accepts the next step after the previous one was used', () => {
    expect(verifyTotp({ secret, code: codeAt(step), now, lastUsedStep: step - 1 })).toEqual({ ok: true, step });
    expect(verifyTotp({ secret, code: codeAt(step + 1), now, lastUsedStep: step })).toEqual({
      ok: true,
      step: step + 1,
    });
  });

  it('reports a wrong code as wrong, not reused', () => {
    expect(verifyTotp({ secret, code: codeAt(step - 5), now, lastUsedStep: step })).toEqual({
      ok: false,
      reason: 'INVALID_CODE',
    });
  });
});

describe('verifyTotp timing', () => {
  const secret = SEEDS.sha1;
  const step = 56_789_012;
  const now = step * 30_000 + 12_345;

  beforeEach(() => {
    vi.mocked(crypto.timingSafeEqual).mockClear();
  });

  it('compares every window in constant time, even after the first one matched', () => {
    const result = verifyTotp({ secret, code: generateHotp(secret, step - 1), now, lastUsedStep: null });
    expect(result).toEqual({ ok: true, step: step - 1 });
    expect(crypto.timingSafeEqual).toHaveBeenCalledTimes(3);
  });

  it('compares every window for a wrong code and for a reused one', () => {
    verifyTotp({ secret, code: '000000', now, lastUsedStep: null, driftSteps: 2 });
    expect(crypto.timingSafeEqual).toHaveBeenCalledTimes(5);
    vi.mocked(crypto.timingSafeEqual).mockClear();
    verifyTotp({ secret, code: generateHotp(secret, step), now, lastUsedStep: step });
    expect(crypto.timingSafeEqual).toHaveBeenCalledTimes(3);
  });
});

describe('base32', () => {
  // RFC 4648 §10 test vectors.
  it.each([
    ['', ''],
    ['f', 'MY======'],
    ['fo', 'MZXQ===='],
    ['foo', 'MZXW6==='],
    ['foob', 'MZXW6YQ='],
    ['fooba', 'MZXW6YTB'],
    ['foobar', 'MZXW6YTBOI======'],
  ])('encodes %j as %s (RFC 4648 §10)', (plain, encoded) => {
    expect(base32Encode(Buffer.from(plain), { padding: true })).toBe(encoded);
    expect(base32Encode(Buffer.from(plain))).toBe(encoded.replace(/=+$/, ''));
    expect(base32Decode(encoded).toString()).toBe(plain);
  });

  it('round-trips random bytes of every length', () => {
    for (let n = 0; n <= 64; n++) {
      const bytes = crypto.randomBytes(n);
      expect(base32Decode(base32Encode(bytes)).equals(bytes)).toBe(true);
      expect(base32Decode(base32Encode(bytes, { padding: true })).equals(bytes)).toBe(true);
    }
  });

  it('decodes case-insensitively, ignoring spaces and padding', () => {
    const secret = SEEDS.sha1;
    const encoded = base32Encode(secret);
    expect(encoded).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    const grouped = encoded.toLowerCase().replace(/(.{4})/g, '$1 ');
    expect(base32Decode(grouped).equals(secret)).toBe(true);
    expect(base32Decode('mzxw 6ytb oi======').toString()).toBe('foobar');
  });

  it('throws on characters outside the alphabet', () => {
    expect(() => base32Decode('MZXW6YT1')).toThrow(RangeError);
    expect(() => base32Decode('MZXW6YT8')).toThrow(RangeError);
    expect(() => base32Decode('MZ=XW6YTB')).toThrow(RangeError);
    expect(() => base32Decode('MZXW-6YTB')).toThrow(RangeError);
  });

  it('throws on lengths no encoder produces', () => {
    expect(() => base32Decode('M')).toThrow(RangeError);
    expect(() => base32Decode('MZX')).toThrow(RangeError);
    expect(() => base32Decode('MZXW6Y')).toThrow(RangeError);
  });
});

describe('createTotpSecret', () => {
  it('returns 20 bytes (160 bits, RFC 4226 §4 R6) from the random source', () => {
    const secret = createTotpSecret();
    expect(secret).toHaveLength(20);
    expect(createTotpSecret().equals(secret)).toBe(false);
    const requested: number[] = [];
    const fixed = createTotpSecret((n) => {
      requested.push(n);
      return Buffer.alloc(n, 7);
    });
    expect(requested).toEqual([20]);
    expect(fixed.equals(Buffer.alloc(20, 7))).toBe(true);
  });

  it('refuses a random source that returns the wrong length', () => {
    expect(() => createTotpSecret(() => Buffer.alloc(10))).toThrow(RangeError);
  });
});

describe('buildOtpauthUri', () => {
  it('follows the Key Uri Format with percent-encoded label and issuer', () => {
    const uri = buildOtpauthUri({
      secret: SEEDS.sha1,
      issuer: 'TRAQS Portal',
      accountName: 'alice+mfa@example.com',
    });
    expect(uri).toBe(
      'otpauth://totp/TRAQS%20Portal:alice%2Bmfa%40example.com' +
        '?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=TRAQS%20Portal&algorithm=SHA1&digits=6&period=30',
    );
  });

  it('produces a URI whose parts decode back to the inputs', () => {
    const secret = createTotpSecret();
    const uri = new URL(
      buildOtpauthUri({
        secret,
        issuer: "Acme & Sons (UK) Ltd's",
        accountName: 'Zoë Øster?#',
        stepSeconds: 60,
        digits: 8,
      }),
    );
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe("/Acme & Sons (UK) Ltd's:Zoë Øster?#");
    expect(uri.searchParams.get('issuer')).toBe("Acme & Sons (UK) Ltd's");
    expect(base32Decode(uri.searchParams.get('secret') ?? '').equals(secret)).toBe(true);
    expect(uri.searchParams.get('algorithm')).toBe('SHA1');
    expect(uri.searchParams.get('digits')).toBe('8');
    expect(uri.searchParams.get('period')).toBe('60');
    expect(uri.search).not.toMatch(/[ '()!*+]/);
  });

  it('accepts a base32 secret and sends it canonical', () => {
    const uri = buildOtpauthUri({
      secret: 'gezd gnbv gy3t qojq gezd gnbv gy3t qojq',
      issuer: 'TRAQS',
      accountName: 'a',
    });
    expect(new URL(uri).searchParams.get('secret')).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    expect(() => buildOtpauthUri({ secret: 'not base32!', issuer: 'TRAQS', accountName: 'a' })).toThrow(RangeError);
  });

  it('refuses a colon in the issuer or account name', () => {
    expect(() => buildOtpauthUri({ secret: SEEDS.sha1, issuer: 'A:B', accountName: 'alice' })).toThrow(RangeError);
    expect(() => buildOtpauthUri({ secret: SEEDS.sha1, issuer: 'TRAQS', accountName: 'a:b' })).toThrow(RangeError);
  });
});
