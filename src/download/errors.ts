/**
 * The download API's refusals. Each carries the OAuth `error` code (RFC 6749 §5.2, RFC 6750 §3.1)
 * or one of ours, the HTTP status, and a description that says what to do; the app's one error
 * handler turns them into `{ error, error_description }` answers (CONVENTIONS 5).
 */
export class DownloadError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
    /** Extra response headers (`Retry-After`, `Content-Range`). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(description);
    this.name = 'DownloadError';
  }
}

/**
 * A request with no bearer token. RFC 6750 §3.1: its challenge names no `error` (the client may not
 * have known the API needs one); the JSON body still says what to send.
 */
export class MissingTokenError extends DownloadError {
  constructor(description: string) {
    super(401, 'invalid_token', description);
  }
}

export const invalidRequest = (description: string) => new DownloadError(400, 'invalid_request', description);
export const invalidToken = (description: string) => new DownloadError(401, 'invalid_token', description);
export const notFound = (description: string) => new DownloadError(404, 'not_found', description);
export const forbidden = (code: string, description: string) => new DownloadError(403, code, description);

/** The JSON body of every refusal. */
export function errorBody(code: string, description: string): { error: string; error_description: string } {
  return { error: code, error_description: description };
}

/**
 * The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3) with the RFC 9728 §5.1 pointer to the
 * protected-resource metadata. Quoted-string values may not hold `"` or `\` (RFC 9110 §5.6.4).
 */
export function bearerChallenge(realm: string, metadataUrl: string, error?: { code: string; description: string }) {
  const quote = (v: string) => `"${v.replace(/["\\\r\n]/g, ' ')}"`;
  const parts = [`realm=${quote(realm)}`, `resource_metadata=${quote(metadataUrl)}`];
  if (error) parts.push(`error=${quote(error.code)}`, `error_description=${quote(error.description)}`);
  return `Bearer ${parts.join(', ')}`;
}
