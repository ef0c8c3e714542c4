import { X509Certificate } from 'node:crypto';
import { DOMParser } from '@xmldom/xmldom';
import { z } from 'zod';

/** A SAML 2.0 identity provider: what its metadata says, and which attribute names our user. */
export const samlSettingsSchema = z.object({
  protocol: z.literal('saml'),
  entityId: z.string().min(1).max(1024),
  /** SingleSignOnService with the HTTP-Redirect binding (SAML Bindings §3.4). */
  ssoUrl: z.url({ protocol: /^https?$/ }),
  /** PEM certificates the IdP signs with; several during a key rollover. */
  certificates: z.array(z.string().min(1)).min(1).max(5),
  /**
   * Where the metadata came from, for `idp show`; when an https URL, the idp fetches it again once
   * every 24 hours (SAML Metadata §2.2: an IdP may publish new keys there).
   */
  metadataSource: z.string().max(1024).optional(),
  /**
   * When the automatic refresh last claimed this configuration (ms): the node that moves it on is
   * the one that fetches, so several nodes do the daily refresh once between them.
   */
  metadataCheckedAt: z.number().int().nonnegative().optional(),
  /** The attribute holding the username; absent, the NameID (format email address). */
  userAttribute: z.string().min(1).max(256).optional(),
});
export type SamlSettings = z.infer<typeof samlSettingsSchema>;

/** An OpenID provider: found by discovery (OpenID Connect Discovery 1.0 §4). */
export const oidcSettingsSchema = z.object({
  protocol: z.literal('oidc'),
  issuer: z.url({ protocol: /^https?$/ }),
  clientId: z.string().min(1).max(256),
  /** The ID token claim holding the username; `email` by default. */
  userClaim: z.string().min(1).max(256).default('email'),
});
export type OidcSettings = z.infer<typeof oidcSettingsSchema>;

export const idpSettingsSchema = z.discriminatedUnion('protocol', [samlSettingsSchema, oidcSettingsSchema]);
export type IdpSettings = z.infer<typeof idpSettingsSchema>;

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

/** Wraps a base64 certificate body as PEM. */
export function pemOf(base64: string): string {
  const body = base64.replace(/\s+/g, '');
  return `-----BEGIN CERTIFICATE-----\n${body.replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END CERTIFICATE-----\n`;
}

export class MetadataError extends Error {}

/**
 * Reads an IdP's SAML metadata (SAML Metadata §2.4.3 IDPSSODescriptor): entity id, the
 * HTTP-Redirect SingleSignOnService and the signing certificates (`use="signing"` or no `use`).
 * Each certificate must parse as X.509, so a typo fails at `idp add`, not at the first sign-in.
 */
export function parseIdpMetadata(xml: string): Pick<SamlSettings, 'entityId' | 'ssoUrl' | 'certificates'> {
  const errors: string[] = [];
  const doc = new DOMParser({
    errorHandler: { error: (m: string) => errors.push(m), fatalError: (m: string) => errors.push(m) },
  }).parseFromString(xml, 'text/xml');
  if (errors.length || !doc?.documentElement) throw new MetadataError(`Not XML metadata: ${errors[0] ?? 'empty'}`);
  const root = doc.documentElement;
  const entity =
    root.localName === 'EntityDescriptor' ? root : (doc.getElementsByTagNameNS(MD, 'EntityDescriptor').item(0) ?? null);
  const entityId = entity?.getAttribute('entityID') ?? '';
  const idp = entity?.getElementsByTagNameNS(MD, 'IDPSSODescriptor').item(0);
  if (!entityId || !idp) throw new MetadataError('The metadata has no EntityDescriptor with an IDPSSODescriptor.');
  let ssoUrl = '';
  const services = idp.getElementsByTagNameNS(MD, 'SingleSignOnService');
  for (let i = 0; i < services.length; i++) {
    const s = services.item(i);
    if (s?.getAttribute('Binding') === REDIRECT) ssoUrl = s.getAttribute('Location') ?? '';
  }
  if (!ssoUrl) throw new MetadataError('The IdP offers no SingleSignOnService with the HTTP-Redirect binding.');
  const certificates: string[] = [];
  const keys = idp.getElementsByTagNameNS(MD, 'KeyDescriptor');
  for (let i = 0; i < keys.length; i++) {
    const k = keys.item(i);
    const use = k?.getAttribute('use');
    if (!k || (use && use !== 'signing')) continue;
    const certs = k.getElementsByTagNameNS(DS, 'X509Certificate');
    for (let j = 0; j < certs.length; j++) {
      const pem = pemOf(certs.item(j)?.textContent ?? '');
      try {
        new X509Certificate(pem);
      } catch {
        throw new MetadataError('A signing certificate in the metadata is not a valid X.509 certificate.');
      }
      if (!certificates.includes(pem)) certificates.push(pem);
    }
  }
  if (!certificates.length) throw new MetadataError('The metadata has no signing certificate.');
  return samlSettingsSchema.pick({ entityId: true, ssoUrl: true, certificates: true }).parse({
    entityId,
    ssoUrl,
    certificates,
  });
}

/** The SHA-256 fingerprint of a PEM certificate, as `openssl x509 -fingerprint -sha256` prints it. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** What replacing an IdP's metadata changes (entity id aside: it never changes in place). */
export interface MetadataChange {
  changed: boolean;
  /** The SSO URL before and after, when it changed. */
  ssoUrl?: { before: string; after: string };
  /** SHA-256 fingerprints of the signing certificates that appear and that go. */
  certificatesAdded: string[];
  certificatesRemoved: string[];
  /** Where the metadata came from, before and after, when that changed. */
  metadataSource?: { before: string | null; after: string | null };
}

/**
 * Compares the configured IdP with newly read metadata. Certificates are compared by fingerprint,
 * so the same certificate wrapped or ordered differently in the XML is no change.
 */
export function diffIdpMetadata(
  before: Pick<SamlSettings, 'ssoUrl' | 'certificates' | 'metadataSource'>,
  after: Pick<SamlSettings, 'ssoUrl' | 'certificates' | 'metadataSource'>,
): MetadataChange {
  const was = before.certificates.map(certificateFingerprint);
  const now = after.certificates.map(certificateFingerprint);
  const change: MetadataChange = {
    changed: false,
    certificatesAdded: now.filter((f) => !was.includes(f)),
    certificatesRemoved: was.filter((f) => !now.includes(f)),
  };
  if (before.ssoUrl !== after.ssoUrl) change.ssoUrl = { before: before.ssoUrl, after: after.ssoUrl };
  if ((before.metadataSource ?? null) !== (after.metadataSource ?? null)) {
    change.metadataSource = { before: before.metadataSource ?? null, after: after.metadataSource ?? null };
  }
  change.changed = Boolean(
    change.ssoUrl || change.metadataSource || change.certificatesAdded.length || change.certificatesRemoved.length,
  );
  return change;
}
