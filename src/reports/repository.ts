import type { Kysely, Selectable } from 'kysely';
import type { Database, KnownDevicesTable, SuspiciousReportsTable } from '../db/schema.ts';

export type ReportRow = Selectable<SuspiciousReportsTable>;
export type KnownDeviceRow = Selectable<KnownDevicesTable>;

/** Suspicious-activity reports and the devices each user has signed in from. */
export function createReportRepository(db: Kysely<Database>) {
  return {
    async createReport(row: ReportRow): Promise<void> {
      await db.insertInto('suspicious_reports').values(row).execute();
    },
    async listReports(
      filter: { status?: 'open' | 'closed'; userId?: string; limit?: number } = {},
    ): Promise<ReportRow[]> {
      let q = db
        .selectFrom('suspicious_reports')
        .selectAll()
        .orderBy('created_at', 'desc')
        .limit(filter.limit ?? 200);
      if (filter.status) q = q.where('status', '=', filter.status);
      if (filter.userId) q = q.where('user_id', '=', filter.userId);
      return q.execute();
    },
    async closeReport(id: string, by: string | null, note: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('suspicious_reports')
        .set({ status: 'closed', closed_at: now, closed_by: by, note })
        .where('id', '=', id)
        .where('status', '=', 'open')
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Records a sign-in from a device in one statement; true when the user had never signed in
     * from it before (the row was created now rather than touched).
     */
    async recordDevice(userId: string, deviceHash: string, now: number, userAgent: string | null, ip: string | null) {
      const row = await db
        .insertInto('known_devices')
        .values({
          user_id: userId,
          device_hash: deviceHash,
          first_seen_at: now,
          last_seen_at: now,
          user_agent: userAgent,
          ip,
        })
        .onConflict((oc) =>
          oc.columns(['user_id', 'device_hash']).doUpdateSet({ last_seen_at: now, user_agent: userAgent, ip }),
        )
        .returning(['first_seen_at', 'last_seen_at'])
        .executeTakeFirst();
      return row !== undefined && row.first_seen_at === row.last_seen_at && row.first_seen_at === now;
    },
  };
}
export type ReportRepository = ReturnType<typeof createReportRepository>;
