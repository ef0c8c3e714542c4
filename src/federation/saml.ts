import { randomBytes } from 'node:crypto';
import {
  type CacheProvider,
  generateServiceProviderMetadata,
  type Profile,
  SAML,
  ValidateInResponseTo,
} from '@node-saml/node-saml';
import { DOMParser } from '@xmldom/xmldom';
import type { SamlSettings } from './model.ts';
import { type FederatedIdentity, normalizeUsername, samlReportsMfa } from './verify.ts';

/** Our service provider for one IdP configuration (one key pair and entity id per configuration). */
export interface ServiceProvider {
  entityId: string;
  acsUrl: string;
  privateKeyPem: string;
  certificatePem: string;
}

/**
 * SAML Core §1.3.4: clocks of the two parties differ a little. One minute either way, no more:
 * NotBefore / NotOnOrAfter / SubjectConfirmationData are otherwise enforced as issued.
 */
export const SAML_CLOCK_SKEW_MS = 60_000;
/** An assertion is accepted at most this long after it was issued, whatever NotOnOrAfter says. */
export const SAML_MAX_ASSERTION_AGE_MS = 5 * 60_000;

const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

function samlFor(settings: SamlSettings, sp: ServiceProvider, requests: CacheProvider, requestTtlMs: number): SAML {
  return new SAML({
    entryPoint: settings.ssoUrl,
    issuer: sp.entityId,
    callbackUrl: sp.acsUrl,
    idpCert: settings.certificates,
    // SAML Profiles §4.1.4.2: the Issuer must be the IdP we sent the request to.
    idpIssuer: settings.entityId,
    // SAML Core §2.5.1.4: we must be in the AudienceRestriction.
    audience: sp.entityId,
    // The assertion itself must be signed (SAML Profiles §4.1.3.5), not only the envelope.
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: false,
    acceptedClockSkewMs: SAML_CLOCK_SKEW_MS,
    maxAssertionAgeMs: SAML_MAX_ASSERTION_AGE_MS,
    // Only answers to requests we sent (no unsolicited responses): `InResponseTo` is looked up in
    // the database through `requests`, so the answer may reach any node.
    validateInResponseTo: ValidateInResponseTo.always,
    requestIdExpirationPeriodMs: requestTtlMs,
    cacheProvider: requests,
    privateKey: sp.privateKeyPem,
    signatureAlgorithm: 'sha256',
    identifierFormat: EMAIL_FORMAT,
    disableRequestedAuthnContext: true,
    // SAML Core §1.3.4: an xs:ID, unguessable (128 bits).
    generateUniqueId: () => `_${randomBytes(16).toString('hex')}`,
  });
}

/** Our SP metadata (SAML Metadata §2.4.4): entity id, ACS URL, the certificate we sign requests with. */
export function serviceProviderMetadata(sp: ServiceProvider): string {
  return generateServiceProviderMetadata({
    issuer: sp.entityId,
    callbackUrl: sp.acsUrl,
    publicCerts: sp.certificatePem,
    privateKey: sp.privateKeyPem,
    signMetadata: false,
    wantAssertionsSigned: true,
    identifierFormat: EMAIL_FORMAT,
  });
}

/**
 * The URL that sends the browser to the IdP with a signed AuthnRequest (HTTP-Redirect binding,
 * SAML Bindings §3.4.4.1). `requests.saveAsync` records the request id.
 */
export function samlAuthorizeUrl(
  settings: SamlSettings,
  sp: ServiceProvider,
  requests: CacheProvider,
  requestTtlMs: number,
): Promise<string> {
  return samlFor(settings, sp, requests, requestTtlMs).getAuthorizeUrlAsync('', undefined, {});
}

/** What a verified SAML response says. */
export interface VerifiedSamlResponse {
  requestId: string;
  assertionId: string;
  /** When the assertion stops being acceptable (Conditions NotOnOrAfter, else the age limit). */
  notOnOrAfter: number;
  identity: FederatedIdentity;
}

function first(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}
function textOf(v: unknown): string | undefined {
  const f = first(v);
  if (typeof f === 'string') return f;
  if (f && typeof f === 'object' && typeof (f as { _?: unknown })._ === 'string') return (f as { _: string })._;
  return undefined;
}

/**
 * Verifies an HTTP-POST `SAMLResponse` (signature, issuer, audience, time window with
 * {@link SAML_CLOCK_SKEW_MS}, `InResponseTo`); throws node-saml's error when it is not valid.
 */
export async function verifySamlResponse(
  settings: SamlSettings,
  sp: ServiceProvider,
  requests: CacheProvider,
  requestTtlMs: number,
  samlResponse: string,
  now: number,
): Promise<VerifiedSamlResponse> {
  const { profile } = await samlFor(settings, sp, requests, requestTtlMs).validatePostResponseAsync({
    SAMLResponse: samlResponse,
  });
  if (!profile) throw new Error('SAML response without an assertion');
  assertMeantForUs(profile, sp.acsUrl);
  return readProfile(settings, profile, now);
}

/**
 * SAML Profiles §4.1.4.3: a bearer SubjectConfirmationData's `Recipient` (inside the signed
 * assertion) must be our ACS URL; SAML Bindings §3.5.5.2: so must the response's `Destination`
 * when present. node-saml checks neither. Thrown as an audience error: meant for another service.
 */
function assertMeantForUs(profile: Profile, acsUrl: string): void {
  const assertion = (profile.getAssertion?.() as { Assertion?: Record<string, unknown> } | undefined)?.Assertion;
  const recipients: string[] = [];
  for (const subject of (assertion?.Subject as unknown[]) ?? []) {
    for (const confirmation of ((subject as Record<string, unknown>).SubjectConfirmation as unknown[]) ?? []) {
      const data = first((confirmation as Record<string, unknown>).SubjectConfirmationData) as
        | { $?: { Recipient?: string } }
        | undefined;
      if (data?.$?.Recipient) recipients.push(data.$.Recipient);
    }
  }
  if (!recipients.includes(acsUrl))
    throw new Error(`SAML audience: Recipient is not our ACS (${recipients.join(', ')})`);
  // Already parsed and verified by node-saml: read here only for the root's attribute.
  const root = new DOMParser().parseFromString(profile.getSamlResponseXml?.() ?? '<none/>', 'text/xml').documentElement;
  const dest = root?.getAttribute('Destination') || undefined;
  if (dest !== undefined && dest !== acsUrl) throw new Error('SAML audience: Destination is not our ACS');
}

function readProfile(settings: SamlSettings, profile: Profile, now: number): VerifiedSamlResponse {
  const assertion = (profile.getAssertion?.() as { Assertion?: Record<string, unknown> } | undefined)?.Assertion;
  const attrs = (assertion?.$ ?? {}) as Record<string, unknown>;
  const assertionId = typeof attrs.ID === 'string' ? attrs.ID : '';
  const requestId = typeof profile.inResponseTo === 'string' ? profile.inResponseTo : '';
  if (!assertionId || !requestId) throw new Error('SAML assertion without an ID or InResponseTo');
  const classRefs: string[] = [];
  for (const statement of (assertion?.AuthnStatement as unknown[]) ?? []) {
    for (const context of ((statement as Record<string, unknown>).AuthnContext as unknown[]) ?? []) {
      const ref = textOf((context as Record<string, unknown>).AuthnContextClassRef);
      if (ref) classRefs.push(ref);
    }
  }
  const conditions = first(assertion?.Conditions) as { $?: { NotOnOrAfter?: string } } | undefined;
  const until = Date.parse(conditions?.$?.NotOnOrAfter ?? '');
  const notOnOrAfter = Math.min(
    Number.isNaN(until) ? Number.POSITIVE_INFINITY : until,
    now + SAML_MAX_ASSERTION_AGE_MS,
  );
  const raw = settings.userAttribute
    ? first((profile.attributes as Record<string, unknown> | undefined)?.[settings.userAttribute])
    : profile.nameID;
  return {
    requestId,
    assertionId,
    notOnOrAfter: notOnOrAfter + SAML_CLOCK_SKEW_MS,
    identity: { username: normalizeUsername(raw), mfa: samlReportsMfa(classRefs) },
  };
}
