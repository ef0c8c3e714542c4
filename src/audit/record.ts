import type { Clock } from '../lib/tokens.ts';
import type { AuditEvent, AuditRepository } from './repository.ts';

/** Where a request came from, as the audit log keeps it. */
export interface RequestOrigin {
  ip: string | null;
  userAgent: string | null;
}

/**
 * The audit events of a user's own doing (signing in, changing a password, adding a method): the
 * user is both actor and target (null for a username nobody has), and the event is stamped with
 * `clock` when it is recorded. Sign-in, the profile and the lockout record through this.
 */
export function createUserEventRecorder(clock: Clock) {
  return function recordUserEvent(
    repos: { audit: AuditRepository },
    ctx: RequestOrigin,
    action: string,
    outcome: AuditEvent['outcome'],
    userId: string | null,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    return repos.audit.recordEvent({
      at: clock(),
      actorId: userId,
      action,
      targetId: userId,
      outcome,
      ip: ctx.ip,
      userAgent: ctx.userAgent,
      details,
    });
  };
}
