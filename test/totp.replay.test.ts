import { afterEach, beforeEach, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, causes, passwordStep, postJson } from './helpers/users.ts';

/**
 * RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the same OTP". On both
 * backends: the parallel case is a real race only where queries run concurrently (PostgreSQL).
 */
describeEachBackend('TOTP codes are accepted once (replay)', (backend: BackendHandle) => {
  let s: TestStack;
  let alice: ActiveUser;
  beforeEach(async () => {
    s = await createTestStack({ store: backend.store() });
    alice = await activateUser(s, 'alice@acme.example');
  });
  afterEach(async () => {
    await s.close();
  });

  const verify = (stateToken: string, passCode: string) =>
    postJson(s, `/api/v1/authn/factors/${alice.factorId}/verify`, { stateToken, passCode });

  it('a code that signed in once is refused in a new transaction, with the reason', async () => {
    s.clock.advance(30_000);
    const code = generateTotp({ secret: alice.secret, now: s.clock() });
    const ok = await verify(await passwordStep(s, alice.login, alice.password), code);
    expect(ok.body.status).toBe('SUCCESS');

    // An attacker who watched the code being typed tries it right away, with the password.
    const replay = await verify(await passwordStep(s, alice.login, alice.password), code);
    expect(replay.status).toBe(403);
    expect(replay.body.errorCode).toBe('E0000068');
    expect(causes(replay.body).join(' ')).toContain('already used');
    expect(replay.body).not.toHaveProperty('sessionToken');
  });

  it('the code that activated the factor cannot be used to sign in', async () => {
    const activationCode = generateTotp({ secret: alice.secret, now: s.clock() });
    const r = await verify(await passwordStep(s, alice.login, alice.password), activationCode);
    expect(r.status).toBe(403);
    expect(r.body.errorCode).toBe('E0000068');
  });

  it('an older code inside the drift window is refused once a newer one was used', async () => {
    s.clock.advance(30_000);
    const older = generateTotp({ secret: alice.secret, now: s.clock() });
    s.clock.advance(30_000);
    const newer = generateTotp({ secret: alice.secret, now: s.clock() });
    expect((await verify(await passwordStep(s, alice.login, alice.password), newer)).body.status).toBe('SUCCESS');
    // One step back is normally accepted for clock drift, but not once a later step was used.
    const r = await verify(await passwordStep(s, alice.login, alice.password), older);
    expect(r.status).toBe(403);
  });

  it('two parallel sign-ins with one code: exactly one succeeds', async () => {
    s.clock.advance(30_000);
    const code = generateTotp({ secret: alice.secret, now: s.clock() });
    const tokens = await Promise.all([1, 2, 3, 4].map(() => passwordStep(s, alice.login, alice.password)));
    const results = await Promise.all(tokens.map((t) => verify(t, code)));
    expect(results.filter((r) => r.body.status === 'SUCCESS')).toHaveLength(1);
    expect(results.filter((r) => r.status === 403)).toHaveLength(3);
  });

  it('the next code (30 seconds later) is accepted, so a legitimate user is not stuck', async () => {
    s.clock.advance(30_000);
    const first = generateTotp({ secret: alice.secret, now: s.clock() });
    expect((await verify(await passwordStep(s, alice.login, alice.password), first)).body.status).toBe('SUCCESS');
    s.clock.advance(30_000);
    const next = generateTotp({ secret: alice.secret, now: s.clock() });
    expect((await verify(await passwordStep(s, alice.login, alice.password), next)).body.status).toBe('SUCCESS');
  });
});
