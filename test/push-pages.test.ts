import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cookiePrefix } from '../src/app.ts';
import { createBrowser, csrfFrom } from './helpers/browser.ts';
import { reverify, signedInUser } from './helpers/profile.ts';
import {
  activatePushUser,
  answerPush,
  newDeviceKey,
  oneFailureFromLockout,
  type PushUser,
  waitingPushes,
} from './helpers/push.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { PASSWORD, postJson, provisionUser, RECOVERY } from './helpers/users.ts';

/**
 * Push on the HTML pages: enrollment shows the activation link and QR code and waits for the
 * device; sign-in shows the number to pick, waits with a script (or the no-JavaScript button),
 * and reports a denial.
 */

let s: TestStack;
beforeAll(async () => {
  s = await createTestStack();
});
afterAll(() => s?.close());

const status = async (b: ReturnType<typeof createBrowser>) =>
  JSON.parse((await b.get('/signin/push/status')).payload).status as string;

/**
 * The device denies its waiting push; the status the page's script polls then reads `expected`,
 * and the script submits the page's "continue" check, whose answer this returns.
 */
async function denyAndContinue(b: ReturnType<typeof createBrowser>, u: PushUser, page: string, expected: string) {
  const [push] = await waitingPushes(s, u.device);
  if (!push) throw new Error('no push');
  await answerPush(s, u.device, push.id, 'DENY', null);
  expect(await status(b)).toBe(expected);
  return b.post('/signin/verify/push/check', { factorId: u.pushFactorId, _csrf: csrfFrom(page) });
}

describe('push on the sign-in pages', () => {
  it('enrolls push at first sign-in: link, QR code, waiting until the device enrolled', async () => {
    const { token } = await provisionUser(s, 'page.push@acme.example');
    const b = createBrowser(s);
    await b.submit(`/activate?token=${token}`, '/activate', { token });
    await b.submit('/signin/next', '/signin/password', {
      newPassword: PASSWORD,
      recoveryQuestion: RECOVERY.recoveryQuestion,
      recoveryAnswer: RECOVERY.recoveryAnswer,
    });
    const choice = await b.get('/signin/next');
    expect(choice.payload).toContain('Okta Verify (push)');
    const chose = await b.post('/signin/enroll', {
      factorType: 'push',
      provider: 'OKTA',
      _csrf: csrfFrom(choice.payload),
    });
    expect(chose.statusCode).toBe(303);
    const setup = await b.get('/signin/next');
    expect(setup.payload).toContain('<h1>Set up Okta Verify (push)</h1>');
    expect(setup.payload).toContain('src="/assets/push-wait.js"');
    expect(setup.payload).toMatch(/<img src="data:image\/png;base64,/);
    const code = /verify\/activate\?code=([A-Za-z0-9_-]+)/.exec(setup.payload)?.[1];
    if (!code) throw new Error('no activation link on the page');
    expect(await status(b)).toBe('WAITING');
    const enrolled = await postJson(s, '/api/v1/devices', {
      activationCode: code,
      name: 'page laptop',
      publicKey: newDeviceKey().publicJwk,
    });
    expect(enrolled.status).toBe(201);
    expect(await status(b)).toBe('APPROVED');
    const page = await b.get('/signin/next');
    const done = await b.post('/signin/enroll/push/check', {
      factorId: /name="factorId" value="([^"]+)"/.exec(page.payload)?.[1] ?? '',
      _csrf: csrfFrom(page.payload),
    });
    expect(done.statusCode, done.payload.slice(0, 3000)).toBe(303);
    expect(b.jar.get(`${cookiePrefix('ntf', 'idp')}_sid`)).toBeTruthy();
  });

  it('signs in with push: the number to pick, waiting, then a session; a denial is explained', async () => {
    const u = await activatePushUser(s, 'page.signin.push@acme.example');
    const b = createBrowser(s);
    await b.submit('/signin', '/signin', { username: u.login, password: u.password });
    const chooser = await b.get(`/signin/next?factor=${u.pushFactorId}`);
    expect(chooser.payload).toContain('Send push');
    const sent = await b.post('/signin/verify/push', { factorId: u.pushFactorId, _csrf: csrfFrom(chooser.payload) });
    expect(sent.statusCode).toBe(303);
    const waiting = await b.get('/signin/next');
    const shown = Number(/<p class="push-number"[^>]*>(\d+)<\/p>/.exec(waiting.payload)?.[1]);
    expect(waiting.payload).toContain('src="/assets/push-wait.js"');
    expect(waiting.payload).toContain('I approved — continue');
    const [push] = await waitingPushes(s, u.device);
    if (!push) throw new Error('no push');
    expect(push.numbers).toContain(shown);
    expect(await status(b)).toBe('WAITING');

    const checked = await denyAndContinue(b, u, waiting.payload, 'REJECTED');
    expect(checked.statusCode).toBe(303);
    const denied = await b.get('/signin/next');
    expect(denied.payload).toContain('The push was denied on your device');
    expect(denied.payload).toContain('Send a new push');

    const resent = await b.post('/signin/verify/push/resend', {
      factorId: u.pushFactorId,
      _csrf: csrfFrom(denied.payload),
    });
    expect(resent.statusCode).toBe(303);
    const again = await b.get('/signin/next');
    const number = Number(/<p class="push-number"[^>]*>(\d+)<\/p>/.exec(again.payload)?.[1]);
    const [next] = await waitingPushes(s, u.device);
    if (!next) throw new Error('no second push');
    await answerPush(s, u.device, next.id, 'APPROVE', number);
    const done = await b.post('/signin/verify/push/check', {
      factorId: u.pushFactorId,
      _csrf: csrfFrom(again.payload),
    });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe('/');
  });

  it('a denial that locks the account shows the locked page, not "sign-in expired"', async () => {
    const u = await activatePushUser(s, 'page.locked.push@acme.example');
    const b = createBrowser(s);
    await b.submit('/signin', '/signin', { username: u.login, password: u.password });
    const chooser = await b.get(`/signin/next?factor=${u.pushFactorId}`);
    await b.post('/signin/verify/push', { factorId: u.pushFactorId, _csrf: csrfFrom(chooser.payload) });
    const waiting = await b.get('/signin/next');
    await oneFailureFromLockout(s, u.login);
    const checked = await denyAndContinue(b, u, waiting.payload, 'LOCKED_OUT');
    expect(checked.statusCode).toBe(403);
    expect(checked.payload).toContain('Your account is locked');
    expect(checked.payload).not.toContain('Your sign-in expired');
  });

  it('adds push from the profile: link and QR code, then the device enrolls', async () => {
    const { user, b } = await signedInUser(s, 'profile.push@acme.example');
    expect((await reverify(s, b, user.factorId, user.secret, '/profile/factors/add')).statusCode).toBe(303);
    const add = await b.get('/profile/factors/add');
    expect(add.payload).toContain('Set up Okta Verify (push)');
    const started = await b.post('/profile/factors/add', {
      provider: 'OKTA',
      factorType: 'push',
      _csrf: csrfFrom(add.payload),
    });
    expect(started.statusCode).toBe(303);
    const setupUrl = String(started.headers.location);
    const setup = await b.get(setupUrl);
    expect(setup.payload).toContain('<h1>Add Okta Verify (push)</h1>');
    expect(setup.payload).toMatch(/<img src="data:image\/png;base64,/);
    expect(setup.payload).toContain('data-status="/profile/factors/');
    const statusUrl = setupUrl.replace(/activate$/, 'status');
    expect(JSON.parse((await b.get(statusUrl)).payload).status).toBe('WAITING');
    const code = /verify\/activate\?code=([A-Za-z0-9_-]+)/.exec(setup.payload)?.[1] ?? '';
    const enrolled = await postJson(s, '/api/v1/devices', {
      activationCode: code,
      name: 'profile phone',
      publicKey: newDeviceKey().publicJwk,
    });
    expect(enrolled.status).toBe(201);
    expect(JSON.parse((await b.get(statusUrl)).payload).status).toBe('APPROVED');
    const done = await b.get(setupUrl);
    expect(done.headers.location).toBe('/?done=factor-added');
    const factors = await s.rt.store.repos.factors.listActiveFactors(user.user.id);
    expect(factors.map((f) => `${f.factor_type}:${f.provider}`).sort()).toEqual([
      'push:OKTA',
      'token:software:totp:GOOGLE',
      'token:software:totp:OKTA',
    ]);
  });

  it('"send push automatically": the password step shows the number at once', async () => {
    const u = await activatePushUser(s, 'page.autopush@acme.example');
    const user = await s.rt.store.repos.users.findUserByLogin(u.login);
    if (!user) throw new Error('no user');
    await s.rt.store.repos.users.setPreferences(user.id, { autoPush: true });
    const b = createBrowser(s);
    await b.submit('/signin', '/signin', { username: u.login, password: u.password });
    const page = await b.get('/signin/next');
    const shown = Number(/<p class="push-number"[^>]*>(\d+)<\/p>/.exec(page.payload)?.[1]);
    const [push] = await waitingPushes(s, u.device);
    expect(push?.numbers).toContain(shown);
  });
});
