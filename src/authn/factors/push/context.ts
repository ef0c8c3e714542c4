import { isIP } from 'node:net';

/**
 * What the device shows about a sign-in so the user can recognise it (Okta Verify shows app,
 * place, browser and time): pure functions of the request.
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

/** "Firefox on Linux", "Chrome on Windows"…, or the start of the user agent when unrecognised. */
export function describeBrowser(userAgent: string | null): string {
  if (!userAgent) return 'Unknown browser';
  const ua = userAgent;
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrome\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : /okta-auth-js/i.test(ua)
            ? 'Okta Auth JS'
            : undefined;
  const os = /Windows/.test(ua)
    ? 'Windows'
    : /Mac OS X|Macintosh/.test(ua)
      ? 'macOS'
      : /Android/.test(ua)
        ? 'Android'
        : /iPhone|iPad/.test(ua)
          ? 'iOS'
          : /Linux/.test(ua)
            ? 'Linux'
            : undefined;
  if (browser) return os ? `${browser} on ${os}` : browser;
  return ua.slice(0, 60);
}
