import { z } from 'zod';
import type { AssertionInput, RegistrationInput } from './ceremony.ts';

/**
 * Reading WebAuthn responses from the two places they arrive: Okta's Authentication API (base64
 * fields `clientData`, `attestation`, `authenticatorData`, `signatureData`) and our pages (the
 * browser's `RegistrationResponseJSON` / `AuthenticationResponseJSON`, base64url).
 */

/** Okta's examples send standard base64 (`+/=`); browsers send base64url. Both become base64url. */
export function toBase64Url(value: string): string | undefined {
  const trimmed = value.trim().replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/_-]*$/.test(trimmed) || trimmed.length === 0) return undefined;
  return trimmed.replace(/\+/g, '-').replace(/\//g, '_');
}

// Bounds: a client data JSON of a few hundred bytes, an attestation object of a few KiB with an
// x5c chain, a credential id of at most 1023 bytes (WebAuthn §5.8.1).
const b64 = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .transform((v, ctx) => {
      const out = toBase64Url(v);
      if (out === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be base64 or base64url' });
        return z.NEVER;
      }
      return out;
    });
const credentialId = b64(1400);
const transports = z.array(z.string().max(20)).max(8).optional();

/** Okta `…/lifecycle/activate` for `webauthn`: `{stateToken, attestation, clientData}`. */
export const oktaActivationFields = {
  attestation: b64(16_000),
  clientData: b64(4_000),
};

/** Okta `…/verify` for `webauthn`: `{stateToken, clientData, authenticatorData, signatureData}`. */
export const oktaAssertionFields = {
  clientData: b64(4_000),
  authenticatorData: b64(4_000),
  signatureData: b64(2_000),
};

export function registrationFromOkta(body: { attestation: string; clientData: string }): RegistrationInput {
  return { clientDataJSON: body.clientData, attestationObject: body.attestation };
}

export function assertionFromOkta(body: {
  clientData: string;
  authenticatorData: string;
  signatureData: string;
}): AssertionInput {
  return { clientDataJSON: body.clientData, authenticatorData: body.authenticatorData, signature: body.signatureData };
}

const registrationJson = z.object({
  id: credentialId,
  rawId: credentialId,
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: b64(4_000),
    attestationObject: b64(16_000),
    transports,
  }),
});

const authenticationJson = z.object({
  id: credentialId,
  rawId: credentialId,
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: b64(4_000),
    authenticatorData: b64(4_000),
    signature: b64(2_000),
    userHandle: b64(200).optional(),
  }),
});

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The browser's registration JSON posted by our pages, or undefined if it is not one. */
export function parseRegistrationJson(text: string): RegistrationInput | undefined {
  const parsed = registrationJson.safeParse(parseJson(text));
  if (!parsed.success || parsed.data.id !== parsed.data.rawId) return undefined;
  const r = parsed.data.response;
  return {
    id: parsed.data.id,
    clientDataJSON: r.clientDataJSON,
    attestationObject: r.attestationObject,
    transports: r.transports,
  };
}

/** The browser's assertion JSON posted by our pages, or undefined if it is not one. */
export function parseAssertionJson(text: string): AssertionInput | undefined {
  const parsed = authenticationJson.safeParse(parseJson(text));
  if (!parsed.success || parsed.data.id !== parsed.data.rawId) return undefined;
  const r = parsed.data.response;
  return {
    id: parsed.data.id,
    clientDataJSON: r.clientDataJSON,
    authenticatorData: r.authenticatorData,
    signature: r.signature,
    userHandle: r.userHandle,
  };
}

/** Longest form field a page posts the browser's JSON in. */
export const RESPONSE_FIELD_MAX = 32_000;
