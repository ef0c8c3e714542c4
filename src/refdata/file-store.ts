import { createHash } from 'node:crypto';
import { type FileHandle, mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Clock, RandomBytes } from '../lib/tokens.ts';
import { assertIsoDate } from './business-days.ts';
import { RefdataError } from './errors.ts';
import { assertFileKind } from './facilities.ts';
import type { RefdataRepository, ReferenceFileRow } from './repository.ts';

/** Which file of the catalog: facility, file code and business date. */
export interface FileKey {
  facility: string;
  file: string;
  /** `YYYY-MM-DD`. */
  date: string;
}

/** What a writer hands the store: byte chunks, produced synchronously or not. */
export type FileContent = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface PutOptions {
  /** Called after each chunk is written with the bytes written so far (progress lines). */
  onProgress?: (bytesWritten: number) => void;
}

/** The files of one environment on disk and their catalog rows (DESIGN "Reference data API"). */
export interface FileStore {
  /** The absolute store directory, `{dataDir}/files/{environment}`. */
  readonly dir: string;
  /**
   * Writes a file atomically and registers it in the catalog, replacing that day's previous file.
   * Readers see the old file or the new one, never a part: the bytes go to a temporary file in
   * the same directory, are fsynced, and the temporary file is renamed over the final name.
   * Size, SHA-256 and the data-row count are computed while writing. If `content` throws, nothing
   * is written and the error is rethrown.
   */
  put(key: FileKey, content: FileContent, options?: PutOptions): Promise<ReferenceFileRow>;
  /** The absolute path of a catalog row's file, refusing anything outside the store directory. */
  resolve(row: Pick<ReferenceFileRow, 'path'>): string;
}

export interface FileStoreDeps {
  /** The store directory ({@link fileStoreDirectory}). */
  dir: string;
  repo: RefdataRepository;
  clock: Clock;
  random: RandomBytes;
}

/** `{dataDir}/files/{environmentId}`, absolute: the directory an environment's files live in. */
export function fileStoreDirectory(dataDir: string, environmentId: string): string {
  return resolve(dataDir, 'files', environmentId);
}

/**
 * The path, relative to the store directory, of a file: `{facility}/{file}/{date}.txt`, from the
 * canonical codes only, so nothing a caller types becomes a path component.
 */
export function storedFilePath(key: FileKey): string {
  const { facility, kind } = assertFileKind(key.facility, key.file);
  return `${facility.code}/${kind.code}/${assertIsoDate(key.date)}.txt`;
}

/**
 * The absolute path of `relativePath` inside `storeDir`. Refuses (`PATH_OUTSIDE_STORE`) absolute
 * paths, NUL bytes and anything that resolves outside the directory (`..`), so a tampered
 * catalog row cannot make the download service read other files (OWASP path traversal).
 */
export function resolveStoredPath(storeDir: string, relativePath: string): string {
  const root = resolve(storeDir);
  const refuse = () =>
    new RefdataError('PATH_OUTSIDE_STORE', `Refusing file path "${relativePath}": not inside the file store`);
  if (!relativePath || relativePath.includes('\0') || isAbsolute(relativePath) || /^[a-zA-Z]:/.test(relativePath)) {
    throw refuse();
  }
  const full = resolve(root, relativePath);
  const inside = relative(root, full);
  if (!inside || inside.startsWith(`..${sep}`) || inside === '..' || isAbsolute(inside)) throw refuse();
  return full;
}

const NEWLINE = 0x0a;

/** Counts `\n` bytes. */
function countNewlines(chunk: Uint8Array): number {
  let n = 0;
  let at = chunk.indexOf(NEWLINE);
  while (at !== -1) {
    n++;
    at = chunk.indexOf(NEWLINE, at + 1);
  }
  return n;
}

async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let written = 0;
  while (written < chunk.length) {
    const r = await handle.write(chunk, written, chunk.length - written);
    written += r.bytesWritten;
  }
}

/** Best effort: makes a rename durable (POSIX needs the directory fsynced; some systems refuse). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Windows cannot open a directory; the rename itself is still atomic there.
  }
}

/** What {@link openFileStore} needs of an environment runtime. */
export interface FileStoreRuntime {
  config: { dataDir: string };
  environment: { id: string };
  store: { repos: { refdata: RefdataRepository } };
  clock: Clock;
  random: RandomBytes;
}

/** The file store of an environment runtime (`rt` from `openEnvironment`). */
export function openFileStore(rt: FileStoreRuntime): FileStore {
  return createFileStore({
    dir: fileStoreDirectory(rt.config.dataDir, rt.environment.id),
    repo: rt.store.repos.refdata,
    clock: rt.clock,
    random: rt.random,
  });
}

export function createFileStore(deps: FileStoreDeps): FileStore {
  const dir = resolve(deps.dir);
  return {
    dir,

    async put(key, content, options = {}) {
      const path = storedFilePath(key);
      const [facility, file] = path.split('/') as [string, string];
      const target = resolveStoredPath(dir, path);
      const folder = dirname(target);
      await mkdir(folder, { recursive: true });
      // Same directory as the target, so the rename stays on one file system and is atomic.
      const temp = join(folder, `.${key.date}.txt.${deps.random(8).toString('hex')}.tmp`);
      const hash = createHash('sha256');
      let size = 0;
      let newlines = 0;
      let last = NEWLINE;
      const handle = await open(temp, 'wx', 0o644);
      try {
        try {
          for await (const chunk of content) {
            if (chunk.length === 0) continue;
            // The write runs on libuv's thread pool while this thread hashes and counts.
            const writing = writeAll(handle, chunk);
            hash.update(chunk);
            newlines += countNewlines(chunk);
            await writing;
            last = chunk[chunk.length - 1] ?? NEWLINE;
            size += chunk.length;
            options.onProgress?.(size);
          }
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temp, target);
      } catch (error) {
        await unlink(temp).catch(() => {});
        throw error;
      }
      await syncDirectory(folder);
      // A last line without `\n` still counts; the first line is the header.
      const lines = newlines + (size > 0 && last !== NEWLINE ? 1 : 0);
      const row: ReferenceFileRow = {
        id: `ref_${deps.random(12).toString('hex')}`,
        facility,
        file,
        date: key.date,
        path,
        size,
        sha256: hash.digest('hex'),
        records: Math.max(0, lines - 1),
        created_at: deps.clock(),
      };
      await deps.repo.upsertFile(row);
      return row;
    },

    resolve(row) {
      return resolveStoredPath(dir, row.path);
    },
  };
}
