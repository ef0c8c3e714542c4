import { RefdataError } from './errors.ts';

/**
 * The reference-data catalog's fixed vocabulary: FINRA facilities and the files each publishes
 * (issue #5, DESIGN "Reference data API"). Codes are what clients put in URLs
 * (`/v1/files/{facility}/{file}`, `DownloadHandler.ashx?facility=…&file=…`), upper case.
 */

export interface FileKind {
  /** The file name clients ask for, e.g. `EQUITYMASTERAC`. */
  code: string;
  title: string;
  /** `master`: the full list as of the date; `daily`: that day's adds, deletes and changes. */
  kind: 'master' | 'daily';
}

export interface Facility {
  code: string;
  title: string;
  files: readonly FileKind[];
}

export const FACILITIES: readonly Facility[] = [
  {
    code: 'TRACE-TSY',
    title: 'TRACE Treasury',
    files: [
      { code: 'TSYMASTER', title: 'Treasury security master', kind: 'master' },
      { code: 'TSYDAILYLIST', title: 'Treasury daily list (adds, deletes, changes)', kind: 'daily' },
    ],
  },
  {
    code: 'TRACE-CA',
    title: 'TRACE Corporate and Agency',
    files: [
      { code: 'CAMASTER', title: 'Corporate and agency security master', kind: 'master' },
      { code: 'CADAILYLIST', title: 'Corporate and agency daily list (adds, deletes, changes)', kind: 'daily' },
    ],
  },
  {
    code: 'TRACE-SP',
    title: 'TRACE Securitized Products',
    files: [
      { code: 'SPMASTER', title: 'Securitized products security master', kind: 'master' },
      { code: 'SPDAILYLIST', title: 'Securitized products daily list (adds, deletes, changes)', kind: 'daily' },
    ],
  },
  {
    code: 'ORF',
    title: 'OTC Reporting Facility',
    files: [
      { code: 'EQUITYMASTERAC', title: 'ORF equity master, active securities', kind: 'master' },
      { code: 'EQUITYMASTERIN', title: 'ORF equity master, inactive securities', kind: 'master' },
    ],
  },
  {
    code: 'ADF',
    title: 'Alternative Display Facility',
    files: [
      { code: 'ADFEQUITYMASTER', title: 'ADF equity master', kind: 'master' },
      { code: 'ADFDAILYLIST', title: 'ADF daily list (adds, deletes, changes)', kind: 'daily' },
    ],
  },
];

export const FACILITY_CODES = FACILITIES.map((f) => f.code);

export function findFacility(code: string): Facility | undefined {
  return FACILITIES.find((f) => f.code === code.toUpperCase());
}

export function findFileKind(facility: string, file: string): FileKind | undefined {
  return findFacility(facility)?.files.find((f) => f.code === file.toUpperCase());
}

/** How long files are kept: one rolling year (issue #5). */
export const RETENTION_DAYS = 366;

/** The facility of `code` (any case), or a `UNKNOWN_FACILITY` error naming the valid codes. */
export function assertFacility(code: string): Facility {
  const facility = findFacility(code);
  if (!facility) {
    throw new RefdataError('UNKNOWN_FACILITY', `Unknown facility "${code}" (one of: ${FACILITY_CODES.join(', ')})`);
  }
  return facility;
}

/** The facility and file of these codes (any case), or an error naming the valid codes. */
export function assertFileKind(facilityCode: string, fileCode: string): { facility: Facility; kind: FileKind } {
  const facility = assertFacility(facilityCode);
  const kind = facility.files.find((f) => f.code === fileCode.toUpperCase());
  if (!kind) {
    const valid = facility.files.map((f) => f.code).join(', ');
    throw new RefdataError('UNKNOWN_FILE', `Unknown file "${fileCode}" for ${facility.code} (one of: ${valid})`);
  }
  return { facility, kind };
}
