import type { Store } from '../db/store.ts';
import type { Clock, RandomBytes } from '../lib/tokens.ts';
import { createBearerSecret, hashBearerSecret } from '../lib/tokens.ts';
import type { SessionRow } from './token-repository.ts';

export interface SessionPolicy {
  idleMinutes: number;
  absoluteHours: number;
}

/**
 * Browser sessions of the idp. The cookie holds a 256-bit random id; the database holds only its
 * SHA-256 (OWASP Session Management Cheat Sheet). Idle and absolute timeouts per NIST 800-63B §7.2.
 */
export function createSessionManager(store: Store, policy: SessionPolicy, clock: Clock, random: RandomBytes) {
  const idleMs = policy.idleMinutes * 60_000;
  const absoluteMs = policy.absoluteHours * 3_600_000;
  return {
    /** A new id at every sign-in, so a fixated pre-login id is never promoted (OWASP ASVS 3.2.1). */
    async create(
      userId: string,
      amr: string[],
      ctx: { ip: string | null; userAgent: string | null },
    ): Promise<{ id: string; row: SessionRow }> {
      const id = createBearerSecret(random);
      const now = clock();
      const row: SessionRow = {
        id_hash: hashBearerSecret(id),
        user_id: userId,
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now + idleMs,
        absolute_expires_at: now + absoluteMs,
        ip: ctx.ip,
        user_agent: ctx.userAgent?.slice(0, 512) ?? null,
        amr: JSON.stringify(amr),
        // Signing in verified a factor just now (re-verification window, issue: 5 minutes).
        verified_at: now,
        revoked_at: null,
      };
      await store.repos.tokens.createSession(row);
      return { id, row };
    },
    /** The live session for a cookie value, its idle timeout slid forward; undefined if none. */
    async resume(id: string | undefined): Promise<SessionRow | undefined> {
      if (!id || id.length > 100) return undefined;
      const hash = hashBearerSecret(id);
      const now = clock();
      const row = await store.repos.tokens.findActiveSession(hash, now);
      if (!row) return undefined;
      // Write at most once a minute: the idle window does not need millisecond precision.
      if (now - row.last_seen_at > 60_000) {
        await store.repos.tokens.touchSession(hash, now, Math.min(now + idleMs, row.absolute_expires_at));
      }
      return row;
    },
    /** Records that the user just verified a factor in this session (step-up for sensitive changes). */
    async markVerified(id: string): Promise<void> {
      await store.repos.tokens.markSessionVerified(hashBearerSecret(id), clock());
    },
    async end(id: string | undefined): Promise<void> {
      if (id && id.length <= 100) await store.repos.tokens.revokeSession(hashBearerSecret(id), clock());
    },
  };
}
export type SessionManager = ReturnType<typeof createSessionManager>;
