import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../src/db/database.ts';
import { createStore, type Store } from '../src/db/store.ts';
import { RefdataError } from '../src/refdata/errors.ts';
import {
  createFileStore,
  type FileStore,
  fileStoreDirectory,
  resolveStoredPath,
  storedFilePath,
} from '../src/refdata/file-store.ts';
import { importFile } from '../src/refdata/import.ts';

const NOW = Date.parse('2026-12-04T12:00:00Z');
const KEY = { facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-04' };

let root: string;
let store: Store;
let files: FileStore;

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'traqs-refdata-'));
  const db = openDatabase(':memory:');
  await migrateToLatest(db);
  store = createStore(db);
  files = createFileStore({
    dir: join(root, 'files', 'ntf'),
    repo: store.repos.refdata,
    clock: () => NOW,
    random: randomBytes,
  });
});
afterEach(async () => {
  await store.close();
  rmSync(root, { recursive: true, force: true });
});

const bytes = (text: string) => [Buffer.from(text)];
/** Every name under the store directory, recursively (temporary files included). */
function listAll(dir = files.dir): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1));
  } catch {
    return [];
  }
}

describe('file store', () => {
  it('lives in {dataDir}/files/{environment}', () => {
    expect(fileStoreDirectory('./data', 'ntf')).toBe(resolve('data', 'files', 'ntf'));
  });

  it('writes {facility}/{file}/{date}.txt and registers its size, SHA-256 and data rows', async () => {
    const text = 'SYMBOL|CUSIP\nAAPL|037833100\nMSFT|594918104\n';
    const row = await files.put(KEY, bytes(text));
    expect(row).toMatchObject({
      facility: 'ORF',
      file: 'EQUITYMASTERAC',
      date: '2026-12-04',
      path: 'ORF/EQUITYMASTERAC/2026-12-04.txt',
      size: Buffer.byteLength(text),
      sha256: createHash('sha256').update(text).digest('hex'),
      records: 2,
      created_at: NOW,
    });
    expect(row.id).toMatch(/^ref_[0-9a-f]{24}$/);
    expect(readFileSync(join(files.dir, 'ORF/EQUITYMASTERAC/2026-12-04.txt'), 'utf8')).toBe(text);
    expect(await store.repos.refdata.findFile('ORF', 'EQUITYMASTERAC', '2026-12-04')).toEqual(row);
    expect(files.resolve(row)).toBe(join(files.dir, 'ORF', 'EQUITYMASTERAC', '2026-12-04.txt'));
  });

  it('counts a last line without a line break, and canonicalises codes', async () => {
    const row = await files.put({ facility: 'orf', file: 'equitymasterac', date: '2026-12-04' }, [
      Buffer.from('A|B\n1|'),
      Buffer.from('2\n3|4'),
    ]);
    expect(row.records).toBe(2);
    expect(row.path).toBe('ORF/EQUITYMASTERAC/2026-12-04.txt');
  });

  it('replaces a day atomically: a reader of the old file keeps reading the old bytes', async () => {
    await files.put(KEY, bytes('A|B\nold|old\n'));
    const path = join(files.dir, 'ORF/EQUITYMASTERAC/2026-12-04.txt');
    const fd = openSync(path, 'r');
    try {
      const replaced = await files.put(KEY, bytes('A|B\nnew|new\nnew|new\n'));
      const buffer = Buffer.alloc(64);
      const n = readSync(fd, buffer, 0, 64, 0);
      expect(buffer.subarray(0, n).toString()).toBe('A|B\nold|old\n');
      expect(readFileSync(path, 'utf8')).toBe('A|B\nnew|new\nnew|new\n');
      expect(await store.repos.refdata.listFiles()).toEqual([replaced]);
    } finally {
      closeSync(fd);
    }
  });

  it('leaves the previous file, the catalog and no temporary file behind when writing fails', async () => {
    const first = await files.put(KEY, bytes('A|B\n1|2\n'));
    async function* failing() {
      yield Buffer.from('A|B\n');
      yield Buffer.alloc(1 << 20, 0x41);
      throw new Error('source broke');
    }
    await expect(files.put(KEY, failing())).rejects.toThrow('source broke');
    expect(listAll()).toEqual([join('ORF', 'EQUITYMASTERAC', '2026-12-04.txt')]);
    expect(readFileSync(files.resolve(first), 'utf8')).toBe('A|B\n1|2\n');
    expect(await store.repos.refdata.listFiles()).toEqual([first]);
  });

  it('refuses paths that leave the store directory', () => {
    const dir = files.dir;
    for (const bad of [
      '../x.txt',
      '../../etc/passwd',
      'ORF/../../ntf2/x.txt',
      '/etc/passwd',
      'ORF/\0.txt',
      '',
      '.',
      'C:\\x',
    ]) {
      expect(() => resolveStoredPath(dir, bad), JSON.stringify(bad)).toThrow(RefdataError);
    }
    expect(() => files.resolve({ path: '../../../etc/passwd' })).toThrow(/not inside the file store/);
    expect(resolveStoredPath(dir, 'ORF/EQUITYMASTERAC/2026-12-04.txt')).toBe(
      join(dir, 'ORF/EQUITYMASTERAC/2026-12-04.txt'),
    );
    expect(resolveStoredPath(dir, 'ORF/./EQUITYMASTERAC/../EQUITYMASTERAC/x.txt')).toBe(
      join(dir, 'ORF/EQUITYMASTERAC/x.txt'),
    );
  });

  it('builds paths from valid codes and dates only', () => {
    expect(() => storedFilePath({ ...KEY, date: '2026-12-04/../../x' })).toThrow(/YYYY-MM-DD/);
    expect(() => storedFilePath({ ...KEY, facility: '../ORF' })).toThrow(/Unknown facility/);
    expect(() => storedFilePath({ ...KEY, file: '../x' })).toThrow(/Unknown file/);
  });
});

describe('import', () => {
  let dir: string;
  beforeEach(() => {
    dir = join(root, 'incoming');
    mkdirSync(dir);
  });
  const source = (name: string, content: string | Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  const importing = (path: string, overrides: Partial<typeof KEY> = {}) =>
    importFile(files, { ...KEY, ...overrides, source: path }, { now: NOW });
  const refusal = async (path: string, overrides: Partial<typeof KEY> = {}) => {
    const error = await importing(path, overrides).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RefdataError);
    // Nothing registered, nothing left in the store.
    expect(await store.repos.refdata.listFiles()).toEqual([]);
    expect(listAll()).toEqual([]);
    return error as RefdataError;
  };

  it('copies a valid file byte for byte: CRLF, a byte-order mark, no final line break', async () => {
    const content = '\uFEFFSymbol|CUSIP|Name\r\nAAPL|037833100|Apple Inc\r\nNESN|H5750910|Nestlé SA';
    const row = await importing(source('orf.txt', content));
    expect(row.records).toBe(2);
    expect(readFileSync(files.resolve(row))).toEqual(Buffer.from(content));
    expect(row.sha256).toBe(createHash('sha256').update(content).digest('hex'));
  });

  it('accepts a header-only file (a quiet day) as zero records', async () => {
    expect((await importing(source('empty-day.txt', 'ACTION|SYMBOL|CUSIP\n'))).records).toBe(0);
  });

  it('checks UTF-8 across read chunks: a character split at the 1 MiB boundary is fine', async () => {
    const header = 'NAME|CODE\n';
    const row = 'é|1\n';
    // Put the two bytes of an é on each side of the first 1 MiB read.
    const fill = 'x'.repeat((1 << 20) - Buffer.byteLength(header) - 1 - '|1\n'.length);
    const content = `${header}${fill}|1\n${row.repeat(1000)}`;
    const imported = await importing(source('big.txt', content));
    expect(imported.records).toBe(1001);
  });

  it('refuses binary and non-UTF-8 content', async () => {
    expect((await refusal(source('nul.txt', 'A|B\n1|\0\n'))).code).toBe('NOT_TEXT');
    expect((await refusal(source('gzip.txt', Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x7c, 0x0a])))).code).toBe(
      'NOT_TEXT',
    );
    const latin1 = Buffer.concat([Buffer.from('NAME|CODE\nNestl'), Buffer.from([0xe9]), Buffer.from('|1\n')]);
    const e = await refusal(source('latin1.txt', latin1));
    expect(e.code).toBe('NOT_TEXT');
    expect(e.message).toMatch(/UTF-8/);
  });

  it('refuses files without a pipe-delimited header row', async () => {
    expect((await refusal(source('empty.txt', ''))).code).toBe('NO_HEADER');
    const csv = await refusal(source('csv.txt', 'SYMBOL,CUSIP\nAAPL,037833100\n'));
    expect(csv.code).toBe('NOT_PIPE_DELIMITED');
    expect(csv.message).toMatch(/pipe-delimited with a header row/);
    expect((await refusal(source('data.txt', '20261204|1.5|37\n20261204|2|38\n'))).code).toBe('NO_HEADER');
    expect((await refusal(source('blank-name.txt', 'SYMBOL||CUSIP\n'))).code).toBe('NO_HEADER');
  });

  it('names the first line whose field count differs from the header', async () => {
    const e = await refusal(source('ragged.txt', 'A|B|C\n1|2|3\n1|2\n1|2|3\n'));
    expect(e.code).toBe('COLUMN_COUNT_MISMATCH');
    expect(e.message).toBe('Line 3 has 2 fields; the header has 3');
    expect((await refusal(source('pipe-in-field.txt', 'A|B\n1|2|3\n'))).message).toMatch(/Line 2 has 3 fields/);
    expect((await refusal(source('blank-line.txt', 'A|B\n1|2\n\n3|4\n'))).message).toMatch(/Line 3 has 1 fields/);
    expect((await refusal(source('last-line.txt', 'A|B\n1|2\n3'))).message).toMatch(/Line 3 has 1 fields/);
  });

  it('checks the facility, file and date before reading, naming the valid choices', async () => {
    const good = source('good.txt', 'A|B\n1|2\n');
    expect((await refusal(good, { facility: 'NASDAQ' })).message).toBe(
      'Unknown facility "NASDAQ" (one of: TRACE-TSY, TRACE-CA, TRACE-SP, ORF, ADF)',
    );
    expect((await refusal(good, { file: 'CAMASTER' })).message).toBe(
      'Unknown file "CAMASTER" for ORF (one of: EQUITYMASTERAC, EQUITYMASTERIN)',
    );
    expect((await refusal(good, { date: '2026-02-29' })).code).toBe('INVALID_DATE');
    expect((await refusal(good, { date: '12/04/2026' })).code).toBe('INVALID_DATE');
    expect((await refusal(good, { date: '2025-12-01' })).code).toBe('DATE_OUTSIDE_RETENTION');
  });

  it('refuses a missing source or a directory', async () => {
    expect((await refusal(join(dir, 'nope.txt'))).message).toMatch(/no such file/);
    expect((await refusal(dir)).message).toMatch(/not a regular file/);
  });
});
