/**
 * What can go wrong for a user of `traqs-download`, each with a stable code and a distinct exit
 * code, so scripts can tell "get a new refresh token" from "try again later" without parsing text
 * (the FAQ's status list: 400 incomplete request, 403 App not assigned, 404, expired tokens).
 */

export const EXIT_CODES = {
  OK: 0,
  /** A server error (5xx) or an answer the client does not understand. */
  UNEXPECTED: 1,
  /** Wrong command-line usage (unknown option, bad date, missing base URL). */
  USAGE: 2,
  /** No refresh token, or its file is readable by others or unreadable. */
  CREDENTIALS: 3,
  /** The token endpoint answered `invalid_grant`: the refresh token is expired, revoked or unknown. */
  INVALID_GRANT: 4,
  /** 400 `invalid_request` (or another refusal of the token request). */
  BAD_REQUEST: 5,
  /** 401 even with a freshly obtained access token. */
  UNAUTHORIZED: 6,
  /** 403 `app_not_assigned` or `not_entitled`. */
  FORBIDDEN: 7,
  /** 404: no such file or date, or no service at the base URL. */
  NOT_FOUND: 8,
  /** 429 still answered after waiting `Retry-After` a few times. */
  RATE_LIMITED: 9,
  /** The downloaded bytes do not match the published SHA-256 (or no checksum was published). */
  INTEGRITY: 10,
  /** The service could not be reached, or the connection kept breaking, after retries. */
  NETWORK: 11,
  /** The output file could not be written. */
  LOCAL_FILE: 12,
  /** Interrupted (Ctrl+C): a partial download is kept for the next run. 128 + SIGINT. */
  INTERRUPTED: 130,
} as const;

export type ClientErrorCode = keyof typeof EXIT_CODES;

/** An error to print as one clear message (no stack) and exit with its code. */
export class ClientError extends Error {
  readonly code: ClientErrorCode;
  readonly exitCode: number;

  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
    this.exitCode = EXIT_CODES[code];
  }
}

/** Said with every `invalid_grant`: a new refresh token needs a person and an MFA sign-in (FAQ). */
export const INVALID_GRANT_MESSAGE =
  'your refresh token is expired, revoked or unknown: get a new one on the Programmatic page of the TRAQS website';

/** The OAuth error object of a JSON answer (`{ error, error_description }`), if there is one. */
export interface OauthErrorBody {
  error?: string;
  description?: string;
}

export function parseOauthError(body: string): OauthErrorBody {
  try {
    const v: unknown = JSON.parse(body);
    if (typeof v !== 'object' || v === null) return {};
    const o = v as Record<string, unknown>;
    return {
      error: typeof o.error === 'string' ? o.error : undefined,
      description: typeof o.error_description === 'string' ? o.error_description : undefined,
    };
  } catch {
    return {};
  }
}

/** RFC 6750 §3: `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`. */
export function parseBearerChallenge(header: string | null): OauthErrorBody {
  if (!header) return {};
  const param = (name: string) => new RegExp(`${name}="((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(header)?.[1];
  return { error: param('error'), description: param('error_description') };
}

/** What the request was about, for messages. */
export interface RequestSubject {
  baseUrl: string;
  /** `ORF EQUITYMASTERAC (latest)` or `the catalog of ORF`; the whole catalog when absent. */
  text?: string;
  kind?: 'file' | 'catalog';
}

const withDetail = (text: string, detail: string | undefined) => (detail ? `${text} (${detail})` : text);

/** The error for a refusal of the download API, by status (FAQ "400 Error", "403/404 Errors"). */
export function errorForApiResponse(
  status: number,
  body: string,
  wwwAuthenticate: string | null,
  subject: RequestSubject,
): ClientError {
  const oauth = parseOauthError(body);
  const what = subject.text ?? 'the file catalog';
  switch (status) {
    case 400:
      return new ClientError(
        'BAD_REQUEST',
        withDetail(
          `the download service refused the request for ${what} as incomplete or invalid (400 ${oauth.error ?? 'invalid_request'})`,
          oauth.description,
        ),
      );
    case 401: {
      const challenge = parseBearerChallenge(wwwAuthenticate);
      return new ClientError(
        'UNAUTHORIZED',
        withDetail(
          `the download service refused a freshly issued access token (401 ${challenge.error ?? oauth.error ?? 'invalid_token'}): check that --base-url is the download service of the environment your refresh token is for`,
          challenge.description ?? oauth.description,
        ),
      );
    }
    case 403:
      if (oauth.error === 'not_entitled') {
        return new ClientError(
          'FORBIDDEN',
          withDetail(
            `you are not entitled to ${what} (403 not_entitled): ask your firm's administrator to request the entitlement`,
            oauth.description,
          ),
        );
      }
      if (oauth.error === undefined || oauth.error === 'app_not_assigned') {
        return new ClientError(
          'FORBIDDEN',
          withDetail(
            'App not assigned (403 app_not_assigned): your user is not assigned to API Download; contact technical support',
            oauth.description,
          ),
        );
      }
      return new ClientError(
        'FORBIDDEN',
        withDetail(`the download service refused access to ${what} (403 ${oauth.error})`, oauth.description),
      );
    case 404: {
      // The whole catalog missing means a wrong base URL; a file or facility missing means a wrong name.
      const hint = subject.text
        ? 'run "traqs-download list" to see what you may download'
        : 'check --base-url (the API download URL of your environment)';
      return new ClientError('NOT_FOUND', `not found (404): ${oauth.description ?? what}; ${hint}`);
    }
    case 429:
      return new ClientError(
        'RATE_LIMITED',
        `the download service is still limiting requests (429) after waiting as asked: try again later`,
      );
    default:
      return new ClientError(
        'UNEXPECTED',
        status >= 500
          ? `the download service failed (${status}) for ${what}: try again later`
          : `unexpected answer ${status} from the download service for ${what}`,
      );
  }
}
