import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../src/db/store.ts';
import { createMessageId, queueEmail } from '../src/mail/outbox.ts';
import { renderEmail } from '../src/mail/templates.ts';
import { openTestStore, queueEnrollment, testContext } from './mail-fixtures.ts';

const T0 = Date.UTC(2025, 2, 14, 15, 4);

describe('queueEmail', () => {
  let store: Store;
  beforeEach(async () => {
    store = await openTestStore();
  });
  afterEach(async () => {
    await store.close();
  });

  const rendered = renderEmail(
    'passwordChanged',
    { firstName: 'Ada', at: T0, ip: '192.0.2.1', browser: 'Firefox' },
    testContext,
  );

  it('writes a pending row, due at once, with a lower-cased address and a fresh Message-ID', async () => {
    const { id, messageId } = await queueEnrollment(store, T0, '  Ada.Lovelace@Example.COM ');
    const row = await store.repos.outbox.findMessage(id);
    expect(row).toMatchObject({
      message_id: messageId,
      to_address: 'ada.lovelace@example.com',
      template: 'enrollment',
      status: 'pending',
      attempts: 0,
      next_attempt_at: T0,
      created_at: T0,
      sent_at: null,
    });
    expect(messageId).toMatch(/^<[0-9a-f]{32}@traqs-mfa>$/);
    const second = await queueEnrollment(store, T0);
    expect(second.messageId).not.toBe(messageId);
  });

  it('leaves no row when the transaction that queued it fails', async () => {
    await expect(
      store.transaction(async (repos) => {
        await queueEmail(repos, {
          to: 'ada@example.com',
          template: 'passwordChanged',
          userId: null,
          rendered,
          now: T0,
        });
        throw new Error('state change failed');
      }),
    ).rejects.toThrow('state change failed');

    expect(await store.repos.outbox.listRecentMessages(10)).toEqual([]);
    expect(await store.repos.outbox.claimDueMessages(T0 + 1, 60_000, 10)).toEqual([]);
  });

  it.each([
    'victim@example.com, attacker@evil.example',
    'victim@example.com;attacker@evil.example',
    'Victim <victim@example.com>',
    'victim@example.com\r\nBcc: attacker@evil.example',
    'no-at-sign',
    '@example.com',
    `${'a'.repeat(250)}@example.com`,
  ])('refuses anything but one plain address: %j', async (to) => {
    await expect(
      store.transaction((repos) =>
        queueEmail(repos, { to, template: 'passwordChanged', userId: null, rendered, now: T0 }),
      ),
    ).rejects.toThrow('Invalid recipient address');
    expect(await store.repos.outbox.listRecentMessages(10)).toEqual([]);
  });

  it('keeps a Message-ID given by the caller', async () => {
    const messageId = createMessageId(() => Buffer.alloc(16, 0xab));
    expect(messageId).toBe(`<${'ab'.repeat(16)}@traqs-mfa>`);
    const queued = await store.transaction((repos) =>
      queueEmail(repos, {
        to: 'a@example.com',
        template: 'passwordChanged',
        userId: null,
        rendered,
        now: T0,
        messageId,
      }),
    );
    expect(queued.messageId).toBe(messageId);
  });
});
