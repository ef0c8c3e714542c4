import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cookiePrefix } from '../src/app.ts';
import { createBrowser, csrfFrom, hiddenFrom } from './helpers/browser.ts';
import { activateWithFastPass, ORIGIN, optionsFrom } from './helpers/fastpass.ts';
import { details, events, MINUTE, mails, SID, signedInUser, submit } from './helpers/profile.ts';
import { createSoftAuthenticator } from './helpers/soft-authenticator.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { PASSWORD, postJson, provisionUser, RECOVERY, text } from './helpers/users.ts';

/**
 * FastPass on the HTML pages (issue #6 item 4): the enrollment choice offers it next to Google
 * Authenticator, the sign-in page verifies it, and the profile adds it (after "Verify it's you")
 * and accepts it for "Verify it's you". The browser is `app.inject` with a software authenticator;
 * the real-browser test drives Chromium's virtual authenticator.
 */

let s: TestStack;
beforeEach(async () => {
  s = await createTestStack();
});
afterEach(async () => {
  await s.close();
});

type CreationOptions = { challenge: string; rp: { id: string } };
type RequestOptions = { challenge: string; rpId: string };

describe('FastPass on the sign-in pages', () => {
  it('enrolls FastPass at first sign-in, then signs in with it', async () => {
    const { token } = await provisionUser(s, 'page.fastpass@acme.example');
    const b = createBrowser(s);
    const activated = await b.submit(`/activate?token=${token}`, '/activate', { token });
    expect(activated.statusCode).toBe(303);
    const set = await b.submit('/signin/next', '/signin/password', {
      newPassword: PASSWORD,
      recoveryQuestion: RECOVERY.recoveryQuestion,
      recoveryAnswer: RECOVERY.recoveryAnswer,
    });
    expect(set.statusCode).toBe(303);

    const choice = await b.get('/signin/next');
    expect(choice.payload).toContain('Set up FastPass');
    expect(choice.payload).toContain('Set up Google Authenticator');
    const chose = await b.post('/signin/enroll', {
      factorType: 'webauthn',
      provider: 'FIDO',
      _csrf: csrfFrom(choice.payload),
    });
    expect(chose.statusCode).toBe(303);

    const setup = await b.get('/signin/next');
    expect(setup.statusCode).toBe(200);
    expect(setup.payload).toContain('<h1>Set up FastPass</h1>');
    expect(setup.payload).toContain('src="/assets/vendor/fastpass.js"');
    expect(setup.payload).toContain('data-webauthn="register"');
    const authenticator = createSoftAuthenticator(ORIGIN);
    const registration = authenticator.register(optionsFrom<CreationOptions>(setup.payload));

    // An answer that is not the browser's JSON is refused with the page again.
    const garbled = await b.post('/signin/enroll/webauthn', {
      factorId: hiddenFrom(setup.payload, 'factorId'),
      response: '{"id":1}',
      _csrf: csrfFrom(setup.payload),
    });
    expect(garbled.statusCode).toBe(400);
    expect(garbled.payload).toContain('FastPass did not answer.');

    const done = await b.post('/signin/enroll/webauthn', {
      factorId: hiddenFrom(setup.payload, 'factorId'),
      response: JSON.stringify(registration),
      _csrf: csrfFrom(garbled.payload),
    });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe('/');
    const home = await b.get('/');
    expect(home.payload).toContain('Okta Verify Desktop (FastPass)');

    // Sign out, sign in again: password, then FastPass.
    await b.post('/signout', { _csrf: csrfFrom(home.payload) });
    const signIn = await b.submit('/signin', '/signin', { username: 'page.fastpass@acme.example', password: PASSWORD });
    expect(signIn.statusCode).toBe(303);
    const verify = await b.get('/signin/next');
    expect(verify.payload).toContain('Sign in with FastPass');
    expect(verify.payload).toContain('data-webauthn="authenticate"');
    const options = optionsFrom<RequestOptions>(verify.payload);
    expect(options.rpId).toBe('localhost');
    // A reload shows the same challenge (no new one per page view).
    expect(optionsFrom<RequestOptions>((await b.get('/signin/next')).payload).challenge).toBe(options.challenge);
    const assertion = authenticator.assert(options);
    const signedIn = await b.post('/signin/verify/webauthn', {
      factorId: hiddenFrom(verify.payload, 'factorId'),
      response: JSON.stringify(assertion),
      _csrf: csrfFrom(verify.payload),
    });
    expect(signedIn.statusCode).toBe(303);
    expect(signedIn.headers.location).toBe('/');
    const sid = b.jar.get(SID);
    expect(sid).toBeTruthy();
    const session = await s.rt.sessions.resume(sid);
    expect(JSON.parse(session?.amr ?? '[]')).toEqual(['pwd', 'hwk', 'mfa']);
  });

  it('shows a refused FastPass answer on the page, with a new challenge to try again', async () => {
    const u = await activateWithFastPass(s, 'retry.fastpass@acme.example');
    const b = createBrowser(s);
    await b.submit('/signin', '/signin', { username: u.login, password: u.password });
    const verify = await b.get('/signin/next');
    const options = optionsFrom<RequestOptions>(verify.payload);
    const refused = await b.post('/signin/verify/webauthn', {
      factorId: u.factorId,
      response: JSON.stringify(u.authenticator.assert(options, { uv: false })),
      _csrf: csrfFrom(verify.payload),
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.payload).toContain('FastPass could not confirm it is you.');
    const next = optionsFrom<RequestOptions>(refused.payload);
    expect(next.challenge).not.toBe(options.challenge);
    const ok = await b.post('/signin/verify/webauthn', {
      factorId: u.factorId,
      response: JSON.stringify(u.authenticator.assert(next)),
      _csrf: csrfFrom(refused.payload),
    });
    expect(ok.statusCode).toBe(303);
  });
});

/** A browser signed in with password and FastPass. */
async function signInWithFastPass(u: Awaited<ReturnType<typeof activateWithFastPass>>) {
  const b = createBrowser(s);
  await b.submit('/signin', '/signin', { username: u.login, password: u.password });
  const verify = await b.get('/signin/next');
  const done = await b.post('/signin/verify/webauthn', {
    factorId: u.factorId,
    response: JSON.stringify(u.authenticator.assert(optionsFrom<RequestOptions>(verify.payload))),
    _csrf: csrfFrom(verify.payload),
  });
  expect(done.statusCode).toBe(303);
  return b;
}

describe('FastPass in the profile', () => {
  it('adds FastPass after "Verify it\'s you", then accepts it for "Verify it\'s you"', async () => {
    const { user, b } = await signedInUser(s, 'profile.fastpass@acme.example');
    // Signing in counts as verifying: adding a method right away needs no second check.
    const add = await b.get('/profile/factors/add');
    expect(add.payload).toContain('Set up FastPass');
    const started = await submit(b, '/profile/factors/add', { provider: 'FIDO' });
    expect(started.statusCode).toBe(303);
    const url = String(started.headers.location);
    const setup = await b.get(url);
    expect(setup.payload).toContain('<h1>Set up FastPass</h1>');
    const authenticator = createSoftAuthenticator(ORIGIN);
    const added = await b.post(url, {
      response: JSON.stringify(authenticator.register(optionsFrom<CreationOptions>(setup.payload))),
      _csrf: csrfFrom(setup.payload),
    });
    expect(added.statusCode).toBe(303);
    expect(added.headers.location).toBe('/?done=factor-added');
    const factors = await s.rt.store.repos.factors.listActiveFactors(user.user.id);
    const fastPass = factors.find((f) => f.factor_type === 'webauthn');
    expect(fastPass?.name).toBe('FastPass');
    expect(await mails(s, user.login, 'factorEnrolled')).toHaveLength(2);

    // Later: the 5-minute window is over; "Verify it's you" with FastPass.
    s.clock.advance(6 * MINUTE);
    const next = '/profile/password';
    const gate = await b.get(next);
    expect(gate.headers.location).toBe(`/profile/verify?next=${encodeURIComponent(next)}`);
    const page = await b.get(`/profile/verify?next=${encodeURIComponent(next)}&factor=${fastPass?.id}`);
    expect(page.payload).toContain('Verify with FastPass');
    const options = optionsFrom<RequestOptions>(page.payload);
    const replayable = authenticator.assert(options);
    const verified = await b.post('/profile/verify', {
      factorId: fastPass?.id ?? '',
      response: JSON.stringify(replayable),
      next,
      _csrf: csrfFrom(page.payload),
    });
    expect(verified.statusCode).toBe(303);
    expect(verified.headers.location).toBe(next);
    const [reverify] = await events(s, 'user.authentication.reverify', user.user.id);
    expect(details(reverify)).toMatchObject({ factorType: 'webauthn:FIDO' });

    // The same answer again (the window over once more): its challenge is spent.
    s.clock.advance(6 * MINUTE);
    const again = await b.get(`/profile/verify?next=${encodeURIComponent(next)}&factor=${fastPass?.id}`);
    const replay = await b.post('/profile/verify', {
      factorId: fastPass?.id ?? '',
      response: JSON.stringify(replayable),
      next,
      _csrf: csrfFrom(again.payload),
    });
    expect(replay.statusCode).toBe(403);
    expect(replay.payload).toContain('This FastPass request expired or was already used.');
  });

  it('an administrator whose only factor is FastPass re-verifies with it in the admin console, once per answer', async () => {
    const u = await activateWithFastPass(s, 'admin.fastpass@acme.example');
    await s.rt.store.repos.users.grantRole(u.userId, 'support');
    const b = await signInWithFastPass(u);
    s.clock.advance(6 * MINUTE);
    const page = await b.get(`/admin/verify?next=${encodeURIComponent('/admin/support')}`);
    expect(page.statusCode).toBe(200);
    expect(page.payload).toContain('Verify with FastPass');
    const answer = u.authenticator.assert(optionsFrom<RequestOptions>(page.payload));
    const verified = await b.post('/admin/verify', {
      factorId: u.factorId,
      response: JSON.stringify(answer),
      next: '/admin/support',
      _csrf: csrfFrom(page.payload),
    });
    expect(verified.statusCode).toBe(303);
    expect(verified.headers.location).toBe('/admin/support');
    const [reverify] = await events(s, 'user.authentication.reverify', u.userId);
    expect(details(reverify)).toMatchObject({ factorType: 'webauthn:FIDO' });

    // The same answer again, once the window is over: its challenge is spent.
    s.clock.advance(6 * MINUTE);
    const again = await b.get(`/admin/verify?next=${encodeURIComponent('/admin/support')}`);
    const replay = await b.post('/admin/verify', {
      factorId: u.factorId,
      response: JSON.stringify(answer),
      next: '/admin/support',
      _csrf: csrfFrom(again.payload),
    });
    expect(replay.statusCode).toBe(403);
    expect(replay.payload).toContain('This FastPass request expired or was already used.');
    const garbled = await b.post('/admin/verify', {
      factorId: u.factorId,
      response: '{"not":"an answer"}',
      next: '/admin/support',
      _csrf: csrfFrom(again.payload),
    });
    expect(garbled.statusCode).toBe(400);
    expect(garbled.payload).toContain('FastPass did not answer.');
  });

  it('a user who enrolled only FastPass can add a second method', async () => {
    const u = await activateWithFastPass(s, 'only.fastpass@acme.example');
    const b = await signInWithFastPass(u);
    s.clock.advance(6 * MINUTE);
    const gate = await b.get('/profile/factors/add');
    expect(gate.statusCode).toBe(303);
    const page = await b.get(String(gate.headers.location));
    expect(page.payload).toContain('Verify with FastPass');
    const ok = await b.post('/profile/verify', {
      factorId: u.factorId,
      response: JSON.stringify(u.authenticator.assert(optionsFrom<RequestOptions>(page.payload))),
      next: '/profile/factors/add',
      _csrf: csrfFrom(page.payload),
    });
    expect(ok.headers.location).toBe('/profile/factors/add');
  });

  it('where the sign-in URL is not secure, the pages say why FastPass is not offered', async () => {
    const other = await createTestStack({ env: { TRAQS_NTF_IDP_URL: 'http://idp.traqs.example' } });
    try {
      const { b } = await signedInUser(other, 'insecure.page@acme.example');
      const add = await b.get('/profile/factors/add');
      expect(add.payload).not.toContain('Set up FastPass');
      expect(add.payload).toContain('FastPass is not offered here. The sign-in URL is not secure');
      const tried = await submit(b, '/profile/factors/add', { provider: 'FIDO' });
      expect(tried.statusCode).toBe(400);
    } finally {
      await other.close();
    }
  });
});

describe('the FastPass API and pages share one transaction', () => {
  it('a challenge the API issued is the one the page shows, and the page completes it', async () => {
    const u = await activateWithFastPass(s, 'mixed.fastpass@acme.example');
    const first = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    const stateToken = text(first.body, 'stateToken');
    const challenge = await postJson(s, `/api/v1/authn/factors/${u.factorId}/verify`, { stateToken });
    const issued = text(challenge.body, '_embedded', 'factor', '_embedded', 'challenge', 'challenge');
    const b = createBrowser(s);
    b.jar.set(`${cookiePrefix('ntf', 'idp')}_txn`, stateToken);
    const page = await b.get('/signin/next');
    const options = optionsFrom<RequestOptions>(page.payload);
    expect(options.challenge).toBe(issued);
    const done = await b.post('/signin/verify/webauthn', {
      factorId: u.factorId,
      response: JSON.stringify(u.authenticator.assert(options)),
      _csrf: csrfFrom(page.payload),
    });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe('/');
  });
});
