import type { Kysely, Selectable } from 'kysely';
import type { Database, ManagementApiTokensTable } from '../db/schema.ts';

export type ManagementTokenRow = Selectable<ManagementApiTokensTable>;

/** `SSWS` tokens of the management API, keyed by the SHA-256 of the token (never the token). */
export function createManagementTokenRepository(db: Kysely<Database>) {
  return {
    async create(row: ManagementTokenRow): Promise<void> {
      await db.insertInto('management_api_tokens').values(row).execute();
    },

    /** The live (unrevoked) token with this hash. */
    async findLiveByHash(tokenHash: string): Promise<ManagementTokenRow | undefined> {
      return db
        .selectFrom('management_api_tokens')
        .selectAll()
        .where('token_hash', '=', tokenHash)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
    },

    async findById(id: string): Promise<ManagementTokenRow | undefined> {
      return db.selectFrom('management_api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async list(includeRevoked = false): Promise<ManagementTokenRow[]> {
      let q = db.selectFrom('management_api_tokens').selectAll().orderBy('created_at').orderBy('id');
      if (!includeRevoked) q = q.where('revoked_at', 'is', null);
      return q.execute();
    },

    /** Notes a use, at most one write a minute per token. */
    async markUsed(id: string, now: number): Promise<void> {
      await db
        .updateTable('management_api_tokens')
        .set({ last_used_at: now })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', now - 60_000)]))
        .execute();
    },

    /** Revokes a token; true if it was live. */
    async revoke(id: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('management_api_tokens')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
  };
}
export type ManagementTokenRepository = ReturnType<typeof createManagementTokenRepository>;
