import { type Expression, type Kysely, type Selectable, type SqlBool, sql } from 'kysely';
import type { UserRow } from '../accounts/repository.ts';
import type { AuditRow } from '../audit/repository.ts';
import type { Database, SuspiciousReportsTable } from '../db/schema.ts';

export type ReportRow = Selectable<SuspiciousReportsTable>;

/** One comparison of a filter: `column eq value` or `column sw value` (starts with). */
export interface Condition<C extends string> {
  column: C;
  op: 'eq' | 'sw';
  value: string;
}

/** Conditions joined by one operator (Okta's filter without parentheses). */
export interface ConditionSet<C extends string> {
  combinator: 'and' | 'or';
  terms: Condition<C>[];
}

export type UserColumn = 'id' | 'status' | 'login' | 'email' | 'first_name' | 'last_name' | 'firm_id';
export type AuditColumn = 'action' | 'outcome' | 'actor_id' | 'target_id' | 'ip';

export interface UserPageQuery {
  /** Only this firm (an SAA's view). */
  firmId?: string;
  filter?: ConditionSet<UserColumn>;
  /** Okta's `q`: first name, last name or email starting with this, case-insensitive. */
  prefix?: string;
  /** Keyset pagination: users with an id after this one. */
  afterId?: string;
  limit: number;
}

export interface AuditPageQuery {
  since: number;
  until?: number;
  filter?: ConditionSet<AuditColumn>;
  /** Okta's `q`: every keyword must appear in the action, the details or an id (case-insensitive). */
  keywords?: string[];
  /** Keyset pagination over the event id in the direction of `order`. */
  afterId?: number;
  order: 'asc' | 'desc';
  limit: number;
}

/** `LIKE` pattern for "starts with", with the wildcards of the value escaped (escape character `!`). */
function startsWith(value: string): string {
  return `${value.replace(/[!%_]/g, (c) => `!${c}`)}%`;
}
function contains(value: string): string {
  return `%${value.replace(/[!%_]/g, (c) => `!${c}`)}%`;
}

/**
 * Read models for the administration consoles and the management API: pages of users and audit
 * events in a stable order, the kinds of methods each user has, suspicious-activity reports by id.
 * Reads only; every change goes through the domain repositories.
 */
export function createAdminQueryRepository(db: Kysely<Database>) {
  return {
    /** Users ordered by id (a stable cursor for `after`), at most `limit`. */
    async pageUsers(query: UserPageQuery): Promise<UserRow[]> {
      let q = db.selectFrom('users').selectAll().orderBy('id').limit(query.limit);
      if (query.firmId) q = q.where('firm_id', '=', query.firmId);
      if (query.afterId) q = q.where('id', '>', query.afterId);
      const filter = query.filter;
      if (filter?.terms.length) {
        q = q.where((eb) => {
          const parts: Expression<SqlBool>[] = filter.terms.map((t) => {
            // Logins and emails are matched case-insensitively, as Okta does.
            const ci = t.column === 'login' || t.column === 'email';
            const value = ci ? t.value.toLowerCase() : t.value;
            const col = ci ? sql<string>`lower(${sql.ref(t.column)})` : sql<string>`${sql.ref(t.column)}`;
            return t.op === 'eq' ? eb(col, '=', value) : sql<SqlBool>`${col} like ${startsWith(value)} escape '!'`;
          });
          return filter.combinator === 'and' ? eb.and(parts) : eb.or(parts);
        });
      }
      if (query.prefix) {
        const pattern = startsWith(query.prefix.toLowerCase());
        q = q.where((eb) =>
          eb.or(
            (['first_name', 'last_name', 'email'] as const).map(
              (c) => sql<SqlBool>`lower(${sql.ref(c)}) like ${pattern} escape '!'`,
            ),
          ),
        );
      }
      return q.execute();
    },

    async usersByIds(ids: readonly string[]): Promise<UserRow[]> {
      if (!ids.length) return [];
      return db
        .selectFrom('users')
        .selectAll()
        .where('id', 'in', [...ids])
        .execute();
    },

    /** The active factors (type and provider) of each of these users. */
    async activeFactorKinds(userIds: readonly string[]): Promise<Map<string, { type: string; provider: string }[]>> {
      const out = new Map<string, { type: string; provider: string }[]>();
      if (!userIds.length) return out;
      const rows = await db
        .selectFrom('factors')
        .select(['user_id', 'factor_type', 'provider'])
        .where('user_id', 'in', [...userIds])
        .where('status', '=', 'ACTIVE')
        .orderBy('created_at')
        .execute();
      for (const r of rows) {
        const list = out.get(r.user_id) ?? [];
        list.push({ type: r.factor_type, provider: r.provider });
        out.set(r.user_id, list);
      }
      return out;
    },

    /** The roles of each of these users. */
    async rolesOf(userIds: readonly string[]): Promise<Map<string, string[]>> {
      const out = new Map<string, string[]>();
      if (!userIds.length) return out;
      const rows = await db
        .selectFrom('user_roles')
        .select(['user_id', 'role'])
        .where('user_id', 'in', [...userIds])
        .orderBy('role')
        .execute();
      for (const r of rows) out.set(r.user_id, [...(out.get(r.user_id) ?? []), r.role]);
      return out;
    },

    /** The apps assigned to each of these users. */
    async appsOf(userIds: readonly string[]): Promise<Map<string, string[]>> {
      const out = new Map<string, string[]>();
      if (!userIds.length) return out;
      const rows = await db
        .selectFrom('app_assignments')
        .select(['user_id', 'app'])
        .where('user_id', 'in', [...userIds])
        .orderBy('app')
        .execute();
      for (const r of rows) out.set(r.user_id, [...(out.get(r.user_id) ?? []), r.app]);
      return out;
    },

    /** Users assigned to an app, ordered by user id, after `afterId`. */
    async pageAppUsers(app: string, limit: number, afterId?: string): Promise<(UserRow & { assigned_at: number })[]> {
      let q = db
        .selectFrom('app_assignments')
        .innerJoin('users', 'users.id', 'app_assignments.user_id')
        .selectAll('users')
        .select('app_assignments.assigned_at')
        .where('app_assignments.app', '=', app)
        .orderBy('users.id')
        .limit(limit);
      if (afterId) q = q.where('users.id', '>', afterId);
      return q.execute();
    },

    async findAppAssignment(userId: string, app: string): Promise<{ assigned_at: number } | undefined> {
      return db
        .selectFrom('app_assignments')
        .select('assigned_at')
        .where('user_id', '=', userId)
        .where('app', '=', app)
        .executeTakeFirst();
    },

    /** Audit events in `order` of id, published in [since, until). */
    async pageAuditEvents(query: AuditPageQuery): Promise<AuditRow[]> {
      let q = db
        .selectFrom('audit_events')
        .selectAll()
        .where('at', '>=', query.since)
        .orderBy('id', query.order)
        .limit(query.limit);
      if (query.until !== undefined) q = q.where('at', '<', query.until);
      if (query.afterId !== undefined) q = q.where('id', query.order === 'asc' ? '>' : '<', query.afterId);
      const filter = query.filter;
      if (filter?.terms.length) {
        q = q.where((eb) => {
          const parts: Expression<SqlBool>[] = filter.terms.map((t) =>
            t.op === 'eq'
              ? eb(t.column, '=', t.value)
              : sql<SqlBool>`${sql.ref(t.column)} like ${startsWith(t.value)} escape '!'`,
          );
          return filter.combinator === 'and' ? eb.and(parts) : eb.or(parts);
        });
      }
      for (const word of query.keywords ?? []) {
        const pattern = contains(word.toLowerCase());
        q = q.where((eb) =>
          eb.or(
            (['action', 'details', 'actor_id', 'target_id'] as const).map(
              (c) => sql<SqlBool>`lower(coalesce(${sql.ref(c)}, '')) like ${pattern} escape '!'`,
            ),
          ),
        );
      }
      return q.execute();
    },

    /** The highest audit event id so far (a cursor for a polling client that has seen nothing). */
    async lastAuditEventId(): Promise<number> {
      const r = await db
        .selectFrom('audit_events')
        .select((eb) => eb.fn.max('id').as('id'))
        .executeTakeFirst();
      return Number(r?.id ?? 0);
    },

    async findReport(id: string): Promise<ReportRow | undefined> {
      return db.selectFrom('suspicious_reports').selectAll().where('id', '=', id).executeTakeFirst();
    },
  };
}
export type AdminQueryRepository = ReturnType<typeof createAdminQueryRepository>;
