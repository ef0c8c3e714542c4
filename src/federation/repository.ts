import type { Kysely, Selectable } from 'kysely';
import type { Database, FederationRequestsTable, IdentityProvidersTable } from '../db/schema.ts';

export type IdentityProviderRow = Selectable<IdentityProvidersTable>;
export type FederationRequestRow = Selectable<FederationRequestsTable>;

/** A firm's identity providers, the sign-ins sent to them, and the assertions they answered with. */
export function createFederationRepository(db: Kysely<Database>) {
  return {
    async createIdentityProvider(row: IdentityProviderRow): Promise<void> {
      await db.insertInto('identity_providers').values(row).execute();
    },
    async findIdentityProvider(id: string): Promise<IdentityProviderRow | undefined> {
      return db.selectFrom('identity_providers').selectAll().where('id', '=', id).executeTakeFirst();
    },
    async findIdentityProviderOfFirm(firmId: string): Promise<IdentityProviderRow | undefined> {
      return db.selectFrom('identity_providers').selectAll().where('firm_id', '=', firmId).executeTakeFirst();
    },
    async listIdentityProviders(): Promise<IdentityProviderRow[]> {
      return db.selectFrom('identity_providers').selectAll().orderBy('created_at').execute();
    },
    /**
     * Replaces the settings of an identity provider if they are still `expected` (compare-and-set):
     * of two nodes changing one configuration at once, one wins and the other reads it again.
     */
    async replaceIdentityProviderSettings(id: string, expected: string, next: string): Promise<boolean> {
      const r = await db
        .updateTable('identity_providers')
        .set({ settings: next })
        .where('id', '=', id)
        .where('settings', '=', expected)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async deleteIdentityProvider(id: string): Promise<boolean> {
      const r = await db.deleteFrom('identity_providers').where('id', '=', id).executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },

    async createRequest(row: FederationRequestRow): Promise<void> {
      await db.insertInto('federation_requests').values(row).execute();
    },
    /** A request of this IdP that is still open (not expired, not yet answered). */
    async findOpenRequest(id: string, idpId: string, now: number): Promise<FederationRequestRow | undefined> {
      return db
        .selectFrom('federation_requests')
        .selectAll()
        .where('id', '=', id)
        .where('idp_id', '=', idpId)
        .where('expires_at', '>', now)
        .where('answered_at', 'is', null)
        .executeTakeFirst();
    },
    async findRequest(id: string): Promise<FederationRequestRow | undefined> {
      return db.selectFrom('federation_requests').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /**
     * Records the verified answer to a request. Atomic: of two answers racing for one request only
     * one is recorded; false for the other, and for an expired or already answered request.
     */
    async answerRequest(id: string, userId: string, amr: string[], now: number): Promise<boolean> {
      const r = await db
        .updateTable('federation_requests')
        .set({ answered_at: now, user_id: userId, amr: JSON.stringify(amr) })
        .where('id', '=', id)
        .where('answered_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** Spends an answered request: a sign-in starts from it once. False if it was spent or expired. */
    async consumeRequest(id: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('federation_requests')
        .set({ consumed_at: now })
        .where('id', '=', id)
        .where('consumed_at', 'is', null)
        .where('answered_at', 'is not', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Records an accepted assertion id until `expiresAt`; false if this IdP's assertion was seen
     * before (a replay). The primary key makes it atomic across nodes.
     */
    async recordAssertionId(idpId: string, assertionId: string, expiresAt: number): Promise<boolean> {
      const r = await db
        .insertInto('federation_assertions')
        .values({ idp_id: idpId, assertion_id: assertionId, expires_at: expiresAt })
        .onConflict((oc) => oc.columns(['idp_id', 'assertion_id']).doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },
    /** Housekeeping: requests and assertion ids past their expiry. */
    async deleteExpired(now: number): Promise<void> {
      await db.deleteFrom('federation_requests').where('expires_at', '<=', now).execute();
      await db.deleteFrom('federation_assertions').where('expires_at', '<=', now).execute();
    },
  };
}
export type FederationRepository = ReturnType<typeof createFederationRepository>;
