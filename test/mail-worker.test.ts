import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Store } from '../src/db/store.ts';
import type { MailTransport, OutgoingMail } from '../src/mail/transport.ts';
import { createMailWorker } from '../src/mail/worker.ts';
import { captureLogger, openTestStore, queueEnrollment } from './mail-fixtures.ts';

const T0 = Date.UTC(2025, 2, 14, 15, 4);

/** A transport whose sends complete only when the test says so. */
function gatedTransport() {
  const sent: OutgoingMail[] = [];
  const gates: (() => void)[] = [];
  const transport: MailTransport = {
    send: (mail) =>
      new Promise<void>((resolve) => {
        gates.push(() => {
          sent.push(mail);
          resolve();
        });
      }),
    close: async () => {},
  };
  return {
    transport,
    sent,
    pending: () => gates.length,
    openAll: () => {
      for (const open of gates.splice(0)) open();
    },
  };
}

describe('mail worker lifecycle', () => {
  let store: Store;
  beforeEach(async () => {
    store = await openTestStore();
  });
  afterEach(async () => {
    await store.close();
  });

  it('stop() waits for the round in flight, then no further rounds run', async () => {
    const gate = gatedTransport();
    const worker = createMailWorker({
      store,
      transport: gate.transport,
      clock: () => T0,
      logger: captureLogger().logger,
      from: 'no-reply@traqs.example',
    });
    const { id } = await queueEnrollment(store, T0);
    worker.start(5);
    await vi.waitFor(() => expect(gate.pending()).toBe(1));

    let stopped = false;
    const stopping = worker.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    gate.openAll();
    await stopping;
    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'sent' });

    await queueEnrollment(store, T0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(gate.pending()).toBe(0);
  });

  it('wake() delivers a message queued while the worker waits out a long interval', async () => {
    const gate = gatedTransport();
    const worker = createMailWorker({
      store,
      transport: gate.transport,
      clock: () => T0,
      logger: captureLogger().logger,
      from: 'no-reply@traqs.example',
    });
    worker.start(3_600_000);
    // Let the first (empty) round finish, so the next one is an hour away.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await queueEnrollment(store, T0);
    worker.wake();
    await vi.waitFor(() => expect(gate.pending()).toBe(1));
    gate.openAll();
    await worker.stop();
    expect(gate.sent).toHaveLength(1);
    expect(gate.sent[0]?.from).toBe('no-reply@traqs.example');
  });
});
