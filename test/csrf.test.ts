import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cookiePrefix } from '../src/app.ts';
import { createBrowser, csrfFrom, hiddenFrom, signInWithPages } from './helpers/browser.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, freshCode, postJson, provisionUser } from './helpers/users.ts';

const SID = `${cookiePrefix('ntf', 'idp')}_sid`;
const TXN = `${cookiePrefix('ntf', 'idp')}_txn`;

let s: TestStack;
let alice: ActiveUser;
beforeEach(async () => {
  s = await createTestStack();
  alice = await activateUser(s, 'alice@acme.example');
});
afterEach(async () => {
  await s.close();
});

const failedAttempts = async () => (await s.rt.store.repos.users.findUserById(alice.user.id))?.failed_attempts;
const auditCount = async () => (await s.rt.store.repos.audit.listEvents({ limit: 1000 })).length;

/** The forged submissions a cross-site attacker can make: no token, a made-up one, a stolen one. */
async function forgeries(pageUrl: string, makeVictim: () => Promise<ReturnType<typeof createBrowser>>) {
  const attacker = createBrowser(s);
  const attackerPage = await attacker.get(pageUrl);
  const attackerToken = csrfFrom(attackerPage.payload);
  return [
    { name: 'no token', victim: await makeVictim(), token: undefined },
    { name: 'a forged token', victim: await makeVictim(), token: 'forged-token-value' },
    // A valid token, but minted for another browser's CSRF secret (the attacker's own visit).
    { name: "another browser's token", victim: await makeVictim(), token: attackerToken },
  ];
}

describe('CSRF protection of the HTML forms', () => {
  it('POST /signin: refused without a matching token, nothing counted; accepted with the page token', async () => {
    const cases = await forgeries('/signin', async () => {
      const b = createBrowser(s);
      await b.get('/signin');
      return b;
    });
    // A browser that never loaded the page has no CSRF cookie at all.
    cases.push({ name: 'no cookie and no token', victim: createBrowser(s), token: undefined });
    const eventsBefore = await auditCount();
    for (const c of cases) {
      const form = { username: alice.login, password: 'a wrong password here', ...(c.token ? { _csrf: c.token } : {}) };
      const res = await c.victim.post('/signin', form);
      expect(res.statusCode, c.name).toBe(403);
      expect(res.payload, c.name).toContain('did not come from this site');
      expect(c.victim.jar.has(TXN), c.name).toBe(false);
    }
    expect(await failedAttempts()).toBe(0);
    expect(await auditCount()).toBe(eventsBefore);

    const ok = createBrowser(s);
    const res = await ok.submit('/signin', '/signin', { username: alice.login, password: alice.password });
    expect(res.statusCode).toBe(303);
    expect(ok.jar.has(TXN)).toBe(true);
  });

  it('POST /activate: refused without a matching token and the link is not started; accepted with it', async () => {
    const { token } = await provisionUser(s, 'newcomer@acme.example');
    const url = `/activate?token=${encodeURIComponent(token)}`;
    const cases = await forgeries(url, async () => {
      const b = createBrowser(s);
      await b.get(url);
      return b;
    });
    for (const c of cases) {
      const res = await c.victim.post('/activate', { token, ...(c.token ? { _csrf: c.token } : {}) });
      expect(res.statusCode, c.name).toBe(403);
      expect(c.victim.jar.has(TXN), c.name).toBe(false);
    }
    const started = (await s.rt.store.repos.audit.listEvents({ action: 'user.lifecycle.activate' })).length;
    expect(started).toBe(1); // alice's activation only

    const ok = createBrowser(s);
    const res = await ok.submit(url, '/activate', { token });
    expect(res.statusCode).toBe(303);
    expect(ok.jar.has(TXN)).toBe(true);
  });

  it('POST /signout: a forged sign-out leaves the session alive; the real button ends it', async () => {
    const victims: ReturnType<typeof createBrowser>[] = [];
    const cases = await forgeries('/signin', async () => {
      const b = createBrowser(s);
      await signInWithPages(s, b, alice, SID);
      victims.push(b);
      return b;
    });
    for (const c of cases) {
      const res = await c.victim.post('/signout', c.token ? { _csrf: c.token } : {});
      expect(res.statusCode, c.name).toBe(403);
      const home = await c.victim.get('/');
      expect(home.statusCode, c.name).toBe(200);
      expect(home.payload).toContain(alice.login);
    }

    const victim = victims[0];
    if (!victim) throw new Error('no victim');
    const home = await victim.get('/');
    const out = await victim.post('/signout', { _csrf: csrfFrom(home.payload) });
    expect(out.statusCode).toBe(200);
    expect(out.payload).toContain('You have signed out.');
    expect((await victim.get('/')).statusCode).toBe(303);
  });

  it('POST /signin/verify: refused without a matching token, the code stays unused; accepted with it', async () => {
    const b = createBrowser(s);
    await b.submit('/signin', '/signin', { username: alice.login, password: alice.password });
    const page = await b.get('/signin/next');
    const factorId = hiddenFrom(page.payload, 'factorId');
    const passCode = freshCode(s, alice.secret);
    const before = await s.rt.store.repos.factors.findFactor(alice.user.id, factorId);
    const attacker = createBrowser(s);
    const stolen = csrfFrom((await attacker.get('/signin')).payload);
    for (const token of [undefined, 'forged-token-value', stolen]) {
      const res = await b.post('/signin/verify', { factorId, passCode, ...(token ? { _csrf: token } : {}) });
      expect(res.statusCode).toBe(403);
      expect(b.jar.has(SID)).toBe(false);
    }
    const after = await s.rt.store.repos.factors.findFactor(alice.user.id, factorId);
    expect(after?.last_used_step).toBe(before?.last_used_step);
    expect(await failedAttempts()).toBe(0);

    const res = await b.post('/signin/verify', { factorId, passCode, _csrf: csrfFrom(page.payload) });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/');
    expect(b.jar.has(SID)).toBe(true);
  });
});

/** Every POST route of the idp, read from Fastify's route tree (so a new form is covered too). */
function postRoutes(): string[] {
  const paths: string[] = [];
  const stack: string[] = [];
  for (const line of s.app.printRoutes({ method: 'POST', commonPrefix: false }).split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+) \(POST\)/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? '').length / 4;
    stack.splice(depth, stack.length - depth, m[2] ?? '');
    paths.push(stack.join(''));
  }
  return paths;
}

describe('every HTML form endpoint is CSRF-protected', () => {
  it('refuses a POST without a token on each non-API POST route', async () => {
    // The SAML assertion consumer service is the one exception: the firm's IdP posts to it
    // cross-site; the signed response, its InResponseTo and the browser-binding cookie checked at
    // /sso/finish protect it (issue #8, test/federation.test.ts).
    const forms = postRoutes().filter((p) => !p.startsWith('/api/') && p !== '/sso/saml/:id/acs');
    expect(forms).toEqual(
      expect.arrayContaining([
        '/signin',
        '/signin/password',
        '/signin/enroll',
        '/signin/enroll/back',
        '/signin/enroll/activate',
        '/signin/verify',
        '/signin/cancel',
        '/activate',
        '/signout',
      ]),
    );
    for (const path of forms) {
      const b = createBrowser(s);
      await b.get('/signin');
      const res = await b.post(path, { username: alice.login, password: alice.password, token: 'x' });
      expect(res.statusCode, path).toBe(403);
    }
  });
});

describe('the JSON API cannot be reached by a cross-site form', () => {
  const bodies = {
    'application/x-www-form-urlencoded': (username: string, password: string) =>
      new URLSearchParams({ username, password }).toString(),
    // The classic trick: a form with enctype=text/plain whose body happens to be JSON.
    'text/plain': (username: string, password: string) => JSON.stringify({ username, password }),
    'multipart/form-data; boundary=x': (username: string, password: string) =>
      `--x\r\nContent-Disposition: form-data; name="username"\r\n\r\n${username}\r\n--x\r\nContent-Disposition: form-data; name="password"\r\n\r\n${password}\r\n--x--\r\n`,
  };

  for (const [type, make] of Object.entries(bodies)) {
    it(`refuses ${type.split(';')[0]} with 415 and an Okta error, before checking anything`, async () => {
      for (const password of [alice.password, 'a wrong password here']) {
        const r = await postJson(s, '/api/v1/authn', make(alice.login, password), { contentType: type, raw: true });
        expect(r.status).toBe(415);
        expect(r.body.errorCode).toBe('E0000001');
        expect(r.body).not.toHaveProperty('stateToken');
      }
      expect(await failedAttempts()).toBe(0);
    });
  }

  it('refuses a form post to every other API endpoint too', async () => {
    const paths = [
      '/api/v1/authn/credentials/reset_password',
      '/api/v1/authn/factors',
      `/api/v1/authn/factors/${alice.factorId}/lifecycle/activate`,
      `/api/v1/authn/factors/${alice.factorId}/verify`,
      '/api/v1/authn/previous',
      '/api/v1/authn/cancel',
    ];
    for (const path of paths) {
      const r = await postJson(s, path, 'stateToken=x', {
        contentType: 'application/x-www-form-urlencoded',
        raw: true,
      });
      expect(r.status, path).toBe(415);
    }
  });
});
