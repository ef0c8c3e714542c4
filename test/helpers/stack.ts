import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildIdp, type EnvironmentRuntime, openEnvironment } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { migrateToLatest, openDatabase } from '../../src/db/database.ts';
import { createStore, type Store } from '../../src/db/store.ts';
import type { MailTransport } from '../../src/mail/transport.ts';

/** A clock tests move by hand: nothing sleeps. */
export function createTestClock(start = Date.parse('2026-12-04T12:00:00Z')) {
  let now = start;
  const clock = () => now;
  return Object.assign(clock, {
    advance(ms: number) {
      now += ms;
    },
    set(ms: number) {
      now = ms;
    },
  });
}
export type TestClock = ReturnType<typeof createTestClock>;

/**
 * The real time plus an offset the test moves: for stacks that real processes talk to (event
 * streams, timers), where a frozen clock would not do, yet expiry must be reachable without sleeping.
 */
export function createRealTimeClock(): TestClock {
  let offset = 0;
  return Object.assign(() => Date.now() + offset, {
    advance(ms: number) {
      offset += ms;
    },
    set(ms: number) {
      offset = ms - Date.now();
    },
  });
}

/** A transport that keeps what it was given, for tests that read mail without SMTP. */
export function createMemoryTransport() {
  const sent: { to: string; subject: string; text: string; html: string; messageId: string }[] = [];
  const transport: MailTransport = {
    async send(mail) {
      sent.push(mail);
    },
    async close() {},
  };
  return { transport, sent };
}

export interface TestStackOptions {
  clock?: TestClock;
  store?: Store;
  transport?: MailTransport;
  env?: NodeJS.ProcessEnv;
  overrides?: Record<string, unknown>;
  /** A logger to read what the services log; silent by default. */
  logger?: pino.Logger;
}

/** One ntf environment on a fresh in-memory SQLite store with the idp built (not listening). */
export async function createTestStack(options: TestStackOptions = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'traqs-test-'));
  const config = loadConfig(
    { TRAQS_DATA_DIR: dataDir, TRAQS_ENVIRONMENTS: 'ntf', ...options.env },
    {
      logLevel: 'silent',
      ...options.overrides,
      // Tests send many requests from one address; the rate-limit test sets its own limit.
      policy: { authRequestsPerMinutePerIp: 100_000, ...(options.overrides?.policy as Record<string, unknown>) },
    },
  );
  const environment = config.environments[0];
  if (!environment) throw new Error('no environment');
  let store = options.store;
  if (!store) {
    const db = openDatabase(':memory:');
    await migrateToLatest(db);
    store = createStore(db);
  }
  const clock = options.clock ?? createTestClock();
  const mail = createMemoryTransport();
  const rt: EnvironmentRuntime = await openEnvironment(config, environment, {
    logger: options.logger ?? pino({ level: 'silent' }),
    clock,
    store,
    transport: options.transport ?? mail.transport,
  });
  const app = await buildIdp(rt);
  await app.ready();
  const firm = await rt.accounts.createFirm('Acme Securities');
  if (!firm.ok) throw new Error(firm.message);
  return {
    rt,
    app,
    clock,
    config,
    firm: firm.firm,
    sentMail: mail.sent,
    async close() {
      await app.close();
      await rt.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
export type TestStack = Awaited<ReturnType<typeof createTestStack>>;
