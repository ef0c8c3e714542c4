import type { UserRow } from '../accounts/repository.ts';
import type { FactorRow } from '../authn/factors/repository.ts';
import type { RequestContext } from '../authn/service.ts';
import type { Repositories } from '../db/store.ts';
import type { Clock } from '../lib/tokens.ts';
import type { ApiRefreshTokenRow } from '../oauth/refresh-token-repository.ts';
import { queueEmail } from './outbox.ts';
import { type EmailContext, renderEmail, type TemplateData, type TemplateName } from './templates.ts';

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
  async function send<T extends TemplateName>(repos: Repositories, user: UserRow, template: T, data: TemplateData[T]) {
    await queueEmail(repos, {
      to: user.email,
      template,
      userId: user.id,
      rendered: renderEmail(template, data, ctx),
      now: clock(),
    });
  }

  /** When, where and how, plus the "this wasn't me" link for this notification. */
  const activity = async (repos: Repositories, user: UserRow, req: RequestContext, source: TemplateName) => ({
    firstName: user.first_name,
    at: clock(),
    ip: req.ip ?? 'unknown',
    browser: req.userAgent ?? 'unknown',
    ...(reportLink ? { reportUrl: await reportLink(repos, user.id, source) } : {}),
  });

  return {
    enrollment: (repos: Repositories, user: UserRow, activationUrl: string, expiresAt: number, validDays: number) =>
      send(repos, user, 'enrollment', {
        firstName: user.first_name,
        username: user.login,
        activationUrl,
        expiresAt,
        validDays,
      }),
    factorEnrolled: async (repos: Repositories, user: UserRow, factor: FactorRow, req: RequestContext) =>
      send(repos, user, 'factorEnrolled', {
        ...(await activity(repos, user, req, 'factorEnrolled')),
        method: factor.name,
      }),
    factorRemoved: async (repos: Repositories, user: UserRow, method: string, req: RequestContext) =>
      send(repos, user, 'factorRemoved', { ...(await activity(repos, user, req, 'factorRemoved')), method }),
    passwordChanged: async (repos: Repositories, user: UserRow, req: RequestContext) =>
      send(repos, user, 'passwordChanged', await activity(repos, user, req, 'passwordChanged')),
    recoveryQuestionChanged: async (repos: Repositories, user: UserRow, req: RequestContext) =>
      send(repos, user, 'recoveryQuestionChanged', await activity(repos, user, req, 'recoveryQuestionChanged')),
    newSignIn: async (repos: Repositories, user: UserRow, method: string, req: RequestContext) =>
      send(repos, user, 'newSignIn', { ...(await activity(repos, user, req, 'newSignIn')), method }),
    accountLocked: async (
      repos: Repositories,
      user: UserRow,
      req: RequestContext,
      options: { unlockUrl?: string; unlockUrlExpiresAt?: number; autoUnlockAt?: number },
    ) => send(repos, user, 'accountLocked', { ...(await activity(repos, user, req, 'accountLocked')), ...options }),
    accountUnlocked: async (repos: Repositories, user: UserRow, req: RequestContext) =>
      send(repos, user, 'accountUnlocked', await activity(repos, user, req, 'accountUnlocked')),
    recovery: (
      repos: Repositories,
      user: UserRow,
      link: { kind: 'password' | 'unlock'; url: string; expiresAt: number; validHours: number },
    ) => send(repos, user, 'recovery', { firstName: user.first_name, ...link }),
    /** A refresh token for programmatic access was issued; `programmaticUrl` is where it is revoked. */
    refreshTokenIssued: async (
      repos: Repositories,
      user: UserRow,
      token: { label: string; expiresAt: number },
      req: RequestContext,
      programmaticUrl: string,
    ) =>
      send(repos, user, 'refreshTokenIssued', {
        ...(await activity(repos, user, req, 'refreshTokenIssued')),
        label: token.label,
        expiresAt: token.expiresAt,
        programmaticUrl,
      }),
    /** The expiry reminder; `programmaticUrl` is where a new token is obtained. */
    refreshTokenExpiring: (
      repos: Repositories,
      user: UserRow,
      token: Pick<ApiRefreshTokenRow, 'label' | 'created_at' | 'expires_at' | 'last_used_at'>,
      programmaticUrl: string,
    ) =>
      send(repos, user, 'refreshTokenExpiring', {
        firstName: user.first_name,
        label: token.label,
        createdAt: token.created_at,
        expiresAt: token.expires_at,
        lastUsedAt: token.last_used_at,
        programmaticUrl,
      }),
  };
}
export type Notifier = ReturnType<typeof createNotifier>;
