import { ClientError, INVALID_GRANT_MESSAGE, parseOauthError } from './errors.ts';
import { type HttpDeps, type RetryPolicy, sendWithRetries } from './http.ts';
import type { CachedTokens, TokenCache } from './token-cache.ts';

/** The public client programmatic users hold refresh tokens for (DESIGN "OAuth 2.0 / OpenID Connect"). */
export const API_CLIENT_ID = 'traqs-api';

/** Renew an access token when it has less than this left… */
const RENEW_MARGIN_MS = 60_000;
/** …or less than this share of its lifetime, for short-lived tokens. */
const RENEW_MARGIN_SHARE = 0.25;

/** The reminder email goes 15 days before expiry (FAQ); the client warns from the same day. */
export const REFRESH_TOKEN_WARNING_MS = 15 * 24 * 3600_000;

/** The header the service may use instead of the JSON field to say when the refresh token expires. */
export const REFRESH_TOKEN_EXPIRES_AT_HEADER = 'x-refresh-token-expires-at';

export interface AccessToken {
  value: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms, when obtained: with `expiresAt`, the token's lifetime. */
  obtainedAt: number;
}

/**
 * Whether to get a new access token before using `token` at `now`: none yet, or less than a minute
 * left (a quarter of the lifetime for tokens shorter than four minutes), so a request never starts
 * with a token about to expire in flight.
 */
export function needsRenewal(token: AccessToken | undefined, now: number): boolean {
  if (!token) return true;
  const lifetime = Math.max(0, token.expiresAt - token.obtainedAt);
  const margin = Math.min(RENEW_MARGIN_MS, lifetime * RENEW_MARGIN_SHARE);
  return token.expiresAt - now <= margin;
}

export interface TokenAnswer {
  accessToken: AccessToken;
  refreshTokenExpiresAt?: number;
}

/**
 * Reads a successful token answer (RFC 6749 §5.1). When the refresh token expires comes from
 * `refresh_token_expires_in` (seconds, as GitHub's and Microsoft's token endpoints send it) or the
 * `x-refresh-token-expires-at` header (an ISO date); the body wins when both are present.
 */
export function parseTokenAnswer(body: unknown, headers: Headers, now: number): TokenAnswer {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof o.access_token !== 'string' || o.access_token === '') {
    throw new ClientError('UNEXPECTED', 'the token endpoint answered without an access token');
  }
  if (typeof o.token_type === 'string' && o.token_type.toLowerCase() !== 'bearer') {
    throw new ClientError('UNEXPECTED', `the token endpoint issued a "${o.token_type}" token, not a Bearer token`);
  }
  // RFC 6749 §5.1 makes expires_in optional; the FAQ's 60 minutes is the documented default.
  const expiresIn = typeof o.expires_in === 'number' && o.expires_in > 0 ? o.expires_in : 3600;
  const answer: TokenAnswer = {
    accessToken: { value: o.access_token, expiresAt: now + expiresIn * 1000, obtainedAt: now },
  };
  if (typeof o.refresh_token_expires_in === 'number' && o.refresh_token_expires_in >= 0) {
    answer.refreshTokenExpiresAt = now + o.refresh_token_expires_in * 1000;
  } else {
    const header = headers.get(REFRESH_TOKEN_EXPIRES_AT_HEADER);
    const at = header ? Date.parse(header) : Number.NaN;
    if (!Number.isNaN(at)) answer.refreshTokenExpiresAt = at;
  }
  return answer;
}

/** The warning to print when the refresh token expires within 15 days; undefined otherwise. */
export function refreshTokenWarning(expiresAt: number | undefined, now: number): string | undefined {
  if (expiresAt === undefined || expiresAt - now > REFRESH_TOKEN_WARNING_MS) return undefined;
  const date = `${new Date(expiresAt).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  return `warning: your refresh token expires within 15 days (on ${date}): get a new one on the Programmatic page of the TRAQS website`;
}

export interface AccessTokenSource {
  /** An access token good for the next request, obtained or renewed as needed. */
  get(signal?: AbortSignal): Promise<string>;
  /** Forgets `token` after the service refused it (401), so the next `get` obtains a new one. */
  invalidate(token: string): void;
}

export interface AccessTokenSourceOptions {
  /** The download service, without a trailing slash: the token endpoint is `{baseUrl}/oauth2/token`. */
  baseUrl: string;
  refreshToken: string;
  deps: HttpDeps;
  retry: RetryPolicy;
  cache: TokenCache;
}

/**
 * Access tokens from a refresh token (RFC 6749 §6), kept in memory and in `cache`, renewed before
 * they expire and after a 401. Concurrent callers share one token request.
 */
export function createAccessTokenSource(options: AccessTokenSourceOptions): AccessTokenSource {
  const { baseUrl, refreshToken, deps, retry, cache } = options;
  let current: AccessToken | undefined;
  let refreshTokenExpiresAt: number | undefined;
  let triedCache = false;
  let warned = false;
  let pending: Promise<AccessToken> | undefined;

  const warnIfExpiring = () => {
    const warning = refreshTokenWarning(refreshTokenExpiresAt, deps.now());
    if (warning && !warned) {
      warned = true;
      deps.notice(warning);
    }
  };

  async function requestToken(signal?: AbortSignal): Promise<AccessToken> {
    const url = `${baseUrl}/oauth2/token`;
    const res = await sendWithRetries(
      url,
      () => ({
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          client_id: API_CLIENT_ID,
        }).toString(),
      }),
      deps,
      retry,
      signal,
    );
    const text = await res.text();
    if (res.status !== 200) throw tokenEndpointError(res.status, text, url);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ClientError('UNEXPECTED', `the token endpoint at ${url} did not answer JSON: check --base-url`);
    }
    const answer = parseTokenAnswer(body, res.headers, deps.now());
    if (answer.refreshTokenExpiresAt !== undefined) refreshTokenExpiresAt = answer.refreshTokenExpiresAt;
    const cached: CachedTokens = {
      accessToken: answer.accessToken.value,
      expiresAt: answer.accessToken.expiresAt,
      obtainedAt: answer.accessToken.obtainedAt,
    };
    if (refreshTokenExpiresAt !== undefined) cached.refreshTokenExpiresAt = refreshTokenExpiresAt;
    cache.write(cached);
    return answer.accessToken;
  }

  function fromCache(): AccessToken | undefined {
    const c = cache.read();
    if (!c) return undefined;
    refreshTokenExpiresAt = c.refreshTokenExpiresAt;
    return { value: c.accessToken, expiresAt: c.expiresAt, obtainedAt: c.obtainedAt };
  }

  return {
    async get(signal) {
      if (!triedCache) {
        triedCache = true;
        current = fromCache();
      }
      if (needsRenewal(current, deps.now())) {
        pending ??= requestToken(signal).finally(() => {
          pending = undefined;
        });
        try {
          current = await pending;
        } catch (err) {
          if (err instanceof ClientError && err.code === 'INVALID_GRANT') cache.clear();
          throw err;
        }
      }
      warnIfExpiring();
      return (current as AccessToken).value;
    },
    invalidate(token) {
      if (current?.value === token) {
        current = undefined;
        cache.clear();
      }
    },
  };
}

/** The error for a token endpoint refusal (RFC 6749 §5.2), `invalid_grant` above all. */
export function tokenEndpointError(status: number, body: string, url: string): ClientError {
  const oauth = parseOauthError(body);
  if (oauth.error === 'invalid_grant') return new ClientError('INVALID_GRANT', INVALID_GRANT_MESSAGE);
  if (status === 404) {
    return new ClientError(
      'NOT_FOUND',
      `no token endpoint at ${url} (404): check --base-url (the API download URL of your environment)`,
    );
  }
  if (status === 400 || status === 401) {
    const detail = oauth.description ? ` (${oauth.description})` : '';
    return new ClientError(
      'BAD_REQUEST',
      `the token endpoint refused the request (${status} ${oauth.error ?? 'invalid_request'})${detail}`,
    );
  }
  return new ClientError(
    'UNEXPECTED',
    status >= 500
      ? `the token endpoint failed (${status}): try again later`
      : `unexpected answer ${status} from the token endpoint at ${url}`,
  );
}
