import type { Kysely, Selectable } from 'kysely';
import type { AdminRequestsTable, Database } from '../db/schema.ts';

export type AdminRequestRow = Selectable<AdminRequestsTable>;
export type RequestKind = 'new_user' | 'deactivate';
export type RequestStatus = 'pending' | 'approved' | 'rejected';

export interface RequestListFilter {
  firmId?: string;
  status?: RequestStatus;
  limit?: number;
}

/** The queue of SAA requests for Operations. A request is decided once (compare-and-set). */
export function createRequestRepository(db: Kysely<Database>) {
  return {
    async create(row: AdminRequestRow): Promise<void> {
      await db.insertInto('admin_requests').values(row).execute();
    },

    async find(id: string): Promise<AdminRequestRow | undefined> {
      return db.selectFrom('admin_requests').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /** Newest first. */
    async list(filter: RequestListFilter = {}): Promise<AdminRequestRow[]> {
      let q = db
        .selectFrom('admin_requests')
        .selectAll()
        .orderBy('created_at', 'desc')
        .orderBy('id')
        .limit(filter.limit ?? 200);
      if (filter.firmId) q = q.where('firm_id', '=', filter.firmId);
      if (filter.status) q = q.where('status', '=', filter.status);
      return q.execute();
    },

    /** A pending request of this kind for this subject (an email or a user id), if any. */
    async findPending(firmId: string, kind: RequestKind, subject: { email?: string; userId?: string }) {
      let q = db
        .selectFrom('admin_requests')
        .selectAll()
        .where('firm_id', '=', firmId)
        .where('kind', '=', kind)
        .where('status', '=', 'pending');
      if (subject.userId) q = q.where('target_user_id', '=', subject.userId);
      const rows = await q.execute();
      if (!subject.email) return rows[0];
      return rows.find((r) => (JSON.parse(r.payload) as { email?: string }).email === subject.email);
    },

    /**
     * pending → approved/rejected, once: of two Operations staff deciding at the same moment,
     * exactly one gets the row back. Run in the transaction that carries out the decision.
     */
    async decide(
      id: string,
      decision: { status: 'approved' | 'rejected'; by: string | null; reason: string | null; now: number },
    ): Promise<AdminRequestRow | undefined> {
      return db
        .updateTable('admin_requests')
        .set({ status: decision.status, decided_by: decision.by, reason: decision.reason, decided_at: decision.now })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .returningAll()
        .executeTakeFirst();
    },

    /** Records the user an approved `new_user` request created. */
    async setTargetUser(id: string, userId: string): Promise<void> {
      await db.updateTable('admin_requests').set({ target_user_id: userId }).where('id', '=', id).execute();
    },
  };
}
export type RequestRepository = ReturnType<typeof createRequestRepository>;
