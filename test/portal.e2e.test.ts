import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import { buildPortal } from '../src/portal/app.ts';
import { csrfFrom } from './helpers/browser.ts';
import { createHttpBrowser, type HttpBrowser } from './helpers/http-browser.ts';
import { type OauthStack, signInOnPages, startOauthStack } from './helpers/oauth.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * The TRAQS website end to end over real HTTP: the idp (with its authorization server) and the
 * portal listening on their own ports, a user signing in on the idp's pages, reaching the portal,
 * getting a refresh token on the Programmatic page (a second sign-in with the second factor),
 * using it at the token endpoint, revoking it on the page, and signing out of both.
 */

let s: OauthStack;
let portal: FastifyInstance;
let alice: ActiveUser;

beforeAll(async () => {
  s = await startOauthStack();
  portal = await buildPortal(s.rt);
  await portal.listen({ port: s.rt.environment.portal.port, host: '127.0.0.1' });
  alice = await activateUser(s, 'alice@acme.example');
  await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
});
afterAll(async () => {
  await portal?.close();
  await s?.close();
});

const refreshGrant = (refreshToken: string) =>
  fetch(`${s.issuer}/v1/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'traqs-api', refresh_token: refreshToken }),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

/** Follows `url` to the idp's sign-in page, signs in there, and follows back to where it ends. */
async function throughSignIn(browser: HttpBrowser, url: string, expectPurpose: string) {
  const { answer: signInPage } = await browser.follow(url);
  expect(signInPage.status, signInPage.body.slice(0, 500)).toBe(200);
  expect(signInPage.url).toContain(`/signin?for=${expectPurpose}`);
  const done = await signInOnPages(s, browser, signInPage.url, alice);
  return browser.follow(done.location ?? '');
}

describe('TRAQS website with the idp', () => {
  const browser = createHttpBrowser();
  let refreshToken = '';

  it('signs in through the idp and shows the home page', async () => {
    const { answer: home, visited } = await throughSignIn(browser, `${s.portalUrl}/`, 'portal');
    expect(home.status, home.body.slice(0, 500)).toBe(200);
    expect(home.url).toBe(`${s.portalUrl}/`);
    expect(visited.some((u) => u.startsWith(`${s.portalUrl}/authorization-code/callback?`))).toBe(true);
    expect(home.body).toContain('Welcome, Test User');
    expect(home.body).toContain('Acme Securities');
    expect(home.body).toContain('href="/api/programmatic"');
  });

  it('gets a refresh token on the Programmatic page after signing in again with the second factor', async () => {
    const page = await browser.get(`${s.portalUrl}/api/programmatic`);
    expect(page.status).toBe(200);
    const start = await browser.post(`${s.portalUrl}/api/programmatic/start`, {
      label: 'nightly job',
      _csrf: csrfFrom(page.body),
    });
    expect(start.status).toBe(303);
    const authorize = new URL(start.location ?? '');
    expect(authorize.href.startsWith(`${s.issuer}/v1/authorize?`)).toBe(true);
    expect(authorize.searchParams.get('client_id')).toBe('traqs-api');
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('prompt')).toContain('login');
    expect(authorize.searchParams.get('resource')).toBe(s.downloadUrl);

    // prompt=login: the idp session is not enough, the user signs in again (password + code).
    const { answer: shown } = await throughSignIn(browser, authorize.href, 'programmatic');
    expect(shown.status, shown.body.slice(0, 800)).toBe(200);
    expect(shown.url.startsWith(`${s.portalUrl}/api/programmatic/callback?`)).toBe(true);
    expect(shown.headers.get('cache-control')).toBe('no-store');
    refreshToken = /<code class="secret" id="refresh-token">([^<]+)<\/code>/.exec(shown.body)?.[1] ?? '';
    expect(refreshToken).not.toBe('');

    const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(refreshToken));
    expect(row).toMatchObject({ user_id: alice.user.id, client_id: 'traqs-api', label: 'nightly job' });
    expect(shown.body).toContain(new Date(row?.expires_at ?? 0).toISOString().slice(0, 10));
  });

  it('the token works at the token endpoint: a JWT access token for the download API', async () => {
    const r = await refreshGrant(refreshToken);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const claims = decodeJwt(String(r.body.access_token));
    expect(claims.aud).toBe(s.downloadUrl);
    expect(claims.sub).toBe(alice.user.id);
  });

  it('revoked on the page, the token is refused with invalid_grant', async () => {
    const page = await browser.get(`${s.portalUrl}/api/programmatic`);
    expect(page.body).toContain('nightly job');
    const action = `/api/programmatic/tokens/${hashBearerSecret(refreshToken)}/revoke`;
    expect(page.body).toContain(action);
    const revoked = await browser.post(`${s.portalUrl}${action}`, { _csrf: csrfFrom(page.body) });
    expect(revoked.status).toBe(303);
    const after = await browser.get(`${s.portalUrl}/api/programmatic?done=revoked`);
    expect(after.body).toContain('The refresh token was revoked.');

    const r = await refreshGrant(refreshToken);
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_grant');
  });

  it('signs out of the portal and of the idp', async () => {
    const home = await browser.get(`${s.portalUrl}/`);
    const out = await browser.post(`${s.portalUrl}/signout`, { _csrf: csrfFrom(home.body) });
    expect(out.status).toBe(303);
    const logout = new URL(out.location ?? '');
    expect(logout.href.startsWith(`${s.issuer}/v1/logout?`)).toBe(true);
    expect(logout.searchParams.get('client_id')).toBe('portal');
    expect(logout.searchParams.get('post_logout_redirect_uri')).toBe(`${s.portalUrl}/`);

    // The idp's confirmation page (submitted by a script in a real browser).
    const confirm = await browser.get(logout.href);
    expect(confirm.status).toBe(200);
    const formAction = /<form[^>]*action="([^"]+)"/.exec(confirm.body)?.[1] ?? '';
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)?.[1] ?? '';
    expect(xsrf).not.toBe('');
    const done = await browser.post(new URL(formAction.replaceAll('&amp;', '&'), logout).href, {
      xsrf,
      logout: 'yes',
    });
    expect(done.status).toBe(303);
    expect(done.location).toBe(`${s.portalUrl}/`);

    // Back at the portal: signed out here, and the idp asks for a sign-in again.
    const { answer } = await browser.follow(`${s.portalUrl}/`);
    expect(answer.status).toBe(200);
    expect(answer.url).toContain('/signin?for=portal');
  });
});

describe('a user not assigned to the portal', () => {
  it('is stopped with 403 "App not assigned"', async () => {
    const bob = await activateUser(s, 'bob@acme.example');
    await s.rt.store.repos.users.unassignApp(bob.user.id, 'portal');
    const browser = createHttpBrowser();
    const { answer: signInPage } = await browser.follow(`${s.portalUrl}/`);
    const done = await signInOnPages(s, browser, signInPage.url, bob);
    const { answer } = await browser.follow(done.location ?? '');
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('App not assigned');
    expect(answer.body).toContain(s.config.contacts.techSupportPhone);
  });
});
