import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe } from 'vitest';
import { type Db, type Dialect, migrateToLatest, openDatabase } from '../../src/db/database.ts';
import { createStore, type Store } from '../../src/db/store.ts';

/** The PostgreSQL server the suites use; each test works in its own schema of this database. */
export const TEST_POSTGRES_URL = process.env.TRAQS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export type Availability = { ok: true } | { ok: false; reason: string };

/** Whether the test PostgreSQL server answers a query within `timeoutMs`. Never throws. */
export async function postgresAvailability(url = TEST_POSTGRES_URL, timeoutMs = 2000): Promise<Availability> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { ok: true };
  } catch (error) {
    const safeUrl = url.replace(/\/\/[^@/]*@/, '//***@');
    return { ok: false, reason: `${safeUrl}: ${(error as Error).message || String(error)}` };
  } finally {
    await client.end().catch(() => {});
  }
}

/** One fresh, migrated database, owned by one test (or one describe block). */
export interface TestDatabase {
  readonly dialect: Dialect;
  readonly store: Store;
  /** The Kysely handle under `store`, for tests of database helpers below the repositories. */
  readonly db: Db;
  /** PostgreSQL: the schema this database is (for a server process given `?schema=`). */
  readonly schema?: string;
  /**
   * Another store on the same database through its own connection (SQLite) or pool (PostgreSQL),
   * as a second node of a cluster would have. Closed with the database.
   */
  connectAgain(): Store;
  /** Closes every store and deletes the database (the temp file, or the schema). */
  dispose(): Promise<void>;
}

export interface Backend {
  readonly dialect: Dialect;
  /** Why this backend cannot run here, if it cannot. */
  availability(): Promise<Availability>;
  createDatabase(): Promise<TestDatabase>;
}

/**
 * A temp file rather than `:memory:`, so WAL mode, a second connection and real file locking are
 * exercised as in production.
 */
const sqliteBackend: Backend = {
  dialect: 'sqlite',
  availability: async () => ({ ok: true }),
  async createDatabase() {
    const dir = mkdtempSync(join(tmpdir(), 'traqs-test-'));
    const file = join(dir, 'traqs.db');
    const stores: Store[] = [];
    const open = (): Store => {
      const store = createStore(openDatabase(file));
      stores.push(store);
      return store;
    };
    try {
      const db = openDatabase(file);
      const store = createStore(db);
      stores.push(store);
      await migrateToLatest(db);
      return {
        dialect: 'sqlite',
        store,
        db,
        connectAgain: open,
        dispose: async () => {
          try {
            await closeAll(stores);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      };
    } catch (error) {
      await closeAll(stores).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  },
};

let postgresCheck: Promise<Availability> | undefined;

/**
 * A random schema per database: test files run in parallel forks against one server, so names
 * must not collide, and each schema is dropped even when its test failed.
 */
const postgresBackend: Backend = {
  dialect: 'postgres',
  availability: () => {
    postgresCheck ??= postgresAvailability();
    return postgresCheck;
  },
  async createDatabase() {
    const schema = `t_${randomBytes(8).toString('hex')}`;
    await adminQuery(`CREATE SCHEMA ${schema}`);
    const stores: Store[] = [];
    const open = (): Store => {
      const store = createStore(openDatabase(TEST_POSTGRES_URL, { schema }));
      stores.push(store);
      return store;
    };
    const drop = async () => {
      try {
        await closeAll(stores);
      } finally {
        await withCatalogLock('exclusive', (client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      }
    };
    try {
      const db = openDatabase(TEST_POSTGRES_URL, { schema });
      const store = createStore(db);
      stores.push(store);
      await withCatalogLock('shared', () => migrateToLatest(db));
      return { dialect: 'postgres', store, db, schema, connectAgain: open, dispose: drop };
    } catch (error) {
      await drop().catch(() => {});
      throw error;
    }
  },
};

async function adminQuery(statement: string): Promise<void> {
  await withAdminClient((client) => client.query(statement));
}

async function withAdminClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Advisory lock key shared by every test process on the server ("traq"). */
const CATALOG_LOCK = 0x74726171;

/**
 * Kysely's migrator introspects the tables of every schema (`pg_get_serial_sequence` by name),
 * which fails with "schema … does not exist" when another test process drops its schema at that
 * moment. Migrations hold this lock shared and drops hold it exclusive, across all processes.
 * It is a session lock, released when the client disconnects.
 */
function withCatalogLock<T>(mode: 'shared' | 'exclusive', work: (client: pg.Client) => Promise<T>): Promise<T> {
  return withAdminClient(async (client) => {
    await client.query(mode === 'shared' ? 'SELECT pg_advisory_lock_shared($1)' : 'SELECT pg_advisory_lock($1)', [
      CATALOG_LOCK,
    ]);
    return work(client);
  });
}

async function closeAll(stores: Store[]): Promise<void> {
  const results = await Promise.allSettled(stores.splice(0).map((s) => s.close()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Both storage backends; every repository must behave the same on each. */
export function backends(): readonly Backend[] {
  return [sqliteBackend, postgresBackend];
}

/** One warning per test file is enough to notice; one per block would bury the results. */
let warned = false;

/** What a suite body sees: the current test's database. */
export interface BackendHandle {
  readonly dialect: Dialect;
  /** The store of the current test's fresh database (of the block's, with `fresh: 'suite'`). */
  store(): Store;
  /** The Kysely handle under `store()`. */
  db(): Db;
  /** A second, independent store on the same database (a second node). */
  connectAgain(): Store;
}

export interface DescribeEachBackendOptions {
  /** A fresh database for every test (default), or one shared by the whole block. */
  fresh?: 'test' | 'suite';
}

/**
 * Declares `body` once per backend, as `name [sqlite]` and `name [postgres]`. An unreachable
 * PostgreSQL skips its block with a warning locally, and fails it when `CI` is set, so a
 * misconfigured pipeline cannot pass by testing SQLite alone.
 */
export function describeEachBackend(
  name: string,
  body: (backend: BackendHandle) => void,
  options: DescribeEachBackendOptions = {},
): void {
  const fresh = options.fresh ?? 'test';
  for (const backend of backends()) {
    describe(`${name} [${backend.dialect}]`, () => {
      let unavailable: string | undefined;
      let current: TestDatabase | undefined;

      beforeAll(async () => {
        const availability = await backend.availability();
        if (!availability.ok) {
          if (process.env.CI) {
            throw new Error(`PostgreSQL is required in CI but unreachable: ${availability.reason}`);
          }
          unavailable = availability.reason;
          if (!warned) console.warn(`PostgreSQL suite skipped: ${availability.reason}`);
          warned = true;
          return;
        }
        if (fresh === 'suite') current = await backend.createDatabase();
      });
      afterAll(async () => {
        if (fresh === 'suite') await current?.dispose();
        current = undefined;
      });
      beforeEach(async (context) => {
        if (unavailable !== undefined) context.skip(`PostgreSQL unavailable: ${unavailable}`);
        if (fresh === 'test') current = await backend.createDatabase();
      });
      afterEach(async () => {
        if (fresh !== 'test') return;
        const database = current;
        current = undefined;
        await database?.dispose();
      });

      const requireCurrent = (): TestDatabase => {
        if (!current) throw new Error('No test database: call store() inside a test or a hook');
        return current;
      };
      body({
        dialect: backend.dialect,
        store: () => requireCurrent().store,
        db: () => requireCurrent().db,
        connectAgain: () => requireCurrent().connectAgain(),
      });
    });
  }
}
