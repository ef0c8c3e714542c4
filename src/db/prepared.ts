import { type Compilable, CompiledQuery, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/**
 * A query that Kysely builds and compiles once, then runs with new values.
 *
 * Building a query with Kysely's immutable builder and compiling it to SQL costs about 15 µs of CPU
 * each time, more than SQLite takes to run a lookup by primary key, and the token endpoint runs
 * one on every refresh grant (bench/refresh.ts). Here the builder runs once, at the first call,
 * with a stand-in for each argument; the stand-ins are found among the compiled parameters, and
 * each call binds its own values in their places.
 *
 * Every value in the query must come from an argument (a constant would be compiled into the
 * parameters and is refused at the first call), and no argument may be a list (`in (…)` compiles
 * one parameter per element). Repositories create their prepared queries with the handle they are
 * given, so a transaction's repositories compile theirs on first use.
 */
export function preparedQuery<Args extends (string | number | null)[], Row>(
  db: Kysely<Database>,
  build: (db: Kysely<Database>, ...args: Args) => Compilable<Row>,
) {
  let prepared: { sql: string; order: number[] } | undefined;

  function compile(arity: number) {
    const standIns = Array.from({ length: arity }, (_, i) => `\u0000prepared-argument-${i}\u0000`);
    const compiled = build(db, ...(standIns as Args)).compile();
    const order = compiled.parameters.map((parameter) => {
      const index = typeof parameter === 'string' ? standIns.indexOf(parameter) : -1;
      if (index < 0) throw new Error(`A prepared query has a value that is not an argument: ${compiled.sql}`);
      return index;
    });
    return { sql: compiled.sql, order };
  }

  async function all(...args: Args): Promise<Row[]> {
    prepared ??= compile(args.length);
    const values = prepared.order.map((i) => args[i]);
    return (await db.executeQuery<Row>(CompiledQuery.raw(prepared.sql, values))).rows;
  }

  return {
    all,
    async first(...args: Args): Promise<Row | undefined> {
      return (await all(...args))[0];
    },
  };
}
