import { type FileHandle, open } from 'node:fs/promises';
import { pipeline, Readable } from 'node:stream';
import { createGzip, constants as zlibConstants } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { resolveStoredPath } from '../refdata/file-store.ts';
import type { ReferenceFileRow } from '../refdata/repository.ts';
import { DownloadError } from './errors.ts';
import type { SmallFileCache } from './file-cache.ts';
import { acceptsGzip, noneMatch, parseRange, rangeStillValid } from './negotiate.ts';

/** What went wrong opening a catalogued file; the caller logs it and answers 503 without detail. */
export class FileUnavailableError extends Error {
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FileUnavailableError';
  }
}

/**
 * Files up to this size are read from the disk in one read and sent as one buffer: a stream's
 * machinery and its extra reads cost more than the file for the small daily lists, and the answer
 * goes out in one write.
 */
export const WHOLE_READ_LIMIT = 64 * 1024;

/** A catalogued file, checked against its entry: read whole (small) or open for streaming. */
export type OpenedFile =
  | { kind: 'buffer'; data: Buffer; size: number }
  | { kind: 'stream'; handle: FileHandle; size: number };

/**
 * Opens a catalogued file and checks it against its entry before anything is sent, so that a file
 * missing, replaced or half-written on disk is a clean error answer rather than a truncated or
 * wrong download. A small file is read whole here (one byte more than the catalog says, to see a
 * longer file); a large one is checked with fstat and streamed later.
 */
export async function openCatalogFile(
  storeDir: string,
  row: ReferenceFileRow,
  cache?: SmallFileCache,
): Promise<OpenedFile> {
  const size = Number(row.size);
  const kept = size <= WHOLE_READ_LIMIT ? cache?.get(row) : undefined;
  if (kept) return { kind: 'buffer', data: kept, size };
  let full: string;
  try {
    // A catalog row is data, not a licence to read anything on the disk (OWASP path traversal).
    full = resolveStoredPath(storeDir, row.path);
  } catch (err) {
    throw new FileUnavailableError('catalog path is outside the file store', row.path, { cause: err });
  }
  let handle: FileHandle;
  try {
    handle = await open(full, 'r');
  } catch (err) {
    throw new FileUnavailableError('catalogued file cannot be opened', full, { cause: err });
  }
  let keepOpen = false;
  try {
    if (size <= WHOLE_READ_LIMIT) {
      const data = Buffer.allocUnsafe(size + 1);
      let read: number;
      try {
        ({ bytesRead: read } = await handle.read(data, 0, size + 1, 0));
      } catch (err) {
        throw new FileUnavailableError('catalogued file cannot be read', full, { cause: err });
      }
      if (read !== size) throw new FileUnavailableError(`size on disk differs from the catalog's ${size}`, full);
      const whole = data.subarray(0, size);
      cache?.set(row, whole);
      return { kind: 'buffer', data: whole, size };
    }
    const stats = await handle.stat();
    if (!stats.isFile()) throw new FileUnavailableError('catalogued path is not a file', full);
    if (stats.size !== size) {
      throw new FileUnavailableError(`size on disk ${stats.size} differs from the catalog's ${size}`, full);
    }
    keepOpen = true;
    return { kind: 'stream', handle, size };
  } finally {
    if (!keepOpen) await handle.close();
  }
}

/** Closes what an opened file holds, when it will not be sent. */
function release(file: OpenedFile): void {
  if (file.kind === 'stream') void file.handle.close();
}

/** `{FACILITY}_{FILE}_{YYYYMMDD}.txt`, the name a browser or `curl -OJ` saves the file under. */
export function downloadFileName(row: ReferenceFileRow): string {
  return `${row.facility}_${row.file}_${row.date.replace(/-/g, '')}.txt`;
}

/** Reads ahead in large chunks: fewer system calls and writes for the 1 GiB files. */
const READ_CHUNK = 256 * 1024;

export interface FileAnswerResult {
  status: 200 | 206 | 304;
  encoding: 'gzip' | 'identity';
  range?: { start: number; end: number };
}

interface RowHeaders {
  etag: string;
  /** On every answer about the file, 304 included (RFC 9110 §15.4.5). */
  validators: Record<string, string>;
  /** On answers carrying the file's bytes. */
  content: Record<string, string>;
  reprDigest: string;
}

/** Header values depend on the catalog entry only: worked out once per entry, not per download. */
const rowHeaders = new WeakMap<ReferenceFileRow, RowHeaders>();

function headersOf(row: ReferenceFileRow): RowHeaders {
  let h = rowHeaders.get(row);
  if (!h) {
    const etag = `"${row.sha256}"`;
    h = {
      etag,
      validators: {
        etag,
        'last-modified': new Date(row.created_at).toUTCString(),
        vary: 'Accept-Encoding',
        // Per-user (authorised) content: a browser may keep it and revalidate, a shared cache may not.
        'cache-control': 'private, no-cache',
        'accept-ranges': 'bytes',
        'x-content-sha256': row.sha256,
      },
      content: {
        'content-type': 'text/plain; charset=utf-8',
        'content-disposition': `attachment; filename="${downloadFileName(row)}"`,
      },
      // RFC 9530 Repr-Digest: the digest of the whole file as stored, meaningful when sent uncompressed.
      reprDigest: `sha-256=:${Buffer.from(row.sha256, 'hex').toString('base64')}:`,
    };
    rowHeaders.set(row, h);
  }
  return h;
}

/**
 * Sends an opened file with the HTTP an API client needs to fetch it efficiently and resume it:
 * a strong ETag (the SHA-256, RFC 9110 §8.8.3) with `If-None-Match` → 304, one byte range →
 * 206 (`If-Range` honoured, unsatisfiable → 416), gzip on the fly when accepted and no range is
 * asked (fast level: the network, not the CPU, should be the limit), and the digest so the client
 * can check what it stored. Takes ownership of `file` (closes it).
 */
export function sendCatalogFile(
  req: FastifyRequest,
  reply: FastifyReply,
  row: ReferenceFileRow,
  file: OpenedFile,
): FileAnswerResult {
  const { etag, validators, content: headers, reprDigest } = headersOf(row);
  const size = file.size;
  reply.headers(validators);

  if (!noneMatch(req.headers['if-none-match'], etag)) {
    release(file);
    reply.code(304).send();
    return { status: 304, encoding: 'identity' };
  }

  const range = rangeStillValid(headerValue(req.headers['if-range']), etag)
    ? parseRange(req.headers.range, size)
    : ({ kind: 'whole' } as const);
  if (range.kind === 'unsatisfiable') {
    release(file);
    throw new DownloadError(
      416,
      'range_not_satisfiable',
      `the file has ${size} bytes; the range asked for is outside it`,
      {
        'content-range': `bytes */${size}`,
      },
    );
  }

  const head = req.method === 'HEAD';
  if (range.kind === 'range') {
    reply
      .code(206)
      .headers(headers)
      .header('repr-digest', reprDigest)
      .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
      .header('content-length', String(range.end - range.start + 1));
    sendBody(reply, file, head, { start: range.start, end: range.end });
    return { status: 206, encoding: 'identity', range: { start: range.start, end: range.end } };
  }
  if (!head && size > 0 && acceptsGzip(headerValue(req.headers['accept-encoding']))) {
    const gzip = createGzip({ level: zlibConstants.Z_BEST_SPEED, chunkSize: 64 * 1024 });
    if (file.kind === 'buffer') {
      gzip.end(file.data);
    } else {
      // pipeline destroys both sides if either fails or the client goes away.
      pipeline(file.handle.createReadStream({ highWaterMark: READ_CHUNK }), gzip, (err) => {
        if (err && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') req.log.warn({ err }, 'gzip stream failed');
      });
    }
    reply.code(200).headers(headers).header('content-encoding', 'gzip').send(gzip);
    return { status: 200, encoding: 'gzip' };
  }
  reply.code(200).headers(headers).header('repr-digest', reprDigest).header('content-length', String(size));
  sendBody(reply, file, head, {});
  return { status: 200, encoding: 'identity' };
}

/**
 * Sends the file's bytes (or the range's). A HEAD answer has the headers only and the file is not
 * read: Fastify's HEAD route drains a stream it is given (all 1 GiB of it) and sets
 * `Content-Length: 0` when given nothing, so it gets an empty stream and keeps our length.
 */
function sendBody(reply: FastifyReply, file: OpenedFile, head: boolean, range: { start?: number; end?: number }) {
  if (head) {
    release(file);
    reply.send(Readable.from([]));
  } else if (file.kind === 'buffer') {
    reply.send(
      range.start === undefined ? file.data : file.data.subarray(range.start, (range.end ?? file.size - 1) + 1),
    );
  } else {
    reply.send(file.handle.createReadStream({ ...range, highWaterMark: READ_CHUNK }));
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
