import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A source of randomness, injected so tests can be deterministic where they need to be. */
export type RandomBytes = (size: number) => Buffer;
export const systemRandom: RandomBytes = (size) => randomBytes(size);

/** A clock in epoch milliseconds, injected so tests never sleep. */
export type Clock = () => number;
export const systemClock: Clock = () => Date.now();

/**
 * A bearer secret for links, sessions and state tokens: 256 bits from the CSPRNG, base64url.
 * OWASP ASVS 3.2.2 asks for at least 64 bits of entropy; we use 256 so hashing with plain
 * SHA-256 (no salt, no stretching) is safe for storage.
 */
export function createBearerSecret(random: RandomBytes = systemRandom): string {
  return random(32).toString('base64url');
}

/** The stored form of a bearer secret: hex SHA-256. */
export function hashBearerSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares two strings without leaking where they differ (length may leak; hash first if that matters). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  if (ab.length !== bb.length) {
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Okta-style object ids: a 3-character prefix (`00u` users, `uft` factors…) and 17 base62 characters. */
export function createId(prefix: string, random: RandomBytes = systemRandom): string {
  const bytes = random(17);
  let out = prefix;
  for (const b of bytes) out += BASE62[b % 62];
  return out;
}
