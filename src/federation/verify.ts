import type { UserRow } from '../accounts/repository.ts';

/**
 * The pure core of a federated sign-in: what a verified assertion or ID token means for our
 * accounts. No I/O, no clock: the protocol layers (saml.ts, oidc.ts) verify signatures, audience,
 * issuer and time; this decides who, if anyone, signs in, and with which `amr` (RFC 8176).
 */

/** Every way a federated sign-in can fail that a user may meet; each has its own page. */
export type FederationFailure =
  | 'idp_unreachable'
  | 'idp_error'
  | 'invalid_response'
  | 'signature_invalid'
  | 'audience_mismatch'
  | 'expired'
  | 'replayed'
  | 'request_mismatch'
  | 'no_identity'
  | 'user_not_provisioned'
  | 'wrong_firm'
  | 'not_federated'
  | 'suspended'
  | 'no_idp';

/** What a verified IdP answer says about the user. */
export interface FederatedIdentity {
  /** The value that names our user (the NameID, an attribute or a claim), if any. */
  username: string | undefined;
  /** Whether the IdP reports a multi-factor authentication (see `samlReportsMfa`, `oidcReportsMfa`). */
  mfa: boolean;
}

export type FederationDecision = { ok: true; user: UserRow; amr: string[] } | { ok: false; reason: FederationFailure };

/** Usernames are email addresses (DESIGN "Accounts"), compared as stored: trimmed, lower case. */
export function normalizeUsername(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim().toLowerCase();
  return v.length > 0 && v.length <= 254 && /^[^\s@]+@[^\s@]+$/.test(v) ? v : undefined;
}

/**
 * Who signs in. The user must be provisioned beforehand (no just-in-time creation), belong to the
 * firm that owns this IdP (firm B's IdP cannot vouch for firm A's user), authenticate through
 * federation (a local user is never signed in by an IdP: never both, FAQ) and be ACTIVE.
 */
export function decideFederatedSignIn(opts: {
  idpFirmId: string;
  identity: FederatedIdentity;
  user: UserRow | undefined;
}): FederationDecision {
  const { identity, user } = opts;
  if (!identity.username) return { ok: false, reason: 'no_identity' };
  if (!user || user.status === 'DEPROVISIONED' || user.status === 'STAGED') {
    return { ok: false, reason: 'user_not_provisioned' };
  }
  if (user.firm_id !== opts.idpFirmId) return { ok: false, reason: 'wrong_firm' };
  if (user.auth_mode !== 'federated') return { ok: false, reason: 'not_federated' };
  if (user.status !== 'ACTIVE') return { ok: false, reason: 'suspended' };
  // RFC 8176: `fed` (federated assertion), plus `mfa` when the firm's IdP says it used several factors.
  return { ok: true, user, amr: identity.mfa ? ['fed', 'mfa'] : ['fed'] };
}

/**
 * SAML authentication context classes that mean more than one factor (SAML Authn Context §3.4;
 * REFEDS MFA profile; Microsoft Entra's and Okta's multi-factor classes).
 */
const SAML_MFA_CLASSES = new Set([
  'http://schemas.microsoft.com/claims/multipleauthn',
  'https://refeds.org/profile/mfa',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI',
  'urn:okta:saml:2.0:ac:classes:mfa',
]);

export function samlReportsMfa(authnContextClassRefs: readonly string[]): boolean {
  return authnContextClassRefs.some((c) => SAML_MFA_CLASSES.has(c.trim()));
}

/** RFC 8176 methods that are, or imply, a second factor. */
const OIDC_MFA_METHODS = new Set(['mfa', 'otp', 'hwk', 'sc', 'sms', 'tel', 'swk', 'fpt', 'face', 'iris', 'retina']);

export function oidcReportsMfa(amr: unknown): boolean {
  return Array.isArray(amr) && amr.some((m) => typeof m === 'string' && OIDC_MFA_METHODS.has(m));
}

/**
 * node-saml reports what failed only in its error message; these are its messages (lib/saml.js,
 * lib/xml.js) mapped to what the user is told.
 */
export function classifySamlError(message: string): FederationFailure {
  if (/signature/i.test(message)) return 'signature_invalid';
  if (/audience/i.test(message)) return 'audience_mismatch';
  // node-saml drops SubjectConfirmations outside their NotBefore/NotOnOrAfter window first.
  if (/expired|not yet valid|too old|subject confirmation/i.test(message)) return 'expired';
  if (/InResponseTo/i.test(message)) return 'request_mismatch';
  if (/status/i.test(message)) return 'idp_error';
  return 'invalid_response';
}
