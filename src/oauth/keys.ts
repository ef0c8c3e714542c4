import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Store } from '../db/store.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Clock } from '../lib/tokens.ts';
import { DEFAULT_SIGNED_TOKEN_LIFETIMES, retiringKeyWindowMs, type SignedTokenLifetimes } from './lifetimes.ts';
import type { SigningKeyRow } from './repository.ts';

/**
 * The authorization server's JWS signing keys (ID tokens, JWT access tokens).
 *
 * Each key is an ES256 (P-256) or RS256 (RSA 2048) key pair generated at first start or by
 * `traqs keys rotate`. Its
 * `kid` is the RFC 7638 JWK thumbprint. The private JWK is stored sealed with the environment's
 * SecretBox (AES-256-GCM, the kid as associated data, so a sealed key copied to another row does
 * not open); the public JWK is stored in clear for the JWKS endpoint.
 *
 * Lifecycle: one key per algorithm is `active` (signs). Rotation adds a new active key and makes the previous one
 * `retiring` until `retire_after` = now + the longest signed-token lifetime + a margin
 * (`retiringKeyWindowMs`): it stays in the JWKS so tokens it signed still verify, then drops out.
 */

/**
 * The algorithms the server signs with, one active key each. ES256 (RFC 7518 §3.4, ECDSA P-256
 * SHA-256) signs the download API's access tokens: small and fast to sign. RS256 (RFC 7518 §3.3)
 * signs ID tokens of clients that do not ask otherwise (OpenID Connect Discovery §3: every client
 * supports it) and tokens for Okta's `api://default` audience (`@okta/jwt-verifier` accepts RS256
 * only).
 */
export const SIGNING_ALGS = ['ES256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];
/** The algorithm of the download API's access tokens (issue #4: ES256 or EdDSA). */
export const SIGNING_ALG: SigningAlg = 'ES256';

/** A JSON Web Key Set (RFC 7517 §5). */
export interface Jwks {
  keys: JWK[];
}

export interface EnsuredSigningKey {
  alg: SigningAlg;
  kid: string;
  /** True when this call created the key (first start); false when one was already active. */
  created: boolean;
}

export interface RotatedSigningKey {
  alg: SigningAlg;
  kid: string;
  /** The key that stopped signing, if there was one. */
  retiringKid: string | undefined;
  /** Epoch ms after which the retiring key leaves the JWKS. */
  retireAfter: number;
}

/**
 * Makes sure one signing key per algorithm is active, creating them on first start. Safe when
 * several nodes start at once: each may generate a key, but the database keeps exactly one per
 * algorithm (`signing_keys_one_active_per_alg`) and every caller gets that one.
 */
export async function ensureSigningKeys(
  store: Store,
  secretBox: SecretBox,
  clock: Clock,
): Promise<EnsuredSigningKey[]> {
  const out: EnsuredSigningKey[] = [];
  for (const alg of SIGNING_ALGS) out.push(await ensureSigningKey(store, secretBox, clock, alg));
  return out;
}

/** Makes sure the key of one algorithm is active (see `ensureSigningKeys`). */
export async function ensureSigningKey(
  store: Store,
  secretBox: SecretBox,
  clock: Clock,
  alg: SigningAlg = SIGNING_ALG,
): Promise<EnsuredSigningKey> {
  const existing = await store.repos.oauth.findActiveSigningKey(alg);
  if (existing) return { alg, kid: existing.kid, created: false };
  const row = await createSigningKeyRow(secretBox, clock(), alg);
  const inserted = await store.repos.oauth.insertSigningKeyIfNoneActive(row);
  if (inserted) return { alg, kid: row.kid, created: true };
  const winner = await store.repos.oauth.findActiveSigningKey(alg);
  if (!winner) throw new Error(`No active ${alg} signing key after inserting one`);
  return { alg, kid: winner.kid, created: false };
}

/**
 * Adds a new active key for each algorithm; each previous active key keeps verifying until
 * `retireAfter`. Lifetimes are those of the tokens the server signs (refresh tokens are opaque
 * and need no key).
 */
export async function rotateSigningKeys(
  store: Store,
  secretBox: SecretBox,
  clock: Clock,
  lifetimes: Readonly<SignedTokenLifetimes> = DEFAULT_SIGNED_TOKEN_LIFETIMES,
): Promise<RotatedSigningKey[]> {
  const now = clock();
  const retireAfter = now + retiringKeyWindowMs(lifetimes);
  const rows = await Promise.all(SIGNING_ALGS.map((alg) => createSigningKeyRow(secretBox, now, alg)));
  return store.transaction(async (repos) => {
    const out: RotatedSigningKey[] = [];
    for (const row of rows) {
      const retiringKid = await repos.oauth.replaceActiveSigningKey(row, retireAfter);
      out.push({ alg: row.alg as SigningAlg, kid: row.kid, retiringKid, retireAfter });
    }
    return out;
  });
}

/** Rotates the key of one algorithm (see `rotateSigningKeys`). */
export async function rotateSigningKey(
  store: Store,
  secretBox: SecretBox,
  clock: Clock,
  lifetimes: Readonly<SignedTokenLifetimes> = DEFAULT_SIGNED_TOKEN_LIFETIMES,
  alg: SigningAlg = SIGNING_ALG,
): Promise<RotatedSigningKey> {
  const now = clock();
  const row = await createSigningKeyRow(secretBox, now, alg);
  const retireAfter = now + retiringKeyWindowMs(lifetimes);
  const retiringKid = await store.transaction((repos) => repos.oauth.replaceActiveSigningKey(row, retireAfter));
  return { alg, kid: row.kid, retiringKid, retireAfter };
}

/**
 * The private key set for oidc-provider's `jwks` option: the active keys first (oidc-provider signs
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

async function createSigningKeyRow(secretBox: SecretBox, now: number, alg: SigningAlg): Promise<SigningKeyRow> {
  // RS256: 2048-bit modulus (NIST SP 800-57 Part 1: 112-bit security until 2030), jose's default.
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  // RFC 7638: the thumbprint over the required public members identifies the key.
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const meta = { kid, alg, use: 'sig' };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), ...meta };
  return {
    kid,
    alg,
    private_jwk_sealed: secretBox.seal(Buffer.from(JSON.stringify(privateJwk), 'utf8'), aadFor(kid)),
    public_jwk: JSON.stringify({ ...publicJwk, ...meta }),
    status: 'active',
    created_at: now,
    retire_after: null,
  };
}
