import { invalidRequest } from './errors.ts';
import { isCalendarDate } from './negotiate.ts';

/** Parameters as they arrive: from a query string or a form, each possibly repeated. */
export type RawParams = Record<string, string | string[] | undefined>;

/** What a file request asks for, validated and normalised (codes upper case). */
export interface FileRequest {
  facility: string;
  file: string;
  /** `YYYY-MM-DD`; undefined asks for the latest. */
  date: string | undefined;
}

const FACILITY_SYNTAX = /^[A-Za-z0-9-]{1,20}$/;
const FILE_SYNTAX = /^[A-Za-z0-9_-]{1,40}$/;

/**
 * One parameter's value, looked up case-insensitively by name (the legacy handler's clients send
 * `Facility`, `FILE`…). Given twice, in the query and the form, it must say the same thing.
 */
export function single(sources: readonly RawParams[], name: string): string | undefined {
  let found: string | undefined;
  for (const source of sources) {
    for (const [key, raw] of Object.entries(source)) {
      if (key.toLowerCase() !== name || raw === undefined) continue;
      const values = Array.isArray(raw) ? raw : [raw];
      for (const v of values) {
        if (found !== undefined && found !== v) throw invalidRequest(`parameter ${name} given more than once`);
        found = v;
      }
    }
  }
  return found;
}

function required(sources: readonly RawParams[], name: string): string {
  const v = single(sources, name);
  if (v === undefined || v.trim() === '') throw invalidRequest(`missing required parameter ${name}`);
  return v.trim();
}

/** `?date=` and `?since=`: a real calendar day written `YYYY-MM-DD`. */
export function parseDateParam(name: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!isCalendarDate(value)) throw invalidRequest(`malformed parameter ${name}: expected a date as YYYY-MM-DD`);
  return value;
}

export function parseFacilityParam(value: string): string {
  if (!FACILITY_SYNTAX.test(value)) {
    throw invalidRequest('malformed parameter facility: expected a facility code such as ORF or TRACE-CA');
  }
  return value.toUpperCase();
}

/** The facility, file and optional date of a download, or a 400 naming the first thing wrong. */
export function parseFileRequest(sources: readonly RawParams[]): FileRequest {
  const facility = parseFacilityParam(required(sources, 'facility'));
  const file = required(sources, 'file');
  if (!FILE_SYNTAX.test(file)) {
    throw invalidRequest('malformed parameter file: expected a file name such as EQUITYMASTERAC');
  }
  return { facility, file: file.toUpperCase(), date: parseDateParam('date', single(sources, 'date')) };
}

/** `DownloadHandler.ashx`'s `action`: DOWNLOAD is the only one there is. */
export function parseAction(sources: readonly RawParams[]): 'DOWNLOAD' {
  const action = required(sources, 'action');
  if (action.toUpperCase() !== 'DOWNLOAD') {
    throw invalidRequest(`unsupported value of parameter action: ${action.slice(0, 40)} (only DOWNLOAD is supported)`);
  }
  return 'DOWNLOAD';
}
