import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** HMAC hash functions allowed by RFC 6238 §1.2 (HMAC-SHA-1, HMAC-SHA-256, HMAC-SHA-512). */
export type OtpAlgorithm = 'sha1' | 'sha256' | 'sha512';

/** Why a submitted TOTP code was refused. */
export type TotpFailureReason = 'INVALID_FORMAT' | 'INVALID_CODE' | 'CODE_REUSED';

/** Outcome of {@link verifyTotp}: the accepted time step, or why the code was refused. */
export type TotpVerifyResult = { ok: true; step: number } | { ok: false; reason: TotpFailureReason };

// RFC 4648 §6: the base32 alphabet.
const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const BASE32_LOOKUP: ReadonlyMap<string, number> = new Map([...BASE32_ALPHABET].map((c, i) => [c, i]));

/** Number of secret bytes: RFC 4226 §4 R6 recommends a 160-bit shared secret. */
export const TOTP_SECRET_BYTES = 20;

/** The only code length users may submit (and the one enrolled authenticators are told to show). */
export const TOTP_DIGITS = 6;

/**
 * Encodes bytes as RFC 4648 base32 (upper case). Padding is left off by default because the
 * Google Authenticator Key Uri Format asks for the secret without it (RFC 4648 §3.2 allows a
 * referring specification to drop it).
 */
export function base32Encode(buf: Uint8Array, options: { padding?: boolean } = {}): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of buf) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) {
    out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  }
  if (options.padding) {
    out += '='.repeat((8 - (out.length % 8)) % 8);
  }
  return out;
}

/**
 * Decodes RFC 4648 base32. Case-insensitive; white space anywhere and trailing `=` padding are
 * ignored, as authenticator apps display secrets in groups. Throws a `RangeError` on a character
 * outside the alphabet or a length no encoder produces (RFC 4648 §6: 1, 3 or 6 trailing symbols).
 */
export function base32Decode(str: string): Buffer {
  const clean = str.replace(/\s+/g, '').replace(/=+$/, '').toUpperCase();
  const rest = clean.length % 8;
  if (rest === 1 || rest === 3 || rest === 6) {
    throw new RangeError('Invalid base32 length');
  }
  const out = Buffer.alloc(Math.floor((clean.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let index = 0;
  for (const char of clean) {
    const v = BASE32_LOOKUP.get(char);
    if (v === undefined) {
      throw new RangeError(`Invalid base32 character ${JSON.stringify(char)}`);
    }
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[index++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}

function assertDigits(digits: number): void {
  // RFC 4226 §5.3 R4: at least 6 digits; 8 is the most RFC 6238 Appendix B uses. More than 9 would
  // exceed the 31-bit truncated value.
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) {
    throw new RangeError(`digits must be 6, 7 or 8, got ${digits}`);
  }
}

/**
 * RFC 4226 HOTP: HMAC over the 8-byte big-endian counter, dynamic truncation (§5.3), modulo
 * 10^digits, left-padded with zeros.
 */
export function generateHotp(secret: Buffer, counter: number, digits = 6, algorithm: OtpAlgorithm = 'sha1'): string {
  assertDigits(digits);
  if (!Number.isSafeInteger(counter) || counter < 0) {
    throw new RangeError(`counter must be a non-negative safe integer, got ${counter}`);
  }
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, secret).update(message).digest();
  // RFC 4226 §5.3 dynamic truncation: offset from the low 4 bits of the last byte, then 31 bits.
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

function assertStepSeconds(stepSeconds: number): void {
  if (!Number.isInteger(stepSeconds) || stepSeconds <= 0) {
    throw new RangeError(`stepSeconds must be a positive integer, got ${stepSeconds}`);
  }
}

/**
 * RFC 6238 §4.2 time step T = floor((now - T0) / X) with T0 = 0 (the Unix epoch).
 *
 * @param nowMs - the current time in milliseconds since the Unix epoch
 * @param stepSeconds - the step size X, 30 seconds by default (RFC 6238 §5.2)
 */
export function totpStep(nowMs: number, stepSeconds = 30): number {
  assertStepSeconds(stepSeconds);
  return Math.floor(nowMs / (stepSeconds * 1000));
}

/** Input of {@link generateTotp}. */
export interface GenerateTotpInput {
  secret: Buffer;
  /** Milliseconds since the Unix epoch. */
  now: number;
  stepSeconds?: number;
  digits?: number;
  algorithm?: OtpAlgorithm;
}

/** RFC 6238 TOTP: HOTP with the time step as the counter. */
export function generateTotp({
  secret,
  now,
  stepSeconds = 30,
  digits = 6,
  algorithm = 'sha1',
}: GenerateTotpInput): string {
  return generateHotp(secret, totpStep(now, stepSeconds), digits, algorithm);
}

/** Input of {@link verifyTotp}. */
export interface VerifyTotpInput {
  secret: Buffer;
  /** What the user typed; spaces are ignored. */
  code: string;
  /** Milliseconds since the Unix epoch. */
  now: number;
  /** The step of the last code this factor accepted, or null if none yet. */
  lastUsedStep: number | null | undefined;
  stepSeconds?: number;
  /** How many steps before and after the current one are accepted for clock drift. */
  driftSteps?: number;
  algorithm?: OtpAlgorithm;
}

/**
 * Verifies a 6-digit TOTP code. Pure: the caller passes the clock and the last accepted step, and
 * on success must store the returned step atomically (e.g. `markTotpStepUsed`) so the code cannot
 * be replayed.
 *
 * Every candidate step is computed and compared in constant time, whatever matched, so the time
 * taken reveals neither whether nor where the code matched.
 */
export function verifyTotp({
  secret,
  code,
  now,
  lastUsedStep,
  stepSeconds = 30,
  driftSteps = 1,
  algorithm = 'sha1',
}: VerifyTotpInput): TotpVerifyResult {
  if (!Number.isInteger(driftSteps) || driftSteps < 0 || driftSteps > 10) {
    throw new RangeError(`driftSteps must be an integer from 0 to 10, got ${driftSteps}`);
  }
  const submitted = code.replace(/\s+/g, '');
  // ASCII digits only: `\d` without the `u` flag does not match other scripts' digits.
  if (!/^\d{6}$/.test(submitted)) {
    return { ok: false, reason: 'INVALID_FORMAT' };
  }
  const submittedBytes = Buffer.from(submitted, 'ascii');
  const current = totpStep(now, stepSeconds);
  const last = lastUsedStep ?? Number.NEGATIVE_INFINITY;

  // RFC 6238 §5.2: accept a small window of steps either side for clock drift and network delay.
  let fresh: number | undefined;
  let matched = false;
  for (let step = current - driftSteps; step <= current + driftSteps; step++) {
    if (step < 0) continue;
    const expected = Buffer.from(generateHotp(secret, step, TOTP_DIGITS, algorithm), 'ascii');
    const equal = timingSafeEqual(expected, submittedBytes);
    matched ||= equal;
    // The earliest unused matching step, so later codes of this window stay usable.
    if (equal && step > last && fresh === undefined) fresh = step;
  }
  if (fresh !== undefined) return { ok: true, step: fresh };
  // RFC 6238 §5.2: the verifier MUST NOT accept the second attempt of the same OTP.
  return { ok: false, reason: matched ? 'CODE_REUSED' : 'INVALID_CODE' };
}

/**
 * Creates a new TOTP shared secret of 160 bits (RFC 4226 §4 R6), from a CSPRNG (RFC 4226 §7.5).
 *
 * @param random - the source of random bytes; `crypto.randomBytes` unless a test injects one
 */
export function createTotpSecret(random: (n: number) => Buffer = randomBytes): Buffer {
  const secret = random(TOTP_SECRET_BYTES);
  if (secret.length !== TOTP_SECRET_BYTES) {
    throw new RangeError(`random source returned ${secret.length} bytes, expected ${TOTP_SECRET_BYTES}`);
  }
  return secret;
}

/** Input of {@link buildOtpauthUri}. */
export interface OtpauthUriInput {
  /** The shared secret, as bytes or already base32-encoded. */
  secret: Buffer | string;
  issuer: string;
  accountName: string;
  stepSeconds?: number;
  digits?: number;
  algorithm?: OtpAlgorithm;
}

// RFC 3986 §2.3: only unreserved characters stay literal; encodeURIComponent leaves !'()* too.
function encodeUriPart(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Builds the `otpauth://totp/...` URI that authenticator apps read from a QR code, in the Google
 * Authenticator Key Uri Format: label `Issuer:account`, with the issuer repeated as a parameter.
 * Throws a `RangeError` if the issuer or account name contains a colon, which the format forbids,
 * or if a string secret is not base32.
 */
export function buildOtpauthUri({
  secret,
  issuer,
  accountName,
  stepSeconds = 30,
  digits = 6,
  algorithm = 'sha1',
}: OtpauthUriInput): string {
  if (issuer.includes(':') || accountName.includes(':')) {
    throw new RangeError('issuer and account name must not contain a colon (Key Uri Format)');
  }
  if (issuer === '' || accountName === '') {
    throw new RangeError('issuer and account name must not be empty');
  }
  assertDigits(digits);
  assertStepSeconds(stepSeconds);
  const label = `${encodeUriPart(issuer)}:${encodeUriPart(accountName)}`;
  const params = [
    // Re-encoded so a string secret is validated and sent canonical: upper case, no spaces or padding.
    `secret=${base32Encode(typeof secret === 'string' ? base32Decode(secret) : secret)}`,
    `issuer=${encodeUriPart(issuer)}`,
    `algorithm=${algorithm.toUpperCase()}`,
    `digits=${digits}`,
    `period=${stepSeconds}`,
  ];
  return `otpauth://totp/${label}?${params.join('&')}`;
}
