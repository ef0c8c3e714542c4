import OktaJwtVerifier from '@okta/jwt-verifier';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { OKTA_DEFAULT_AUDIENCE } from '../src/oauth/provider.ts';
import { createHttpBrowser } from './helpers/http-browser.ts';
import { authorize, discover, type OauthStack, startOauthStack } from './helpers/oauth.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * A resource server that already trusts Okta keeps working when pointed at us: the unmodified
 * `@okta/jwt-verifier` (RS256 only, keys from `{issuer}/v1/keys`) accepts our access tokens for
 * Okta's default audience and our ID tokens, and refuses what it should.
 */

let s: OauthStack;
let alice: ActiveUser;
let portal: oidc.Configuration;
let verifier: OktaJwtVerifier;
let tokens: { accessToken: string; idToken: string; nonce: string };

beforeAll(async () => {
  s = await startOauthStack();
  alice = await activateUser(s, 'alice@acme.example');
  portal = await discover(s, 'portal');
  // The verifier warns once that the HTTPS check is off (the test issuer is http://localhost).
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  verifier = new OktaJwtVerifier({ issuer: s.issuer, testing: { disableHttpsCheck: true } });
  warn.mockRestore();

  const flow = await authorize(
    s,
    createHttpBrowser(),
    portal,
    { redirect_uri: s.portalCallback, scope: 'openid profile email', resource: OKTA_DEFAULT_AUDIENCE },
    alice,
  );
  if (!flow.callbackUrl)
    throw new Error(`no code: ${flow.last.status} ${flow.last.url} ${flow.last.body.slice(0, 300)}`);
  const grant = await oidc.authorizationCodeGrant(portal, flow.callbackUrl, {
    pkceCodeVerifier: flow.verifier,
    expectedState: flow.state,
    expectedNonce: flow.nonce,
  });
  tokens = { accessToken: grant.access_token, idToken: grant.id_token ?? '', nonce: flow.nonce };
});
afterAll(async () => {
  await s?.close();
});

/** The token with one character of its signature changed (still valid base64url). */
function tamperSignature(jwt: string): string {
  const dot = jwt.lastIndexOf('.');
  const signature = jwt.slice(dot + 1);
  const i = Math.floor(signature.length / 2);
  const swapped = signature[i] === 'A' ? 'B' : 'A';
  return `${jwt.slice(0, dot + 1)}${signature.slice(0, i)}${swapped}${signature.slice(i + 1)}`;
}

describe('@okta/jwt-verifier against our authorization server', () => {
  it('gets an RS256 JWT access token for api://default through the portal code flow', () => {
    expect(decodeProtectedHeader(tokens.accessToken).alg).toBe('RS256');
    expect(decodeJwt(tokens.accessToken).aud).toBe(OKTA_DEFAULT_AUDIENCE);
  });

  it('verifies the access token for api://default, with Okta-style claims', async () => {
    const jwt = await verifier.verifyAccessToken(tokens.accessToken, OKTA_DEFAULT_AUDIENCE);
    expect(jwt.claims.iss).toBe(s.issuer);
    expect(jwt.claims.aud).toBe(OKTA_DEFAULT_AUDIENCE);
    expect(jwt.claims.sub).toBe(alice.user.id);
    expect(jwt.claims.cid).toBe('portal');
    expect(jwt.claims.uid).toBe(alice.user.id);
    expect(String(jwt.claims.scope).split(' ')).toEqual(expect.arrayContaining(['openid', 'profile', 'email']));
    // One audience among several expected ones also passes, as with Okta.
    await expect(
      verifier.verifyAccessToken(tokens.accessToken, ['api://other', OKTA_DEFAULT_AUDIENCE]),
    ).resolves.toBeTruthy();
  });

  it('verifies the ID token for the portal client with its nonce', async () => {
    const jwt = await verifier.verifyIdToken(tokens.idToken, 'portal', tokens.nonce);
    expect(jwt.header.alg).toBe('RS256');
    expect(jwt.claims.sub).toBe(alice.user.id);
    expect(jwt.claims.amr).toEqual(expect.arrayContaining(['mfa']));
    await expect(verifier.verifyIdToken(tokens.idToken, 'portal', 'another-nonce')).rejects.toThrow(/nonce/);
    await expect(verifier.verifyIdToken(tokens.idToken, 'traqs-api', tokens.nonce)).rejects.toThrow(/client id/);
  });

  it('refuses a token whose signature was tampered with', async () => {
    await expect(
      verifier.verifyAccessToken(tamperSignature(tokens.accessToken), OKTA_DEFAULT_AUDIENCE),
    ).rejects.toThrow(/signature/i);
    await expect(verifier.verifyIdToken(tamperSignature(tokens.idToken), 'portal', tokens.nonce)).rejects.toThrow(
      /signature/i,
    );
  });

  it('refuses the access token for another audience', async () => {
    await expect(verifier.verifyAccessToken(tokens.accessToken, 'api://other')).rejects.toThrow(/audience/);
    await expect(verifier.verifyAccessToken(tokens.accessToken, s.downloadUrl)).rejects.toThrow(/audience/);
  });

  it('refuses a verifier configured for another issuer', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const other = new OktaJwtVerifier({
      issuer: `${s.idpUrl}/oauth2/other`,
      jwksUri: `${s.issuer}/v1/keys`,
      testing: { disableHttpsCheck: true },
    });
    warn.mockRestore();
    await expect(other.verifyAccessToken(tokens.accessToken, OKTA_DEFAULT_AUDIENCE)).rejects.toThrow(/issuer/);
  });
});
