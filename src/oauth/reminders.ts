import type { UserStatus } from '../accounts/model.ts';
import type { Store } from '../db/store.ts';
import type { Clock } from '../lib/tokens.ts';
import type { Notifier } from '../mail/notifications.ts';
import type { MailLogger } from '../mail/transport.ts';
import type { ApiRefreshTokenRow } from './refresh-token-repository.ts';

const DAY_MS = 86_400_000;

/**
 * Owners in these statuses get the expiry reminder: they can sign in (or will again once a lockout
 * or a recovery ends) and get a new token. A SUSPENDED or DEPROVISIONED owner cannot, and their
 * tokens are revoked on suspension anyway; STAGED and PROVISIONED users never had one. Their
 * reminders, like those of users that no longer exist, are claimed and skipped, so a job never
 * looks at them again.
 */
export const REMINDER_STATUSES: readonly UserStatus[] = ['ACTIVE', 'RECOVERY', 'PASSWORD_EXPIRED', 'LOCKED_OUT'];

export interface RefreshTokenReminderJobOptions {
  store: Store;
  notifier: Pick<Notifier, 'refreshTokenExpiring'>;
  clock: Clock;
  logger: MailLogger;
  /** The reminder goes out this many days before expiry (`policy.refreshTokenReminderDays`, FAQ: 15). */
  reminderDays: number;
  /** The Programmatic page of the TRAQS website, where a new token is obtained. */
  programmaticUrl: string;
  /** Tokens listed per query. */
  batchSize?: number;
}

/** Sends each refresh token's expiry reminder once. Any number of nodes may run it on one database. */
export interface RefreshTokenReminderJob {
  /** Reminds every token that is due now; resolves with the number of emails queued. */
  runOnce(): Promise<number>;
  /** Runs every `intervalMs`, the first run at once. */
  start(intervalMs: number): void;
  /** Stops scheduling runs and waits for the one in flight. */
  stop(): Promise<void>;
}

type Outcome = 'queued' | 'skipped' | 'taken';

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Creates the expiry-reminder job (DESIGN "API access": a reminder 15 days before expiry). Each
 * token is handled in one transaction that claims its reminder (a conditional update, so exactly
 * one node wins), then queues the email and the audit event: the claim and the mail commit
 * together or not at all, and a failed attempt is retried by the next run.
 */
export function createRefreshTokenReminderJob(options: RefreshTokenReminderJobOptions): RefreshTokenReminderJob {
  const { store, notifier, clock, logger, reminderDays, programmaticUrl } = options;
  const batchSize = options.batchSize ?? 100;

  function remind(listed: ApiRefreshTokenRow, now: number): Promise<Outcome> {
    return store.transaction(async (repos) => {
      if (!(await repos.apiTokens.claimReminder(listed.id_hash, now))) return 'taken';
      // Read again under the claim: the label or the last use may have changed since the listing.
      const token = (await repos.apiTokens.find(listed.id_hash)) ?? listed;
      const user = await repos.users.findUserById(token.user_id);
      const event = { at: now, actorId: null, targetId: token.user_id, ip: null, userAgent: null };
      const details = {
        tokenIdHash: token.id_hash,
        clientId: token.client_id,
        label: token.label,
        expiresAt: token.expires_at,
      };
      if (!user || !REMINDER_STATUSES.includes(user.status as UserStatus)) {
        const reason = user ? `status ${user.status}` : 'no such user';
        await repos.audit.recordEvent({
          ...event,
          action: 'oauth.refresh_token.reminder_skipped',
          outcome: 'denied',
          details: { ...details, reason },
        });
        return 'skipped';
      }
      await notifier.refreshTokenExpiring(repos, user, token, programmaticUrl);
      await repos.audit.recordEvent({
        ...event,
        action: 'oauth.refresh_token.reminder_sent',
        outcome: 'success',
        details,
      });
      return 'queued';
    });
  }

  /** One run; `keepGoing` lets `stop()` end it between batches. */
  async function run(keepGoing: () => boolean): Promise<number> {
    const now = clock();
    const dueBefore = now + reminderDays * DAY_MS;
    let queued = 0;
    let after: { expiresAt: number; idHash: string } | undefined;
    do {
      const due = await store.repos.apiTokens.listReminderDue(now, dueBefore, batchSize, after);
      for (const token of due) {
        const log = { userId: token.user_id, expiresAt: token.expires_at };
        try {
          const outcome = await remind(token, now);
          if (outcome === 'queued') {
            queued += 1;
            logger.info(log, 'Refresh token expiry reminder queued');
          } else if (outcome === 'skipped') {
            logger.info(log, 'Refresh token expiry reminder skipped: owner missing or not active');
          }
        } catch (err) {
          // Rolled back, claim included: the next run tries again, until the token expires.
          logger.error({ ...log, error: describe(err) }, 'Refresh token expiry reminder failed; will retry');
        }
      }
      const last = due.at(-1);
      if (!last || due.length < batchSize) break;
      // Keyset paging: tokens that failed above are still due and must not be listed again.
      after = { expiresAt: last.expires_at, idHash: last.id_hash };
    } while (keepGoing());
    return queued;
  }

  let intervalMs = 0;
  let started = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  async function loop(): Promise<void> {
    timer = undefined;
    try {
      await run(() => started);
    } catch (err) {
      // The database may be down: log, and try again at the next tick.
      logger.error({ error: describe(err) }, 'Refresh token reminder run failed');
    }
  }

  function schedule(delayMs: number): void {
    if (!started || inFlight || timer) return;
    timer = setTimeout(() => {
      inFlight = loop().finally(() => {
        inFlight = undefined;
        schedule(intervalMs);
      });
    }, delayMs);
    // The job alone must not keep a process (a CLI, a test run) alive.
    timer.unref();
  }

  return {
    runOnce: () => run(() => true),
    start(every) {
      if (started) return;
      started = true;
      intervalMs = every;
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
