import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import { createBrowser, csrfFrom } from './helpers/browser.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import {
  type ActiveUser,
  type ApiAnswer,
  activateUser,
  causes,
  PASSWORD,
  passwordStep,
  postJson,
  provisionUser,
  RECOVERY,
  text,
} from './helpers/users.ts';

let s: TestStack;
let alice: ActiveUser;
beforeAll(async () => {
  s = await createTestStack();
  alice = await activateUser(s, 'alice@acme.example');
});
afterAll(async () => {
  await s?.close();
});

const FAKE_STATE = 'x'.repeat(40);

/** Every Authentication API endpoint, with a body of the right shape (to be spoiled by each case). */
const endpoints = (alice: ActiveUser): { path: string; body: Record<string, unknown> }[] => [
  { path: '/api/v1/authn', body: { username: alice.login, password: 'a wrong password' } },
  {
    path: '/api/v1/authn/credentials/reset_password',
    body: { stateToken: FAKE_STATE, newPassword: PASSWORD, ...RECOVERY },
  },
  {
    path: '/api/v1/authn/factors',
    body: { stateToken: FAKE_STATE, factorType: 'token:software:totp', provider: 'GOOGLE' },
  },
  {
    path: `/api/v1/authn/factors/${alice.factorId}/lifecycle/activate`,
    body: { stateToken: FAKE_STATE, passCode: '123456' },
  },
  { path: `/api/v1/authn/factors/${alice.factorId}/verify`, body: { stateToken: FAKE_STATE, passCode: '123456' } },
  { path: '/api/v1/authn/previous', body: { stateToken: FAKE_STATE } },
  { path: '/api/v1/authn/cancel', body: { stateToken: FAKE_STATE } },
];

/** Okta's error object, exactly: clients key on `errorCode` and show `errorSummary`. */
function expectOktaError(r: ApiAnswer, status: number, errorCode: string) {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(Object.keys(r.body).sort()).toEqual(['errorCauses', 'errorCode', 'errorId', 'errorLink', 'errorSummary']);
  expect(r.body.errorCode).toBe(errorCode);
  expect(r.body.errorLink).toBe(errorCode);
  expect(typeof r.body.errorSummary).toBe('string');
  expect(r.body.errorId).toMatch(/^oae\w+$/);
  expect(Array.isArray(r.body.errorCauses)).toBe(true);
  expect(JSON.stringify(r.body)).not.toMatch(/\bat .+\.ts:\d+|node_modules/);
}

const raw = (path: string, payload: string) => postJson(s, path, payload, { raw: true });

describe('every API endpoint refuses bad input with a 4xx Okta error, never a 500', () => {
  it('malformed JSON → 400 E0000003', async () => {
    for (const { path } of endpoints(alice)) {
      for (const payload of ['{"stateToken": ', '{stateToken: "x"}', "{'a': 1}", '{"a":1}}']) {
        expectOktaError(await raw(path, payload), 400, 'E0000003');
      }
    }
  });

  it('an empty body declared as JSON → 400', async () => {
    for (const { path } of endpoints(alice)) {
      const r = await raw(path, '');
      expect(r.status, path).toBe(400);
      expect(r.body.errorCode).toMatch(/^E000000[13]$/);
    }
  });

  it('JSON that is not an object (array, string, number, null, true) → 400', async () => {
    for (const { path } of endpoints(alice)) {
      for (const payload of ['[]', '[{"stateToken":"x"}]', '"stateToken"', '42', 'null', 'true']) {
        expectOktaError(await raw(path, payload), 400, 'E0000001');
      }
    }
  });

  it('wrong types → 400 E0000001 naming the field', async () => {
    for (const { path, body } of endpoints(alice)) {
      for (const key of Object.keys(body)) {
        for (const wrong of [12345, true, ['a'], { a: 'b' }, null]) {
          const r = await postJson(s, path, { ...body, [key]: wrong });
          expectOktaError(r, 400, 'E0000001');
          expect(causes(r.body).join(' '), `${path} ${key}=${JSON.stringify(wrong)}`).toContain(key);
        }
      }
    }
  });

  it('unknown fields → 400 E0000001 naming the field (no mass assignment)', async () => {
    for (const { path, body } of endpoints(alice)) {
      for (const extra of ['isAdmin', 'status', 'userId', 'factorId']) {
        const r = await postJson(s, path, { ...body, [extra]: 'ACTIVE' });
        expectOktaError(r, 400, 'E0000001');
        expect(causes(r.body).join(' '), `${path} ${extra}`).toContain(extra);
      }
    }
  });

  it('prototype-poisoning keys are refused', async () => {
    for (const { path } of endpoints(alice)) {
      const r = await raw(path, '{"__proto__": {"isAdmin": true}, "stateToken": "x"}');
      expect(r.status, path).toBe(400);
    }
  });

  it('overlong strings → 400 E0000001 naming the field', async () => {
    for (const { path, body } of endpoints(alice)) {
      for (const key of Object.keys(body)) {
        const r = await postJson(s, path, { ...body, [key]: 'a'.repeat(2049) });
        expectOktaError(r, 400, 'E0000001');
        expect(causes(r.body).join(' '), `${path} ${key}`).toContain(key);
      }
    }
    const longId = `/api/v1/authn/factors/${'u'.repeat(41)}/verify`;
    const r = await postJson(s, longId, { stateToken: FAKE_STATE, passCode: '123456' });
    expectOktaError(r, 400, 'E0000001');
    expect(causes(r.body).join(' ')).toContain('factorId');
  });

  it('a body over 64 KiB → 413 naming the limit, even when it is valid JSON', async () => {
    for (const { path, body } of endpoints(alice)) {
      const r = await postJson(s, path, { ...body, relayState: 'a'.repeat(64 * 1024) });
      expectOktaError(r, 413, 'E0000003');
      expect(causes(r.body).join(' ')).toContain('64 KiB');
    }
  });

  it('none of that counted as a failed sign-in against the user', async () => {
    const user = await s.rt.store.repos.users.findUserById(alice.user.id);
    expect(user?.status).toBe('ACTIVE');
    expect(user?.failed_attempts).toBe(0);
  });
});

describe('a refused request changes nothing', () => {
  async function startActivation(email: string) {
    const { user, token } = await provisionUser(s, email);
    const r = await postJson(s, '/api/v1/authn', { token });
    return { user, token, stateToken: text(r.body, 'stateToken') };
  }

  async function expectUntouched(userId: string, token: string, stateToken: string) {
    const user = await s.rt.store.repos.users.findUserById(userId);
    expect(user?.password_hash).toBeNull();
    expect(user?.recovery_answer_hash).toBeNull();
    expect(user?.status).toBe('PROVISIONED');
    expect((await s.rt.store.repos.tokens.findEmailToken(hashBearerSecret(token)))?.consumed_at).toBeNull();
    // The transaction is still waiting for a password.
    expect((await postJson(s, '/api/v1/authn', { stateToken })).body.status).toBe('PASSWORD_RESET');
  }

  it('reset_password with a good password but an invalid recovery answer sets nothing', async () => {
    const { user, token, stateToken } = await startActivation('bob@acme.example');
    for (const recoveryAnswer of ['ab', `my ${PASSWORD}`]) {
      const r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
        stateToken,
        newPassword: PASSWORD,
        recoveryQuestion: RECOVERY.recoveryQuestion,
        recoveryAnswer,
      });
      expectOktaError(r, 400, 'E0000001');
      expect(causes(r.body).length).toBeGreaterThan(0);
      await expectUntouched(user.id, token, stateToken);
    }
    const short = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken,
      newPassword: PASSWORD,
      recoveryQuestion: 'Q?',
      recoveryAnswer: RECOVERY.recoveryAnswer,
    });
    expectOktaError(short, 400, 'E0000001');
    expect(causes(short.body).join(' ')).toContain('question');
    await expectUntouched(user.id, token, stateToken);

    // The user can correct the answer and carry on with the same link.
    const ok = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken,
      newPassword: PASSWORD,
      ...RECOVERY,
    });
    expect(ok.body.status).toBe('MFA_ENROLL');
  });

  it('reset_password with an unknown field sets nothing', async () => {
    const { user, token, stateToken } = await startActivation('carol@acme.example');
    const r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken,
      newPassword: PASSWORD,
      ...RECOVERY,
      status: 'ACTIVE',
    });
    expectOktaError(r, 400, 'E0000001');
    await expectUntouched(user.id, token, stateToken);
  });

  it('enrolling a retired or unknown factor creates no factor', async () => {
    const { stateToken } = await startActivation('dave@acme.example');
    const enrolling = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken,
      newPassword: PASSWORD,
      ...RECOVERY,
    });
    const next = text(enrolling.body, 'stateToken');
    const user = await s.rt.store.repos.users.findUserByLogin('dave@acme.example');
    for (const [factorType, provider] of [
      ['sms', 'OKTA'],
      ['call', 'OKTA'],
      ['token:software:totp', 'EVIL'],
    ]) {
      const r = await postJson(s, '/api/v1/authn/factors', { stateToken: next, factorType, provider });
      expectOktaError(r, 400, 'E0000001');
    }
    expect(await s.rt.store.repos.factors.listFactors(user?.id ?? '')).toHaveLength(0);
    expect((await postJson(s, '/api/v1/authn', { stateToken: next })).body.status).toBe('MFA_ENROLL');
  });

  it('a verify request of the wrong shape neither counts an attempt nor uses a step', async () => {
    const eve = await activateUser(s, 'eve@acme.example');
    const r0 = await postJson(s, '/api/v1/authn', { username: eve.login, password: eve.password });
    const stateToken = text(r0.body, 'stateToken');
    const before = await s.rt.store.repos.factors.findFactor(eve.user.id, eve.factorId);
    for (const passCode of [123456, ['123456'], { code: '123456' }]) {
      const r = await postJson(s, `/api/v1/authn/factors/${eve.factorId}/verify`, { stateToken, passCode });
      expectOktaError(r, 400, 'E0000001');
    }
    const after = await s.rt.store.repos.factors.findFactor(eve.user.id, eve.factorId);
    expect(after?.last_used_step).toBe(before?.last_used_step);
    expect((await s.rt.store.repos.users.findUserById(eve.user.id))?.failed_attempts).toBe(0);
    expect((await postJson(s, '/api/v1/authn', { stateToken })).body.status).toBe('MFA_REQUIRED');
  });
});

/**
 * On both backends: PostgreSQL refuses some strings SQLite stores (U+0000), and must not turn them
 * into a 500.
 */
describeEachBackend('bad input never causes a 500', (backend: BackendHandle) => {
  let t: TestStack;
  let bob: ActiveUser;
  beforeEach(async () => {
    t = await createTestStack({ store: backend.store() });
    bob = await activateUser(t, 'bob@acme.example');
  });
  afterEach(async () => {
    await t.close();
  });

  it('odd but well-formed values on every endpoint', async () => {
    const odd: unknown[] = [
      '',
      ' ',
      '\u0000',
      'a\u0000b',
      '\uD800',
      '💥'.repeat(300),
      -1,
      1e308,
      [],
      {},
      [[[[]]]],
      'null',
    ];
    for (const { path, body } of endpoints(bob)) {
      // An unknown user: well-formed odd passwords are real (wrong) sign-in attempts.
      const base = path === '/api/v1/authn' ? { ...body, username: 'mallory@acme.example' } : body;
      for (const key of [...Object.keys(base), 'options', 'context']) {
        for (const value of odd) {
          const r = await postJson(t, path, { ...base, [key]: value });
          const what = `${path} ${key}=${JSON.stringify(value)}`;
          expect(r.status, what).toBeLessThan(500);
          if (r.status >= 400) expect(r.body.errorCode, what).toMatch(/^E\d{7}$/);
        }
      }
    }
  });

  it('a NUL character anywhere is refused with 400 naming where it is', async () => {
    const stateToken = await passwordStep(t, bob.login, bob.password);
    const { token } = await provisionUser(t, 'carol@acme.example');
    const activation = text((await postJson(t, '/api/v1/authn', { token })).body, 'stateToken');
    const cases: [string, Record<string, unknown>, string][] = [
      ['/api/v1/authn', { username: 'bob\u0000@acme.example', password: 'whatever password' }, 'username'],
      ['/api/v1/authn', { username: bob.login, password: 'x\u0000y' }, 'password'],
      ['/api/v1/authn', { username: bob.login, password: 'x', context: { 'a\u0000': 1 } }, 'context'],
      ['/api/v1/authn/factors/uft\u0000x/verify', { stateToken, passCode: '123456' }, 'factorId'],
      [
        '/api/v1/authn/credentials/reset_password',
        { stateToken: activation, newPassword: PASSWORD, ...RECOVERY, recoveryQuestion: 'Where\u0000?' },
        'recoveryQuestion',
      ],
    ];
    for (const [path, body, where] of cases) {
      const r = await postJson(t, path.replace('\u0000', '%00'), body);
      expectOktaError(r, 400, 'E0000001');
      expect(causes(r.body).join(' '), path).toContain(where);
    }
    // Nothing was changed or counted.
    expect((await t.rt.store.repos.users.findUserById(bob.user.id))?.failed_attempts).toBe(0);
    expect((await t.rt.store.repos.users.findUserByLogin('carol@acme.example'))?.recovery_question).toBeNull();
  });

  it('a NUL character in a sign-in form gives a page, not a 500', async () => {
    const b = createBrowser(t);
    let res = await b.submit('/signin', '/signin', { username: 'bob\u0000@acme.example', password: 'x' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('text/html');
    await b.submit('/signin', '/signin', { username: bob.login, password: bob.password });
    const page = await b.get('/signin/next');
    res = await b.post('/signin/verify', { factorId: 'uft\u0000', passCode: '123456', _csrf: csrfFrom(page.payload) });
    expect(res.statusCode).toBe(400);
    expect((await b.get('/activate?token=a%00b')).statusCode).toBeLessThan(500);
  });
});
