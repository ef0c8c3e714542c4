import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import { configSchema } from '../src/config/schema.ts';
import { migrateToLatest, openDatabase } from '../src/db/database.ts';
import { createStore, type Store } from '../src/db/store.ts';
import { queueEmail } from '../src/mail/outbox.ts';
import { type EmailContext, renderEmail } from '../src/mail/templates.ts';

/** The default contacts, as a stack without a `contacts` section has them. */
export const contacts = configSchema.shape.contacts.parse(undefined);

export const testContext: EmailContext = { environment: { label: 'NTF', kind: 'test' }, contacts };

/** A fresh, migrated in-memory SQLite store. */
export async function openTestStore(): Promise<Store> {
  const db = openDatabase(':memory:');
  await migrateToLatest(db);
  return createStore(db);
}

/** A pino logger whose lines the test can read. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** Queues an enrollment message in a transaction of its own, as a request would. */
export function queueEnrollment(store: Store, now: number, to = 'Ada.Lovelace@Example.COM', firstName = 'Ada') {
  const rendered = renderEmail(
    'enrollment',
    {
      firstName,
      username: 'ada.lovelace',
      activationUrl: 'https://idp.ntf.example/welcome/abc123?x=1&y=2',
      expiresAt: now + 30 * 86_400_000,
      validDays: 30,
    },
    testContext,
  );
  return store.transaction((repos) => queueEmail(repos, { to, template: 'enrollment', userId: null, rendered, now }));
}
