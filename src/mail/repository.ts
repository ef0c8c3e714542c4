import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Database, OutboxTable } from '../db/schema.ts';

export type OutboxRow = Selectable<OutboxTable>;
export type NewOutboxMessage = Omit<
  Insertable<OutboxTable>,
  'id' | 'status' | 'attempts' | 'lease_until' | 'last_error' | 'sent_at'
>;

/** The transactional outbox: written with the change that needs the mail, delivered later. */
export function createOutboxRepository(db: Kysely<Database>, dialect: 'sqlite' | 'postgres') {
  return {
    async enqueueMessage(message: NewOutboxMessage): Promise<void> {
      await db
        .insertInto('outbox')
        .values({ ...message, status: 'pending', attempts: 0, lease_until: null, last_error: null, sent_at: null })
        .execute();
    },
    /**
     * Leases up to `limit` due messages to one worker. PostgreSQL skips rows another node holds
     * (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer, so the UPDATE alone is atomic.
     * A lease that expires (worker died mid-send) makes the message due again.
     */
    async claimDueMessages(now: number, leaseMs: number, limit: number): Promise<OutboxRow[]> {
      const due = db
        .selectFrom('outbox')
        .select('id')
        .where((eb) =>
          eb.or([
            eb.and([eb('status', '=', 'pending'), eb('next_attempt_at', '<=', now)]),
            eb.and([eb('status', '=', 'sending'), eb('lease_until', '<=', now)]),
          ]),
        )
        .orderBy('id')
        .limit(limit);
      return db
        .updateTable('outbox')
        .set({ status: 'sending', lease_until: now + leaseMs })
        .where('id', 'in', dialect === 'postgres' ? due.forUpdate().skipLocked() : due)
        .returningAll()
        .execute();
    },
    async markSent(id: number, now: number): Promise<void> {
      await db
        .updateTable('outbox')
        .set({ status: 'sent', sent_at: now, lease_until: null, last_error: null })
        .where('id', '=', id)
        .execute();
    },
    /** Records a failed attempt; `nextAttemptAt` null gives up for good. */
    async markFailed(id: number, error: string, nextAttemptAt: number | null): Promise<void> {
      await db
        .updateTable('outbox')
        .set((eb) => ({
          status: nextAttemptAt === null ? 'failed' : 'pending',
          attempts: eb('attempts', '+', 1),
          next_attempt_at: nextAttemptAt ?? 0,
          lease_until: null,
          last_error: error.slice(0, 1000),
        }))
        .where('id', '=', id)
        .execute();
    },
    async listRecentMessages(limit: number, toAddress?: string): Promise<OutboxRow[]> {
      let q = db.selectFrom('outbox').selectAll().orderBy('id', 'desc').limit(limit);
      if (toAddress) q = q.where('to_address', '=', toAddress.toLowerCase());
      return q.execute();
    },
    async findMessage(id: number): Promise<OutboxRow | undefined> {
      return db.selectFrom('outbox').selectAll().where('id', '=', id).executeTakeFirst();
    },
  };
}
export type OutboxRepository = ReturnType<typeof createOutboxRepository>;
