import type { Logger } from 'pino';
import type { AuditEvent } from '../audit/repository.ts';
import type { Store } from '../db/store.ts';

export interface AuditBatchOptions {
  store: Store;
  logger: Logger;
  /** Events wait at most this long before being written. */
  flushMs?: number;
  /** A batch this large is written at once, in one statement. */
  batchSize?: number;
  /** Past this many unwritten events (the database is down) the oldest are dropped, and logged. */
  maxBuffered?: number;
}

/**
 * The audit log of downloads, written in batches: one INSERT per `batchSize` events or per
 * `flushMs`, whichever comes first, so that thousands of downloads a second cost a few writes
 * rather than thousands (one multi-row INSERT per batch), and no request waits for the database. The price: an event reaches the
 * log up to `flushMs` after its request, and events still buffered when a process dies are lost
 * (a graceful stop flushes them: {@link close}).
 */
export function createAuditBatch(options: AuditBatchOptions) {
  const { store, logger } = options;
  const flushMs = options.flushMs ?? 100;
  const batchSize = options.batchSize ?? 500;
  const maxBuffered = options.maxBuffered ?? 100_000;
  let buffer: AuditEvent[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();
  let dropped = 0;

  async function write(batch: AuditEvent[]): Promise<void> {
    try {
      await store.repos.audit.recordEvents(batch);
    } catch (err) {
      // Put them back for the next attempt, within the bound.
      buffer = batch.concat(buffer);
      logger.error({ err, events: batch.length }, 'Writing download audit events failed; will retry');
      schedule();
    }
  }

  function flushNow(): Promise<void> {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    // One writer at a time, in order: SQLite has one writer anyway, PostgreSQL keeps the order.
    writing = writing.then(async () => {
      while (buffer.length > 0) {
        const batch = buffer.splice(0, batchSize);
        await write(batch);
        if (buffer.length > 0 && buffer[0] === batch[0]) break;
      }
    });
    return writing;
  }

  function schedule(): void {
    if (!timer) {
      timer = setTimeout(() => void flushNow(), flushMs);
      timer.unref();
    }
  }

  return {
    /** Queues one event; never waits and never throws. */
    record(event: AuditEvent): void {
      buffer.push(event);
      if (buffer.length > maxBuffered) {
        const excess = buffer.length - maxBuffered;
        buffer.splice(0, excess);
        dropped += excess;
        logger.error({ dropped: excess, droppedTotal: dropped }, 'Download audit buffer full: oldest events dropped');
      }
      if (buffer.length >= batchSize) void flushNow();
      else schedule();
    },
    /** Writes everything buffered (tests, shutdown). */
    flush: flushNow,
    /** Writes everything buffered; called when the service closes. */
    async close(): Promise<void> {
      await flushNow();
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
export type AuditBatch = ReturnType<typeof createAuditBatch>;
