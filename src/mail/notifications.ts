import type { UserRow } from '../accounts/repository.ts';
import type { FactorRow } from '../authn/factors/repository.ts';
import type { RequestContext } from '../authn/service.ts';
import type { Repositories } from '../db/store.ts';
import type { Clock } from '../lib/tokens.ts';
import { queueEmail } from './outbox.ts';
import { type EmailContext, renderEmail } from './templates.ts';

/**
 * The emails that state changes trigger. Each writes to the outbox through the caller's
 * transaction, so the mail exists exactly when the change committed.
 */
export function createNotifier(
  ctx: EmailContext,
  clock: Clock,
  /** Issues the "this wasn't me" link an account-activity email carries. */
  reportLink?: (repos: Repositories, userId: string, source: string) => Promise<string>,
) {
  const activity = async (repos: Repositories, user: UserRow, req: RequestContext, source: string) => ({
    firstName: user.first_name,
    at: clock(),
    ip: req.ip ?? 'unknown',
    browser: req.userAgent ?? 'unknown',
    ...(reportLink ? { reportUrl: await reportLink(repos, user.id, source) } : {}),
  });
  const notifier = {
    async enrollment(
      repos: Repositories,
      user: UserRow,
      activationUrl: string,
      expiresAt: number,
      validDays: number,
    ): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'enrollment',
        userId: user.id,
        rendered: renderEmail(
          'enrollment',
          { firstName: user.first_name, username: user.login, activationUrl, expiresAt, validDays },
          ctx,
        ),
        now: clock(),
      });
    },
    async factorEnrolled(repos: Repositories, user: UserRow, factor: FactorRow, req: RequestContext): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'factorEnrolled',
        userId: user.id,
        rendered: renderEmail(
          'factorEnrolled',
          { ...(await activity(repos, user, req, 'factorEnrolled')), method: factor.name },
          ctx,
        ),
        now: clock(),
      });
    },
    async passwordChanged(repos: Repositories, user: UserRow, req: RequestContext): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'passwordChanged',
        userId: user.id,
        rendered: renderEmail('passwordChanged', await activity(repos, user, req, 'passwordChanged'), ctx),
        now: clock(),
      });
    },
    async accountLocked(
      repos: Repositories,
      user: UserRow,
      req: RequestContext,
      options: { unlockUrl?: string; unlockUrlExpiresAt?: number; autoUnlockAt?: number },
    ): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'accountLocked',
        userId: user.id,
        rendered: renderEmail(
          'accountLocked',
          { ...(await activity(repos, user, req, 'accountLocked')), ...options },
          ctx,
        ),
        now: clock(),
      });
    },
    async recovery(
      repos: Repositories,
      user: UserRow,
      link: { kind: 'password' | 'unlock'; url: string; expiresAt: number; validHours: number },
    ): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'recovery',
        userId: user.id,
        rendered: renderEmail('recovery', { firstName: user.first_name, ...link }, ctx),
        now: clock(),
      });
    },
    async accountUnlocked(repos: Repositories, user: UserRow, req: RequestContext): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'accountUnlocked',
        userId: user.id,
        rendered: renderEmail('accountUnlocked', await activity(repos, user, req, 'accountUnlocked'), ctx),
        now: clock(),
      });
    },
    async factorRemoved(repos: Repositories, user: UserRow, method: string, req: RequestContext): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'factorRemoved',
        userId: user.id,
        rendered: renderEmail('factorRemoved', { ...(await activity(repos, user, req, 'factorRemoved')), method }, ctx),
        now: clock(),
      });
    },
    async recoveryQuestionChanged(repos: Repositories, user: UserRow, req: RequestContext): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'recoveryQuestionChanged',
        userId: user.id,
        rendered: renderEmail(
          'recoveryQuestionChanged',
          await activity(repos, user, req, 'recoveryQuestionChanged'),
          ctx,
        ),
        now: clock(),
      });
    },
    async newSignIn(repos: Repositories, user: UserRow, method: string, req: RequestContext): Promise<void> {
      await queueEmail(repos, {
        to: user.email,
        template: 'newSignIn',
        userId: user.id,
        rendered: renderEmail('newSignIn', { ...(await activity(repos, user, req, 'newSignIn')), method }, ctx),
        now: clock(),
      });
    },
  };
  return notifier;
}
export type Notifier = ReturnType<typeof createNotifier>;
