/**
 * Okta's error catalogue, the subset we answer with. Clients (okta-auth-js, the Okta SDKs) key on
 * `errorCode`, so the codes and statuses are Okta's own.
 */
export const OKTA_ERRORS = {
  VALIDATION: { status: 400, errorCode: 'E0000001', errorSummary: 'Api validation failed' },
  MALFORMED_BODY: { status: 400, errorCode: 'E0000003', errorSummary: 'The request body was not well-formed.' },
  AUTH_FAILED: { status: 401, errorCode: 'E0000004', errorSummary: 'Authentication failed' },
  FORBIDDEN: {
    status: 403,
    errorCode: 'E0000006',
    errorSummary: 'You do not have permission to perform the requested action',
  },
  NOT_FOUND: { status: 404, errorCode: 'E0000007', errorSummary: 'Not found: Resource not found' },
  INVALID_TOKEN: { status: 401, errorCode: 'E0000011', errorSummary: 'Invalid token provided' },
  METHOD_NOT_ALLOWED: {
    status: 405,
    errorCode: 'E0000022',
    errorSummary: 'The endpoint does not support the provided HTTP method',
  },
  RATE_LIMITED: {
    status: 429,
    errorCode: 'E0000047',
    errorSummary: 'API call exceeded rate limit due to too many requests.',
  },
  USER_STATUS: {
    status: 403,
    errorCode: 'E0000038',
    errorSummary: "This operation is not allowed in the user's current status.",
  },
  INVALID_PASSCODE: { status: 403, errorCode: 'E0000068', errorSummary: 'Invalid Passcode/Answer' },
  USER_LOCKED: {
    status: 403,
    errorCode: 'E0000069',
    errorSummary: 'User Locked: Your account is locked because of too many authentication attempts.',
  },
  WRONG_STATE: {
    status: 403,
    errorCode: 'E0000079',
    errorSummary: 'This operation is not allowed in the current authentication state.',
  },
  PASSWORD_POLICY: {
    status: 403,
    errorCode: 'E0000080',
    errorSummary: 'The password does not meet the complexity requirements of the current password policy.',
  },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, errorCode: 'E0000001', errorSummary: 'Unsupported media type' },
  BODY_TOO_LARGE: { status: 413, errorCode: 'E0000003', errorSummary: 'The request body was too large.' },
  INTERNAL: { status: 500, errorCode: 'E0000009', errorSummary: 'Internal Server Error' },
} as const;

export type OktaErrorName = keyof typeof OKTA_ERRORS;

/** A domain failure with a stable code; the one error handler turns it into a response. */
export class AppError extends Error {
  readonly status: number;
  readonly errorCode: string;
  readonly errorSummary: string;
  constructor(
    readonly name_: OktaErrorName,
    readonly causes: string[] = [],
    summary?: string,
  ) {
    const e = OKTA_ERRORS[name_];
    super(summary ?? e.errorSummary);
    this.name = 'AppError';
    this.status = e.status;
    this.errorCode = e.errorCode;
    this.errorSummary = summary ?? e.errorSummary;
  }
}

/** Okta's error object: `errorCode`, `errorSummary`, `errorLink`, `errorId`, `errorCauses`. */
export function oktaErrorBody(err: { errorCode: string; errorSummary: string; causes: string[] }, errorId: string) {
  return {
    errorCode: err.errorCode,
    errorSummary: err.errorSummary,
    errorLink: err.errorCode,
    errorId,
    errorCauses: err.causes.map((c) => ({ errorSummary: c })),
  };
}
