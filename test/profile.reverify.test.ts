import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import type { Browser } from './helpers/browser.ts';
import { createBrowser, signInWithPages } from './helpers/browser.ts';
import {
  addTotp,
  details,
  events,
  MINUTE,
  mails,
  reverify,
  SID,
  signedInUser,
  submit,
  wrongCode,
} from './helpers/profile.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, CLIENT, freshCode, postJson } from './helpers/users.ts';

/**
 * Security regression tests of the profile's re-verification (issue #3): adding or removing a
 * method and changing the password or recovery question need a factor verified in the last 5
 * minutes; the code is single-use and wrong codes are limited.
 */

const WINDOW = 5 * MINUTE;

let s: TestStack;
let alice: ActiveUser;
let b: Browser;
let sid: string;
beforeEach(async () => {
  s = await createTestStack();
  ({ user: alice, b, sid } = await signedInUser(s, 'alice@acme.example'));
});
afterEach(async () => {
  await s.close();
});

const freshAlice = async () => {
  const u = await s.rt.store.repos.users.findUserById(alice.user.id);
  if (!u) throw new Error('alice is gone');
  return u;
};
const verifyUrl = (next: string) => `/profile/verify?next=${encodeURIComponent(next)}`;
const sensitivePages = () => [
  '/profile/factors/add',
  `/profile/factors/${alice.factorId}/remove`,
  '/profile/password',
  '/profile/recovery-question',
];

describe('re-verification window', () => {
  it('is not asked for within 5 minutes of the last verification', async () => {
    s.clock.advance(WINDOW);
    for (const page of sensitivePages()) {
      const res = await b.get(page);
      expect(res.statusCode, page).toBe(200);
    }
  });

  it('is asked for after 5 minutes, on every sensitive page', async () => {
    s.clock.advance(WINDOW + 1);
    for (const page of sensitivePages()) {
      const res = await b.get(page);
      expect(res.statusCode, page).toBe(303);
      expect(res.headers.location, page).toBe(verifyUrl(page));
    }
    // Contact details, the preference and the dashboard do not ask.
    expect((await b.get('/')).statusCode).toBe(200);
    expect((await submit(b, '/profile/contact', { mobilePhone: '+1 212 555 0100', primaryPhone: '' })).statusCode).toBe(
      303,
    );
    expect((await freshAlice()).mobile_phone).toBe('+1 212 555 0100');
  });

  it('after 5 minutes the changes themselves are refused until verified, and nothing changes', async () => {
    s.clock.advance(WINDOW + 1);
    const before = await freshAlice();
    const attempts: { action: string; form: Record<string, string>; next: string }[] = [
      { action: '/profile/factors/add', form: { provider: 'GOOGLE' }, next: '/profile/factors/add' },
      {
        action: `/profile/factors/${alice.factorId}/remove`,
        form: {},
        next: `/profile/factors/${alice.factorId}/remove`,
      },
      {
        action: '/profile/password',
        form: { currentPassword: alice.password, newPassword: 'quiet lantern meadow 77' },
        next: '/profile/password',
      },
      {
        action: '/profile/recovery-question',
        form: { recoveryQuestion: 'Which harbour did we sail from?', recoveryAnswer: 'Port Isaac' },
        next: '/profile/recovery-question',
      },
    ];
    const mailsBefore = (await s.rt.store.repos.outbox.listRecentMessages(1000, alice.login)).length;
    for (const a of attempts) {
      const res = await submit(b, a.action, a.form);
      expect(res.statusCode, a.action).toBe(303);
      expect(res.headers.location, a.action).toBe(verifyUrl(a.next));
    }
    const after = await freshAlice();
    expect(after.password_hash).toBe(before.password_hash);
    expect(after.recovery_question).toBe(before.recovery_question);
    expect(after.recovery_answer_hash).toBe(before.recovery_answer_hash);
    expect((await s.rt.store.repos.factors.listFactors(alice.user.id)).map((f) => [f.id, f.status])).toEqual([
      [alice.factorId, 'ACTIVE'],
    ]);
    expect(await s.rt.store.repos.outbox.listRecentMessages(1000, alice.login)).toHaveLength(mailsBefore);
  });

  it("'Verify it's you' with a current code continues to the action, and lasts 5 minutes", async () => {
    s.clock.advance(WINDOW + 1);
    const page = await b.get(verifyUrl('/profile/password'));
    expect(page.statusCode).toBe(200);
    expect(page.payload).toContain("Verify it's you");
    expect(page.payload).toContain('To change your password, enter a current code from <strong>Google Authenticator');
    expect(page.payload).toMatch(/name="passCode" type="text" autocomplete="one-time-code"/);

    const res = await reverify(s, b, alice.factorId, alice.secret, '/profile/password');
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/profile/password');
    expect((await b.get('/profile/password')).statusCode).toBe(200);
    const [event] = await events(s, 'user.authentication.reverify', alice.user.id);
    expect(event).toMatchObject({ outcome: 'success', actor_id: alice.user.id, ip: CLIENT.ip });

    const changed = await submit(b, '/profile/password', {
      currentPassword: alice.password,
      newPassword: 'quiet lantern meadow 77',
    });
    expect(changed.headers.location).toBe('/?done=password');

    s.clock.advance(WINDOW + 1);
    expect((await b.get('/profile/recovery-question')).headers.location).toBe(verifyUrl('/profile/recovery-question'));
  });

  it('offers every enrolled method and verifies with the one chosen', async () => {
    const second = await addTotp(s, b);
    s.clock.advance(WINDOW + 1);
    const page = await b.get(`${verifyUrl('/profile/factors/add')}&factor=${second.factorId}`);
    expect(page.payload).toContain(`name="factorId" value="${second.factorId}"`);
    expect(page.payload).toContain(`factor=${alice.factorId}`);
    const res = await reverify(s, b, second.factorId, second.secret, '/profile/factors/add');
    expect(res.headers.location).toBe('/profile/factors/add');
  });

  it('never redirects outside the profile (open redirect)', async () => {
    s.clock.advance(WINDOW + 1);
    for (const next of ['https://evil.example/', '//evil.example', '/profile/../signout', '/\\evil.example']) {
      const page = await b.get(verifyUrl(next));
      expect(page.statusCode, next).toBe(303);
      expect(page.headers.location, next).toBe('/');
    }
    const res = await reverify(s, b, alice.factorId, alice.secret, 'https://evil.example/');
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/');
  });
});

describe('the re-verification code', () => {
  it('is refused when it was already used (at sign-in in another browser): RFC 6238 §5.2', async () => {
    s.clock.advance(WINDOW + 1);
    // Someone signs in elsewhere with the current code...
    await signInWithPages(s, createBrowser(s), alice, SID);
    const seen = generateTotp({ secret: alice.secret, now: s.clock() });
    // ...and the same code does not verify this session.
    const res = await submit(b, '/profile/verify', {
      factorId: alice.factorId,
      passCode: seen,
      next: '/profile/password',
    });
    expect(res.statusCode).toBe(403);
    expect(res.payload).toContain('This code was already used.');
    expect(res.payload).toMatch(/id="f-passCode"[^>]*aria-invalid="true"/);
    expect((await b.get('/profile/password')).statusCode).toBe(303);
    expect((await freshAlice()).failed_attempts).toBe(1);
    const [event] = await events(s, 'user.authentication.reverify', alice.user.id);
    expect(event?.outcome).toBe('failure');
    expect(details(event)).toMatchObject({ reason: 'CODE_REUSED', consecutiveFailures: 1 });
  });

  it('used once here, does not verify a second session', async () => {
    const other = createBrowser(s);
    await signInWithPages(s, other, alice, SID);
    s.clock.advance(WINDOW + 1);
    const code = freshCode(s, alice.secret);
    const first = await submit(b, '/profile/verify', {
      factorId: alice.factorId,
      passCode: code,
      next: '/profile/password',
    });
    expect(first.headers.location).toBe('/profile/password');
    const second = await submit(other, '/profile/verify', {
      factorId: alice.factorId,
      passCode: code,
      next: '/profile/password',
    });
    expect(second.statusCode).toBe(403);
    expect(second.payload).toContain('This code was already used.');
  });

  it('the code that activated a new method cannot verify afterwards', async () => {
    const { factorId, secret } = await addTotp(s, b);
    const activationCode = generateTotp({ secret, now: s.clock() });
    // The verification is old, but the clock has not left the activation code's step.
    await s.rt.store.repos.tokens.markSessionVerified(hashBearerSecret(sid), s.clock() - WINDOW - 1);
    expect((await b.get('/profile/password')).statusCode).toBe(303);
    const res = await submit(b, '/profile/verify', { factorId, passCode: activationCode, next: '/profile/password' });
    expect(res.statusCode).toBe(403);
    expect(res.payload).toContain('This code was already used.');
    expect((await b.get('/profile/password')).statusCode).toBe(303);
  });

  it('wrong codes count like sign-in failures; the 5th locks the account (with its email) and ends the session', async () => {
    s.clock.advance(WINDOW + 1);
    const code = () => wrongCode(alice.secret, s.clock());
    // A blank or malformed entry is not a guess.
    const blank = await submit(b, '/profile/verify', { factorId: alice.factorId, passCode: '', next: '/' });
    expect(blank.statusCode).toBe(403);
    expect(blank.payload).toContain('Enter the six-digit code your app shows.');
    expect((await freshAlice()).failed_attempts).toBe(0);

    for (let i = 1; i <= 4; i++) {
      const res = await submit(b, '/profile/verify', {
        factorId: alice.factorId,
        passCode: code(),
        next: '/profile/password',
      });
      expect(res.statusCode, `attempt ${i}`).toBe(403);
      expect(res.payload).toContain("doesn't match our records");
      expect((await freshAlice()).failed_attempts).toBe(i);
    }
    const fifth = await submit(b, '/profile/verify', {
      factorId: alice.factorId,
      passCode: code(),
      next: '/profile/password',
    });
    expect(fifth.statusCode).toBe(403);
    expect(fifth.payload).toContain('your account is locked');
    expect(b.jar.has(SID)).toBe(false);
    const [ended] = await events(s, 'user.session.end', alice.user.id);
    expect(ended).toMatchObject({ outcome: 'success', actor_id: alice.user.id, ip: CLIENT.ip });

    // The session is dead for anyone holding its cookie.
    const stale = await s.app.inject({ method: 'GET', url: '/', cookies: { [SID]: sid } });
    expect(stale.statusCode).toBe(303);
    // The same lockout as sign-in: locked, with the email and its unlock link.
    const user = await freshAlice();
    expect(user.status).toBe('LOCKED_OUT');
    const wrong = await postJson(s, '/api/v1/authn', { username: alice.login, password: alice.password });
    expect(wrong.body.status).toBe('LOCKED_OUT');
    expect(await mails(s, alice.login, 'accountLocked')).toHaveLength(1);
  });

  it('a right code gives its reservation back; a new sign-in clears the count', async () => {
    s.clock.advance(WINDOW + 1);
    for (let i = 0; i < 2; i++) {
      await submit(b, '/profile/verify', {
        factorId: alice.factorId,
        passCode: wrongCode(alice.secret, s.clock()),
        next: '/',
      });
    }
    expect((await freshAlice()).failed_attempts).toBe(2);
    const ok = await reverify(s, b, alice.factorId, alice.secret, '/profile/password');
    expect(ok.headers.location).toBe('/profile/password');
    expect((await freshAlice()).failed_attempts).toBe(2);
    await signInWithPages(s, createBrowser(s), alice, SID);
    expect((await freshAlice()).failed_attempts).toBe(0);
  });

  it("a factor id that is not one of the user's own is refused without counting", async () => {
    const bob = await signedInUser(s, 'bob@acme.example');
    s.clock.advance(WINDOW + 1);
    const res = await submit(b, '/profile/verify', {
      factorId: bob.user.factorId,
      passCode: generateTotp({ secret: bob.user.secret, now: s.clock() }),
      next: '/profile/password',
    });
    expect(res.statusCode).toBe(403);
    expect(res.payload).toContain('Choose one of your security methods.');
    expect((await freshAlice()).failed_attempts).toBe(0);
    expect((await b.get('/profile/password')).statusCode).toBe(303);
  });

  it('with no method left and the window passed, the page says to sign in again to enroll', async () => {
    await submit(b, `/profile/factors/${alice.factorId}/remove`, {});
    s.clock.advance(WINDOW + 1);
    const page = await b.get(verifyUrl('/profile/factors/add'));
    expect(page.statusCode).toBe(200);
    expect(page.payload).toContain('You have no security method left to verify with');
    expect(page.payload).not.toContain('name="passCode"');
  });
});
