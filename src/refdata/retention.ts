import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { addDays, utcDate } from './business-days.ts';
import { RefdataError } from './errors.ts';
import { FACILITIES, RETENTION_DAYS } from './facilities.ts';
import type { FileStore } from './file-store.ts';
import type { RefdataRepository, ReferenceFileRow } from './repository.ts';

/** The oldest date kept on `now`: files dated before it are deleted (one rolling year). */
export function retentionCutoff(now: number, retentionDays: number = RETENTION_DAYS): string {
  return addDays(utcDate(now), -retentionDays);
}

/** Throws `DATE_OUTSIDE_RETENTION` for a date the next clean-up would delete at once. */
export function assertWithinRetention(date: string, now: number, retentionDays: number = RETENTION_DAYS): void {
  const cutoff = retentionCutoff(now, retentionDays);
  if (date < cutoff) {
    throw new RefdataError(
      'DATE_OUTSIDE_RETENTION',
      `${date} is older than the ${retentionDays}-day retention (the oldest date kept is ${cutoff})`,
    );
  }
}

export interface PruneResult {
  cutoff: string;
  /** Catalog entries this call deleted (another node may have deleted others at the same time). */
  deleted: ReferenceFileRow[];
  /** Files removed from this node's directory, catalogued or not (leftovers, crashed writes). */
  removedFiles: number;
}

/** A temporary file this old belongs to a write that died: no write takes an hour between chunks. */
const STALE_TEMP_MS = 60 * 60_000;

const DATED_FILE = /^(\d{4}-\d{2}-\d{2})\.txt$/;
const TEMP_FILE = /^\..*\.tmp$/;

/**
 * Deletes the files older than the retention: their catalog entries first (downloads stop
 * offering them), then the files. Safe on every node at any time: deleting what is already gone
 * is not an error, and each node also sweeps its own directory for expired files the catalog no
 * longer lists (another node deleted the entry) and for temporary files of crashed writes.
 */
export async function pruneExpiredFiles(deps: {
  store: FileStore;
  repo: RefdataRepository;
  now: number;
  retentionDays?: number;
}): Promise<PruneResult> {
  const cutoff = retentionCutoff(deps.now, deps.retentionDays);
  const deleted: ReferenceFileRow[] = [];
  let removedFiles = 0;
  for (const row of await deps.repo.listFilesBefore(cutoff)) {
    if (await deps.repo.deleteFile(row.id)) deleted.push(row);
    if (await removeIfPresent(deps.store.resolve(row))) removedFiles++;
  }
  for (const facility of FACILITIES) {
    for (const kind of facility.files) {
      const dir = join(deps.store.dir, facility.code, kind.code);
      for (const name of await listDirectory(dir)) {
        const dated = DATED_FILE.exec(name);
        if (dated && (dated[1] as string) < cutoff) {
          if (await removeIfPresent(join(dir, name))) removedFiles++;
        } else if (TEMP_FILE.test(name)) {
          const info = await stat(join(dir, name)).catch(() => undefined);
          if (info && deps.now - info.mtimeMs > STALE_TEMP_MS && (await removeIfPresent(join(dir, name)))) {
            removedFiles++;
          }
        }
      }
    }
  }
  return { cutoff, deleted, removedFiles };
}

async function listDirectory(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
