import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { base32Encode, createTotpSecret, generateTotp, type OtpAlgorithm } from './totp.ts';

// A real peer: Debian's oathtool (OATH Toolkit) must compute the same codes as our TOTP, so an
// authenticator app enrolled from our otpauth URI agrees with the server.
const OATHTOOL = 'oathtool';
const probe = spawnSync(OATHTOOL, ['--version'], { encoding: 'utf8' });
const available = probe.error === undefined && probe.status === 0;
const inCi = Boolean(process.env.CI);
const missingReason = `${OATHTOOL} was not found (${probe.error?.message ?? `exit status ${probe.status}`}); install it with \`apt-get install oathtool\``;

if (!available && !inCi) {
  console.warn(`oathtool.test.ts skipped: ${missingReason}`);
}

/** The `-N` format oathtool reads: `YYYY-MM-DD HH:MM:SS UTC`. */
function oathtoolTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function oathtoolTotp(
  secretBase32: string,
  ms: number,
  opts: { algorithm: OtpAlgorithm; digits: number; step: number },
) {
  const mode = opts.algorithm.toUpperCase();
  return execFileSync(
    OATHTOOL,
    [`--totp=${mode}`, '-b', secretBase32, '-d', String(opts.digits), '-s', `${opts.step}s`, '-N', oathtoolTime(ms)],
    { encoding: 'utf8' },
  ).trim();
}

// Deterministic secrets, so a failure reproduces; plus the RFC 6238 SHA-1 seed.
const secrets: Buffer[] = [
  Buffer.from('12345678901234567890', 'ascii'),
  ...['alice', 'bob', 'carol', 'dave'].map((label) =>
    createTotpSecret((n) => createHash('sha256').update(label).digest().subarray(0, n)),
  ),
];

const times: number[] = [
  Date.UTC(1970, 0, 1, 0, 0, 59),
  Date.UTC(2009, 1, 13, 23, 31, 30),
  Date.UTC(2024, 1, 29, 12, 0, 0),
  Date.UTC(2024, 1, 29, 12, 0, 29),
  Date.UTC(2024, 1, 29, 12, 0, 30),
  Date.UTC(2025, 11, 31, 23, 59, 59),
  Date.UTC(2038, 0, 19, 3, 14, 8),
];

describe.skipIf(!available && !inCi)('TOTP agrees with oathtool', () => {
  it('oathtool is installed', () => {
    // CI installs oathtool, so there a missing binary is a failure, not a skip.
    expect(available, missingReason).toBe(true);
  });

  it.runIf(available)('for several secrets and times (SHA-1, 6 digits, 30 s)', () => {
    for (const secret of secrets) {
      const b32 = base32Encode(secret);
      for (const now of times) {
        const expected = oathtoolTotp(b32, now, { algorithm: 'sha1', digits: 6, step: 30 });
        expect(generateTotp({ secret, now }), `secret ${b32} at ${oathtoolTime(now)}`).toBe(expected);
      }
    }
  });

  it.runIf(available)('with SHA-256, SHA-512, 8 digits and a 60 s step', () => {
    const variants: Array<{ algorithm: OtpAlgorithm; digits: number; step: number }> = [
      { algorithm: 'sha256', digits: 6, step: 30 },
      { algorithm: 'sha512', digits: 8, step: 30 },
      { algorithm: 'sha1', digits: 8, step: 60 },
    ];
    for (const variant of variants) {
      for (const secret of secrets.slice(1, 3)) {
        const b32 = base32Encode(secret);
        for (const now of times) {
          const expected = oathtoolTotp(b32, now, variant);
          const actual = generateTotp({
            secret,
            now,
            stepSeconds: variant.step,
            digits: variant.digits,
            algorithm: variant.algorithm,
          });
          expect(actual, `${JSON.stringify(variant)} secret ${b32} at ${oathtoolTime(now)}`).toBe(expected);
        }
      }
    }
  });
});
