import { APPS, type App, type AuthMode, ROLES, type Role, type UserStatus } from '../accounts/model.ts';
import type { UserRow } from '../accounts/repository.ts';
import { type AccountService, isValidEmail } from '../accounts/service.ts';
import type { AuditRow } from '../audit/repository.ts';
import { issueEmailLink } from '../authn/email-links.ts';
import { deleteFactorWithCompanions, type PushFactor } from '../authn/factors/push/push.ts';
import type { FactorRow } from '../authn/factors/repository.ts';
import type { Config, EnvironmentConfig } from '../config/schema.ts';
import type { Repositories, Store } from '../db/store.ts';
import type { MetadataChange } from '../federation/model.ts';
import type { AddIdentityProviderInput, FederationService, IdentityProviderView } from '../federation/service.ts';
import {
  type Clock,
  constantTimeEqual,
  createBearerSecret,
  createId,
  hashBearerSecret,
  type RandomBytes,
} from '../lib/tokens.ts';
import type { Notifier } from '../mail/notifications.ts';
import type { AdminTeam } from '../mail/templates.ts';
import type { ApiRefreshTokenRow } from '../oauth/refresh-token-repository.ts';
import { describeMethod } from '../profile/describe.ts';
import type { ManagementTokenRow } from './management-token-repository.ts';
import { decideAccess, limitedToOwnFirm, type Permission } from './permissions.ts';
import type { AuditPageQuery, ConditionSet, ReportRow, UserColumn } from './query-repository.ts';
import type { AdminRequestRow, RequestKind, RequestStatus } from './request-repository.ts';

/**
 * Who is acting: a signed-in staff member (console), a management API token, or the operator's
 * shell (CLI: no id). `firmId` limits an SAA to its firm. `ip` and `userAgent` go to the audit log.
 */
export interface Principal {
  userId?: string;
  apiTokenId?: string;
  roles: readonly Role[];
  firmId: string | null;
  ip?: string | null;
  userAgent?: string | null;
  /** How the action arrived, recorded with it: `console`, `api`, `cli`. */
  via?: 'console' | 'api' | 'cli';
}

/** The operator at the command line: every permission, recorded as the system (no actor id). */
export const CLI_PRINCIPAL: Principal = { roles: ['admin'], firmId: null, via: 'cli' };

export type AdminErrorCode = 'DENIED' | 'NOT_FOUND' | 'INVALID_STATE' | 'INVALID_INPUT' | 'CONFLICT';

/** A refused or impossible action: a result, never an exception (CONVENTIONS 5). */
export interface AdminFailure {
  ok: false;
  code: AdminErrorCode;
  message: string;
  /** Per-field problems for INVALID_INPUT (`field: what is wrong`). */
  causes?: string[];
}
export type AdminResult<T> = { ok: true; value: T } | AdminFailure;

/** A user as the consoles and the management API show them. */
export interface AdminUserView {
  id: string;
  login: string;
  email: string;
  firstName: string;
  lastName: string;
  mobilePhone: string | null;
  primaryPhone: string | null;
  firmId: string;
  firmName: string | null;
  status: UserStatus;
  authMode: AuthMode;
  createdAt: number;
  activatedAt: number | null;
  statusChangedAt: number;
  lastLoginAt: number | null;
  passwordChangedAt: number | null;
  hasPassword: boolean;
  /** The question, never the answer. */
  recoveryQuestion: string | null;
  hasRecoveryQuestion: boolean;
  /** Locked too many times in a row: only support or Operations can unlock. */
  supportOnlyUnlock: boolean;
  /** The kinds of sign-in methods enrolled (active), e.g. "Google Authenticator". */
  methods: { factorType: string; provider: string; label: string }[];
  apps: App[];
  roles: Role[];
}

export interface FactorView {
  id: string;
  factorType: string;
  provider: string;
  name: string;
  status: string;
  createdAt: number;
  activatedAt: number | null;
  lastUsedAt: number | null;
}

export interface RefreshTokenView {
  /** The SHA-256 of the token (never the token): what `revokeRefreshToken` takes. */
  id: string;
  label: string;
  clientId: string;
  createdAt: number;
  expiresAt: number;
  lastUsedAt: number | null;
  lastUsedIp: string | null;
  revokedAt: number | null;
  revokedReason: string | null;
}

export interface NewUserRequestPayload {
  email: string;
  firstName: string;
  lastName: string;
  apps: App[];
}

export interface RequestView {
  id: string;
  firmId: string;
  kind: RequestKind;
  /** `new_user`: who to create. `deactivate`: `{ userId, login, reason }`. */
  payload: Record<string, unknown>;
  targetUserId: string | null;
  requestedBy: string;
  status: RequestStatus;
  decidedBy: string | null;
  reason: string | null;
  createdAt: number;
  decidedAt: number | null;
}

export interface ReportView {
  id: string;
  userId: string;
  userLogin: string | null;
  userName: string | null;
  createdAt: number;
  /** The notification the report came from (template name). */
  source: string;
  ip: string | null;
  userAgent: string | null;
  status: 'open' | 'closed';
  closedAt: number | null;
  closedBy: string | null;
  note: string | null;
}

export interface SignOutSummary {
  sessionsEnded: number;
  portalSessionsEnded: number;
  refreshTokensRevoked: number;
}

export interface ApiTokenView {
  id: string;
  name: string;
  role: Role;
  firmId: string | null;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface UserListQuery {
  /** Only this firm; an SAA always sees its own firm only. */
  firmId?: string;
  status?: UserStatus;
  filter?: ConditionSet<UserColumn>;
  /** First name, last name or email starting with this (Okta's `q`). */
  q?: string;
  /** Users with an id after this one (pagination). */
  afterId?: string;
  /** Default 200, at most 200. */
  limit?: number;
}

export interface PersonalInfoPatch {
  firstName?: string;
  lastName?: string;
  email?: string;
  mobilePhone?: string | null;
  primaryPhone?: string | null;
}

/** Application names as users know them (emails). */
const APP_LABELS: Readonly<Record<App, string>> = {
  portal: 'the TRAQS website',
  download: 'API Download (programmatic access)',
};

/** Statuses from which Okta's lifecycle operations start (Okta's rules, TRAQS additions noted). */
const SUSPENDABLE: readonly UserStatus[] = ['ACTIVE', 'LOCKED_OUT', 'RECOVERY', 'PASSWORD_EXPIRED'];
const DEACTIVATABLE: readonly UserStatus[] = [
  'STAGED',
  'PROVISIONED',
  'ACTIVE',
  'RECOVERY',
  'LOCKED_OUT',
  'PASSWORD_EXPIRED',
  'SUSPENDED',
];
const PASSWORD_RESETTABLE: readonly UserStatus[] = ['ACTIVE', 'LOCKED_OUT', 'RECOVERY', 'PASSWORD_EXPIRED'];
const MODE_SWITCHABLE: readonly UserStatus[] = [
  'STAGED',
  'PROVISIONED',
  'ACTIVE',
  'RECOVERY',
  'LOCKED_OUT',
  'PASSWORD_EXPIRED',
];

const MAX_NOTE = 1000;

/** Thrown inside a transaction to roll it back with a result for the caller. */
class Rollback extends Error {
  constructor(readonly failure: AdminFailure) {
    super(failure.message);
  }
}

function fail(code: AdminErrorCode, message: string, causes?: string[]): AdminFailure {
  return { ok: false, code, message, ...(causes ? { causes } : {}) };
}

function parsePayload(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function requestView(row: AdminRequestRow): RequestView {
  return {
    id: row.id,
    firmId: row.firm_id,
    kind: row.kind as RequestKind,
    payload: parsePayload(row.payload),
    targetUserId: row.target_user_id,
    requestedBy: row.requested_by,
    status: row.status as RequestStatus,
    decidedBy: row.decided_by,
    reason: row.reason,
    createdAt: row.created_at,
    decidedAt: row.decided_at,
  };
}

function factorView(f: FactorRow): FactorView {
  return {
    id: f.id,
    factorType: f.factor_type,
    provider: f.provider,
    name: f.name,
    status: f.status,
    createdAt: f.created_at,
    activatedAt: f.activated_at,
    lastUsedAt: f.last_used_at,
  };
}

function refreshTokenView(r: ApiRefreshTokenRow): RefreshTokenView {
  return {
    id: r.id_hash,
    label: r.label,
    clientId: r.client_id,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    lastUsedAt: r.last_used_at,
    lastUsedIp: r.last_used_ip,
    revokedAt: r.revoked_at,
    revokedReason: r.revoked_reason,
  };
}

function apiTokenView(r: ManagementTokenRow): ApiTokenView {
  return {
    id: r.id,
    name: r.name,
    role: r.role as Role,
    firmId: r.firm_id,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

function methodLabel(factorType: string, provider: string): string {
  return describeMethod({ factorType: `${factorType}:${provider}` }) ?? factorType;
}

/** Trims a name; problems as causes. */
function checkName(field: string, value: string | undefined, causes: string[]): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!v || v.length > 100) causes.push(`${field}: required, at most 100 characters.`);
  return v;
}

function checkPhone(field: string, value: string | null | undefined, causes: string[]): string | null | undefined {
  if (value === undefined || value === null) return value;
  const v = value.trim();
  if (v.length > 40 || !/^[0-9+()./\- x]*$/i.test(v))
    causes.push(`${field}: at most 40 digits, spaces and + ( ) - . /`);
  return v || null;
}

/**
 * The administration backend (issue #7): one function per administrative action, each taking the
 * acting principal and enforcing the authorization matrix (`permissions.ts`) itself, so the
 * consoles, the management API and the CLI share one set of rules. Every change is one
 * transaction: the state, its audit event and the email the affected user expects. A refusal is
 * a result (`{ ok: false, code: 'DENIED' }`), audited with outcome `denied`.
 */
/** What the administration service works with; an `EnvironmentRuntime` (`src/app.ts`) has all of it. */
export interface AdminServiceDeps {
  store: Store;
  config: Readonly<Config>;
  environment: Readonly<EnvironmentConfig>;
  clock: Clock;
  random: RandomBytes;
  notifier: Notifier;
  accounts: AccountService;
  /** Firms' identity providers (issue #8); absent, the identity-provider actions are refused. */
  federation?: FederationService;
  /** Push: a factor reset ends the removed devices' event streams at once. */
  push?: PushFactor;
}

/** The identity providers and the firms they may be added to (the console's "Firm single sign-on"). */
export interface IdentityProviderOverview {
  providers: (IdentityProviderView & { firmName: string | null })[];
  firms: { id: string; name: string }[];
}

export function createAdminService(deps: AdminServiceDeps) {
  const { store, clock, notifier, config } = deps;
  const policy = config.policy;
  const programmaticUrl = `${deps.environment.portal.publicUrl}/api/programmatic`;

  const actorIdOf = (p: Principal) => p.userId ?? p.apiTokenId ?? null;
  const federationActorOf = (p: Principal) => ({
    actorId: actorIdOf(p),
    ip: p.ip ?? null,
    userAgent: p.userAgent ?? null,
    via: p.via ?? 'cli',
  });

  /** Who the audit log and the emails name as having done it. */
  function teamOf(p: Principal, natural: AdminTeam): AdminTeam {
    if (p.roles.includes(natural) || p.roles.includes('admin')) return natural;
    return natural === 'support' ? 'operations' : 'support';
  }

  function record(
    repos: Repositories,
    p: Principal,
    action: string,
    outcome: 'success' | 'failure' | 'denied',
    targetId: string | null,
    details: Record<string, unknown> = {},
  ) {
    return repos.audit.recordEvent({
      at: clock(),
      actorId: actorIdOf(p),
      action,
      targetId,
      outcome,
      ip: p.ip ?? null,
      userAgent: p.userAgent ?? null,
      details: { ...(p.via ? { via: p.via } : {}), ...details },
    });
  }

  async function deny(
    p: Principal,
    action: string,
    permission: Permission,
    reason: string,
    targetId: string | null,
    extra: Record<string, unknown> = {},
  ): Promise<AdminFailure> {
    await store.transaction((repos) =>
      record(repos, p, action, 'denied', targetId, { permission, roles: [...p.roles], reason, ...extra }),
    );
    return fail('DENIED', 'You do not have permission to perform the requested action.');
  }

  /** Loads a user by id or username (Okta accepts either in a path). */
  async function findUser(repos: Repositories, ref: string): Promise<UserRow | undefined> {
    if (!ref || ref.length > 254) return undefined;
    return (await repos.users.findUserById(ref)) ?? (await repos.users.findUserByLogin(ref));
  }

  /**
   * Checks `permission` for an action on the user `ref`. An SAA asking about a user outside its
   * firm, or about nobody, is denied alike (no existence oracle); others get NOT_FOUND.
   */
  async function authorizeOnUser(
    p: Principal,
    permission: Permission,
    action: string,
    ref: string,
  ): Promise<AdminResult<UserRow>> {
    const user = await findUser(store.repos, ref);
    const roles = user ? await store.repos.users.listRoles(user.id) : undefined;
    const decision = decideAccess(p, permission, { firmId: user?.firm_id ?? null, ...(roles ? { roles } : {}) });
    if (!decision.allowed) return deny(p, action, permission, decision.reason, user?.id ?? null, user ? {} : { ref });
    if (!user) return fail('NOT_FOUND', 'Not found: Resource not found');
    return { ok: true, value: user };
  }

  /** Checks a permission that is not about one user (lists, the queue, the log). */
  async function authorize(
    p: Principal,
    permission: Permission,
    action: string,
    target?: { firmId: string | null },
  ): Promise<AdminFailure | null> {
    const decision = decideAccess(p, permission, target);
    return decision.allowed
      ? null
      : deny(p, action, permission, decision.reason, null, target ? { firmId: target.firmId } : {});
  }

  type Work<T> = (
    repos: Repositories,
    user: UserRow,
    now: number,
  ) => Promise<{ value: T; details?: Record<string, unknown> } | AdminFailure>;

  /**
   * Runs one change on one user: authorization, then state + audit + email in one transaction.
   * A failure inside rolls everything back and is audited as `failure`.
   */
  async function changeUser<T>(
    p: Principal,
    permission: Permission,
    action: string,
    ref: string,
    work: Work<T>,
  ): Promise<AdminResult<T>> {
    const allowed = await authorizeOnUser(p, permission, action, ref);
    if (!allowed.ok) return allowed;
    const userId = allowed.value.id;
    try {
      return await store.transaction(async (repos) => {
        const user = await repos.users.findUserById(userId);
        if (!user) throw new Rollback(fail('NOT_FOUND', 'Not found: Resource not found'));
        const r = await work(repos, user, clock());
        if ('ok' in r) throw new Rollback(r);
        await record(repos, p, action, 'success', user.id, r.details ?? {});
        return { ok: true as const, value: r.value };
      });
    } catch (err) {
      if (!(err instanceof Rollback)) throw err;
      await store.transaction((repos) =>
        record(repos, p, action, 'failure', userId, { code: err.failure.code, reason: err.failure.message }),
      );
      return err.failure;
    }
  }

  /** Ends every way the user is signed in: idp and portal sessions, sign-ins under way, refresh tokens. */
  async function signOutIn(
    repos: Repositories,
    userId: string,
    now: number,
    refreshReason: string | null,
  ): Promise<SignOutSummary> {
    const sessionsEnded = await repos.tokens.revokeUserSessions(userId, now);
    await repos.tokens.endUserTransactions(userId, now);
    const portalSessionsEnded = await repos.portalSessions.revokeAllOfUser(userId, now);
    const refreshTokensRevoked = refreshReason
      ? (await repos.apiTokens.revokeAllOfUser(userId, now, refreshReason)).length
      : 0;
    return { sessionsEnded, portalSessionsEnded, refreshTokensRevoked };
  }

  /**
   * After a change that removed factors has committed: their push devices' event streams end at
   * once, on whichever node holds them (`PushFactor.factorsRemoved`).
   */
  function afterFactorsRemoved<T>(removed: (value: T) => readonly Pick<FactorRow, 'id' | 'factor_type'>[]) {
    return async (r: AdminResult<T>): Promise<AdminResult<T>> => {
      if (r.ok) await deps.push?.factorsRemoved(removed(r.value));
      return r;
    };
  }

  async function deleteAllFactors(repos: Repositories, userId: string): Promise<FactorRow[]> {
    const factors = await repos.factors.listFactors(userId);
    for (const f of factors) await repos.factors.deleteFactor(userId, f.id);
    return factors;
  }

  /** Emailed links that must not outlive the change (deactivation, switch to federated). */
  async function revokeEmailLinks(repos: Repositories, userId: string, now: number): Promise<void> {
    for (const purpose of ['activation', 'recovery_password', 'recovery_unlock'] as const) {
      await repos.tokens.revokeEmailTokens(userId, purpose, now);
    }
  }

  async function deactivateIn(repos: Repositories, p: Principal, user: UserRow, now: number) {
    if (!(await repos.users.transitionStatus(user.id, DEACTIVATABLE, 'DEPROVISIONED', now))) {
      return fail('INVALID_STATE', `The user is ${user.status}: already deactivated.`);
    }
    const ended = await signOutIn(repos, user.id, now, 'deactivated');
    await revokeEmailLinks(repos, user.id, now);
    // A STAGED user was never told about the account; everyone else hears of its end.
    if (user.status !== 'STAGED') await notifier.accountDeactivated(repos, user, teamOf(p, 'operations'));
    return { value: undefined, details: { from: user.status, ...ended } };
  }

  async function viewUsers(repos: Repositories, users: UserRow[]): Promise<AdminUserView[]> {
    const ids = users.map((u) => u.id);
    const [methods, apps, roles] = await Promise.all([
      repos.adminQueries.activeFactorKinds(ids),
      repos.adminQueries.appsOf(ids),
      repos.adminQueries.rolesOf(ids),
    ]);
    const firmNames = new Map<string, string | null>();
    for (const firmId of new Set(users.map((u) => u.firm_id))) {
      firmNames.set(firmId, (await repos.firms.findFirmById(firmId))?.name ?? null);
    }
    return users.map((u) => ({
      id: u.id,
      login: u.login,
      email: u.email,
      firstName: u.first_name,
      lastName: u.last_name,
      mobilePhone: u.mobile_phone,
      primaryPhone: u.primary_phone,
      firmId: u.firm_id,
      firmName: firmNames.get(u.firm_id) ?? null,
      status: u.status as UserStatus,
      authMode: u.auth_mode as AuthMode,
      createdAt: u.created_at,
      activatedAt: u.activated_at,
      statusChangedAt: u.status_changed_at,
      lastLoginAt: u.last_login_at,
      passwordChangedAt: u.password_changed_at,
      hasPassword: u.password_hash !== null,
      recoveryQuestion: u.recovery_question,
      hasRecoveryQuestion: u.recovery_answer_hash !== null,
      supportOnlyUnlock: u.status === 'LOCKED_OUT' && u.lockout_count >= policy.lockoutsBeforeSupportUnlock,
      methods: (methods.get(u.id) ?? []).map((m) => ({
        factorType: m.type,
        provider: m.provider,
        label: methodLabel(m.type, m.provider),
      })),
      apps: (apps.get(u.id) ?? []) as App[],
      roles: (roles.get(u.id) ?? []) as Role[],
    }));
  }

  async function viewUser(repos: Repositories, user: UserRow): Promise<AdminUserView> {
    const [v] = await viewUsers(repos, [user]);
    if (!v) throw new Error('user view missing');
    return v;
  }

  /** Emails the SAA who made a request the decision, when a person (not an API token) asked. */
  async function notifyRequester(repos: Repositories, request: AdminRequestRow, approved: boolean) {
    const saa = await repos.users.findUserById(request.requested_by);
    if (!saa) return false;
    const payload = parsePayload(request.payload);
    const subject =
      request.kind === 'new_user'
        ? `${String(payload.firstName ?? '')} ${String(payload.lastName ?? '')} (${String(payload.email ?? '')})`
        : String(payload.login ?? request.target_user_id ?? '');
    await notifier.requestDecided(repos, saa, {
      kind: request.kind as RequestKind,
      subject,
      approved,
      reason: request.reason,
    });
    return true;
  }

  async function loadRequestFor(p: Principal, permission: Permission, action: string, id: string) {
    const request = id.length <= 64 ? await store.repos.requests.find(id) : undefined;
    const denied = await authorize(p, permission, action, { firmId: request?.firm_id ?? null });
    if (denied) return denied;
    if (!request) return fail('NOT_FOUND', 'No such request.');
    return { ok: true as const, value: request };
  }

  async function reportView(repos: Repositories, r: ReportRow): Promise<ReportView> {
    const user = await repos.users.findUserById(r.user_id);
    return {
      id: r.id,
      userId: r.user_id,
      userLogin: user?.login ?? null,
      userName: user ? `${user.first_name} ${user.last_name}` : null,
      createdAt: r.created_at,
      source: r.source,
      ip: r.ip,
      userAgent: r.user_agent,
      status: r.status === 'closed' ? 'closed' : 'open',
      closedAt: r.closed_at,
      closedBy: r.closed_by,
      note: r.note,
    };
  }

  const service = {
    // ---------------------------------------------------------------- principals

    /**
     * The principal of a signed-in staff member (console), with their roles and firm; undefined
     * when the user does not exist or may not sign in.
     */
    async principalForUser(
      userId: string,
      origin: { ip?: string | null; userAgent?: string | null } = {},
    ): Promise<Principal | undefined> {
      const user = await store.repos.users.findUserById(userId);
      if (!user || user.status === 'SUSPENDED' || user.status === 'DEPROVISIONED') return undefined;
      const roles = await store.repos.users.listRoles(user.id);
      return { userId: user.id, roles, firmId: user.firm_id, via: 'console', ...origin };
    },

    /**
     * The principal of an `SSWS` token: the token is hashed (SHA-256) and looked up by its hash,
     * then the stored hash compared in constant time; undefined for an unknown or revoked token.
     */
    async authenticateApiToken(
      token: string,
      origin: { ip?: string | null; userAgent?: string | null } = {},
    ): Promise<Principal | undefined> {
      if (!token || token.length > 200) return undefined;
      const hash = hashBearerSecret(token);
      const row = await store.repos.managementTokens.findLiveByHash(hash);
      if (!row || !constantTimeEqual(row.token_hash, hash)) return undefined;
      await store.repos.managementTokens.markUsed(row.id, clock());
      return { apiTokenId: row.id, roles: [row.role as Role], firmId: row.firm_id, via: 'api', ...origin };
    },

    // ---------------------------------------------------------------- reading

    /** Users (an SAA: its own firm only) with status, kinds of methods enrolled and last sign-in. */
    async listUsers(p: Principal, query: UserListQuery = {}): Promise<AdminResult<AdminUserView[]>> {
      const scoped = limitedToOwnFirm(p.roles, 'users.read');
      const denied = await authorize(
        p,
        'users.read',
        'admin.users.list',
        scoped ? { firmId: query.firmId ?? p.firmId } : undefined,
      );
      if (denied) return denied;
      const firmId = scoped ? (p.firmId ?? undefined) : query.firmId;
      const filter: ConditionSet<UserColumn> | undefined = query.status
        ? {
            combinator: 'and',
            terms: [...(query.filter?.terms ?? []), { column: 'status', op: 'eq', value: query.status }],
          }
        : query.filter;
      if (query.status && query.filter?.combinator === 'or') {
        return fail('INVALID_INPUT', 'A status cannot be combined with an "or" filter.');
      }
      const rows = await store.repos.adminQueries.pageUsers({
        ...(firmId ? { firmId } : {}),
        ...(filter ? { filter } : {}),
        ...(query.q ? { prefix: query.q } : {}),
        ...(query.afterId ? { afterId: query.afterId } : {}),
        limit: Math.min(Math.max(query.limit ?? 200, 1), 200),
      });
      return { ok: true, value: await viewUsers(store.repos, rows) };
    },

    /** One user by id or username. */
    async getUser(p: Principal, ref: string): Promise<AdminResult<AdminUserView>> {
      const r = await authorizeOnUser(p, 'users.read', 'admin.users.read', ref);
      return r.ok ? { ok: true, value: await viewUser(store.repos, r.value) } : r;
    },

    /** A user's enrolled factors. */
    async listFactors(p: Principal, ref: string): Promise<AdminResult<{ user: UserRow; factors: FactorView[] }>> {
      const r = await authorizeOnUser(p, 'factors.read', 'admin.factors.list', ref);
      if (!r.ok) return r;
      const factors = await store.repos.factors.listFactors(r.value.id);
      return { ok: true, value: { user: r.value, factors: factors.map(factorView) } };
    },

    /** The users assigned to an app, by user id after `afterId`. */
    async listAppUsers(
      p: Principal,
      app: string,
      page: { afterId?: string; limit?: number } = {},
    ): Promise<AdminResult<{ user: AdminUserView; assignedAt: number }[]>> {
      const denied = await authorize(p, 'apps.read', 'admin.apps.list');
      if (denied) return denied;
      if (!APPS.includes(app as App)) return fail('NOT_FOUND', `No application "${app}".`);
      const rows = await store.repos.adminQueries.pageAppUsers(
        app,
        Math.min(Math.max(page.limit ?? 200, 1), 500),
        page.afterId,
      );
      const views = await viewUsers(store.repos, rows);
      return { ok: true, value: views.map((user, i) => ({ user, assignedAt: rows[i]?.assigned_at ?? 0 })) };
    },

    /** One user's assignment to an app; NOT_FOUND when not assigned. */
    async getAppUser(
      p: Principal,
      app: string,
      ref: string,
    ): Promise<AdminResult<{ user: AdminUserView; assignedAt: number }>> {
      const r = await authorizeOnUser(p, 'apps.read', 'admin.apps.read', ref);
      if (!r.ok) return r;
      if (!APPS.includes(app as App)) return fail('NOT_FOUND', `No application "${app}".`);
      const a = await store.repos.adminQueries.findAppAssignment(r.value.id, app);
      if (!a) return fail('NOT_FOUND', 'The user is not assigned to this application.');
      return { ok: true, value: { user: await viewUser(store.repos, r.value), assignedAt: a.assigned_at } };
    },

    /** A user's refresh tokens for programmatic access (live, and those ended in the last 30 days). */
    async listRefreshTokens(p: Principal, ref: string): Promise<AdminResult<RefreshTokenView[]>> {
      const r = await authorizeOnUser(p, 'refreshTokens.read', 'admin.refresh_tokens.list', ref);
      if (!r.ok) return r;
      const rows = await store.repos.apiTokens.listForUser(r.value.id, clock() - 30 * 86_400_000);
      return { ok: true, value: rows.map(refreshTokenView) };
    },

    /** The request queue (an SAA: its own firm's requests). Newest first. */
    async listRequests(
      p: Principal,
      filter: { status?: RequestStatus; firmId?: string } = {},
    ): Promise<AdminResult<RequestView[]>> {
      const scoped = limitedToOwnFirm(p.roles, 'requests.read');
      const denied = await authorize(
        p,
        'requests.read',
        'admin.requests.list',
        scoped ? { firmId: filter.firmId ?? p.firmId } : undefined,
      );
      if (denied) return denied;
      const firmId = scoped ? (p.firmId ?? undefined) : filter.firmId;
      const rows = await store.repos.requests.list({
        ...(firmId ? { firmId } : {}),
        ...(filter.status ? { status: filter.status } : {}),
      });
      return { ok: true, value: rows.map(requestView) };
    },

    async getRequest(p: Principal, id: string): Promise<AdminResult<RequestView>> {
      const r = await loadRequestFor(p, 'requests.read', 'admin.requests.read', id);
      return r.ok ? { ok: true, value: requestView(r.value) } : r;
    },

    /** Suspicious-activity reports, newest first. */
    async listReports(p: Principal, filter: { status?: 'open' | 'closed' } = {}): Promise<AdminResult<ReportView[]>> {
      const denied = await authorize(p, 'reports.read', 'admin.reports.list');
      if (denied) return denied;
      const rows = await store.repos.reports.listReports(filter.status ? { status: filter.status } : {});
      return { ok: true, value: await Promise.all(rows.map((r) => reportView(store.repos, r))) };
    },

    async getReport(p: Principal, id: string): Promise<AdminResult<ReportView>> {
      const denied = await authorize(p, 'reports.read', 'admin.reports.read');
      if (denied) return denied;
      const row = id.length <= 64 ? await store.repos.adminQueries.findReport(id) : undefined;
      if (!row) return fail('NOT_FOUND', 'No such report.');
      return { ok: true, value: await reportView(store.repos, row) };
    },

    /** Audit events (the management API's System Log; the audit viewer). */
    async readLog(p: Principal, query: AuditPageQuery): Promise<AdminResult<AuditRow[]>> {
      const denied = await authorize(p, 'logs.read', 'admin.logs.read');
      if (denied) return denied;
      return { ok: true, value: await store.repos.adminQueries.pageAuditEvents(query) };
    },

    // ---------------------------------------------------------------- identity providers (issue #8)

    /** Every firm's identity provider (never a secret), and the firms, for Support. */
    async listIdentityProviders(p: Principal): Promise<AdminResult<IdentityProviderOverview>> {
      const denied = await authorize(p, 'idp.manage', 'system.idp.read');
      if (denied) return denied;
      if (!deps.federation) return fail('INVALID_STATE', 'Federated sign-in is not available here.');
      const firms = (await store.repos.firms.listFirms()).map((f) => ({ id: f.id, name: f.name }));
      const names = new Map(firms.map((f) => [f.id, f.name]));
      const providers = (await deps.federation.list()).map((v) => ({ ...v, firmName: names.get(v.firmId) ?? null }));
      return { ok: true, value: { providers, firms } };
    },

    /** Adds a firm's identity provider; the federation service validates and audits it with `p` as actor. */
    async addIdentityProvider(
      p: Principal,
      input: AddIdentityProviderInput,
    ): Promise<AdminResult<IdentityProviderView>> {
      const denied = await authorize(p, 'idp.manage', 'system.idp.lifecycle.create', { firmId: input.firmId });
      if (denied) return denied;
      if (!deps.federation) return fail('INVALID_STATE', 'Federated sign-in is not available here.');
      const r = await deps.federation.add(input, federationActorOf(p));
      return r.ok ? r : fail('INVALID_INPUT', r.detail);
    },

    /**
     * Replaces a SAML identity provider's metadata (pasted XML; a key rollover at the IdP); our SP
     * side stays. The federation service validates and audits it with `p` as actor.
     */
    async updateIdentityProviderMetadata(
      p: Principal,
      id: string,
      metadataXml: string,
    ): Promise<AdminResult<{ view: IdentityProviderView; change: MetadataChange }>> {
      const denied = await authorize(p, 'idp.manage', 'system.idp.lifecycle.update');
      if (denied) return denied;
      if (!deps.federation) return fail('INVALID_STATE', 'Federated sign-in is not available here.');
      if (!id || id.length > 64 || !(await deps.federation.show(id))) {
        return fail('NOT_FOUND', 'No such identity provider.');
      }
      const r = await deps.federation.updateMetadata(
        id,
        { metadataXml, metadataSource: 'pasted in the Support console' },
        federationActorOf(p),
      );
      return r.ok ? r : fail('INVALID_INPUT', r.detail);
    },

    /** Removes an identity provider: the firm's federated users cannot sign in until another is added. */
    async removeIdentityProvider(p: Principal, id: string): Promise<AdminResult<null>> {
      const denied = await authorize(p, 'idp.manage', 'system.idp.lifecycle.delete');
      if (denied) return denied;
      if (!deps.federation) return fail('INVALID_STATE', 'Federated sign-in is not available here.');
      if (!id || id.length > 64 || !(await deps.federation.remove(id, federationActorOf(p)))) {
        return fail('NOT_FOUND', 'No such identity provider.');
      }
      return { ok: true, value: null };
    },

    /** Users and API tokens by id, to name the actors and targets of audit events. */
    async describePrincipals(ids: readonly string[]): Promise<{ users: UserRow[]; tokens: ManagementTokenRow[] }> {
      const unique = [...new Set(ids)];
      const users = await store.repos.adminQueries.usersByIds(unique.filter((id) => id.startsWith('00u')));
      const tokens: ManagementTokenRow[] = [];
      for (const id of unique.filter((i) => i.startsWith('00T'))) {
        const t = await store.repos.managementTokens.findById(id);
        if (t) tokens.push(t);
      }
      return { users, tokens };
    },

    /** A firm by name (case-insensitive), e.g. Okta's `profile.organization` at user creation. */
    findFirmByName: (name: string) => store.repos.firms.findFirmByName(name),

    /** The highest audit event id, the cursor a polling log client gets when there is nothing new. */
    lastLogCursor: () => store.repos.adminQueries.lastAuditEventId(),

    // ---------------------------------------------------------------- SAA requests

    /** An SAA asks Operations for a new username in its firm (`admin`: any firm). */
    async requestNewUser(
      p: Principal,
      input: { email: string; firstName: string; lastName: string; apps?: App[]; firmId?: string },
    ): Promise<AdminResult<RequestView>> {
      const firmId = input.firmId ?? p.firmId;
      const action = 'admin.request.create';
      const denied = await authorize(p, 'requests.create', action, { firmId: firmId ?? null });
      if (denied) return denied;
      const causes: string[] = [];
      const email = input.email.trim().toLowerCase();
      if (!isValidEmail(email)) causes.push('email: not a valid email address.');
      const firstName = checkName('firstName', input.firstName, causes) ?? '';
      const lastName = checkName('lastName', input.lastName, causes) ?? '';
      const apps: App[] = [...new Set<App>(input.apps ?? ['portal'])];
      if (apps.some((a) => !(APPS as readonly string[]).includes(a)))
        causes.push(`apps: one or more of ${APPS.join(', ')}.`);
      if (!firmId || !(await store.repos.firms.findFirmById(firmId))) causes.push('firmId: no such firm.');
      if (causes.length) return fail('INVALID_INPUT', causes[0] ?? 'Invalid request', causes);
      if (await store.repos.users.findUserByLogin(email)) {
        return fail('CONFLICT', `A user with username ${email} already exists.`);
      }
      if (await store.repos.requests.findPending(firmId ?? '', 'new_user', { email })) {
        return fail('CONFLICT', `A request for ${email} is already waiting for Operations.`);
      }
      const payload: NewUserRequestPayload = { email, firstName, lastName, apps };
      const row: AdminRequestRow = {
        id: createId('req', deps.random),
        firm_id: firmId ?? '',
        kind: 'new_user',
        payload: JSON.stringify(payload),
        target_user_id: null,
        requested_by: actorIdOf(p) ?? 'system',
        status: 'pending',
        decided_by: null,
        reason: null,
        created_at: clock(),
        decided_at: null,
      };
      await store.transaction(async (repos) => {
        await repos.requests.create(row);
        await record(repos, p, action, 'success', row.id, { kind: 'new_user', firmId: row.firm_id, email, apps });
      });
      return { ok: true, value: requestView(row) };
    },

    /** An SAA asks Operations to deactivate one of its firm's users. */
    async requestDeactivation(
      p: Principal,
      ref: string,
      input: { reason?: string } = {},
    ): Promise<AdminResult<RequestView>> {
      const action = 'admin.request.create';
      const r = await authorizeOnUser(p, 'requests.create', action, ref);
      if (!r.ok) return r;
      const user = r.value;
      const reason = input.reason?.trim().slice(0, MAX_NOTE) || null;
      if (user.status === 'DEPROVISIONED') return fail('INVALID_STATE', 'The user is already deactivated.');
      if (await store.repos.requests.findPending(user.firm_id, 'deactivate', { userId: user.id })) {
        return fail('CONFLICT', `A deactivation of ${user.login} is already waiting for Operations.`);
      }
      const row: AdminRequestRow = {
        id: createId('req', deps.random),
        firm_id: user.firm_id,
        kind: 'deactivate',
        payload: JSON.stringify({ userId: user.id, login: user.login, reason }),
        target_user_id: user.id,
        requested_by: actorIdOf(p) ?? 'system',
        status: 'pending',
        decided_by: null,
        reason: null,
        created_at: clock(),
        decided_at: null,
      };
      await store.transaction(async (repos) => {
        await repos.requests.create(row);
        await record(repos, p, action, 'success', row.id, { kind: 'deactivate', userId: user.id, reason });
      });
      return { ok: true, value: requestView(row) };
    },

    /**
     * Operations approves a request: a new user is created (PROVISIONED, enrollment email) or the
     * user deactivated, the request decided and the SAA emailed, in one transaction.
     */
    async approveRequest(
      p: Principal,
      id: string,
      input: { note?: string } = {},
    ): Promise<AdminResult<{ request: RequestView; user: AdminUserView | null }>> {
      const action = 'admin.request.approve';
      const loaded = await loadRequestFor(p, 'requests.decide', action, id);
      if (!loaded.ok) return loaded;
      const note = input.note?.trim().slice(0, MAX_NOTE) || null;
      const now = clock();
      try {
        return await store.transaction(async (repos) => {
          const request = await repos.requests.decide(id, {
            status: 'approved',
            by: actorIdOf(p),
            reason: note,
            now,
          });
          if (!request) throw new Rollback(fail('INVALID_STATE', 'The request was already decided.'));
          let user: UserRow | undefined;
          const payload = parsePayload(request.payload);
          if (request.kind === 'new_user') {
            const made = await deps.accounts.provisionUserIn(repos, {
              email: String(payload.email ?? ''),
              firstName: String(payload.firstName ?? ''),
              lastName: String(payload.lastName ?? ''),
              firmId: request.firm_id,
              apps: (Array.isArray(payload.apps) ? payload.apps : ['portal']) as App[],
              actorId: actorIdOf(p),
              ip: p.ip ?? null,
              userAgent: p.userAgent ?? null,
              auditDetails: { requestId: request.id, ...(p.via ? { via: p.via } : {}) },
            });
            if (!made.ok) {
              throw new Rollback(fail(made.code === 'USER_EXISTS' ? 'CONFLICT' : 'INVALID_INPUT', made.message));
            }
            user = made.user;
            await repos.requests.setTargetUser(request.id, user.id);
          } else {
            user = request.target_user_id ? await repos.users.findUserById(request.target_user_id) : undefined;
            if (!user) throw new Rollback(fail('NOT_FOUND', 'The user of this request no longer exists.'));
            const done = await deactivateIn(repos, p, user, now);
            if ('ok' in done) throw new Rollback(done);
            await record(repos, p, 'user.lifecycle.deactivate', 'success', user.id, {
              requestId: request.id,
              ...done.details,
            });
          }
          const notified = await notifyRequester(repos, request, true);
          await record(repos, p, action, 'success', request.id, {
            kind: request.kind,
            userId: user.id,
            requesterNotified: notified,
          });
          const fresh = (await repos.users.findUserById(user.id)) ?? user;
          return {
            ok: true as const,
            value: {
              request: requestView({ ...request, target_user_id: user.id }),
              user: await viewUser(repos, fresh),
            },
          };
        });
      } catch (err) {
        if (!(err instanceof Rollback)) throw err;
        await store.transaction((repos) =>
          record(repos, p, action, 'failure', id, { code: err.failure.code, reason: err.failure.message }),
        );
        return err.failure;
      }
    },

    /** Operations rejects a request with a reason; the SAA is emailed it. */
    async rejectRequest(p: Principal, id: string, reason: string): Promise<AdminResult<RequestView>> {
      const action = 'admin.request.reject';
      const loaded = await loadRequestFor(p, 'requests.decide', action, id);
      if (!loaded.ok) return loaded;
      const why = reason.trim();
      if (!why || why.length > MAX_NOTE) {
        return fail('INVALID_INPUT', `reason: required, at most ${MAX_NOTE} characters.`, [
          `reason: required, at most ${MAX_NOTE} characters.`,
        ]);
      }
      return store.transaction(async (repos) => {
        const request = await repos.requests.decide(id, {
          status: 'rejected',
          by: actorIdOf(p),
          reason: why,
          now: clock(),
        });
        if (!request) return fail('INVALID_STATE', 'The request was already decided.');
        const notified = await notifyRequester(repos, request, false);
        await record(repos, p, action, 'success', request.id, {
          kind: request.kind,
          reason: why,
          requesterNotified: notified,
        });
        return { ok: true as const, value: requestView(request) };
      });
    },

    // ---------------------------------------------------------------- Operations

    /**
     * Creates a user directly (management API `POST /api/v1/users`): PROVISIONED with the
     * enrollment email, or STAGED without (`activate: false`).
     */
    async createUser(
      p: Principal,
      input: { email: string; firstName: string; lastName: string; firmId: string; apps?: App[]; activate?: boolean },
    ): Promise<AdminResult<AdminUserView>> {
      const action = 'user.lifecycle.create';
      const denied = await authorize(p, 'users.create', action, { firmId: input.firmId });
      if (denied) return denied;
      const email = input.email.trim().toLowerCase();
      try {
        return await store.transaction(async (repos) => {
          const made = await deps.accounts.provisionUserIn(repos, {
            email,
            firstName: input.firstName,
            lastName: input.lastName,
            firmId: input.firmId,
            apps: input.apps ?? ['portal'],
            activate: input.activate ?? true,
            actorId: actorIdOf(p),
            ip: p.ip ?? null,
            userAgent: p.userAgent ?? null,
            ...(p.via ? { auditDetails: { via: p.via } } : {}),
          });
          if (!made.ok) {
            const code: AdminErrorCode = made.code === 'USER_EXISTS' ? 'CONFLICT' : 'INVALID_INPUT';
            const field =
              made.code === 'INVALID_EMAIL'
                ? 'email'
                : made.code === 'INVALID_NAME'
                  ? 'name'
                  : made.code === 'FIRM_NOT_FOUND'
                    ? 'firmId'
                    : 'login';
            throw new Rollback(fail(code, made.message, [`${field}: ${made.message}`]));
          }
          return { ok: true as const, value: await viewUser(repos, made.user) };
        });
      } catch (err) {
        if (err instanceof Rollback) {
          await store.transaction((repos) =>
            record(repos, p, action, 'failure', null, { code: err.failure.code, reason: err.failure.message, email }),
          );
          return err.failure;
        }
        if (await store.repos.users.findUserByLogin(email)) {
          return fail('CONFLICT', `A user with username ${email} already exists.`, [
            `login: An object with this field already exists in the current organization`,
          ]);
        }
        throw err;
      }
    },

    /**
     * Okta `activate`: a STAGED or DEPROVISIONED user becomes PROVISIONED and gets an enrollment
     * email (a deactivated user starts over: no password, no factors). A federated user becomes
     * ACTIVE at once (their firm's identity provider signs them in).
     */
    activateUser(p: Principal, ref: string): Promise<AdminResult<{ status: UserStatus; expiresAt: number | null }>> {
      let removed: FactorRow[] = [];
      return changeUser<{ status: UserStatus; expiresAt: number | null }>(
        p,
        'users.activate',
        'user.lifecycle.provision',
        ref,
        async (repos, user, now) => {
          if (user.status !== 'STAGED' && user.status !== 'DEPROVISIONED') {
            return fail(
              'INVALID_STATE',
              `The user is ${user.status}: only a STAGED or DEPROVISIONED user is activated.`,
            );
          }
          if (user.auth_mode === 'federated') {
            await repos.users.transitionStatus(user.id, [user.status as UserStatus], 'ACTIVE', now);
            return {
              value: { status: 'ACTIVE' as UserStatus, expiresAt: null },
              details: { from: user.status, federated: true },
            };
          }
          if (!(await repos.users.markProvisioned(user.id, ['STAGED', 'DEPROVISIONED'], now))) {
            return fail('INVALID_STATE', 'The user changed status meanwhile.');
          }
          removed = user.status === 'DEPROVISIONED' ? await deleteAllFactors(repos, user.id) : [];
          const fresh = (await repos.users.findUserById(user.id)) ?? user;
          const link = await deps.accounts.issueActivationIn(
            repos,
            fresh,
            user.status === 'DEPROVISIONED' ? 'reactivated' : 'new',
          );
          return {
            value: { status: 'PROVISIONED' as UserStatus, expiresAt: link.expiresAt },
            details: { from: user.status, factorsRemoved: removed.length, linkExpiresAt: link.expiresAt },
          };
        },
      ).then(afterFactorsRemoved(() => removed));
    },

    /** A new enrollment email for a user who has not activated; the previous link stops working. */
    resendEnrollment(p: Principal, ref: string): Promise<AdminResult<{ expiresAt: number }>> {
      return changeUser(p, 'users.resendEnrollment', 'user.lifecycle.reactivate', ref, async (repos, user) => {
        if (user.status !== 'PROVISIONED' || user.auth_mode !== 'local') {
          return fail(
            'INVALID_STATE',
            `The user is ${user.status}: only a user who has not activated gets an enrollment email.`,
          );
        }
        const link = await deps.accounts.issueActivationIn(repos, user);
        return { value: { expiresAt: link.expiresAt }, details: { resend: true, linkExpiresAt: link.expiresAt } };
      });
    },

    /**
     * Operations edits personal information (names, email address, phones; not the username). The
     * user is emailed what changed, at the new address and, if the address changed, the old one.
     */
    updatePersonalInfo(p: Principal, ref: string, patch: PersonalInfoPatch): Promise<AdminResult<AdminUserView>> {
      return changeUser(p, 'users.updateProfile', 'user.account.update_profile', ref, async (repos, user) => {
        const causes: string[] = [];
        const firstName = checkName('firstName', patch.firstName, causes) ?? user.first_name;
        const lastName = checkName('lastName', patch.lastName, causes) ?? user.last_name;
        let email = user.email;
        if (patch.email !== undefined) {
          email = patch.email.trim().toLowerCase();
          if (!isValidEmail(email)) causes.push('email: not a valid email address.');
        }
        const mobile = checkPhone('mobilePhone', patch.mobilePhone, causes);
        const primary = checkPhone('primaryPhone', patch.primaryPhone, causes);
        if (causes.length) return fail('INVALID_INPUT', causes[0] ?? 'Invalid input', causes);
        const next = {
          firstName,
          lastName,
          email,
          mobilePhone: mobile === undefined ? user.mobile_phone : mobile,
          primaryPhone: primary === undefined ? user.primary_phone : primary,
        };
        const changed = [
          next.firstName !== user.first_name && 'First name',
          next.lastName !== user.last_name && 'Last name',
          next.email !== user.email && 'Email address',
          next.mobilePhone !== user.mobile_phone && 'Mobile phone',
          next.primaryPhone !== user.primary_phone && 'Primary phone',
        ].filter((f): f is string => typeof f === 'string');
        if (changed.length) {
          await repos.users.updatePersonalInfo(user.id, next);
          const fresh = (await repos.users.findUserById(user.id)) ?? user;
          const team = teamOf(p, 'operations');
          await notifier.personalInfoChanged(repos, fresh, team, changed);
          if (next.email !== user.email) await notifier.personalInfoChanged(repos, fresh, team, changed, user.email);
        }
        const fresh = (await repos.users.findUserById(user.id)) ?? user;
        return { value: await viewUser(repos, fresh), details: { via: p.via ?? 'admin', fields: changed } };
      });
    },

    /** Unlocks a locked account whatever its lockout count (after 10 in a row, the only way). */
    unlockUser(p: Principal, ref: string): Promise<AdminResult<void>> {
      return changeUser(p, 'users.unlock', 'user.account.unlock_by_admin', ref, async (repos, user, now) => {
        if (!(await repos.users.unlockUser(user.id, now, Number.MAX_SAFE_INTEGER))) {
          return fail('INVALID_STATE', `The user is ${user.status}, not locked.`);
        }
        await repos.users.clearLockouts(user.id);
        await notifier.accountUnlockedByAdmin(repos, user, teamOf(p, 'support'));
        return { value: undefined, details: { lockoutCount: user.lockout_count } };
      });
    },

    /**
     * Suspends a user: no sign-in; idp and portal sessions end and refresh tokens are revoked.
     * `reportId` links it to the suspicious-activity report it answers.
     */
    suspendUser(p: Principal, ref: string, input: { reportId?: string } = {}): Promise<AdminResult<SignOutSummary>> {
      return changeUser(p, 'users.suspend', 'user.lifecycle.suspend', ref, async (repos, user, now) => {
        if (!(await repos.users.transitionStatus(user.id, SUSPENDABLE, 'SUSPENDED', now))) {
          return fail('INVALID_STATE', `The user is ${user.status}: only an active user can be suspended.`);
        }
        const ended = await signOutIn(repos, user.id, now, 'suspended');
        await notifier.accountSuspended(repos, user, teamOf(p, 'operations'));
        return {
          value: ended,
          details: { from: user.status, ...ended, ...(input.reportId ? { reportId: input.reportId } : {}) },
        };
      });
    },

    unsuspendUser(p: Principal, ref: string): Promise<AdminResult<void>> {
      return changeUser(p, 'users.unsuspend', 'user.lifecycle.unsuspend', ref, async (repos, user, now) => {
        if (!(await repos.users.transitionStatus(user.id, ['SUSPENDED'], 'ACTIVE', now))) {
          return fail('INVALID_STATE', `The user is ${user.status}, not suspended.`);
        }
        await repos.users.clearLockouts(user.id);
        await notifier.accountUnsuspended(repos, user, teamOf(p, 'operations'));
        return { value: undefined };
      });
    },

    /** Deactivates (DEPROVISIONED): signed out everywhere, refresh tokens and emailed links revoked. */
    deactivateUser(p: Principal, ref: string): Promise<AdminResult<void>> {
      return changeUser(p, 'users.deactivate', 'user.lifecycle.deactivate', ref, (repos, user, now) =>
        deactivateIn(repos, p, user, now),
      );
    },

    /** Deletes a DEPROVISIONED user for good (Okta: deactivate first). The audit log keeps its events. */
    deleteUser(p: Principal, ref: string): Promise<AdminResult<void>> {
      return changeUser(p, 'users.delete', 'user.lifecycle.delete', ref, async (repos, user, now) => {
        if (user.status !== 'DEPROVISIONED') {
          return fail('INVALID_STATE', `The user is ${user.status}: deactivate before deleting.`);
        }
        await repos.apiTokens.revokeAllOfUser(user.id, now, 'deleted');
        await repos.portalSessions.revokeAllOfUser(user.id, now);
        if (!(await repos.users.deleteDeprovisionedUser(user.id)))
          return fail('INVALID_STATE', 'The user changed meanwhile.');
        return { value: undefined, details: { login: user.login, firmId: user.firm_id } };
      });
    },

    /**
     * Signs the user out everywhere and revokes every refresh token (suspicious activity).
     * `reportId` links it to the report it answers.
     */
    signOutEverywhere(
      p: Principal,
      ref: string,
      input: { reportId?: string } = {},
    ): Promise<AdminResult<SignOutSummary>> {
      return changeUser(p, 'users.signOut', 'user.session.clear_by_admin', ref, async (repos, user, now) => {
        const ended = await signOutIn(repos, user.id, now, 'operations');
        return { value: ended, details: { ...ended, ...(input.reportId ? { reportId: input.reportId } : {}) } };
      });
    },

    /** Report → "sign the user out and revoke refresh tokens". */
    async signOutReportedUser(p: Principal, reportId: string): Promise<AdminResult<SignOutSummary>> {
      const report = await service.getReport(p, reportId);
      if (!report.ok) return report;
      return service.signOutEverywhere(p, report.value.userId, { reportId });
    },

    /** Report → "suspend". */
    async suspendReportedUser(p: Principal, reportId: string): Promise<AdminResult<SignOutSummary>> {
      const report = await service.getReport(p, reportId);
      if (!report.ok) return report;
      return service.suspendUser(p, report.value.userId, { reportId });
    },

    /** Closes a suspicious-activity report with a note. */
    async closeReport(p: Principal, reportId: string, note: string): Promise<AdminResult<ReportView>> {
      const action = 'security.report.close';
      const denied = await authorize(p, 'reports.close', action);
      if (denied) return denied;
      const text = note.trim();
      if (!text || text.length > MAX_NOTE) {
        return fail('INVALID_INPUT', `note: required, at most ${MAX_NOTE} characters.`, [
          `note: required, at most ${MAX_NOTE} characters.`,
        ]);
      }
      return store.transaction(async (repos) => {
        const row = reportId.length <= 64 ? await repos.adminQueries.findReport(reportId) : undefined;
        if (!row) return fail('NOT_FOUND', 'No such report.');
        if (!(await repos.reports.closeReport(reportId, actorIdOf(p), text, clock()))) {
          return fail('INVALID_STATE', 'The report is already closed.');
        }
        await record(repos, p, action, 'success', reportId, { userId: row.user_id, note: text });
        const closed = await repos.adminQueries.findReport(reportId);
        return { ok: true as const, value: await reportView(repos, closed ?? row) };
      });
    },

    // ---------------------------------------------------------------- Support

    /**
     * Removes every factor (a lost device, no other method): the user enrolls a new one at the next
     * sign-in. Sessions end (the lost device may hold one); refresh tokens stay.
     */
    resetFactors(p: Principal, ref: string): Promise<AdminResult<{ removed: FactorView[] }>> {
      return changeUser(p, 'factors.reset', 'user.mfa.factor.reset_all', ref, async (repos, user, now) => {
        const removed = await deleteAllFactors(repos, user.id);
        const ended = removed.length ? await signOutIn(repos, user.id, now, null) : undefined;
        if (removed.length) {
          await notifier.factorsReset(
            repos,
            user,
            teamOf(p, 'support'),
            removed.map((f) => f.name),
            true,
          );
        }
        return {
          value: { removed: removed.map(factorView) },
          details: { factors: removed.map((f) => `${f.factor_type}:${f.provider}`), ...ended },
        };
      }).then(afterFactorsRemoved((value) => value.removed.map((f) => ({ id: f.id, factor_type: f.factorType }))));
    },

    /**
     * Removes one factor (the lost device); the user's other methods keep working. Okta Verify's
     * push and code factors are one authenticator: either takes the other with it.
     */
    resetFactor(p: Principal, ref: string, factorId: string): Promise<AdminResult<FactorView>> {
      let removed: FactorRow[] = [];
      return changeUser(p, 'factors.reset', 'user.mfa.factor.deactivate', ref, async (repos, user, now) => {
        const factor = factorId.length <= 40 ? await repos.factors.findFactor(user.id, factorId) : undefined;
        removed = factor ? await deleteFactorWithCompanions(repos, user.id, factor.id) : [];
        if (!factor || !removed.length) return fail('NOT_FOUND', 'The user has no such factor.');
        const ended = await signOutIn(repos, user.id, now, null);
        const names = removed.map((f) => f.name);
        await notifier.factorsReset(repos, user, teamOf(p, 'support'), names, false);
        const companions = removed.slice(1);
        return {
          value: factorView(factor),
          details: {
            factorId: factor.id,
            factorType: `${factor.factor_type}:${factor.provider}`,
            ...(companions.length
              ? {
                  alsoRemoved: companions.map((f) => ({
                    factorId: f.id,
                    factorType: `${f.factor_type}:${f.provider}`,
                  })),
                }
              : {}),
            by: 'admin',
            ...ended,
          },
        };
      }).then(afterFactorsRemoved(() => removed));
    },

    /**
     * Emails the user a single-use password-reset link (8 hours); the administrator never sees or
     * chooses a password. Refused for a lockout only support can lift: unlock first.
     */
    sendPasswordReset(p: Principal, ref: string): Promise<AdminResult<{ expiresAt: number }>> {
      return changeUser(p, 'password.sendReset', 'user.account.send_password_reset', ref, async (repos, user, now) => {
        if (user.auth_mode !== 'local' || !user.password_hash) {
          return fail('INVALID_STATE', 'The user has no password here (federated, or not activated yet).');
        }
        if (!PASSWORD_RESETTABLE.includes(user.status as UserStatus)) {
          return fail('INVALID_STATE', `The user is ${user.status}.`);
        }
        if (user.status === 'LOCKED_OUT' && user.lockout_count >= policy.lockoutsBeforeSupportUnlock) {
          return fail('INVALID_STATE', 'The account is locked until support unlocks it: unlock it first.');
        }
        const link = await issueEmailLink(repos, {
          userId: user.id,
          purpose: 'recovery_password',
          ttlMs: policy.recoveryLinkHours * 3_600_000,
          now,
          random: deps.random,
          url: (token) => `${deps.environment.idp.publicUrl}/recover?token=${encodeURIComponent(token)}`,
        });
        await notifier.passwordResetBySupport(repos, user, {
          url: link.url,
          expiresAt: link.expiresAt,
          validHours: policy.recoveryLinkHours,
        });
        return { value: { expiresAt: link.expiresAt }, details: { linkExpiresAt: link.expiresAt } };
      });
    },

    /**
     * Switches sign-in between local (password + our MFA) and federated (the firm's identity
     * provider); never both (FAQ). To federated: password, recovery question and factors go,
     * sessions end, refresh tokens are revoked. To local: PROVISIONED, with an enrollment email.
     */
    setAuthMode(p: Principal, ref: string, mode: AuthMode): Promise<AdminResult<AdminUserView>> {
      let removed: FactorRow[] = [];
      return changeUser(p, 'authMode.set', 'user.account.update_auth_mode', ref, async (repos, user, now) => {
        if (user.auth_mode === mode)
          return fail(
            'INVALID_STATE',
            `The user already signs in ${mode === 'local' ? 'locally' : 'through federation'}.`,
          );
        if (!MODE_SWITCHABLE.includes(user.status as UserStatus)) {
          return fail('INVALID_STATE', `The user is ${user.status}.`);
        }
        let details: Record<string, unknown> = { from: user.auth_mode, to: mode };
        if (mode === 'federated') {
          if (!(await repos.users.switchToFederated(user.id, MODE_SWITCHABLE, now))) {
            return fail('INVALID_STATE', 'The user changed meanwhile.');
          }
          removed = await deleteAllFactors(repos, user.id);
          const ended = await signOutIn(repos, user.id, now, 'federated');
          await revokeEmailLinks(repos, user.id, now);
          await notifier.switchedToFederated(repos, user, teamOf(p, 'support'));
          details = { ...details, factorsRemoved: removed.length, ...ended };
        } else {
          if (!(await repos.users.switchToLocal(user.id, MODE_SWITCHABLE, now))) {
            return fail('INVALID_STATE', 'The user changed meanwhile.');
          }
          const ended = await signOutIn(repos, user.id, now, null);
          const fresh = (await repos.users.findUserById(user.id)) ?? user;
          const link = await deps.accounts.issueActivationIn(repos, fresh, 'switched-to-local');
          details = { ...details, ...ended, linkExpiresAt: link.expiresAt };
        }
        const fresh = (await repos.users.findUserById(user.id)) ?? user;
        return { value: await viewUser(repos, fresh), details };
      }).then(afterFactorsRemoved(() => removed));
    },

    /** Assigns an app (`portal`, `download`); without it the app answers 403 "App not assigned". */
    assignApp(p: Principal, ref: string, app: string): Promise<AdminResult<{ assignedAt: number; created: boolean }>> {
      return changeUser<{ assignedAt: number; created: boolean }>(
        p,
        'apps.assign',
        'application.user_membership.add',
        ref,
        async (repos, user, now) => {
          if (!APPS.includes(app as App)) return fail('NOT_FOUND', `No application "${app}".`);
          const existing = await repos.adminQueries.findAppAssignment(user.id, app);
          if (existing)
            return { value: { assignedAt: existing.assigned_at, created: false }, details: { app, already: true } };
          await repos.users.assignApp(user.id, app as App, now);
          await notifier.appAccessChanged(repos, user, teamOf(p, 'support'), APP_LABELS[app as App], true);
          return { value: { assignedAt: now, created: true }, details: { app } };
        },
      );
    },

    unassignApp(p: Principal, ref: string, app: string): Promise<AdminResult<void>> {
      return changeUser(p, 'apps.assign', 'application.user_membership.remove', ref, async (repos, user) => {
        if (!APPS.includes(app as App)) return fail('NOT_FOUND', `No application "${app}".`);
        if (!(await repos.users.unassignApp(user.id, app as App))) {
          return fail('NOT_FOUND', 'The user is not assigned to this application.');
        }
        await notifier.appAccessChanged(repos, user, teamOf(p, 'support'), APP_LABELS[app as App], false);
        return { value: undefined, details: { app } };
      });
    },

    /** Revokes one of the user's refresh tokens (`id` from `listRefreshTokens`). */
    revokeRefreshToken(p: Principal, ref: string, tokenId: string): Promise<AdminResult<RefreshTokenView>> {
      return changeUser(p, 'refreshTokens.revoke', 'app.oauth2.as.token.revoke', ref, async (repos, user, now) => {
        const row = tokenId.length <= 64 ? await repos.apiTokens.revoke(tokenId, now, 'support', user.id) : undefined;
        if (!row) return fail('NOT_FOUND', 'The user has no such live refresh token.');
        await notifier.refreshTokenRevokedBySupport(repos, user, teamOf(p, 'support'), row.label, programmaticUrl);
        return { value: refreshTokenView(row), details: { by: 'support', label: row.label, clientId: row.client_id } };
      });
    },

    // ---------------------------------------------------------------- admin

    grantRole(p: Principal, ref: string, role: Role): Promise<AdminResult<Role[]>> {
      return changeUser(p, 'roles.manage', 'user.account.privilege.grant', ref, async (repos, user) => {
        if (!ROLES.includes(role)) return fail('INVALID_INPUT', `Unknown role "${role}".`);
        await repos.users.grantRole(user.id, role);
        return { value: await repos.users.listRoles(user.id), details: { role } };
      });
    },

    revokeRole(p: Principal, ref: string, role: Role): Promise<AdminResult<Role[]>> {
      return changeUser(p, 'roles.manage', 'user.account.privilege.revoke', ref, async (repos, user) => {
        if (role === 'user') return fail('INVALID_INPUT', 'Every account has the role "user".');
        if (!(await repos.users.revokeRole(user.id, role)))
          return fail('NOT_FOUND', `The user does not have the role ${role}.`);
        return { value: await repos.users.listRoles(user.id), details: { role } };
      });
    },

    /**
     * Creates a management API token bound to a role (and, for `saa`, a firm). The token is
     * returned once; only its SHA-256 is stored.
     */
    async createApiToken(
      p: Principal,
      input: { name: string; role: Role; firmId?: string | null },
    ): Promise<AdminResult<{ token: string; view: ApiTokenView }>> {
      const action = 'system.api_token.create';
      const denied = await authorize(p, 'roles.manage', action);
      if (denied) return denied;
      const name = input.name.trim();
      const causes: string[] = [];
      if (!name || name.length > 100) causes.push('name: required, at most 100 characters.');
      if (!ROLES.includes(input.role) || input.role === 'user') {
        causes.push('role: one of saa, operations, support, admin.');
      }
      const firmId = input.firmId ?? null;
      if (input.role === 'saa' && !firmId) causes.push('firm: an saa token belongs to one firm.');
      if (input.role !== 'saa' && firmId) causes.push('firm: only an saa token belongs to a firm.');
      if (firmId && !(await store.repos.firms.findFirmById(firmId))) causes.push('firm: no such firm.');
      if (causes.length) return fail('INVALID_INPUT', causes[0] ?? 'Invalid input', causes);
      const token = createBearerSecret(deps.random);
      const row: ManagementTokenRow = {
        id: createId('00T', deps.random),
        name,
        token_hash: hashBearerSecret(token),
        role: input.role,
        firm_id: firmId,
        created_at: clock(),
        last_used_at: null,
        revoked_at: null,
      };
      await store.transaction(async (repos) => {
        await repos.managementTokens.create(row);
        await record(repos, p, action, 'success', row.id, { name, role: row.role, firmId });
      });
      return { ok: true, value: { token, view: apiTokenView(row) } };
    },

    async listApiTokens(p: Principal, includeRevoked = false): Promise<AdminResult<ApiTokenView[]>> {
      const denied = await authorize(p, 'roles.manage', 'system.api_token.list');
      if (denied) return denied;
      return { ok: true, value: (await store.repos.managementTokens.list(includeRevoked)).map(apiTokenView) };
    },

    async revokeApiToken(p: Principal, id: string): Promise<AdminResult<ApiTokenView>> {
      const action = 'system.api_token.revoke';
      const denied = await authorize(p, 'roles.manage', action);
      if (denied) return denied;
      return store.transaction(async (repos) => {
        if (!(await repos.managementTokens.revoke(id, clock()))) return fail('NOT_FOUND', 'No such live token.');
        await record(repos, p, action, 'success', id);
        const row = await repos.managementTokens.findById(id);
        if (!row) return fail('NOT_FOUND', 'No such token.');
        return { ok: true as const, value: apiTokenView(row) };
      });
    },
  };
  return service;
}
export type AdminService = ReturnType<typeof createAdminService>;

const services = new WeakMap<object, AdminService>();

/**
 * The administration service of one environment runtime, built once per runtime (or the runtime's
 * own `admin`, when it has one): what the CLI and the management API use.
 */
export function createAdminServiceFor(rt: AdminServiceDeps & { admin?: AdminService }): AdminService {
  if (rt.admin) return rt.admin;
  let service = services.get(rt);
  if (!service) {
    service = createAdminService(rt);
    services.set(rt, service);
  }
  return service;
}
