import { createHmac } from 'node:crypto';
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

/** At most this many addresses are remembered as over their limit in one process (see below). */
const MAX_BLOCKED = 10_000;

interface StoreOptions {
  repository: RateLimitRepository;
  clock: Clock;
  /** Keeps each service's budget apart (the idp and the portal share an environment's database). */
  service: string;
  /** HMAC key of the stored counter keys (`EnvironmentKeys.rateLimitKey`). */
  key: Buffer;
}

/**
 * The store `@fastify/rate-limit` counts in, over `repository`.
 *
 * - Counter keys are HMAC-SHA-256 under a key of the environment: an unkeyed hash of an IPv4
 *   address is reversed by trying all 2^32, so the table would in effect hold the addresses.
 * - A route with a limit of its own (`config.rateLimit`, e.g. the management API's) counts apart
 *   from the global limit of the sign-in forms, as the plugin's own in-memory store does: the
 *   plugin makes that route's store with `child`.
 * - An address found over its limit is refused without touching the database until its window
 *   ends (remembered in this process only, at most MAX_BLOCKED of them): a flood from one address
 *   costs no database write per request.
 */
export function databaseRateLimitStore(options: StoreOptions): FastifyRateLimitStoreCtor {
  const { repository, clock, service, key } = options;
  /** Counter key → when its window ends and the count, for keys already over their limit. */
  const blocked = new Map<string, { until: number; count: number }>();

  function forgetEnded(now: number): void {
    for (const [k, v] of blocked) if (v.until <= now) blocked.delete(k);
  }

  return class DatabaseRateLimitStore implements FastifyRateLimitStore {
    /** The plugin constructs the global store with its options; `child` names a route's scope. */
    constructor(
      _pluginOptions?: unknown,
      private readonly scope = 'global',
    ) {}

    incr(
      requestKey: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
      max: number,
    ): void {
      const now = clock();
      const keyHash = createHmac('sha256', key)
        .update(`${service}\n${this.scope}\n${requestKey}`, 'utf8')
        .digest('hex');
      const known = blocked.get(keyHash);
      if (known && known.until > now) {
        known.count++;
        callback(null, { current: known.count, ttl: known.until - now });
        return;
      }
      if (known) blocked.delete(keyHash);
      repository.increment(keyHash, now, timeWindow).then(
        ({ count, windowStart }) => {
          const until = windowStart + timeWindow;
          if (count > max) {
            if (blocked.size >= MAX_BLOCKED) forgetEnded(now);
            if (blocked.size < MAX_BLOCKED) blocked.set(keyHash, { until, count });
          }
          callback(null, { current: count, ttl: Math.max(0, until - now) });
        },
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    }

    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      // At run time the plugin passes the route's merged limit options with the route as `routeInfo`.
      const { routeInfo, groupId } = routeOptions as unknown as {
        routeInfo?: { method?: unknown; url?: unknown };
        groupId?: unknown;
      };
      return new DatabaseRateLimitStore(
        undefined,
        typeof groupId === 'string'
          ? `group ${groupId}`
          : `route ${String(routeInfo?.method)} ${String(routeInfo?.url)}`,
      );
    }
  };
}
