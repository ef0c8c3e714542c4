import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../src/db/store.ts';
import { createConsoleTransport, createSmtpTransport, type MailTransport } from '../src/mail/transport.ts';
import { createMailWorker, retryDelay } from '../src/mail/worker.ts';
import { captureLogger, openTestStore, queueEnrollment } from './mail-fixtures.ts';
import { type SmtpDecision, startTestSmtpServer, type TestSmtpServer } from './mail-smtp-server.ts';

const FROM = 'TRAQS MFA <no-reply@traqs.example>';
const T0 = Date.UTC(2025, 2, 14, 15, 4);
const backoff = { baseMs: 1_000, maxMs: 8_000 };

describe('mail delivery over SMTP', () => {
  let store: Store;
  let smtp: TestSmtpServer | undefined;
  let transport: MailTransport | undefined;
  let now: number;
  const clock = () => now;

  beforeEach(async () => {
    store = await openTestStore();
    now = T0;
  });
  afterEach(async () => {
    await transport?.close();
    await smtp?.close();
    await store.close();
    transport = undefined;
    smtp = undefined;
  });

  async function setUp(decide?: SmtpDecision, maxAttempts = 5) {
    smtp = await startTestSmtpServer(decide);
    transport = createSmtpTransport(smtp.url);
    const { logger, lines } = captureLogger();
    // random 0.5: the jitter lands mid-range, so the expected retry times are exact.
    const worker = createMailWorker({
      store,
      transport,
      clock,
      logger,
      from: FROM,
      maxAttempts,
      backoff,
      random: () => 0.5,
    });
    return { worker, lines, smtp };
  }

  it('delivers the rendered message with the Message-ID of its outbox row', async () => {
    const { worker, smtp } = await setUp();
    const { id, messageId } = await queueEnrollment(store, now);

    expect(await worker.runOnce()).toMatchObject({ claimed: 1, sent: 1 });

    const row = await store.repos.outbox.findMessage(id);
    expect(row).toMatchObject({ status: 'sent', attempts: 1, sent_at: T0, last_error: null });
    expect(smtp.received).toHaveLength(1);
    const mail = smtp.received[0];
    expect(mail?.messageId).toBe(messageId);
    expect(mail?.messageId).toBe(row?.message_id);
    expect(mail?.subject).toBe('[NTF (test)] Activate your TRAQS account');
    expect(mail?.from?.value).toEqual([{ name: 'TRAQS MFA', address: 'no-reply@traqs.example' }]);
    expect(mail?.to && !Array.isArray(mail.to) ? mail.to.value : []).toEqual([
      { name: '', address: 'ada.lovelace@example.com' },
    ]);
    expect(mail?.text).toBe(row?.text_body);
    expect(mail?.text).toContain('https://idp.ntf.example/welcome/abc123?x=1&y=2');
    expect(mail?.html).toBe(row?.html_body);
    expect(mail?.html).toContain('href="https://idp.ntf.example/welcome/abc123?x=1&amp;y=2"');
    expect(mail?.headers.get('auto-submitted')).toBe('auto-generated');
  });

  it('never claims a sent message again', async () => {
    const { worker, smtp } = await setUp();
    await queueEnrollment(store, now);
    await worker.runOnce();
    now += 365 * 86_400_000;
    expect(await worker.runOnce()).toMatchObject({ claimed: 0 });
    expect(smtp.attempts()).toBe(1);
  });

  it('retries a temporary rejection with exponential backoff, then delivers once', async () => {
    const { worker, smtp } = await setUp((n) =>
      n <= 2 ? { responseCode: 451, message: '4.3.0 Try again later' } : undefined,
    );
    const { id } = await queueEnrollment(store, now);

    expect(await worker.runOnce()).toMatchObject({ claimed: 1, retrying: 1 });
    let row = await store.repos.outbox.findMessage(id);
    // Attempt 1 failed: 1 s ceiling, half fixed plus half of the other half.
    expect(row).toMatchObject({ status: 'pending', attempts: 1, next_attempt_at: T0 + 750 });
    expect(row?.last_error).toContain('451');

    now = T0 + 749;
    expect(await worker.runOnce()).toMatchObject({ claimed: 0 });
    now = T0 + 750;
    expect(await worker.runOnce()).toMatchObject({ claimed: 1, retrying: 1 });
    row = await store.repos.outbox.findMessage(id);
    expect(row).toMatchObject({ status: 'pending', attempts: 2, next_attempt_at: T0 + 750 + 1_500 });

    now = T0 + 2_250;
    expect(await worker.runOnce()).toMatchObject({ claimed: 1, sent: 1 });
    row = await store.repos.outbox.findMessage(id);
    expect(row).toMatchObject({ status: 'sent', attempts: 3, sent_at: T0 + 2_250, last_error: null });
    expect(smtp.attempts()).toBe(3);
    expect(smtp.received).toHaveLength(1);
  });

  it('gives up after maxAttempts temporary failures and logs an error', async () => {
    const { worker, smtp, lines } = await setUp(() => ({ responseCode: 451, message: '4.7.1 Greylisted' }), 3);
    const { id } = await queueEnrollment(store, now);

    for (let i = 0; i < 5; i += 1) {
      await worker.runOnce();
      now += backoff.maxMs;
    }

    const row = await store.repos.outbox.findMessage(id);
    expect(row).toMatchObject({ status: 'failed', attempts: 3, sent_at: null });
    expect(row?.last_error).toContain('451 4.7.1 Greylisted');
    expect(smtp.attempts()).toBe(3);
    expect(smtp.received).toHaveLength(0);
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ outboxId: id, attempts: 3 });
    expect(String(errors[0]?.msg)).toContain('failed for good');
    // The log names the message, never its content: the body carries an activation secret.
    expect(JSON.stringify(lines)).not.toContain('welcome/');
  });

  it('gives up at once when the server refuses the message permanently (5xx)', async () => {
    const { worker, smtp } = await setUp(() => ({ responseCode: 550, message: '5.1.1 No such user' }));
    const { id } = await queueEnrollment(store, now);

    expect(await worker.runOnce()).toMatchObject({ claimed: 1, failed: 1 });
    now += 86_400_000;
    expect(await worker.runOnce()).toMatchObject({ claimed: 0 });
    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(smtp.attempts()).toBe(1);
  });

  it('retries when the relay cannot be reached', async () => {
    const { logger } = captureLogger();
    // A port nothing listens on: take one from a server and close it.
    const gone = await startTestSmtpServer();
    await gone.close();
    transport = createSmtpTransport(gone.url);
    const worker = createMailWorker({ store, transport, clock, logger, from: FROM, backoff });
    const { id } = await queueEnrollment(store, now);

    expect(await worker.runOnce()).toMatchObject({ claimed: 1, retrying: 1 });
    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'pending', attempts: 1 });
  });
});

describe('console transport (no SMTP configured)', () => {
  it('logs one line with the recipient, subject and links, and marks the message sent', async () => {
    const store = await openTestStore();
    const { logger, lines } = captureLogger();
    const transport = createConsoleTransport(logger, { label: 'NTF', kind: 'test' });
    const worker = createMailWorker({ store, transport, clock: () => T0, logger, from: FROM });
    const { id } = await queueEnrollment(store, T0);

    expect(await worker.runOnce()).toMatchObject({ sent: 1 });

    const notice = lines.find((l) => String(l.msg).startsWith('Mail to '));
    expect(notice?.msg).toBe(
      'Mail to ada.lovelace@example.com (not sent, no SMTP configured): [NTF (test)] Activate your TRAQS account https://idp.ntf.example/welcome/abc123?x=1&y=2',
    );
    expect(String(notice?.msg)).not.toContain('\n');
    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'sent' });
    await store.close();
  });

  it('keeps production links out of the log and the message undelivered', async () => {
    const store = await openTestStore();
    const { logger, lines } = captureLogger();
    const transport = createConsoleTransport(logger, { label: 'Production', kind: 'production' });
    const worker = createMailWorker({ store, transport, clock: () => T0, logger, from: FROM });
    const { id } = await queueEnrollment(store, T0);

    expect(await worker.runOnce()).toMatchObject({ retrying: 1 });
    expect(JSON.stringify(lines)).not.toContain('https://');
    expect(await store.repos.outbox.findMessage(id)).toMatchObject({ status: 'pending' });
    await store.close();
  });
});

describe('retryDelay', () => {
  it('doubles from the base, stays within [ceiling/2, ceiling], and is capped', () => {
    expect(retryDelay(1, backoff, () => 0)).toBe(500);
    expect(retryDelay(1, backoff, () => 0.999_999)).toBe(1_000);
    expect(retryDelay(3, backoff, () => 0)).toBe(2_000);
    expect(retryDelay(10, backoff, () => 0.999_999)).toBe(8_000);
    expect(retryDelay(10, backoff, () => 0)).toBe(4_000);
  });
});
