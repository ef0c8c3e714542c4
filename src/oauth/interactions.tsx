import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthnService } from '../authn/service.ts';
import type { SessionManager } from '../authn/sessions.ts';
import type { Store } from '../db/store.ts';
import type { Clock } from '../lib/tokens.ts';
import { Layout, type PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';
import { requestContext } from '../web/validate.ts';
import { ACR_MFA, ACR_PASSWORD, API_CLIENT_ID, type AuthorizationServer, appOfClient } from './provider.ts';

/**
 * Where the authorization server meets sign-in (DESIGN "OAuth 2.0 / OpenID Connect"): oidc-provider
 * sends the browser to `/interaction/{uid}` when it needs a sign-in or a grant. Authentication
 * itself stays in our sign-in pages and state machine; this only turns their outcome — an idp
 * session or an Okta `sessionToken` — into `{ accountId, amr, acr, ts }`, and grants first-party
 * clients what they asked for.
 */

/**
 * The cookie that brings the browser back here after the sign-in pages: `{uid}.{epoch ms}`, signed,
 * set when this page sent the browser to sign in. The time (on our clock) tells a sign-in made for
 * this request from an older one.
 */
const RETURN_VALUE = /^([A-Za-z0-9_-]{1,64})\.(\d{1,16})$/;

/** Reads a return cookie: the interaction to go back to and when the browser was sent to sign in. */
export function readReturnCookie(
  req: FastifyRequest,
  raw: string | undefined,
): { uid: string; path: string; sentAt: number } | undefined {
  if (!raw) return undefined;
  const unsigned = req.unsignCookie(raw);
  if (!unsigned.valid || unsigned.value === null) return undefined;
  const m = RETURN_VALUE.exec(unsigned.value);
  if (!m?.[1] || !m[2]) return undefined;
  return { uid: m[1], path: `/interaction/${m[1]}`, sentAt: Number(m[2]) };
}

export interface InteractionDeps {
  server: AuthorizationServer;
  authn: AuthnService;
  sessions: SessionManager;
  store: Store;
  clock: Clock;
  sidCookie: string;
  returnCookie: string;
  secureCookies: boolean;
  /** A programmatic sign-in must have verified its second factor this recently (issue #4: 5 minutes). */
  programmaticMaxAgeMinutes: number;
  transactionMinutes: number;
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
}

interface SignedIn {
  userId: string;
  amr: string[];
  /** Epoch ms of the authentication. */
  authTime: number;
}

export function registerInteractions(app: FastifyInstance, deps: InteractionDeps): void {
  const { server, store, clock } = deps;

  const ctx = (): PageContext => deps.page();

  app.get('/interaction/:uid', async (req, reply) => {
    const { uid } = req.params as { uid: string };
    let details: Awaited<ReturnType<ReturnType<typeof server.provider>['interactionDetails']>>;
    try {
      details = await server.provider().interactionDetails(req.raw, reply.raw);
    } catch {
      // No interaction cookie for this uid: expired, finished, or opened in another browser.
      return sendPage(reply, <InteractionExpiredPage ctx={ctx()} />, 400);
    }
    if (details.uid !== uid) return sendPage(reply, <InteractionExpiredPage ctx={ctx()} />, 400);
    const clientId = details.params.client_id;

    if (details.prompt.name === 'login') {
      const signedIn = await authenticated(req, details, clientId);
      if (signedIn === 'invalid-session-token') {
        return finish(reply, req, {
          error: 'access_denied',
          error_description: 'The sessionToken is invalid, expired or already used.',
        });
      }
      if (!signedIn) {
        // To the sign-in pages, and back here afterwards.
        reply.setCookie(deps.returnCookie, `${details.uid}.${clock()}`, {
          path: '/',
          httpOnly: true,
          sameSite: 'lax',
          secure: deps.secureCookies,
          signed: true,
          maxAge: deps.transactionMinutes * 60,
        });
        const purpose = clientId === API_CLIENT_ID ? 'programmatic' : 'portal';
        return reply.redirect(`/signin?for=${purpose}`, 303);
      }
      const app = appOfClient(clientId);
      const user = await store.repos.users.findUserById(signedIn.userId);
      const apps = await store.repos.users.listApps(signedIn.userId);
      if (!user || !apps.includes(app)) {
        await store.repos.audit.recordEvent({
          at: clock(),
          actorId: signedIn.userId,
          action: 'oauth.authorize',
          targetId: signedIn.userId,
          outcome: 'failure',
          ...requestContext(req),
          details: { client: clientId, reason: 'app not assigned', app },
        });
        return sendPage(reply, <AppNotAssignedPage ctx={ctx()} app={app} />, 403);
      }
      await store.repos.audit.recordEvent({
        at: clock(),
        actorId: signedIn.userId,
        action: 'oauth.authorize',
        targetId: signedIn.userId,
        outcome: 'success',
        ...requestContext(req),
        details: { client: clientId, amr: signedIn.amr },
      });
      return finish(reply, req, {
        login: {
          accountId: signedIn.userId,
          amr: signedIn.amr,
          acr: signedIn.amr.includes('mfa') ? ACR_MFA : ACR_PASSWORD,
          ts: Math.floor(signedIn.authTime / 1000),
          remember: true,
        },
      });
    }

    if (details.prompt.name === 'consent') {
      // Both clients are TRAQS's own applications: what they ask for is granted without a consent
      // screen (as Okta does for first-party apps), and recorded in a grant.
      const accountId = details.session?.accountId;
      if (!accountId) return sendPage(reply, <InteractionExpiredPage ctx={ctx()} />, 400);
      const { Grant } = server.provider();
      const existing = details.grantId ? await Grant.find(details.grantId) : undefined;
      const grant = existing ?? new Grant({ accountId, clientId });
      const missing = details.prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(resource, scopes.join(' '));
      }
      const grantId = await grant.save();
      return finish(reply, req, { consent: { grantId } });
    }

    return sendPage(reply, <InteractionExpiredPage ctx={ctx()} />, 400);
  });

  async function finish(
    reply: FastifyReply,
    req: FastifyRequest,
    result: Parameters<ReturnType<typeof server.provider>['interactionResult']>[2],
  ) {
    const returnTo = await server.provider().interactionResult(req.raw, reply.raw, result, {
      mergeWithLastSubmission: !('error' in result),
    });
    reply.clearCookie(deps.returnCookie, { path: '/' });
    return reply.redirect(returnTo, 303);
  }

  /**
   * Who signed in for this interaction, if anyone did in a way that satisfies it:
   * - an Okta `sessionToken` (single use, 5 minutes) stands for the sign-in it ends;
   * - otherwise the idp session, when it is recent enough: for `traqs-api`, `prompt=login` and
   *   `max_age=0` the sign-in must have been made for this request (after this page sent the
   *   browser to sign in), and for `traqs-api` within the last 5 minutes and with a second factor;
   *   for `max_age=N` it must be at most N seconds old (OpenID Connect Core §3.1.2.1).
   */
  async function authenticated(
    req: FastifyRequest,
    details: { uid: string; params: Record<string, unknown>; prompt: { reasons: string[] } },
    clientId: string,
  ): Promise<SignedIn | 'invalid-session-token' | undefined> {
    const now = clock();
    const sessionToken = details.params.sessionToken;
    if (typeof sessionToken === 'string' && sessionToken !== '') {
      const redeemed = await deps.authn.redeemSessionToken(sessionToken);
      if (!redeemed) return 'invalid-session-token';
      if (clientId === API_CLIENT_ID && !redeemed.amr.includes('mfa')) return 'invalid-session-token';
      return { userId: redeemed.userId, amr: redeemed.amr, authTime: now };
    }
    const session = await deps.sessions.resume(req.cookies[deps.sidCookie]);
    if (!session) return undefined;
    const amr = JSON.parse(session.amr) as string[];
    const maxAge = Number(details.params.max_age);
    const mustBeNew = clientId === API_CLIENT_ID || details.prompt.reasons.includes('login_prompt') || maxAge === 0;
    if (mustBeNew) {
      const back = readReturnCookie(req, req.cookies[deps.returnCookie]);
      if (!back || back.uid !== details.uid || session.created_at < back.sentAt) return undefined;
    } else if (details.prompt.reasons.includes('max_age') && now - session.created_at > maxAge * 1000) {
      return undefined;
    }
    if (clientId === API_CLIENT_ID) {
      if (!amr.includes('mfa')) return undefined;
      if (now - session.created_at > deps.programmaticMaxAgeMinutes * 60_000) return undefined;
    }
    return { userId: session.user_id, amr, authTime: session.created_at };
  }
}

function InteractionExpiredPage(props: { ctx: PageContext }) {
  return (
    <Layout ctx={props.ctx} title="Sign-in request expired">
      <div class="card">
        <h1>This sign-in request has expired</h1>
        <p class="alert" role="alert">
          The request that brought you here is no longer valid: it timed out, was already completed, or was opened in
          another browser.
        </p>
        <p>Go back to the application you came from and start again.</p>
      </div>
    </Layout>
  );
}

/** The FAQ's answer for an account not assigned to an application: 403 "App not assigned". */
export function AppNotAssignedPage(props: { ctx: PageContext; app: 'portal' | 'download' }) {
  const c = props.ctx.contacts;
  const name = props.app === 'download' ? 'API Download' : 'the TRAQS website';
  return (
    <Layout ctx={props.ctx} title="App not assigned">
      <div class="card">
        <h1>App not assigned</h1>
        <p class="alert" role="alert">
          Your account is not assigned to {name}.
        </p>
        <p>
          Ask your firm's Super Account Administrator to request access, or contact {c.techSupportName} at{' '}
          {c.techSupportPhone}.
        </p>
      </div>
    </Layout>
  );
}
