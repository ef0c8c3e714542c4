import { assertIsoDate, businessDayOfDay, dayNumber, isWeekend } from './business-days.ts';
import { RefdataError } from './errors.ts';
import { assertFileKind } from './facilities.ts';
import type { FileStore, PutOptions } from './file-store.ts';
import { createCorporateModel } from './models/corporate.ts';
import { createAdfModel, createOrfModel } from './models/equity.ts';
import { createSecuritizedModel } from './models/securitized.ts';
import { createTreasuryModel } from './models/treasury.ts';
import type { ReferenceFileRow } from './repository.ts';
import { seedOf } from './seeded.ts';
import { dailyListRows, masterRows, type SecurityModel, type Slot } from './universe.ts';

/**
 * Master rows per facility when not told otherwise: a few thousand, so a quick start has
 * realistic-looking files in well under a second each.
 */
export const DEFAULT_ROWS: Readonly<Record<string, number>> = {
  'TRACE-TSY': 1500,
  'TRACE-CA': 5000,
  'TRACE-SP': 4000,
  ORF: 4000,
  ADF: 3000,
};

/** The largest universe `--rows` accepts (about 16 GiB of corporate master). */
export const MAX_ROWS = 100_000_000;

export interface GenerateRequest {
  facility: string;
  file: string;
  /** `YYYY-MM-DD`, a weekday. */
  date: string;
  /**
   * Securities in the facility's universe: the masters' row count. Daily lists of the same
   * universe hold what changed (about 1 % of it); use the same value for a facility's masters and
   * daily lists, or they will not agree. Default {@link DEFAULT_ROWS}.
   */
  rows?: number;
}

/** Throws `INVALID_ROWS` unless `rows` is a whole number from 1 to {@link MAX_ROWS}. */
export function assertRows(rows: number): number {
  if (!Number.isSafeInteger(rows) || rows < 1 || rows > MAX_ROWS) {
    throw new RefdataError('INVALID_ROWS', `Invalid row count "${rows}": a whole number from 1 to ${MAX_ROWS}`);
  }
  return rows;
}

/**
 * A synthetic file, as pipe-delimited ASCII text with a header row, in chunks of about 1 MiB.
 * The same request always gives the same bytes: everything is derived from the facility, the
 * universe size and the date (src/refdata/universe.ts explains how masters and daily lists agree).
 */
export function generateFile(request: GenerateRequest): Iterable<Buffer> {
  const { facility, kind } = assertFileKind(request.facility, request.file);
  const date = assertIsoDate(request.date);
  if (isWeekend(date)) {
    throw new RefdataError('INVALID_DATE', `${date} is a Saturday or Sunday: files are published for business days`);
  }
  const size = assertRows(request.rows ?? DEFAULT_ROWS[facility.code] ?? 1000);
  const seed = seedOf(`traqs-refdata/${facility.code}`);
  const businessDay = businessDayOfDay(dayNumber(date));
  const rows = <S extends Slot>(model: SecurityModel<S>): Iterable<Buffer> =>
    kind.kind === 'daily'
      ? dailyListRows(model, size, businessDay, date.replaceAll('-', ''))
      : masterRows(model, size, businessDay, kind.code === 'EQUITYMASTERIN' ? 'inactive' : 'active');
  switch (facility.code) {
    case 'TRACE-TSY':
      return rows(createTreasuryModel(seed, size));
    case 'TRACE-CA':
      return rows(createCorporateModel(seed, size));
    case 'TRACE-SP':
      return rows(createSecuritizedModel(seed, size));
    case 'ORF':
      return rows(createOrfModel(seed, size));
    case 'ADF':
      return rows(createAdfModel(seed, size));
    default:
      throw new Error(`No generator for ${facility.code}`);
  }
}

/** Generates a file into the store (atomically) and registers it in the catalog. */
export function generateIntoStore(
  store: FileStore,
  request: GenerateRequest,
  options?: PutOptions,
): Promise<ReferenceFileRow> {
  return store.put(request, generateFile(request), options);
}
