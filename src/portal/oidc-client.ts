import * as oidc from 'openid-client';
import type { Clock } from '../lib/tokens.ts';

/** What a redirect to the authorization server must remember until the browser comes back. */
export interface PendingAuthorization {
  state: string;
  nonce: string;
  /** RFC 7636 `code_verifier`; only its S256 challenge travels in the authorization request. */
  codeVerifier: string;
  /** When the redirect was made (epoch ms): the pending request expires, and a fresh sign-in must follow it. */
  startedAt: number;
}

export interface AuthorizationStart {
  url: URL;
  pending: PendingAuthorization;
}

/** Why a flow could not start or finish; shown to the user as a page, never as a 500. */
export type OidcProblem =
  /** The authorization server redirected back with `error=` (RFC 6749 §4.1.2.1), e.g. `access_denied`. */
  | { kind: 'idp-error'; error: string }
  /** The authorization server could not be reached (discovery, token endpoint). */
  | { kind: 'unreachable' }
  /**
   * The response did not check out (state, nonce, signature, auth_time) or the code was refused.
   * `refreshToken` is one that was issued anyway and must be revoked, since nobody will see it.
   */
  | { kind: 'rejected'; reason: string; refreshToken?: string };

export type OidcResult<T> = { ok: true; value: T } | { ok: false; problem: OidcProblem };

/** The signed-in user as the ID token of the portal client describes them. */
export interface PortalSignIn {
  sub: string;
  amr: string[];
  /**
   * The user's access token for the download API (the Manual page downloads with it), when the
   * authorization server issued one: a JWT, `aud` = the download URL, about 60 minutes.
   */
  downloadToken?: { value: string; expiresAt: number };
  /** Seconds since the epoch, when present. */
  authTime: number | undefined;
}

/** What the `traqs-api` client's code exchange yields. */
export interface ApiTokenGrant {
  sub: string;
  refreshToken: string;
  authTime: number | undefined;
}

/**
 * The portal's side of OpenID Connect: the confidential client `portal` that signs users in, and
 * the public client `traqs-api` whose refresh tokens users take to their programs. Routes depend
 * on this interface only, so page tests can replace the authorization server.
 */
export interface PortalOidc {
  readonly issuer: string;
  startSignIn(): Promise<OidcResult<AuthorizationStart>>;
  finishSignIn(callbackUrl: URL, pending: PendingAuthorization): Promise<OidcResult<PortalSignIn>>;
  startApiToken(): Promise<OidcResult<AuthorizationStart>>;
  finishApiToken(callbackUrl: URL, pending: PendingAuthorization): Promise<OidcResult<ApiTokenGrant>>;
  /** RP-initiated logout at the idp (OpenID Connect RP-Initiated Logout 1.0 §2). */
  logoutUrl(): string;
}

export interface PortalOidcOptions {
  /** `{idp}/oauth2/default` */
  issuer: string;
  /** The portal's public URL, no trailing slash. */
  portalUrl: string;
  /** The download API's public URL: the `resource` (RFC 8707) of programmatic access tokens. */
  downloadUrl: string;
  portalClientSecret: string;
  /** How long after its second factor a sign-in may still turn into a refresh token. */
  apiSignInMaxAgeSeconds: number;
  clock: Clock;
  /** Test seam: the fetch openid-client uses. */
  fetch?: oidc.CustomFetch;
  /** Seconds before a request to the idp is given up. */
  timeoutSeconds?: number;
  log?: (message: string, err: unknown) => void;
}

/** Seconds a freshly re-authenticated `auth_time` may precede the request that asked for it (clock skew). */
const AUTH_TIME_SKEW_SECONDS = 60;

/** Builds the portal's OpenID Connect client. Discovery happens at first use, not here. */
export function createPortalOidc(options: PortalOidcOptions): PortalOidc {
  const issuer = new URL(options.issuer);
  // openid-client refuses plain http unless told; only a development idp is served without TLS.
  const insecure = issuer.protocol === 'http:';
  const portalRedirect = `${options.portalUrl}/authorization-code/callback`;
  const apiRedirect = `${options.portalUrl}/api/programmatic/callback`;
  const timeout = options.timeoutSeconds ?? 10;

  // The idp may start after the portal: discover lazily, keep the answer, forget a failure.
  let discovered: Promise<oidc.ServerMetadata> | undefined;
  let jwksCache: oidc.ExportedJWKSCache | undefined;
  function serverMetadata(): Promise<oidc.ServerMetadata> {
    if (!discovered) {
      discovered = oidc
        .discovery(issuer, 'portal', undefined, oidc.None(), {
          execute: insecure ? [oidc.allowInsecureRequests] : [],
          timeout,
          ...(options.fetch ? { [oidc.customFetch]: options.fetch } : {}),
        })
        .then((c) => c.serverMetadata());
      discovered.catch(() => {
        discovered = undefined;
      });
    }
    return discovered;
  }

  /**
   * A client configuration for one exchange. Built per call so ID-token time checks use the
   * injected clock (`clockSkew` is fixed when a configuration is made); the key set is shared.
   */
  async function configuration(client: 'portal' | 'traqs-api'): Promise<oidc.Configuration> {
    const server = await serverMetadata();
    const skew = Math.round((options.clock() - Date.now()) / 1000);
    const config =
      client === 'portal'
        ? new oidc.Configuration(
            server,
            'portal',
            {
              client_secret: options.portalClientSecret,
              id_token_signed_response_alg: 'RS256',
              [oidc.clockSkew]: skew,
            },
            oidc.ClientSecretBasic(options.portalClientSecret),
          )
        : new oidc.Configuration(
            server,
            'traqs-api',
            { id_token_signed_response_alg: 'ES256', [oidc.clockSkew]: skew },
            oidc.None(),
          );
    if (insecure) oidc.allowInsecureRequests(config);
    if (options.fetch) config[oidc.customFetch] = options.fetch;
    config.timeout = timeout;
    if (jwksCache) oidc.setJwksCache(config, jwksCache);
    return config;
  }
  const keepJwks = (config: oidc.Configuration) => {
    jwksCache = oidc.getJwksCache(config) ?? jwksCache;
  };

  function problemOf(err: unknown, step: string): OidcProblem {
    if (err instanceof oidc.AuthorizationResponseError) return { kind: 'idp-error', error: err.error };
    if (err instanceof oidc.ResponseBodyError) return { kind: 'rejected', reason: `${step}: ${err.error}` };
    // fetch() fails with a TypeError when nothing listens; a timeout aborts it.
    if (
      err instanceof TypeError ||
      (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
    ) {
      options.log?.(`${step}: authorization server unreachable`, err);
      return { kind: 'unreachable' };
    }
    options.log?.(`${step}: response refused`, err);
    const code = err instanceof oidc.ClientError && err.code ? ` (${err.code})` : '';
    return { kind: 'rejected', reason: `${step}: ${err instanceof Error ? err.message : 'failed'}${code}` };
  }

  async function start(
    client: 'portal' | 'traqs-api',
    params: Record<string, string>,
  ): Promise<OidcResult<AuthorizationStart>> {
    try {
      const config = await configuration(client);
      const pending: PendingAuthorization = {
        state: oidc.randomState(),
        nonce: oidc.randomNonce(),
        codeVerifier: oidc.randomPKCECodeVerifier(),
        startedAt: options.clock(),
      };
      const url = oidc.buildAuthorizationUrl(config, {
        ...params,
        response_type: 'code',
        state: pending.state,
        nonce: pending.nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(pending.codeVerifier),
        code_challenge_method: 'S256',
      });
      return { ok: true, value: { url, pending } };
    } catch (err) {
      return { ok: false, problem: problemOf(err, 'discovery') };
    }
  }

  const stringArray = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

  return {
    issuer: issuer.href.replace(/\/$/, ''),

    // The sign-in also yields the user's access token for the download API (RFC 8707 resource),
    // so the Manual page downloads as the user; no refresh token is involved (issue #5).
    startSignIn: () =>
      start('portal', {
        redirect_uri: portalRedirect,
        scope: 'openid profile email download',
        resource: options.downloadUrl,
      }),

    async finishSignIn(callbackUrl, pending) {
      try {
        const config = await configuration('portal');
        const tokens = await oidc.authorizationCodeGrant(
          config,
          callbackUrl,
          {
            expectedState: pending.state,
            expectedNonce: pending.nonce,
            pkceCodeVerifier: pending.codeVerifier,
          },
          { resource: options.downloadUrl },
        );
        keepJwks(config);
        const claims = tokens.claims();
        if (!claims) return { ok: false, problem: { kind: 'rejected', reason: 'no ID token' } };
        const expiresIn = tokens.expiresIn();
        return {
          ok: true,
          value: {
            ...(tokens.access_token && expiresIn
              ? { downloadToken: { value: tokens.access_token, expiresAt: options.clock() + expiresIn * 1000 } }
              : {}),
            sub: claims.sub,
            amr: stringArray(claims.amr),
            authTime: typeof claims.auth_time === 'number' ? claims.auth_time : undefined,
          },
        };
      } catch (err) {
        return { ok: false, problem: problemOf(err, 'sign-in') };
      }
    },

    // FAQ: a refresh token needs the user to "confirm their identity using their second
    // authentication method": `prompt=login` and `max_age=0` force a fresh sign-in (OIDC Core
    // §3.1.2.1). OIDC Core §11 grants `offline_access` only with `prompt=consent`, which the idp
    // answers without a screen for its first-party clients.
    startApiToken: () =>
      start('traqs-api', {
        redirect_uri: apiRedirect,
        scope: 'openid offline_access download',
        resource: options.downloadUrl,
        prompt: 'login consent',
        max_age: '0',
      }),

    async finishApiToken(callbackUrl, pending) {
      try {
        const config = await configuration('traqs-api');
        const tokens = await oidc.authorizationCodeGrant(
          config,
          callbackUrl,
          { expectedState: pending.state, expectedNonce: pending.nonce, pkceCodeVerifier: pending.codeVerifier },
          { resource: options.downloadUrl },
        );
        keepJwks(config);
        const claims = tokens.claims();
        if (!claims) return { ok: false, problem: { kind: 'rejected', reason: 'no ID token' } };
        if (!tokens.refresh_token) return { ok: false, problem: { kind: 'rejected', reason: 'no refresh token' } };
        // The freshness of the sign-in is checked here rather than by openid-client (`maxAge`), so
        // that a token issued after a stale sign-in is still in hand to be revoked.
        const authTime = typeof claims.auth_time === 'number' ? claims.auth_time * 1000 : undefined;
        const now = options.clock();
        const fresh =
          authTime !== undefined &&
          // The idp enforces the same window (OIDC Core §3.1.2.1 `max_age`), with clock skew allowed.
          now - authTime <= (options.apiSignInMaxAgeSeconds + AUTH_TIME_SKEW_SECONDS) * 1000 &&
          // The sign-in happened after the user asked for the token, not before.
          authTime >= pending.startedAt - AUTH_TIME_SKEW_SECONDS * 1000;
        if (!fresh) {
          return {
            ok: false,
            problem: {
              kind: 'rejected',
              reason: 'the sign-in was not fresh (auth_time)',
              refreshToken: tokens.refresh_token,
            },
          };
        }
        return {
          ok: true,
          value: { sub: claims.sub, refreshToken: tokens.refresh_token, authTime: Math.floor(authTime / 1000) },
        };
      } catch (err) {
        return { ok: false, problem: problemOf(err, 'refresh token') };
      }
    },

    logoutUrl() {
      const url = new URL(`${issuer.href.replace(/\/$/, '')}/v1/logout`);
      url.searchParams.set('client_id', 'portal');
      url.searchParams.set('post_logout_redirect_uri', `${options.portalUrl}/`);
      return url.href;
    },
  };
}
