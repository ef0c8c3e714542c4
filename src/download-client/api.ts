import type { AccessTokenSource } from './access-tokens.ts';
import { errorForApiResponse } from './errors.ts';
import { type HttpDeps, type RetryPolicy, sendWithRetries } from './http.ts';

export interface ApiRequest {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /**
   * Statuses handed back to the caller; any other is turned into the error for its status. With
   * `any`, every answer is handed back (a 401 still gets one new token and one retry first).
   */
  expect: readonly number[] | 'any';
  /** What the request is about, for messages. */
  subject?: { text: string; kind: 'file' | 'catalog' };
  signal?: AbortSignal;
}

export interface ApiClient {
  readonly baseUrl: string;
  readonly tokens: AccessTokenSource;
  /** Sends an authorized request to `{baseUrl}{path}`. */
  send(path: string, request: ApiRequest): Promise<Response>;
}

/**
 * The download API with a bearer token (RFC 6750). A 401 means the token expired or was revoked
 * since it was obtained (FAQ: "detect an expired Access Token and request a new one"): the client
 * obtains a new one and sends the request once more; a second 401 is final.
 */
export function createApiClient(options: {
  baseUrl: string;
  tokens: AccessTokenSource;
  deps: HttpDeps;
  retry: RetryPolicy;
}): ApiClient {
  const { baseUrl, tokens, deps, retry } = options;
  return {
    baseUrl,
    tokens,
    async send(path, request) {
      const url = `${baseUrl}${path}`;
      for (let attempt = 1; ; attempt++) {
        let token = '';
        const res = await sendWithRetries(
          url,
          async () => {
            token = await tokens.get(request.signal);
            return {
              method: request.method ?? 'GET',
              headers: { ...request.headers, authorization: `Bearer ${token}` },
            };
          },
          deps,
          retry,
          request.signal,
        );
        const expected = request.expect === 'any' || request.expect.includes(res.status);
        if (res.status === 401 && attempt === 1 && (request.expect === 'any' || !expected)) {
          await res.body?.cancel();
          tokens.invalidate(token);
          continue;
        }
        if (expected) return res;
        const body = request.method === 'HEAD' ? '' : await res.text().catch(() => '');
        throw errorForApiResponse(res.status, body, res.headers.get('www-authenticate'), {
          baseUrl,
          ...request.subject,
        });
      }
    },
  };
}
