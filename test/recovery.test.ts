import { afterEach, describe, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, freshCode, PASSWORD, postJson, RECOVERY, text } from './helpers/users.ts';

const MINUTE = 60_000;
let s: TestStack;
afterEach(async () => {
  await s?.close();
});

/** Five wrong passwords: the account locks. */
async function lock(u: ActiveUser) {
  for (let i = 0; i < 5; i++)
    await postJson(s, '/api/v1/authn', { username: u.login, password: 'not the password at all' });
  const row = await s.rt.store.repos.users.findUserById(u.user.id);
  expect(row?.status).toBe('LOCKED_OUT');
}

/** The newest outbox message to a user with a subject matching, and the link token in it. */
async function mailTo(login: string, subject: RegExp) {
  const messages = await s.rt.store.repos.outbox.listRecentMessages(50, login);
  const m = messages.find((x) => subject.test(x.subject));
  if (!m) throw new Error(`no mail "${subject}" to ${login}: ${messages.map((x) => x.subject).join(' | ')}`);
  const token = /\/recover\?token=([A-Za-z0-9_%-]+)/.exec(m.text_body)?.[1];
  return { message: m, token: token ? decodeURIComponent(token) : undefined };
}

describe('lockout email and self-service unlock', () => {
  it('emails a single-use 8-hour unlock link; the recovery question unlocks the account', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'locked@acme.example');
    await lock(u);
    const { message, token } = await mailTo(u.login, /locked/);
    expect(message.text_body).toMatch(/unlocks by itself/);
    expect(token).toBeTruthy();

    let r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
    expect(r.body).toMatchObject({ status: 'RECOVERY', recoveryType: 'UNLOCK' });
    expect(text(r.body, '_embedded', 'user', 'recovery_question', 'question')).toBe(RECOVERY.recoveryQuestion);
    const stateToken = text(r.body, 'stateToken');

    r = await postJson(s, '/api/v1/authn/recovery/answer', { stateToken, answer: 'Oak Avenue' });
    expect(r.status).toBe(403);
    expect(r.body.errorCode).toBe('E0000068');

    // Answers are compared normalised: case and spacing do not matter.
    r = await postJson(s, '/api/v1/authn/recovery/answer', { stateToken, answer: '  elm   STREET ' });
    expect(r.body).toMatchObject({ status: 'SUCCESS', recoveryType: 'UNLOCK' });
    expect((await s.rt.store.repos.users.findUserById(u.user.id))?.status).toBe('ACTIVE');
    await mailTo(u.login, /unlocked/);

    // Single use: the link does not work a second time.
    r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
    expect(r.status).toBe(401);
    expect(r.body.errorCode).toBe('E0000011');

    r = await postJson(s, '/api/v1/authn', { username: u.login, password: PASSWORD });
    expect(r.body.status).toBe('MFA_REQUIRED');
  });

  it('refuses the unlock link after 8 hours', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'late@acme.example');
    await lock(u);
    const { token } = await mailTo(u.login, /locked/);
    s.clock.advance(8 * 60 * MINUTE);
    const r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
    expect(r.status).toBe(401);
  });

  it('stops unlocking by itself after 10 lockouts in a row; only support can unlock', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'tenth@acme.example');
    for (let i = 1; i <= 10; i++) {
      // The first wrong attempt after 15 minutes finds the lock expired; five lock it again.
      await lock(u);
      expect((await s.rt.store.repos.users.findUserById(u.user.id))?.lockout_count).toBe(i);
      s.clock.advance(15 * MINUTE);
    }
    const row = await s.rt.store.repos.users.findUserById(u.user.id);
    expect(row?.lockout_count).toBe(10);
    const { message } = await mailTo(u.login, /locked/);
    expect(message.text_body).toMatch(/will not unlock by itself/);
    expect(message.text_body).not.toMatch(/recover\?token=/);
    s.clock.advance(60 * MINUTE);
    let r = await postJson(s, '/api/v1/authn', { username: u.login, password: PASSWORD });
    expect(r.body.status).toBe('LOCKED_OUT');
    // Self-service unlock is refused too (the request is answered the same, but no link is sent).
    await s.rt.authn.requestRecovery(u.login, 'unlock', { ip: null, userAgent: null }).settled;
    expect(
      (await s.rt.store.repos.outbox.listRecentMessages(100, u.login)).filter((m) => /Unlock your/.test(m.subject)),
    ).toHaveLength(0);
    // Support unlocks (npx traqs user unlock); automatic unlock works again afterwards.
    expect(await s.rt.accounts.unlockBySupport(u.user.id, null)).toBe('unlocked');
    expect(await s.rt.store.repos.users.findUserById(u.user.id)).toMatchObject({ status: 'ACTIVE', lockout_count: 0 });
    r = await postJson(s, '/api/v1/authn', { username: u.login, password: PASSWORD });
    expect(r.body.status).toBe('MFA_REQUIRED');
  });
});

describe('forgotten password', () => {
  it('answers the same for unknown and known usernames and emails only the known one', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'forgot@acme.example');
    const known = await postJson(s, '/api/v1/authn/recovery/password', { username: u.login, factorType: 'EMAIL' });
    const unknown = await postJson(s, '/api/v1/authn/recovery/password', { username: 'nobody@acme.example' });
    expect(known.status).toBe(200);
    expect(unknown.status).toBe(known.status);
    expect(unknown.body).toStrictEqual(known.body);
    expect(known.body).toMatchObject({ status: 'RECOVERY_CHALLENGE', recoveryType: 'PASSWORD', factorType: 'EMAIL' });
    // The email is written after the answer; give the background work a moment.
    await expect.poll(async () => (await mailTo(u.login, /Reset your/)).token, { timeout: 2000 }).toBeTruthy();
    expect(await s.rt.store.repos.outbox.listRecentMessages(10, 'nobody@acme.example')).toHaveLength(0);
  });

  it('resets the password after the question, signs out other sessions, then still asks for the second factor', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'reset@acme.example');
    const { settled } = s.rt.authn.requestRecovery(u.login, 'password', { ip: null, userAgent: null });
    await settled;
    const { token } = await mailTo(u.login, /Reset your/);
    let r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
    expect(r.body).toMatchObject({ status: 'RECOVERY', recoveryType: 'PASSWORD' });
    const stateToken = text(r.body, 'stateToken');
    r = await postJson(s, '/api/v1/authn/recovery/answer', { stateToken, answer: RECOVERY.recoveryAnswer });
    expect(r.body).toMatchObject({ status: 'PASSWORD_RESET', recoveryType: 'PASSWORD' });

    r = await postJson(s, '/api/v1/authn/credentials/reset_password', { stateToken, newPassword: 'password1234' });
    expect(r.body.errorCode).toBe('E0000080');
    const newPassword = 'a brand new memorable passphrase';
    r = await postJson(s, '/api/v1/authn/credentials/reset_password', { stateToken, newPassword });
    expect(r.body.status).toBe('MFA_REQUIRED');
    r = await postJson(s, `/api/v1/authn/factors/${u.factorId}/verify`, {
      stateToken: r.body.stateToken,
      passCode: freshCode(s, u.secret),
    });
    expect(r.body.status).toBe('SUCCESS');
    await mailTo(u.login, /password was changed/);

    expect((await postJson(s, '/api/v1/authn', { username: u.login, password: PASSWORD })).status).toBe(401);
    expect((await postJson(s, '/api/v1/authn', { username: u.login, password: newPassword })).body.status).toBe(
      'MFA_REQUIRED',
    );
    // The emailed link was consumed with the new password.
    r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
    expect(r.status).toBe(401);
  });

  it('ends the recovery after five wrong answers and spends the link', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'guess@acme.example');
    await s.rt.authn.requestRecovery(u.login, 'password', { ip: null, userAgent: null }).settled;
    const { token } = await mailTo(u.login, /Reset your/);
    const r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
    const stateToken = text(r.body, 'stateToken');
    const answers = [];
    for (let i = 0; i < 6; i++) {
      answers.push((await postJson(s, '/api/v1/authn/recovery/answer', { stateToken, answer: `guess ${i}` })).status);
    }
    expect(answers).toEqual([403, 403, 403, 403, 401, 401]);
    expect((await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token })).status).toBe(401);
  });
});

describe('recovery with an enrolled factor instead of the question (NIST 800-63B policy switch)', () => {
  it('unlocks after a TOTP code, and never shows the question', async () => {
    s = await createTestStack({ overrides: { policy: { recoveryVerification: 'factor' } } });
    const u = await activateUser(s, 'nist@acme.example');
    await lock(u);
    const { token } = await mailTo(u.login, /locked/);
    let r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
    expect(r.body).toMatchObject({ status: 'MFA_REQUIRED', recoveryType: 'UNLOCK' });
    expect(JSON.stringify(r.body)).not.toContain(RECOVERY.recoveryQuestion);
    s.clock.advance(30_000);
    r = await postJson(s, `/api/v1/authn/factors/${u.factorId}/verify`, {
      stateToken: r.body.stateToken,
      passCode: generateTotp({ secret: u.secret, now: s.clock() }),
    });
    expect(r.body).toMatchObject({ status: 'SUCCESS', recoveryType: 'UNLOCK' });
    expect((await s.rt.store.repos.users.findUserById(u.user.id))?.status).toBe('ACTIVE');
  });
});

describe('recovery limits (security review)', () => {
  it('counts wrong answers against the emailed link, across transactions started from it', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'links@acme.example');
    await s.rt.authn.requestRecovery(u.login, 'password', { ip: null, userAgent: null }).settled;
    const { token } = await mailTo(u.login, /Reset your/);
    const statuses: number[] = [];
    for (let round = 0; round < 3; round++) {
      const r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token });
      if (r.status !== 200) {
        statuses.push(r.status);
        continue;
      }
      const stateToken = text(r.body, 'stateToken');
      for (let i = 0; i < 2; i++) {
        statuses.push(
          (await postJson(s, '/api/v1/authn/recovery/answer', { stateToken, answer: `guess ${round}${i}` })).status,
        );
      }
    }
    // 2 + 2 wrong answers in two transactions; the fifth, in a third transaction, spends the link.
    expect(statuses).toEqual([403, 403, 403, 403, 401, 401]);
    expect((await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: token })).status).toBe(401);
  });

  it('an unlock link from an earlier lockout does not unlock a support-only account', async () => {
    s = await createTestStack({ overrides: { policy: { lockoutsBeforeSupportUnlock: 2 } } });
    const u = await activateUser(s, 'support@acme.example');
    await lock(u);
    const { token: first } = await mailTo(u.login, /locked/);
    s.clock.advance(16 * MINUTE);
    await lock(u);
    expect((await s.rt.store.repos.users.findUserById(u.user.id))?.lockout_count).toBe(2);
    const r = await postJson(s, '/api/v1/authn/recovery/token', { recoveryToken: first });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect((await s.rt.store.repos.users.findUserById(u.user.id))?.status).toBe('LOCKED_OUT');
  });
});

describe('development mailbox', () => {
  it('exists only in a test environment without an SMTP relay', async () => {
    s = await createTestStack();
    expect((await s.app.inject({ method: 'GET', url: '/dev/mailbox' })).statusCode).toBe(200);
    await s.close();
    s = await createTestStack({ env: { TRAQS_SMTP_URL: 'smtp://relay.example:587' } });
    expect((await s.app.inject({ method: 'GET', url: '/dev/mailbox' })).statusCode).toBe(404);
  });
});
