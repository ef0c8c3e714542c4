import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Database, OutboxTable } from '../db/schema.ts';

export type OutboxRow = Selectable<OutboxTable>;
export type NewOutboxMessage = Omit<
  Insertable<OutboxTable>,
  'id' | 'status' | 'attempts' | 'lease_until' | 'last_error' | 'sent_at'
>;

/** What a delivered message's bodies are replaced with. */
export const REDACTED = '[delivered; the body is not kept because it held single-use links]';

/** The transactional outbox: written with the change that needs the mail, delivered later. */
export function createOutboxRepository(db: Kysely<Database>, dialect: 'sqlite' | 'postgres') {
  return {
    /** Adds a pending message; returns its row id. */
    async enqueueMessage(message: NewOutboxMessage): Promise<number> {
      const row = await db
        .insertInto('outbox')
        .values({ ...message, status: 'pending', attempts: 0, lease_until: null, last_error: null, sent_at: null })
        .returning('id')
        .executeTakeFirstOrThrow();
      return row.id;
    },
    /**
     * Leases up to `limit` due messages to one worker. PostgreSQL skips rows another node holds
     * (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer, so the UPDATE alone is atomic.
     * A lease that expires (worker died mid-send) makes the message due again.
     *
     * Each claim counts as an attempt, so a message whose sending keeps killing the worker still
     * runs out of attempts. The returned `lease_until` is the claim's fencing token: it grows with
     * every claim of a row, and `markSent`/`markFailed` only apply while it is unchanged.
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
        .set((eb) => ({ status: 'sending', lease_until: now + leaseMs, attempts: eb('attempts', '+', 1) }))
        .where('id', 'in', dialect === 'postgres' ? due.forUpdate().skipLocked() : due)
        .returningAll()
        .execute();
    },
    /**
     * Records delivery. Applies only while the caller's claim (`leaseUntil`) still holds, so a
     * worker whose lease ran out cannot overwrite what the worker that took over recorded.
     * Returns false when the claim was lost.
     */
    /**
     * Marks a message delivered. With `redact`, its bodies are replaced: they hold links that are
     * bearer secrets (DESIGN: such secrets are stored only as hashes), and the relay has them now.
     */
    async markSent(id: number, now: number, leaseUntil: number, redact = false): Promise<boolean> {
      const r = await db
        .updateTable('outbox')
        .set({
          status: 'sent',
          sent_at: now,
          lease_until: null,
          last_error: null,
          ...(redact ? { text_body: REDACTED, html_body: REDACTED } : {}),
        })
        .where('id', '=', id)
        .where('status', '=', 'sending')
        .where('lease_until', '=', leaseUntil)
        .executeTakeFirst();
      return r.numUpdatedRows > 0n;
    },
    /**
     * Records a failed attempt (already counted by the claim); `nextAttemptAt` null gives up for
     * good. Same claim check as `markSent`: a sent message can never go back to pending.
     */
    async markFailed(id: number, error: string, nextAttemptAt: number | null, leaseUntil: number): Promise<boolean> {
      const r = await db
        .updateTable('outbox')
        .set({
          status: nextAttemptAt === null ? 'failed' : 'pending',
          next_attempt_at: nextAttemptAt ?? 0,
          lease_until: null,
          last_error: error.slice(0, 1000),
        })
        .where('id', '=', id)
        .where('status', '=', 'sending')
        .where('lease_until', '=', leaseUntil)
        .executeTakeFirst();
      return r.numUpdatedRows > 0n;
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
