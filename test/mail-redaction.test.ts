import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../src/db/database.ts';
import { createStore } from '../src/db/store.ts';
import { queueEmail } from '../src/mail/outbox.ts';
import { REDACTED } from '../src/mail/repository.ts';
import { createMailWorker } from '../src/mail/worker.ts';
import { createMemoryTransport } from './helpers/stack.ts';

describe('delivered mail', () => {
  it('is not kept in the outbox once a relay has it: its links are bearer secrets', async () => {
    const db = openDatabase(':memory:');
    await migrateToLatest(db);
    const store = createStore(db);
    const { transport, sent } = createMemoryTransport();
    const secretLink = 'https://idp.example/activate?token=SECRET123';
    const { id } = await queueEmail(store.repos, {
      to: 'a@acme.example',
      template: 'enrollment',
      userId: null,
      rendered: { subject: 'Activate', text: `Open ${secretLink}`, html: `<a href="${secretLink}">x</a>` },
      now: 0,
    });
    const worker = createMailWorker({
      store,
      transport,
      clock: () => 1,
      logger: pino({ level: 'silent' }),
      from: 'x@traqs.example',
      redactDelivered: true,
    });
    expect((await worker.runOnce()).sent).toBe(1);
    expect(sent[0]?.text).toContain(secretLink);
    const row = await store.repos.outbox.findMessage(id);
    expect(row).toMatchObject({ status: 'sent', text_body: REDACTED, html_body: REDACTED });
    await store.close();
  });
});
