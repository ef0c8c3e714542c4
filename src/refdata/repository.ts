import type { Kysely, Selectable } from 'kysely';
import type { Database, ReferenceFilesTable } from '../db/schema.ts';

export type ReferenceFileRow = Selectable<ReferenceFilesTable>;

/** The reference-data catalog and entitlements (issue #5). */
export function createRefdataRepository(db: Kysely<Database>) {
  return {
    /** Registers a file, replacing the catalog entry of the same facility, file and date. */
    async upsertFile(row: ReferenceFileRow): Promise<void> {
      await db
        .insertInto('reference_files')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['facility', 'file', 'date']).doUpdateSet((eb) => ({
            id: eb.ref('excluded.id'),
            path: eb.ref('excluded.path'),
            size: eb.ref('excluded.size'),
            sha256: eb.ref('excluded.sha256'),
            records: eb.ref('excluded.records'),
            created_at: eb.ref('excluded.created_at'),
          })),
        )
        .execute();
    },

    /** One file: of `date`, or the latest when no date is given. */
    async findFile(facility: string, file: string, date?: string): Promise<ReferenceFileRow | undefined> {
      let q = db.selectFrom('reference_files').selectAll().where('facility', '=', facility).where('file', '=', file);
      q = date ? q.where('date', '=', date) : q.orderBy('date', 'desc');
      return q.limit(1).executeTakeFirst();
    },

    /** The catalog of the given facilities (all when undefined), newest first. */
    async listFiles(filter: { facilities?: readonly string[]; since?: string } = {}): Promise<ReferenceFileRow[]> {
      if (filter.facilities && filter.facilities.length === 0) return [];
      let q = db.selectFrom('reference_files').selectAll();
      if (filter.facilities) q = q.where('facility', 'in', [...filter.facilities]);
      if (filter.since) q = q.where('date', '>=', filter.since);
      return q.orderBy('facility').orderBy('file').orderBy('date', 'desc').execute();
    },

    /** Entries older than `before` (`YYYY-MM-DD`), for the rolling-year clean-up. */
    async listFilesBefore(before: string): Promise<ReferenceFileRow[]> {
      return db.selectFrom('reference_files').selectAll().where('date', '<', before).execute();
    },

    /** Whether the catalog holds any file (first start generates sample data when it does not). */
    async hasFiles(): Promise<boolean> {
      return (await db.selectFrom('reference_files').select('id').limit(1).executeTakeFirst()) !== undefined;
    },

    /** Deletes a catalog entry; false when it was already gone (another node pruned it first). */
    async deleteFile(id: string): Promise<boolean> {
      const r = await db.deleteFrom('reference_files').where('id', '=', id).executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },

    /** Entitles a user to a facility's files; false when they already were. */
    async grantEntitlement(userId: string, facility: string, now: number): Promise<boolean> {
      const r = await db
        .insertInto('entitlements')
        .values({ user_id: userId, facility, granted_at: now })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    async revokeEntitlement(userId: string, facility: string): Promise<boolean> {
      const r = await db
        .deleteFrom('entitlements')
        .where('user_id', '=', userId)
        .where('facility', '=', facility)
        .executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },

    async listEntitlements(userId: string): Promise<string[]> {
      const rows = await db.selectFrom('entitlements').select('facility').where('user_id', '=', userId).execute();
      return rows.map((r) => r.facility).sort();
    },
  };
}
export type RefdataRepository = ReturnType<typeof createRefdataRepository>;
