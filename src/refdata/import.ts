import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { assertIsoDate } from './business-days.ts';
import { RefdataError } from './errors.ts';
import { assertFileKind } from './facilities.ts';
import type { FileStore, PutOptions } from './file-store.ts';
import type { ReferenceFileRow } from './repository.ts';
import { assertWithinRetention } from './retention.ts';

export interface ImportRequest {
  facility: string;
  file: string;
  /** `YYYY-MM-DD`: the business date the file is for. */
  date: string;
  /** Path of the file to copy into the store. */
  source: string;
}

/** The header line is at most this long (a sanity limit: real headers are a few hundred bytes). */
const MAX_HEADER_BYTES = 64 << 10;

const PIPE = 0x7c;
const NEWLINE = 0x0a;
const CR = 0x0d;
const TAB = 0x09;

/** Bytes at the end of `chunk` that start a UTF-8 sequence the next chunk completes. */
function incompleteUtf8Tail(chunk: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, chunk.length); back++) {
    const b = chunk[chunk.length - back] as number;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/**
 * Passes `source` through unchanged while checking that it is a pipe-delimited text file: UTF-8
 * without control characters (other than tab, CR, LF), a header line naming at least two
 * columns, and every later line with as many fields as the header. Throws a {@link RefdataError}
 * naming the first offending line.
 */
export async function* validatePipeDelimited(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let line = 1;
  let pipes = 0;
  let headerPipes = -1;
  const headerParts: Buffer[] = [];
  let headerBytes = 0;
  let size = 0;
  let carry: Buffer = Buffer.alloc(0);
  /** Whether the last line has bytes after its line break (a final line without `\n`). */
  let lineOpen = false;

  const notText = (why: string) =>
    new RefdataError('NOT_TEXT', `Not a text file: ${why} on line ${line}. Reference files are pipe-delimited text.`);

  const endHeader = () => {
    const header = Buffer.concat(headerParts)
      .toString('utf8')
      .replace(/^\uFEFF/, '')
      .replace(/\r$/, '');
    const fields = header.split('|');
    if (fields.length < 2) {
      throw new RefdataError(
        'NOT_PIPE_DELIMITED',
        `The header line "${header.slice(0, 80)}" has no "|": reference files are pipe-delimited with a header row`,
      );
    }
    // A header names columns: no empty names, and not a data row (names are not all numbers).
    if (fields.some((f) => f.trim() === '') || fields.every((f) => /^[\d.\-\s]+$/.test(f))) {
      throw new RefdataError(
        'NO_HEADER',
        `The first line "${header.slice(0, 80)}" is not a header row of column names`,
      );
    }
    headerPipes = pipes;
  };

  for await (const piece of source) {
    if (piece.length === 0) continue;
    const chunk = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    size += chunk.length;
    // UTF-8 is checked across chunk boundaries: a split character is completed by the next chunk.
    const joined: Buffer = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const tail = incompleteUtf8Tail(joined);
    if (!isUtf8(joined.subarray(0, joined.length - tail))) throw notText('bytes that are not UTF-8');
    carry = Buffer.from(joined.subarray(joined.length - tail));

    let lineStart = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] as number;
      if (c === PIPE) pipes++;
      else if (c === NEWLINE) {
        if (headerPipes < 0) {
          headerParts.push(chunk.subarray(lineStart, i));
          endHeader();
        } else if (pipes !== headerPipes) {
          throw new RefdataError(
            'COLUMN_COUNT_MISMATCH',
            `Line ${line} has ${pipes + 1} fields; the header has ${headerPipes + 1}`,
          );
        }
        line++;
        pipes = 0;
        lineStart = i + 1;
      } else if (c < 0x20 && c !== TAB && c !== CR) {
        throw notText(c === 0 ? 'a NUL byte' : `control character 0x${c.toString(16).padStart(2, '0')}`);
      } else if (c === 0x7f) {
        throw notText('control character 0x7f');
      }
    }
    if (headerPipes < 0) {
      headerParts.push(chunk.subarray(lineStart));
      headerBytes += chunk.length - lineStart;
      if (headerBytes > MAX_HEADER_BYTES) {
        throw new RefdataError(
          'NO_HEADER',
          `The first line is longer than ${MAX_HEADER_BYTES} bytes: not a header row`,
        );
      }
    }
    lineOpen = lineStart < chunk.length;
    yield piece;
  }
  if (carry.length) throw notText('a truncated UTF-8 character at the end');
  if (size === 0) throw new RefdataError('NO_HEADER', 'The file is empty: a header row is required');
  // The last line need not end with a line break.
  if (headerPipes < 0) endHeader();
  else if (lineOpen && pipes !== headerPipes) {
    throw new RefdataError(
      'COLUMN_COUNT_MISMATCH',
      `Line ${line} has ${pipes + 1} fields; the header has ${headerPipes + 1}`,
    );
  }
}

/**
 * Registers a real file: checks the facility and file codes, the date (a real `YYYY-MM-DD`
 * within the retention year) and the content ({@link validatePipeDelimited}), then copies it
 * into the store atomically. Nothing is registered when a check fails.
 */
export async function importFile(
  store: FileStore,
  request: ImportRequest,
  options: PutOptions & { now: number },
): Promise<ReferenceFileRow> {
  const { facility, kind } = assertFileKind(request.facility, request.file);
  const date = assertIsoDate(request.date);
  assertWithinRetention(date, options.now);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(request.source);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RefdataError(
      'SOURCE_UNREADABLE',
      `Cannot read ${request.source}: ${code === 'ENOENT' ? 'no such file' : code}`,
    );
  }
  if (!info.isFile()) throw new RefdataError('SOURCE_UNREADABLE', `${request.source} is not a regular file`);
  const source = createReadStream(request.source, { highWaterMark: 1 << 20 });
  try {
    return await store.put(
      { facility: facility.code, file: kind.code, date },
      validatePipeDelimited(source),
      options.onProgress ? { onProgress: options.onProgress } : {},
    );
  } finally {
    source.destroy();
  }
}
