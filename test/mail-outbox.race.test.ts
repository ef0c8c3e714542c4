import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { migrateToLatest, openDatabase } from '../src/db/database.ts';
import { createStore, type Store } from '../src/db/store.ts';
import { createSmtpTransport, type MailTransport } from '../src/mail/transport.ts';
import { createMailWorker, type MailWorker } from '../src/mail/worker.ts';
import { captureLogger, openTestStore, queueEnrollment } from './mail-fixtures.ts';
import { type SmtpRejection, startTestSmtpServer, type TestSmtpServer } from './mail-smtp-server.ts';

// Security regression: one message must never be recorded sent twice, nor sent twice by
// concurrent workers; a worker that lost its lease must not overwrite the outcome.

const FROM = 'TRAQS MFA <no-reply@traqs.example>';
const T0 = Date.UTC(2025, 2, 14, 15, 4);

describe('outbox workers in parallel', () => {
  let smtp: TestSmtpServer;
  let transports: MailTransport[];
  let stores: Store[];
  let now: number;
  const clock = () => now;

  beforeEach(() => {
    transports = [];
    stores = [];
    now = T0;
  });
  afterEach(async () => {
    for (const t of transports) await t.close();
    await smtp.close();
    for (const s of stores) await s.close();
  });

  function worker(store: Store, options: { batchSize?: number; leaseMs?: number } = {}): MailWorker {
    const transport = createSmtpTransport(smtp.url);
    transports.push(transport);
    return createMailWorker({ store, transport, clock, logger: captureLogger().logger, from: FROM, ...options });
  }

  async function drain(w: MailWorker): Promise<number> {
    let sent = 0;
    for (;;) {
      const round = await w.runOnce();
      sent += round.sent;
      if (round.claimed === 0) return sent;
    }
  }

  async function expectEachDeliveredOnce(store: Store, count: number) {
    const rows = await store.repos.outbox.listRecentMessages(1000);
    expect(rows).toHaveLength(count);
    expect(rows.every((r) => r.status === 'sent' && r.attempts === 1)).toBe(true);
    const ids = smtp.received.map((m) => m.messageId);
    expect(ids).toHaveLength(count);
    expect(new Set(ids)).toEqual(new Set(rows.map((r) => r.message_id)));
  }

  it('two workers on one store send every message exactly once', async () => {
    smtp = await startTestSmtpServer();
    const store = await openTestStore();
    stores.push(store);
    for (let i = 0; i < 30; i += 1) await queueEnrollment(store, now, `user${i}@example.com`);

    const [a, b] = await Promise.all([drain(worker(store, { batchSize: 4 })), drain(worker(store, { batchSize: 4 }))]);

    expect(a + b).toBe(30);
    await expectEachDeliveredOnce(store, 30);
  });

  it('two workers on separate connections to one database send every message exactly once', async () => {
    smtp = await startTestSmtpServer();
    const dir = mkdtempSync(join(tmpdir(), 'traqs-mail-'));
    try {
      const file = join(dir, 'outbox.db');
      const first = openDatabase(file);
      await migrateToLatest(first);
      stores.push(createStore(first), createStore(openDatabase(file)));
      const [s1, s2] = stores as [Store, Store];
      for (let i = 0; i < 30; i += 1) await queueEnrollment(s1, now, `user${i}@example.com`);

      const [a, b] = await Promise.all([drain(worker(s1, { batchSize: 3 })), drain(worker(s2, { batchSize: 3 }))]);

      expect(a + b).toBe(30);
      await expectEachDeliveredOnce(s1, 30);
    } finally {
      for (const s of stores.splice(0)) await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A server that holds its replies to the first `count` messages until the test releases them. */
  async function holdMessages(count = 1) {
    const releases: ((reply: SmtpRejection | undefined) => void)[] = [];
    const held = Array.from(
      { length: count },
      () =>
        new Promise<SmtpRejection | undefined>((resolve) => {
          releases.push(resolve);
        }),
    );
    smtp = await startTestSmtpServer((n) => held[n - 1]);
    return (n: number, reply?: SmtpRejection) => releases[n - 1]?.(reply);
  }

  it('a worker whose lease ran out mid-send cannot record the message a second time', async () => {
    const release = await holdMessages();
    const store = await openTestStore();
    stores.push(store);
    const { id, messageId } = await queueEnrollment(store, now);
    const slow = worker(store, { leaseMs: 60_000 });
    const other = worker(store, { leaseMs: 60_000 });

    const slowRound = slow.runOnce();
    await vi.waitFor(() => expect(smtp.attempts()).toBe(1));
    expect(await other.runOnce()).toMatchObject({ claimed: 0 });

    now = T0 + 60_000;
    expect(await other.runOnce()).toMatchObject({ claimed: 1, sent: 1 });
    release(1);
    expect(await slowRound).toMatchObject({ claimed: 1, sent: 0, lost: 1 });

    expect(await store.repos.outbox.findMessage(id)).toMatchObject({
      status: 'sent',
      sent_at: T0 + 60_000,
      attempts: 2,
    });
    // At least once: the relay got it twice, with one Message-ID that lets receivers drop the copy.
    expect(smtp.received.map((m) => m.messageId)).toEqual([messageId, messageId]);
    now += 86_400_000;
    expect(await other.runOnce()).toMatchObject({ claimed: 0 });
  });

  it('a late failure from the previous holder does not put a sent message back in the queue', async () => {
    const release = await holdMessages();
    const store = await openTestStore();
    stores.push(store);
    const { id } = await queueEnrollment(store, now);
    const slow = worker(store, { leaseMs: 60_000 });
    const other = worker(store, { leaseMs: 60_000 });

    const slowRound = slow.runOnce();
    await vi.waitFor(() => expect(smtp.attempts()).toBe(1));
    now = T0 + 60_000;
    expect(await other.runOnce()).toMatchObject({ sent: 1 });
    release(1, { responseCode: 451, message: 'Try again later' });
    expect(await slowRound).toMatchObject({ retrying: 0, lost: 1 });

    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'sent', last_error: null });
    now += 86_400_000;
    expect(await other.runOnce()).toMatchObject({ claimed: 0 });
    expect(smtp.received).toHaveLength(1);
  });

  it('a late failure from the previous holder does not release a message the new holder is sending', async () => {
    const release = await holdMessages(2);
    const store = await openTestStore();
    stores.push(store);
    const { id } = await queueEnrollment(store, now);
    const [slow, next, third] = [worker(store), worker(store), worker(store)];

    const slowRound = slow.runOnce();
    await vi.waitFor(() => expect(smtp.attempts()).toBe(1));
    now = T0 + 120_000;
    const nextRound = next.runOnce();
    await vi.waitFor(() => expect(smtp.attempts()).toBe(2));
    release(1, { responseCode: 451, message: 'Try again later' });
    expect(await slowRound).toMatchObject({ retrying: 0, lost: 1 });

    // Still leased to `next`: nobody else may start a third copy.
    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'sending', attempts: 2 });
    expect(await third.runOnce()).toMatchObject({ claimed: 0 });
    release(2);
    expect(await nextRound).toMatchObject({ sent: 1 });
    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'sent', sent_at: T0 + 120_000 });
    expect(smtp.received).toHaveLength(1);
  });

  it('aborts a send that would outlive its lease and schedules a retry', async () => {
    const release = await holdMessages();
    const store = await openTestStore();
    stores.push(store);
    const { id } = await queueEnrollment(store, now);
    // 1 s lease: the send is aborted 100 ms before it ends (real time; the relay stalls).
    const w = worker(store, { leaseMs: 1_000 });

    expect(await w.runOnce()).toMatchObject({ claimed: 1, retrying: 1 });
    const row = await store.repos.outbox.findMessage(id);
    expect(row).toMatchObject({ status: 'pending', attempts: 1 });
    expect(row?.last_error).toMatch(/abort/i);
    release(1);
  });
});
