import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Role, UserStatus } from '../../src/accounts/model.ts';
import type { UserRow } from '../../src/accounts/repository.ts';
import { registerManagementApi } from '../../src/admin/api-routes.ts';
import { type AdminService, CLI_PRINCIPAL, createAdminServiceFor, type Principal } from '../../src/admin/service.ts';
import { buildIdp, type EnvironmentRuntime, openEnvironment } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { migrateToLatest, openDatabase } from '../../src/db/database.ts';
import { createStore, type Store } from '../../src/db/store.ts';
import type { Firm } from '../../src/firms/repository.ts';
import { createId } from '../../src/lib/tokens.ts';
import type { OutboxRow } from '../../src/mail/repository.ts';
import { freePorts } from './product-process.ts';
import { createMemoryTransport, createTestClock, type TestClock } from './stack.ts';

export interface AdminStackOptions {
  store?: Store;
  clock?: TestClock;
  /** Listen on a free port at `http://localhost:{port}` (real clients such as the Okta SDK). */
  listen?: boolean;
}

/**
 * An ntf environment whose idp serves the management API: built as `createTestStack` builds it,
 * plus `registerManagementApi` (idempotent, so this holds whether or not `buildIdp` has it).
 */
export async function createAdminStack(options: AdminStackOptions = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'traqs-admin-'));
  const ports = options.listen ? await freePorts(3) : [];
  const [idpPort, portalPort, downloadPort] = ports;
  const idpUrl = idpPort ? `http://localhost:${idpPort}` : undefined;
  const config = loadConfig(
    {
      TRAQS_DATA_DIR: dataDir,
      TRAQS_ENVIRONMENTS: 'ntf',
      ...(idpPort
        ? {
            TRAQS_NTF_IDP_PORT: String(idpPort),
            TRAQS_NTF_IDP_URL: idpUrl,
            TRAQS_NTF_PORTAL_PORT: String(portalPort),
            TRAQS_NTF_PORTAL_URL: `http://localhost:${portalPort}`,
            TRAQS_NTF_DOWNLOAD_PORT: String(downloadPort),
            TRAQS_NTF_DOWNLOAD_URL: `http://localhost:${downloadPort}`,
          }
        : {}),
    },
    { logLevel: 'silent', policy: { authRequestsPerMinutePerIp: 100_000 } },
  );
  const environment = config.environments[0];
  if (!environment) throw new Error('no environment');
  let store = options.store;
  if (!store) {
    const db = openDatabase(':memory:');
    await migrateToLatest(db);
    store = createStore(db);
  }
  // oidc-provider stamps its records with the real time: a listening stack starts at it.
  const clock = options.clock ?? createTestClock(options.listen ? Date.now() : undefined);
  const mail = createMemoryTransport();
  const rt: EnvironmentRuntime = await openEnvironment(config, environment, {
    logger: pino({ level: 'silent' }),
    clock,
    store,
    transport: mail.transport,
  });
  const app = await buildIdp(rt);
  // A no-op once buildIdp registers it itself.
  registerManagementApi(app, rt);
  await app.ready();
  if (idpPort) await app.listen({ port: idpPort, host: '127.0.0.1' });
  const admin: AdminService = createAdminServiceFor(rt);
  const firmA = await rt.accounts.createFirm('Acme Securities');
  const firmB = await rt.accounts.createFirm('Birch Capital');
  if (!firmA.ok || !firmB.ok) throw new Error('firms');
  return {
    rt,
    app,
    admin,
    clock,
    store,
    idpUrl: idpUrl ?? environment.idp.publicUrl,
    firmA: firmA.firm,
    firmB: firmB.firm,
    async close() {
      await app.close();
      await rt.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
export type AdminStack = Awaited<ReturnType<typeof createAdminStack>>;

/**
 * A user inserted straight into the store in a given status (no email, no audit): a target or a
 * staff member for authorization tests.
 */
export async function seedUser(
  s: AdminStack,
  firm: Firm,
  options: { status?: UserStatus; roles?: Role[]; login?: string; password?: boolean } = {},
): Promise<UserRow> {
  const now = s.clock();
  const login = options.login ?? `${createId('u').toLowerCase()}@example.com`;
  const user: UserRow = {
    id: createId('00u'),
    firm_id: firm.id,
    login,
    email: login,
    first_name: 'Grace',
    last_name: 'Hopper',
    mobile_phone: null,
    primary_phone: null,
    preferences: '{}',
    status: options.status ?? 'ACTIVE',
    auth_mode: 'local',
    // Not a real hash: these users never sign in with a password.
    password_hash: options.password === false ? null : '$argon2id$v=19$m=19456,t=2,p=1$c2VlZHNlZWQ$seeded',
    password_changed_at: options.password === false ? null : now,
    recovery_question: 'Seeded question?',
    recovery_answer_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2VlZHNlZWQ$seeded',
    failed_attempts: 0,
    lockout_count: options.status === 'LOCKED_OUT' ? 1 : 0,
    locked_at: options.status === 'LOCKED_OUT' ? now : null,
    last_login_at: null,
    last_factor_type: null,
    created_at: now,
    activated_at: now,
    status_changed_at: now,
  };
  await s.store.repos.users.createUser(user);
  for (const role of new Set<Role>(['user', ...(options.roles ?? [])]))
    await s.store.repos.users.grantRole(user.id, role);
  await s.store.repos.users.assignApp(user.id, 'portal', now);
  return user;
}

/** A staff member of `role` (an SAA in `firm`) and their principal. */
export async function staff(s: AdminStack, role: Role, firm: Firm): Promise<{ user: UserRow; principal: Principal }> {
  const user = await seedUser(s, firm, { roles: role === 'user' ? [] : [role] });
  const principal = await s.admin.principalForUser(user.id, { ip: '198.51.100.9', userAgent: 'AdminConsole/1.0' });
  if (!principal) throw new Error('no principal');
  return { user, principal };
}

/** An SSWS token of `role` (an `saa` token is bound to `firm`). */
export async function apiToken(s: AdminStack, role: Exclude<Role, 'user'>, firm?: Firm): Promise<string> {
  const r = await s.admin.createApiToken(CLI_PRINCIPAL, {
    name: `${role} token`,
    role,
    firmId: role === 'saa' ? (firm?.id ?? null) : null,
  });
  if (!r.ok) throw new Error(r.message);
  return r.value.token;
}

/** The newest outbox messages to an address, newest first. */
export function mailTo(s: AdminStack, address: string): Promise<OutboxRow[]> {
  return s.store.repos.outbox.listRecentMessages(50, address);
}

/** The single link (`…?token=…`) of a message's text part. */
export function linkIn(message: OutboxRow | undefined, path: string): string {
  const m = new RegExp(`https?://\\S+${path}\\?token=[^\\s&]+`).exec(message?.text_body ?? '');
  if (!m) throw new Error(`no ${path} link in ${message?.template ?? 'no message'}`);
  return m[0];
}

export function tokenOf(url: string): string {
  return new URL(url).searchParams.get('token') ?? '';
}
