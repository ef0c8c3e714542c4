import { describe, expect, it } from 'vitest';
import type { NewUser } from '../src/accounts/repository.ts';
import type { FactorRow } from '../src/authn/factors/repository.ts';
import type { EmailTokenRow, OneTimeTokenRow, SessionRow, TransactionRow } from '../src/authn/token-repository.ts';
import type { Store } from '../src/db/store.ts';
import type { Firm } from '../src/firms/repository.ts';
import { createBearerSecret, createId, hashBearerSecret } from '../src/lib/tokens.ts';
import type { NewOutboxMessage } from '../src/mail/repository.ts';
import { describeEachBackend } from './helpers/databases.ts';

/**
 * The storage contract: every repository operation behaves the same on SQLite and PostgreSQL
 * (CONVENTIONS.md §4). Timestamps are injected, so nothing here sleeps.
 */

const NOW = 1_750_000_000_000;
const MINUTE = 60_000;

function newFirm(overrides: Partial<Firm> = {}): Firm {
  return { id: createId('00f'), name: `Firm ${createId('')}`, created_at: NOW, ...overrides };
}

function newUser(firmId: string, overrides: Partial<NewUser> = {}): NewUser {
  const login = `${createId('u').toLowerCase()}@example.com`;
  return {
    id: createId('00u'),
    firm_id: firmId,
    login,
    email: login,
    first_name: 'Ada',
    last_name: 'Lovelace',
    mobile_phone: null,
    primary_phone: null,
    preferences: '{}',
    status: 'ACTIVE',
    auth_mode: 'local',
    password_hash: null,
    password_changed_at: null,
    recovery_question: null,
    recovery_answer_hash: null,
    failed_attempts: 0,
    lockout_count: 0,
    locked_at: null,
    last_login_at: null,
    last_factor_type: null,
    created_at: NOW,
    activated_at: null,
    status_changed_at: NOW,
    ...overrides,
  };
}

/** A firm and one user in it; returns the user's id. */
async function seedUser(store: Store, overrides: Partial<NewUser> = {}): Promise<string> {
  const firm = newFirm();
  await store.repos.firms.createFirm(firm);
  const user = newUser(firm.id, overrides);
  await store.repos.users.createUser(user);
  return user.id;
}

function newFactor(userId: string, overrides: Partial<FactorRow> = {}): FactorRow {
  return {
    id: createId('uft'),
    user_id: userId,
    factor_type: 'token:software:totp',
    provider: 'GOOGLE',
    status: 'PENDING_ACTIVATION',
    name: 'Authenticator',
    secret_enc: 'ciphertext',
    last_used_step: null,
    created_at: NOW,
    activated_at: null,
    last_used_at: null,
    ...overrides,
  };
}

const newHash = (): string => hashBearerSecret(createBearerSecret());

function newEmailToken(userId: string, overrides: Partial<EmailTokenRow> = {}): EmailTokenRow {
  return {
    token_hash: newHash(),
    user_id: userId,
    purpose: 'activation',
    created_at: NOW,
    expires_at: NOW + 60 * MINUTE,
    consumed_at: null,
    attempts: 0,
    ...overrides,
  };
}

function newTransaction(userId: string, overrides: Partial<TransactionRow> = {}): TransactionRow {
  return {
    token_hash: newHash(),
    user_id: userId,
    flow: 'signin',
    status: 'MFA_REQUIRED',
    factor_id: null,
    email_token_hash: null,
    amr: '["pwd"]',
    attempts: 0,
    device_hash: null,
    created_at: NOW,
    expires_at: NOW + 5 * MINUTE,
    ended_at: null,
    ...overrides,
  };
}

function newOneTimeToken(userId: string, overrides: Partial<OneTimeTokenRow> = {}): OneTimeTokenRow {
  return {
    token_hash: newHash(),
    user_id: userId,
    purpose: 'session',
    amr: '["pwd","otp"]',
    created_at: NOW,
    expires_at: NOW + MINUTE,
    consumed_at: null,
    ...overrides,
  };
}

function newSession(userId: string, overrides: Partial<SessionRow> = {}): SessionRow {
  return {
    id_hash: newHash(),
    user_id: userId,
    created_at: NOW,
    last_seen_at: NOW,
    idle_expires_at: NOW + 15 * MINUTE,
    absolute_expires_at: NOW + 12 * 60 * MINUTE,
    ip: '192.0.2.1',
    user_agent: 'vitest',
    amr: '["pwd","otp"]',
    verified_at: NOW,
    revoked_at: null,
    ...overrides,
  };
}

function newMessage(overrides: Partial<NewOutboxMessage> = {}): NewOutboxMessage {
  const messageId = `<${createId('msg')}@traqs.test>`;
  return {
    message_id: messageId,
    to_address: 'ada@example.com',
    subject: 'Activate your account',
    text_body: 'text',
    html_body: '<p>html</p>',
    template: 'activation',
    user_id: null,
    next_attempt_at: NOW,
    created_at: NOW,
    ...overrides,
  };
}

describeEachBackend('firms repository', (backend) => {
  it('finds a created firm by id with the values it was created with', async () => {
    const { firms } = backend.store().repos;
    const firm = newFirm({ name: 'Acme Trading Ltd' });
    await firms.createFirm(firm);
    expect(await firms.findFirmById(firm.id)).toStrictEqual(firm);
    expect(await firms.findFirmById(createId('00f'))).toBeUndefined();
  });

  it('finds a firm by name whatever its case', async () => {
    const { firms } = backend.store().repos;
    const firm = newFirm({ name: 'Acme Trading Ltd' });
    await firms.createFirm(firm);
    expect((await firms.findFirmByName('ACME trading LTD'))?.id).toBe(firm.id);
    expect(await firms.findFirmByName('Acme Trading')).toBeUndefined();
  });

  it('refuses a second firm with the same name', async () => {
    const { firms } = backend.store().repos;
    await firms.createFirm(newFirm({ name: 'Acme Trading Ltd' }));
    await expect(firms.createFirm(newFirm({ name: 'Acme Trading Ltd' }))).rejects.toThrow();
    await expect(firms.createFirm(newFirm({ name: 'ACME TRADING LTD' }))).rejects.toThrow();
    expect(await firms.listFirms()).toHaveLength(1);
  });

  it('lists firms by name', async () => {
    const { firms } = backend.store().repos;
    for (const name of ['Gamma', 'Alpha', 'Beta']) await firms.createFirm(newFirm({ name }));
    expect((await firms.listFirms()).map((f) => f.name)).toEqual(['Alpha', 'Beta', 'Gamma']);
  });
});

describeEachBackend('users repository', (backend) => {
  it('finds a created user by id with the values it was created with', async () => {
    const store = backend.store();
    const firm = newFirm();
    await store.repos.firms.createFirm(firm);
    const user = newUser(firm.id, { mobile_phone: '+44 7700 900000', password_hash: '$argon2id$x' });
    await store.repos.users.createUser(user);
    expect(await store.repos.users.findUserById(user.id)).toStrictEqual(user);
    expect(await store.repos.users.findUserById(createId('00u'))).toBeUndefined();
  });

  it('finds a user by login whatever its case and surrounding spaces', async () => {
    const store = backend.store();
    const id = await seedUser(store, { login: 'ada.lovelace@example.com' });
    expect((await store.repos.users.findUserByLogin('  Ada.Lovelace@EXAMPLE.com '))?.id).toBe(id);
    expect(await store.repos.users.findUserByLogin('ada@example.com')).toBeUndefined();
  });

  it('refuses a second user with the same login', async () => {
    const store = backend.store();
    const firm = newFirm();
    await store.repos.firms.createFirm(firm);
    await store.repos.users.createUser(newUser(firm.id, { login: 'ada@example.com' }));
    await expect(store.repos.users.createUser(newUser(firm.id, { login: 'ada@example.com' }))).rejects.toThrow();
    expect(await store.repos.users.countUsers()).toBe(1);
  });

  it('refuses a user of a firm that does not exist', async () => {
    const { users } = backend.store().repos;
    await expect(users.createUser(newUser(createId('00f')))).rejects.toThrow();
    expect(await users.countUsers()).toBe(0);
  });

  it('lists users by login, filtered by firm and status', async () => {
    const store = backend.store();
    const [a, b] = [newFirm(), newFirm()];
    await store.repos.firms.createFirm(a);
    await store.repos.firms.createFirm(b);
    await store.repos.users.createUser(newUser(a.id, { login: 'carol@example.com' }));
    await store.repos.users.createUser(newUser(a.id, { login: 'alice@example.com', status: 'SUSPENDED' }));
    await store.repos.users.createUser(newUser(b.id, { login: 'bob@example.com' }));
    const logins = (rows: { login: string }[]) => rows.map((r) => r.login);
    expect(logins(await store.repos.users.listUsers())).toEqual([
      'alice@example.com',
      'bob@example.com',
      'carol@example.com',
    ]);
    expect(logins(await store.repos.users.listUsers({ firmId: a.id }))).toEqual([
      'alice@example.com',
      'carol@example.com',
    ]);
    expect(logins(await store.repos.users.listUsers({ status: 'ACTIVE' }))).toEqual([
      'bob@example.com',
      'carol@example.com',
    ]);
    expect(logins(await store.repos.users.listUsers({ limit: 1 }))).toEqual(['alice@example.com']);
    expect(await store.repos.users.countUsers()).toBe(3);
  });

  it('transitionStatus moves a user only from an allowed status', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const id = await seedUser(store, { status: 'ACTIVE' });
    expect(await users.transitionStatus(id, ['ACTIVE', 'RECOVERY'], 'SUSPENDED', NOW + 1)).toBe(true);
    expect(await users.findUserById(id)).toMatchObject({ status: 'SUSPENDED', status_changed_at: NOW + 1 });
    expect(await users.transitionStatus(id, ['ACTIVE', 'RECOVERY'], 'DEPROVISIONED', NOW + 2)).toBe(false);
    expect(await users.findUserById(id)).toMatchObject({ status: 'SUSPENDED', status_changed_at: NOW + 1 });
    expect(await users.transitionStatus(createId('00u'), ['ACTIVE'], 'SUSPENDED', NOW)).toBe(false);
  });

  it('activateUser activates a PROVISIONED user once, and no user in another status', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const provisioned = await seedUser(store, { status: 'PROVISIONED' });
    expect(await users.activateUser(provisioned, NOW + 1)).toBe(true);
    expect(await users.findUserById(provisioned)).toMatchObject({
      status: 'ACTIVE',
      activated_at: NOW + 1,
      status_changed_at: NOW + 1,
    });
    expect(await users.activateUser(provisioned, NOW + 2)).toBe(false);
    expect((await users.findUserById(provisioned))?.activated_at).toBe(NOW + 1);

    for (const status of ['STAGED', 'SUSPENDED', 'DEPROVISIONED', 'LOCKED_OUT'] as const) {
      const id = await seedUser(store, { status });
      expect(await users.activateUser(id, NOW)).toBe(false);
      expect((await users.findUserById(id))?.status).toBe(status);
    }
  });

  it('granting a role or assigning an app twice keeps one of each', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const id = await seedUser(store);
    await users.grantRole(id, 'user');
    await users.grantRole(id, 'admin');
    await users.grantRole(id, 'user');
    await users.assignApp(id, 'portal', NOW);
    await users.assignApp(id, 'portal', NOW + 1);
    await users.assignApp(id, 'download', NOW);
    expect(await users.listRoles(id)).toEqual(['admin', 'user']);
    expect(await users.listApps(id)).toEqual(['download', 'portal']);
    expect(await users.listRoles(await seedUser(store))).toEqual([]);
  });

  it('setPassword replaces the hash and records when', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const id = await seedUser(store, { password_hash: 'old' });
    await users.setPassword(id, 'new', NOW + 5);
    expect(await users.findUserById(id)).toMatchObject({ password_hash: 'new', password_changed_at: NOW + 5 });
  });

  it('rehashPassword replaces the hash only while the old one is still current', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const id = await seedUser(store, { password_hash: 'v1' });
    await users.setPassword(id, 'changed-by-user', NOW + 1);
    await users.rehashPassword(id, 'v1', 'v1-rehashed');
    expect((await users.findUserById(id))?.password_hash).toBe('changed-by-user');
    await users.rehashPassword(id, 'changed-by-user', 'rehashed');
    expect(await users.findUserById(id)).toMatchObject({ password_hash: 'rehashed', password_changed_at: NOW + 1 });
  });

  it('setRecoveryQuestion stores the question and the answer hash', async () => {
    const store = backend.store();
    const id = await seedUser(store);
    await store.repos.users.setRecoveryQuestion(id, 'First pet?', '$argon2id$answer');
    expect(await store.repos.users.findUserById(id)).toMatchObject({
      recovery_question: 'First pet?',
      recovery_answer_hash: '$argon2id$answer',
    });
  });

  it('recordFailedAttempt counts up; recordSuccessfulSignIn resets the counters', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const id = await seedUser(store, { lockout_count: 2 });
    expect(await users.recordFailedAttempt(id)).toBe(1);
    expect(await users.recordFailedAttempt(id)).toBe(2);
    expect(await users.recordFailedAttempt(id)).toBe(3);
    await users.recordSuccessfulSignIn(id, 'token:software:totp', NOW + 9);
    expect(await users.findUserById(id)).toMatchObject({
      failed_attempts: 0,
      lockout_count: 0,
      last_login_at: NOW + 9,
      last_factor_type: 'token:software:totp',
    });
    expect(await users.recordFailedAttempt(id)).toBe(1);
    expect(await users.recordFailedAttempt(createId('00u'))).toBe(0);
  });

  it('releaseAttempt gives back one reserved attempt and never goes below zero', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const id = await seedUser(store);
    await users.recordFailedAttempt(id);
    await users.recordFailedAttempt(id);
    await users.releaseAttempt(id);
    expect((await users.findUserById(id))?.failed_attempts).toBe(1);
    await users.releaseAttempt(id);
    await users.releaseAttempt(id);
    expect((await users.findUserById(id))?.failed_attempts).toBe(0);
  });

  it('lockUser locks a signed-in-capable user once; unlockUser only a lock old enough', async () => {
    const store = backend.store();
    const { users } = store.repos;
    const id = await seedUser(store, { status: 'ACTIVE', failed_attempts: 5 });
    expect(await users.lockUser(id, NOW + 1)).toBe(true);
    expect(await users.findUserById(id)).toMatchObject({ status: 'LOCKED_OUT', locked_at: NOW + 1, lockout_count: 1 });
    expect(await users.lockUser(id, NOW + 2)).toBe(false);
    expect((await users.findUserById(id))?.lockout_count).toBe(1);

    expect(await users.unlockUser(id, NOW + 3, NOW)).toBe(false);
    expect((await users.findUserById(id))?.status).toBe('LOCKED_OUT');
    expect(await users.unlockUser(id, NOW + 4)).toBe(true);
    expect(await users.findUserById(id)).toMatchObject({ status: 'ACTIVE', locked_at: null, failed_attempts: 0 });
    expect(await users.unlockUser(id, NOW + 5)).toBe(false);

    const suspended = await seedUser(store, { status: 'SUSPENDED' });
    expect(await users.lockUser(suspended, NOW)).toBe(false);
    expect((await users.findUserById(suspended))?.status).toBe('SUSPENDED');
  });
});

/** The columns of a user that `TokenSubject` carries. */
function subjectUser(user: NewUser) {
  const { id, firm_id, login, email, first_name, last_name, status, auth_mode } = user;
  return { id, firm_id, login, email, first_name, last_name, status, auth_mode };
}

describeEachBackend('token subject (what the token endpoint reads per grant)', (backend) => {
  it("returns the user, the firm name, and only that user's apps and facilities, sorted", async () => {
    const store = backend.store();
    const firm = newFirm({ name: 'Subject Firm' });
    await store.repos.firms.createFirm(firm);
    const user = newUser(firm.id, { password_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA' });
    const other = newUser(firm.id);
    await store.repos.users.createUser(user);
    await store.repos.users.createUser(other);
    await store.repos.users.assignApp(user.id, 'portal', NOW);
    await store.repos.users.assignApp(user.id, 'download', NOW);
    await store.repos.users.assignApp(other.id, 'portal', NOW);
    await store.repos.refdata.grantEntitlement(user.id, 'TRACE-TSY', NOW);
    await store.repos.refdata.grantEntitlement(user.id, 'ORF', NOW);
    await store.repos.refdata.grantEntitlement(other.id, 'ADF', NOW);
    // Only what tokens use: the password hash never leaves the database on a token request.
    expect(await store.repos.oauth.findTokenSubject(user.id)).toStrictEqual({
      user: subjectUser(user),
      firmName: 'Subject Firm',
      apps: ['download', 'portal'],
      facilities: ['ORF', 'TRACE-TSY'],
    });
    const none = newUser(firm.id);
    await store.repos.users.createUser(none);
    expect(await store.repos.oauth.findTokenSubject(none.id)).toStrictEqual({
      user: subjectUser(none),
      firmName: 'Subject Firm',
      apps: [],
      facilities: [],
    });
    expect(await store.repos.oauth.findTokenSubject(createId('00u'))).toBeUndefined();
  });

  it('keeps facility names whole, whatever characters they hold', async () => {
    const store = backend.store();
    const id = await seedUser(store);
    const odd = ['a,b', 'quote"d', 'back\\slash', 'ünï', '[1]'];
    for (const f of odd) await store.repos.refdata.grantEntitlement(id, f, NOW);
    expect((await store.repos.oauth.findTokenSubject(id))?.facilities).toStrictEqual([...odd].sort());
  });

  describe('a refresh token read with its grant, user and description', () => {
    /** A user with apps, a Grant and a RefreshToken of it as the adapter stores them, and its description. */
    async function seedRefreshToken(
      store: Store,
      options: { grantExpiresAt?: number | null; describe?: boolean } = {},
    ) {
      const firm = newFirm();
      await store.repos.firms.createFirm(firm);
      const user = newUser(firm.id);
      await store.repos.users.createUser(user);
      await store.repos.users.assignApp(user.id, 'download', NOW);
      await store.repos.refdata.grantEntitlement(user.id, 'ORF', NOW);
      const grantId = createBearerSecret();
      const tokenHash = hashBearerSecret(createBearerSecret());
      const grant = {
        model: 'Grant',
        id_hash: hashBearerSecret(grantId),
        payload: '{"kind":"Grant"}',
        grant_id: null,
        uid: null,
        user_code: null,
        account_id: user.id,
        expires_at: options.grantExpiresAt === undefined ? NOW + 60 * MINUTE : options.grantExpiresAt,
        consumed_at: null,
      };
      const token = {
        model: 'RefreshToken',
        id_hash: tokenHash,
        payload: '{"kind":"RefreshToken"}',
        grant_id: grantId,
        uid: null,
        user_code: null,
        account_id: user.id,
        expires_at: NOW + 30 * MINUTE,
        consumed_at: null,
      };
      await store.repos.oauth.upsertOidcModel(grant);
      await store.repos.oauth.upsertOidcModel(token);
      if (options.describe !== false) {
        await store.repos.apiTokens.insert({
          id_hash: tokenHash,
          user_id: user.id,
          client_id: 'traqs-api',
          grant_id: grantId,
          label: 'Refresh token',
          created_at: NOW,
          expires_at: NOW + 30 * MINUTE,
          last_used_at: NOW - MINUTE,
          last_used_ip: '192.0.2.7',
          reminder_sent_at: null,
          revoked_at: null,
          revoked_reason: null,
        });
      }
      return { firm, user, grantId, grant, token, tokenHash };
    }

    it('returns the token, its grant (keyed by the raw grant id), its subject and its description', async () => {
      const store = backend.store();
      const { firm, user, grantId, grant, token, tokenHash } = await seedRefreshToken(store);
      expect(await store.repos.oauth.readRefreshGrant(tokenHash, NOW)).toStrictEqual({
        token,
        grant: { id: grantId, row: grant },
        subject: { user: subjectUser(user), firmName: firm.name, apps: ['download'], facilities: ['ORF'] },
        described: {
          id_hash: tokenHash,
          expires_at: NOW + 30 * MINUTE,
          revoked_at: null,
          last_used_at: NOW - MINUTE,
          last_used_ip: '192.0.2.7',
        },
      });
    });

    it('reads the grant as missing once it has expired or is gone, and a token without description as such', async () => {
      const store = backend.store();
      const expired = await seedRefreshToken(store, { grantExpiresAt: NOW - 1, describe: false });
      const read = await store.repos.oauth.readRefreshGrant(expired.tokenHash, NOW);
      expect(read?.grant).toStrictEqual({ id: expired.grantId, row: null });
      expect(read?.described).toBeNull();
      expect(read?.subject?.user.id).toBe(expired.user.id);

      const gone = await seedRefreshToken(store, { grantExpiresAt: null });
      expect((await store.repos.oauth.readRefreshGrant(gone.tokenHash, NOW))?.grant?.row).toStrictEqual(gone.grant);
      await store.repos.oauth.destroyOidcModel('Grant', gone.grant.id_hash);
      expect((await store.repos.oauth.readRefreshGrant(gone.tokenHash, NOW))?.grant).toStrictEqual({
        id: gone.grantId,
        row: null,
      });
    });

    it('finds nothing for an expired, unknown or other-model id, and no subject once the user is gone', async () => {
      const store = backend.store();
      const { grant, tokenHash, token, user } = await seedRefreshToken(store);
      expect(await store.repos.oauth.readRefreshGrant(tokenHash, NOW + 30 * MINUTE)).toBeUndefined();
      expect(await store.repos.oauth.readRefreshGrant(hashBearerSecret('unknown'), NOW)).toBeUndefined();
      expect(await store.repos.oauth.readRefreshGrant(grant.id_hash, NOW)).toBeUndefined();
      await store.repos.oauth.upsertOidcModel({
        ...token,
        id_hash: hashBearerSecret('orphan'),
        account_id: createId('00u'),
      });
      const orphan = await store.repos.oauth.readRefreshGrant(hashBearerSecret('orphan'), NOW);
      expect(orphan?.subject).toBeNull();
      expect(orphan?.token.account_id).not.toBe(user.id);
    });
  });
});

describeEachBackend('factors repository', (backend) => {
  it('finds a factor only through the user who owns it', async () => {
    const store = backend.store();
    const { factors } = store.repos;
    const owner = await seedUser(store);
    const other = await seedUser(store);
    const factor = newFactor(owner);
    await factors.createFactor(factor);
    expect(await factors.findFactor(owner, factor.id)).toStrictEqual(factor);
    expect(await factors.findFactor(other, factor.id)).toBeUndefined();
  });

  it('lists a user’s factors oldest first', async () => {
    const store = backend.store();
    const { factors } = store.repos;
    const id = await seedUser(store);
    const newer = newFactor(id, { created_at: NOW + 10 });
    const older = newFactor(id, { created_at: NOW });
    await factors.createFactor(newer);
    await factors.createFactor(older);
    await factors.createFactor(newFactor(await seedUser(store)));
    expect((await factors.listFactors(id)).map((f) => f.id)).toEqual([older.id, newer.id]);
  });

  it('lists a user’s active factors oldest first, without pending enrollments', async () => {
    const store = backend.store();
    const { factors } = store.repos;
    const id = await seedUser(store);
    const newer = newFactor(id, { status: 'ACTIVE', created_at: NOW + 10 });
    const older = newFactor(id, { status: 'ACTIVE', created_at: NOW });
    await factors.createFactor(newer);
    await factors.createFactor(newFactor(id, { created_at: NOW + 5 }));
    await factors.createFactor(older);
    await factors.createFactor(newFactor(await seedUser(store), { status: 'ACTIVE' }));
    expect((await factors.listActiveFactors(id)).map((f) => f.id)).toEqual([older.id, newer.id]);
  });

  it('activateFactor activates a pending factor only once', async () => {
    const store = backend.store();
    const { factors } = store.repos;
    const userId = await seedUser(store);
    const factor = newFactor(userId);
    await factors.createFactor(factor);
    expect(await factors.activateFactor(factor.id, 1000, NOW + 1)).toBe(true);
    expect(await factors.findFactor(userId, factor.id)).toMatchObject({
      status: 'ACTIVE',
      activated_at: NOW + 1,
      last_used_at: NOW + 1,
      last_used_step: 1000,
    });
    expect(await factors.activateFactor(factor.id, 2000, NOW + 2)).toBe(false);
    expect(await factors.findFactor(userId, factor.id)).toMatchObject({ activated_at: NOW + 1, last_used_step: 1000 });
  });

  it('markTotpStepUsed refuses the same or an earlier step (RFC 6238 §5.2 replay)', async () => {
    const store = backend.store();
    const { factors } = store.repos;
    const userId = await seedUser(store);
    const factor = newFactor(userId, { status: 'ACTIVE' });
    await factors.createFactor(factor);
    expect(await factors.markTotpStepUsed(factor.id, 57_000_000, NOW)).toBe(true);
    expect(await factors.markTotpStepUsed(factor.id, 57_000_000, NOW + 1)).toBe(false);
    expect(await factors.markTotpStepUsed(factor.id, 56_999_999, NOW + 2)).toBe(false);
    expect(await factors.findFactor(userId, factor.id)).toMatchObject({
      last_used_step: 57_000_000,
      last_used_at: NOW,
    });
    expect(await factors.markTotpStepUsed(factor.id, 57_000_001, NOW + 3)).toBe(true);
    expect(await factors.findFactor(userId, factor.id)).toMatchObject({
      last_used_step: 57_000_001,
      last_used_at: NOW + 3,
    });
  });

  it('markTotpStepUsed after activation refuses the activation code’s step', async () => {
    const store = backend.store();
    const { factors } = store.repos;
    const factor = newFactor(await seedUser(store));
    await factors.createFactor(factor);
    await factors.activateFactor(factor.id, 500, NOW);
    expect(await factors.markTotpStepUsed(factor.id, 500, NOW)).toBe(false);
    expect(await factors.markTotpStepUsed(factor.id, 501, NOW)).toBe(true);
  });

  it('deletePendingFactors drops unconfirmed enrollments and keeps active ones', async () => {
    const store = backend.store();
    const { factors } = store.repos;
    const id = await seedUser(store);
    const otherId = await seedUser(store);
    const active = newFactor(id, { status: 'ACTIVE' });
    const othersPending = newFactor(otherId);
    await factors.createFactor(active);
    await factors.createFactor(newFactor(id));
    await factors.createFactor(othersPending);
    await factors.deletePendingFactors(id);
    expect((await factors.listFactors(id)).map((f) => f.id)).toEqual([active.id]);
    expect((await factors.listFactors(otherId)).map((f) => f.id)).toEqual([othersPending.id]);
  });
});

describeEachBackend('email tokens', (backend) => {
  it('consumeEmailToken returns the user once; the link cannot be used twice', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const userId = await seedUser(store);
    const token = newEmailToken(userId);
    await tokens.createEmailToken(token);
    expect(await tokens.consumeEmailToken(token.token_hash, 'activation', NOW + 1)).toBe(userId);
    expect(await tokens.consumeEmailToken(token.token_hash, 'activation', NOW + 2)).toBeUndefined();
    expect(await tokens.findEmailToken(token.token_hash)).toStrictEqual({ ...token, consumed_at: NOW + 1 });
  });

  it('consumeEmailToken refuses an expired token', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const token = newEmailToken(await seedUser(store), { expires_at: NOW + MINUTE });
    await tokens.createEmailToken(token);
    expect(await tokens.consumeEmailToken(token.token_hash, 'activation', NOW + MINUTE)).toBeUndefined();
    expect((await tokens.findEmailToken(token.token_hash))?.consumed_at).toBeNull();
  });

  it('consumeEmailToken refuses a token of another purpose without using it up', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const userId = await seedUser(store);
    const token = newEmailToken(userId, { purpose: 'recovery' });
    await tokens.createEmailToken(token);
    expect(await tokens.consumeEmailToken(token.token_hash, 'activation', NOW)).toBeUndefined();
    expect(await tokens.consumeEmailToken(token.token_hash, 'recovery', NOW)).toBe(userId);
    expect(await tokens.consumeEmailToken(newHash(), 'recovery', NOW)).toBeUndefined();
  });

  it('revokeEmailTokens invalidates the user’s outstanding links of that purpose only', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const userId = await seedUser(store);
    const otherUserId = await seedUser(store);
    const old1 = newEmailToken(userId, { purpose: 'recovery' });
    const old2 = newEmailToken(userId, { purpose: 'recovery' });
    const activation = newEmailToken(userId, { purpose: 'activation' });
    const othersRecovery = newEmailToken(otherUserId, { purpose: 'recovery' });
    for (const t of [old1, old2, activation, othersRecovery]) await tokens.createEmailToken(t);
    await tokens.revokeEmailTokens(userId, 'recovery', NOW + 1);
    expect(await tokens.consumeEmailToken(old1.token_hash, 'recovery', NOW + 2)).toBeUndefined();
    expect(await tokens.consumeEmailToken(old2.token_hash, 'recovery', NOW + 2)).toBeUndefined();
    expect(await tokens.consumeEmailToken(activation.token_hash, 'activation', NOW + 2)).toBe(userId);
    expect(await tokens.consumeEmailToken(othersRecovery.token_hash, 'recovery', NOW + 2)).toBe(otherUserId);
  });
});

describeEachBackend('authentication transactions', (backend) => {
  it('findTransaction returns an open, unexpired transaction only', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const tx = newTransaction(await seedUser(store), { expires_at: NOW + MINUTE });
    await tokens.createTransaction(tx);
    expect(await tokens.findTransaction(tx.token_hash, NOW)).toStrictEqual(tx);
    expect(await tokens.findTransaction(tx.token_hash, NOW + MINUTE)).toBeUndefined();
    expect(await tokens.findTransaction(newHash(), NOW)).toBeUndefined();
  });

  it('advanceTransaction is a compare-and-set on the status', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const tx = newTransaction(await seedUser(store), { status: 'MFA_REQUIRED' });
    await tokens.createTransaction(tx);
    const factorId = createId('uft');
    expect(
      await tokens.advanceTransaction(tx.token_hash, 'MFA_REQUIRED', { status: 'MFA_CHALLENGE', factorId }, NOW),
    ).toBe(true);
    expect(await tokens.advanceTransaction(tx.token_hash, 'MFA_REQUIRED', { status: 'SUCCESS' }, NOW)).toBe(false);
    expect(await tokens.findTransaction(tx.token_hash, NOW)).toMatchObject({
      status: 'MFA_CHALLENGE',
      factor_id: factorId,
      amr: '["pwd"]',
    });
    expect(
      await tokens.advanceTransaction(
        tx.token_hash,
        'MFA_CHALLENGE',
        { status: 'SUCCESS', amr: ['pwd', 'otp'], expiresAt: NOW + 2 * MINUTE },
        NOW,
      ),
    ).toBe(true);
    expect(await tokens.findTransaction(tx.token_hash, NOW)).toMatchObject({
      status: 'SUCCESS',
      factor_id: factorId,
      amr: '["pwd","otp"]',
      expires_at: NOW + 2 * MINUTE,
    });
  });

  it('advanceTransaction refuses an expired or ended transaction', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const userId = await seedUser(store);
    const expiring = newTransaction(userId, { expires_at: NOW + MINUTE });
    const ending = newTransaction(userId);
    await tokens.createTransaction(expiring);
    await tokens.createTransaction(ending);
    expect(await tokens.advanceTransaction(expiring.token_hash, 'MFA_REQUIRED', { status: 'X' }, NOW + MINUTE)).toBe(
      false,
    );
    expect(await tokens.endTransaction(ending.token_hash, NOW)).toBe(true);
    expect(await tokens.endTransaction(ending.token_hash, NOW + 1)).toBe(false);
    expect(await tokens.advanceTransaction(ending.token_hash, 'MFA_REQUIRED', { status: 'X' }, NOW)).toBe(false);
    expect(await tokens.findTransaction(ending.token_hash, NOW)).toBeUndefined();
  });

  it('endUserTransactions ends every open transaction of that user only', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const userId = await seedUser(store);
    const otherId = await seedUser(store);
    const mine = [newTransaction(userId), newTransaction(userId, { status: 'PASSWORD_RESET' })];
    const theirs = newTransaction(otherId);
    for (const t of [...mine, theirs]) await tokens.createTransaction(t);
    await tokens.endUserTransactions(userId, NOW);
    for (const t of mine) expect(await tokens.findTransaction(t.token_hash, NOW)).toBeUndefined();
    expect(await tokens.findTransaction(theirs.token_hash, NOW)).toBeDefined();
  });
});

describeEachBackend('one-time tokens', (backend) => {
  it('consumeOneTimeToken returns the token once', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const token = newOneTimeToken(await seedUser(store));
    await tokens.createOneTimeToken(token);
    expect(await tokens.consumeOneTimeToken(token.token_hash, 'session', NOW + 1)).toStrictEqual({
      ...token,
      consumed_at: NOW + 1,
    });
    expect(await tokens.consumeOneTimeToken(token.token_hash, 'session', NOW + 2)).toBeUndefined();
  });

  it('consumeOneTimeToken refuses an expired token or another purpose', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const token = newOneTimeToken(await seedUser(store), { expires_at: NOW + MINUTE });
    await tokens.createOneTimeToken(token);
    expect(await tokens.consumeOneTimeToken(token.token_hash, 'download', NOW)).toBeUndefined();
    expect(await tokens.consumeOneTimeToken(token.token_hash, 'session', NOW + MINUTE)).toBeUndefined();
    expect(await tokens.consumeOneTimeToken(token.token_hash, 'session', NOW + MINUTE - 1)).toBeDefined();
  });
});

describeEachBackend('sessions', (backend) => {
  it('a session is active until its idle timeout', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const session = newSession(await seedUser(store), { idle_expires_at: NOW + 15 * MINUTE });
    await tokens.createSession(session);
    expect(await tokens.findActiveSession(session.id_hash, NOW + 15 * MINUTE - 1)).toStrictEqual(session);
    expect(await tokens.findActiveSession(session.id_hash, NOW + 15 * MINUTE)).toBeUndefined();
  });

  it('touchSession slides the idle timeout, but never past the absolute expiry', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const session = newSession(await seedUser(store), {
      idle_expires_at: NOW + 15 * MINUTE,
      absolute_expires_at: NOW + 20 * MINUTE,
    });
    await tokens.createSession(session);
    await tokens.touchSession(session.id_hash, NOW + 14 * MINUTE, NOW + 29 * MINUTE);
    expect(await tokens.findActiveSession(session.id_hash, NOW + 16 * MINUTE)).toMatchObject({
      last_seen_at: NOW + 14 * MINUTE,
      idle_expires_at: NOW + 29 * MINUTE,
    });
    expect(await tokens.findActiveSession(session.id_hash, NOW + 20 * MINUTE)).toBeUndefined();
  });

  it('a revoked session is no longer active', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const session = newSession(await seedUser(store));
    await tokens.createSession(session);
    await tokens.revokeSession(session.id_hash, NOW + 1);
    expect(await tokens.findActiveSession(session.id_hash, NOW + 2)).toBeUndefined();
  });

  it('revokeUserSessions revokes all of the user’s sessions but the one kept', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const userId = await seedUser(store);
    const otherId = await seedUser(store);
    const [current, a, b] = [newSession(userId), newSession(userId), newSession(userId)];
    const theirs = newSession(otherId);
    for (const s of [current, a, b, theirs]) await tokens.createSession(s);
    await tokens.revokeSession(b.id_hash, NOW);
    expect(await tokens.revokeUserSessions(userId, NOW + 1, current.id_hash)).toBe(1);
    expect(await tokens.findActiveSession(current.id_hash, NOW + 2)).toBeDefined();
    expect(await tokens.findActiveSession(a.id_hash, NOW + 2)).toBeUndefined();
    expect(await tokens.findActiveSession(theirs.id_hash, NOW + 2)).toBeDefined();
    expect(await tokens.revokeUserSessions(userId, NOW + 3)).toBe(1);
    expect(await tokens.findActiveSession(current.id_hash, NOW + 4)).toBeUndefined();
  });

  it('listActiveSessions lists the user’s live sessions, most recently seen first', async () => {
    const store = backend.store();
    const { tokens } = store.repos;
    const userId = await seedUser(store);
    const older = newSession(userId, { last_seen_at: NOW });
    const newer = newSession(userId, { last_seen_at: NOW + 5 });
    const revoked = newSession(userId);
    const idle = newSession(userId, { idle_expires_at: NOW + 10 });
    const pastAbsolute = newSession(userId, { absolute_expires_at: NOW + 10 });
    for (const s of [older, newer, revoked, idle, pastAbsolute, newSession(await seedUser(store))]) {
      await tokens.createSession(s);
    }
    await tokens.revokeSession(revoked.id_hash, NOW);
    expect((await tokens.listActiveSessions(userId, NOW + 10)).map((s) => s.id_hash)).toEqual([
      newer.id_hash,
      older.id_hash,
    ]);
  });
});

describeEachBackend('mail outbox', (backend) => {
  it('enqueueMessage stores a pending message and returns its id', async () => {
    const { outbox } = backend.store().repos;
    const message = newMessage();
    const id = await outbox.enqueueMessage(message);
    expect(await outbox.findMessage(id)).toStrictEqual({
      ...message,
      id,
      status: 'pending',
      attempts: 0,
      lease_until: null,
      last_error: null,
      sent_at: null,
    });
  });

  it('claimDueMessages leases due messages once, counting an attempt, and leaves the rest', async () => {
    const { outbox } = backend.store().repos;
    const due = await outbox.enqueueMessage(newMessage({ next_attempt_at: NOW }));
    const overdue = await outbox.enqueueMessage(newMessage({ next_attempt_at: NOW - 1 }));
    await outbox.enqueueMessage(newMessage({ next_attempt_at: NOW + MINUTE }));
    const claimed = await outbox.claimDueMessages(NOW, MINUTE, 10);
    expect(claimed.map((m) => m.id).sort((x, y) => x - y)).toEqual([due, overdue]);
    for (const m of claimed) expect(m).toMatchObject({ status: 'sending', lease_until: NOW + MINUTE, attempts: 1 });
    expect(await outbox.claimDueMessages(NOW + 1, MINUTE, 10)).toEqual([]);
  });

  it('claimDueMessages takes at most `limit` messages, oldest first', async () => {
    const { outbox } = backend.store().repos;
    for (let i = 0; i < 5; i++) await outbox.enqueueMessage(newMessage({ subject: `m${i}` }));
    const first = await outbox.claimDueMessages(NOW, MINUTE, 2);
    expect(first.map((m) => m.subject).sort()).toEqual(['m0', 'm1']);
    const rest = await outbox.claimDueMessages(NOW, MINUTE, 10);
    expect(rest.map((m) => m.subject).sort()).toEqual(['m2', 'm3', 'm4']);
  });

  it('a message whose lease expired (worker died) is claimed again', async () => {
    const { outbox } = backend.store().repos;
    const id = await outbox.enqueueMessage(newMessage());
    await outbox.claimDueMessages(NOW, MINUTE, 10);
    expect(await outbox.claimDueMessages(NOW + MINUTE - 1, MINUTE, 10)).toEqual([]);
    const reclaimed = await outbox.claimDueMessages(NOW + MINUTE, MINUTE, 10);
    expect(reclaimed.map((m) => m.id)).toEqual([id]);
    expect(reclaimed[0]).toMatchObject({ lease_until: NOW + 2 * MINUTE, attempts: 2 });
  });

  it('a sent message is never claimed again', async () => {
    const { outbox } = backend.store().repos;
    const id = await outbox.enqueueMessage(newMessage());
    const [claimed] = await outbox.claimDueMessages(NOW, MINUTE, 10);
    expect(await outbox.markSent(id, NOW + 1, claimed?.lease_until ?? -1)).toBe(true);
    expect(await outbox.findMessage(id)).toMatchObject({ status: 'sent', sent_at: NOW + 1, lease_until: null });
    expect(await outbox.claimDueMessages(NOW + 365 * 24 * 60 * MINUTE, MINUTE, 10)).toEqual([]);
  });

  it('markFailed schedules a retry, or gives up for good', async () => {
    const { outbox } = backend.store().repos;
    const id = await outbox.enqueueMessage(newMessage());
    const [claimed] = await outbox.claimDueMessages(NOW, MINUTE, 10);
    const retryAt = NOW + 5 * MINUTE;
    expect(await outbox.markFailed(id, `421 try later ${'x'.repeat(2000)}`, retryAt, claimed?.lease_until ?? -1)).toBe(
      true,
    );
    const failed = await outbox.findMessage(id);
    expect(failed).toMatchObject({ status: 'pending', attempts: 1, lease_until: null, next_attempt_at: retryAt });
    expect(failed?.last_error?.startsWith('421 try later')).toBe(true);
    expect(failed?.last_error).toHaveLength(1000);
    expect(await outbox.claimDueMessages(retryAt - 1, MINUTE, 10)).toEqual([]);
    const [retried] = await outbox.claimDueMessages(retryAt, MINUTE, 10);
    expect(retried).toMatchObject({ id, attempts: 2 });

    expect(await outbox.markFailed(id, '550 no such user', null, retried?.lease_until ?? -1)).toBe(true);
    expect(await outbox.findMessage(id)).toMatchObject({
      status: 'failed',
      attempts: 2,
      last_error: '550 no such user',
    });
    expect(await outbox.claimDueMessages(NOW + 365 * 24 * 60 * MINUTE, MINUTE, 10)).toEqual([]);
  });

  it('a worker whose lease ran out cannot overwrite the outcome of the worker that took over', async () => {
    const { outbox } = backend.store().repos;
    const id = await outbox.enqueueMessage(newMessage());
    const [slow] = await outbox.claimDueMessages(NOW, MINUTE, 10);
    const [takeover] = await outbox.claimDueMessages(NOW + MINUTE, MINUTE, 10);
    expect(await outbox.markSent(id, NOW + MINUTE + 1, takeover?.lease_until ?? -1)).toBe(true);
    expect(await outbox.markFailed(id, 'timeout', NOW + 2 * MINUTE, slow?.lease_until ?? -1)).toBe(false);
    expect(await outbox.markSent(id, NOW + 2 * MINUTE, slow?.lease_until ?? -1)).toBe(false);
    expect(await outbox.findMessage(id)).toMatchObject({ status: 'sent', sent_at: NOW + MINUTE + 1 });
  });

  it('listRecentMessages lists newest first, filtered by recipient', async () => {
    const { outbox } = backend.store().repos;
    await outbox.enqueueMessage(newMessage({ to_address: 'ada@example.com', subject: 'first' }));
    await outbox.enqueueMessage(newMessage({ to_address: 'bob@example.com', subject: 'second' }));
    await outbox.enqueueMessage(newMessage({ to_address: 'ada@example.com', subject: 'third' }));
    expect((await outbox.listRecentMessages(10)).map((m) => m.subject)).toEqual(['third', 'second', 'first']);
    expect((await outbox.listRecentMessages(1)).map((m) => m.subject)).toEqual(['third']);
    expect((await outbox.listRecentMessages(10, 'Ada@Example.com')).map((m) => m.subject)).toEqual(['third', 'first']);
  });

  it('refuses a second message with the same Message-ID', async () => {
    const { outbox } = backend.store().repos;
    const message = newMessage();
    await outbox.enqueueMessage(message);
    await expect(outbox.enqueueMessage(message)).rejects.toThrow();
    expect(await outbox.listRecentMessages(10)).toHaveLength(1);
  });
});

describeEachBackend('rate-limit counters', (backend) => {
  it('counts in fixed windows per key, restarting with the first request after a window ends', async () => {
    const { rateLimits } = backend.store().repos;
    const key = hashBearerSecret('idp 198.51.100.9');
    const other = hashBearerSecret('idp 198.51.100.10');
    expect(await rateLimits.increment(key, NOW, MINUTE)).toStrictEqual({ count: 1, windowStart: NOW });
    expect(await rateLimits.increment(key, NOW + 1000, MINUTE)).toStrictEqual({ count: 2, windowStart: NOW });
    expect(await rateLimits.increment(other, NOW + 1000, MINUTE)).toStrictEqual({ count: 1, windowStart: NOW + 1000 });
    expect(await rateLimits.increment(key, NOW + MINUTE - 1, MINUTE)).toStrictEqual({ count: 3, windowStart: NOW });
    expect(await rateLimits.increment(key, NOW + MINUTE, MINUTE)).toStrictEqual({
      count: 1,
      windowStart: NOW + MINUTE,
    });
    expect(await rateLimits.increment(key, NOW + MINUTE + 5, MINUTE)).toStrictEqual({
      count: 2,
      windowStart: NOW + MINUTE,
    });
  });

  it('housekeeping deletes only counters whose window started before the cut-off', async () => {
    const { rateLimits } = backend.store().repos;
    const old = hashBearerSecret('old');
    const live = hashBearerSecret('live');
    await rateLimits.increment(old, NOW, MINUTE);
    await rateLimits.increment(old, NOW + 10, MINUTE);
    await rateLimits.increment(live, NOW + MINUTE, MINUTE);
    expect(await rateLimits.deleteStartedBefore(NOW + MINUTE)).toBe(1);
    // The deleted counter starts again at 1; the live one goes on.
    expect((await rateLimits.increment(old, NOW + MINUTE + 1, MINUTE)).count).toBe(1);
    expect((await rateLimits.increment(live, NOW + MINUTE + 1, MINUTE)).count).toBe(2);
  });
});

describeEachBackend('audit log', (backend) => {
  it('lists recorded events newest first, filtered by actor, target and action', async () => {
    const { audit } = backend.store().repos;
    const base = { ip: '192.0.2.1', userAgent: 'vitest', outcome: 'success' } as const;
    await audit.recordEvent({ ...base, at: NOW, actorId: 'admin1', action: 'user.create', targetId: 'u1' });
    await audit.recordEvent({ ...base, at: NOW + 1, actorId: 'u1', action: 'user.session.start', targetId: 'u1' });
    await audit.recordEvent({
      ...base,
      at: NOW + 2,
      actorId: 'admin1',
      action: 'user.suspend',
      targetId: 'u2',
      outcome: 'denied',
      details: { reason: 'last admin' },
    });
    const actions = (rows: { action: string }[]) => rows.map((r) => r.action);
    expect(actions(await audit.listEvents())).toEqual(['user.suspend', 'user.session.start', 'user.create']);
    expect(actions(await audit.listEvents({ actorId: 'admin1' }))).toEqual(['user.suspend', 'user.create']);
    expect(actions(await audit.listEvents({ targetId: 'u1' }))).toEqual(['user.session.start', 'user.create']);
    expect(actions(await audit.listEvents({ action: 'user.create' }))).toEqual(['user.create']);
    expect(actions(await audit.listEvents({ limit: 1 }))).toEqual(['user.suspend']);
    const [latest] = await audit.listEvents({ limit: 1 });
    expect(latest).toMatchObject({ at: NOW + 2, outcome: 'denied', ip: '192.0.2.1', user_agent: 'vitest' });
    expect(JSON.parse(latest?.details ?? '')).toEqual({ reason: 'last admin' });
  });

  it('keeps at most 512 characters of a user agent', async () => {
    const { audit } = backend.store().repos;
    await audit.recordEvent({
      at: NOW,
      actorId: null,
      action: 'user.session.start',
      targetId: null,
      outcome: 'failure',
      ip: null,
      userAgent: 'A'.repeat(2000),
    });
    const [event] = await audit.listEvents();
    expect(event?.user_agent).toHaveLength(512);
    expect(event?.details).toBe('{}');
  });
});

describeEachBackend('settings', (backend) => {
  it('putSettingIfAbsent writes a key only once', async () => {
    const { settings } = backend.store().repos;
    expect(await settings.getSetting('bootstrap.admin')).toBeUndefined();
    expect(await settings.putSettingIfAbsent('bootstrap.admin', 'first')).toBe(true);
    expect(await settings.putSettingIfAbsent('bootstrap.admin', 'second')).toBe(false);
    expect(await settings.getSetting('bootstrap.admin')).toBe('first');
  });
});

describeEachBackend('store transactions', (backend) => {
  it('a failed transaction leaves nothing behind, mail included', async () => {
    const store = backend.store();
    const firm = newFirm();
    await expect(
      store.transaction(async (repos) => {
        await repos.firms.createFirm(firm);
        await repos.users.createUser(newUser(firm.id));
        await repos.outbox.enqueueMessage(newMessage());
        await repos.settings.putSettingIfAbsent('k', 'v');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.repos.firms.findFirmById(firm.id)).toBeUndefined();
    expect(await store.repos.users.countUsers()).toBe(0);
    expect(await store.repos.outbox.listRecentMessages(10)).toEqual([]);
    expect(await store.repos.settings.getSetting('k')).toBeUndefined();
  });

  it('a transaction that fails on a constraint undoes its earlier writes', async () => {
    const store = backend.store();
    const existing = await seedUser(store, { login: 'taken@example.com' });
    const firm = newFirm();
    await expect(
      store.transaction(async (repos) => {
        await repos.firms.createFirm(firm);
        await repos.users.transitionStatus(existing, ['ACTIVE'], 'SUSPENDED', NOW + 1);
        await repos.users.createUser(newUser(firm.id, { login: 'taken@example.com' }));
      }),
    ).rejects.toThrow();
    expect(await store.repos.firms.findFirmById(firm.id)).toBeUndefined();
    expect((await store.repos.users.findUserById(existing))?.status).toBe('ACTIVE');
  });

  it('a successful transaction commits every write and returns its result', async () => {
    const store = backend.store();
    const firm = newFirm();
    const result = await store.transaction(async (repos) => {
      await repos.firms.createFirm(firm);
      await repos.outbox.enqueueMessage(newMessage());
      return 'done';
    });
    expect(result).toBe('done');
    expect(await store.repos.firms.findFirmById(firm.id)).toBeDefined();
    expect(await store.repos.outbox.listRecentMessages(10)).toHaveLength(1);
  });
});

/**
 * Races: each operation is fired in parallel from two independent stores (two nodes), so on
 * PostgreSQL the calls really run on separate connections at once.
 */
describeEachBackend('atomicity under parallel requests', (backend) => {
  const nodes = (): [Store, Store] => [backend.store(), backend.connectAgain()];

  it('20 parallel recordFailedAttempt calls return the distinct counts 1..20 (lockout race)', async () => {
    const [a, b] = nodes();
    const id = await seedUser(a);
    const counts = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).repos.users.recordFailedAttempt(id)),
    );
    expect([...counts].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await a.repos.users.findUserById(id))?.failed_attempts).toBe(20);
  });

  it('exclusive: work under one name never overlaps across two nodes, and a failure releases it', async () => {
    const [a, b] = nodes();
    const name = `first-start-${createId('')}`;
    const events: string[] = [];
    const work =
      (who: string, fail = false) =>
      async () => {
        events.push(`${who} in`);
        await new Promise((resolve) => setTimeout(resolve, 30));
        events.push(`${who} out`);
        if (fail) throw new Error(`${who} failed`);
        return who;
      };
    const results = await Promise.allSettled([
      a.exclusive(name, work('a1', true)),
      b.exclusive(name, work('b1')),
      a.exclusive(name, work('a2')),
      b.exclusive(name, work('b2')),
    ]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason)))).toEqual([
      'Error: a1 failed',
      'b1',
      'a2',
      'b2',
    ]);
    // Each "in" is followed by its own "out" before anyone else comes in.
    for (let i = 0; i < events.length; i += 2) {
      expect(events[i + 1]).toBe(events[i]?.replace(' in', ' out'));
    }
    expect(events).toHaveLength(8);
  });

  it('20 parallel rate-limit increments from two nodes return the distinct counts 1..20', async () => {
    const [a, b] = nodes();
    const key = hashBearerSecret(`ip ${createId('')}`);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).repos.rateLimits.increment(key, NOW + i, MINUTE)),
    );
    expect(results.map((r) => r.count).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(results.map((r) => r.windowStart)).size).toBe(1);
  });

  it('10 parallel consumeEmailToken calls on one link: exactly one succeeds', async () => {
    const [a, b] = nodes();
    const userId = await seedUser(a);
    const token = newEmailToken(userId);
    await a.repos.tokens.createEmailToken(token);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? b : a).repos.tokens.consumeEmailToken(token.token_hash, 'activation', NOW + i),
      ),
    );
    expect(results.filter((r) => r !== undefined)).toEqual([userId]);
  });

  it('10 parallel markTotpStepUsed calls with one step: exactly one is accepted (TOTP replay race)', async () => {
    const [a, b] = nodes();
    const factor = newFactor(await seedUser(a), { status: 'ACTIVE' });
    await a.repos.factors.createFactor(factor);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? b : a).repos.factors.markTotpStepUsed(factor.id, 1234, NOW)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('two nodes claiming the outbox in parallel never get the same message', async () => {
    const [a, b] = nodes();
    const total = 60;
    for (let i = 0; i < total; i++) await a.repos.outbox.enqueueMessage(newMessage());
    const drain = async (node: Store): Promise<number[]> => {
      const ids: number[] = [];
      for (;;) {
        const batch = await node.repos.outbox.claimDueMessages(NOW, MINUTE, 5);
        if (batch.length === 0) return ids;
        ids.push(...batch.map((m) => m.id));
      }
    };
    const perWorker = await Promise.all([drain(a), drain(b), drain(a), drain(b)]);
    const all = perWorker.flat();
    expect(new Set(all).size).toBe(all.length);
    expect(all).toHaveLength(total);
  });
});
