import type { Logger } from 'pino';
import type { Clock } from '../lib/tokens.ts';
import type { RefdataRepository, ReferenceFileRow } from '../refdata/repository.ts';

export interface CatalogFilter {
  facilities: readonly string[];
  since?: string | undefined;
}

interface Snapshot {
  loadedAt: number;
  /** `FACILITY/FILE` → its entries, newest date first. */
  byFile: Map<string, ReferenceFileRow[]>;
  /** Every entry, by facility, file, then newest date first. */
  rows: ReferenceFileRow[];
}

const keyOf = (facility: string, file: string) => `${facility}/${file}`;

/**
 * The reference-file catalog as this process last read it: a year of files is a few thousand rows,
 * so the whole table is kept in memory and read again at most every `refreshMs`, and a request for a
 * file costs no database query (DESIGN "Storage and scale": the state stays in the database, the
 * service stays stateless). A lookup that misses asks the database, so a file registered a moment
 * ago is found by its date at once; "the latest" may lag the catalog by up to `refreshMs`.
 * `refreshMs: 0` reads the database on every request.
 */
export function createCatalog(options: { repo: RefdataRepository; clock: Clock; refreshMs: number; logger: Logger }) {
  const { repo, clock, refreshMs, logger } = options;
  let snapshot: Snapshot | undefined;
  let loading: Promise<Snapshot> | undefined;

  async function load(): Promise<Snapshot> {
    const rows = await repo.listFiles();
    const byFile = new Map<string, ReferenceFileRow[]>();
    for (const row of rows) {
      const key = keyOf(row.facility, row.file);
      const list = byFile.get(key);
      if (list) list.push(row);
      else byFile.set(key, [row]);
    }
    return { loadedAt: clock(), byFile, rows };
  }

  async function current(): Promise<Snapshot | undefined> {
    if (refreshMs <= 0) return undefined;
    if (snapshot && clock() - snapshot.loadedAt < refreshMs) return snapshot;
    loading ??= load().finally(() => {
      loading = undefined;
    });
    try {
      snapshot = await loading;
    } catch (err) {
      // A database hiccup: keep answering from what was read last, if anything was.
      if (!snapshot) throw err;
      logger.error({ err }, 'Reading the reference-file catalog failed; serving the previous copy');
    }
    return snapshot;
  }

  return {
    /** One file: of `date`, or the latest one when no date is given. */
    async find(facility: string, file: string, date?: string): Promise<ReferenceFileRow | undefined> {
      const snap = await current();
      const list = snap?.byFile.get(keyOf(facility, file));
      const hit = date ? list?.find((r) => r.date === date) : list?.[0];
      return hit ?? repo.findFile(facility, file, date);
    },

    /** The entries of the given facilities, by facility and file, newest date first. */
    async list(filter: CatalogFilter): Promise<ReferenceFileRow[]> {
      const snap = await current();
      if (!snap) return repo.listFiles(filter);
      const wanted = new Set(filter.facilities);
      return snap.rows.filter((r) => wanted.has(r.facility) && (!filter.since || r.date >= filter.since));
    },

    /** Forgets the copy, e.g. after a catalog entry pointed at a file that is no longer there. */
    invalidate(): void {
      snapshot = undefined;
    },
  };
}
export type Catalog = ReturnType<typeof createCatalog>;
