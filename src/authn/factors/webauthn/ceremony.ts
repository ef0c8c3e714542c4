import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  VerifiedAuthenticationResponse,
} from '@simplewebauthn/server';
import type { RandomBytes } from '../../../lib/tokens.ts';
import type { RelyingParty } from './relying-party.ts';

// Loaded on first use: the library and its ASN.1 and metadata code take seconds to load on a busy
// machine, which every start of the idp would otherwise pay before answering anything.
let server: Promise<typeof import('@simplewebauthn/server')> | undefined;
let helpers: Promise<typeof import('@simplewebauthn/server/helpers')> | undefined;
const loadServer = () => {
  server ??= import('@simplewebauthn/server');
  return server;
};
const loadHelpers = () => {
  helpers ??= import('@simplewebauthn/server/helpers');
  return helpers;
};

/**
 * The WebAuthn ceremonies of FastPass over `@simplewebauthn/server`, without I/O: the caller finds
 * and consumes the challenge, loads the credential and saves what comes back (CONVENTIONS 2).
 */

/**
 * How long a challenge lives and the browser may wait for the authenticator. WebAuthn §15.1
 * recommends 5 to 10 minutes when user verification is required (Windows Hello asks for a PIN or a
 * fingerprint); the shorter end keeps an unanswered challenge short-lived.
 */
export const WEBAUTHN_TIMEOUT_MS = 5 * 60_000;

/** ES256 (most platform authenticators), EdDSA, RS256 (Windows Hello with older TPMs). */
export const SUPPORTED_ALGORITHMS = [-7, -8, -257];

/** A credential as the browser lists it in `allowCredentials` / `excludeCredentials`. */
export interface CredentialDescriptor {
  id: string;
  transports: string[];
}

/** A new challenge: 32 random bytes, base64url (WebAuthn §13.4.3: at least 16). */
export function createChallenge(random: RandomBytes): string {
  return random(32).toString('base64url');
}

/**
 * Options for `navigator.credentials.create()`: a platform authenticator (FastPass: Windows Hello,
 * Touch ID) with user verification required; no attestation asked (the authenticator's make is not
 * policy here, and asking shows the user an extra privacy prompt).
 */
export async function registrationOptions(input: {
  rp: RelyingParty;
  user: { handle: string; login: string; displayName: string };
  challenge: string;
  exclude: CredentialDescriptor[];
}): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const { generateRegistrationOptions } = await loadServer();
  return generateRegistrationOptions({
    rpName: input.rp.name,
    rpID: input.rp.id,
    userName: input.user.login,
    userDisplayName: input.user.displayName,
    // WebAuthn §14.6.1: the user handle must not be personal data; the random user id is not.
    userID: new TextEncoder().encode(input.user.handle),
    // As bytes: a string would be taken as text and encoded once more.
    challenge: Buffer.from(input.challenge, 'base64url'),
    timeout: WEBAUTHN_TIMEOUT_MS,
    attestationType: 'none',
    excludeCredentials: input.exclude,
    authenticatorSelection: {
      authenticatorAttachment: 'platform',
      residentKey: 'preferred',
      userVerification: 'required',
    },
    supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
    preferredAuthenticatorType: 'localDevice',
  });
}

/** Options for `navigator.credentials.get()` for the factor's credential, user verification required. */
export async function authenticationOptions(input: {
  rp: RelyingParty;
  challenge: string;
  allow: CredentialDescriptor[];
}): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const { generateAuthenticationOptions } = await loadServer();
  return generateAuthenticationOptions({
    rpID: input.rp.id,
    challenge: Buffer.from(input.challenge, 'base64url'),
    timeout: WEBAUTHN_TIMEOUT_MS,
    allowCredentials: input.allow,
    userVerification: 'required',
  });
}

/** What a registration sends back, base64url: from the browser's JSON or Okta's `activate` body. */
export interface RegistrationInput {
  /** The credential id the browser reported, if it did (Okta's API does not send it). */
  id?: string | undefined;
  clientDataJSON: string;
  attestationObject: string;
  transports?: string[] | undefined;
}

/** What an assertion sends back, base64url: from the browser's JSON or Okta's `verify` body. */
export interface AssertionInput {
  /** The credential id the browser reported, if it did (Okta's API does not send it). */
  id?: string | undefined;
  clientDataJSON: string;
  authenticatorData: string;
  signature: string;
  userHandle?: string | undefined;
}

/** The challenge a response claims to answer, or undefined if its client data cannot be read. */
export function challengeOf(clientDataJSON: string): string | undefined {
  try {
    const data: unknown = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'));
    const challenge =
      typeof data === 'object' && data !== null ? (data as Record<string, unknown>).challenge : undefined;
    return typeof challenge === 'string' && challenge.length > 0 && challenge.length <= 100 ? challenge : undefined;
  } catch {
    return undefined;
  }
}

/** A verified new credential, ready to be stored. */
export interface NewCredential {
  id: string;
  /** base64url of the COSE key. */
  publicKey: string;
  signCount: number;
  transports: string[];
  aaguid: string;
  deviceType: 'singleDevice' | 'multiDevice';
  backedUp: boolean;
}

export type RegistrationResult = { ok: true; credential: NewCredential } | { ok: false; reason: string };

/** The credential id inside an attestation object's authenticator data, base64url. */
async function credentialIdOf(attestationObject: string): Promise<string | undefined> {
  const { decodeAttestationObject, parseAuthenticatorData } = await loadHelpers();
  try {
    const decoded = decodeAttestationObject(Buffer.from(attestationObject, 'base64url'));
    const id = parseAuthenticatorData(decoded.get('authData')).credentialID;
    return id ? Buffer.from(id).toString('base64url') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies a registration (WebAuthn §7.1) against `challenge`, the relying party's origin and id,
 * with user presence and user verification required.
 */
export async function verifyRegistration(input: {
  rp: RelyingParty;
  challenge: string;
  response: RegistrationInput;
}): Promise<RegistrationResult> {
  const { response } = input;
  const inside = await credentialIdOf(response.attestationObject);
  if (!inside) return { ok: false, reason: 'unreadable attestation object' };
  // The browser's JSON names the credential; it must be the one the authenticator created.
  if (response.id !== undefined && response.id !== inside) return { ok: false, reason: 'credential id mismatch' };
  const { verifyRegistrationResponse } = await loadServer();
  try {
    const result = await verifyRegistrationResponse({
      response: {
        id: inside,
        rawId: inside,
        type: 'public-key',
        clientExtensionResults: {},
        response: {
          clientDataJSON: response.clientDataJSON,
          attestationObject: response.attestationObject,
          ...(response.transports ? { transports: response.transports } : {}),
        },
      },
      expectedChallenge: input.challenge,
      expectedOrigin: input.rp.origin,
      expectedRPID: input.rp.id,
      requireUserPresence: true,
      requireUserVerification: true,
      supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
    });
    if (!result.verified) return { ok: false, reason: 'attestation not verified' };
    const info = result.registrationInfo;
    return {
      ok: true,
      credential: {
        id: info.credential.id,
        publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
        signCount: info.credential.counter,
        transports: (response.transports ?? []).filter((t) => /^[a-z-]{1,20}$/.test(t)).slice(0, 8),
        aaguid: info.aaguid,
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
      },
    };
  } catch (err) {
    return { ok: false, reason: (err as Error).message.slice(0, 200) };
  }
}

/** A stored credential, as an assertion is checked against it. */
export interface StoredCredential {
  id: string;
  /** base64url of the COSE key. */
  publicKey: string;
  signCount: number;
  transports: string[];
}

export type AssertionResult =
  | { ok: true; signCount: number; backedUp: boolean }
  | { ok: false; reason: 'SIGN_COUNT_REGRESSED'; stored: number; reported: number }
  | { ok: false; reason: 'INVALID'; detail: string };

/**
 * WebAuthn §7.2 step 21: when either counter is non-zero, the new one must be greater; otherwise
 * the credential may have been cloned. Both zero: an authenticator without a counter (synced
 * passkeys), which is allowed.
 */
export function checkSignCount(stored: number, reported: number): 'ok' | 'regressed' {
  if (stored === 0 && reported === 0) return 'ok';
  return reported > stored ? 'ok' : 'regressed';
}

/**
 * Verifies an assertion (WebAuthn §7.2) for `credential` against `challenge`, the origin and the
 * relying-party id, with user verification required. The counter is checked only after the
 * signature: a forged response must not pass for a cloned authenticator (and trigger the alert).
 */
export async function verifyAssertion(input: {
  rp: RelyingParty;
  challenge: string;
  credential: StoredCredential;
  response: AssertionInput;
}): Promise<AssertionResult> {
  const { response, credential } = input;
  if (response.id !== undefined && response.id !== credential.id) {
    return { ok: false, reason: 'INVALID', detail: 'credential id mismatch' };
  }
  const { verifyAuthenticationResponse } = await loadServer();
  let verified: VerifiedAuthenticationResponse;
  try {
    verified = await verifyAuthenticationResponse({
      response: {
        id: credential.id,
        rawId: credential.id,
        type: 'public-key',
        clientExtensionResults: {},
        response: {
          clientDataJSON: response.clientDataJSON,
          authenticatorData: response.authenticatorData,
          signature: response.signature,
          ...(response.userHandle ? { userHandle: response.userHandle } : {}),
        },
      },
      expectedChallenge: input.challenge,
      expectedOrigin: input.rp.origin,
      expectedRPID: input.rp.id,
      // Counter 0 here: the library would compare it before checking the signature.
      credential: {
        id: credential.id,
        publicKey: Buffer.from(credential.publicKey, 'base64url'),
        counter: 0,
        transports: credential.transports,
      },
      requireUserVerification: true,
    });
  } catch (err) {
    return { ok: false, reason: 'INVALID', detail: (err as Error).message.slice(0, 200) };
  }
  if (!verified.verified) return { ok: false, reason: 'INVALID', detail: 'signature not verified' };
  const reported = verified.authenticationInfo.newCounter;
  if (checkSignCount(credential.signCount, reported) === 'regressed') {
    return { ok: false, reason: 'SIGN_COUNT_REGRESSED', stored: credential.signCount, reported };
  }
  return { ok: true, signCount: reported, backedUp: verified.authenticationInfo.credentialBackedUp };
}
