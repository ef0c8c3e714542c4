import type { Repositories, Store } from '../db/store.ts';
import type { Clock, RandomBytes } from '../lib/tokens.ts';
import { createBearerSecret, hashBearerSecret } from '../lib/tokens.ts';
import type { NewPortalSession, PortalSessionRow } from './session-repository.ts';

export interface PortalSessionPolicy {
  idleMinutes: number;
  absoluteHours: number;
}

/** The longest cookie value accepted: a 256-bit base64url id is 43 characters. */
const MAX_ID_LENGTH = 100;

/**
 * Browser sessions of the portal, as the idp keeps its own (src/authn/sessions.ts): the cookie
 * holds a 256-bit random id, the database only its SHA-256 (OWASP Session Management Cheat Sheet);
 * idle and absolute timeouts per NIST 800-63B §7.2.
 */
export function createPortalSessionManager(
  store: Store,
  policy: PortalSessionPolicy,
  clock: Clock,
  random: RandomBytes,
) {
  const idleMs = policy.idleMinutes * 60_000;
  const absoluteMs = policy.absoluteHours * 3_600_000;
  return {
    /**
     * A new session with a new id, created at every sign-in so that an id planted before the
     * sign-in is never promoted (OWASP ASVS 3.2.1). `repos` lets the caller create it inside its
     * transaction, with the audit event.
     */
    async create(
      userId: string,
      amr: string[],
      ctx: { ip: string | null; userAgent: string | null },
      repos: Pick<Repositories, 'portalSessions'> = store.repos,
    ): Promise<{ id: string; row: NewPortalSession }> {
      const id = createBearerSecret(random);
      const now = clock();
      const row: NewPortalSession = {
        id_hash: hashBearerSecret(id),
        user_id: userId,
        amr: JSON.stringify(amr).slice(0, 200),
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now + idleMs,
        absolute_expires_at: now + absoluteMs,
        ip: ctx.ip?.slice(0, 64) ?? null,
        user_agent: ctx.userAgent?.slice(0, 512) ?? null,
        revoked_at: null,
      };
      await repos.portalSessions.create(row);
      return { id, row };
    },

    /** The live session for a cookie value, its idle timeout slid forward; undefined if none. */
    async resume(id: string | undefined): Promise<PortalSessionRow | undefined> {
      if (!id || id.length > MAX_ID_LENGTH) return undefined;
      const hash = hashBearerSecret(id);
      const now = clock();
      const row = await store.repos.portalSessions.findActive(hash, now);
      if (!row) return undefined;
      // At most one write a minute: the idle window does not need millisecond precision.
      if (now - row.last_seen_at > 60_000) {
        await store.repos.portalSessions.touch(hash, now, Math.min(now + idleMs, row.absolute_expires_at));
      }
      return row;
    },

    /** Ends the session of a cookie value, if there is one. */
    async end(id: string | undefined, repos: Pick<Repositories, 'portalSessions'> = store.repos): Promise<boolean> {
      if (!id || id.length > MAX_ID_LENGTH) return false;
      return repos.portalSessions.revoke(hashBearerSecret(id), clock());
    },
  };
}
export type PortalSessionManager = ReturnType<typeof createPortalSessionManager>;
