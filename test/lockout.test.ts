import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import { createBrowser } from './helpers/browser.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, freshCode, passwordStep, postJson } from './helpers/users.ts';

const WRONG = 'not the right password at all';
const MINUTE = 60_000;

let s: TestStack;
let alice: ActiveUser;
beforeEach(async () => {
  s = await createTestStack();
  alice = await activateUser(s, 'alice@acme.example');
});
afterEach(async () => {
  await s.close();
});

const signIn = (password: string) => postJson(s, '/api/v1/authn', { username: alice.login, password });

async function lockWithWrongPasswords() {
  const answers = [];
  for (let i = 0; i < 5; i++) answers.push(await signIn(WRONG));
  return answers;
}

describe('account lockout after 5 failed attempts (FAQ: unlocks after 15 minutes)', () => {
  it('answers LOCKED_OUT at the fifth wrong password', async () => {
    const answers = await lockWithWrongPasswords();
    for (const r of answers.slice(0, 4)) {
      expect(r.status).toBe(401);
      expect(r.body.errorCode).toBe('E0000004');
    }
    expect(answers[4]?.status).toBe(200);
    expect(answers[4]?.body.status).toBe('LOCKED_OUT');
    expect(answers[4]?.body).not.toHaveProperty('stateToken');
    expect((await s.rt.store.repos.users.findUserById(alice.user.id))?.status).toBe('LOCKED_OUT');
  });

  it('refuses the correct password while locked, and the sign-in page says so', async () => {
    await lockWithWrongPasswords();
    const r = await signIn(alice.password);
    expect(r.body.status).toBe('LOCKED_OUT');
    expect(r.body).not.toHaveProperty('stateToken');

    const page = await createBrowser(s).submit('/signin', '/signin', {
      username: alice.login,
      password: alice.password,
    });
    expect(page.statusCode).toBe(403);
    expect(page.payload).toContain('Your account is locked');
    expect(page.payload).toContain('15 minutes');
    expect(page.payload).toContain(s.config.contacts.techSupportPhone);
  });

  it('unlocks by itself 15 minutes after the lock, not before', async () => {
    await lockWithWrongPasswords();
    s.clock.advance(15 * MINUTE - 1);
    expect((await signIn(alice.password)).body.status).toBe('LOCKED_OUT');
    s.clock.advance(1);
    const r = await signIn(alice.password);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('MFA_REQUIRED');
    // A fresh counter: one more mistake does not lock again at once.
    expect((await signIn(WRONG)).status).toBe(401);
    expect((await signIn(alice.password)).body.status).toBe('MFA_REQUIRED');
  });

  it('the counter is of consecutive failures: a full sign-in resets it', async () => {
    for (let i = 0; i < 4; i++) await signIn(WRONG);
    const stateToken = await passwordStep(s, alice.login, alice.password);
    const ok = await postJson(s, `/api/v1/authn/factors/${alice.factorId}/verify`, {
      stateToken,
      passCode: freshCode(s, alice.secret),
    });
    expect(ok.body.status).toBe('SUCCESS');
    for (let i = 0; i < 4; i++) expect((await signIn(WRONG)).status).toBe(401);
  });

  it('wrong TOTP codes count too: the fifth answers E0000069 and ends the transaction', async () => {
    const stateToken = await passwordStep(s, alice.login, alice.password);
    const wrong = String((Number(generateTotp({ secret: alice.secret, now: s.clock() })) + 1) % 1_000_000).padStart(
      6,
      '0',
    );
    const verify = (passCode: string) =>
      postJson(s, `/api/v1/authn/factors/${alice.factorId}/verify`, { stateToken, passCode });
    for (let i = 0; i < 4; i++) expect((await verify(wrong)).body.errorCode).toBe('E0000068');
    const locked = await verify(wrong);
    expect(locked.status).toBe(403);
    expect(locked.body.errorCode).toBe('E0000069');
    // Even the right code in the same transaction is refused now.
    const right = await verify(freshCode(s, alice.secret));
    expect(right.status).toBeGreaterThanOrEqual(400);
    expect(right.body).not.toHaveProperty('sessionToken');
    expect((await signIn(alice.password)).body.status).toBe('LOCKED_OUT');
  });
});
