import type { SecretBox } from '../../../lib/secret-box.ts';
import type { RandomBytes } from '../../../lib/tokens.ts';
import { base32Encode, buildOtpauthUri, createTotpSecret } from './totp.ts';

/**
 * TOTP seeds at rest: AES-256-GCM with the factor id as associated data, so a sealed seed copied
 * onto another factor row does not open. Shared by sign-in enrollment and the profile.
 */
export function createSeedVault(secretBox: SecretBox, options: { issuer: string; stepSeconds: number }) {
  const aad = (factorId: string) => `factor:${factorId}`;
  return {
    /** A new random seed (RFC 4226 §4: 160 bits), sealed for `factorId`. */
    sealNew(factorId: string, random: RandomBytes): string {
      return secretBox.seal(createTotpSecret(random), aad(factorId));
    },
    open(factor: { id: string; secret_enc: string }): Buffer {
      return secretBox.open(factor.secret_enc, aad(factor.id));
    },
    /** What an authenticator app needs: the key for manual entry and the `otpauth://` URI for the QR code. */
    describe(factor: { id: string; secret_enc: string }, accountName: string) {
      const secret = secretBox.open(factor.secret_enc, aad(factor.id));
      return {
        sharedSecret: base32Encode(secret, { padding: false }),
        otpauthUri: buildOtpauthUri({
          secret,
          issuer: options.issuer,
          accountName,
          stepSeconds: options.stepSeconds,
          digits: 6,
        }),
      };
    },
  };
}
export type SeedVault = ReturnType<typeof createSeedVault>;
