import type { App, UserStatus } from '../accounts/model.ts';
import type { UserRow } from '../accounts/repository.ts';
import type { RequestOrigin } from '../audit/record.ts';
import type { AuditEvent } from '../audit/repository.ts';
import type { Repositories, Store } from '../db/store.ts';
import type { Firm } from '../firms/repository.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Clock } from '../lib/tokens.ts';
import { hashBearerSecret } from '../lib/tokens.ts';
import type { ApiRefreshTokenRow } from '../oauth/refresh-token-repository.ts';
import type { PortalSessionRow } from './session-repository.ts';
import type { PortalSessionManager } from './sessions.ts';

/**
 * Statuses in which a signed-in user keeps using the portal. A lockout does not end a session (as on
 * the MFA profile); suspension and deactivation do, and the other statuses cannot sign in at all.
 */
const PORTAL_STATUSES: readonly UserStatus[] = ['ACTIVE', 'RECOVERY', 'PASSWORD_EXPIRED', 'LOCKED_OUT'];

/** Revoked and expired tokens stay on the Programmatic page this long, so the user sees what happened. */
export const ENDED_TOKENS_SHOWN_DAYS = 90;

/** Who is signed in to the portal, with what the pages show about them. */
export interface PortalUser {
  user: UserRow;
  firm: Firm | undefined;
  apps: App[];
  session: PortalSessionRow;
}

export type AdmitResult =
  | { kind: 'admitted'; user: UserRow; sessionId: string }
  | { kind: 'not-assigned'; user: UserRow }
  | { kind: 'inactive' };

export type RevokeResult = { kind: 'revoked'; token: ApiRefreshTokenRow } | { kind: 'not-found' };

export type LabelOutcome = { kind: 'labelled'; token: ApiRefreshTokenRow } | { kind: 'unknown-token' };

export interface PortalServiceDeps {
  store: Store;
  sessions: PortalSessionManager;
  clock: Clock;
  refreshTokenMonths: number;
  /** Seals the session's download-API access token at rest (the environment's key). */
  secretBox: SecretBox;
}

/** The associated data binding a sealed download token to its session: a copied value opens nowhere else. */
const downloadTokenAad = (sessionIdHash: string) => `portal-download-token:${sessionIdHash}`;

/**
 * What the portal does with its own data and the shared repositories: who may sign in, sessions,
 * and the user's programmatic refresh tokens (listed, labelled, revoked with an audit event).
 */
export function createPortalService(deps: PortalServiceDeps) {
  const { store, sessions, clock } = deps;

  const audit = (
    repos: Pick<Repositories, 'audit'>,
    ctx: RequestOrigin,
    action: string,
    outcome: AuditEvent['outcome'],
    userId: string | null,
    details: Record<string, unknown>,
  ) =>
    repos.audit.recordEvent({
      at: clock(),
      actorId: userId,
      action,
      targetId: userId,
      outcome,
      ip: ctx.ip,
      userAgent: ctx.userAgent,
      details: { app: 'portal', ...details },
    });

  async function loadUser(userId: string): Promise<{ user: UserRow; apps: App[] } | undefined> {
    const [user, apps] = await Promise.all([
      store.repos.users.findUserById(userId),
      store.repos.users.listApps(userId),
    ]);
    if (!user || !PORTAL_STATUSES.includes(user.status as UserStatus)) return undefined;
    return { user, apps };
  }

  return {
    /**
     * After the idp signed someone in: a new portal session if the account may use the portal
     * and is assigned to it (DESIGN "Apps": otherwise 403 "App not assigned"). Audited either way.
     */
    async admit(
      sub: string,
      amr: string[],
      ctx: RequestOrigin,
      downloadToken?: { value: string; expiresAt: number },
    ): Promise<AdmitResult> {
      const found = await loadUser(sub);
      if (!found) {
        await audit(store.repos, ctx, 'app.generic.unauth_app_access_attempt', 'denied', null, {
          sub: sub.slice(0, 64),
          reason: 'inactive',
        });
        return { kind: 'inactive' };
      }
      const { user, apps } = found;
      if (!apps.includes('portal')) {
        await audit(store.repos, ctx, 'app.generic.unauth_app_access_attempt', 'denied', user.id, {
          reason: 'app not assigned',
        });
        return { kind: 'not-assigned', user };
      }
      return store.transaction(async (repos) => {
        const { id, row } = await sessions.create(user.id, amr, ctx, repos);
        if (downloadToken) {
          const sealed = deps.secretBox.seal(Buffer.from(downloadToken.value, 'utf8'), downloadTokenAad(row.id_hash));
          await repos.portalSessions.setDownloadToken(row.id_hash, sealed, downloadToken.expiresAt);
        }
        await audit(repos, ctx, 'app.portal.session.start', 'success', user.id, { amr });
        return { kind: 'admitted' as const, user, sessionId: id };
      });
    },

    /** The user of a live session, or undefined when the session or the account's access ended. */
    async signedInUser(sessionId: string | undefined): Promise<PortalUser | undefined> {
      const session = await sessions.resume(sessionId);
      if (!session) return undefined;
      const found = await loadUser(session.user_id);
      if (!found?.apps.includes('portal')) return undefined;
      const firm = await store.repos.firms.findFirmById(found.user.firm_id);
      return { ...found, firm, session };
    },

    /**
     * The signed-in user's access token for the download API, if the session holds one that is
     * valid for at least another minute.
     */
    downloadToken(who: PortalUser): string | undefined {
      const { download_token_sealed: sealed, download_token_expires_at: expiresAt, id_hash } = who.session;
      if (!sealed || !expiresAt || expiresAt - clock() < 60_000) return undefined;
      try {
        return deps.secretBox.open(sealed, downloadTokenAad(id_hash)).toString('utf8');
      } catch {
        return undefined;
      }
    },

    /** Ends the portal session of a cookie value (sign-out), with its audit event. */
    async signOut(sessionId: string | undefined, who: PortalUser | undefined, ctx: RequestOrigin): Promise<void> {
      await store.transaction(async (repos) => {
        const ended = await sessions.end(sessionId, repos);
        if (ended && who) await audit(repos, ctx, 'app.portal.session.end', 'success', who.user.id, {});
      });
    },

    /** The user's refresh tokens, newest first: live ones and those that ended recently. */
    listTokens(userId: string): Promise<ApiRefreshTokenRow[]> {
      return store.repos.apiTokens.listForUser(userId, clock() - ENDED_TOKENS_SHOWN_DAYS * 86_400_000);
    },

    /**
     * Gives a just-issued refresh token the user's label. The idp recorded the token when it issued
     * it; only the hash is looked up, the token itself is stored nowhere.
     */
    async labelIssuedToken(refreshToken: string, userId: string, label: string): Promise<LabelOutcome> {
      const idHash = hashBearerSecret(refreshToken);
      await store.repos.apiTokens.setLabel(idHash, userId, label);
      const token = await store.repos.apiTokens.find(idHash);
      return token && token.user_id === userId ? { kind: 'labelled', token } : { kind: 'unknown-token' };
    },

    /** Where a token's expiry is unknown (not recorded): issue time plus the policy's months. */
    expiryFromNow(): number {
      const d = new Date(clock());
      d.setUTCMonth(d.getUTCMonth() + deps.refreshTokenMonths);
      return d.getTime();
    },

    /** Revokes one of the user's own tokens; another user's token looks exactly like one that does not exist. */
    async revokeToken(userId: string, idHash: string, ctx: RequestOrigin): Promise<RevokeResult> {
      return store.transaction(async (repos) => {
        const token = await repos.apiTokens.revoke(idHash, clock(), 'user', userId);
        if (!token) return { kind: 'not-found' as const };
        await audit(repos, ctx, 'app.oauth2.as.token.revoke', 'success', userId, {
          tokenType: 'refresh_token',
          clientId: token.client_id,
          label: token.label,
          reason: 'user',
        });
        return { kind: 'revoked' as const, token };
      });
    },

    /**
     * Revokes a refresh token the portal received but will not show (it came from a sign-in as
     * another user, or one that was not fresh), so no live token is left that nobody holds.
     */
    async discardToken(refreshToken: string, reason: string, ctx: RequestOrigin, actorId: string): Promise<void> {
      await store.transaction(async (repos) => {
        const token = await repos.apiTokens.revoke(hashBearerSecret(refreshToken), clock(), reason);
        if (token) {
          await audit(repos, ctx, 'app.oauth2.as.token.revoke', 'success', actorId, {
            tokenType: 'refresh_token',
            clientId: token.client_id,
            owner: token.user_id,
            reason,
          });
        }
      });
    },
  };
}
export type PortalService = ReturnType<typeof createPortalService>;
