import { ClientError } from './errors.ts';

/** The outside world of the client, injected so tests control time and the network. */
export interface HttpDeps {
  fetch: typeof fetch;
  /** Epoch milliseconds. */
  now: () => number;
  /** Waits `ms`; rejects with the signal's reason if it is aborted first. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Sent as `User-Agent`, so the service's logs tell the client and its version. */
  userAgent: string;
  /** One line of news for the user (stderr): waits, retries, warnings. */
  notice: (line: string) => void;
}

/** How hard to try before giving up. */
export interface RetryPolicy {
  /** How many 429 answers to wait out before failing. */
  rateLimitRetries: number;
  /** A `Retry-After` longer than this is not waited for: the client fails and says when to retry. */
  maxRetryAfterMs: number;
  /** How many times to retry a connection failure or a 502/503/504. */
  transientRetries: number;
  /** The wait before retry number `attempt` (1-based). */
  backoffMs: (attempt: number) => number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  rateLimitRetries: 3,
  maxRetryAfterMs: 5 * 60_000,
  transientRetries: 5,
  backoffMs: exponentialBackoff(1000, 30_000),
};

/** 1 s, 2 s, 4 s… capped; full jitter is unnecessary for one user's client. */
export function exponentialBackoff(firstMs: number, capMs: number) {
  return (attempt: number) => Math.min(capMs, firstMs * 2 ** Math.max(0, attempt - 1));
}

export const systemSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * RFC 9110 §10.2.3: `Retry-After` is delay-seconds or an HTTP-date. Undefined when absent or
 * unreadable.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A failure to talk to the server at all (refused, reset, DNS, TLS): worth retrying. */
export function isConnectionFailure(err: unknown): boolean {
  return err instanceof TypeError || (err instanceof Error && 'code' in err && typeof err.code === 'string');
}

export function describeConnectionFailure(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}

const TRANSIENT_STATUSES = new Set([502, 503, 504]);

/**
 * Sends one request, waiting out 429 answers (`Retry-After`) and retrying connection failures and
 * 502/503/504 with backoff. `build` makes the request anew for each attempt (a fresh access token,
 * a fresh body). Answers with the last response, whatever its status; throws `RATE_LIMITED` when
 * 429 persists and `NETWORK` when the server cannot be reached.
 */
export async function sendWithRetries(
  url: string,
  build: () => Promise<RequestInit> | RequestInit,
  deps: HttpDeps,
  policy: RetryPolicy,
  signal?: AbortSignal,
): Promise<Response> {
  let rateLimited = 0;
  let transient = 0;
  for (;;) {
    const init = await build();
    let res: Response;
    try {
      res = await deps.fetch(url, {
        ...init,
        signal,
        headers: { 'user-agent': deps.userAgent, ...(init.headers as Record<string, string>) },
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (!isConnectionFailure(err) || transient >= policy.transientRetries) {
        throw new ClientError(
          'NETWORK',
          `cannot reach ${new URL(url).origin} (${describeConnectionFailure(err)}): check --base-url and your network`,
          { cause: err },
        );
      }
      transient++;
      const wait = policy.backoffMs(transient);
      deps.notice(
        `cannot reach ${new URL(url).origin} (${describeConnectionFailure(err)}); retrying in ${formatWait(wait)}`,
      );
      await deps.sleep(wait, signal);
      continue;
    }
    if (res.status === 429) {
      const wait = parseRetryAfter(res.headers.get('retry-after'), deps.now()) ?? policy.backoffMs(rateLimited + 1);
      await res.body?.cancel();
      if (rateLimited >= policy.rateLimitRetries || wait > policy.maxRetryAfterMs) {
        throw new ClientError(
          'RATE_LIMITED',
          `the download service is limiting requests (429) and asks to wait ${formatWait(wait)}: try again later`,
        );
      }
      rateLimited++;
      deps.notice(`the download service is busy (429); waiting ${formatWait(wait)} as it asks`);
      await deps.sleep(wait, signal);
      continue;
    }
    if (TRANSIENT_STATUSES.has(res.status) && transient < policy.transientRetries) {
      transient++;
      await res.body?.cancel();
      // RFC 9110 §10.2.3: a 503 may say how long to wait.
      const asked = parseRetryAfter(res.headers.get('retry-after'), deps.now());
      const wait = Math.min(asked ?? policy.backoffMs(transient), policy.maxRetryAfterMs);
      deps.notice(`the download service answered ${res.status}; retrying in ${formatWait(wait)}`);
      await deps.sleep(wait, signal);
      continue;
    }
    return res;
  }
}

export function formatWait(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s < 120) return `${s} s`;
  return `${Math.round(s / 60)} min`;
}
