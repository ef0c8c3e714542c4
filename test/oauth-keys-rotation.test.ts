import OktaJwtVerifier from '@okta/jwt-verifier';
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createSecretBox } from '../src/lib/secret-box.ts';
import { type RotatedSigningKey, rotateSigningKeys } from '../src/oauth/keys.ts';
import { DEFAULT_SIGNED_TOKEN_LIFETIMES, retiringKeyWindowMs } from '../src/oauth/lifetimes.ts';
import { OKTA_DEFAULT_AUDIENCE } from '../src/oauth/provider.ts';
import { createHttpBrowser } from './helpers/http-browser.ts';
import { authorize, discover, type OauthStack, startOauthStack } from './helpers/oauth.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * Key rotation on a running idp (issue #4): after `rotateSigningKeys` (what `traqs keys rotate`
 * does) the idp reloads its key set on its next housekeeping tick; tokens signed before keep
 * verifying against the JWKS until the old keys' retire time, new tokens carry the new kids.
 *
 * buildIdp reaches `reloadKeysIfChanged()` only through its 60-second housekeeping interval, so
 * this file fakes `setInterval` (nothing else) and moves it on by hand.
 */

const HOUSEKEEPING_MS = 60_000;

let s: OauthStack;
let alice: ActiveUser;
let portal: oidc.Configuration;
let api: oidc.Configuration;

beforeAll(async () => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  s = await startOauthStack();
  alice = await activateUser(s, 'alice@acme.example');
  await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
  portal = await discover(s, 'portal');
  api = await discover(s, 'traqs-api');
});
afterAll(async () => {
  await s?.close();
  vi.useRealTimers();
});

async function fetchJwks(): Promise<JSONWebKeySet> {
  const res = await fetch(`${s.issuer}/v1/keys`);
  return (await res.json()) as JSONWebKeySet;
}
const kids = (jwks: JSONWebKeySet) => jwks.keys.map((k) => String(k.kid)).sort();
const kidOf = (jwt: string) => String(decodeProtectedHeader(jwt).kid);

/** Runs the idp's housekeeping tick and waits until the JWKS it serves has `expected` keys. */
async function housekeepingTick(expected: number): Promise<JSONWebKeySet> {
  vi.advanceTimersByTime(HOUSEKEEPING_MS);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const jwks = await fetchJwks();
    if (jwks.keys.length === expected) return jwks;
    if (Date.now() > deadline) throw new Error(`JWKS still has ${jwks.keys.length} keys, expected ${expected}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The portal's tokens with an RS256 access token for api://default, and the traqs-api ones. */
async function issueTokens() {
  const portalFlow = await authorize(
    s,
    createHttpBrowser(),
    portal,
    { redirect_uri: s.portalCallback, scope: 'openid profile email', resource: OKTA_DEFAULT_AUDIENCE },
    alice,
  );
  if (!portalFlow.callbackUrl) throw new Error('no portal code');
  const portalTokens = await oidc.authorizationCodeGrant(portal, portalFlow.callbackUrl, {
    pkceCodeVerifier: portalFlow.verifier,
    expectedState: portalFlow.state,
    expectedNonce: portalFlow.nonce,
  });
  const apiFlow = await authorize(
    s,
    createHttpBrowser(),
    api,
    {
      redirect_uri: s.programmaticCallback,
      scope: 'openid offline_access download',
      resource: s.downloadUrl,
      prompt: 'login consent',
      max_age: '0',
    },
    alice,
  );
  if (!apiFlow.callbackUrl) throw new Error('no traqs-api code');
  const apiTokens = await oidc.authorizationCodeGrant(api, apiFlow.callbackUrl, {
    pkceCodeVerifier: apiFlow.verifier,
    expectedState: apiFlow.state,
    expectedNonce: apiFlow.nonce,
  });
  return {
    /** RS256, aud api://default. */
    oktaAccessToken: portalTokens.access_token,
    /** RS256, aud portal. */
    portalIdToken: portalTokens.id_token ?? '',
    /** ES256, aud = the download URL. */
    downloadAccessToken: apiTokens.access_token,
    refreshToken: apiTokens.refresh_token ?? '',
  };
}

async function verifyAll(jwks: JSONWebKeySet, tokens: Awaited<ReturnType<typeof issueTokens>>) {
  const keySet = createLocalJWKSet(jwks);
  await jwtVerify(tokens.oktaAccessToken, keySet, { issuer: s.issuer, audience: OKTA_DEFAULT_AUDIENCE });
  await jwtVerify(tokens.portalIdToken, keySet, { issuer: s.issuer, audience: 'portal' });
  await jwtVerify(tokens.downloadAccessToken, keySet, { issuer: s.issuer, audience: s.downloadUrl });
}

describe('signing key rotation on a running idp', () => {
  let before: Awaited<ReturnType<typeof issueTokens>>;
  let oldKids: string[];
  let rotated: RotatedSigningKey[];
  let rotatedAt: number;

  it('signs with the keys of the first start', async () => {
    oldKids = kids(await fetchJwks());
    expect(oldKids).toHaveLength(2);
    before = await issueTokens();
    await verifyAll(await fetchJwks(), before);
    expect(oldKids).toContain(kidOf(before.oktaAccessToken));
    expect(oldKids).toContain(kidOf(before.downloadAccessToken));
  });

  it('keeps the old keys signing until the idp reloads its key set', async () => {
    rotatedAt = s.clock();
    rotated = await rotateSigningKeys(s.rt.store, createSecretBox(s.rt.keys.secretBoxKey), s.clock);
    expect(rotated.map((r) => r.retiringKid).sort()).toEqual(oldKids);
    expect(kids(await fetchJwks())).toEqual(oldKids);
    const grant = await oidc.refreshTokenGrant(api, before.refreshToken);
    expect(oldKids).toContain(kidOf(grant.access_token));
  });

  it('after the reload: publishes old and new keys, old tokens still verify, new tokens carry the new kids', async () => {
    const jwks = await housekeepingTick(4);
    const newKid = (alg: string) => rotated.find((r) => r.alg === alg)?.kid ?? '';
    expect(kids(jwks)).toEqual([...oldKids, newKid('ES256'), newKid('RS256')].sort());

    // Tokens from before the rotation, against the JWKS a verifier fetches now.
    await verifyAll(jwks, before);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const okta = new OktaJwtVerifier({ issuer: s.issuer, testing: { disableHttpsCheck: true } });
    warn.mockRestore();
    await expect(okta.verifyAccessToken(before.oktaAccessToken, OKTA_DEFAULT_AUDIENCE)).resolves.toBeTruthy();

    // The refresh token from before still works (opaque, not signed); its new JWT has the new kid.
    const grant = await oidc.refreshTokenGrant(api, before.refreshToken);
    expect(decodeProtectedHeader(grant.access_token)).toMatchObject({ alg: 'ES256', kid: newKid('ES256') });
    await jwtVerify(grant.access_token, createLocalJWKSet(jwks), { issuer: s.issuer, audience: s.downloadUrl });

    const after = await issueTokens();
    expect(kidOf(after.oktaAccessToken)).toBe(newKid('RS256'));
    expect(kidOf(after.portalIdToken)).toBe(newKid('RS256'));
    expect(kidOf(after.downloadAccessToken)).toBe(newKid('ES256'));
    await verifyAll(jwks, after);
    await expect(okta.verifyAccessToken(after.oktaAccessToken, OKTA_DEFAULT_AUDIENCE)).resolves.toBeTruthy();
  });

  it('drops the old keys from the JWKS after their retire time, and tokens they signed stop verifying', async () => {
    const retireAfter = rotated[0]?.retireAfter ?? 0;
    expect(rotated.every((r) => r.retireAfter === retireAfter)).toBe(true);
    expect(retireAfter - rotatedAt).toBe(retiringKeyWindowMs(DEFAULT_SIGNED_TOKEN_LIFETIMES));
    s.clock.set(retireAfter - 1);
    // Just before the retire time: still published.
    expect(kids(await housekeepingTick(4))).toEqual(expect.arrayContaining(oldKids));
    s.clock.set(retireAfter + 1);
    const jwks = await housekeepingTick(2);
    expect(kids(jwks)).toEqual(rotated.map((r) => r.kid).sort());
    // Whatever the old keys signed has expired by now; even ignoring that, no published key verifies it.
    const lateEnough = { currentDate: new Date(0), issuer: s.issuer };
    await expect(
      jwtVerify(before.downloadAccessToken, createLocalJWKSet(jwks), { ...lateEnough, audience: s.downloadUrl }),
    ).rejects.toThrow(/no applicable key/i);
  });
});
