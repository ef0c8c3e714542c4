import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Store } from '../db/store.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Clock } from '../lib/tokens.ts';
import { DEFAULT_SIGNED_TOKEN_LIFETIMES, retiringKeyWindowMs, type SignedTokenLifetimes } from './lifetimes.ts';
import type { SigningKeyRow } from './repository.ts';

/**
 * The authorization server's JWS signing keys (ID tokens, JWT access tokens).
 *
 * Each key is an ES256 (P-256) key pair generated at first start or by `traqs keys rotate`. Its
 * `kid` is the RFC 7638 JWK thumbprint. The private JWK is stored sealed with the environment's
 * SecretBox (AES-256-GCM, the kid as associated data, so a sealed key copied to another row does
 * not open); the public JWK is stored in clear for the JWKS endpoint.
 *
 * Lifecycle: one key is `active` (signs). Rotation adds a new active key and makes the previous one
 * `retiring` until `retire_after` = now + the longest signed-token lifetime + a margin
 * (`retiringKeyWindowMs`): it stays in the JWKS so tokens it signed still verify, then drops out.
 */

/** The signing algorithm of new keys (RFC 7518 §3.4: ECDSA P-256 SHA-256). */
export const SIGNING_ALG = 'ES256';

/** A JSON Web Key Set (RFC 7517 §5). */
export interface Jwks {
  keys: JWK[];
}

export interface EnsuredSigningKey {
  kid: string;
  /** True when this call created the key (first start); false when one was already active. */
  created: boolean;
}

export interface RotatedSigningKey {
  kid: string;
  /** The key that stopped signing, if there was one. */
  retiringKid: string | undefined;
  /** Epoch ms after which the retiring key leaves the JWKS. */
  retireAfter: number;
}

/**
 * Makes sure one signing key is active, creating it on first start. Safe when several nodes start
 * at once: each may generate a key, but the database keeps exactly one (`signing_keys_one_active`)
 * and every caller gets that one.
 */
export async function ensureSigningKey(store: Store, secretBox: SecretBox, clock: Clock): Promise<EnsuredSigningKey> {
  const existing = await store.repos.oauth.findActiveSigningKey();
  if (existing) return { kid: existing.kid, created: false };
  const row = await createSigningKeyRow(secretBox, clock());
  const inserted = await store.repos.oauth.insertSigningKeyIfNoneActive(row);
  if (inserted) return { kid: row.kid, created: true };
  const winner = await store.repos.oauth.findActiveSigningKey();
  if (!winner) throw new Error('No active signing key after inserting one');
  return { kid: winner.kid, created: false };
}

/**
 * Adds a new active key; the previous active key keeps verifying until `retireAfter`. Lifetimes
 * are those of the tokens the server signs (refresh tokens are opaque and need no key).
 */
export async function rotateSigningKey(
  store: Store,
  secretBox: SecretBox,
  clock: Clock,
  lifetimes: Readonly<SignedTokenLifetimes> = DEFAULT_SIGNED_TOKEN_LIFETIMES,
): Promise<RotatedSigningKey> {
  const now = clock();
  const row = await createSigningKeyRow(secretBox, now);
  const retireAfter = now + retiringKeyWindowMs(lifetimes);
  const retiringKid = await store.transaction((repos) => repos.oauth.replaceActiveSigningKey(row, retireAfter));
  return { kid: row.kid, retiringKid, retireAfter };
}

/**
 * The private key set for oidc-provider's `jwks` option: the active key first (oidc-provider signs
 * with the first key of a matching `alg`), then retiring keys still inside their window, which it
 * publishes for verification. Keys past `retire_after` are left out.
 */
export async function loadJwks(store: Store, secretBox: SecretBox, clock: Clock): Promise<Jwks> {
  const rows = await usableKeys(store, clock);
  return {
    keys: rows.map((row) => {
      const jwk = JSON.parse(secretBox.open(row.private_jwk_sealed, aadFor(row.kid)).toString('utf8')) as JWK;
      if (jwk.kid !== row.kid) throw new Error(`Signing key ${row.kid} does not match its stored JWK`);
      return jwk;
    }),
  };
}

/** The public key set (RFC 7517 §5), in the same order as `loadJwks`; no SecretBox needed. */
export async function loadPublicJwks(store: Store, clock: Clock): Promise<Jwks> {
  const rows = await usableKeys(store, clock);
  return { keys: rows.map((row) => JSON.parse(row.public_jwk) as JWK) };
}

async function usableKeys(store: Store, clock: Clock): Promise<SigningKeyRow[]> {
  const rows = await store.repos.oauth.listUsableSigningKeys(clock());
  // Active first whatever the clocks of the nodes that created them said; then newest first.
  return rows.sort((a, b) => rank(a) - rank(b) || b.created_at - a.created_at);
}

const rank = (row: SigningKeyRow) => (row.status === 'active' ? 0 : 1);

const aadFor = (kid: string) => `signing-key:${kid}`;

async function createSigningKeyRow(secretBox: SecretBox, now: number): Promise<SigningKeyRow> {
  const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  // RFC 7638: the thumbprint over the required public members identifies the key.
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const meta = { kid, alg: SIGNING_ALG, use: 'sig' };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), ...meta };
  return {
    kid,
    alg: SIGNING_ALG,
    private_jwk_sealed: secretBox.seal(Buffer.from(JSON.stringify(privateJwk), 'utf8'), aadFor(kid)),
    public_jwk: JSON.stringify({ ...publicJwk, ...meta }),
    status: 'active',
    created_at: now,
    retire_after: null,
  };
}
