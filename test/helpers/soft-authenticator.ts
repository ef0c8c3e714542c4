import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';

/**
 * A software WebAuthn authenticator for tests: a P-256 key, `none` attestation and assertions built
 * byte by byte as WebAuthn §6.1 and §6.5 lay them out, so the server's checks meet real structures
 * (and wrong ones: no user verification, an old counter, another origin).
 */

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest();

/** The browser's `RegistrationResponseJSON`, as our pages post it. */
export interface RegistrationJson {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; attestationObject: string; transports: string[] };
  clientExtensionResults: Record<string, never>;
  authenticatorAttachment: 'platform';
}

/** The browser's `AuthenticationResponseJSON`, as our pages post it. */
export interface AssertionJson {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string };
  clientExtensionResults: Record<string, never>;
  authenticatorAttachment: 'platform';
}

export interface CeremonyOptions {
  /** Origin the "browser" puts in client data (default: the test idp's). */
  origin?: string;
  /** User verified (UV flag); default true. */
  uv?: boolean;
  /** The counter to report (default: one more than the last). */
  counter?: number;
  /** `clientData.type` (default `webauthn.create` / `webauthn.get`). */
  type?: string;
}

export function createSoftAuthenticator(defaultOrigin = 'http://localhost:3101') {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' }) as {
    privateKey: KeyObject;
    publicKey: KeyObject;
  };
  const jwk = publicKey.export({ format: 'jwk' });
  const credentialId = sha256(`credential:${jwk.x}`).subarray(0, 16);
  const id = credentialId.toString('base64url');
  let counter = 0;

  const flags = (uv: boolean, attested: boolean) => 0x01 | (uv ? 0x04 : 0) | (attested ? 0x40 : 0);
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const clientData = (type: string, challenge: string, origin: string) =>
    Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }), 'utf8');

  // RFC 9053 §7.1.1: EC2 key, P-256, ES256.
  const coseKey = isoCBOR.encode(
    new Map<number, number | Uint8Array>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, Buffer.from(jwk.x ?? '', 'base64url')],
      [-3, Buffer.from(jwk.y ?? '', 'base64url')],
    ]),
  );

  return {
    id,
    get counter() {
      return counter;
    },
    /** `navigator.credentials.create()` for `options` (the server's creation options). */
    register(options: { challenge: string; rp: { id?: string } }, o: CeremonyOptions = {}): RegistrationJson {
      const rpId = options.rp.id ?? 'localhost';
      const lenBuf = Buffer.alloc(2);
      lenBuf.writeUInt16BE(credentialId.length);
      counter = o.counter ?? 0;
      const authData = Buffer.concat([
        sha256(rpId),
        Buffer.from([flags(o.uv ?? true, true)]),
        u32(counter),
        Buffer.alloc(16), // AAGUID: zeros for a `none` attestation
        lenBuf,
        credentialId,
        Buffer.from(coseKey),
      ]);
      const attestationObject = isoCBOR.encode(
        new Map<string, string | Map<string, string> | Uint8Array>([
          ['fmt', 'none'],
          ['attStmt', new Map<string, string>()],
          ['authData', authData],
        ]),
      );
      return {
        id,
        rawId: id,
        type: 'public-key',
        response: {
          clientDataJSON: clientData(
            o.type ?? 'webauthn.create',
            options.challenge,
            o.origin ?? defaultOrigin,
          ).toString('base64url'),
          attestationObject: Buffer.from(attestationObject).toString('base64url'),
          transports: ['internal'],
        },
        clientExtensionResults: {},
        authenticatorAttachment: 'platform',
      };
    },
    /** `navigator.credentials.get()` for `options` (the server's request options). */
    assert(options: { challenge: string; rpId?: string }, o: CeremonyOptions = {}): AssertionJson {
      counter = o.counter ?? counter + 1;
      const authData = Buffer.concat([
        sha256(options.rpId ?? 'localhost'),
        Buffer.from([flags(o.uv ?? true, false)]),
        u32(counter),
      ]);
      const data = clientData(o.type ?? 'webauthn.get', options.challenge, o.origin ?? defaultOrigin);
      // WebAuthn §6.3.3: the signature covers authenticatorData || SHA-256(clientDataJSON).
      const signature = sign('sha256', Buffer.concat([authData, sha256(data)]), privateKey);
      return {
        id,
        rawId: id,
        type: 'public-key',
        response: {
          clientDataJSON: data.toString('base64url'),
          authenticatorData: authData.toString('base64url'),
          signature: signature.toString('base64url'),
        },
        clientExtensionResults: {},
        authenticatorAttachment: 'platform',
      };
    },
  };
}
export type SoftAuthenticator = ReturnType<typeof createSoftAuthenticator>;

/** Okta's `activate` fields (standard base64, as Okta's examples send them). */
export function oktaActivation(r: RegistrationJson) {
  const b64 = (s: string) => Buffer.from(s, 'base64url').toString('base64');
  return { attestation: b64(r.response.attestationObject), clientData: b64(r.response.clientDataJSON) };
}

/** Okta's `verify` fields (standard base64). */
export function oktaAssertion(a: AssertionJson) {
  const b64 = (s: string) => Buffer.from(s, 'base64url').toString('base64');
  return {
    clientData: b64(a.response.clientDataJSON),
    authenticatorData: b64(a.response.authenticatorData),
    signatureData: b64(a.response.signature),
  };
}
