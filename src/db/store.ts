import type { Kysely } from 'kysely';
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
  close(): Promise<void>;
}

export function createStore(db: Db): Store {
  return {
    dialect: db.dialect,
    repos: createRepositories(db.kysely, db.dialect),
    transaction: (work) => db.kysely.transaction().execute((trx) => work(createRepositories(trx, db.dialect))),
    close: () => db.destroy(),
  };
}
