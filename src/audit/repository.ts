import type { Kysely, Selectable } from 'kysely';
import type { AuditEventsTable, Database } from '../db/schema.ts';

export type AuditRow = Selectable<AuditEventsTable>;

export interface AuditEvent {
  at: number;
  actorId: string | null;
  action: string;
  targetId: string | null;
  outcome: 'success' | 'failure' | 'denied';
  ip: string | null;
  userAgent: string | null;
  details?: Record<string, unknown>;
}

export interface AuditFilter {
  actorId?: string;
  targetId?: string;
  action?: string;
  limit?: number;
}

/** The append-only audit log: there is no update or delete on this interface. */
export function createAuditRepository(db: Kysely<Database>) {
  return {
    async recordEvent(e: AuditEvent): Promise<void> {
      await db
        .insertInto('audit_events')
        .values({
          at: e.at,
          actor_id: e.actorId,
          action: e.action,
          target_id: e.targetId,
          outcome: e.outcome,
          ip: e.ip,
          user_agent: e.userAgent?.slice(0, 512) ?? null,
          details: JSON.stringify(e.details ?? {}),
        })
        .execute();
    },
    async listEvents(filter: AuditFilter = {}): Promise<AuditRow[]> {
      let q = db
        .selectFrom('audit_events')
        .selectAll()
        .orderBy('id', 'desc')
        .limit(filter.limit ?? 100);
      if (filter.actorId) q = q.where('actor_id', '=', filter.actorId);
      if (filter.targetId) q = q.where('target_id', '=', filter.targetId);
      if (filter.action) q = q.where('action', '=', filter.action);
      return q.execute();
    },
  };
}
export type AuditRepository = ReturnType<typeof createAuditRepository>;
