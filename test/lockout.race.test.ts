import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { buildIdp, type EnvironmentRuntime, openEnvironment } from '../src/app.ts';
import type * as Hashing from '../src/authn/factors/password/hashing.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { createMemoryTransport, createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, postJson } from './helpers/users.ts';

/** Real Argon2id verifications against a user's stored hash (not the dummy ones), per process. */
const counts = vi.hoisted(() => ({ verify: 0, dummy: 0 }));

// Counts what the password hasher is asked, without changing what it does.
vi.mock('../src/authn/factors/password/hashing.ts', async (importOriginal) => {
  const original = await importOriginal<typeof Hashing>();
  return {
    ...original,
    createPasswordHasher: (...args: Parameters<typeof original.createPasswordHasher>): Hashing.PasswordHasher => {
      const inner = original.createPasswordHasher(...args);
      return {
        hash: inner.hash,
        async verify(hash, plain) {
          counts.verify++;
          return inner.verify(hash, plain);
        },
        async verifyDummy(plain) {
          counts.dummy++;
          return inner.verifyDummy(plain);
        },
      };
    },
  };
});

const WRONG = 'not the right password at all';
const PARALLEL = 20;

/** OWASP ASVS 2.2.1: parallel guesses must not get more tries than the limit of 5. */
describeEachBackend('lockout under parallel wrong passwords', (backend: BackendHandle) => {
  let s: TestStack;
  let alice: ActiveUser;
  let second: { rt: EnvironmentRuntime; app: FastifyInstance } | undefined;

  beforeEach(async () => {
    s = await createTestStack({ store: backend.store() });
    alice = await activateUser(s, 'alice@acme.example');
    counts.verify = 0;
    counts.dummy = 0;
  });
  afterEach(async () => {
    if (second) {
      await second.app.close();
      await second.rt.close();
      second = undefined;
    }
    await s.close();
  });

  async function expectLockedAfterExactlyFive(answers: { status: number; body: Record<string, unknown> }[]) {
    expect(counts.verify).toBe(5);
    expect(counts.verify + counts.dummy).toBe(PARALLEL);
    expect(answers.filter((r) => r.status === 401)).toHaveLength(4);
    expect(answers.filter((r) => r.body.status === 'LOCKED_OUT')).toHaveLength(PARALLEL - 4);
    const user = await s.rt.store.repos.users.findUserById(alice.user.id);
    expect(user?.status).toBe('LOCKED_OUT');
    expect(user?.failed_attempts).toBe(5);
    expect(user?.lockout_count).toBe(1);
    const locks = await s.rt.store.repos.audit.listEvents({ targetId: alice.user.id, action: 'user.account.lock' });
    expect(locks).toHaveLength(1);
    const failures = await s.rt.store.repos.audit.listEvents({ targetId: alice.user.id, action: 'user.session.start' });
    expect(failures.filter((e) => e.outcome === 'failure')).toHaveLength(5);
  }

  it(`${PARALLEL} parallel wrong passwords: exactly 5 are checked, then the account is locked`, async () => {
    const answers = await Promise.all(
      Array.from({ length: PARALLEL }, () => postJson(s, '/api/v1/authn', { username: alice.login, password: WRONG })),
    );
    await expectLockedAfterExactlyFive(answers);
    // The right password is refused too until the lock expires.
    expect((await postJson(s, '/api/v1/authn', { username: alice.login, password: alice.password })).body.status).toBe(
      'LOCKED_OUT',
    );
  });

  it('the same through two idp nodes sharing the database', async () => {
    const environment = s.config.environments[0];
    if (!environment) throw new Error('no environment');
    const rt = await openEnvironment(s.config, environment, {
      logger: pino({ level: 'silent' }),
      clock: s.clock,
      store: backend.connectAgain(),
      transport: createMemoryTransport().transport,
    });
    const app = await buildIdp(rt);
    await app.ready();
    second = { rt, app };
    counts.verify = 0;
    counts.dummy = 0;

    const viaSecond = async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/authn',
        payload: { username: alice.login, password: WRONG },
      });
      return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
    };
    const answers = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        i % 2 ? viaSecond() : postJson(s, '/api/v1/authn', { username: alice.login, password: WRONG }),
      ),
    );
    await expectLockedAfterExactlyFive(answers);
  });
});
