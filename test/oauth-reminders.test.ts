import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it, vi } from 'vitest';
import type { NewUser, UserRow } from '../src/accounts/repository.ts';
import { migrateToLatest, openDatabase } from '../src/db/database.ts';
import { createStore, type Store } from '../src/db/store.ts';
import { createBearerSecret, createId, hashBearerSecret } from '../src/lib/tokens.ts';
import { createNotifier, type Notifier } from '../src/mail/notifications.ts';
import type { ApiRefreshTokenRow } from '../src/oauth/refresh-token-repository.ts';
import { createRefreshTokenReminderJob, type RefreshTokenReminderJob } from '../src/oauth/reminders.ts';
import { describeEachBackend } from './helpers/databases.ts';
import { captureLogger, testContext } from './mail-fixtures.ts';

/**
 * The refresh-token expiry reminder (DESIGN "API access", FAQ: "an email 15 days prior"): sent
 * once per token, by exactly one node, never for a revoked or expired token, and never lost.
 */

const DAY = 86_400_000;
const ISSUED = Date.UTC(2026, 0, 10, 12, 0);
/** Six calendar months after issue (`policy.refreshTokenMonths`). */
const EXPIRES = Date.UTC(2026, 6, 10, 12, 0);
const PROGRAMMATIC_URL = 'https://traqs.ntf.example/api/programmatic';
const REMINDER_DAYS = 15;

function createClock(start: number) {
  let now = start;
  return Object.assign(() => now, {
    set(ms: number) {
      now = ms;
    },
  });
}

async function seedUser(store: Store, overrides: Partial<NewUser> = {}): Promise<UserRow> {
  const firmId = createId('00f');
  await store.repos.firms.createFirm({ id: firmId, name: `Firm ${firmId}`, created_at: ISSUED });
  const login = `${createId('u').toLowerCase()}@example.com`;
  const user: NewUser = {
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
    created_at: ISSUED,
    activated_at: ISSUED,
    status_changed_at: ISSUED,
    ...overrides,
  };
  await store.repos.users.createUser(user);
  const row = await store.repos.users.findUserById(user.id);
  if (!row) throw new Error('seeded user not found');
  return row;
}

async function issueToken(
  store: Store,
  userId: string,
  overrides: Partial<ApiRefreshTokenRow> = {},
): Promise<ApiRefreshTokenRow> {
  const row: ApiRefreshTokenRow = {
    id_hash: hashBearerSecret(createBearerSecret()),
    user_id: userId,
    client_id: 'traqs-api',
    grant_id: null,
    label: 'Nightly download on build-server-01',
    created_at: ISSUED,
    expires_at: EXPIRES,
    last_used_at: null,
    last_used_ip: null,
    reminder_sent_at: null,
    revoked_at: null,
    revoked_reason: null,
    ...overrides,
  };
  expect(await store.repos.apiTokens.insert(row)).toBe(true);
  return row;
}

async function reminders(store: Store) {
  const rows = await store.repos.outbox.listRecentMessages(1000);
  return rows.filter((m) => m.template === 'refreshTokenExpiring');
}

describeEachBackend('refresh token expiry reminders', (backend) => {
  function setup() {
    const store = backend.store();
    const clock = createClock(ISSUED);
    const log = captureLogger();
    const job = (options: { store?: Store; notifier?: Pick<Notifier, 'refreshTokenExpiring'> } = {}) =>
      createRefreshTokenReminderJob({
        store: options.store ?? store,
        notifier: options.notifier ?? createNotifier(testContext, clock),
        clock,
        logger: log.logger,
        reminderDays: REMINDER_DAYS,
        programmaticUrl: PROGRAMMATIC_URL,
      });
    return { store, clock, log, job };
  }

  it('emails once, 15 days before expiry, naming the label and the expiry date', async () => {
    const { store, clock, job } = setup();
    const user = await seedUser(store);
    const token = await issueToken(store, user.id, { last_used_at: Date.UTC(2026, 5, 1, 9, 30) });
    const reminder = job();

    clock.set(EXPIRES - 16 * DAY);
    expect(await reminder.runOnce()).toBe(0);
    expect(await reminders(store)).toHaveLength(0);

    clock.set(EXPIRES - 15 * DAY);
    expect(await reminder.runOnce()).toBe(1);
    const [mail] = await reminders(store);
    expect(mail).toMatchObject({ to_address: user.email, user_id: user.id, status: 'pending' });
    expect(mail?.subject).toBe('[NTF (test)] Your TRAQS refresh token expires on July 10, 2026');
    expect(mail?.text_body).toContain('Label: Nightly download on build-server-01');
    expect(mail?.text_body).toContain('Created: Saturday, January 10, 2026 at 12:00 PM UTC');
    expect(mail?.text_body).toContain('Expires: Friday, July 10, 2026 at 12:00 PM UTC');
    expect(mail?.text_body).toContain('Last used: Monday, June 1, 2026 at 9:30 AM UTC');
    expect(mail?.text_body).toContain(`\n${PROGRAMMATIC_URL}\n`);
    expect(mail?.text_body).toContain('API questions: api-support@traqs.example');
    expect(await store.repos.apiTokens.find(token.id_hash)).toMatchObject({ reminder_sent_at: EXPIRES - 15 * DAY });
    const events = await store.repos.audit.listEvents({ action: 'oauth.refresh_token.reminder_sent' });
    expect(events).toMatchObject([{ target_id: user.id, actor_id: null, outcome: 'success' }]);

    expect(await reminder.runOnce()).toBe(0);
    for (const daysLeft of [14, 1]) {
      clock.set(EXPIRES - daysLeft * DAY);
      expect(await reminder.runOnce()).toBe(0);
      expect(await job().runOnce()).toBe(0);
    }
    expect(await reminders(store)).toHaveLength(1);
  });

  it('says "never used" for a token that was never used', async () => {
    const { store, clock, job } = setup();
    await issueToken(store, (await seedUser(store)).id);
    clock.set(EXPIRES - 10 * DAY);
    expect(await job().runOnce()).toBe(1);
    expect((await reminders(store))[0]?.text_body).toContain('Last used: never used');
  });

  // Two connections in one process suit PostgreSQL only: a SQLite lock wait blocks the whole
  // thread, so the waiting connection would stall the holder until busy_timeout. SQLite's two
  // nodes are two processes, below; this test is declared for PostgreSQL only (nothing skipped).
  const postgresOnly: (name: string, fn: () => Promise<void>, timeout?: number) => void =
    backend.dialect === 'postgres' ? it : () => undefined;
  postgresOnly('two nodes running at the due time queue exactly one email per token', async () => {
    const a = setup();
    const other = backend.connectAgain();
    const tokens: ApiRefreshTokenRow[] = [];
    for (let i = 0; i < 5; i++) {
      const user = await seedUser(a.store);
      tokens.push(await issueToken(a.store, user.id, { expires_at: EXPIRES + i * 60_000 }));
    }
    a.clock.set(EXPIRES - 15 * DAY + 4 * 60_000);

    const counts = await Promise.all([
      a.job().runOnce(),
      a.job({ store: other }).runOnce(),
      a.job().runOnce(),
      a.job({ store: other }).runOnce(),
    ]);

    expect(counts.reduce((x, y) => x + y, 0)).toBe(tokens.length);
    const mails = await reminders(a.store);
    expect(mails).toHaveLength(tokens.length);
    expect(new Set(mails.map((m) => m.user_id)).size).toBe(tokens.length);
    const events = await a.store.repos.audit.listEvents({ action: 'oauth.refresh_token.reminder_sent' });
    expect(events).toHaveLength(tokens.length);
    expect(a.log.lines.filter((l) => l.level === 50)).toEqual([]);
  });

  it('sends nothing for a revoked or an expired token', async () => {
    const { store, clock, job } = setup();
    const user = await seedUser(store);
    const revoked = await issueToken(store, user.id);
    expect(await store.repos.apiTokens.revoke(revoked.id_hash, ISSUED + DAY, 'user', user.id)).toBeDefined();
    await issueToken(store, user.id, { created_at: ISSUED - 200 * DAY, expires_at: EXPIRES - 20 * DAY });

    for (const at of [EXPIRES - 19 * DAY, EXPIRES - 15 * DAY, EXPIRES - DAY]) {
      clock.set(at);
      expect(await job().runOnce()).toBe(0);
    }
    expect(await reminders(store)).toHaveLength(0);
  });

  it('claims but skips the reminder of a suspended or deleted owner, and audits why', async () => {
    const { store, clock, job } = setup();
    const suspended = await seedUser(store, { status: 'SUSPENDED' });
    await issueToken(store, suspended.id);
    const orphan = await issueToken(store, createId('00u'));
    const lockedOut = await seedUser(store, { status: 'LOCKED_OUT' });
    await issueToken(store, lockedOut.id);

    clock.set(EXPIRES - 15 * DAY);
    expect(await job().runOnce()).toBe(1);
    expect((await reminders(store)).map((m) => m.user_id)).toEqual([lockedOut.id]);
    const skipped = await store.repos.audit.listEvents({ action: 'oauth.refresh_token.reminder_skipped' });
    expect(skipped.map((e) => [e.target_id, e.outcome, JSON.parse(e.details).reason]).sort()).toEqual(
      [
        [suspended.id, 'denied', 'status SUSPENDED'],
        [orphan.user_id, 'denied', 'no such user'],
      ].sort(),
    );
    // Claimed: not looked at again.
    expect(await store.repos.apiTokens.listReminderDue(clock(), EXPIRES, 100)).toEqual([]);
  });

  it('commits the claim and the email together: a failure to queue leaves the reminder for the next run', async () => {
    const base = setup();
    const user = await seedUser(base.store);
    const token = await issueToken(base.store, user.id);
    const real = createNotifier(testContext, base.clock);
    const failing: Pick<Notifier, 'refreshTokenExpiring'> = {
      async refreshTokenExpiring(...args) {
        // The email is written first, then the failure: both must roll back with the claim.
        await real.refreshTokenExpiring(...args);
        throw new Error('outbox unavailable');
      },
    };
    base.clock.set(EXPIRES - 15 * DAY);

    expect(await base.job({ notifier: failing }).runOnce()).toBe(0);
    expect(await reminders(base.store)).toHaveLength(0);
    expect(await base.store.repos.apiTokens.find(token.id_hash)).toMatchObject({ reminder_sent_at: null });
    expect(await base.store.repos.audit.listEvents({ action: 'oauth.refresh_token.reminder_sent' })).toEqual([]);
    expect(base.log.lines).toContainEqual(
      expect.objectContaining({ level: 50, error: 'outbox unavailable', userId: user.id }),
    );

    base.clock.set(EXPIRES - 14 * DAY);
    expect(await base.job().runOnce()).toBe(1);
    expect(await reminders(base.store)).toHaveLength(1);
    expect(await base.job().runOnce()).toBe(0);
  });

  it('a failing token does not hold up the others behind it, even past a full batch', async () => {
    const { store, clock, log } = setup();
    const users = [await seedUser(store), await seedUser(store), await seedUser(store)];
    for (const [i, u] of users.entries()) await issueToken(store, u.id, { expires_at: EXPIRES + i });
    const real = createNotifier(testContext, clock);
    const poisoned = users[0]?.id;
    const job = createRefreshTokenReminderJob({
      store,
      notifier: {
        refreshTokenExpiring: async (repos, user, ...rest) => {
          if (user.id === poisoned) throw new Error('cannot render');
          return real.refreshTokenExpiring(repos, user, ...rest);
        },
      },
      clock,
      logger: log.logger,
      reminderDays: REMINDER_DAYS,
      programmaticUrl: PROGRAMMATIC_URL,
      batchSize: 1,
    });
    clock.set(EXPIRES - 15 * DAY + 2);
    expect(await job.runOnce()).toBe(2);
    expect((await reminders(store)).map((m) => m.user_id).sort()).toEqual([users[1]?.id, users[2]?.id].sort());
  });

  it('runs on a timer, keeps going after a failed run, and stop() waits for the run in flight', async () => {
    const { store, clock, job } = setup();
    const user = await seedUser(store);
    await issueToken(store, user.id);
    const real = createNotifier(testContext, clock);
    let calls = 0;
    const reminder: RefreshTokenReminderJob = job({
      notifier: {
        async refreshTokenExpiring(...args) {
          calls += 1;
          if (calls === 1) throw new Error('transient');
          return real.refreshTokenExpiring(...args);
        },
      },
    });
    clock.set(EXPIRES - 15 * DAY);

    reminder.start(5);
    await vi.waitFor(async () => expect(await reminders(store)).toHaveLength(1));
    await reminder.stop();
    expect(calls).toBe(2);
    expect(await reminders(store)).toHaveLength(1);
  });
});

/**
 * A second node in a process of its own on the same SQLite file: runs one reminder job at `now`
 * when told to go, and reports how many emails it queued and how many reminders failed.
 */
function startSecondNode(file: string, now: number) {
  const module = (path: string) => new URL(path, import.meta.url).href;
  const settings = {
    file,
    now,
    reminderDays: REMINDER_DAYS,
    programmaticUrl: PROGRAMMATIC_URL,
    context: testContext,
    modules: {
      database: module('../src/db/database.ts'),
      store: module('../src/db/store.ts'),
      notifications: module('../src/mail/notifications.ts'),
      reminders: module('../src/oauth/reminders.ts'),
    },
  };
  const script = `
    const s = JSON.parse(process.env.REMINDER_NODE);
    const { openDatabase } = await import(s.modules.database);
    const { createStore } = await import(s.modules.store);
    const { createNotifier } = await import(s.modules.notifications);
    const { createRefreshTokenReminderJob } = await import(s.modules.reminders);
    const store = createStore(openDatabase(s.file));
    const clock = () => s.now;
    let errors = 0;
    const logger = { info() {}, warn() {}, error() { errors += 1; } };
    const job = createRefreshTokenReminderJob({
      store, clock, logger, notifier: createNotifier(s.context, clock),
      reminderDays: s.reminderDays, programmaticUrl: s.programmaticUrl,
    });
    process.stdout.write('ready\\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    const queued = await job.runOnce();
    await store.close();
    process.stdout.write(JSON.stringify({ queued, errors }) + '\\n');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
    env: { ...process.env, REMINDER_NODE: JSON.stringify(settings) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const line = await lines.next();
    if (line.done) throw new Error('the second node exited early');
    return line.value;
  };
  return {
    ready: next().then((line) => expect(line).toBe('ready')),
    go: async (): Promise<{ queued: number; errors: number }> => {
      child.stdin.write('go\n');
      return JSON.parse(await next()) as { queued: number; errors: number };
    },
    kill: () => child.kill(),
  };
}

describe('refresh token expiry reminders on two nodes sharing one SQLite file', () => {
  it('queue exactly one email per token', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'traqs-reminders-'));
    const file = join(dir, 'traqs.db');
    const db = openDatabase(file);
    const store = createStore(db);
    const now = EXPIRES - 15 * DAY + 60 * 60_000;
    const node = startSecondNode(file, now);
    try {
      await migrateToLatest(db);
      const users: UserRow[] = [];
      for (let i = 0; i < 40; i++) {
        const user = await seedUser(store);
        users.push(user);
        await issueToken(store, user.id, { expires_at: EXPIRES + i * 60_000 });
      }
      const log = captureLogger();
      const notifier = createNotifier(testContext, () => now);
      let other: Promise<{ queued: number; errors: number }> | undefined;
      const job = createRefreshTokenReminderJob({
        store,
        notifier: {
          async refreshTokenExpiring(...args) {
            await notifier.refreshTokenExpiring(...args);
            if (other) return;
            // The other node starts while this one holds its first claim uncommitted: it lists that
            // token as due too, waits on the lock, and must then lose the claim.
            other = node.go();
            await new Promise((resolve) => setTimeout(resolve, 200));
          },
        },
        clock: () => now,
        logger: log.logger,
        reminderDays: REMINDER_DAYS,
        programmaticUrl: PROGRAMMATIC_URL,
      });
      await node.ready;

      const here = await job.runOnce();
      const there = await other;

      expect(there?.errors).toBe(0);
      expect(log.lines.filter((l) => l.level === 50)).toEqual([]);
      expect(here).toBeGreaterThanOrEqual(1);
      expect(here + (there?.queued ?? 0)).toBe(users.length);
      const mails = await reminders(store);
      expect(mails.map((m) => m.user_id).sort()).toEqual(users.map((u) => u.id).sort());
    } finally {
      node.kill();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
