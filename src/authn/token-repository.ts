import type { Kysely, Selectable } from 'kysely';
import type {
  AuthnTransactionsTable,
  Database,
  EmailTokensTable,
  OneTimeTokensTable,
  SessionsTable,
} from '../db/schema.ts';

export type EmailTokenRow = Selectable<EmailTokensTable>;
export type SessionRow = Selectable<SessionsTable>;
export type TransactionRow = Selectable<AuthnTransactionsTable>;
export type OneTimeTokenRow = Selectable<OneTimeTokensTable>;

/**
 * Bearer secrets of the sign-in flows. Every table is keyed by the SHA-256 of the secret; the
 * secret itself is never stored.
 */
export function createTokenRepository(db: Kysely<Database>) {
  const unexpiredTransaction = (hash: string, now: number) =>
    db.selectFrom('authn_transactions').selectAll().where('token_hash', '=', hash).where('expires_at', '>', now);
  return {
    async createEmailToken(row: EmailTokenRow): Promise<void> {
      await db.insertInto('email_tokens').values(row).execute();
    },
    async findEmailToken(hash: string): Promise<EmailTokenRow | undefined> {
      return db.selectFrom('email_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    },
    /** Single use: marks the token consumed if it is unexpired and unused; returns its user. */
    async consumeEmailToken(hash: string, purpose: string, now: number): Promise<string | undefined> {
      const r = await db
        .updateTable('email_tokens')
        .set({ consumed_at: now })
        .where('token_hash', '=', hash)
        .where('purpose', '=', purpose)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now)
        .returning('user_id')
        .executeTakeFirst();
      return r?.user_id;
    },
    /** Invalidates every outstanding token of a purpose (a new email replaces the old link). */
    async revokeEmailTokens(userId: string, purpose: string, now: number): Promise<void> {
      await db
        .updateTable('email_tokens')
        .set({ consumed_at: now })
        .where('user_id', '=', userId)
        .where('purpose', '=', purpose)
        .where('consumed_at', 'is', null)
        .execute();
    },

    async createTransaction(row: TransactionRow): Promise<void> {
      await db.insertInto('authn_transactions').values(row).execute();
    },
    async findTransaction(hash: string, now: number): Promise<TransactionRow | undefined> {
      return unexpiredTransaction(hash, now).where('ended_at', 'is', null).executeTakeFirst();
    },
    /** A transaction that was ended before it expired (to tell why a stateToken stopped working). */
    async findEndedTransaction(hash: string, now: number): Promise<TransactionRow | undefined> {
      return unexpiredTransaction(hash, now).where('ended_at', 'is not', null).executeTakeFirst();
    },
    /**
     * Compare-and-set on the transaction status, so two parallel requests with one stateToken
     * cannot both advance it.
     */
    async advanceTransaction(
      hash: string,
      from: string,
      to: { status: string; factorId?: string | null; amr?: string[]; expiresAt?: number },
      now: number,
    ): Promise<boolean> {
      const r = await db
        .updateTable('authn_transactions')
        .set({
          status: to.status,
          ...(to.expiresAt !== undefined ? { expires_at: to.expiresAt } : {}),
          ...(to.factorId !== undefined ? { factor_id: to.factorId } : {}),
          ...(to.amr ? { amr: JSON.stringify(to.amr) } : {}),
        })
        .where('token_hash', '=', hash)
        .where('status', '=', from)
        .where('ended_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Counts one wrong recovery answer or code against an emailed link, atomically, over every
     * transaction started from it; returns the new count.
     */
    async countEmailTokenAttempt(hash: string): Promise<number> {
      const r = await db
        .updateTable('email_tokens')
        .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
        .where('token_hash', '=', hash)
        .returning('attempts')
        .executeTakeFirst();
      return r?.attempts ?? Number.MAX_SAFE_INTEGER;
    },
    /** Counts one wrong answer in a transaction, atomically; returns the new count. */
    async countTransactionAttempt(hash: string): Promise<number> {
      const r = await db
        .updateTable('authn_transactions')
        .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
        .where('token_hash', '=', hash)
        .returning('attempts')
        .executeTakeFirst();
      return r?.attempts ?? Number.MAX_SAFE_INTEGER;
    },
    async endTransaction(hash: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('authn_transactions')
        .set({ ended_at: now })
        .where('token_hash', '=', hash)
        .where('ended_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** Ends every open sign-in of a user (after lockout or a credential change). */
    async endUserTransactions(userId: string, now: number): Promise<void> {
      await db
        .updateTable('authn_transactions')
        .set({ ended_at: now })
        .where('user_id', '=', userId)
        .where('ended_at', 'is', null)
        .execute();
    },

    async createOneTimeToken(row: OneTimeTokenRow): Promise<void> {
      await db.insertInto('one_time_tokens').values(row).execute();
    },
    async consumeOneTimeToken(hash: string, purpose: string, now: number): Promise<OneTimeTokenRow | undefined> {
      return db
        .updateTable('one_time_tokens')
        .set({ consumed_at: now })
        .where('token_hash', '=', hash)
        .where('purpose', '=', purpose)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now)
        .returningAll()
        .executeTakeFirst();
    },

    async createSession(row: SessionRow): Promise<void> {
      await db.insertInto('sessions').values(row).execute();
    },
    async findActiveSession(hash: string, now: number): Promise<SessionRow | undefined> {
      return db
        .selectFrom('sessions')
        .selectAll()
        .where('id_hash', '=', hash)
        .where('revoked_at', 'is', null)
        .where('idle_expires_at', '>', now)
        .where('absolute_expires_at', '>', now)
        .executeTakeFirst();
    },
    /** Slides the idle timeout; the caller caps it at the absolute expiry. */
    async touchSession(hash: string, now: number, idleExpiresAt: number): Promise<void> {
      await db
        .updateTable('sessions')
        .set({ last_seen_at: now, idle_expires_at: idleExpiresAt })
        .where('id_hash', '=', hash)
        .execute();
    },
    /** Records a factor verification in a session (re-verification before sensitive changes). */
    async markSessionVerified(hash: string, now: number): Promise<void> {
      await db.updateTable('sessions').set({ verified_at: now }).where('id_hash', '=', hash).execute();
    },
    async revokeSession(hash: string, now: number): Promise<void> {
      await db
        .updateTable('sessions')
        .set({ revoked_at: now })
        .where('id_hash', '=', hash)
        .where('revoked_at', 'is', null)
        .execute();
    },
    async revokeUserSessions(userId: string, now: number, exceptHash?: string): Promise<number> {
      let q = db
        .updateTable('sessions')
        .set({ revoked_at: now })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null);
      if (exceptHash) q = q.where('id_hash', '!=', exceptHash);
      const r = await q.executeTakeFirst();
      return Number(r.numUpdatedRows);
    },
    async listActiveSessions(userId: string, now: number): Promise<SessionRow[]> {
      return db
        .selectFrom('sessions')
        .selectAll()
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .where('idle_expires_at', '>', now)
        .where('absolute_expires_at', '>', now)
        .orderBy('last_seen_at', 'desc')
        .execute();
    },
  };
}
export type TokenRepository = ReturnType<typeof createTokenRepository>;
