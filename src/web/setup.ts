import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyRateLimit, { type FastifyRateLimitStoreCtor, normalizeIP } from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { h } from 'preact';
import { ErrorPage } from './error-page.tsx';
import { AppError, OKTA_ERRORS, type OktaErrorName, oktaErrorBody } from './errors.ts';
import type { PageContext } from './layout.tsx';
import { RATE_LIMIT_WINDOW_MS } from './rate-limit.ts';
import { renderHtml } from './render.ts';
import { findNulCharacter } from './validate.ts';

/**
 * The response headers every page and API answer carries.
 * - CSP (OWASP ASVS 14.4.3): no inline script or style; pages load only their own assets; the QR
 *   code is a `data:` image; no framing (clickjacking, ASVS 14.4.7); forms post only to us.
 * - HSTS only where the service is reached over https (RFC 6797 §7.2 ignores it over http).
 */
export function buildSecurityHeaders(
  https: boolean,
  formActionOrigins: readonly string[] = [],
): Record<string, string> {
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    // Browsers apply form-action to the redirects after a submission too: the idp's sign-in form
    // ends in a redirect to the client's callback, so the registered clients' origins are listed.
    ["form-action 'self'", ...formActionOrigins].join(' '),
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join(';');
  return {
    'content-security-policy': csp,
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'origin-agent-cluster': '?1',
    'referrer-policy': 'no-referrer',
    ...(https ? { 'strict-transport-security': 'max-age=31536000; includeSubDomains' } : {}),
    'x-content-type-options': 'nosniff',
    'x-dns-prefetch-control': 'off',
    'x-download-options': 'noopen',
    'x-frame-options': 'DENY',
    'x-permitted-cross-domain-policies': 'none',
    'x-xss-protection': '0',
  };
}

/** Request bodies above this are refused with 413 before parsing (issue: "bodies over 64 KiB"). */
export const BODY_LIMIT = 64 * 1024;

export interface WebSetup {
  /** `traqs_<environment>_<service>`: browsers keep cookies per host, not per port (DESIGN). */
  cookiePrefix: string;
  /** Secure cookies whenever the public URL is https (NIST 800-63B §7.1.1). */
  secureCookies: boolean;
  cookieSecret: string;
  /** POST requests (sign-in, codes, recovery, changes) allowed per client IP per minute. */
  postsPerMinutePerIp: number;
  /** Where those requests are counted: the database, for every node (`databaseRateLimitStore`). */
  rateLimitStore: FastifyRateLimitStoreCtor;
  /** Origins a form on this service may end up redirecting to (OAuth clients' callbacks). */
  formActionOrigins?: readonly string[];
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
}

function isApiRequest(req: FastifyRequest): boolean {
  return req.url.startsWith('/api/') || (req.headers.accept ?? '').startsWith('application/json');
}

/**
 * Fastify's own errors (parsing, limits, content type) as Okta error names; `bodyLimit` is the
 * route's own (a few routes allow more than BODY_LIMIT).
 */
function classify(err: FastifyError, bodyLimit: number): { name: OktaErrorName; causes: string[] } | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { name: 'MALFORMED_BODY', causes: [err.message] };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { name: 'BODY_TOO_LARGE', causes: [`Request bodies are limited to ${Math.floor(bodyLimit / 1024)} KiB.`] };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return { name: 'UNSUPPORTED_MEDIA_TYPE', causes: [err.message] };
    case 'FST_CSRF_INVALID_TOKEN':
    case 'FST_CSRF_MISSING_SECRET':
      return {
        name: 'FORBIDDEN',
        causes: ['The form expired or did not come from this site. Reload the page and try again.'],
      };
    default:
      if (err.statusCode === 429) return { name: 'RATE_LIMITED', causes: [] };
      if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500 && err.validation) {
        return { name: 'VALIDATION', causes: [err.message] };
      }
      return undefined;
  }
}

/** Methods that change nothing (RFC 9110 §9.2.1): never counted by the per-IP limit. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** `POST /api/v1/authn/factors/{id}/verify` (a code, a FastPass answer, or a push poll). */
const FACTOR_VERIFY_PATH = /^\/api\/v1\/authn\/factors\/[^/?]+\/verify(?:\?|$)/;
/** How many times the per-IP limit a second factor's `verify` allows (see `setupWeb`). */
const FACTOR_VERIFY_BUDGET = 10;

/**
 * Security and presentation plumbing shared by every service: cookies, form bodies, CSRF tokens,
 * security headers with a strict CSP, static assets, and one error handler that never leaks a
 * stack or a 5xx detail (CONVENTIONS 5).
 */
export async function setupWeb(app: FastifyInstance, setup: WebSetup): Promise<void> {
  await app.register(fastifyCookie, { secret: setup.cookieSecret });
  await app.register(fastifyFormbody, { bodyLimit: BODY_LIMIT });
  // Security headers, the same on every response and so computed once (helmet's set, written out).
  const securityHeaders = buildSecurityHeaders(setup.secureCookies, setup.formActionOrigins);
  app.addHook('onRequest', async (_req, reply) => {
    reply.headers(securityHeaders);
  });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: `${setup.cookiePrefix}_csrf`,
    cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true, secure: setup.secureCookies, signed: true },
    getToken: (req) => {
      const body = req.body as Record<string, unknown> | undefined;
      return typeof body?._csrf === 'string' ? body._csrf : undefined;
    },
  });
  // Per-IP limit in front of every credential check and state change (OWASP ASVS 2.2.1); the
  // account lockout counter behind it stops a slow guesser, this stops a fast one. Counters live in
  // the database, so several nodes share one limit. IPv6 addresses count per /64, which one
  // subscriber usually holds whole (rotating within it must not reset the count).
  //
  // A second factor's `verify` has a budget of its own, FACTOR_VERIFY_BUDGET times larger: it is
  // reached only with the state token of a correct password, every wrong code counts toward that
  // user's lockout, and okta-auth-js polls a push there every 500 ms while its user reads the
  // number, so a firm's users behind one address would otherwise be refused while waiting.
  const verifySuffix = ' factor-verify';
  await app.register(fastifyRateLimit, {
    global: true,
    max: (_req, key) =>
      key.endsWith(verifySuffix) ? setup.postsPerMinutePerIp * FACTOR_VERIFY_BUDGET : setup.postsPerMinutePerIp,
    timeWindow: RATE_LIMIT_WINDOW_MS,
    store: setup.rateLimitStore,
    // Every state change counts (POST, PUT, PATCH, DELETE: the management API's too); reading does not.
    allowList: (req) => SAFE_METHODS.has(req.method),
    keyGenerator: (req) => {
      const ip = normalizeIP(req.ip);
      return FACTOR_VERIFY_PATH.test(req.url) ? ip + verifySuffix : ip;
    },
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
  });
  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('./assets/', import.meta.url)),
    prefix: '/assets/',
    maxAge: '1h',
    index: false,
  });

  // Input with a NUL character is refused for every route (API and forms): PostgreSQL would fail
  // the query, answering a 500 instead of naming the problem (CONVENTIONS 5).
  app.addHook('preValidation', async (req) => {
    for (const [where, value] of [
      ['body', req.body],
      ['query', req.query],
      ['params', req.params],
    ] as const) {
      const at = findNulCharacter(value);
      if (at !== undefined) throw new AppError('VALIDATION', [`${where} ${at}: must not contain a NUL character.`]);
    }
  });

  app.addHook('onSend', async (_req, reply) => {
    // Pages and API answers carry user data and one-time secrets: never cache them.
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });

  const sendError = (
    req: FastifyRequest,
    reply: FastifyReply,
    name: OktaErrorName,
    causes: string[],
    summary?: string,
  ) => {
    const e = OKTA_ERRORS[name];
    const errorId = `oae${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    if (isApiRequest(req)) {
      return reply
        .status(e.status)
        .type('application/json')
        .send(oktaErrorBody({ errorCode: e.errorCode, errorSummary: summary ?? e.errorSummary, causes }, errorId));
    }
    return reply
      .status(e.status)
      .type('text/html; charset=utf-8')
      .send(
        renderHtml(
          h(ErrorPage, { ctx: setup.page(), status: e.status, summary: summary ?? e.errorSummary, causes, errorId }),
        ),
      );
  };

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof AppError) return sendError(req, reply, err.name_, err.causes, err.errorSummary);
    const known = classify(err, req.routeOptions.bodyLimit ?? BODY_LIMIT);
    if (known) {
      req.log.info({ code: err.code }, 'request refused');
      return sendError(req, reply, known.name, known.causes);
    }
    req.log.error({ err }, 'unhandled error');
    return sendError(req, reply, 'INTERNAL', []);
  });

  app.setNotFoundHandler((req, reply) =>
    sendError(req, reply, 'NOT_FOUND', [], `Not found: ${req.method} ${req.url.split('?')[0]?.slice(0, 200)}`),
  );
}
