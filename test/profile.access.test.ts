import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import type { Browser } from './helpers/browser.ts';
import { createBrowser, csrfFrom, hiddenFrom, signInWithPages } from './helpers/browser.ts';
import { events, MINUTE, mails, SID, signedInUser, startTotp, submit } from './helpers/profile.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, passwordStep, postJson } from './helpers/users.ts';

/**
 * Security regression tests of the profile's access rules: sign-in required, CSRF on every form,
 * one user's methods out of another's reach, and a removed last method leading to enrollment.
 */

let s: TestStack;
let alice: ActiveUser;
let b: Browser;
beforeEach(async () => {
  s = await createTestStack();
  ({ user: alice, b } = await signedInUser(s, 'alice@acme.example'));
});
afterEach(async () => {
  await s.close();
});

const GET_ROUTES = () => [
  '/',
  '/profile/verify?next=%2Fprofile%2Fpassword',
  '/profile/factors/add',
  `/profile/factors/${alice.factorId}/activate`,
  `/profile/factors/${alice.factorId}/remove`,
  '/profile/password',
  '/profile/recovery-question',
];

/** Every form of the profile, with a submission that would change something. */
const POST_ROUTES = (): { url: string; form: Record<string, string> }[] => [
  { url: '/profile/contact', form: { mobilePhone: '+1 212 555 0100', primaryPhone: '' } },
  { url: '/profile/preferences', form: { autoPush: 'on' } },
  { url: '/profile/sessions/sign-out-others', form: {} },
  { url: '/profile/verify', form: { factorId: alice.factorId, passCode: '123456', next: '/profile/password' } },
  { url: '/profile/factors/add', form: { provider: 'GOOGLE' } },
  { url: `/profile/factors/${alice.factorId}/activate`, form: { passCode: '123456' } },
  { url: `/profile/factors/${alice.factorId}/remove`, form: {} },
  { url: '/profile/password', form: { currentPassword: alice.password, newPassword: 'quiet lantern meadow 77' } },
  {
    url: '/profile/recovery-question',
    form: { recoveryQuestion: 'Which harbour did we sail from?', recoveryAnswer: 'Port Isaac' },
  },
];

/** What the forms could change, to check that nothing did. */
async function snapshot() {
  const repos = s.rt.store.repos;
  const user = await repos.users.findUserById(alice.user.id);
  return {
    user: {
      mobile: user?.mobile_phone,
      preferences: user?.preferences,
      password: user?.password_hash,
      question: user?.recovery_question,
      answer: user?.recovery_answer_hash,
      failed: user?.failed_attempts,
    },
    factors: (await repos.factors.listFactors(alice.user.id)).map((f) => [f.id, f.status]),
    sessions: (await repos.tokens.listActiveSessions(alice.user.id, s.clock())).length,
    mail: (await repos.outbox.listRecentMessages(1000)).length,
  };
}

describe('signed out', () => {
  it('every profile page, and every form posted with a valid token, redirects to /signin', async () => {
    const stranger = createBrowser(s);
    const csrf = csrfFrom((await stranger.get('/signin')).payload);
    for (const url of GET_ROUTES()) {
      const res = await stranger.get(url);
      expect(res.statusCode, url).toBe(303);
      expect(res.headers.location, url).toBe('/signin');
    }
    for (const { url, form } of POST_ROUTES()) {
      const res = await stranger.post(url, { ...form, _csrf: csrf });
      expect(res.statusCode, url).toBe(303);
      expect(res.headers.location, url).toBe('/signin');
      // Without a token the CSRF check answers first, as on every form of the site.
      const forged = await stranger.post(url, form);
      expect(forged.statusCode, url).toBe(403);
    }
  });

  it('a signed-out or idle session redirects too', async () => {
    const { sid: idle } = await signInWithPages(s, createBrowser(s), alice, SID);
    const sid = b.jar.get(SID) ?? '';
    await b.post('/signout', { _csrf: csrfFrom((await b.get('/')).payload) });
    const replayed = await s.app.inject({ method: 'GET', url: '/profile/password', cookies: { [SID]: sid } });
    expect(replayed.statusCode).toBe(303);
    expect(replayed.headers.location).toBe('/signin');
    s.clock.advance(61 * MINUTE);
    const expired = await s.app.inject({ method: 'GET', url: '/', cookies: { [SID]: idle } });
    expect(expired.statusCode).toBe(303);
    expect(expired.headers.location).toBe('/signin');
  });
});

describe('CSRF', () => {
  it('every profile form refuses a missing, forged or foreign token and changes nothing', async () => {
    const attacker = createBrowser(s);
    const foreign = csrfFrom((await attacker.get('/signin')).payload);
    // The victim's session is young, so only the token stands in the way.
    const before = await snapshot();
    for (const { url, form } of POST_ROUTES()) {
      for (const [name, token] of [
        ['no token', undefined],
        ['a forged token', 'forged-token-value'],
        ["another browser's token", foreign],
      ] as const) {
        const res = await b.post(url, { ...form, ...(token ? { _csrf: token } : {}) });
        expect(res.statusCode, `${url} with ${name}`).toBe(403);
        expect(res.payload, `${url} with ${name}`).toContain('did not come from this site');
      }
    }
    expect(await snapshot()).toEqual(before);
  });
});

describe("another user's security methods", () => {
  it('cannot be seen, removed or activated through my session: 404 and nothing changes', async () => {
    const bob = await activateBob();
    const before = await s.rt.store.repos.factors.listFactors(bob.user.id);
    const page = await b.get(`/profile/factors/${bob.factorId}/remove`);
    expect(page.statusCode).toBe(404);
    expect(page.payload).not.toContain('Google Authenticator?');
    const post = await submit(b, `/profile/factors/${bob.factorId}/remove`, {});
    expect(post.statusCode).toBe(404);
    expect(await s.rt.store.repos.factors.listFactors(bob.user.id)).toEqual(before);
    expect(await mails(s, bob.login, 'factorRemoved')).toEqual([]);
    expect(await mails(s, alice.login, 'factorRemoved')).toEqual([]);
    expect(await events(s, 'user.mfa.factor.deactivate', bob.user.id)).toEqual([]);
    expect(await events(s, 'user.mfa.factor.deactivate', alice.user.id)).toEqual([]);
  });

  it('a pending setup of another user is neither shown nor activated', async () => {
    const bob = await activateBob();
    const bobBrowser = createBrowser(s);
    await signInWithPages(s, bobBrowser, bob, SID);
    const { factorId, secret } = await startTotp(bobBrowser);
    const peek = await b.get(`/profile/factors/${factorId}/activate`);
    expect(peek.statusCode).toBe(303);
    expect(peek.payload).not.toContain('data-secret');
    const res = await submit(b, `/profile/factors/${factorId}/activate`, {
      passCode: generateTotp({ secret, now: s.clock() }),
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/profile/factors/add');
    const factor = await s.rt.store.repos.factors.findFactor(bob.user.id, factorId);
    expect(factor?.status).toBe('PENDING_ACTIVATION');
    expect((await s.rt.store.repos.factors.listFactors(alice.user.id)).map((f) => f.id)).toEqual([alice.factorId]);
  });

  it('malformed factor ids are a plain 404', async () => {
    for (const id of ['..%2F..%2Fsignout', 'x'.repeat(80), '%3Cscript%3E']) {
      const res = await b.get(`/profile/factors/${id}/remove`);
      expect(res.statusCode, id).toBe(404);
    }
  });

  const activateBob = () => activateUser(s, 'bob@acme.example');
});

describe('removing the last method', () => {
  it('the next sign-in asks for enrollment (MFA_ENROLL) after the password', async () => {
    const res = await submit(b, `/profile/factors/${alice.factorId}/remove`, {});
    expect(res.headers.location).toBe('/?done=factor-removed');

    const api = await postJson(s, '/api/v1/authn', { username: alice.login, password: alice.password });
    expect(api.body.status).toBe('MFA_ENROLL');

    const pages = createBrowser(s);
    const signin = await pages.submit('/signin', '/signin', { username: alice.login, password: alice.password });
    expect(signin.statusCode).toBe(303);
    const next = await pages.get('/signin/next');
    expect(next.payload).toContain('Set up multifactor authentication');
    expect(next.payload).toContain('Set up Google Authenticator');
    // The old code no longer signs in anywhere: the method is gone.
    await expect(passwordStep(s, alice.login, alice.password)).rejects.toThrow(/MFA_ENROLL/);
    expect(hiddenFrom(next.payload, 'provider')).toBe('GOOGLE');
  });
});
