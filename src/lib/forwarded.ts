import { createHmac } from 'node:crypto';
import { constantTimeEqual } from './tokens.ts';

/**
 * The client address a front service (`download`'s `POST /oauth2/token`) passes on to the idp it
 * forwards a request to, so the idp records the real caller (the Programmatic page's "last IP").
 * A plain `X-Forwarded-For` would let anyone claim any address; this header carries an HMAC-SHA256
 * under a key both services derive from the environment key (RFC 2104), bound to a minute.
 */
export const FORWARDED_HEADER = 'x-traqs-forwarded-for';

const MAX_AGE_MS = 60_000;

export function signForwardedFor(key: Buffer, ip: string, now: number): string {
  const at = String(Math.floor(now / 1000));
  const mac = createHmac('sha256', key).update(`${ip}\n${at}`).digest('base64url');
  return `${ip};${at};${mac}`;
}

/** The forwarded address if the header is genuine and recent; undefined otherwise. */
export function verifyForwardedFor(key: Buffer, header: string | undefined, now: number): string | undefined {
  if (!header || header.length > 200) return undefined;
  const [ip = '', at = '', mac = ''] = header.split(';');
  if (!ip || !/^\d{1,12}$/.test(at)) return undefined;
  if (Math.abs(now - Number(at) * 1000) > MAX_AGE_MS) return undefined;
  const expected = createHmac('sha256', key).update(`${ip}\n${at}`).digest('base64url');
  return constantTimeEqual(mac, expected) ? ip : undefined;
}
