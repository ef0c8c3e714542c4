import { isIP } from 'node:net';

/**
 * What the device shows about a sign-in so the user can recognise it (Okta Verify shows app,
 * place, browser and time): pure functions of the request. The browser is described as the
 * profile's "Recent activity" does (`describeBrowser`).
 */

/**
 * An approximate place for an address. No GeoIP database ships with the product, so only what
 * the address itself says: this machine, a private network, or unknown. An operator who wants
 * cities plugs a lookup in here.
 */
export function approximatePlace(ip: string | null): string {
  if (!ip || !isIP(ip)) return 'Unknown location';
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  if (v4 === '127.0.0.1' || v4 === '::1' || v4.startsWith('127.')) return 'This computer';
  if (/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(v4) || /^f[cd]/i.test(v4)) return 'Private network';
  // RFC 5737 documentation ranges, used by tests and examples.
  if (/^(192\.0\.2\.|198\.51\.100\.|203\.0\.113\.)/.test(v4)) return 'Documentation network (RFC 5737)';
  return 'Unknown location';
}
