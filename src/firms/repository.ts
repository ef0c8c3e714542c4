import type { Kysely, Selectable } from 'kysely';
import type { Database, FirmsTable } from '../db/schema.ts';

export type Firm = Selectable<FirmsTable>;

/** Firms: the organisations users belong to. */
export function createFirmRepository(db: Kysely<Database>) {
  return {
    async createFirm(firm: Firm): Promise<void> {
      await db.insertInto('firms').values(firm).execute();
    },
    async findFirmById(id: string): Promise<Firm | undefined> {
      return db.selectFrom('firms').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** Case-insensitive lookup by name. */
    async findFirmByName(name: string): Promise<Firm | undefined> {
      return db
        .selectFrom('firms')
        .selectAll()
        .where((eb) => eb(eb.fn('lower', ['name']), '=', name.toLowerCase()))
        .executeTakeFirst();
    },
    async listFirms(): Promise<Firm[]> {
      return db.selectFrom('firms').selectAll().orderBy('name').execute();
    },
  };
}
export type FirmRepository = ReturnType<typeof createFirmRepository>;
