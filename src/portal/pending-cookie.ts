import { z } from 'zod';
import type { PendingAuthorization } from './oidc-client.ts';

/** A pending authorization request as the browser carries it, with what the page asked for. */
export interface PendingFlow extends PendingAuthorization {
  /** The label the user gave the refresh token they asked for (programmatic flow only). */
  label?: string | undefined;
  /** Where the browser goes after signing in (sign-in flow only; checked against an allow-list). */
  returnTo?: string | undefined;
}

const shape = z
  .object({
    s: z.string().min(1).max(200),
    n: z.string().min(1).max(200),
    v: z.string().min(43).max(128),
    t: z.number().int().nonnegative(),
    l: z.string().max(200).optional(),
    r: z.string().max(200).optional(),
  })
  .strict();

/**
 * The cookie value of a pending request (state, nonce, PKCE verifier, start time). The cookie is
 * signed and HttpOnly: the browser holds it but cannot alter it, and only this browser can finish
 * the flow it started (OAuth 2.0 Security BCP, RFC 9700 §4.7.1: state bound to the user agent).
 */
export function encodePendingFlow(flow: PendingFlow): string {
  const value = {
    s: flow.state,
    n: flow.nonce,
    v: flow.codeVerifier,
    t: flow.startedAt,
    ...(flow.label !== undefined ? { l: flow.label } : {}),
    ...(flow.returnTo !== undefined ? { r: flow.returnTo } : {}),
  };
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** The pending request of a (verified) cookie value, or undefined if it is malformed or older than `ttlMs`. */
export function decodePendingFlow(value: string | undefined, now: number, ttlMs: number): PendingFlow | undefined {
  if (!value || value.length > 2000) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = shape.safeParse(json);
  if (!parsed.success) return undefined;
  const p = parsed.data;
  if (p.t > now + 60_000 || now - p.t > ttlMs) return undefined;
  return {
    state: p.s,
    nonce: p.n,
    codeVerifier: p.v,
    startedAt: p.t,
    ...(p.l !== undefined ? { label: p.l } : {}),
    ...(p.r !== undefined ? { returnTo: p.r } : {}),
  };
}
