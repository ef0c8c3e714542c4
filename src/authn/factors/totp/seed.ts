import type { SecretBox } from '../../../lib/secret-box.ts';
import { createId, type RandomBytes } from '../../../lib/tokens.ts';
import type { FactorRow } from '../repository.ts';
import { base32Encode, buildOtpauthUri, createTotpSecret, verifyTotp } from './totp.ts';

/**
 * TOTP seeds at rest: AES-256-GCM with the factor id as associated data, so a sealed seed copied
 * onto another factor row does not open; and the codes checked against them. One vault serves
 * sign-in (enrollment and verification) and the profile.
 */
export function createSeedVault(
  secretBox: SecretBox,
  options: { issuer: string; stepSeconds: number; driftSteps: number },
) {
  const aad = (factorId: string) => `factor:${factorId}`;
  const open = (factor: { id: string; secret_enc: string }): Buffer =>
    secretBox.open(factor.secret_enc, aad(factor.id));
  return {
    /**
     * A new TOTP factor waiting for its first code, with a new random seed (RFC 4226 §4: 160 bits)
     * sealed for it. It becomes ACTIVE only with a correct code.
     */
    pendingFactor(
      fields: { userId: string; factorType: string; provider: string; name: string },
      random: RandomBytes,
      now: number,
    ): FactorRow {
      const id = createId('uft', random);
      return {
        id,
        user_id: fields.userId,
        factor_type: fields.factorType,
        provider: fields.provider,
        status: 'PENDING_ACTIVATION',
        name: fields.name,
        secret_enc: secretBox.seal(createTotpSecret(random), aad(id)),
        last_used_step: null,
        created_at: now,
        activated_at: null,
        last_used_at: null,
      };
    },
    /**
     * Checks a code against the factor's seed at `now`, within the drift window and after the last
     * step used. Marking the step used (so the code is accepted once) is the caller's.
     */
    verify(factor: { id: string; secret_enc: string; last_used_step: number | null }, code: string, now: number) {
      return verifyTotp({
        secret: open(factor),
        code,
        now,
        lastUsedStep: factor.last_used_step,
        stepSeconds: options.stepSeconds,
        driftSteps: options.driftSteps,
      });
    },
    /** What an authenticator app needs: the key for manual entry and the `otpauth://` URI for the QR code. */
    describe(factor: { id: string; secret_enc: string }, accountName: string) {
      const secret = open(factor);
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
