import type { Clock } from '../lib/tokens.ts';

export interface SmallFileCacheOptions {
  /** Bytes of file content kept at most (0 turns the cache off). */
  maxBytes: number;
  /** A kept file is read from the disk again after this long, so a file gone from the disk shows. */
  ttlMs: number;
  clock: Clock;
}

/**
 * The small files most asked for, kept in memory for a short while (nginx's `open_file_cache`, with
 * the content): the open, read and close of a 4 KiB daily list cost more than the rest of its
 * download together. Entries are keyed by the catalog entry's path, size and SHA-256, so a file
 * published again under the same date is a new key and is read from the disk at once; a kept file
 * is read again after `ttlMs`. Least recently used content goes first past `maxBytes`.
 */
export function createSmallFileCache(options: SmallFileCacheOptions) {
  const entries = new Map<string, { data: Buffer; readAt: number }>();
  let bytes = 0;
  const keyOf = (row: { path: string; size: number; sha256: string }) => `${row.sha256}:${row.size}:${row.path}`;

  return {
    get(row: { path: string; size: number; sha256: string }): Buffer | undefined {
      const key = keyOf(row);
      const entry = entries.get(key);
      if (!entry) return undefined;
      entries.delete(key);
      if (options.clock() - entry.readAt >= options.ttlMs) {
        bytes -= entry.data.length;
        return undefined;
      }
      entries.set(key, entry);
      return entry.data;
    },
    set(row: { path: string; size: number; sha256: string }, data: Buffer): void {
      if (data.length > options.maxBytes) return;
      const key = keyOf(row);
      const old = entries.get(key);
      if (old) {
        bytes -= old.data.length;
        entries.delete(key);
      }
      entries.set(key, { data, readAt: options.clock() });
      bytes += data.length;
      for (const [k, e] of entries) {
        if (bytes <= options.maxBytes) break;
        entries.delete(k);
        bytes -= e.data.length;
      }
    },
    get size(): { files: number; bytes: number } {
      return { files: entries.size, bytes };
    },
  };
}
export type SmallFileCache = ReturnType<typeof createSmallFileCache>;
