import { randomUUID } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../lib/tokens.ts';
import { ErrorPage } from '../web/error-page.tsx';
import { AppError } from '../web/errors.ts';
import type { PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';
import { requestContext } from '../web/validate.ts';
import { defaultTokenLabel, parseTokenLabel } from './label.ts';
import { registerManual } from './manual.tsx';
import type { OidcProblem, PortalOidc } from './oidc-client.ts';
import { decodePendingFlow, encodePendingFlow, type PendingFlow } from './pending-cookie.ts';
import type { PortalService, PortalUser } from './service.ts';
import {
  AppNotAssignedPage,
  FlowProblemPage,
  PortalHome,
  ProgrammaticPage,
  parseProgrammaticNotice,
  type TokenFacts,
  TokenIssuedPage,
} from './views.tsx';

export interface PortalRouteDeps {
  service: PortalService;
  oidc: PortalOidc;
  clock: Clock;
  cookiePrefix: string;
  secureCookies: boolean;
  /** The portal's public URL (no trailing slash): redirect URIs are built from it, never from `Host`. */
  portalUrl: string;
  /** The idp's public URL, for the link to the MFA profile. */
  idpUrl: string;
  /** The download API's public URL: the Manual page lists and fetches files there as the user. */
  downloadUrl: string;
  /** How long a redirect to the idp may take to come back (signing in with MFA included). */
  flowMinutes: number;
  facts: TokenFacts;
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
}

/** Where the browser may return after signing in: only the portal's own pages (no open redirect). */
const RETURN_PATHS = new Set(['/', '/api/programmatic', '/api/manual']);
const TOKEN_ID = /^[0-9a-f]{64}$/;
/** An OAuth error code as RFC 6749 §4.1.2.1 allows it; anything else is not repeated on the page. */
const ERROR_CODE = /^[a-z_]{1,64}$/;

/** What the user reads when the idp redirected back with an error (the description is not repeated: it is attacker-controlled). */
function describeIdpError(error: string): { status: number; message: string } {
  switch (error) {
    case 'access_denied':
      return { status: 403, message: 'The sign-in was cancelled or refused, so you were not signed in.' };
    case 'login_required':
    case 'interaction_required':
    case 'consent_required':
      return { status: 400, message: 'The sign-in did not complete.' };
    case 'server_error':
    case 'temporarily_unavailable':
      return { status: 503, message: 'The sign-in service had a problem. Wait a minute and try again.' };
    default:
      return { status: 400, message: 'The sign-in service could not complete the sign-in.' };
  }
}

/**
 * The TRAQS website's pages: sign-in through the idp (authorization code + PKCE), the home page
 * with the API menu, sign-out (here and at the idp), and the Programmatic page where a user gets a
 * refresh token after a fresh MFA sign-in and lists and revokes their tokens.
 */
export function registerPortalRoutes(app: FastifyInstance, deps: PortalRouteDeps): void {
  const { service, oidc } = deps;
  const sidCookie = `${deps.cookiePrefix}_sid`;
  const flows = {
    signIn: { cookie: `${deps.cookiePrefix}_signin`, path: '/authorization-code/' },
    api: { cookie: `${deps.cookiePrefix}_apiflow`, path: '/api/programmatic/' },
  } as const;
  const flowMs = deps.flowMinutes * 60_000;
  const signedIn = new WeakMap<FastifyRequest, PortalUser>();

  const pageCtx = (reply: FastifyReply, who?: PortalUser): PageContext => ({
    ...deps.page(),
    csrfToken: reply.generateCsrf(),
    ...(who ? { signedInAs: who.user.login } : {}),
  });

  // SameSite=Lax, not Strict: the browser arrives from the idp's redirect, a cross-site navigation.
  const cookieOptions = (path: string) =>
    ({ path, httpOnly: true, sameSite: 'lax', secure: deps.secureCookies }) as const;

  function setFlow(reply: FastifyReply, flow: (typeof flows)[keyof typeof flows], pending: PendingFlow) {
    reply.setCookie(flow.cookie, encodePendingFlow(pending), {
      ...cookieOptions(flow.path),
      signed: true,
      maxAge: Math.ceil(flowMs / 1000),
    });
  }

  /** Reads and clears a flow's cookie: a pending request is finished at most once. */
  function takeFlow(
    req: FastifyRequest,
    reply: FastifyReply,
    flow: (typeof flows)[keyof typeof flows],
  ): PendingFlow | undefined {
    const raw = req.cookies[flow.cookie];
    if (raw === undefined) return undefined;
    reply.clearCookie(flow.cookie, cookieOptions(flow.path));
    const unsigned = req.unsignCookie(raw);
    return unsigned.valid && unsigned.value ? decodePendingFlow(unsigned.value, deps.clock(), flowMs) : undefined;
  }

  /** The URL the idp redirected to, rebuilt on the configured public URL (the redirect URI must match exactly). */
  function callbackUrl(req: FastifyRequest, path: string): URL {
    const q = req.url.indexOf('?');
    return new URL(`${deps.portalUrl}${path}${q >= 0 ? req.url.slice(q) : ''}`);
  }

  /** preHandler: the signed-in user, or a redirect to sign in (and back here afterwards). */
  async function requireSignIn(req: FastifyRequest, reply: FastifyReply) {
    const who = await service.signedInUser(req.cookies[sidCookie]);
    if (!who) {
      const path = req.url.split('?')[0] ?? '/';
      return reply.redirect(
        req.method === 'GET' && path !== '/' && RETURN_PATHS.has(path)
          ? `/login?next=${encodeURIComponent(path)}`
          : '/login',
        303,
      );
    }
    signedIn.set(req, who);
  }
  const who = (req: FastifyRequest): PortalUser => {
    const w = signedIn.get(req);
    if (!w) throw new AppError('INTERNAL');
    return w;
  };
  const get = { preHandler: requireSignIn };

  function problemPage(
    reply: FastifyReply,
    problem: OidcProblem,
    what: { title: string; retryHref: string; who?: PortalUser | undefined },
  ) {
    const ctx = pageCtx(reply, what.who);
    const page = (status: number, message: string, code?: string) =>
      sendPage(
        reply,
        <FlowProblemPage
          ctx={ctx}
          title={what.title}
          message={message}
          retryHref={what.retryHref}
          retryLabel="Try again"
          code={code}
        />,
        status,
      );
    switch (problem.kind) {
      case 'idp-error': {
        const d = describeIdpError(problem.error);
        return page(d.status, d.message, ERROR_CODE.test(problem.error) ? problem.error : undefined);
      }
      case 'unreachable':
        return page(503, 'The sign-in service (MFA profile) cannot be reached right now. Wait a minute and try again.');
      case 'rejected':
        return page(400, 'The answer of the sign-in service could not be verified, so nothing was changed.');
    }
  }

  app.get('/', get, async (req, reply) => {
    const w = who(req);
    return sendPage(reply, <PortalHome ctx={pageCtx(reply, w)} who={w} idpUrl={deps.idpUrl} />);
  });

  // Starting a sign-in is a GET that only redirects: a forged one starts a flow nobody finishes,
  // and finishing needs the state in this browser's cookie (login CSRF, RFC 9700 §4.7).
  app.get('/login', async (req, reply) => {
    const next = (req.query as Record<string, unknown>)?.next;
    const returnTo = typeof next === 'string' && RETURN_PATHS.has(next) ? next : '/';
    const started = await oidc.startSignIn();
    if (!started.ok) return problemPage(reply, started.problem, { title: 'Sign-in unavailable', retryHref: '/login' });
    setFlow(reply, flows.signIn, { ...started.value.pending, ...(returnTo !== '/' ? { returnTo } : {}) });
    return reply.redirect(started.value.url.href, 303);
  });

  app.get('/authorization-code/callback', async (req, reply) => {
    const pending = takeFlow(req, reply, flows.signIn);
    const title = 'Sign-in did not complete';
    if (!pending) {
      const error = (req.query as Record<string, unknown>)?.error;
      if (typeof error === 'string') {
        return problemPage(reply, { kind: 'idp-error', error }, { title, retryHref: '/login' });
      }
      // Back button or a second tab after the sign-in finished: nothing to do if signed in.
      if (await service.signedInUser(req.cookies[sidCookie])) return reply.redirect('/', 303);
      return sendPage(
        reply,
        <FlowProblemPage
          ctx={pageCtx(reply)}
          title={title}
          message="The sign-in took too long, or was started in another window or browser."
          retryHref="/login"
          retryLabel="Try again"
        />,
        400,
      );
    }
    const result = await oidc.finishSignIn(callbackUrl(req, '/authorization-code/callback'), pending);
    if (!result.ok) {
      if (result.problem.kind === 'rejected') req.log.warn({ reason: result.problem.reason }, 'portal sign-in refused');
      return problemPage(reply, result.problem, { title, retryHref: '/login' });
    }
    const ctx = requestContext(req);
    const admitted = await service.admit(result.value.sub, result.value.amr, ctx, result.value.downloadToken);
    switch (admitted.kind) {
      case 'not-assigned':
        return sendPage(
          reply,
          <AppNotAssignedPage
            ctx={pageCtx(reply)}
            login={admitted.user.login}
            appName="the TRAQS website"
            switchUserUrl={oidc.logoutUrl()}
          />,
          403,
        );
      case 'inactive':
        return sendPage(
          reply,
          <FlowProblemPage
            ctx={pageCtx(reply)}
            title="Account not active"
            message="Your account cannot use the TRAQS website: it is not active."
            retryHref="/login"
            retryLabel="Try again"
          />,
          403,
        );
      case 'admitted': {
        // A session this browser had before is ended, not kept next to the new one.
        const previous = req.cookies[sidCookie];
        if (previous) await service.signOut(previous, undefined, ctx);
        reply.setCookie(sidCookie, admitted.sessionId, cookieOptions('/'));
        const returnTo = pending.returnTo && RETURN_PATHS.has(pending.returnTo) ? pending.returnTo : '/';
        return reply.redirect(returnTo, 303);
      }
    }
  });

  // Signs out here and then at the idp (RP-initiated logout), which comes back to the home page.
  app.post('/signout', { preHandler: app.csrfProtection }, async (req, reply) => {
    const sid = req.cookies[sidCookie];
    const current = await service.signedInUser(sid);
    await service.signOut(sid, current, requestContext(req));
    reply.clearCookie(sidCookie, cookieOptions('/'));
    return reply.redirect(oidc.logoutUrl(), 303);
  });

  // Pages under /api/ are HTML here: the redirect URI of `traqs-api` fixes the path, while the
  // shared error handler answers JSON under /api/. Their own handler renders forged forms and
  // unknown tokens as pages; anything else goes on to the shared one.
  app.register(async (api) => {
    api.setErrorHandler((err: FastifyError, req, reply) => {
      const csrf = err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET';
      if (!(err instanceof AppError) && !csrf) throw err;
      const status = err instanceof AppError ? err.status : 403;
      if (status >= 500) throw err;
      req.log.info({ code: err.code ?? (err instanceof AppError ? err.errorCode : undefined) }, 'request refused');
      return sendPage(
        reply,
        <ErrorPage
          ctx={deps.page()}
          status={status}
          summary={err instanceof AppError ? err.errorSummary : 'The form expired or did not come from this site.'}
          causes={err instanceof AppError ? err.causes : ['Reload the page and try again.']}
          errorId={`oae${randomUUID().replace(/-/g, '').slice(0, 20)}`}
        />,
        status,
      );
    });
    registerProgrammatic(api);
    registerManual(api, { service, downloadUrl: deps.downloadUrl, requireSignIn, who, pageCtx });
  });

  function registerProgrammatic(api: FastifyInstance) {
    // The CSRF check first, as on every form: a forged post is refused before anything else.
    const apiPost = { preHandler: [api.csrfProtection, requireSignIn] };

    async function renderProgrammatic(
      req: FastifyRequest,
      reply: FastifyReply,
      form: { label?: string; labelError?: string } = {},
      status?: number,
    ) {
      const w = who(req);
      const assigned = w.apps.includes('download');
      const now = deps.clock();
      return sendPage(
        reply,
        <ProgrammaticPage
          ctx={pageCtx(reply, w)}
          tokens={await service.listTokens(w.user.id)}
          now={now}
          facts={deps.facts}
          assigned={assigned}
          label={form.label}
          labelError={form.labelError}
          defaultLabel={defaultTokenLabel(now)}
          notice={parseProgrammaticNotice((req.query as Record<string, unknown>)?.done)}
        />,
        status ?? (assigned ? 200 : 403),
      );
    }

    api.get('/api/programmatic', get, async (req, reply) => renderProgrammatic(req, reply));

    api.post('/api/programmatic/start', apiPost, async (req, reply) => {
      const w = who(req);
      if (!w.apps.includes('download')) return renderProgrammatic(req, reply);
      const input = (req.body as Record<string, unknown> | undefined)?.label;
      const parsed = parseTokenLabel(input, deps.clock());
      if (!parsed.ok) {
        const typed = typeof input === 'string' ? input.slice(0, 200) : '';
        return renderProgrammatic(req, reply, { label: typed, labelError: parsed.error }, 400);
      }
      const started = await oidc.startApiToken();
      if (!started.ok) {
        return problemPage(reply, started.problem, {
          title: 'Refresh token unavailable',
          retryHref: '/api/programmatic',
          who: w,
        });
      }
      setFlow(reply, flows.api, { ...started.value.pending, label: parsed.label });
      return reply.redirect(started.value.url.href, 303);
    });

    api.get('/api/programmatic/callback', get, async (req, reply) => {
      const w = who(req);
      const title = 'No refresh token was issued';
      const retry = { title, retryHref: '/api/programmatic', who: w };
      const pending = takeFlow(req, reply, flows.api);
      if (!pending) {
        const error = (req.query as Record<string, unknown>)?.error;
        if (typeof error === 'string') return problemPage(reply, { kind: 'idp-error', error }, retry);
        return sendPage(
          reply,
          <FlowProblemPage
            ctx={pageCtx(reply, w)}
            title={title}
            message="The request took too long, or was started in another window or browser."
            retryHref="/api/programmatic"
            retryLabel="Try again"
          />,
          400,
        );
      }
      const ctx = requestContext(req);
      const result = await oidc.finishApiToken(callbackUrl(req, '/api/programmatic/callback'), pending);
      if (!result.ok) {
        if (result.problem.kind === 'rejected') {
          req.log.warn({ reason: result.problem.reason }, 'refresh token response refused');
          if (result.problem.refreshToken) {
            await service.discardToken(result.problem.refreshToken, 'not-fresh', ctx, w.user.id);
          }
        }
        return problemPage(reply, result.problem, retry);
      }
      const grant = result.value;
      // The confirmation must be by the signed-in user: a token for someone else is revoked unseen.
      if (grant.sub !== w.user.id) {
        await service.discardToken(grant.refreshToken, 'other-user', ctx, w.user.id);
        return sendPage(
          reply,
          <FlowProblemPage
            ctx={pageCtx(reply, w)}
            title={title}
            message={`You confirmed your identity as another user than ${w.user.login}, who is signed in here. Confirm it as ${w.user.login}.`}
            retryHref="/api/programmatic"
            retryLabel="Try again"
          />,
          403,
        );
      }
      if (!w.apps.includes('download')) {
        await service.discardToken(grant.refreshToken, 'not-assigned', ctx, w.user.id);
        return renderProgrammatic(req, reply);
      }
      const label = pending.label ?? defaultTokenLabel(deps.clock());
      const labelled = await service.labelIssuedToken(grant.refreshToken, w.user.id, label);
      if (labelled.kind === 'unknown-token') req.log.warn('issued refresh token has no description row');
      const expiresAt = labelled.kind === 'labelled' ? labelled.token.expires_at : service.expiryFromNow();
      // Shown once, kept nowhere: not in a cache, not in the back-forward history (RFC 9111 §5.2.2.5).
      reply.header('cache-control', 'no-store');
      return sendPage(
        reply,
        <TokenIssuedPage
          ctx={pageCtx(reply, w)}
          refreshToken={grant.refreshToken}
          label={labelled.kind === 'labelled' ? labelled.token.label : label}
          expiresAt={expiresAt}
          facts={deps.facts}
        />,
      );
    });

    api.post('/api/programmatic/tokens/:id/revoke', apiPost, async (req, reply) => {
      const id = (req.params as Record<string, unknown>).id;
      const notFound = () => new AppError('NOT_FOUND', [], 'No such refresh token.');
      if (typeof id !== 'string' || !TOKEN_ID.test(id)) throw notFound();
      const result = await service.revokeToken(who(req).user.id, id, requestContext(req));
      if (result.kind === 'not-found') throw notFound();
      return reply.redirect('/api/programmatic?done=revoked', 303);
    });
  }
}
