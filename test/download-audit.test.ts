import pino from 'pino';
import { expect, it } from 'vitest';
import type { AuditEvent } from '../src/audit/repository.ts';
import type { Store } from '../src/db/store.ts';
import { createAuditBatch } from '../src/download/audit-batch.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';

/**
 * The download service's audit log is written in batches (one multi-row INSERT per batch), so that
 * a download costs no database write of its own; nothing may be lost or reordered on the way.
 */

const event = (i: number): AuditEvent => ({
  at: 1_700_000_000_000 + i,
  actorId: null,
  action: 'download.file',
  targetId: null,
  outcome: 'success',
  ip: '192.0.2.1',
  userAgent: 'bench',
  details: { n: i },
});

/** A store whose audit batch writes are counted, or fail while `failing()` says so. */
function instrumented(store: Store, failing: () => boolean = () => false) {
  const counts = { writes: 0 };
  const audit = store.repos.audit;
  const wrapped: Store = {
    ...store,
    repos: {
      ...store.repos,
      audit: {
        ...audit,
        recordEvents: (events) => {
          if (failing()) return Promise.reject(new Error('database unavailable'));
          counts.writes++;
          return audit.recordEvents(events);
        },
      },
    },
  };
  return { store: wrapped, counts };
}

describeEachBackend('download audit batch', (backend: BackendHandle) => {
  it('writes 1,200 events in three statements, in order, and the rest on close', async () => {
    const { store, counts } = instrumented(backend.store());
    const batch = createAuditBatch({ store, logger: pino({ level: 'silent' }), flushMs: 60_000, batchSize: 500 });
    for (let i = 0; i < 1200; i++) batch.record(event(i));
    await batch.flush();
    expect(counts.writes).toBe(3);
    for (let i = 1200; i < 1210; i++) batch.record(event(i));
    await batch.close();
    const rows = await backend.store().repos.audit.listEvents({ action: 'download.file', limit: 2000 });
    expect(rows.map((r) => JSON.parse(r.details).n)).toEqual(Array.from({ length: 1210 }, (_, i) => 1209 - i));
  });

  it('keeps events whose write failed and writes them once the database answers', async () => {
    const real = backend.store();
    let failing = true;
    const { store: flaky } = instrumented(real, () => failing);
    const batch = createAuditBatch({ store: flaky, logger: pino({ level: 'silent' }), flushMs: 60_000 });
    batch.record(event(1));
    batch.record(event(2));
    await batch.flush();
    expect(await real.repos.audit.listEvents({ action: 'download.file' })).toEqual([]);
    failing = false;
    await batch.close();
    expect((await real.repos.audit.listEvents({ action: 'download.file' })).length).toBe(2);
  });
});
