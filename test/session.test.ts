import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBrowser, csrfFrom, setCookies, signInWithPages } from './helpers/browser.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, CLIENT, postJson, provisionUser } from './helpers/users.ts';

/** traqs_<environment>_<service>: the ntf environment's idp (browsers share cookies across ports). */
const SID = 'traqs_ntf_idp_sid';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let s: TestStack;
let alice: ActiveUser;
beforeEach(async () => {
  s = await createTestStack();
  alice = await activateUser(s, 'alice@acme.example');
});
afterEach(async () => {
  await s.close();
});

/** Opens the profile with only this session cookie, as a replayed or stolen cookie would. */
async function openHome(sid: string) {
  const res = await s.app.inject({ method: 'GET', url: '/', cookies: { [SID]: sid }, remoteAddress: CLIENT.ip });
  return { status: res.statusCode, location: res.headers.location, html: res.payload };
}

describe('the session cookie', () => {
  it('is HttpOnly, SameSite=Lax, path /, named after environment and service, 12 h at most', async () => {
    const { res } = await signInWithPages(s, createBrowser(s), alice, SID);
    const cookie = setCookies(res).find((c) => c.startsWith(`${SID}=`));
    expect(cookie, setCookies(res).join('\n')).toBeDefined();
    const attrs = (cookie ?? '').split(';').map((a) => a.trim().toLowerCase());
    expect(attrs).toContain('httponly');
    expect(attrs).toContain('samesite=lax');
    expect(attrs).toContain('path=/');
    expect(attrs).toContain(`max-age=${12 * 3600}`);
    // A 256-bit random value, not something derived from the user.
    const value = cookie?.split(';')[0]?.slice(SID.length + 1) ?? '';
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(value).not.toContain(alice.user.id);
  });

  it('is Secure when the idp is served over https', async () => {
    const https = await createTestStack({ env: { TRAQS_NTF_IDP_URL: 'https://idp.ntf.traqs.example' } });
    try {
      const user = await activateUser(https, 'bob@acme.example');
      const { res } = await signInWithPages(https, createBrowser(https), user, SID);
      const cookie = setCookies(res).find((c) => c.startsWith(`${SID}=`)) ?? '';
      expect(cookie.split(';').map((a) => a.trim().toLowerCase())).toContain('secure');
      expect(String(res.headers['strict-transport-security'])).toContain('max-age=');
    } finally {
      await https.close();
    }
  });
});

describe('session lifecycle', () => {
  it('a new session id at every sign-in; the previous one stops working', async () => {
    const b = createBrowser(s);
    const { sid: first } = await signInWithPages(s, b, alice, SID);
    const { sid: second } = await signInWithPages(s, b, alice, SID);
    expect(second).not.toBe(first);
    expect((await openHome(second)).status).toBe(200);
    expect((await openHome(first)).status).toBe(303);
  });

  it('a session id planted before sign-in is not adopted (session fixation)', async () => {
    const b = createBrowser(s);
    const planted = 'AttackerChosenSessionValue_0123456789abcdefg';
    b.jar.set(SID, planted);
    const { sid } = await signInWithPages(s, b, alice, SID);
    expect(sid).not.toBe(planted);
    expect((await openHome(planted)).status).toBe(303);
  });

  it('sign-out revokes the session on the server: the old cookie no longer opens the profile', async () => {
    const b = createBrowser(s);
    const { sid } = await signInWithPages(s, b, alice, SID);
    const home = await openHome(sid);
    expect(home.status).toBe(200);
    expect(home.html).toContain(alice.login);

    const out = await b.post('/signout', { _csrf: csrfFrom((await b.get('/')).payload) });
    expect(out.statusCode).toBe(200);
    const cleared = setCookies(out).find((c) => c.startsWith(`${SID}=`)) ?? '';
    expect(cleared).toMatch(/^traqs_ntf_idp_sid=;/);

    // Someone who copied the cookie before sign-out cannot use it.
    const replay = await openHome(sid);
    expect(replay.status).toBe(303);
    expect(replay.location).toBe('/signin');
  });

  it('ends after 1 hour without activity', async () => {
    const { sid } = await signInWithPages(s, createBrowser(s), alice, SID);
    s.clock.advance(HOUR - 1);
    expect((await openHome(sid)).status).toBe(200);
    // Activity slid the idle window: another 59 minutes are fine.
    s.clock.advance(59 * MINUTE);
    expect((await openHome(sid)).status).toBe(200);
    s.clock.advance(HOUR + 1);
    const r = await openHome(sid);
    expect(r.status).toBe(303);
    expect(r.location).toBe('/signin');
    // It does not come back.
    expect((await openHome(sid)).status).toBe(303);
  });

  it('ends 12 hours after sign-in even with constant activity', async () => {
    const { sid } = await signInWithPages(s, createBrowser(s), alice, SID);
    const start = s.clock();
    // Active every 50 minutes: never idle for an hour.
    while (s.clock() + 50 * MINUTE < start + 12 * HOUR) {
      s.clock.advance(50 * MINUTE);
      expect((await openHome(sid)).status, `${(s.clock() - start) / MINUTE} min`).toBe(200);
    }
    s.clock.set(start + 12 * HOUR - 1);
    expect((await openHome(sid)).status).toBe(200);
    s.clock.set(start + 12 * HOUR + 1);
    expect((await openHome(sid)).status).toBe(303);
  });
});

describe('security headers', () => {
  async function pages() {
    const { token } = await provisionUser(s, 'newcomer@acme.example');
    const b = createBrowser(s);
    await signInWithPages(s, b, alice, SID);
    const txn = createBrowser(s);
    await txn.submit('/signin', '/signin', { username: alice.login, password: alice.password });
    return [
      { name: 'sign-in page', res: await createBrowser(s).get('/signin') },
      // The page whose URL holds the activation token: it must not leak through Referer.
      { name: 'activation page', res: await createBrowser(s).get(`/activate?token=${encodeURIComponent(token)}`) },
      { name: 'dead link page', res: await createBrowser(s).get('/activate?token=nope') },
      { name: 'verify page', res: await txn.get('/signin/next') },
      { name: 'profile', res: await b.get('/') },
      { name: 'not found page', res: await createBrowser(s).get('/no/such/page') },
    ];
  }

  it('pages carry a strict CSP, no framing, nosniff, no referrer and no caching', async () => {
    for (const { name, res } of await pages()) {
      expect(String(res.headers['content-type']), name).toContain('text/html');
      const csp = String(res.headers['content-security-policy'] ?? '');
      const directives = new Map(
        csp
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .filter((d) => d[0])
          .map((d) => [d[0] ?? '', d.slice(1).join(' ')]),
      );
      expect(csp, name).not.toContain('unsafe-inline');
      expect(csp, name).not.toContain('unsafe-eval');
      expect(directives.get('default-src'), name).toBe("'none'");
      expect(directives.get('script-src'), name).toBe("'self'");
      expect(directives.get('frame-ancestors'), name).toBe("'none'");
      // Forms post to the idp only; their redirects may end at the portal's OAuth callback.
      expect(directives.get('form-action'), name).toBe(`'self' ${new URL(s.rt.environment.portal.publicUrl).origin}`);
      expect(directives.get('base-uri'), name).toBe("'none'");
      expect(res.headers['x-content-type-options'], name).toBe('nosniff');
      expect(res.headers['referrer-policy'], name).toBe('no-referrer');
      expect(res.headers['cache-control'], name).toBe('no-store');
      // The CSP would block inline code, so the pages must not rely on any.
      expect(res.payload, name).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(res.payload, name).not.toMatch(/\sstyle="|\son[a-z]+="/);
    }
  });

  it('API answers are not cached either', async () => {
    for (const payload of [
      { username: 'x@acme.example', password: 'wrong password' },
      { stateToken: 'x'.repeat(40) },
    ]) {
      const r = await postJson(s, '/api/v1/authn', payload);
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
  });
});
