import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import {
  type Expression,
  Kysely,
  Migrator,
  PostgresDialect,
  type RawBuilder,
  type SqliteDatabase,
  SqliteDialect,
  sql,
} from 'kysely';
import pg from 'pg';
import * as m0001 from './migrations/0001-initial.ts';
import * as m0002 from './migrations/0002-oauth.ts';
import * as m0003 from './migrations/0003-api-tokens.ts';
import * as m0004 from './migrations/0004-reference-data.ts';
import * as m0005 from './migrations/0005-admin.ts';
import * as m0006 from './migrations/0006-webauthn.ts';
import * as m0007 from './migrations/0007-portal-download-token.ts';
import * as m0008 from './migrations/0008-push.ts';
import * as m0009 from './migrations/0009-federation.ts';
import * as m0010 from './migrations/0010-rate-limits.ts';
import type { Database } from './schema.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  /** Where the data lives, for messages (never includes a password). */
  location: string;
  /** The PostgreSQL schema every unqualified name resolves to, when not the server's default. */
  schema?: string;
  destroy(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** PostgreSQL only: the schema to work in (`search_path`), e.g. one isolated schema per test. */
  schema?: string;
}

/**
 * A PostgreSQL URL without our own `schema` query parameter, and that schema: several nodes (or a
 * test) can share one schema of a database through `DATABASE_URL=postgres://…/db?schema=name`.
 */
export function splitPostgresUrl(url: string): { url: string; schema?: string } {
  const q = url.indexOf('?');
  if (q < 0) return { url };
  const params = new URLSearchParams(url.slice(q + 1));
  const schema = params.get('schema') ?? undefined;
  params.delete('schema');
  const rest = params.toString();
  return { url: url.slice(0, q) + (rest ? `?${rest}` : ''), ...(schema ? { schema } : {}) };
}

/** `postgres://` / `postgresql://` URLs select PostgreSQL; anything else is a SQLite file path. */
export function openDatabase(urlOrPath: string, options: OpenDatabaseOptions = {}): Db {
  if (/^postgres(ql)?:\/\//.test(urlOrPath)) {
    const split = splitPostgresUrl(urlOrPath);
    urlOrPath = split.url;
    const schema = options.schema ?? split.schema;
    // Passed unquoted in the startup packet's `options`, so only plain identifiers are accepted.
    if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new Error(`Invalid PostgreSQL schema name: ${schema}`);
    }
    const pool = new pg.Pool({
      connectionString: urlOrPath,
      max: 10,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
      // int8 (epoch milliseconds) and numeric counts as JS numbers: all fit in 2^53.
      types: {
        getTypeParser: ((oid: number, format?: string) =>
          oid === 20
            ? (v: string) => Number(v)
            : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
      },
    });
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const safe = urlOrPath.replace(/\/\/[^@/]*@/, '//***@');
    return { kysely, dialect: 'postgres', location: safe, schema, destroy: () => kysely.destroy() };
  }
  const file = urlOrPath === ':memory:' ? urlOrPath : resolve(urlOrPath);
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.function(SQLITE_SHA256_HEX, { deterministic: true }, (value: unknown) =>
    typeof value === 'string' ? createHash('sha256').update(value, 'utf8').digest('hex') : null,
  );
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  return { kysely, dialect: 'sqlite', location: file, destroy: () => kysely.destroy() };
}

/** SQLite has no SHA-256: each connection gets this function (`openDatabase`). */
const SQLITE_SHA256_HEX = 'traqs_sha256_hex';

/**
 * Lower-case hex SHA-256 of a text's UTF-8 bytes, in SQL: the same value as `hashBearerSecret`, so
 * a query can join a row to another keyed by the hash of one of its columns (a refresh token to its
 * grant, `src/oauth/repository.ts`). PostgreSQL 11 and later have `sha256`.
 */
export function sha256HexSql(dialect: Dialect, text: Expression<string | null>): RawBuilder<string | null> {
  return dialect === 'postgres'
    ? sql<string | null>`encode(sha256(convert_to(${text}, 'UTF8')), 'hex')`
    : sql<string | null>`${sql.raw(SQLITE_SHA256_HEX)}(${text})`;
}

/**
 * A JSON array of a subquery's single column, in SQL, or `[]` when it has no rows. PostgreSQL's
 * driver hands back the parsed array, SQLite's the JSON text: read it with `jsonArrayOf`.
 */
export function jsonArraySql(dialect: Dialect, column: Expression<string>): RawBuilder<unknown> {
  return dialect === 'postgres'
    ? sql<unknown>`coalesce(json_agg(${column}), '[]'::json)`
    : sql<unknown>`json_group_array(${column})`;
}

/** The strings of what `jsonArraySql` returned, on either database. */
export function jsonArrayOf(value: unknown): string[] {
  const array: unknown = typeof value === 'string' ? JSON.parse(value) : value;
  if (!Array.isArray(array)) throw new TypeError('Expected a JSON array from the database');
  return array.filter((v): v is string => typeof v === 'string');
}

/** Distinct SQL texts kept prepared; the code issues far fewer, this only bounds odd `in (…)` lists. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely's SQLite driver prepares (compiles) every statement again on each execution; that was a
 * sixth of the idp's main-thread time per sign-in (bench/signin.ts). Kysely's SQL is parameterised,
 * so one prepared statement per SQL text is reused. A statement still busy (an open `iterate`) is
 * never handed out twice: a fresh one is prepared instead.
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql) {
      const cached = cache.get(sql);
      if (cached && !cached.busy) return cached;
      const stmt = sqlite.prepare(sql);
      if (!cached) {
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value ?? '');
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}

/** The SQLite file of one environment under the data directory. */
export function sqlitePathFor(dataDir: string, environmentId: string): string {
  return join(dataDir, `${environmentId}.db`);
}

const migrations = {
  '0001-initial': m0001,
  '0002-oauth': m0002,
  '0003-api-tokens': m0003,
  '0004-reference-data': m0004,
  '0005-admin': m0005,
  '0006-webauthn': m0006,
  '0007-portal-download-token': m0007,
  '0008-push': m0008,
  '0009-federation': m0009,
  '0010-rate-limits': m0010,
};

/** Applies every pending migration; throws with the failing migration's name. */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const migrator = new Migrator({
    db: db.kysely,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'traqs_migrations',
    migrationLockTableName: 'traqs_migrations_lock',
    // Kysely looks for its tables in every schema unless told which one: without this, a
    // `traqs_migrations` in `public` would hide the missing one in `db.schema`.
    migrationTableSchema: db.schema,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`Migration ${failed} failed: ${(error as Error).message}`);
  }
  return (results ?? []).map((r) => r.migrationName);
}
