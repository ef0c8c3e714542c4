import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { preparedQuery } from '../src/db/prepared.ts';
import { createId } from '../src/lib/tokens.ts';
import { describeEachBackend } from './helpers/databases.ts';

/**
 * Prepared queries (src/db/prepared.ts) answer exactly what the Kysely builder would, with each
 * call's own values, on SQLite and PostgreSQL; a query with a value that is not an argument is
 * refused rather than run with a value frozen from the first call.
 */
describeEachBackend('prepared queries', (backend) => {
  async function seedFirms(names: string[]) {
    const store = backend.store();
    const ids: string[] = [];
    for (const name of names) {
      const id = createId('00f');
      ids.push(id);
      await store.repos.firms.createFirm({ id, name, created_at: ids.length });
    }
    return ids;
  }

  it("binds each call's values, including one argument used twice, and compiles once", async () => {
    const [a = '', b = ''] = await seedFirms(['Prepared A', 'Prepared B']);
    const db = backend.db().kysely;
    let builds = 0;
    const byIdOrName = preparedQuery(db, (db, id: string, createdAfter: number) => {
      builds++;
      return db
        .selectFrom('firms')
        .selectAll()
        .where((eb) => eb.or([eb('id', '=', id), eb('name', '=', id)]))
        .where('created_at', '>', createdAfter);
    });
    expect((await byIdOrName.first(a, 0))?.name).toBe('Prepared A');
    expect((await byIdOrName.first(b, 0))?.name).toBe('Prepared B');
    expect((await byIdOrName.first('Prepared B', 0))?.id).toBe(b);
    expect(await byIdOrName.first(b, 5)).toBeUndefined();
    expect(await byIdOrName.all(createId('00f'), 0)).toEqual([]);
    const direct = await db.selectFrom('firms').selectAll().where('id', '=', a).execute();
    expect(await byIdOrName.all(a, 0)).toStrictEqual(direct);
    expect(builds).toBe(1);
  });

  it('refuses a query with a constant value at its first call', async () => {
    const db = backend.db().kysely;
    const constant = preparedQuery(db, (db, id: string) =>
      db.selectFrom('firms').selectAll().where('id', '=', id).where('name', '=', 'fixed'),
    );
    await expect(constant.all('x')).rejects.toThrow(/not an argument/);
    const inline = preparedQuery(db, (db, id: string) =>
      db.selectFrom('firms').select(sql<string>`'literal'`.as('kind')).where('id', '=', id),
    );
    await expect(inline.all('x')).resolves.toEqual([]);
  });
});
