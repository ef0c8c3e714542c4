import { isIP } from 'node:net';

/** Who the WebAuthn credentials of an environment belong to: the idp's host and origin. */
export interface RelyingParty {
  /** The host of the idp public URL (WebAuthn §5.1.2 "RP ID"). */
  id: string;
  /** Shown by some authenticators next to the account, e.g. "TRAQS NTF". */
  name: string;
  /** The idp public URL's origin, which `clientDataJSON.origin` must equal. */
  origin: string;
}

/** Whether FastPass can be offered here, and why not when it cannot (DESIGN, "transport security"). */
export type WebAuthnSupport = { available: true; rp: RelyingParty } | { available: false; reason: string };

/**
 * The relying party of the idp at `publicUrl`. Browsers offer WebAuthn only in a secure context
 * (https, or http on `localhost`), and an IP address cannot be a relying-party id (WebAuthn §5.1.2,
 * a valid domain): in those cases FastPass is not offered, with the reason the pages show.
 */
export function webAuthnSupportFor(publicUrl: string, name: string): WebAuthnSupport {
  let url: URL;
  try {
    url = new URL(publicUrl);
  } catch {
    return { available: false, reason: 'The sign-in URL is not valid, so FastPass cannot be set up.' };
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    return {
      available: false,
      reason: `FastPass needs the sign-in page to be opened by its host name, not an IP address (${host}). Ask your administrator for the right address.`,
    };
  }
  // W3C Secure Contexts §3.1: https, or a loopback host name.
  const secure = url.protocol === 'https:' || host === 'localhost' || host.endsWith('.localhost');
  if (!secure) {
    return {
      available: false,
      reason:
        'The sign-in URL is not secure (plain http), so this browser will not set up FastPass. Open the sign-in page with https, or ask your administrator to serve it over https.',
    };
  }
  return { available: true, rp: { id: host, name, origin: url.origin } };
}
