import { createHash, type Hash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { ApiClient } from './api.ts';
import { fetchCatalog } from './catalog.ts';
import { ClientError } from './errors.ts';
import {
  defaultFileName,
  fileNameFromContentDisposition,
  isStrongEtag,
  parseContentRange,
  sha256FromEtag,
} from './file-name.ts';
import { describeConnectionFailure, formatWait, type HttpDeps, type RetryPolicy } from './http.ts';
import { formatBytes, type Progress } from './progress.ts';

export interface GetFileOptions {
  api: ApiClient;
  deps: HttpDeps;
  retry: RetryPolicy;
  facility: string;
  file: string;
  /** `YYYY-MM-DD`; the latest file when absent. */
  date?: string;
  /** `-o`: a file path, or an existing directory to save into under the default name. */
  output?: string;
  cwd: string;
  progress: Progress;
  /** Aborted on Ctrl+C: the partial download is kept. */
  signal?: AbortSignal;
  /** A connection that delivers nothing for this long counts as cut. */
  idleTimeoutMs: number;
}

export interface GetFileResult {
  path: string;
  size: number;
  sha256: string;
  /** Where this run picked up an earlier partial download (0: from the start). */
  resumedFrom: number;
  /** The file was already there with the published checksum: nothing was downloaded. */
  upToDate: boolean;
  /** How many times the connection broke and the download went on from where it stopped. */
  resumes: number;
}

/** What a partial download (`PATH.part`) is a copy of, kept beside it as `PATH.part.json`. */
interface PartRecord {
  etag: string;
  total?: number;
}

const partOf = (target: string) => `${target}.part`;
const recordOf = (target: string) => `${target}.part.json`;

export function filePath(facility: string, file: string, date: string | undefined): string {
  const q = date ? `?date=${encodeURIComponent(date)}` : '';
  return `/v1/files/${encodeURIComponent(facility)}/${encodeURIComponent(file)}${q}`;
}

/** The SHA-256 of a file's first `length` bytes (all of it when undefined), and the running hash. */
export async function hashFile(path: string, length?: number): Promise<{ hash: Hash; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  if (length === 0) return { hash, bytes };
  const stream = createReadStream(path, length === undefined ? {} : { start: 0, end: length - 1 });
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { hash, bytes };
}

async function sha256OfFile(path: string): Promise<string> {
  return (await hashFile(path)).hash.digest('hex');
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Where the file goes: `-o PATH`; or, with `-o DIR` or no `-o`, the service's proposed name
 * (`Content-Disposition`) else `{FACILITY}_{FILE}_{YYYYMMDD}.txt`. Undefined while neither a name
 * nor the date is known.
 */
export function resolveTarget(options: {
  output?: string;
  cwd: string;
  proposed?: string;
  facility: string;
  file: string;
  date?: string;
}): string | undefined {
  const { output, cwd } = options;
  let dir = cwd;
  if (output) {
    const full = resolve(cwd, output);
    if (!/[/\\]$/.test(output) && !isDirectory(full)) return full;
    dir = full;
  }
  const name =
    options.proposed ?? (options.date ? defaultFileName(options.facility, options.file, options.date) : undefined);
  return name ? join(dir, name) : undefined;
}

function localFileError(action: string, path: string, err: unknown): ClientError {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  return new ClientError('LOCAL_FILE', `cannot ${action} ${path} (${code})`, { cause: err });
}

async function readPartRecord(target: string): Promise<{ size: number; record: PartRecord } | undefined> {
  let size: number;
  try {
    size = (await stat(partOf(target))).size;
  } catch {
    return undefined;
  }
  try {
    const record = JSON.parse(await readFile(recordOf(target), 'utf8')) as Partial<PartRecord>;
    if (size > 0 && isStrongEtag(record.etag)) {
      return {
        size,
        record: { etag: record.etag, total: typeof record.total === 'number' ? record.total : undefined },
      };
    }
  } catch {
    // No record: a part from elsewhere, or written by a version that kept none; it cannot be resumed safely.
  }
  return undefined;
}

async function removePart(target: string): Promise<void> {
  for (const path of [partOf(target), recordOf(target)]) {
    try {
      await rm(path, { force: true });
    } catch (err) {
      // ENOTDIR: a parent is not a directory, so there is no such file either.
      if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw localFileError('remove', path, err);
    }
  }
}

/** A timer that aborts its signal when nothing arrives for `ms`, restarted by `touch`. */
function createIdleTimer(ms: number) {
  const controller = new AbortController();
  let fired = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      fired = true;
      controller.abort(new Error(`no data for ${formatWait(ms)}`));
    }, ms);
  };
  arm();
  return {
    signal: controller.signal,
    get fired() {
      return fired;
    },
    touch: arm,
    stop: () => clearTimeout(timer),
  };
}

/**
 * `get FACILITY FILE`: asks for the file's name and checksum (HEAD), skips the download when the
 * file is already there, else streams it to `PATH.part`, resuming an earlier partial download
 * (`Range` + `If-Range`, RFC 9110 §14.2 and §13.1.5) and going on after a broken connection; the
 * bytes must match the published SHA-256 before the file is renamed into place.
 */
export async function getFile(o: GetFileOptions): Promise<GetFileResult> {
  const subject = { text: `${o.facility} ${o.file} (${o.date ?? 'latest'})`, kind: 'file' } as const;
  const path = filePath(o.facility, o.file, o.date);

  // HEAD first: the name and checksum before any byte, so a partial download can be found and resumed.
  // Any refusal is left to the GET, whose answer carries the error's explanation.
  const head = await o.api.send(path, { method: 'HEAD', expect: 'any', subject, signal: o.signal });
  await head.body?.cancel();
  const probe = head.status === 200 ? describeAnswer(head) : undefined;
  const target = resolveTarget({ ...o, proposed: probe?.proposed });

  const publishedSha = probe?.sha256;
  if (target && publishedSha && isFile(target) && (await sha256OfFile(target)) === publishedSha) {
    await removePart(target);
    const size = statSync(target).size;
    return { path: target, size, sha256: publishedSha, resumedFrom: 0, upToDate: true, resumes: 0 };
  }
  return transfer(o, { path, subject, target, size: probe?.size });
}

/** What a file answer's headers say about the file. */
function describeAnswer(res: Response) {
  const length = res.headers.get('content-length');
  const encoded = (res.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
  return {
    proposed: fileNameFromContentDisposition(res.headers.get('content-disposition')),
    /** The service's ETag is the file's SHA-256; `x-content-sha256` says it too. */
    sha256: sha256FromEtag(res.headers.get('etag')) ?? sha256FromHex(res.headers.get('x-content-sha256')),
    /** The file's size, when the answer is neither compressed nor partial. */
    size: !encoded && res.status === 200 && length !== null && /^\d+$/.test(length) ? Number(length) : undefined,
  };
}

function sha256FromHex(value: string | null): string | undefined {
  return value && /^[0-9a-fA-F]{64}$/.test(value.trim()) ? value.trim().toLowerCase() : undefined;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

async function transfer(
  o: GetFileOptions,
  req: { path: string; subject: { text: string; kind: 'file' }; target: string | undefined; size: number | undefined },
): Promise<GetFileResult> {
  let target = req.target;
  let running: { target: string; hash: Hash; bytes: number } | undefined;
  let cuts = 0;
  let restarts = 0;
  /** Where the first answer picked up an earlier partial download; 0 once the file starts over. */
  let resumedFrom: number | undefined;
  /** Bytes from a range answer are in the part: a checksum mismatch may come from mixing versions. */
  let usedRange = false;
  /** The SHA-256 the last whole-file answer stated. */
  let published: string | undefined;

  const startOver = async (why: string) => {
    if (target) await removePart(target);
    running = undefined;
    if (++restarts > 2) throw new ClientError('UNEXPECTED', `the download service ${why} again: giving up`);
  };

  for (;;) {
    o.signal?.throwIfAborted();
    let offset = 0;
    let etag: string | undefined;
    if (target) {
      const part = await readPartRecord(target);
      if (part) {
        offset = part.size;
        etag = part.record.etag;
      } else {
        await removePart(target);
      }
    }

    const idle = createIdleTimer(o.idleTimeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, idle.signal]) : idle.signal;
    // A whole file comes compressed if the service will (pipe-delimited text shrinks several
    // times); a range is of the file's own bytes, so a compressed transfer cut short resumes from
    // the bytes it wrote, uncompressed.
    const headers: Record<string, string> = {};
    if (offset > 0 && etag) {
      // Fetch sends `Accept-Encoding: identity` with a Range by itself (Fetch standard, HTTP-network-or-cache fetch).
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = etag;
    } else {
      headers['accept-encoding'] = 'gzip';
    }

    let res: Response;
    try {
      res = await o.api.send(req.path, { headers, expect: [200, 206, 416], subject: req.subject, signal });
    } catch (err) {
      idle.stop();
      if (o.signal?.aborted) throw interrupted(target, offset, o.signal.reason);
      if (!idle.fired) throw err;
      await afterCut(o, ++cuts, offset, target, `no answer for ${formatWait(o.idleTimeoutMs)}`);
      continue;
    }

    if (res.status === 416) {
      idle.stop();
      await res.body?.cancel();
      // The part is as long as the file or longer: complete but not yet verified, or stale.
      const sha = sha256FromEtag(etag);
      const total = /^bytes \*\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1];
      if (target && sha && Number(total) === offset && (await sha256OfFile(partOf(target))) === sha) {
        return finish(target, offset, sha, offset, cuts);
      }
      await startOver('refused the range asked for');
      continue;
    }

    const responseEtag = isStrongEtag(res.headers.get('etag')) ? (res.headers.get('etag') as string) : undefined;
    let total: number | undefined;
    if (res.status === 206) {
      const range = parseContentRange(res.headers.get('content-range'));
      if (!range || range.start !== offset || (responseEtag !== undefined && responseEtag !== etag)) {
        idle.stop();
        await res.body?.cancel();
        await startOver('answered with another part of the file than asked');
        continue;
      }
      total = range.total;
      resumedFrom ??= offset;
      usedRange = true;
    } else {
      // 200: the whole file, because nothing was asked to resume or the file changed since (If-Range).
      if (offset > 0) {
        o.deps.notice(
          `the service sent all of ${req.subject.text} again (it changed since the partial download, or cannot resume): starting over`,
        );
      }
      offset = 0;
      etag = responseEtag;
      const described = describeAnswer(res);
      total = described.size ?? req.size;
      published = described.sha256;
      if (!target) target = await nameFromResponse(o, res);
      resumedFrom = 0;
      usedRange = false;
    }
    const t = target as string;

    try {
      // `-o some/new/dir/` is a directory to create, as `wget -P` and `curl --create-dirs` do.
      await mkdir(dirname(t), { recursive: true });
      if (etag) await writeFile(recordOf(t), JSON.stringify({ etag, total } satisfies PartRecord));
      else await rm(recordOf(t), { force: true });
    } catch (err) {
      idle.stop();
      await res.body?.cancel();
      throw localFileError('write', recordOf(t), err);
    }
    if (offset === 0) running = { target: t, hash: createHash('sha256'), bytes: 0 };
    else if (!running || running.target !== t || running.bytes !== offset) {
      running = { target: t, ...(await hashFile(partOf(t), offset)) };
    }

    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(partOf(t), offset > 0 ? 'a' : 'w');
    } catch (err) {
      idle.stop();
      await res.body?.cancel();
      throw localFileError('write', partOf(t), err);
    }
    o.progress.start(basename(t), total, offset);
    let done = offset;
    let cut: unknown;
    let writeError: unknown;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done: ended, value } = await reader.read();
        if (ended) break;
        idle.touch();
        try {
          await handle.write(value);
        } catch (err) {
          writeError = err;
          break;
        }
        running.hash.update(value);
        running.bytes += value.length;
        done += value.length;
        o.progress.update(done);
      }
    } catch (err) {
      cut = err;
    } finally {
      idle.stop();
      o.progress.stop();
      await handle.close();
    }
    if (writeError) {
      await reader.cancel().catch(() => {});
      throw localFileError('write', partOf(t), writeError);
    }
    if (o.signal?.aborted) throw interrupted(t, done, o.signal.reason);
    if (cut === undefined && total !== undefined && done < total) cut = new Error('the answer ended early');
    if (cut !== undefined) {
      await afterCut(o, ++cuts, done, t, idle.fired ? `no data for ${formatWait(o.idleTimeoutMs)}` : describeCut(cut));
      continue;
    }

    const expected = sha256FromEtag(etag) ?? published ?? (await catalogSha256(o, t));
    const actual = running.hash.copy().digest('hex');
    if (!expected) {
      throw new ClientError(
        'INTEGRITY',
        `the download service published no SHA-256 for ${req.subject.text}: the download is left unverified in ${partOf(t)}`,
      );
    }
    if (actual !== expected || (total !== undefined && done !== total)) {
      await removePart(t);
      running = undefined;
      if (usedRange && restarts === 0) {
        restarts++;
        o.deps.notice(`${basename(t)} does not match its SHA-256 after resuming: downloading it whole again`);
        continue;
      }
      throw new ClientError(
        'INTEGRITY',
        `${basename(t)} does not match its published SHA-256 (expected ${expected}, got ${actual}): the download was deleted; try again, and tell API support if it happens again`,
      );
    }
    return finish(t, done, actual, resumedFrom ?? 0, cuts);
  }
}

async function finish(
  target: string,
  size: number,
  sha256: string,
  resumedFrom: number,
  resumes: number,
): Promise<GetFileResult> {
  try {
    await rename(partOf(target), target);
  } catch (err) {
    throw localFileError('rename the download to', target, err);
  }
  await rm(recordOf(target), { force: true });
  return { path: target, size, sha256, resumedFrom, upToDate: false, resumes };
}

function describeCut(err: unknown): string {
  return err instanceof Error && err.message === 'terminated'
    ? 'the connection was closed'
    : describeConnectionFailure(err);
}

async function afterCut(o: GetFileOptions, cuts: number, done: number, target: string | undefined, why: string) {
  const kept = target ? `; ${formatBytes(done)} kept in ${partOf(target)}` : '';
  if (cuts > o.retry.transientRetries) {
    throw new ClientError(
      'NETWORK',
      `the download broke ${cuts} times (last: ${why})${kept}: run the same command again to resume`,
    );
  }
  const wait = o.retry.backoffMs(cuts);
  o.deps.notice(`the download broke after ${formatBytes(done)} (${why}); resuming in ${formatWait(wait)}`);
  try {
    await o.deps.sleep(wait, o.signal);
  } catch (err) {
    throw interrupted(target, done, err);
  }
}

function interrupted(target: string | undefined, done: number, reason: unknown): unknown {
  if (reason instanceof ClientError && reason.code === 'INTERRUPTED' && target && done > 0) {
    return new ClientError(
      'INTERRUPTED',
      `interrupted: ${formatBytes(done)} kept in ${partOf(target)}; run the same command again to resume`,
    );
  }
  return reason;
}

async function nameFromResponse(o: GetFileOptions, res: Response): Promise<string> {
  const proposed = fileNameFromContentDisposition(res.headers.get('content-disposition'));
  let date = o.date;
  if (!proposed && !date) {
    const entries = await fetchCatalog(o.api, { facility: o.facility, signal: o.signal }).catch(() => []);
    date = entries
      .filter((e) => e.facility === o.facility && e.file === o.file)
      .map((e) => e.date)
      .sort()
      .at(-1);
  }
  return (
    resolveTarget({ ...o, proposed, date }) ??
    resolveTarget({ ...o, proposed: `${o.facility}_${o.file}_latest.txt` }) ??
    join(o.cwd, `${o.facility}_${o.file}.txt`)
  );
}

/** The catalog's SHA-256 of the file, for a service whose ETag is not the digest. */
async function catalogSha256(o: GetFileOptions, target: string): Promise<string | undefined> {
  const entries = await fetchCatalog(o.api, { facility: o.facility, signal: o.signal });
  const matches = entries
    .filter((e) => e.facility === o.facility && e.file === o.file && (!o.date || e.date === o.date))
    .sort((a, b) => b.date.localeCompare(a.date));
  const byName = matches.find((e) => basename(target).includes(e.date.replaceAll('-', '')));
  return (byName ?? matches[0])?.sha256.toLowerCase();
}
