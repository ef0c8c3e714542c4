import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import { buildPortal } from '../src/portal/app.ts';
import { createPortalOidc } from '../src/portal/oidc-client.ts';
import { type Browser, csrfFrom, setCookies } from './helpers/browser.ts';
import {
  createPortalWithFakeIdp,
  type FakeOidc,
  PORTAL_SID,
  portalBrowser,
  recordIssuedToken,
  signInToPortal,
} from './helpers/portal.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * The portal's pages with the authorization server replaced (the idp's side is covered by the
 * end-to-end test): sign-in and its failures, sessions, sign-out, the API menu and the
 * Programmatic page with its access rules.
 */

const MINUTE = 60_000;
let s: TestStack;
let portal: FastifyInstance;
let fake: FakeOidc;
let alice: ActiveUser;
let b: Browser;

beforeEach(async () => {
  s = await createTestStack();
  ({ portal, fake } = await createPortalWithFakeIdp(s));
  alice = await activateUser(s, 'alice@acme.example');
  b = portalBrowser(s, portal);
});
afterEach(async () => {
  await portal.close();
  await s.close();
});

const portalUrl = () => s.rt.environment.portal.publicUrl;

async function assignDownload(userId: string) {
  await s.rt.store.repos.users.assignApp(userId, 'download', s.clock());
}

async function events(action: string) {
  return s.rt.store.repos.audit.listEvents({ action });
}

describe('sign-in', () => {
  it('sends a visitor without a session to /login, and /login to the authorization server', async () => {
    const home = await b.get('/');
    expect(home.statusCode).toBe(303);
    expect(home.headers.location).toBe('/login');

    const login = await b.get('/login');
    expect(login.statusCode).toBe(303);
    expect(String(login.headers.location)).toMatch(/^https:\/\/idp\.test\/oauth2\/default\/v1\/authorize\?/);
    const flow = login.cookies.find((c) => c.name === 'traqs_ntf_portal_signin');
    expect(flow).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/authorization-code/' });
    // Signed, and neither state nor verifier readable as plain text in the cookie name/value pair.
    expect(flow?.value).toMatch(/\.[A-Za-z0-9+/=_-]+$/);
  });

  it('finishes the code flow into a session whose id is stored only as its SHA-256', async () => {
    const sid = await signInToPortal(b, fake, alice.user.id);
    const set = b.jar.get(PORTAL_SID);
    expect(set).toBe(sid);
    const rows = await s.rt.store.repos.portalSessions.findActive(hashBearerSecret(sid), s.clock());
    expect(rows?.user_id).toBe(alice.user.id);
    expect(JSON.stringify(rows)).not.toContain(sid);
    // The callback URL handed to the OIDC client is the registered one, rebuilt on the public URL.
    expect(fake.received.at(-1)?.href.startsWith(`${portalUrl()}/authorization-code/callback?`)).toBe(true);
    const [start] = await events('app.portal.session.start');
    expect(start).toMatchObject({ actor_id: alice.user.id, outcome: 'success' });
  });

  it('sets the session cookie HttpOnly, SameSite=Lax, for the whole site', async () => {
    const login = await b.get('/login');
    const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
    const code = fake.issueCode({ client: 'portal', sub: alice.user.id });
    const back = await b.get(`/authorization-code/callback?code=${code}&state=${state}`);
    expect(back.statusCode).toBe(303);
    expect(back.headers.location).toBe('/');
    const sid = back.cookies.find((c) => c.name === PORTAL_SID);
    expect(sid).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    expect(sid?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The flow cookie is cleared: the callback cannot be replayed.
    expect(setCookies(back).some((c) => c.startsWith('traqs_ntf_portal_signin=;'))).toBe(true);
  });

  it('shows the home page: name, firm, the API menu with Manual and Programmatic, and a sign-out form', async () => {
    await signInToPortal(b, fake, alice.user.id);
    const home = await b.get('/');
    expect(home.statusCode).toBe(200);
    expect(home.payload).toContain('Welcome, Test User');
    expect(home.payload).toContain('Acme Securities');
    expect(home.payload).toContain('<a href="/api/programmatic">Programmatic</a>');
    expect(home.payload).toContain('<a href="/api/manual">Manual</a>');
    expect(home.payload).toContain('action="/signout"');
    // The environment banner of a test environment, and the service name.
    expect(home.payload).toContain('NTF test environment');
    expect(home.payload).toContain('<title>Home · TRAQS · NTF</title>');
  });

  it('gives a new session id at every sign-in and ends the one the browser had', async () => {
    const first = await signInToPortal(b, fake, alice.user.id);
    const second = await signInToPortal(b, fake, alice.user.id);
    expect(second).not.toBe(first);
    const repo = s.rt.store.repos.portalSessions;
    expect(await repo.findActive(hashBearerSecret(first), s.clock())).toBeUndefined();
    expect(await repo.findActive(hashBearerSecret(second), s.clock())).toBeDefined();
  });

  it('returns to the page that asked for sign-in, and never to another site', async () => {
    const page = await b.get('/api/programmatic');
    expect(page.headers.location).toBe('/login?next=%2Fapi%2Fprogrammatic');
    const login = await b.get('/login?next=%2Fapi%2Fprogrammatic');
    const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
    const back = await b.get(
      `/authorization-code/callback?code=${fake.issueCode({ client: 'portal', sub: alice.user.id })}&state=${state}`,
    );
    expect(back.headers.location).toBe('/api/programmatic');

    const other = portalBrowser(s, portal);
    const evil = await other.get('/login?next=https%3A%2F%2Fevil.example%2F');
    const evilState = new URL(String(evil.headers.location)).searchParams.get('state') ?? '';
    const evilBack = await other.get(
      `/authorization-code/callback?code=${fake.issueCode({ client: 'portal', sub: alice.user.id })}&state=${evilState}`,
    );
    expect(evilBack.headers.location).toBe('/');
  });

  it('refuses a callback whose state is not this browser’s, with a Try again link', async () => {
    await b.get('/login');
    const code = fake.issueCode({ client: 'portal', sub: alice.user.id });
    const res = await b.get(`/authorization-code/callback?code=${code}&state=forged`);
    expect(res.statusCode).toBe(400);
    expect(res.payload).toContain('Sign-in did not complete');
    expect(res.payload).toContain('href="/login"');
    expect(res.payload).toContain('Try again');
    expect(b.jar.get(PORTAL_SID)).toBeUndefined();
  });

  it('refuses a callback without the flow cookie (another browser, or too late)', async () => {
    const code = fake.issueCode({ client: 'portal', sub: alice.user.id });
    const stranger = await b.get(`/authorization-code/callback?code=${code}&state=x`);
    expect(stranger.statusCode).toBe(400);
    expect(stranger.payload).toContain('started in another window or browser');

    const login = await b.get('/login');
    const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
    s.clock.advance((s.config.policy.transactionMinutes + 1) * MINUTE);
    const late = await b.get(
      `/authorization-code/callback?code=${fake.issueCode({ client: 'portal', sub: alice.user.id })}&state=${state}`,
    );
    expect(late.statusCode).toBe(400);
    expect(b.jar.get(PORTAL_SID)).toBeUndefined();
  });

  it('refuses a tampered flow cookie', async () => {
    const login = await b.get('/login');
    const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
    const value = b.jar.get('traqs_ntf_portal_signin') ?? '';
    b.jar.set('traqs_ntf_portal_signin', `x${value}`);
    const res = await b.get(
      `/authorization-code/callback?code=${fake.issueCode({ client: 'portal', sub: alice.user.id })}&state=${state}`,
    );
    expect(res.statusCode).toBe(400);
    expect(b.jar.get(PORTAL_SID)).toBeUndefined();
  });

  it.each([
    ['access_denied', 403, 'cancelled or refused'],
    ['login_required', 400, 'did not complete'],
    ['temporarily_unavailable', 503, 'had a problem'],
    ['invalid_scope', 400, 'could not complete'],
  ])('shows error=%s from the idp as a page (%i) with Try again, never a 500', async (error, status, text) => {
    const login = await b.get('/login');
    const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
    const res = await b.get(
      `/authorization-code/callback?error=${error}&error_description=Call+0900+SCAM&state=${state}`,
    );
    expect(res.statusCode).toBe(status);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.payload).toContain(text);
    expect(res.payload).toContain('id="try-again"');
    expect(res.payload).toContain(`<code>${error}</code>`);
    // The description comes from the query string: it is not repeated on our page.
    expect(res.payload).not.toContain('SCAM');
  });

  it('shows an error from the idp even when the flow cookie is gone, without echoing odd codes', async () => {
    const res = await b.get('/authorization-code/callback?error=%3Cscript%3Ealert(1)%3C%2Fscript%3E');
    expect(res.statusCode).toBe(400);
    expect(res.payload).not.toContain('<script>alert');
    expect(res.payload).toContain('Try again');
  });

  it('answers 503 with Try again when the authorization server cannot be reached', async () => {
    fake.fail({ kind: 'unreachable' });
    const res = await b.get('/login');
    expect(res.statusCode).toBe(503);
    expect(res.payload).toContain('cannot be reached right now');
    expect(res.payload).toContain('href="/login"');
  });

  it('refuses a user not assigned to the portal: 403 "App not assigned" with whom to contact', async () => {
    const made = await s.rt.accounts.provisionUser({
      email: 'bob@acme.example',
      firstName: 'Bob',
      lastName: 'Builder',
      firmId: s.firm.id,
      apps: ['download'],
    });
    if (!made.ok) throw new Error(made.message);
    await s.rt.store.repos.users.transitionStatus(made.user.id, ['PROVISIONED'], 'ACTIVE', s.clock());
    const login = await b.get('/login');
    const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
    const code = fake.issueCode({ client: 'portal', sub: made.user.id });
    const res = await b.get(`/authorization-code/callback?code=${code}&state=${state}`);
    expect(res.statusCode).toBe(403);
    expect(res.payload).toContain('App not assigned');
    expect(res.payload).toContain('bob@acme.example');
    const c = s.config.contacts;
    expect(res.payload).toContain(`${c.techSupportName} at ${c.techSupportPhone}`);
    expect(b.jar.get(PORTAL_SID)).toBeUndefined();
    const [denied] = await events('app.generic.unauth_app_access_attempt');
    expect(denied).toMatchObject({ actor_id: made.user.id, outcome: 'denied' });
  });

  it('refuses a suspended account at sign-in and ends its session at the next request', async () => {
    await signInToPortal(b, fake, alice.user.id);
    expect((await b.get('/')).statusCode).toBe(200);
    await s.rt.store.repos.users.transitionStatus(alice.user.id, ['ACTIVE'], 'SUSPENDED', s.clock());
    const home = await b.get('/');
    expect(home.statusCode).toBe(303);
    expect(home.headers.location).toBe('/login');

    const other = portalBrowser(s, portal);
    const login = await other.get('/login');
    const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
    const res = await other.get(
      `/authorization-code/callback?code=${fake.issueCode({ client: 'portal', sub: alice.user.id })}&state=${state}`,
    );
    expect(res.statusCode).toBe(403);
    expect(other.jar.get(PORTAL_SID)).toBeUndefined();
  });
});

describe('sessions', () => {
  it('end after the idle timeout', async () => {
    await signInToPortal(b, fake, alice.user.id);
    s.clock.advance(s.config.policy.sessionIdleMinutes * MINUTE - MINUTE);
    expect((await b.get('/')).statusCode).toBe(200);
    s.clock.advance(s.config.policy.sessionIdleMinutes * MINUTE - MINUTE);
    // Activity slid the idle window forward.
    expect((await b.get('/')).statusCode).toBe(200);
    s.clock.advance(s.config.policy.sessionIdleMinutes * MINUTE + 1);
    expect((await b.get('/')).headers.location).toBe('/login');
  });

  it('end after the absolute timeout, however active', async () => {
    await signInToPortal(b, fake, alice.user.id);
    const step = (s.config.policy.sessionIdleMinutes / 2) * MINUTE;
    const steps = Math.ceil((s.config.policy.sessionAbsoluteHours * 60 * MINUTE) / step);
    for (let i = 0; i < steps - 1; i++) {
      s.clock.advance(step);
      expect((await b.get('/')).statusCode, `step ${i}`).toBe(200);
    }
    s.clock.advance(step);
    expect((await b.get('/')).headers.location).toBe('/login');
  });

  it('sign-out needs the CSRF token, ends the session and continues to the idp’s logout', async () => {
    const sid = await signInToPortal(b, fake, alice.user.id);
    const forged = await b.post('/signout', {});
    expect(forged.statusCode).toBe(403);
    expect((await b.get('/')).statusCode).toBe(200);

    const home = await b.get('/');
    const out = await b.post('/signout', { _csrf: csrfFrom(home.payload) });
    expect(out.statusCode).toBe(303);
    expect(out.headers.location).toBe(fake.oidc.logoutUrl());
    expect(b.jar.get(PORTAL_SID)).toBeUndefined();
    expect(await s.rt.store.repos.portalSessions.findActive(hashBearerSecret(sid), s.clock())).toBeUndefined();
    const [ended] = await events('app.portal.session.end');
    expect(ended).toMatchObject({ actor_id: alice.user.id });

    // The old cookie, replayed, no longer works.
    b.jar.set(PORTAL_SID, sid);
    expect((await b.get('/')).headers.location).toBe('/login');
  });
});

describe('real OpenID Connect client without an idp', () => {
  it('answers 503 with Try again when the idp is not listening, and recovers once it is', async () => {
    const real = await buildPortal(s.rt);
    try {
      const res = await real.inject({ method: 'GET', url: '/login' });
      expect(res.statusCode).toBe(503);
      expect(res.payload).toContain('Try again');
    } finally {
      await real.close();
    }
  });

  it('builds the RP-initiated logout URL of the contract', () => {
    const idp = s.rt.environment.idp.publicUrl;
    const oidc = createPortalOidc({
      issuer: `${idp}/oauth2/default`,
      portalUrl: portalUrl(),
      downloadUrl: s.rt.environment.download.publicUrl,
      portalClientSecret: 'unused',
      apiSignInMaxAgeSeconds: 300,
      clock: s.clock,
    });
    expect(oidc.logoutUrl()).toBe(
      `${idp}/oauth2/default/v1/logout?client_id=portal&post_logout_redirect_uri=${encodeURIComponent(`${portalUrl()}/`)}`,
    );
  });
});

describe('programmatic page', () => {
  beforeEach(async () => {
    await signInToPortal(b, fake, alice.user.id);
  });

  it('without the download app: 403 "App not assigned" instead of the form', async () => {
    const res = await b.get('/api/programmatic');
    expect(res.statusCode).toBe(403);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.payload).toContain('App not assigned: your account is not assigned to API Download; contact');
    expect(res.payload).toContain(s.config.contacts.techSupportPhone);
    expect(res.payload).not.toContain('action="/api/programmatic/start"');
    // Nor can the form be posted anyway.
    const start = await b.post('/api/programmatic/start', { label: 'x', _csrf: csrfFrom(res.payload) });
    expect(start.statusCode).toBe(403);
    expect(start.headers.location).toBeUndefined();
  });

  it('explains refresh tokens in the FAQ’s terms and offers the form', async () => {
    await assignDownload(alice.user.id);
    const res = await b.get('/api/programmatic');
    expect(res.statusCode).toBe(200);
    const download = s.rt.environment.download.publicUrl;
    expect(res.payload).toContain('valid for 6 months from the date of issue');
    expect(res.payload).toContain('expires every 60 minutes');
    expect(res.payload).toContain(`${download}/oauth2/token`);
    expect(res.payload).toContain('action="/api/programmatic/start"');
    expect(res.payload).toContain('Get a refresh token');
    expect(res.payload).toContain('Refresh token 2026-12-04');
    expect(res.payload).toContain('You have no refresh tokens.');
  });

  it('checks the label: at most 60 characters, no control characters', async () => {
    await assignDownload(alice.user.id);
    const page = await b.get('/api/programmatic');
    const long = await b.post('/api/programmatic/start', { label: 'x'.repeat(61), _csrf: csrfFrom(page.payload) });
    expect(long.statusCode).toBe(400);
    expect(long.payload).toContain('Use at most 60 characters.');
    expect(long.payload).toContain('aria-invalid="true"');
    const control = await b.post('/api/programmatic/start', { label: 'a\u0007b', _csrf: csrfFrom(long.payload) });
    expect(control.statusCode).toBe(400);
  });

  it('refuses a forged form with an HTML page, not JSON', async () => {
    await assignDownload(alice.user.id);
    const res = await b.post('/api/programmatic/start', { label: 'x', _csrf: 'forged' });
    expect(res.statusCode).toBe(403);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.payload).toContain('The form expired or did not come from this site.');
    expect(res.headers.location).toBeUndefined();
  });

  it('gets a token: redirect to the authorization server, then the token shown once, labelled, not cached', async () => {
    await assignDownload(alice.user.id);
    const page = await b.get('/api/programmatic');
    const start = await b.post('/api/programmatic/start', {
      label: '  build server 1 ',
      _csrf: csrfFrom(page.payload),
    });
    expect(start.statusCode).toBe(303);
    const authorize = new URL(String(start.headers.location));
    expect(authorize.searchParams.get('client_id')).toBe('traqs-api');
    const flow = start.cookies.find((c) => c.name === 'traqs_ntf_portal_apiflow');
    expect(flow).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/api/programmatic/' });

    const token = await recordIssuedToken(s, alice.user.id);
    const code = fake.issueCode({ client: 'traqs-api', sub: alice.user.id, refreshToken: token });
    const shown = await b.get(`/api/programmatic/callback?code=${code}&state=${authorize.searchParams.get('state')}`);
    expect(shown.statusCode).toBe(200);
    expect(shown.headers['cache-control']).toBe('no-store');
    expect(shown.payload).toContain(`<code class="secret" id="refresh-token">${token}</code>`);
    expect(shown.payload).toContain('build server 1');
    expect(shown.payload).toContain('<script src="/assets/copy.js" defer></script></head>');
    expect(shown.payload).toContain('data-copy="refresh-token"');
    expect(shown.payload).toContain(`curl -X POST '${s.rt.environment.download.publicUrl}/oauth2/token'`);
    expect(fake.received.at(-1)?.href.startsWith(`${portalUrl()}/api/programmatic/callback?`)).toBe(true);

    const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(token));
    expect(row?.label).toBe('build server 1');
    expect(shown.payload).toContain(new Date(row?.expires_at ?? 0).toISOString().slice(0, 10));

    // Once: the callback cannot be replayed, and the list never shows the token itself.
    const again = await b.get(`/api/programmatic/callback?code=${code}&state=${authorize.searchParams.get('state')}`);
    expect(again.statusCode).toBe(400);
    expect(again.payload).not.toContain(token);
    const list = await b.get('/api/programmatic');
    expect(list.payload).toContain('build server 1');
    expect(list.payload).not.toContain(token);
    expect(list.payload).toContain('Active');
  });

  it('labels a token "Refresh token {date}" when the field is left empty', async () => {
    await assignDownload(alice.user.id);
    const page = await b.get('/api/programmatic');
    const start = await b.post('/api/programmatic/start', { label: '', _csrf: csrfFrom(page.payload) });
    const state = new URL(String(start.headers.location)).searchParams.get('state');
    const token = await recordIssuedToken(s, alice.user.id);
    await s.rt.store.repos.apiTokens.setLabel(hashBearerSecret(token), alice.user.id, 'whatever the idp said');
    const code = fake.issueCode({ client: 'traqs-api', sub: alice.user.id, refreshToken: token });
    const shown = await b.get(`/api/programmatic/callback?code=${code}&state=${state}`);
    expect(shown.statusCode).toBe(200);
    expect((await s.rt.store.repos.apiTokens.find(hashBearerSecret(token)))?.label).toBe('Refresh token 2026-12-04');
  });

  it('revokes, unseen, a token from a confirmation made as another user', async () => {
    await assignDownload(alice.user.id);
    const mallory = await activateUser(s, 'mallory@acme.example');
    const page = await b.get('/api/programmatic');
    const start = await b.post('/api/programmatic/start', { label: '', _csrf: csrfFrom(page.payload) });
    const state = new URL(String(start.headers.location)).searchParams.get('state');
    const token = await recordIssuedToken(s, mallory.user.id);
    const code = fake.issueCode({ client: 'traqs-api', sub: mallory.user.id, refreshToken: token });
    const res = await b.get(`/api/programmatic/callback?code=${code}&state=${state}`);
    expect(res.statusCode).toBe(403);
    expect(res.payload).not.toContain(token);
    expect(res.payload).toContain('another user');
    const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(token));
    expect(row?.revoked_reason).toBe('other-user');
  });

  it('shows an error from the idp on the callback as a page with Try again', async () => {
    await assignDownload(alice.user.id);
    const page = await b.get('/api/programmatic');
    const start = await b.post('/api/programmatic/start', { label: '', _csrf: csrfFrom(page.payload) });
    const state = new URL(String(start.headers.location)).searchParams.get('state');
    const res = await b.get(`/api/programmatic/callback?error=access_denied&state=${state}`);
    expect(res.statusCode).toBe(403);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.payload).toContain('No refresh token was issued');
    expect(res.payload).toContain('href="/api/programmatic"');
  });

  it('lists the user’s tokens and revokes only the user’s own, with an audit event', async () => {
    await assignDownload(alice.user.id);
    const mine = await recordIssuedToken(s, alice.user.id);
    const bob = await activateUser(s, 'bob@acme.example');
    const theirs = await recordIssuedToken(s, bob.user.id);
    const page = await b.get('/api/programmatic');
    expect(page.payload).toContain(`/api/programmatic/tokens/${hashBearerSecret(mine)}/revoke`);
    expect(page.payload).not.toContain(hashBearerSecret(theirs));

    const csrf = csrfFrom(page.payload);
    const forged = await b.post(`/api/programmatic/tokens/${hashBearerSecret(mine)}/revoke`, { _csrf: 'x' });
    expect(forged.statusCode).toBe(403);
    const other = await b.post(`/api/programmatic/tokens/${hashBearerSecret(theirs)}/revoke`, { _csrf: csrf });
    expect(other.statusCode).toBe(404);
    expect(other.headers['content-type']).toContain('text/html');
    expect((await s.rt.store.repos.apiTokens.find(hashBearerSecret(theirs)))?.revoked_at).toBeNull();
    const junk = await b.post('/api/programmatic/tokens/not-a-hash/revoke', { _csrf: csrf });
    expect(junk.statusCode).toBe(404);

    const done = await b.post(`/api/programmatic/tokens/${hashBearerSecret(mine)}/revoke`, { _csrf: csrf });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe('/api/programmatic?done=revoked');
    const after = await b.get('/api/programmatic?done=revoked');
    expect(after.payload).toContain('The refresh token was revoked.');
    expect(after.payload).toContain('Revoked 2026-12-04');
    expect(after.payload).not.toContain(`/api/programmatic/tokens/${hashBearerSecret(mine)}/revoke`);
    const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(mine));
    expect(row).toMatchObject({ revoked_reason: 'user' });
    const [revoked] = await events('app.oauth2.as.token.revoke');
    expect(revoked).toMatchObject({ actor_id: alice.user.id, outcome: 'success' });

    // Twice is not an error a user can cause harm with: it is simply gone.
    const twice = await b.post(`/api/programmatic/tokens/${hashBearerSecret(mine)}/revoke`, { _csrf: csrf });
    expect(twice.statusCode).toBe(404);
  });

  it('lets a user no longer assigned to download still revoke their tokens', async () => {
    const mine = await recordIssuedToken(s, alice.user.id);
    const page = await b.get('/api/programmatic');
    expect(page.statusCode).toBe(403);
    const res = await b.post(`/api/programmatic/tokens/${hashBearerSecret(mine)}/revoke`, {
      _csrf: csrfFrom(page.payload),
    });
    expect(res.statusCode).toBe(303);
  });
});

describe('signed out', () => {
  it('every page and form redirects to sign in', async () => {
    for (const url of ['/', '/api/programmatic', '/api/programmatic/callback?code=x&state=y']) {
      const res = await b.get(url);
      expect(res.statusCode, url).toBe(303);
      expect(String(res.headers.location), url).toMatch(/^\/login/);
    }
    // A real form whose session ended meanwhile carries a valid token: it is sent to sign in.
    await signInToPortal(b, fake, alice.user.id);
    const csrf = csrfFrom((await b.get('/')).payload);
    s.clock.advance(s.config.policy.sessionIdleMinutes * MINUTE + 1);
    for (const url of ['/api/programmatic/start', `/api/programmatic/tokens/${'a'.repeat(64)}/revoke`]) {
      const res = await b.post(url, { _csrf: csrf });
      expect(res.statusCode, url).toBe(303);
      expect(res.headers.location, url).toBe('/login');
    }
  });

  it('serves the copy script as an asset (CSP: no inline scripts)', async () => {
    const res = await b.get('/assets/copy.js');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('javascript');
    const page = await b.get('/authorization-code/callback');
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    expect(String(page.headers['content-security-policy'])).toContain(
      `form-action 'self' ${new URL(s.rt.environment.idp.publicUrl).origin}`,
    );
  });
});
