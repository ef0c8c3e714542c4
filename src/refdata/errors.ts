/** Why a reference-data operation was refused; `code` is stable, `message` is for people. */
export type RefdataErrorCode =
  | 'UNKNOWN_FACILITY'
  | 'UNKNOWN_FILE'
  | 'INVALID_DATE'
  | 'DATE_OUTSIDE_RETENTION'
  | 'INVALID_ROWS'
  | 'SOURCE_UNREADABLE'
  | 'NOT_TEXT'
  | 'NO_HEADER'
  | 'NOT_PIPE_DELIMITED'
  | 'COLUMN_COUNT_MISMATCH'
  | 'PATH_OUTSIDE_STORE'
  | 'UNKNOWN_USER';

/** A refused reference-data request (CONVENTIONS §5: a stable code, mapped to an answer once). */
export class RefdataError extends Error {
  readonly code: RefdataErrorCode;
  constructor(code: RefdataErrorCode, message: string) {
    super(message);
    this.name = 'RefdataError';
    this.code = code;
  }
}
