import type { Store } from '../db/store.ts';
import type { Clock } from '../lib/tokens.ts';
import type { OutboxRow } from './repository.ts';
import type { MailLogger, MailTransport } from './transport.ts';

/** Exponential backoff between attempts: `baseMs`, doubling, never above `maxMs`. */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export interface MailWorkerOptions {
  store: Store;
  transport: MailTransport;
  clock: Clock;
  logger: MailLogger;
  /** The From header, e.g. `config.smtp.from`. */
  from: string;
  /** Messages claimed per round. */
  batchSize?: number;
  /** How long a claimed message is reserved for this worker before another may take it. */
  leaseMs?: number;
  /** Attempts (claims) before a message is given up as failed. */
  maxAttempts?: number;
  backoff?: Backoff;
  /** Replace the bodies of delivered messages (their links are bearer secrets); off for the dev mailbox. */
  redactDelivered?: boolean;
  /** Uniform in [0, 1), for the jitter; injected so tests are deterministic. */
  random?: () => number;
}

/** What one round did. */
export interface MailWorkerRound {
  claimed: number;
  sent: number;
  /** Failed attempts that will be tried again. */
  retrying: number;
  /** Messages given up for good. */
  failed: number;
  /** Messages whose lease ran out before the outcome could be recorded. */
  lost: number;
}

/** Delivers the outbox. Several workers, in one process or many, may share one database. */
export interface MailWorker {
  /** Claims due messages once and attempts each; resolves when all outcomes are recorded. */
  runOnce(): Promise<MailWorkerRound>;
  /** Runs rounds every `intervalMs` (back to back while the outbox has a backlog). */
  start(intervalMs: number): void;
  /** Asks a started worker for a round now, e.g. right after a request queued a message. */
  wake(): void;
  /** Stops scheduling rounds and waits for the one in flight. */
  stop(): Promise<void>;
}

/**
 * The delay before attempt `attempt + 1`, after `attempt` failures: exponential with "equal
 * jitter" (half fixed, half random), so messages that failed together, e.g. while the relay was
 * down, do not all come back at the same moment, yet none comes back at once.
 */
export function retryDelay(attempt: number, backoff: Backoff, random: () => number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * SMTP 5yz replies are permanent (RFC 5321 §4.2.1), but only a refusal of the recipient or the
 * message itself is about this message; a 5yz to AUTH or MAIL FROM means our relay settings are
 * wrong, which a later attempt, after they are fixed, can get past.
 */
function isPermanentFailure(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { permanent?: unknown; command?: unknown };
  return e.permanent === true && (e.command === 'RCPT TO' || e.command === 'DATA');
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Creates the outbox worker. Delivery is at least once: a worker that dies after the relay
 * accepted a message but before recording it leaves the message to be sent again when its lease
 * expires. The repeat carries the same Message-ID, which lets receivers recognise it.
 */
export function createMailWorker(options: MailWorkerOptions): MailWorker {
  const { store, transport, clock, logger, from } = options;
  const batchSize = options.batchSize ?? 10;
  const leaseMs = options.leaseMs ?? 120_000;
  const maxAttempts = options.maxAttempts ?? 8;
  const backoff = options.backoff ?? { baseMs: 30_000, maxMs: 3_600_000 };
  const random = options.random ?? Math.random;
  // A send is aborted this long before its lease ends, leaving time to record the outcome.
  const leaseMargin = Math.min(10_000, Math.floor(leaseMs / 10));
  const outbox = store.repos.outbox;

  async function deliver(row: OutboxRow, round: MailWorkerRound): Promise<void> {
    // Non-null: the claim has just set it.
    const lease = row.lease_until as number;
    const log = { outboxId: row.id, template: row.template, userId: row.user_id, attempts: row.attempts };
    if (row.attempts > maxAttempts) {
      // Only reached when earlier claims expired mid-send (a worker died or hung), so those
      // attempts' outcomes are unknown: a message that keeps killing workers must stop somewhere.
      if (await outbox.markFailed(row.id, 'No outcome recorded for the last attempts', null, lease)) {
        round.failed += 1;
        logger.error(log, `Mail delivery failed for good: gave up after ${maxAttempts} attempts`);
      } else round.lost += 1;
      return;
    }
    const budget = lease - clock() - leaseMargin;
    if (budget <= 0) {
      // A stale claim (the clock jumped or this round stalled): another worker may take it over
      // any moment, so sending now could duplicate. The next claim retries it.
      round.lost += 1;
      return;
    }
    try {
      await transport.send(
        {
          messageId: row.message_id,
          from,
          to: row.to_address,
          subject: row.subject,
          text: row.text_body,
          html: row.html_body,
        },
        { signal: AbortSignal.timeout(budget) },
      );
    } catch (err) {
      const error = describe(err);
      const permanent = isPermanentFailure(err);
      const giveUp = permanent || row.attempts >= maxAttempts;
      const next = giveUp ? null : clock() + retryDelay(row.attempts, backoff, random);
      if (!(await outbox.markFailed(row.id, error, next, lease))) {
        round.lost += 1;
        logger.warn(log, 'Mail attempt failed after its lease had passed to another worker');
      } else if (giveUp) {
        round.failed += 1;
        const why = permanent ? 'rejected permanently' : `gave up after ${row.attempts} attempts`;
        logger.error({ ...log, error }, `Mail delivery failed for good: ${why}`);
      } else {
        round.retrying += 1;
        logger.warn({ ...log, error, nextAttemptAt: next }, 'Mail delivery failed; will retry');
      }
      return;
    }
    if (await outbox.markSent(row.id, clock(), lease, options.redactDelivered ?? false)) {
      round.sent += 1;
      logger.info(log, 'Mail delivered');
    } else {
      // Another worker took the message over and may send it again: same Message-ID.
      round.lost += 1;
      logger.warn(log, 'Mail delivered after its lease had passed to another worker');
    }
  }

  async function runOnce(): Promise<MailWorkerRound> {
    const rows = await outbox.claimDueMessages(clock(), leaseMs, batchSize);
    const round: MailWorkerRound = { claimed: rows.length, sent: 0, retrying: 0, failed: 0, lost: 0 };
    // In parallel, so every message starts within its lease; the SMTP pool bounds the connections.
    const outcomes = await Promise.allSettled(rows.map((row) => deliver(row, round)));
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') {
        // Recording the outcome failed (database down): the lease will return the message.
        round.lost += 1;
        logger.error({ error: describe(outcome.reason) }, 'Mail outcome could not be recorded');
      }
    }
    return round;
  }

  let intervalMs = 0;
  let started = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let woken = false;

  async function loop(): Promise<void> {
    timer = undefined;
    woken = false;
    try {
      let round: MailWorkerRound;
      do round = await runOnce();
      while (started && round.claimed === batchSize);
    } catch (err) {
      logger.error({ error: describe(err) }, 'Mail worker round failed');
    }
  }

  function schedule(delayMs: number): void {
    if (!started || inFlight || timer) return;
    timer = setTimeout(() => {
      inFlight = loop().finally(() => {
        inFlight = undefined;
        schedule(woken ? 0 : intervalMs);
      });
    }, delayMs);
    // The worker alone must not keep a process (a CLI, a test run) alive.
    timer.unref();
  }

  return {
    runOnce,
    start(every) {
      if (started) return;
      started = true;
      intervalMs = every;
      schedule(0);
    },
    wake() {
      // A wake during a round means a message may have been queued after its claim: go again.
      woken = true;
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
      }
      schedule(0);
    },
    async stop() {
      started = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await inFlight;
    },
  };
}
