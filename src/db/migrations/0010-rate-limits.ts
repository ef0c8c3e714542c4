import type { Kysely } from 'kysely';

/**
 * The per-address limit in front of sign-in and every other form (`src/web/rate-limit.ts`), kept
 * in the database so that every node counts against one budget (DESIGN "Storage and scale": all
 * state lives in the database); before, each process counted on its own, so N nodes behind a load
 * balancer allowed N times the limit.
 *
 * `key_hash`: HMAC-SHA-256 of the counter's key (service, address or IPv6 /64, budget) under a key of
 * the environment, so the table keeps no addresses (an unkeyed hash of an IPv4 address is reversed
 * by trying all of them); `window_start` (epoch ms) and `count`: a fixed window, restarted by the
 * first request after it ends. Rows of ended windows are deleted by housekeeping.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('rate_limits')
    .addColumn('key_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('rate_limits_window_start').on('rate_limits').column('window_start').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('rate_limits').execute();
}
