import type { Kysely, Selectable } from 'kysely';
import type { Database, WebAuthnChallengesTable, WebAuthnCredentialsTable } from '../../../db/schema.ts';

export type WebAuthnCredentialRow = Selectable<WebAuthnCredentialsTable>;
export type WebAuthnChallengeRow = Selectable<WebAuthnChallengesTable>;
export type ChallengePurpose = 'registration' | 'authentication';

/** What a challenge is bound to: a sign-in transaction or a profile session (their stored hashes). */
export const bindingOfTransaction = (tokenHash: string) => `txn:${tokenHash}`;
export const bindingOfSession = (idHash: string) => `session:${idHash}`;

/** FastPass credentials and the challenges their ceremonies answer. */
export function createWebAuthnRepository(db: Kysely<Database>) {
  return {
    async saveCredential(row: WebAuthnCredentialRow): Promise<void> {
      await db.insertInto('webauthn_credentials').values(row).execute();
    },
    async findCredential(factorId: string): Promise<WebAuthnCredentialRow | undefined> {
      return db.selectFrom('webauthn_credentials').selectAll().where('factor_id', '=', factorId).executeTakeFirst();
    },
    /** Whether any account already registered this credential id. */
    async credentialExists(credentialId: string): Promise<boolean> {
      const row = await db
        .selectFrom('webauthn_credentials')
        .select('factor_id')
        .where('credential_id', '=', credentialId)
        .executeTakeFirst();
      return row !== undefined;
    },
    async listCredentials(userId: string): Promise<WebAuthnCredentialRow[]> {
      return db
        .selectFrom('webauthn_credentials')
        .selectAll()
        .where('user_id', '=', userId)
        .orderBy('created_at')
        .execute();
    },
    /**
     * Records the counter of an accepted assertion. Compare-and-set on the counter it was checked
     * against: of two assertions racing with the same counter, one wins (WebAuthn §7.2 step 21).
     */
    async advanceSignCount(factorId: string, from: number, to: number): Promise<boolean> {
      const r = await db
        .updateTable('webauthn_credentials')
        .set({ sign_count: to })
        .where('factor_id', '=', factorId)
        .where('sign_count', '=', from)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /**
     * Stores a new challenge. Earlier unused challenges of the same binding and purpose stop
     * working (only the latest page or answer is live), and the user's expired ones are dropped.
     */
    async issueChallenge(row: WebAuthnChallengeRow): Promise<void> {
      await db
        .deleteFrom('webauthn_challenges')
        .where((eb) =>
          eb.or([
            eb.and([eb('binding', '=', row.binding), eb('purpose', '=', row.purpose)]),
            eb.and([eb('user_id', '=', row.user_id), eb('expires_at', '<=', row.created_at)]),
          ]),
        )
        .execute();
      await db.insertInto('webauthn_challenges').values(row).execute();
    },
    /** The live challenge of a binding for a factor, if it has at least `minRemainingMs` left. */
    async findLiveChallenge(
      binding: string,
      purpose: ChallengePurpose,
      factorId: string,
      now: number,
      minRemainingMs: number,
    ): Promise<WebAuthnChallengeRow | undefined> {
      return db
        .selectFrom('webauthn_challenges')
        .selectAll()
        .where('binding', '=', binding)
        .where('purpose', '=', purpose)
        .where('factor_id', '=', factorId)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now + minRemainingMs)
        .orderBy('created_at', 'desc')
        .executeTakeFirst();
    },
    /**
     * Uses a challenge up: true only for the first use, before it expires, by what it is bound to
     * and for the factor it was issued for. Atomic, so a replayed response loses even in a race.
     */
    async consumeChallenge(
      challenge: string,
      binding: string,
      purpose: ChallengePurpose,
      factorId: string,
      now: number,
    ): Promise<boolean> {
      const r = await db
        .updateTable('webauthn_challenges')
        .set({ consumed_at: now })
        .where('challenge', '=', challenge)
        .where('binding', '=', binding)
        .where('purpose', '=', purpose)
        .where('factor_id', '=', factorId)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
  };
}
export type WebAuthnRepository = ReturnType<typeof createWebAuthnRepository>;
