import { randomBytes } from 'node:crypto';
import type { Algorithm } from '@node-rs/argon2';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import { normalizePassword } from './policy.ts';

/** Argon2id cost parameters, as in the PHC string (`m=`, `t=`, `p=`). */
export interface Argon2Params {
  /** Memory in KiB. */
  memoryKiB: number;
  /** Number of passes. */
  timeCost: number;
  /** Lanes (threads). */
  parallelism: number;
}

/** Outcome of a password check: whether it matched, and whether the stored hash should be replaced. */
export interface PasswordVerifyResult {
  ok: boolean;
  /** True when the password matched but the hash uses other parameters than the configured ones. */
  needsRehash: boolean;
}

/** Hashes and verifies passwords with one set of Argon2id parameters. */
export interface PasswordHasher {
  /** Argon2id PHC string of the NFKC-normalised password, with a fresh random salt. */
  hash(plain: string): Promise<string>;
  /** Checks a password against a stored PHC string; never throws, a malformed hash is `ok: false`. */
  verify(hash: string, plain: string): Promise<PasswordVerifyResult>;
  /**
   * Spends the time of one verification and always returns `ok: false`: call it when the user
   * does not exist, so an unknown username answers no faster than a wrong password.
   */
  verifyDummy(plain: string): Promise<PasswordVerifyResult>;
}

/** OWASP Password Storage Cheat Sheet: Argon2id with m=19 MiB, t=2, p=1. */
export const DEFAULT_ARGON2_PARAMS: Readonly<Argon2Params> = Object.freeze({
  memoryKiB: 19_456,
  timeCost: 2,
  parallelism: 1,
});

// @node-rs/argon2 declares Algorithm as an ambient const enum, which `verbatimModuleSyntax` cannot
// read (and its runtime object is empty); 2 is its Argon2id member.
const ARGON2ID: Algorithm = 2;
const ARGON2_VERSION = 19;

/** Parameters read from an Argon2 PHC string. */
interface PhcParams extends Argon2Params {
  algorithm: 'argon2d' | 'argon2i' | 'argon2id';
  version: number;
}

// PHC string format: $argon2id$v=19$m=19456,t=2,p=1$<salt B64>$<hash B64>
const PHC_PATTERN =
  /^\$(argon2(?:id|i|d))\$v=(\d{1,3})\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$([A-Za-z0-9+/]{11,})\$([A-Za-z0-9+/]{16,})$/;

function parsePhc(phc: string): PhcParams | undefined {
  const m = PHC_PATTERN.exec(phc);
  if (!m) return undefined;
  return {
    algorithm: m[1] as PhcParams['algorithm'],
    version: Number(m[2]),
    memoryKiB: Number(m[3]),
    timeCost: Number(m[4]),
    parallelism: Number(m[5]),
  };
}

function assertParams({ memoryKiB, timeCost, parallelism }: Argon2Params): void {
  // RFC 9106 §3.1: p from 1 to 2^24-1 (the library allows 255), t ≥ 1, m ≥ 8·p KiB.
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > 255) {
    throw new RangeError(`parallelism must be an integer from 1 to 255, got ${parallelism}`);
  }
  if (!Number.isInteger(timeCost) || timeCost < 1) {
    throw new RangeError(`timeCost must be a positive integer, got ${timeCost}`);
  }
  if (!Number.isInteger(memoryKiB) || memoryKiB < 8 * parallelism || memoryKiB > 2 ** 32 - 1) {
    throw new RangeError(`memoryKiB must be an integer of at least 8 × parallelism, got ${memoryKiB}`);
  }
}

/**
 * Creates an Argon2id password hasher (OWASP Password Storage Cheat Sheet; RFC 9106). Passwords
 * are NFKC-normalised before hashing and verifying (NIST 800-63B §5.1.1.2), so the same password
 * typed on another platform still matches.
 *
 * A dummy hash with the same parameters is computed at creation for {@link PasswordHasher.verifyDummy}
 * (OWASP Authentication Cheat Sheet, "Authentication Responses"; ASVS V2.2: no user enumeration).
 *
 * @param params - cost parameters; OWASP's m=19456 KiB, t=2, p=1 by default
 * @param random - source of the dummy password's bytes; `crypto.randomBytes` unless a test injects one
 */
export function createPasswordHasher(
  params: Partial<Argon2Params> = {},
  random: (n: number) => Buffer = randomBytes,
): PasswordHasher {
  const config: Argon2Params = { ...DEFAULT_ARGON2_PARAMS, ...params };
  assertParams(config);
  const options = {
    algorithm: ARGON2ID,
    memoryCost: config.memoryKiB,
    timeCost: config.timeCost,
    parallelism: config.parallelism,
  };

  const hash = (plain: string): Promise<string> => argon2Hash(normalizePassword(plain), options);

  const dummyHash = hash(random(32).toString('base64url'));
  // Kept for verifyDummy; a failure here surfaces there, not as an unhandled rejection.
  dummyHash.catch(() => undefined);

  const needsRehash = (phc: PhcParams): boolean =>
    phc.algorithm !== 'argon2id' ||
    phc.version !== ARGON2_VERSION ||
    phc.memoryKiB !== config.memoryKiB ||
    phc.timeCost !== config.timeCost ||
    phc.parallelism !== config.parallelism;

  const verifyDummy = async (plain: string): Promise<PasswordVerifyResult> => {
    try {
      await argon2Verify(await dummyHash, normalizePassword(plain));
    } catch {
      // The answer is the same whatever happened: no such user.
    }
    return { ok: false, needsRehash: false };
  };

  const verify = async (stored: string, plain: string): Promise<PasswordVerifyResult> => {
    const phc = parsePhc(stored);
    if (!phc) {
      // A corrupt stored hash must not answer faster than a real check would.
      await verifyDummy(plain);
      return { ok: false, needsRehash: false };
    }
    try {
      const ok = await argon2Verify(stored, normalizePassword(plain));
      return { ok, needsRehash: ok && needsRehash(phc) };
    } catch {
      return { ok: false, needsRehash: false };
    }
  };

  return { hash, verify, verifyDummy };
}
