import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ADMIN_ROLES, type App, type AuthMode } from '../../accounts/model.ts';
import type { AuditRow } from '../../audit/repository.ts';
import { parseAssertionJson, RESPONSE_FIELD_MAX } from '../../authn/factors/webauthn/inputs.ts';
import type { SessionManager } from '../../authn/sessions.ts';
import type { ProfileService, Who } from '../../profile/service.ts';
import type { PageContext } from '../../web/layout.tsx';
import { sendPage } from '../../web/render.ts';
import { requestContext } from '../../web/validate.ts';
import { hasPermission, type Permission } from '../permissions.ts';
import type { AuditColumn, AuditPageQuery, Condition } from '../query-repository.ts';
import type { AdminResult, AdminService, Principal } from '../service.ts';
import { toCsv } from './csv.ts';
import {
  AdminVerifyPage,
  type AuditFilterForm,
  AuditPage,
  type ConsoleLinks,
  EMPTY_IDP_FORM,
  type FirmIdentityProvider,
  FirmPage,
  ForbiddenPage,
  IDP_FIELD_MAX,
  type IdentityProviderForm,
  IdentityProvidersPage,
  LandingPage,
  type MetadataUpdateForm,
  type NewUserForm,
  type Notice,
  OperationsPage,
  ReportPage,
  SupportPage,
  UserPage,
} from './views.tsx';

/** What the consoles need: the administration service, the profile's re-verification, sessions. */
export interface AdminConsoleDeps {
  admin: AdminService;
  profile: ProfileService;
  sessions: SessionManager;
  sidCookie: string;
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
  /** The identity provider of a firm (issue #8), shown read-only to support; absent: not shown. */
  firmIdentityProvider?: (firmId: string) => Promise<FirmIdentityProvider | undefined>;
}

interface Staff {
  who: Who;
  principal: Principal;
}

const ID = /^[A-Za-z0-9]{1,64}$/;
/** Where "Verify it's you" may return to: console pages only (OWASP Unvalidated Redirects). */
const NEXT = /^\/admin(?:\/[A-Za-z0-9_-]{1,64}){0,3}$/;
const VIEW_LIMIT = 200;
/**
 * `POST /admin/sso` only: pasted IdP metadata may be 256 KiB, and URL-encoding can triple it (every
 * `<` is `%3C`); every other form keeps the 64 KiB limit of `setupWeb`.
 */
const SSO_BODY_LIMIT = 1024 * 1024;
const EXPORT_LIMIT = 10_000;

const str = (max: number) => z.string().max(max).default('');

function form<T extends z.ZodRawShape>(shape: T, body: unknown) {
  const parsed = z.object(shape).safeParse(body ?? {});
  return parsed.success ? parsed.data : undefined;
}

function queryOf(req: FastifyRequest): Record<string, string> {
  const q = (req.query ?? {}) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(q)) if (typeof v === 'string') out[k] = v.slice(0, 200);
  return out;
}

function linksFor(p: Principal): ConsoleLinks {
  return {
    firm: hasPermission(p.roles, 'requests.create'),
    operations: hasPermission(p.roles, 'requests.decide'),
    support: hasPermission(p.roles, 'factors.reset'),
    sso: hasPermission(p.roles, 'idp.manage'),
    audit: hasPermission(p.roles, 'logs.read'),
  };
}

function noticeOf<T>(result: AdminResult<T>, success: string): Notice {
  return result.ok ? { ok: true, text: success } : { ok: false, text: result.message };
}

function statusOf<T>(result: AdminResult<T>): number {
  if (result.ok) return 200;
  switch (result.code) {
    case 'DENIED':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'CONFLICT':
    case 'INVALID_STATE':
      return 409;
    default:
      return 400;
  }
}

/** `YYYY-MM-DD` or an ISO time, as UTC milliseconds; undefined when empty or unreadable. */
function parseTime(value: string): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The audit viewer's filter as a `readLog` query (the same for the page and both exports). */
export function auditQueryOf(f: AuditFilterForm, limit: number): AuditPageQuery {
  const terms: Condition<AuditColumn>[] = [];
  if (f.actor) terms.push({ column: 'actor_id', op: 'eq', value: f.actor });
  if (f.target) terms.push({ column: 'target_id', op: 'eq', value: f.target });
  if (f.action) terms.push({ column: 'action', op: 'sw', value: f.action });
  if (['success', 'failure', 'denied'].includes(f.outcome))
    terms.push({ column: 'outcome', op: 'eq', value: f.outcome });
  const until = parseTime(f.to);
  return {
    since: parseTime(f.from) ?? 0,
    ...(until !== undefined ? { until } : {}),
    ...(terms.length ? { filter: { combinator: 'and' as const, terms } } : {}),
    order: 'desc',
    limit,
  };
}

const AUDIT_COLUMNS = ['id', 'time', 'actor', 'action', 'target', 'outcome', 'ip', 'userAgent', 'details'] as const;

function auditRecord(e: AuditRow) {
  return {
    id: e.id,
    time: new Date(e.at).toISOString(),
    actor: e.actor_id,
    action: e.action,
    target: e.target_id,
    outcome: e.outcome,
    ip: e.ip,
    userAgent: e.user_agent,
    details: e.details,
  };
}

/**
 * The administration consoles under `/admin` (issue #7): landing, the SAA's firm, Operations,
 * Support, a user page and the audit log with CSV/JSON export. Every route needs a signed-in idp
 * session of a user holding an administrative role; every action is the service's, which decides
 * access (the pages only choose what to show); every form carries a CSRF token; sensitive actions
 * need the administrator's own second factor verified in the last 5 minutes (as the profile does).
 */
export function registerAdminConsoles(app: FastifyInstance, deps: AdminConsoleDeps): void {
  const { admin, profile } = deps;
  const staffOf = new WeakMap<FastifyRequest, Staff>();

  const pageCtx = (reply: FastifyReply, s: Staff): PageContext => ({
    ...deps.page(),
    csrfToken: reply.generateCsrf(),
    signedInAs: s.who.user.login,
  });

  async function requireStaff(req: FastifyRequest, reply: FastifyReply) {
    const session = await deps.sessions.resume(req.cookies[deps.sidCookie]);
    const user = session ? await profile.findSignedInUser(session) : undefined;
    if (!session || !user) return reply.redirect('/signin', 303);
    const principal = await admin.principalForUser(user.id, requestContext(req));
    const who = { user, session };
    if (!principal?.roles.some((r) => (ADMIN_ROLES as readonly string[]).includes(r))) {
      return sendPage(
        reply,
        <ForbiddenPage
          ctx={{ ...deps.page(), csrfToken: reply.generateCsrf(), signedInAs: user.login }}
          message="Administration is for FINRA staff and firm Super Account Administrators. Your account has no administrative role."
        />,
        403,
      );
    }
    staffOf.set(req, { who, principal });
  }
  const staff = (req: FastifyRequest): Staff => {
    const s = staffOf.get(req);
    if (!s) throw new Error('admin console route without requireStaff');
    return s;
  };
  const get = { preHandler: requireStaff };
  const post = { preHandler: [app.csrfProtection, requireStaff] };

  const forbidden = (reply: FastifyReply, s: Staff, message: string) =>
    sendPage(reply, <ForbiddenPage ctx={pageCtx(reply, s)} message={message} />, 403);

  /** Sends the browser to "Verify it's you" (then back to `back`) unless verified recently. */
  function needsVerification(reply: FastifyReply, s: Staff, back: string): boolean {
    if (profile.isRecentlyVerified(s.who.session)) return false;
    reply.redirect(`/admin/verify?next=${encodeURIComponent(NEXT.test(back) ? back : '/admin')}`, 303);
    return true;
  }

  const paramId = (req: FastifyRequest): string | undefined => {
    const id = (req.params as Record<string, unknown>).id;
    return typeof id === 'string' && ID.test(id) ? id : undefined;
  };

  // ------------------------------------------------------------------ landing

  app.get('/admin', get, async (req, reply) => {
    const s = staff(req);
    return sendPage(reply, <LandingPage ctx={pageCtx(reply, s)} links={linksFor(s.principal)} />);
  });

  // ------------------------------------------------------------------ SAA

  async function renderFirm(
    req: FastifyRequest,
    reply: FastifyReply,
    notice?: Notice,
    formValues?: NewUserForm,
    status = 200,
  ) {
    const s = staff(req);
    const users = await admin.listUsers(s.principal, s.principal.firmId ? { firmId: s.principal.firmId } : {});
    const requests = await admin.listRequests(s.principal, s.principal.firmId ? { firmId: s.principal.firmId } : {});
    if (!users.ok) return forbidden(reply, s, users.message);
    if (!requests.ok) return forbidden(reply, s, requests.message);
    return sendPage(
      reply,
      <FirmPage
        ctx={pageCtx(reply, s)}
        links={linksFor(s.principal)}
        users={users.value}
        requests={requests.value}
        form={formValues}
        notice={notice}
      />,
      status,
    );
  }

  app.get('/admin/firm', get, async (req, reply) => renderFirm(req, reply));

  app.post('/admin/firm/requests', post, async (req, reply) => {
    const s = staff(req);
    const body = form(
      {
        firstName: str(200),
        lastName: str(200),
        email: str(300),
        apps: z.union([z.string().max(20), z.array(z.string().max(20)).max(5)]).optional(),
      },
      req.body,
    );
    const apps = body?.apps === undefined ? [] : Array.isArray(body.apps) ? body.apps : [body.apps];
    const values: NewUserForm = {
      firstName: body?.firstName ?? '',
      lastName: body?.lastName ?? '',
      email: body?.email ?? '',
      apps,
    };
    const result = await admin.requestNewUser(s.principal, { ...values, apps: apps as App[] });
    const notice = noticeOf(result, `Requested username ${values.email.trim().toLowerCase()}; Operations will decide.`);
    return renderFirm(req, reply, notice, result.ok ? undefined : values, statusOf(result));
  });

  // ------------------------------------------------------------------ Operations

  async function renderOperations(req: FastifyRequest, reply: FastifyReply, notice?: Notice, status = 200) {
    const s = staff(req);
    if (!hasPermission(s.principal.roles, 'requests.decide')) {
      return forbidden(reply, s, 'The Operations console is for FINRA Operations.');
    }
    const q = (queryOf(req).q ?? '').trim();
    const requests = await admin.listRequests(s.principal, { status: 'pending' });
    if (!requests.ok) return forbidden(reply, s, requests.message);
    const reports = await admin.listReports(s.principal, { status: 'open' });
    const found = q ? await admin.listUsers(s.principal, { q, limit: 50 }) : undefined;
    return sendPage(
      reply,
      <OperationsPage
        ctx={pageCtx(reply, s)}
        links={linksFor(s.principal)}
        requests={requests.value}
        reports={reports.ok ? reports.value : []}
        q={q}
        found={found?.ok ? found.value : undefined}
        notice={notice}
      />,
      status,
    );
  }

  app.get('/admin/operations', get, async (req, reply) => renderOperations(req, reply));

  app.post('/admin/requests/:id/approve', post, async (req, reply) => {
    const s = staff(req);
    if (needsVerification(reply, s, '/admin/operations')) return reply;
    const id = paramId(req) ?? '';
    const result = await admin.approveRequest(s.principal, id);
    return renderOperations(req, reply, noticeOf(result, 'Request approved.'), statusOf(result));
  });

  app.post('/admin/requests/:id/reject', post, async (req, reply) => {
    const s = staff(req);
    const body = form({ reason: str(1000) }, req.body);
    const result = await admin.rejectRequest(s.principal, paramId(req) ?? '', body?.reason ?? '');
    return renderOperations(req, reply, noticeOf(result, 'Request rejected.'), statusOf(result));
  });

  // ------------------------------------------------------------------ reports

  async function renderReport(req: FastifyRequest, reply: FastifyReply, notice?: Notice, status = 200) {
    const s = staff(req);
    const report = await admin.getReport(s.principal, paramId(req) ?? '');
    if (!report.ok) {
      return report.code === 'DENIED'
        ? forbidden(reply, s, report.message)
        : sendPage(reply, <ForbiddenPage ctx={pageCtx(reply, s)} message={report.message} />, 404);
    }
    return sendPage(
      reply,
      <ReportPage ctx={pageCtx(reply, s)} links={linksFor(s.principal)} report={report.value} notice={notice} />,
      status,
    );
  }

  app.get('/admin/reports/:id', get, async (req, reply) => renderReport(req, reply));

  const reportAction = (
    path: string,
    sensitive: boolean,
    run: (p: Principal, id: string, body: Record<string, string>) => Promise<AdminResult<unknown>>,
    success: string,
  ) =>
    app.post(`/admin/reports/:id/${path}`, post, async (req, reply) => {
      const s = staff(req);
      const id = paramId(req) ?? '';
      if (sensitive && needsVerification(reply, s, `/admin/reports/${id}`)) return reply;
      const body = form({ note: str(1000) }, req.body) ?? { note: '' };
      const result = await run(s.principal, id, body);
      return renderReport(req, reply, noticeOf(result, success), statusOf(result));
    });

  reportAction('sign-out', true, (p, id) => admin.signOutReportedUser(p, id), 'Signed out and refresh tokens revoked.');
  reportAction('suspend', true, (p, id) => admin.suspendReportedUser(p, id), 'User suspended.');
  reportAction('close', false, (p, id, b) => admin.closeReport(p, id, b.note ?? ''), 'Report closed.');

  // ------------------------------------------------------------------ Support

  app.get('/admin/support', get, async (req, reply) => {
    const s = staff(req);
    if (!hasPermission(s.principal.roles, 'factors.reset')) {
      return forbidden(reply, s, 'The Support console is for technical support.');
    }
    const q = (queryOf(req).q ?? '').trim();
    const found = q ? await admin.listUsers(s.principal, { q, limit: 50 }) : undefined;
    if (found && !found.ok) return forbidden(reply, s, found.message);
    return sendPage(
      reply,
      <SupportPage
        ctx={pageCtx(reply, s)}
        links={linksFor(s.principal)}
        q={q}
        found={found?.ok ? found.value : undefined}
      />,
    );
  });

  // ------------------------------------------------------------------ user page

  const can = (p: Principal, permission: Permission) => hasPermission(p.roles, permission);

  async function renderUser(req: FastifyRequest, reply: FastifyReply, notice?: Notice, status = 200) {
    const s = staff(req);
    const p = s.principal;
    const user = await admin.getUser(p, paramId(req) ?? '');
    if (!user.ok) {
      return user.code === 'DENIED'
        ? forbidden(reply, s, user.message)
        : sendPage(reply, <ForbiddenPage ctx={pageCtx(reply, s)} message={user.message} />, 404);
    }
    const support = can(p, 'factors.reset');
    const factors = support ? await admin.listFactors(p, user.value.id) : undefined;
    const tokens = can(p, 'refreshTokens.read') ? await admin.listRefreshTokens(p, user.value.id) : undefined;
    const firmIdp =
      support && deps.firmIdentityProvider ? await deps.firmIdentityProvider(user.value.firmId) : undefined;
    return sendPage(
      reply,
      <UserPage
        ctx={pageCtx(reply, s)}
        links={linksFor(p)}
        user={user.value}
        factors={factors?.ok ? factors.value.factors : undefined}
        tokens={tokens?.ok ? tokens.value : undefined}
        {...(support && deps.firmIdentityProvider ? { firmIdp: firmIdp ?? null } : {})}
        can={{
          operations: can(p, 'users.suspend'),
          support,
          requestDeactivation: can(p, 'requests.create'),
        }}
        notice={notice}
      />,
      status,
    );
  }

  app.get('/admin/users/:id', get, async (req, reply) => renderUser(req, reply));

  const BODY = {
    factorId: str(64),
    tokenId: str(128),
    app: str(20),
    mode: str(20),
    reason: str(1000),
    firstName: str(200),
    lastName: str(200),
    email: str(300),
    mobilePhone: str(100),
    primaryPhone: str(100),
    from: str(10),
  };
  type Body = { [K in keyof typeof BODY]: string };

  const userAction = (
    path: string,
    sensitive: boolean,
    run: (p: Principal, id: string, body: Body) => Promise<AdminResult<unknown>>,
    success: string,
  ) =>
    app.post(`/admin/users/:id/${path}`, post, async (req, reply) => {
      const s = staff(req);
      const id = paramId(req) ?? '';
      if (sensitive && needsVerification(reply, s, `/admin/users/${id}`)) return reply;
      const body = form(BODY, req.body);
      if (!body) return renderUser(req, reply, { ok: false, text: 'A field is too long.' }, 400);
      const result = await run(s.principal, id, body);
      if (path === 'deactivation-request' && body.from === 'firm') {
        return renderFirm(
          req,
          reply,
          noticeOf(result, 'Deactivation requested; Operations will decide.'),
          undefined,
          statusOf(result),
        );
      }
      return renderUser(req, reply, noticeOf(result, success), statusOf(result));
    });

  userAction(
    'deactivation-request',
    false,
    (p, id, b) => admin.requestDeactivation(p, id, { reason: b.reason }),
    'Deactivation requested; Operations will decide.',
  );
  userAction(
    'resend-enrollment',
    false,
    (p, id) => admin.resendEnrollment(p, id),
    'Enrollment email sent; the old link no longer works.',
  );
  userAction(
    'personal-info',
    false,
    (p, id, b) =>
      admin.updatePersonalInfo(p, id, {
        firstName: b.firstName,
        lastName: b.lastName,
        email: b.email,
        mobilePhone: b.mobilePhone || null,
        primaryPhone: b.primaryPhone || null,
      }),
    'Personal information saved.',
  );
  userAction('unlock', false, (p, id) => admin.unlockUser(p, id), 'User unlocked.');
  userAction('suspend', true, (p, id) => admin.suspendUser(p, id), 'User suspended and signed out.');
  userAction('unsuspend', false, (p, id) => admin.unsuspendUser(p, id), 'User unsuspended.');
  userAction('deactivate', true, (p, id) => admin.deactivateUser(p, id), 'User deactivated.');
  userAction(
    'reset-factors',
    true,
    (p, id) => admin.resetFactors(p, id),
    'All security methods reset; the user sets up a new one at the next sign-in.',
  );
  userAction('reset-factor', true, (p, id, b) => admin.resetFactor(p, id, b.factorId), 'Security method reset.');
  userAction('password-reset', true, (p, id) => admin.sendPasswordReset(p, id), 'Password-reset email sent.');
  userAction('auth-mode', true, (p, id, b) => admin.setAuthMode(p, id, b.mode as AuthMode), 'Sign-in mode switched.');
  userAction('assign-app', false, (p, id, b) => admin.assignApp(p, id, b.app), 'App assigned.');
  userAction('unassign-app', false, (p, id, b) => admin.unassignApp(p, id, b.app), 'App unassigned.');
  userAction('revoke-token', true, (p, id, b) => admin.revokeRefreshToken(p, id, b.tokenId), 'Refresh token revoked.');

  // ------------------------------------------------------------------ firm single sign-on (issue #8)

  type IdpErrors = Partial<Record<keyof IdentityProviderForm | 'form', string>>;

  async function renderSso(
    req: FastifyRequest,
    reply: FastifyReply,
    options: { notice?: Notice; form?: IdentityProviderForm; errors?: IdpErrors; update?: MetadataUpdateForm } = {},
    status = 200,
  ) {
    const s = staff(req);
    const overview = await admin.listIdentityProviders(s.principal);
    if (!overview.ok) {
      return overview.code === 'DENIED'
        ? forbidden(reply, s, 'Firm single sign-on is managed by technical support.')
        : sendPage(reply, <ForbiddenPage ctx={pageCtx(reply, s)} message={overview.message} />, 404);
    }
    return sendPage(
      reply,
      <IdentityProvidersPage
        ctx={pageCtx(reply, s)}
        links={linksFor(s.principal)}
        providers={overview.value.providers.map((v) => ({ ...v, firmName: v.firmName ?? v.firmId }))}
        firms={overview.value.firms}
        form={options.form ?? EMPTY_IDP_FORM}
        errors={options.errors ?? {}}
        update={options.update}
        notice={options.notice}
      />,
      status,
    );
  }

  app.get('/admin/sso', get, async (req, reply) => renderSso(req, reply));

  /** The Add form's values (the secret apart, never sent back) and the fields in error. */
  function idpFormOf(body: unknown): { form: IdentityProviderForm; clientSecret: string; errors: IdpErrors } {
    const raw = (body ?? {}) as Record<string, unknown>;
    const errors: IdpErrors = {};
    const limits = Object.entries(IDP_FIELD_MAX) as [keyof typeof IDP_FIELD_MAX, number][];
    const parsed = z.object(Object.fromEntries(limits.map(([k, max]) => [k, str(max)]))).safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const key = String(issue.path[0] ?? '') as keyof typeof IDP_FIELD_MAX;
        const max = IDP_FIELD_MAX[key];
        if (max && key !== 'clientSecret') errors[key] = `At most ${max.toLocaleString('en-US')} characters.`;
        else errors.form = max ? `The client secret is longer than ${max} characters.` : 'Fill in the form again.';
      }
    }
    const text = (key: keyof typeof IDP_FIELD_MAX) =>
      typeof raw[key] === 'string' ? raw[key].slice(0, IDP_FIELD_MAX[key]) : '';
    const form: IdentityProviderForm = {
      firmId: text('firmId'),
      name: text('name').trim(),
      protocol: text('protocol'),
      metadataXml: text('metadataXml'),
      userAttribute: text('userAttribute').trim(),
      issuer: text('issuer').trim(),
      clientId: text('clientId').trim(),
      userClaim: text('userClaim').trim() || EMPTY_IDP_FORM.userClaim,
    };
    if (!form.firmId) errors.firmId ??= 'Choose a firm.';
    if (!form.name) errors.name ??= 'Enter a display name.';
    if (form.protocol !== 'saml' && form.protocol !== 'oidc') errors.protocol = 'Choose SAML 2.0 or OpenID Connect.';
    if (form.protocol === 'saml' && !form.metadataXml.trim()) errors.metadataXml ??= "Paste the IdP's metadata XML.";
    if (form.protocol === 'oidc' && !form.issuer) errors.issuer ??= 'Enter the issuer URL.';
    if (form.protocol === 'oidc' && !form.clientId) errors.clientId ??= 'Enter the client id.';
    return { form, clientSecret: text('clientSecret'), errors };
  }

  app.post('/admin/sso', { ...post, bodyLimit: SSO_BODY_LIMIT }, async (req, reply) => {
    const s = staff(req);
    if (can(s.principal, 'idp.manage') && needsVerification(reply, s, '/admin/sso')) return reply;
    const { form: f, clientSecret, errors } = idpFormOf(req.body);
    // Without the permission the page answers 403 whatever was posted (`renderSso` asks the service).
    if (Object.keys(errors).length) return renderSso(req, reply, { form: f, errors }, 400);
    const result = await admin.addIdentityProvider(
      s.principal,
      f.protocol === 'saml'
        ? {
            protocol: 'saml',
            firmId: f.firmId,
            name: f.name,
            metadataXml: f.metadataXml,
            metadataSource: 'pasted in the Support console',
            ...(f.userAttribute ? { userAttribute: f.userAttribute } : {}),
          }
        : {
            protocol: 'oidc',
            firmId: f.firmId,
            name: f.name,
            issuer: f.issuer,
            clientId: f.clientId,
            clientSecret,
            userClaim: f.userClaim,
          },
    );
    if (!result.ok) {
      if (result.code === 'DENIED') return forbidden(reply, s, result.message);
      return renderSso(req, reply, { form: f, errors: { form: result.message } }, statusOf(result));
    }
    const v = result.value;
    const ours =
      v.protocol === 'saml' ? `our SP metadata URL ${v.sp.metadataUrl}` : `the redirect URI ${v.sp.redirectUri}`;
    return renderSso(req, reply, { notice: { ok: true, text: `Added ${v.name}. Give the firm ${ours}.` } });
  });

  // A key rollover or a new SSO URL at the same IdP: pasted metadata, like Add (never a URL: SSRF).
  app.post('/admin/sso/:id/metadata', { ...post, bodyLimit: SSO_BODY_LIMIT }, async (req, reply) => {
    const s = staff(req);
    if (can(s.principal, 'idp.manage') && needsVerification(reply, s, '/admin/sso')) return reply;
    const id = paramId(req) ?? '';
    const raw = (req.body ?? {}) as Record<string, unknown>;
    const metadataXml = typeof raw.metadataXml === 'string' ? raw.metadataXml : '';
    const max = IDP_FIELD_MAX.metadataXml;
    const invalid =
      metadataXml.length > max
        ? `At most ${max.toLocaleString('en-US')} characters.`
        : metadataXml.trim()
          ? undefined
          : "Paste the IdP's new metadata XML.";
    const update = { id, metadataXml: metadataXml.slice(0, max) };
    // Without the permission the page answers 403 whatever was posted (`renderSso` asks the service).
    if (invalid && can(s.principal, 'idp.manage'))
      return renderSso(req, reply, { update: { ...update, error: invalid } }, 400);
    const result = await admin.updateIdentityProviderMetadata(s.principal, id, update.metadataXml);
    if (!result.ok) {
      if (result.code === 'DENIED') return forbidden(reply, s, result.message);
      return renderSso(req, reply, { update: { ...update, error: result.message } }, statusOf(result));
    }
    const { view: v, change } = result.value;
    const what = [
      change.ssoUrl ? `SSO URL now ${change.ssoUrl.after}` : '',
      change.certificatesAdded.length ? `${change.certificatesAdded.length} signing certificate(s) added` : '',
      change.certificatesRemoved.length ? `${change.certificatesRemoved.length} removed` : '',
    ].filter(Boolean);
    const text = change.changed
      ? `Updated the metadata of ${v.name}${what.length ? `: ${what.join(', ')}` : ''}. Our SP metadata and ACS URLs are unchanged.`
      : `The metadata of ${v.name} is unchanged.`;
    return renderSso(req, reply, { notice: { ok: true, text } });
  });

  app.post('/admin/sso/:id/remove', post, async (req, reply) => {
    const s = staff(req);
    if (can(s.principal, 'idp.manage') && needsVerification(reply, s, '/admin/sso')) return reply;
    const result = await admin.removeIdentityProvider(s.principal, paramId(req) ?? '');
    if (!result.ok && result.code === 'DENIED') return forbidden(reply, s, result.message);
    const removed = "Identity provider removed: the firm's federated users cannot sign in until another is added.";
    return renderSso(req, reply, { notice: noticeOf(result, removed) }, statusOf(result));
  });

  // ------------------------------------------------------------------ audit log

  const auditFilter = (req: FastifyRequest): AuditFilterForm => {
    const q = queryOf(req);
    return {
      actor: (q.actor ?? '').trim(),
      target: (q.target ?? '').trim(),
      action: (q.action ?? '').trim(),
      outcome: (q.outcome ?? '').trim(),
      from: (q.from ?? '').trim(),
      to: (q.to ?? '').trim(),
    };
  };
  const filterQueryString = (f: AuditFilterForm) =>
    new URLSearchParams(Object.entries(f).filter(([, v]) => v !== '')).toString();

  app.get('/admin/audit', get, async (req, reply) => {
    const s = staff(req);
    const f = auditFilter(req);
    const events = await admin.readLog(s.principal, auditQueryOf(f, VIEW_LIMIT));
    if (!events.ok) return forbidden(reply, s, events.message);
    return sendPage(
      reply,
      <AuditPage
        ctx={pageCtx(reply, s)}
        links={linksFor(s.principal)}
        filter={f}
        query={filterQueryString(f)}
        events={events.value}
        limit={VIEW_LIMIT}
        exportLimit={EXPORT_LIMIT}
      />,
    );
  });

  app.get('/admin/audit.csv', get, async (req, reply) => {
    const s = staff(req);
    const events = await admin.readLog(s.principal, auditQueryOf(auditFilter(req), EXPORT_LIMIT));
    if (!events.ok) return forbidden(reply, s, events.message);
    const rows = events.value.map(auditRecord).map((r) => AUDIT_COLUMNS.map((c) => r[c]));
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', 'attachment; filename="audit-log.csv"')
      .send(toCsv([[...AUDIT_COLUMNS], ...rows]));
  });

  app.get('/admin/audit.json', get, async (req, reply) => {
    const s = staff(req);
    const events = await admin.readLog(s.principal, auditQueryOf(auditFilter(req), EXPORT_LIMIT));
    if (!events.ok) return forbidden(reply, s, events.message);
    return reply
      .type('application/json; charset=utf-8')
      .header('content-disposition', 'attachment; filename="audit-log.json"')
      .send(JSON.stringify(events.value.map(auditRecord)));
  });

  // ------------------------------------------------------------------ "Verify it's you"

  async function renderVerify(
    req: FastifyRequest,
    reply: FastifyReply,
    next: string,
    options: { factorId?: string | undefined; error?: string | undefined } = {},
    status = 200,
  ) {
    const s = staff(req);
    const factors = await profile.verificationFactors(s.who.user);
    const chosen = factors.find((f) => f.id === options.factorId) ?? factors[0];
    const fastPassOptions =
      chosen?.factor_type === 'webauthn' ? await profile.reverifyOptions(s.who, chosen.id) : undefined;
    return sendPage(
      reply,
      <AdminVerifyPage
        ctx={pageCtx(reply, s)}
        factors={factors}
        chosen={chosen}
        fastPassOptions={fastPassOptions}
        next={next}
        error={options.error}
      />,
      status,
    );
  }

  app.get('/admin/verify', get, async (req, reply) => {
    const q = queryOf(req);
    const next = q.next && NEXT.test(q.next) ? q.next : '/admin';
    if (profile.isRecentlyVerified(staff(req).who.session)) return reply.redirect(next, 303);
    return renderVerify(req, reply, next, { factorId: q.factor });
  });

  app.post('/admin/verify', post, async (req, reply) => {
    const body = form(
      { factorId: str(40), passCode: str(20), response: str(RESPONSE_FIELD_MAX), next: str(200) },
      req.body,
    );
    const next = body?.next && NEXT.test(body.next) ? body.next : '/admin';
    // FastPass posts the browser's answer in `response`; a code factor posts `passCode`.
    const assertion = body?.response ? parseAssertionJson(body.response) : undefined;
    if (body?.response && !assertion) {
      const noAnswer = 'FastPass did not answer. Choose the button and follow the prompt of your computer.';
      return renderVerify(req, reply, next, { factorId: body.factorId, error: noAnswer }, 400);
    }
    const { who } = staff(req);
    const result = assertion
      ? await profile.reverifyWithFastPass(who, body?.factorId ?? '', assertion, requestContext(req))
      : await profile.reverify(who, body?.factorId ?? '', body?.passCode ?? '', requestContext(req));
    switch (result.kind) {
      case 'verified':
        return reply.redirect(next, 303);
      case 'signed-out':
        reply.clearCookie(deps.sidCookie, { path: '/' });
        return reply.redirect('/signin', 303);
      case 'retry':
        return renderVerify(req, reply, next, { factorId: body?.factorId, error: result.error }, 403);
    }
  });
}
