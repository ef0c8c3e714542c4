import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** Small key/value facts about an installation (first-run markers and the like). */
export function createSettingsRepository(db: Kysely<Database>) {
  return {
    async getSetting(key: string): Promise<string | undefined> {
      const r = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
      return r?.value;
    },
    /** Inserts the value unless the key exists; true when this call wrote it. */
    async putSettingIfAbsent(key: string, value: string): Promise<boolean> {
      const r = await db
        .insertInto('settings')
        .values({ key, value })
        .onConflict((oc) => oc.column('key').doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },
  };
}
