import type { Clock } from '../lib/tokens.ts';

export interface RateLimitPolicy {
  /** Sustained requests per minute per user (the bucket's refill rate). */
  perMinute: number;
  /** Requests a user may make at once after being idle (the bucket's size). */
  burst: number;
}

/** The default: 10 requests a second per user on average, 100 at once (`traqs-download` resumes, scripts loop). */
export const DEFAULT_RATE_LIMIT: RateLimitPolicy = { perMinute: 600, burst: 100 };

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * A token bucket per key (the user id), in this process's memory: several nodes each allow the
 * limit, as with the idp's per-IP limit. The map is bounded: past `maxKeys` the longest-idle key is
 * forgotten, which can only let that user start again with a full bucket.
 */
export function createRateLimiter(policy: RateLimitPolicy, clock: Clock, maxKeys = 100_000) {
  const perMs = policy.perMinute / 60_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key: string): RateDecision {
      const now = clock();
      const b = buckets.get(key);
      let tokens = policy.burst;
      if (b) {
        tokens = Math.min(policy.burst, b.tokens + Math.max(0, now - b.at) * perMs);
        buckets.delete(key);
      } else if (buckets.size >= maxKeys) {
        const oldest = buckets.keys().next().value;
        if (oldest !== undefined) buckets.delete(oldest);
      }
      if (tokens >= 1) {
        buckets.set(key, { tokens: tokens - 1, at: now });
        return { ok: true };
      }
      buckets.set(key, { tokens, at: now });
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)) };
    },
  };
}
export type RateLimiter = ReturnType<typeof createRateLimiter>;
