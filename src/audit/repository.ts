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

function auditRow(e: AuditEvent) {
  return {
    at: e.at,
    actor_id: e.actorId,
    action: e.action,
    target_id: e.targetId,
    outcome: e.outcome,
    ip: e.ip,
    user_agent: e.userAgent?.slice(0, 512) ?? null,
    details: JSON.stringify(e.details ?? {}),
  };
}

/** Rows per INSERT of {@link recordEvents}: 8 parameters each stays far below SQLite's and PostgreSQL's limits. */
const ROWS_PER_INSERT = 500;

/** The append-only audit log: there is no update or delete on this interface. */
export function createAuditRepository(db: Kysely<Database>) {
  return {
    async recordEvent(e: AuditEvent): Promise<void> {
      await db.insertInto('audit_events').values(auditRow(e)).execute();
    },
    /**
     * Many events in multi-row INSERTs, in order (the download service's batches): one statement
     * per 500 events instead of one round trip each.
     */
    async recordEvents(events: readonly AuditEvent[]): Promise<void> {
      for (let i = 0; i < events.length; i += ROWS_PER_INSERT) {
        await db
          .insertInto('audit_events')
          .values(events.slice(i, i + ROWS_PER_INSERT).map(auditRow))
          .execute();
      }
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
