import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Db, migrateToLatest, openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/schema.ts';
import { createStore } from '../src/db/store.ts';
import { createBrowser, csrfFrom } from './helpers/browser.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { activateUser, PASSWORD, postJson, provisionUser, RECOVERY, text } from './helpers/users.ts';

const DAY = 86_400_000;

let s: TestStack;
let db: Db;
beforeEach(async () => {
  // Our own store, so the test can read the tables as an attacker with a database dump would.
  db = openDatabase(':memory:');
  await migrateToLatest(db);
  s = await createTestStack({ store: createStore(db) });
});
afterEach(async () => {
  await s.close();
});

const kysely = (): Kysely<Database> => db.kysely;

async function emailTokens(userId: string) {
  return kysely().selectFrom('email_tokens').selectAll().where('user_id', '=', userId).execute();
}

async function getActivate(token: string) {
  const res = await s.app.inject({ method: 'GET', url: `/activate?token=${encodeURIComponent(token)}` });
  return { status: res.statusCode, html: res.payload };
}

/** The contacts a user with a dead link needs (FAQ: Market Operations sends new enrollment emails). */
function expectContacts(html: string) {
  expect(html).toContain(s.config.contacts.operationsPhone);
  expect(html).toContain(s.config.contacts.operationsEmail);
}

describe('activation link lifetime (30 days)', () => {
  it('still works 1 ms before 30 days', async () => {
    const { token } = await provisionUser(s, 'late.starter@acme.example');
    s.clock.advance(30 * DAY - 1);
    expect((await getActivate(token)).status).toBe(200);
    const r = await postJson(s, '/api/v1/authn', { token });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('PASSWORD_RESET');
  });

  it('is refused 30 days + 1 ms after it was sent, by the API and by the page', async () => {
    const { token } = await provisionUser(s, 'too.late@acme.example');
    s.clock.advance(30 * DAY + 1);
    const r = await postJson(s, '/api/v1/authn', { token });
    expect(r.status).toBe(401);
    expect(r.body.errorCode).toBe('E0000011');

    const page = await getActivate(token);
    expect(page.status).toBe(410);
    expect(page.html).toContain('no longer valid');
    expect(page.html).toContain('expire 30 days');
    expectContacts(page.html);
  });

  it('cannot be finished after expiry even if the activation was started before', async () => {
    const { user, token } = await provisionUser(s, 'slow.typist@acme.example');
    s.clock.advance(30 * DAY - 60_000);
    const started = await postJson(s, '/api/v1/authn', { token });
    expect(started.body.status).toBe('PASSWORD_RESET');
    s.clock.advance(60_001);
    const r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken: started.body.stateToken,
      newPassword: PASSWORD,
      ...RECOVERY,
    });
    expect(r.status).toBe(401);
    const after = await s.rt.store.repos.users.findUserById(user.id);
    expect(after?.password_hash).toBeNull();
    expect(after?.status).toBe('PROVISIONED');
  });
});

describe('activation link is single-use', () => {
  it('is refused by the API and the page once the account is activated', async () => {
    const { token } = await activateUser(s, 'once@acme.example');

    const again = await postJson(s, '/api/v1/authn', { token });
    expect(again.status).toBe(401);
    expect(again.body.errorCode).toBe('E0000011');
    expect(again.body).not.toHaveProperty('stateToken');

    const page = await getActivate(token);
    expect(page.status).toBe(410);
    expect(page.html).toContain('no longer valid');
    expect(page.html).toContain('already been used');
    expectContacts(page.html);
    expect(page.html).not.toContain('name="token"');
  });

  it('sets a password only once when two activations were started with the same link', async () => {
    const { user, token } = await provisionUser(s, 'twice@acme.example');
    const a = await postJson(s, '/api/v1/authn', { token });
    const b = await postJson(s, '/api/v1/authn', { token });
    expect(a.body.status).toBe('PASSWORD_RESET');
    expect(b.body.status).toBe('PASSWORD_RESET');

    const first = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken: a.body.stateToken,
      newPassword: PASSWORD,
      ...RECOVERY,
    });
    expect(first.body.status).toBe('MFA_ENROLL');
    const hashAfterFirst = (await s.rt.store.repos.users.findUserById(user.id))?.password_hash;

    // Whoever else holds the link (a forwarded email, a mail scanner) cannot overwrite the password.
    const second = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken: b.body.stateToken,
      newPassword: 'an attacker chosen passphrase',
      ...RECOVERY,
    });
    expect(second.status).toBe(401);
    expect(second.body.errorCode).toBe('E0000011');
    expect((await s.rt.store.repos.users.findUserById(user.id))?.password_hash).toBe(hashAfterFirst);
    const denied = await postJson(s, '/api/v1/authn', {
      username: 'twice@acme.example',
      password: 'an attacker chosen passphrase',
    });
    expect(denied.status).toBe(401);
  });

  it('a new enrollment email makes the previous link stop working', async () => {
    const { user, token } = await provisionUser(s, 'resent@acme.example');
    const { activationUrl } = await s.rt.accounts.resendEnrollment(user.id);
    const fresh = new URL(activationUrl).searchParams.get('token') ?? '';
    expect((await postJson(s, '/api/v1/authn', { token })).body.errorCode).toBe('E0000011');
    expect((await postJson(s, '/api/v1/authn', { token: fresh })).body.status).toBe('PASSWORD_RESET');
  });
});

describe('opening the link does not use it', () => {
  it('GET /activate (a user or a mail scanner following the link) leaves the link usable', async () => {
    const { user, token } = await provisionUser(s, 'scanned@acme.example');
    for (let i = 0; i < 3; i++) {
      const page = await getActivate(token);
      expect(page.status).toBe(200);
      expect(page.html).toContain('Activate your account');
    }
    expect((await emailTokens(user.id))[0]?.consumed_at).toBeNull();
    // Starting the activation does not use it either: only setting the password does.
    expect((await postJson(s, '/api/v1/authn', { token })).body.status).toBe('PASSWORD_RESET');
    expect((await emailTokens(user.id))[0]?.consumed_at).toBeNull();

    const browser = createBrowser(s);
    const page = await browser.get(`/activate?token=${encodeURIComponent(token)}`);
    const started = await browser.post('/activate', { token, _csrf: csrfFrom(page.payload) });
    expect(started.statusCode).toBe(303);
    expect(started.headers.location).toBe('/signin/next');
    const setup = await browser.get('/signin/next');
    expect(setup.payload).toContain('Set your password');
  });
});

describe('activation tokens are stored hashed', () => {
  it('the raw token appears nowhere in the email_tokens table, before or after use', async () => {
    const { user, token } = await provisionUser(s, 'hashed@acme.example');
    const variants = [token, encodeURIComponent(token), Buffer.from(token, 'base64url').toString('hex')];
    const scan = async () => {
      const rows = await kysely().selectFrom('email_tokens').selectAll().execute();
      expect(rows.length).toBeGreaterThan(0);
      const dump = JSON.stringify(rows);
      for (const v of variants) expect(dump).not.toContain(v);
    };
    expect(await emailTokens(user.id)).toHaveLength(1);
    await scan();
    const r = await postJson(s, '/api/v1/authn', { token });
    await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken: text(r.body, 'stateToken'),
      newPassword: PASSWORD,
      ...RECOVERY,
    });
    await scan();
    // Nor do the sign-in transactions keep it.
    const txns = JSON.stringify(await kysely().selectFrom('authn_transactions').selectAll().execute());
    for (const v of variants) expect(txns).not.toContain(v);
  });
});

describeEachBackend('one activation link, used in parallel', (backend: BackendHandle) => {
  let t: TestStack;
  beforeEach(async () => {
    t = await createTestStack({ store: backend.store() });
  });
  afterEach(async () => {
    await t.close();
  });

  it('sets exactly one password when several activations finish at once', async () => {
    const { user, token } = await provisionUser(t, 'racer@acme.example');
    const started = await Promise.all([1, 2, 3, 4].map(() => postJson(t, '/api/v1/authn', { token })));
    const finished = await Promise.all(
      started.map((r, i) =>
        postJson(t, '/api/v1/authn/credentials/reset_password', {
          stateToken: r.body.stateToken,
          newPassword: `${PASSWORD} number ${i}`,
          ...RECOVERY,
        }),
      ),
    );
    expect(finished.filter((r) => r.body.status === 'MFA_ENROLL')).toHaveLength(1);
    expect(finished.filter((r) => r.status === 401)).toHaveLength(3);
    const winner = finished.findIndex((r) => r.body.status === 'MFA_ENROLL');
    for (let i = 0; i < finished.length; i++) {
      const r = await postJson(t, '/api/v1/authn', { username: user.login, password: `${PASSWORD} number ${i}` });
      expect(r.status, `password ${i}`).toBe(i === winner ? 200 : 401);
    }
  });
});
