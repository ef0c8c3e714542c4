import { createHash } from 'node:crypto';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { Clock } from '../lib/tokens.ts';

/** The per-address limit counts requests in fixed windows of this length (`setupWeb`). */
export const RATE_LIMIT_WINDOW_MS = 60_000;

/**
 * Request counters in the database (migration 0010), shared by every node: a limit of 60 POSTs a
 * minute per address means 60 across the deployment, not 60 per process (OWASP ASVS 2.2.1, 11.1.4).
 */
export function createRateLimitRepository(db: Kysely<Database>) {
  return {
    /**
     * Counts one request against `keyHash` in one statement (an upsert, atomic on both databases):
     * the first request after a window of `windowMs` ended starts a new one. Returns the count
     * in the current window, this request included, and when that window started.
     */
    async increment(keyHash: string, now: number, windowMs: number): Promise<{ count: number; windowStart: number }> {
      const ended = sql<boolean>`${sql.ref('rate_limits.window_start')} <= ${now - windowMs}`;
      const row = await db
        .insertInto('rate_limits')
        .values({ key_hash: keyHash, window_start: now, count: 1 })
        .onConflict((oc) =>
          oc.column('key_hash').doUpdateSet({
            count: sql<number>`case when ${ended} then 1 else ${sql.ref('rate_limits.count')} + 1 end`,
            window_start: sql<number>`case when ${ended} then ${now} else ${sql.ref('rate_limits.window_start')} end`,
          }),
        )
        .returning(['count', 'window_start'])
        .executeTakeFirstOrThrow();
      return { count: Number(row.count), windowStart: Number(row.window_start) };
    },

    /** Housekeeping: deletes counters whose window started before `before`; returns how many. */
    async deleteStartedBefore(before: number): Promise<number> {
      const r = await db.deleteFrom('rate_limits').where('window_start', '<', before).executeTakeFirst();
      return Number(r.numDeletedRows);
    },
  };
}
export type RateLimitRepository = ReturnType<typeof createRateLimitRepository>;

/**
 * The store `@fastify/rate-limit` counts in, over `repository`. `service` keeps each service's
 * budget apart (the idp and the portal share an environment's database). Keys are hashed: the
 * table holds no addresses.
 */
export function databaseRateLimitStore(
  repository: RateLimitRepository,
  clock: Clock,
  service: string,
): FastifyRateLimitStoreCtor {
  return class DatabaseRateLimitStore implements FastifyRateLimitStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ): void {
      const now = clock();
      const keyHash = createHash('sha256').update(`${service}\n${key}`, 'utf8').digest('hex');
      repository.increment(keyHash, now, timeWindow).then(
        ({ count, windowStart }) =>
          callback(null, { current: count, ttl: Math.max(0, windowStart + timeWindow - now) }),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    }

    child(): FastifyRateLimitStore {
      return this;
    }
  };
}
