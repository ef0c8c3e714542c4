import type { Kysely, Selectable } from 'kysely';
import type { Database, PortalSessionsTable } from '../db/schema.ts';

export type PortalSessionRow = Selectable<PortalSessionsTable>;
/** A new session: it has no download-API token until sign-in stores one. */
export type NewPortalSession = Omit<PortalSessionRow, 'download_token_sealed' | 'download_token_expires_at'>;

/**
 * Browser sessions of the portal (the TRAQS website), keyed by the SHA-256 of the cookie value;
 * the value itself is never stored. Times are epoch ms.
 */
export function createPortalSessionRepository(db: Kysely<Database>) {
  return {
    async create(row: NewPortalSession): Promise<void> {
      await db
        .insertInto('portal_sessions')
        .values({ ...row, download_token_sealed: null, download_token_expires_at: null })
        .execute();
    },

    /** Keeps the session's (sealed) access token for the download API, replacing any older one. */
    async setDownloadToken(idHash: string, sealed: string | null, expiresAt: number | null): Promise<void> {
      await db
        .updateTable('portal_sessions')
        .set({ download_token_sealed: sealed, download_token_expires_at: expiresAt })
        .where('id_hash', '=', idHash)
        .execute();
    },

    /** The session if it is neither revoked nor past its idle or absolute timeout. */
    async findActive(idHash: string, now: number): Promise<PortalSessionRow | undefined> {
      return db
        .selectFrom('portal_sessions')
        .selectAll()
        .where('id_hash', '=', idHash)
        .where('revoked_at', 'is', null)
        .where('idle_expires_at', '>', now)
        .where('absolute_expires_at', '>', now)
        .executeTakeFirst();
    },

    /** Slides the idle timeout of a live session forward. */
    async touch(idHash: string, now: number, idleExpiresAt: number): Promise<void> {
      await db
        .updateTable('portal_sessions')
        .set({ last_seen_at: now, idle_expires_at: idleExpiresAt })
        .where('id_hash', '=', idHash)
        .where('revoked_at', 'is', null)
        .execute();
    },

    /** Ends one session; true if it was live. */
    async revoke(idHash: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('portal_sessions')
        .set({ revoked_at: now })
        .where('id_hash', '=', idHash)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Ends every live session of a user (suspension, a suspicious-activity report); returns how many. */
    async revokeAllOfUser(userId: string, now: number): Promise<number> {
      const r = await db
        .updateTable('portal_sessions')
        .set({ revoked_at: now })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows);
    },

    /** Housekeeping: forgets sessions that ended (revoked or timed out) before `before`. */
    async deleteEndedBefore(before: number): Promise<number> {
      const r = await db
        .deleteFrom('portal_sessions')
        .where((eb) =>
          eb.or([
            eb('revoked_at', '<', before),
            eb('idle_expires_at', '<', before),
            eb('absolute_expires_at', '<', before),
          ]),
        )
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    },
  };
}
export type PortalSessionRepository = ReturnType<typeof createPortalSessionRepository>;
