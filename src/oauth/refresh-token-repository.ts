import type { Kysely, Selectable } from 'kysely';
import { preparedQuery } from '../db/prepared.ts';
import type { ApiRefreshTokensTable, Database } from '../db/schema.ts';

export type ApiRefreshTokenRow = Selectable<ApiRefreshTokensTable>;

/**
 * Descriptions of programmatic refresh tokens (label, created, expires, last used, reminder,
 * revocation), keyed by the token's SHA-256 as the `oidc_models` row is. Times are epoch ms.
 */
export function createApiTokenRepository(db: Kysely<Database>) {
  // Read on every refresh grant (see preparedQuery).
  const findByHash = preparedQuery(db, (db, idHash: string) =>
    db.selectFrom('api_refresh_tokens').selectAll().where('id_hash', '=', idHash),
  );
  return {
    /** Records a newly issued token; false if it was already recorded (a re-save). */
    async insert(row: ApiRefreshTokenRow): Promise<boolean> {
      const r = await db
        .insertInto('api_refresh_tokens')
        .values(row)
        .onConflict((oc) => oc.column('id_hash').doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    async find(idHash: string): Promise<ApiRefreshTokenRow | undefined> {
      return findByHash.first(idHash);
    },

    /** A user's tokens, newest first: live ones and those that expired or were revoked since `since`. */
    async listForUser(userId: string, since: number): Promise<ApiRefreshTokenRow[]> {
      return db
        .selectFrom('api_refresh_tokens')
        .selectAll()
        .where('user_id', '=', userId)
        .where('expires_at', '>', since)
        .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', since)]))
        .orderBy('created_at', 'desc')
        .orderBy('id_hash')
        .execute();
    },

    async setLabel(idHash: string, userId: string, label: string): Promise<boolean> {
      const r = await db
        .updateTable('api_refresh_tokens')
        .set({ label })
        .where('id_hash', '=', idHash)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /**
     * Notes a use, at most one write a minute per token (the page shows minutes, and the token
     * endpoint should not write on every grant).
     */
    async markUsed(idHash: string, now: number, ip: string | null): Promise<void> {
      await db
        .updateTable('api_refresh_tokens')
        .set({ last_used_at: now, last_used_ip: ip })
        .where('id_hash', '=', idHash)
        .where((eb) =>
          eb.or([
            eb('last_used_at', 'is', null),
            eb('last_used_at', '<', now - 60_000),
            eb('last_used_ip', 'is', null),
            eb('last_used_ip', '!=', ip ?? ''),
          ]),
        )
        .execute();
    },

    /**
     * Revokes one token (of `userId` when given) : its description is marked and its
     * `oidc_models` row deleted, so the token endpoint no longer finds it. True if it was live.
     * Run inside `store.transaction` with the audit event.
     */
    async revoke(
      idHash: string,
      now: number,
      reason: string,
      userId?: string,
    ): Promise<ApiRefreshTokenRow | undefined> {
      let q = db
        .updateTable('api_refresh_tokens')
        .set({ revoked_at: now, revoked_reason: reason })
        .where('id_hash', '=', idHash)
        .where('revoked_at', 'is', null);
      if (userId !== undefined) q = q.where('user_id', '=', userId);
      const row = await q.returningAll().executeTakeFirst();
      if (row) {
        await db.deleteFrom('oidc_models').where('model', '=', 'RefreshToken').where('id_hash', '=', idHash).execute();
      }
      return row;
    },

    /**
     * Marks descriptions revoked whose tokens oidc-provider destroyed (revocation endpoint, a grant
     * revoked); the `oidc_models` rows are the adapter's business.
     */
    async markRevoked(which: { idHash: string } | { grantId: string }, now: number, reason: string): Promise<number> {
      let q = db
        .updateTable('api_refresh_tokens')
        .set({ revoked_at: now, revoked_reason: reason })
        .where('revoked_at', 'is', null);
      q = 'idHash' in which ? q.where('id_hash', '=', which.idHash) : q.where('grant_id', '=', which.grantId);
      const r = await q.executeTakeFirst();
      return Number(r.numUpdatedRows);
    },

    /** Revokes every live token of a user (suspension, suspicious-activity report); returns them. */
    async revokeAllOfUser(userId: string, now: number, reason: string): Promise<ApiRefreshTokenRow[]> {
      const rows = await db
        .updateTable('api_refresh_tokens')
        .set({ revoked_at: now, revoked_reason: reason })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .returningAll()
        .execute();
      if (rows.length > 0) {
        await db
          .deleteFrom('oidc_models')
          .where('model', '=', 'RefreshToken')
          .where(
            'id_hash',
            'in',
            rows.map((r) => r.id_hash),
          )
          .execute();
      }
      return rows;
    },

    /**
     * Live, unreminded tokens that expire by `dueBefore`, oldest expiry first (then by `id_hash`).
     * `after`, the last row of the previous page, continues past rows that are still due, e.g.
     * because their reminder failed this round (keyset pagination).
     */
    async listReminderDue(
      now: number,
      dueBefore: number,
      limit: number,
      after?: { expiresAt: number; idHash: string },
    ): Promise<ApiRefreshTokenRow[]> {
      let q = db
        .selectFrom('api_refresh_tokens')
        .selectAll()
        .where('reminder_sent_at', 'is', null)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .where('expires_at', '<=', dueBefore);
      if (after) {
        q = q.where((eb) =>
          eb.or([
            eb('expires_at', '>', after.expiresAt),
            eb.and([eb('expires_at', '=', after.expiresAt), eb('id_hash', '>', after.idHash)]),
          ]),
        );
      }
      return q.orderBy('expires_at').orderBy('id_hash').limit(limit).execute();
    },

    /**
     * Claims a token's reminder: of any number of nodes calling this, exactly one gets true. Run it
     * in the transaction that queues the email, so the claim and the mail commit together.
     */
    async claimReminder(idHash: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('api_refresh_tokens')
        .set({ reminder_sent_at: now })
        .where('id_hash', '=', idHash)
        .where('reminder_sent_at', 'is', null)
        .where('revoked_at', 'is', null)
        // An expired token needs no reminder, even if it was listed as due a moment ago.
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Housekeeping: forgets descriptions of tokens that expired or were revoked before `before`. */
    async deleteOlderThan(before: number): Promise<number> {
      const r = await db
        .deleteFrom('api_refresh_tokens')
        .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]))
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    },
  };
}
export type ApiTokenRepository = ReturnType<typeof createApiTokenRepository>;
