import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { createUserRepository } from '../accounts/repository.ts';
import { createManagementTokenRepository } from '../admin/management-token-repository.ts';
import { createAdminQueryRepository } from '../admin/query-repository.ts';
import { createRequestRepository } from '../admin/request-repository.ts';
import { createAuditRepository } from '../audit/repository.ts';
import { createFactorRepository } from '../authn/factors/repository.ts';
import { createTokenRepository } from '../authn/token-repository.ts';
import { createFederationRepository } from '../federation/repository.ts';
import { createFirmRepository } from '../firms/repository.ts';
import { createOutboxRepository } from '../mail/repository.ts';
import { createApiTokenRepository } from '../oauth/refresh-token-repository.ts';
import { createOauthRepository } from '../oauth/repository.ts';
import { createPortalSessionRepository } from '../portal/session-repository.ts';
import { createRefdataRepository } from '../refdata/repository.ts';
import { createReportRepository } from '../reports/repository.ts';
import { createRateLimitRepository } from '../web/rate-limit.ts';
import type { Db, Dialect } from './database.ts';
import type { Database } from './schema.ts';
import { createSettingsRepository } from './settings-repository.ts';

function createRepositories(db: Kysely<Database>, dialect: Dialect) {
  return {
    firms: createFirmRepository(db),
    users: createUserRepository(db),
    factors: createFactorRepository(db),
    tokens: createTokenRepository(db),
    outbox: createOutboxRepository(db, dialect),
    audit: createAuditRepository(db),
    settings: createSettingsRepository(db),
    reports: createReportRepository(db),
    oauth: createOauthRepository(db, dialect),
    apiTokens: createApiTokenRepository(db),
    portalSessions: createPortalSessionRepository(db),
    refdata: createRefdataRepository(db),
    requests: createRequestRepository(db),
    managementTokens: createManagementTokenRepository(db),
    adminQueries: createAdminQueryRepository(db),
    federation: createFederationRepository(db),
    rateLimits: createRateLimitRepository(db),
  };
}
export type Repositories = ReturnType<typeof createRepositories>;

/** The repositories over one database, and a way to run several of their operations atomically. */
export interface Store {
  readonly dialect: Dialect;
  readonly repos: Repositories;
  /** Runs `work` in one transaction: all of its writes (state and outbox mail) commit or none do. */
  transaction<T>(work: (repos: Repositories) => Promise<T>): Promise<T>;
  /**
   * Runs `work` while no other process runs work under the same `name` on this database: a
   * PostgreSQL session advisory lock, held on a connection of its own while `work` uses the
   * others. Several nodes starting at once on an empty database must not all create the first
   * firm and administrator. A SQLite file serves one process: there, callers on the same file take
   * turns within the process.
   */
  exclusive<T>(name: string, work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A 64-bit advisory lock key from a name (the first 8 bytes of its SHA-256, signed). */
function advisoryLockKey(name: string): string {
  return createHash('sha256').update(`traqs:${name}`, 'utf8').digest().readBigInt64BE(0).toString();
}

/** SQLite: the tail of each file-and-name's queue of `exclusive` calls in this process. */
const sqliteTurns = new Map<string, Promise<unknown>>();

async function inTurn<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = sqliteTurns.get(key) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(work);
  const tail = mine.catch(() => undefined);
  sqliteTurns.set(key, tail);
  try {
    return await mine;
  } finally {
    if (sqliteTurns.get(key) === tail) sqliteTurns.delete(key);
  }
}

export function createStore(db: Db): Store {
  return {
    dialect: db.dialect,
    repos: createRepositories(db.kysely, db.dialect),
    transaction: (work) => db.kysely.transaction().execute((trx) => work(createRepositories(trx, db.dialect))),
    exclusive: (name, work) => {
      if (db.dialect !== 'postgres') return inTurn(`${db.location}\n${name}`, work);
      // Advisory locks are per database; the schema keeps deployments sharing one apart.
      const key = advisoryLockKey(`${db.schema ?? ''}:${name}`);
      return db.kysely.connection().execute(async (connection) => {
        await sql`select pg_advisory_lock(${key}::bigint)`.execute(connection);
        try {
          return await work();
        } finally {
          // A lost connection has released the lock with its session: that must not turn work
          // that succeeded into a failure.
          await sql`select pg_advisory_unlock(${key}::bigint)`.execute(connection).catch(() => undefined);
        }
      });
    },
    close: () => db.destroy(),
  };
}
