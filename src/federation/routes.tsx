import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BrowserSessionStarter } from '../authn/page-routes.tsx';
import { hashBearerSecret } from '../lib/tokens.ts';
import type { PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';
import { requestContext } from '../web/validate.ts';
import { FEDERATION_REQUEST_TTL_MS, type FederationService } from './service.ts';
import type { FederationFailure } from './verify.ts';
import { ContinueToIdpPage, FAILURES, FederationFailurePage } from './views.tsx';

export interface FederationRouteDeps {
  federation: FederationService;
  startSession: BrowserSessionStarter;
  cookiePrefix: string;
  secureCookies: boolean;
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
}

const ID = /^[A-Za-z0-9]{3,40}$/;
/** A SAML response is a few kilobytes; the body limit (64 KiB, src/web/setup.ts) bounds it anyway. */
const acsBody = z.object({ SAMLResponse: z.string().min(1).max(65_536), RelayState: z.string().max(1024).optional() });
const finishQuery = z.object({ request: z.string().min(1).max(100) });

/**
 * Federated sign-in over HTTP (issue #8):
 * - `GET /sso/{id}/metadata`: our SP metadata for a SAML configuration;
 * - `POST /sso/saml/{id}/acs`: the IdP's response (HTTP-POST binding), then `GET /sso/finish`;
 * - `GET /sso/oidc/{id}/callback`: the authorization response (code flow + PKCE);
 * - the sign-in form's hook that sends a federated user to the IdP.
 * A browser-binding cookie (random, only its SHA-256 stored with the request) ties the answer to
 * the browser that started the sign-in (login CSRF, RFC 6749 §10.12; OWASP SAML Security Cheat
 * Sheet, "unsolicited responses"). It is SameSite=Lax: sent on the top-level GETs (`finish`,
 * OIDC callback), not on the IdP's cross-site POST, so the ACS verifies and `finish` binds.
 */
export function registerFederationRoutes(app: FastifyInstance, deps: FederationRouteDeps) {
  const { federation } = deps;
  const bindingCookie = `${deps.cookiePrefix}_fed`;
  const deviceCookie = `${deps.cookiePrefix}_device`;
  const ctx = (): PageContext => deps.page();

  const fail = (reply: FastifyReply, reason: FederationFailure) =>
    sendPage(reply, <FederationFailurePage ctx={ctx()} reason={reason} />, FAILURES[reason].status);

  const bindingOf = (req: FastifyRequest) => {
    const v = req.cookies[bindingCookie];
    return v && /^[A-Za-z0-9_-]{43}$/.test(v) ? hashBearerSecret(v) : undefined;
  };

  /**
   * The sign-in form's hook (src/authn/page-routes.tsx `federatedSignIn`): true when it answered.
   * (A boolean, not the reply: Fastify's reply is a thenable, which `await` would unwrap.)
   */
  async function sendToIdp(req: FastifyRequest, reply: FastifyReply, username: string): Promise<boolean> {
    const route = await federation.routeFor(username);
    if (!route) return false;
    if (!route.idp) {
      fail(reply, 'no_idp');
      return true;
    }
    const binding = federation.newBinding();
    const started = await federation.begin(route.idp, route.user.login, binding.hash, requestContext(req));
    if (!started.ok) {
      fail(reply, started.reason);
      return true;
    }
    reply.setCookie(bindingCookie, binding.value, {
      path: '/sso',
      httpOnly: true,
      secure: deps.secureCookies,
      sameSite: 'lax',
      maxAge: FEDERATION_REQUEST_TTL_MS / 1000,
    });
    // A page with a link rather than a redirect: CSP form-action would stop the sign-in form's
    // redirect to another origin.
    sendPage(reply, <ContinueToIdpPage ctx={ctx()} url={started.value} idpName={route.idp.name} />);
    return true;
  }

  /** Ends a verified sign-in in this browser: the idp session, then back to the authorization request. */
  async function finish(req: FastifyRequest, reply: FastifyReply, requestId: string) {
    const device = req.cookies[deviceCookie];
    const result = await federation.finish(requestId, bindingOf(req), {
      ...requestContext(req),
      ...(device && /^[A-Za-z0-9_-]{43}$/.test(device) ? { deviceId: device } : {}),
    });
    if (!result.ok) return fail(reply, result.reason);
    reply.clearCookie(bindingCookie, { path: '/sso' });
    const signedIn = result.value;
    if (signedIn.kind !== 'success' || !(await deps.startSession(req, reply, signedIn.sessionToken))) {
      return fail(reply, 'request_mismatch');
    }
    return reply;
  }

  app.get('/sso/:id/metadata', async (req, reply) => {
    const { id } = req.params as { id: string };
    const xml = ID.test(id) ? await federation.metadata(id) : undefined;
    if (!xml) return fail(reply, 'no_idp');
    return reply.type('application/samlmetadata+xml; charset=utf-8').send(xml);
  });

  app.post('/sso/saml/:id/acs', async (req, reply) => {
    const { id } = req.params as { id: string };
    const body = acsBody.safeParse(req.body ?? {});
    if (!ID.test(id) || !body.success) return fail(reply, 'invalid_response');
    const accepted = await federation.acceptSamlResponse(id, body.data.SAMLResponse, requestContext(req));
    if (!accepted.ok) return fail(reply, accepted.reason);
    return reply.redirect(`/sso/finish?request=${encodeURIComponent(accepted.value.requestId)}`, 303);
  });

  app.get('/sso/finish', async (req, reply) => {
    const q = finishQuery.safeParse(req.query ?? {});
    if (!q.success) return fail(reply, 'request_mismatch');
    return finish(req, reply, q.data.request);
  });

  app.get('/sso/oidc/:id/callback', async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!ID.test(id) || req.url.length > 4096) return fail(reply, 'invalid_response');
    const url = new URL(req.url, federation.publicUrl);
    const accepted = await federation.acceptOidcCallback(id, url, bindingOf(req), requestContext(req));
    if (!accepted.ok) return fail(reply, accepted.reason);
    return finish(req, reply, accepted.value.requestId);
  });

  return { sendToIdp };
}
