import type { UserRow } from '../accounts/repository.ts';
import type { FactorRow } from '../authn/factors/repository.ts';
import type { RequestContext } from '../authn/service.ts';
import type { Repositories } from '../db/store.ts';
import type { Clock } from '../lib/tokens.ts';
import type { ApiRefreshTokenRow } from '../oauth/refresh-token-repository.ts';
import { queueEmail } from './outbox.ts';
import {
  type AdminTeam,
  type EmailContext,
  type EnrollmentOccasion,
  renderEmail,
  type TemplateData,
  type TemplateName,
} from './templates.ts';

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

  const change = (user: UserRow, by: AdminTeam) => ({ firstName: user.first_name, at: clock(), by });

  /** When, where and how, plus the "this wasn't me" link for this notification. */
  const activity = async (repos: Repositories, user: UserRow, req: RequestContext, source: TemplateName) => ({
    firstName: user.first_name,
    at: clock(),
    ip: req.ip ?? 'unknown',
    browser: req.userAgent ?? 'unknown',
    ...(reportLink ? { reportUrl: await reportLink(repos, user.id, source) } : {}),
  });

  return {
    enrollment: (
      repos: Repositories,
      user: UserRow,
      activationUrl: string,
      expiresAt: number,
      validDays: number,
      occasion?: EnrollmentOccasion,
    ) =>
      send(repos, user, 'enrollment', {
        ...(occasion ? { occasion } : {}),
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
    /** A FastPass assertion was refused because its signature counter went backwards. */
    signCounterRegressed: async (repos: Repositories, user: UserRow, method: string, req: RequestContext) =>
      send(repos, user, 'signCounterRegressed', {
        ...(await activity(repos, user, req, 'signCounterRegressed')),
        method,
      }),
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

    // Changes an administrator made (issue #7): the user hears who did it and whom to ask.
    accountSuspended: (repos: Repositories, user: UserRow, by: AdminTeam) =>
      send(repos, user, 'accountSuspended', change(user, by)),
    accountUnsuspended: (repos: Repositories, user: UserRow, by: AdminTeam) =>
      send(repos, user, 'accountUnsuspended', change(user, by)),
    accountDeactivated: (repos: Repositories, user: UserRow, by: AdminTeam) =>
      send(repos, user, 'accountDeactivated', change(user, by)),
    accountUnlockedByAdmin: (repos: Repositories, user: UserRow, by: AdminTeam) =>
      send(repos, user, 'accountUnlockedByAdmin', change(user, by)),
    factorsReset: (repos: Repositories, user: UserRow, by: AdminTeam, methods: string[], all: boolean) =>
      send(repos, user, 'factorsReset', { ...change(user, by), methods, all }),
    passwordResetBySupport: (
      repos: Repositories,
      user: UserRow,
      link: { url: string; expiresAt: number; validHours: number },
    ) => send(repos, user, 'passwordResetBySupport', { firstName: user.first_name, ...link }),
    switchedToFederated: (repos: Repositories, user: UserRow, by: AdminTeam) =>
      send(repos, user, 'switchedToFederated', change(user, by)),
    appAccessChanged: (repos: Repositories, user: UserRow, by: AdminTeam, app: string, assigned: boolean) =>
      send(repos, user, 'appAccessChanged', { ...change(user, by), app, assigned }),
    refreshTokenRevokedBySupport: (
      repos: Repositories,
      user: UserRow,
      by: AdminTeam,
      label: string,
      programmaticUrl: string,
    ) => send(repos, user, 'refreshTokenRevokedBySupport', { ...change(user, by), label, programmaticUrl }),
    /** Sent to `user` at `to` (the old address too, when the email address itself changed). */
    personalInfoChanged: (repos: Repositories, user: UserRow, by: AdminTeam, fields: string[], to?: string) =>
      send(repos, to ? { ...user, email: to } : user, 'personalInfoChanged', { ...change(user, by), fields }),
    /** To the SAA who made the request. */
    requestDecided: (repos: Repositories, saa: UserRow, decision: Omit<TemplateData['requestDecided'], 'firstName'>) =>
      send(repos, saa, 'requestDecided', { firstName: saa.first_name, ...decision }),
  };
}
export type Notifier = ReturnType<typeof createNotifier>;
