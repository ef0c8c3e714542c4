import { issueEmailLink } from '../authn/email-links.ts';
import type { EnvironmentConfig } from '../config/schema.ts';
import type { Repositories, Store } from '../db/store.ts';
import { type Clock, createId, hashBearerSecret, type RandomBytes } from '../lib/tokens.ts';
import type { ReportRow } from './repository.ts';

/** "This wasn't me" links stay valid for 7 days (issue #3). */
export const REPORT_LINK_DAYS = 7;

const SOURCE = /^[a-zA-Z]{1,60}$/;

/**
 * Suspicious-activity reports: every account-activity email carries a single-use link; using it
 * files a report for Operations, signs the user out everywhere and is audited.
 */
export function createReportService(deps: {
  store: Store;
  environment: Readonly<EnvironmentConfig>;
  clock: Clock;
  random: RandomBytes;
}) {
  const { store, clock } = deps;
  return {
    /** A new link for one notification; earlier links keep working until used or expired. */
    async link(repos: Repositories, userId: string, source: string): Promise<string> {
      const { url } = await issueEmailLink(repos, {
        userId,
        purpose: 'report',
        ttlMs: REPORT_LINK_DAYS * 86_400_000,
        now: clock(),
        random: deps.random,
        keepEarlier: true,
        url: (token) =>
          `${deps.environment.idp.publicUrl}/report?token=${encodeURIComponent(token)}&about=${encodeURIComponent(source)}`,
      });
      return url;
    },

    async inspect(token: string): Promise<'valid' | 'expired' | 'used' | 'unknown'> {
      if (!token || token.length > 200) return 'unknown';
      const row = await store.repos.tokens.findEmailToken(hashBearerSecret(token));
      if (row?.purpose !== 'report') return 'unknown';
      if (row.consumed_at !== null) return 'used';
      return row.expires_at <= clock() ? 'expired' : 'valid';
    },

    /**
     * Files the report: the link is consumed, every session and sign-in in progress of the user
     * ends, every programmatic refresh token is revoked (issue #4), and the report waits for
     * Operations. One transaction: all of it or none.
     */
    async file(
      token: string,
      about: string,
      ctx: { ip: string | null; userAgent: string | null },
    ): Promise<{ ok: true; report: ReportRow } | { ok: false }> {
      if (!token || token.length > 200) return { ok: false };
      const now = clock();
      return store.transaction(async (repos) => {
        const userId = await repos.tokens.consumeEmailToken(hashBearerSecret(token), 'report', now);
        if (!userId) return { ok: false as const };
        const report: ReportRow = {
          id: createId('rpt', deps.random),
          user_id: userId,
          created_at: now,
          source: SOURCE.test(about) ? about : 'unknown',
          details: JSON.stringify({}),
          ip: ctx.ip,
          user_agent: ctx.userAgent?.slice(0, 512) ?? null,
          status: 'open',
          closed_at: null,
          closed_by: null,
          note: null,
        };
        await repos.reports.createReport(report);
        const sessions = await repos.tokens.revokeUserSessions(userId, now);
        await repos.tokens.endUserTransactions(userId, now);
        const refreshTokens = await repos.apiTokens.revokeAllOfUser(userId, now, 'reported');
        const portalSessions = await repos.portalSessions.revokeAllOfUser(userId, now);
        await repos.audit.recordEvent({
          at: now,
          actorId: userId,
          action: 'user.account.report_suspicious_activity',
          targetId: userId,
          outcome: 'success',
          ip: ctx.ip,
          userAgent: ctx.userAgent,
          details: {
            reportId: report.id,
            source: report.source,
            sessionsEnded: sessions,
            portalSessionsEnded: portalSessions,
            refreshTokensRevoked: refreshTokens.length,
          },
        });
        return { ok: true as const, report };
      });
    },
  };
}
export type ReportService = ReturnType<typeof createReportService>;
