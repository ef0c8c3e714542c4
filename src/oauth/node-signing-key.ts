import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject, sign } from 'node:crypto';
import type { JWK } from 'jose';
import { ExternalSigningKey } from 'oidc-provider';
import { SIGNING_ALGS, type SigningAlg } from './keys.ts';

/**
 * A signing key that oidc-provider uses through its `ExternalSigningKey` interface
 * (`features.externalSigningSupport`), signing with node:crypto's synchronous `sign` instead of
 * jose's WebCrypto path.
 *
 * Why: the token endpoint signs one or two JWTs per refresh grant, and WebCrypto's ECDSA runs as an
 * async crypto job whose promise plumbing cost about a sixth of the main thread's time per grant
 * (CPU profile of `npm run bench -- refresh`); OpenSSL's P-256 sign called directly costs a few
 * tens of microseconds. The signature is the same JWS: ES256 as the raw R‖S pair (RFC 7518 §3.4,
 * `ieee-p1363`), RS256 as RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
 *
 * The private key never leaves the KeyObject; the public half is what the JWKS endpoint shows.
 */
export class NodeSigningKey extends ExternalSigningKey {
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #dsaEncoding: 'ieee-p1363' | undefined;

  constructor(privateJwk: JWK) {
    super();
    const { kid, alg } = privateJwk;
    if (!kid || !SIGNING_ALGS.includes(alg as SigningAlg)) {
      throw new Error(`A signing key needs a kid and one of ${SIGNING_ALGS.join(', ')} as alg`);
    }
    this.#privateKey = createPrivateKey({ key: privateJwk as JsonWebKey, format: 'jwk' });
    this.#publicKey = createPublicKey(this.#privateKey);
    this.kid = kid;
    this.alg = alg as SigningAlg;
    this.#dsaEncoding = alg === 'ES256' ? 'ieee-p1363' : undefined;
  }

  override keyObject(): KeyObject {
    return this.#publicKey;
  }

  override async sign(data: Buffer): Promise<Buffer> {
    return this.#dsaEncoding
      ? sign('sha256', data, { key: this.#privateKey, dsaEncoding: this.#dsaEncoding })
      : sign('sha256', data, this.#privateKey);
  }
}
