import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { APPS, type App } from '../accounts/model.ts';
import type { UserRow } from '../accounts/repository.ts';
import type { AuditRow } from '../audit/repository.ts';
import { AppError } from '../web/errors.ts';
import { RATE_LIMIT_WINDOW_MS } from '../web/rate-limit.ts';
import { parseBody, requestContext } from '../web/validate.ts';
import { parseOktaFilter } from './okta-filter.ts';
import type { AuditColumn, ConditionSet, UserColumn } from './query-repository.ts';
import {
  type AdminFailure,
  type AdminResult,
  type AdminService,
  type AdminServiceDeps,
  type AdminUserView,
  createAdminServiceFor,
  type FactorView,
  type Principal,
} from './service.ts';

/**
 * What the management API needs: an environment runtime (`src/app.ts`) has all of it, and passes
 * itself. `admin` is the runtime's administration service if it already built one.
 */
export interface ManagementApiDeps extends AdminServiceDeps {
  admin?: AdminService;
  /** State-changing requests per client address per minute (Okta's own limits are of this order). */
  managementRequestsPerMinute?: number;
}

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/** Okta's attribute names for the user list's `filter`. */
const USER_FILTER: Readonly<Record<string, UserColumn>> = {
  id: 'id',
  status: 'status',
  'profile.login': 'login',
  'profile.email': 'email',
  'profile.firstName': 'first_name',
  'profile.lastName': 'last_name',
  'profile.firmId': 'firm_id',
};

/** Okta's attribute names for the System Log's `filter`. */
const LOG_FILTER: Readonly<Record<string, AuditColumn>> = {
  eventType: 'action',
  'outcome.result': 'outcome',
  'actor.id': 'actor_id',
  'target.id': 'target_id',
  'client.ipAddress': 'ip',
};

const OUTCOME_TO_OKTA: Readonly<Record<string, string>> = { success: 'SUCCESS', failure: 'FAILURE', denied: 'DENY' };
const OUTCOME_FROM_OKTA: Readonly<Record<string, string>> = { SUCCESS: 'success', FAILURE: 'failure', DENY: 'denied' };

/** What the System Log says of our events, in Okta's wording where Okta has the event. */
const DISPLAY_MESSAGES: Readonly<Record<string, string>> = {
  'user.lifecycle.create': 'Create Okta user',
  'user.lifecycle.provision': 'Activate Okta user',
  'user.lifecycle.activate': 'Activate Okta user',
  'user.lifecycle.reactivate': 'Reactivate Okta user',
  'user.lifecycle.suspend': 'Suspend Okta user',
  'user.lifecycle.unsuspend': 'Unsuspend Okta user',
  'user.lifecycle.deactivate': 'Deactivate Okta user',
  'user.lifecycle.delete': 'Delete Okta user',
  'user.account.unlock_by_admin': 'Unlock user account by administrator',
  'user.account.unlock': 'Unlock user account',
  'user.account.lock': 'Max sign in attempts exceeded',
  'user.account.update_profile': 'Update user profile for Okta',
  'user.account.update_password': 'Update password for user',
  'user.account.reset_password': "Fired when the user's Okta password is reset",
  'user.account.send_password_reset': 'Send password reset email',
  'user.account.update_auth_mode': 'Change user authentication mode',
  'user.account.privilege.grant': 'Grant user privilege',
  'user.account.privilege.revoke': 'Revoke user privilege',
  'user.account.report_suspicious_activity': 'User report suspicious activity',
  'user.mfa.factor.reset_all': 'Reset all factors for user',
  'user.mfa.factor.deactivate': 'Reset factor for user',
  'user.mfa.factor.activate': 'Activate factor for user',
  'user.session.start': 'User login to Okta',
  'user.session.clear_by_admin': 'Clear user session',
  'user.authentication.sso': 'User single sign on to app',
  'user.authentication.auth_via_password': 'Authenticate user with password',
  'user.authentication.auth_via_mfa': 'Authentication of user via MFA',
  'application.user_membership.add': 'Add user to application membership',
  'application.user_membership.remove': 'Remove user from application membership',
  'app.oauth2.as.token.revoke': 'OAuth2 token revocation request',
  'admin.request.create': 'Request submitted to Operations',
  'admin.request.approve': 'Request approved by Operations',
  'admin.request.reject': 'Request rejected by Operations',
  'security.report.close': 'Close suspicious activity report',
  'system.api_token.create': 'Create API token',
  'system.api_token.revoke': 'Revoke API token',
};

/** A stable UUID per (environment, event id): the log's `uuid` never changes between reads. */
function eventUuid(environmentId: string, id: number): string {
  const h = createHash('sha256').update(`${environmentId}:audit:${id}`).digest('hex');
  // RFC 9562 layout: version 8 (custom), variant 10.
  const variant = ((Number.parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function parseDetails(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Okta error objects for the service's refusals. */
function toAppError(f: AdminFailure, what = 'User'): AppError {
  switch (f.code) {
    case 'DENIED':
      return new AppError('FORBIDDEN');
    case 'NOT_FOUND':
      return new AppError('NOT_FOUND', [], `Not found: Resource not found: ${what}`);
    case 'INVALID_STATE':
      return new AppError('USER_STATUS', [f.message]);
    case 'CONFLICT':
      return new AppError(
        'VALIDATION',
        ['login: An object with this field already exists in the current organization'],
        'Api validation failed: login',
      );
    case 'INVALID_INPUT':
      return new AppError('VALIDATION', f.causes ?? [f.message], `Api validation failed: ${f.message}`);
  }
}

function unwrap<T>(r: AdminResult<T>, what?: string): T {
  if (!r.ok) throw toAppError(r, what);
  return r.value;
}

const optionalBool = z
  .enum(['true', 'false'])
  .optional()
  .transform((v) => (v === undefined ? undefined : v === 'true'));
const limitParam = (max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d{1,6}$/)
    .optional()
    .transform((v) => Math.min(Math.max(v === undefined ? fallback : Number(v), 1), max));

const userListQuery = z
  .object({
    q: z.string().min(1).max(100).optional(),
    filter: z.string().min(1).max(2000).optional(),
    search: z.string().max(2000).optional(),
    after: z.string().min(1).max(64).optional(),
    limit: limitParam(200, 200),
    sortBy: z.string().max(100).optional(),
    sortOrder: z.string().max(20).optional(),
  })
  .strict();

const profileFields = {
  firstName: z.string().max(100).optional(),
  lastName: z.string().max(100).optional(),
  email: z.string().max(254).optional(),
  login: z.string().max(254).optional(),
  mobilePhone: z.string().max(40).nullable().optional(),
  primaryPhone: z.string().max(40).nullable().optional(),
  /** TRAQS: the firm, by id (`traqs firm list`). */
  firmId: z.string().max(32).optional(),
  /** Okta's standard attribute, read as the firm's name when `firmId` is absent. */
  organization: z.string().max(200).nullable().optional(),
  // Okta's other standard attributes are accepted and ignored.
  secondEmail: z.string().max(254).nullable().optional(),
  middleName: z.string().max(100).nullable().optional(),
  displayName: z.string().max(200).nullable().optional(),
  nickName: z.string().max(100).nullable().optional(),
  title: z.string().max(100).nullable().optional(),
  locale: z.string().max(20).nullable().optional(),
  timezone: z.string().max(60).nullable().optional(),
};

const createUserBody = z
  .object({
    profile: z.object(profileFields).passthrough(),
    credentials: z.record(z.string(), z.unknown()).optional(),
    groupIds: z.array(z.string().max(64)).max(0, 'groups are not supported').optional(),
    type: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const updateUserBody = z
  .object({
    profile: z.object(profileFields).passthrough().optional(),
    credentials: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();

const createQuery = z
  .object({ activate: optionalBool, provider: optionalBool, nextLogin: z.string().max(40).optional() })
  .strict();
const sendEmailQuery = z.object({ sendEmail: optionalBool, revokeSessions: optionalBool }).passthrough();
const logQuery = z
  .object({
    since: z.string().max(40).optional(),
    until: z.string().max(40).optional(),
    after: z
      .string()
      .regex(/^\d{1,15}$/)
      .optional(),
    filter: z.string().min(1).max(2000).optional(),
    q: z.string().min(1).max(200).optional(),
    limit: limitParam(1000, 100),
    sortOrder: z.enum(['ASCENDING', 'DESCENDING']).optional(),
  })
  .strict();
const appPage = z.object({ after: z.string().min(1).max(64).optional(), limit: limitParam(500, 200) }).passthrough();
const appAssignBody = z.object({ id: z.string().min(1).max(254), scope: z.string().max(20).optional() }).passthrough();
const idParam = z.object({ id: z.string().min(1).max(254) });
const lifecycleParams = z.object({ id: z.string().min(1).max(254), op: z.string().min(1).max(40) });
const factorParams = z.object({ id: z.string().min(1).max(254), factorId: z.string().min(1).max(40) });
const appParams = z.object({ appId: z.string().min(1).max(40) });
const appUserParams = z.object({ appId: z.string().min(1).max(40), userId: z.string().min(1).max(254) });

function parseTime(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new AppError('VALIDATION', [`${name}: not an ISO 8601 date and time.`]);
  return t;
}

/**
 * The Okta-compatible management API (DESIGN "Okta-compatible surfaces"): `/api/v1/users`, the
 * user lifecycle, factors, app assignments and the System Log (`/api/v1/logs`), with Okta's paths,
 * JSON shapes, error objects and `Link` pagination, so `@okta/okta-sdk-nodejs` works unchanged.
 * Authorised by `Authorization: SSWS <token>` (`traqs api-token create`); each token carries one
 * role, and the administration service decides what that role may do.
 *
 * TRAQS differences (README compatibility table): the firm is the custom profile attribute
 * `profile.firmId` (or `profile.organization`, the firm's name); the username is the email address
 * (`profile.login` = `profile.email`); an administrator never sets or sees a password or activation
 * link, so `credentials.password` and `sendEmail=false` are refused; there are no groups.
 */
export function registerManagementApi(app: FastifyInstance, deps: ManagementApiDeps): void {
  // Once per app: a second call (a test helper around an idp that already has it) is a no-op.
  if (app.hasDecorator('managementApi')) return;
  app.decorate('managementApi', true);
  const admin = createAdminServiceFor(deps);
  // `_links` and `Link` headers are absolute, as Okta's are.
  const baseUrl = deps.environment.idp.publicUrl;
  const environmentId = deps.environment.id;
  const principals = new WeakMap<FastifyRequest, Principal>();
  // One budget per address for every management route, apart from the sign-in forms' budget.
  const rateLimit = {
    rateLimit: {
      max: deps.managementRequestsPerMinute ?? 600,
      timeWindow: RATE_LIMIT_WINDOW_MS,
      groupId: 'management-api',
    },
  };

  const who = (req: FastifyRequest): Principal => {
    const p = principals.get(req);
    if (!p) throw new AppError('INVALID_TOKEN');
    return p;
  };

  const userHref = (id: string) => `${baseUrl}/api/v1/users/${encodeURIComponent(id)}`;
  const post = (href: string) => ({ href, method: 'POST' });

  function userJson(u: AdminUserView) {
    const self = userHref(u.id);
    const links: Record<string, unknown> = { self: { href: self } };
    const lifecycle = (op: string) => post(`${self}/lifecycle/${op}`);
    switch (u.status) {
      case 'STAGED':
        links.activate = lifecycle('activate');
        break;
      case 'PROVISIONED':
        links.reactivate = lifecycle('reactivate');
        break;
      case 'SUSPENDED':
        links.unsuspend = lifecycle('unsuspend');
        break;
      case 'LOCKED_OUT':
        links.unlock = lifecycle('unlock');
        break;
      case 'DEPROVISIONED':
        links.activate = lifecycle('activate');
        break;
    }
    if (['ACTIVE', 'RECOVERY', 'PASSWORD_EXPIRED', 'LOCKED_OUT'].includes(u.status)) {
      links.suspend = lifecycle('suspend');
      if (u.authMode === 'local') {
        links.resetPassword = lifecycle('reset_password');
        links.resetFactors = lifecycle('reset_factors');
      }
    }
    if (u.status !== 'DEPROVISIONED') links.deactivate = lifecycle('deactivate');
    const lastUpdated = Math.max(u.createdAt, u.statusChangedAt, u.passwordChangedAt ?? 0, u.activatedAt ?? 0);
    return {
      id: u.id,
      status: u.status,
      created: iso(u.createdAt),
      activated: iso(u.activatedAt),
      statusChanged: iso(u.statusChangedAt),
      lastLogin: iso(u.lastLoginAt),
      lastUpdated: iso(lastUpdated),
      passwordChanged: iso(u.passwordChangedAt),
      transitioningToStatus: null,
      profile: {
        firstName: u.firstName,
        lastName: u.lastName,
        mobilePhone: u.mobilePhone,
        primaryPhone: u.primaryPhone,
        secondEmail: null,
        login: u.login,
        email: u.email,
        firmId: u.firmId,
        organization: u.firmName,
      },
      credentials:
        u.authMode === 'federated'
          ? { provider: { type: 'FEDERATION', name: 'FEDERATION' } }
          : {
              ...(u.hasPassword ? { password: {} } : {}),
              ...(u.recoveryQuestion ? { recovery_question: { question: u.recoveryQuestion } } : {}),
              provider: { type: 'OKTA', name: 'OKTA' },
            },
      _links: links,
    };
  }

  function factorJson(user: UserRow, f: FactorView) {
    const self = `${userHref(user.id)}/factors/${encodeURIComponent(f.id)}`;
    return {
      id: f.id,
      factorType: f.factorType,
      provider: f.provider,
      vendorName: f.provider,
      status: f.status,
      created: iso(f.createdAt),
      lastUpdated: iso(f.lastUsedAt ?? f.activatedAt ?? f.createdAt),
      profile: { credentialId: user.login },
      _links: {
        self: { href: self, hints: { allow: ['GET', 'DELETE'] } },
        user: { href: userHref(user.id), hints: { allow: ['GET'] } },
      },
    };
  }

  function appUserJson(appId: string, u: AdminUserView, assignedAt: number) {
    return {
      id: u.id,
      externalId: null,
      created: iso(assignedAt),
      lastUpdated: iso(assignedAt),
      scope: 'USER',
      status: 'ACTIVE',
      statusChanged: iso(assignedAt),
      passwordChanged: null,
      syncState: 'DISABLED',
      credentials: { userName: u.login },
      profile: {},
      _links: {
        app: { href: `${baseUrl}/api/v1/apps/${appId}` },
        user: { href: userHref(u.id) },
      },
    };
  }

  /** Okta's `Link` headers: `self`, and `next` with the `after` cursor when there may be more. */
  function setLinks(reply: FastifyReply, req: FastifyRequest, next: string | undefined) {
    const url = new URL(req.url, baseUrl);
    const self = `${baseUrl}${url.pathname}${url.search}`;
    const links = [`<${self}>; rel="self"`];
    if (next !== undefined) {
      url.searchParams.set('after', next);
      links.push(`<${baseUrl}${url.pathname}${url.search}>; rel="next"`);
    }
    reply.header('link', links);
  }

  function userFilter(filter: string | undefined): ConditionSet<UserColumn> | undefined {
    if (!filter) return undefined;
    const parsed = parseOktaFilter(filter);
    if (!parsed.ok) throw new AppError('VALIDATION', [`filter: ${parsed.message}`]);
    return {
      combinator: parsed.combinator,
      terms: parsed.terms.map((t) => {
        const column = USER_FILTER[t.attribute];
        if (!column) throw new AppError('VALIDATION', [`filter: the attribute ${t.attribute} cannot be filtered on.`]);
        return { column, op: t.op, value: t.value };
      }),
    };
  }

  function logFilter(filter: string | undefined): ConditionSet<AuditColumn> | undefined {
    if (!filter) return undefined;
    const parsed = parseOktaFilter(filter);
    if (!parsed.ok) throw new AppError('VALIDATION', [`filter: ${parsed.message}`]);
    return {
      combinator: parsed.combinator,
      terms: parsed.terms.map((t) => {
        const column = LOG_FILTER[t.attribute];
        if (!column) throw new AppError('VALIDATION', [`filter: the attribute ${t.attribute} cannot be filtered on.`]);
        const value = column === 'outcome' ? (OUTCOME_FROM_OKTA[t.value.toUpperCase()] ?? t.value) : t.value;
        return { column, op: t.op, value };
      }),
    };
  }

  /** Resolves the firm of a new user from `profile.firmId` or `profile.organization` (a firm name). */
  async function firmOf(
    p: Principal,
    profile: { firmId?: string | undefined; organization?: string | null | undefined },
  ) {
    if (profile.firmId) return profile.firmId;
    if (profile.organization) {
      const found = await admin.findFirmByName(profile.organization);
      if (found) return found.id;
      throw new AppError('VALIDATION', [`profile.organization: no firm named "${profile.organization}".`]);
    }
    if (p.firmId && p.roles.includes('saa')) return p.firmId;
    throw new AppError('VALIDATION', ['profile.firmId: required (the firm of the user; see `traqs firm list`).']);
  }

  app.register(async (api) => {
    // Bodies are JSON; an empty body is accepted with `Content-Type: application/json`, as Okta
    // does for lifecycle calls. Cross-site forms cannot send the `Authorization` header, so the
    // SSWS token, not the content type, is what keeps these endpoints safe from CSRF.
    const defaultJson = api.getDefaultJsonParser('error', 'error');
    api.removeContentTypeParser('application/json');
    api.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      if (body === '' || body === undefined) return done(null, undefined);
      return defaultJson(req, body as string, done);
    });

    api.addHook('onRequest', async (req) => {
      const header = req.headers.authorization;
      const m = typeof header === 'string' ? /^SSWS\s+(\S{1,200})$/i.exec(header.trim()) : null;
      const principal = m?.[1] ? await admin.authenticateApiToken(m[1], requestContext(req)) : undefined;
      if (!principal) throw new AppError('INVALID_TOKEN', [], 'Invalid token provided');
      principals.set(req, principal);
    });
    api.addHook('preHandler', async (req) => {
      const hasBody = req.body !== undefined && req.body !== null;
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (hasBody && type !== 'application/json') {
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', ['Send the request body as application/json.']);
      }
    });

    // ---------------------------------------------------------------- users

    api.get('/api/v1/users', async (req, reply) => {
      const q = parseBody(userListQuery, req.query);
      if (q.search !== undefined) {
        throw new AppError('VALIDATION', ['search: not supported here; use filter or q.']);
      }
      const users = unwrap(
        await admin.listUsers(who(req), {
          ...(q.q ? { q: q.q } : {}),
          ...(q.filter ? { filter: userFilter(q.filter) } : {}),
          ...(q.after ? { afterId: q.after } : {}),
          limit: q.limit,
        }),
      );
      setLinks(reply, req, users.length === q.limit ? users.at(-1)?.id : undefined);
      return users.map(userJson);
    });

    api.post('/api/v1/users', { config: rateLimit }, async (req) => {
      const query = parseBody(createQuery, req.query);
      const body = parseBody(createUserBody, req.body);
      if (body.credentials?.password !== undefined || body.credentials?.recovery_question !== undefined) {
        throw new AppError('VALIDATION', [
          'credentials: an administrator never sets a password or recovery question; the user chooses them when activating.',
        ]);
      }
      const p = who(req);
      const { profile } = body;
      const login = (profile.login ?? profile.email ?? '').trim().toLowerCase();
      const email = (profile.email ?? profile.login ?? '').trim().toLowerCase();
      if (login !== email) {
        throw new AppError('VALIDATION', ['profile.login: the username is the email address (login = email).']);
      }
      const firmId = await firmOf(p, profile);
      const created = await admin.createUser(p, {
        email,
        firstName: profile.firstName ?? '',
        lastName: profile.lastName ?? '',
        firmId,
        activate: query.activate ?? true,
      });
      return userJson(unwrap(created));
    });

    api.get('/api/v1/users/:id', async (req) => {
      const { id } = parseBody(idParam, req.params);
      return userJson(unwrap(await admin.getUser(who(req), id)));
    });

    const updateUser = (replace: boolean) => async (req: FastifyRequest) => {
      const { id } = parseBody(idParam, req.params);
      const body = parseBody(updateUserBody, req.body);
      if (body.credentials !== undefined) {
        throw new AppError('VALIDATION', ['credentials: an administrator never sets a password or recovery question.']);
      }
      const p = who(req);
      const current = unwrap(await admin.getUser(p, id));
      const profile = body.profile ?? {};
      if (profile.login !== undefined && profile.login.trim().toLowerCase() !== current.login) {
        throw new AppError('VALIDATION', ['profile.login: the username cannot be changed.']);
      }
      if (profile.firmId !== undefined && profile.firmId !== current.firmId) {
        throw new AppError('VALIDATION', ['profile.firmId: a user cannot move to another firm.']);
      }
      const updated = await admin.updatePersonalInfo(p, current.id, {
        ...(profile.firstName !== undefined ? { firstName: profile.firstName } : {}),
        ...(profile.lastName !== undefined ? { lastName: profile.lastName } : {}),
        ...(profile.email !== undefined ? { email: profile.email } : {}),
        ...(profile.mobilePhone !== undefined || replace ? { mobilePhone: profile.mobilePhone ?? null } : {}),
        ...(profile.primaryPhone !== undefined || replace ? { primaryPhone: profile.primaryPhone ?? null } : {}),
      });
      return userJson(unwrap(updated));
    };
    // Okta: POST is a partial update, PUT replaces the profile.
    api.post('/api/v1/users/:id', { config: rateLimit }, updateUser(false));
    api.put('/api/v1/users/:id', { config: rateLimit }, updateUser(true));

    api.post('/api/v1/users/:id/lifecycle/:op', { config: rateLimit }, async (req) => {
      const { id, op } = parseBody(lifecycleParams, req.params);
      const query = parseBody(sendEmailQuery, req.query);
      const p = who(req);
      const noLinkToAdmin = () => {
        if (query.sendEmail === false) {
          throw new AppError('VALIDATION', [
            'sendEmail: must be true here; links go to the user by email, never to an administrator.',
          ]);
        }
      };
      switch (op) {
        case 'activate':
          noLinkToAdmin();
          unwrap(await admin.activateUser(p, id));
          return {};
        case 'reactivate':
          noLinkToAdmin();
          unwrap(await admin.resendEnrollment(p, id));
          return {};
        case 'unlock':
          unwrap(await admin.unlockUser(p, id));
          return {};
        case 'suspend':
          unwrap(await admin.suspendUser(p, id));
          return {};
        case 'unsuspend':
          unwrap(await admin.unsuspendUser(p, id));
          return {};
        case 'deactivate':
          unwrap(await admin.deactivateUser(p, id));
          return {};
        case 'reset_factors':
          unwrap(await admin.resetFactors(p, id));
          return {};
        case 'reset_password':
          noLinkToAdmin();
          unwrap(await admin.sendPasswordReset(p, id));
          return {};
        default:
          throw new AppError('NOT_FOUND', [], `Not found: Resource not found: lifecycle/${op.slice(0, 40)}`);
      }
    });

    // Okta: the first DELETE deactivates, a DELETE of a deactivated user deletes it.
    api.delete('/api/v1/users/:id', { config: rateLimit }, async (req, reply) => {
      const { id } = parseBody(idParam, req.params);
      const p = who(req);
      const user = unwrap(await admin.getUser(p, id));
      if (user.status === 'DEPROVISIONED') unwrap(await admin.deleteUser(p, user.id));
      else unwrap(await admin.deactivateUser(p, user.id));
      return reply.status(204).send();
    });

    api.get('/api/v1/users/:id/factors', async (req) => {
      const { id } = parseBody(idParam, req.params);
      const { user, factors } = unwrap(await admin.listFactors(who(req), id));
      return factors.map((f) => factorJson(user, f));
    });

    api.delete('/api/v1/users/:id/factors/:factorId', { config: rateLimit }, async (req, reply) => {
      const { id, factorId } = parseBody(factorParams, req.params);
      unwrap(await admin.resetFactor(who(req), id, factorId), 'Factor');
      return reply.status(204).send();
    });

    // ---------------------------------------------------------------- app assignments

    const appIdOf = (appId: string): App => {
      if (!APPS.includes(appId as App))
        throw new AppError('NOT_FOUND', [], `Not found: Resource not found: ${appId.slice(0, 40)} (AppInstance)`);
      return appId as App;
    };

    api.get('/api/v1/apps/:appId/users', async (req, reply) => {
      const appId = appIdOf(parseBody(appParams, req.params).appId);
      const page = parseBody(appPage, req.query);
      const rows = unwrap(
        await admin.listAppUsers(who(req), appId, {
          ...(page.after ? { afterId: page.after } : {}),
          limit: page.limit,
        }),
      );
      setLinks(reply, req, rows.length === page.limit ? rows.at(-1)?.user.id : undefined);
      return rows.map((r) => appUserJson(appId, r.user, r.assignedAt));
    });

    const assign = async (p: Principal, appId: App, userRef: string) => {
      unwrap(await admin.assignApp(p, userRef, appId));
      const r = unwrap(await admin.getAppUser(p, appId, userRef), 'AppUser');
      return appUserJson(appId, r.user, r.assignedAt);
    };

    api.post('/api/v1/apps/:appId/users', { config: rateLimit }, async (req) => {
      const appId = appIdOf(parseBody(appParams, req.params).appId);
      const body = parseBody(appAssignBody, req.body);
      return assign(who(req), appId, body.id);
    });

    api.get('/api/v1/apps/:appId/users/:userId', async (req) => {
      const params = parseBody(appUserParams, req.params);
      const appId = appIdOf(params.appId);
      const r = unwrap(await admin.getAppUser(who(req), appId, params.userId), 'AppUser');
      return appUserJson(appId, r.user, r.assignedAt);
    });

    api.put('/api/v1/apps/:appId/users/:userId', { config: rateLimit }, async (req) => {
      const params = parseBody(appUserParams, req.params);
      return assign(who(req), appIdOf(params.appId), params.userId);
    });

    api.delete('/api/v1/apps/:appId/users/:userId', { config: rateLimit }, async (req, reply) => {
      const params = parseBody(appUserParams, req.params);
      unwrap(await admin.unassignApp(who(req), params.userId, appIdOf(params.appId)), 'AppUser');
      return reply.status(204).send();
    });

    // ---------------------------------------------------------------- System Log

    api.get('/api/v1/logs', async (req, reply) => {
      const q = parseBody(logQuery, req.query);
      const now = deps.clock();
      const until = parseTime(q.until, 'until');
      // Okta: since defaults to 7 days before until (or now).
      const since = parseTime(q.since, 'since') ?? (until ?? now) - 7 * 86_400_000;
      const order = q.sortOrder === 'DESCENDING' ? 'desc' : 'asc';
      const filter = logFilter(q.filter);
      const keywords = q.q?.split(/\s+/).filter(Boolean).slice(0, 10);
      const rows = unwrap(
        await admin.readLog(who(req), {
          since,
          ...(until !== undefined ? { until } : {}),
          ...(filter ? { filter } : {}),
          ...(keywords?.length ? { keywords } : {}),
          ...(q.after ? { afterId: Number(q.after) } : {}),
          order,
          limit: q.limit,
        }),
      );
      // Okta: a bounded query (with `until`) ends; a polling query (without) always has a next
      // link, to the events that come after the last one seen.
      const last = rows.at(-1)?.id;
      let next: string | undefined;
      if (rows.length === q.limit && last !== undefined) next = String(last);
      else if (until === undefined && order === 'asc') next = String(last ?? q.after ?? (await admin.lastLogCursor()));
      setLinks(reply, req, next);
      return logEvents(rows);
    });

    async function logEvents(rows: AuditRow[]) {
      const ids = rows.flatMap((r) => [r.actor_id, r.target_id]).filter((x): x is string => !!x);
      const { users, tokens } = await admin.describePrincipals(ids);
      const byId = new Map<string, { type: string; alternateId: string; displayName: string }>();
      for (const u of users) {
        byId.set(u.id, { type: 'User', alternateId: u.login, displayName: `${u.first_name} ${u.last_name}` });
      }
      for (const t of tokens) byId.set(t.id, { type: 'ApiToken', alternateId: t.id, displayName: t.name });
      const entity = (id: string) => {
        const known = byId.get(id);
        if (known) return { id, ...known, detailEntry: null };
        const type = id.startsWith('00u')
          ? 'User'
          : id.startsWith('req')
            ? 'AdminRequest'
            : id.startsWith('rpt')
              ? 'SuspiciousActivityReport'
              : id.startsWith('fir')
                ? 'Firm'
                : id.startsWith('00T')
                  ? 'ApiToken'
                  : 'Resource';
        return { id, type, alternateId: id, displayName: id, detailEntry: null };
      };
      return rows.map((r) => {
        const details = parseDetails(r.details);
        return {
          uuid: eventUuid(environmentId, r.id),
          published: iso(r.at),
          eventType: r.action,
          version: '0',
          severity: r.outcome === 'success' ? 'INFO' : 'WARN',
          legacyEventType: null,
          displayMessage: DISPLAY_MESSAGES[r.action] ?? r.action,
          actor: r.actor_id
            ? entity(r.actor_id)
            : { id: 'system', type: 'SystemPrincipal', alternateId: 'system', displayName: 'TRAQS', detailEntry: null },
          client: {
            userAgent: r.user_agent ? { rawUserAgent: r.user_agent, os: null, browser: null } : null,
            zone: null,
            device: null,
            id: null,
            ipAddress: r.ip,
            geographicalContext: null,
          },
          outcome: {
            result: OUTCOME_TO_OKTA[r.outcome] ?? r.outcome.toUpperCase(),
            reason: typeof details.reason === 'string' ? details.reason : null,
          },
          target: r.target_id ? [entity(r.target_id)] : [],
          transaction: { type: 'WEB', id: String(r.id), detail: {} },
          debugContext: { debugData: details },
          authenticationContext: null,
          securityContext: null,
          request: { ipChain: r.ip ? [{ ip: r.ip }] : [] },
        };
      });
    }
  });
}
