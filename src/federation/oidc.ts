import * as oidc from 'openid-client';
import type { OidcSettings } from './model.ts';
import { type FederatedIdentity, normalizeUsername, oidcReportsMfa } from './verify.ts';

/** OpenID Connect Core §3.1.3.7: a small allowance for clock differences on `iat`/`exp`. */
export const OIDC_CLOCK_TOLERANCE_S = 60;
/** Discovery and token requests give up after this long: the user sees "IdP unreachable". */
const REQUEST_TIMEOUT_S = 5;
/** Discovered metadata is reused for this long, then fetched again (key rollover, moved endpoints). */
const DISCOVERY_TTL_MS = 10 * 60_000;

/** The IdP could not be reached or answered nonsense at discovery or the token endpoint. */
export class IdpUnreachableError extends Error {}

/**
 * Plain http only for a loopback issuer (a test OP on this machine); every other issuer must use
 * https (OpenID Connect Discovery §4, RFC 9700 §2.6).
 */
export function isLoopbackHttp(url: string): boolean {
  const u = new URL(url);
  return u.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
}

/** Our OIDC relying party for the IdPs of one environment: discovery cached per IdP. */
export function createOidcRelyingParty(clock: () => number) {
  const cache = new Map<string, { config: oidc.Configuration; at: number }>();

  async function configurationFor(idpId: string, settings: OidcSettings, secret: string): Promise<oidc.Configuration> {
    const hit = cache.get(idpId);
    if (hit && clock() - hit.at < DISCOVERY_TTL_MS) return hit.config;
    let config: oidc.Configuration;
    try {
      config = await oidc.discovery(
        new URL(settings.issuer),
        settings.clientId,
        { [oidc.clockTolerance]: OIDC_CLOCK_TOLERANCE_S },
        // RFC 6749 §2.3.1: every authorization server supports HTTP Basic client authentication.
        oidc.ClientSecretBasic(secret),
        {
          timeout: REQUEST_TIMEOUT_S,
          ...(isLoopbackHttp(settings.issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
        },
      );
    } catch (err) {
      throw new IdpUnreachableError(`Discovery of ${settings.issuer} failed: ${(err as Error).message}`);
    }
    config.timeout = REQUEST_TIMEOUT_S;
    cache.set(idpId, { config, at: clock() });
    return config;
  }

  return {
    /** Fresh state, nonce and PKCE verifier (RFC 7636 S256), and the authorization URL that carries them. */
    async begin(
      idpId: string,
      settings: OidcSettings,
      secret: string,
      redirectUri: string,
      loginHint: string | undefined,
    ): Promise<{ url: string; state: string; nonce: string; verifier: string }> {
      const config = await configurationFor(idpId, settings, secret);
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid email profile',
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        ...(loginHint ? { login_hint: loginHint } : {}),
      });
      return { url: url.href, state, nonce, verifier };
    },

    /**
     * Exchanges the code (with the PKCE verifier) and validates the ID token: signature against the
     * IdP's JWKS, `iss`, `aud`, `exp`/`iat` with {@link OIDC_CLOCK_TOLERANCE_S}, `nonce`, and `state`
     * (OpenID Connect Core §3.1.3.7). Throws openid-client's error when anything is wrong.
     */
    async complete(
      idpId: string,
      settings: OidcSettings,
      secret: string,
      callbackUrl: URL,
      expected: { state: string; nonce: string; verifier: string },
    ): Promise<{ identity: FederatedIdentity; subject: string }> {
      const config = await configurationFor(idpId, settings, secret);
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: expected.verifier,
        expectedState: expected.state,
        expectedNonce: expected.nonce,
        idTokenExpected: true,
      });
      const idToken = tokens.claims();
      if (!idToken) throw new Error('No ID token');
      let claims: Record<string, unknown> = idToken;
      // OpenID Connect Core §5.4: with an access token, scope claims (email) may come from the
      // UserInfo endpoint only; its `sub` must be the ID token's (§5.3.2).
      if (claims[settings.userClaim] === undefined) {
        claims = { ...(await oidc.fetchUserInfo(config, tokens.access_token, idToken.sub)), amr: idToken.amr };
      }
      // An email claim the IdP itself has not verified names nobody (OpenID Connect Core §5.1).
      const unverifiedEmail = settings.userClaim === 'email' && claims.email_verified === false;
      return {
        identity: {
          username: unverifiedEmail ? undefined : normalizeUsername(claims[settings.userClaim]),
          mfa: oidcReportsMfa(claims.amr),
        },
        subject: idToken.sub,
      };
    },
  };
}
export type OidcRelyingParty = ReturnType<typeof createOidcRelyingParty>;
