import { createHash } from 'node:crypto';
import { errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { Clock } from '../lib/tokens.ts';

/** Who a verified access token speaks for and what it allows (RFC 9068 claims plus ours). */
export interface AccessGrant {
  userId: string;
  /** The login email; `DownloadHandler.ashx` callers send it as `username`. */
  username: string;
  clientId: string;
  firmId: string | undefined;
  /** Apps the user was assigned to when the token was issued (`download` is needed). */
  apps: readonly string[];
  /** Facility codes whose files the user may download. */
  entitlements: ReadonlySet<string>;
  scopes: readonly string[];
  tokenId: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export type TokenCheck =
  | { ok: true; grant: AccessGrant }
  /** The token is not acceptable: answer 401 `invalid_token` with this description. */
  | { ok: false; description: string };

/** The key set could not be fetched or read: a fault on our side, not the caller's token. */
export class KeySetUnavailableError extends Error {
  constructor(cause: unknown) {
    super('The signing keys of the authorization server could not be fetched', { cause });
    this.name = 'KeySetUnavailableError';
  }
}

export interface AccessTokenVerifierOptions {
  issuer: string;
  /** This API's identifier: the tokens' `aud` (RFC 8707 resource, RFC 9068 §4). */
  audience: string;
  /** The authorization server's keys, usually `createRemoteJWKSet(jwks_uri)`. */
  keys: JWTVerifyGetKey;
  clock: Clock;
  /** Verified tokens remembered, least recently used forgotten first. */
  cacheSize?: number;
  /** RFC 7519 §4.1.4: nodes' clocks differ a little (the idp's own tolerance is 5 s). */
  clockToleranceSeconds?: number;
}

const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_TOKEN_LENGTH = 8192;

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
}

/** The grant a verified payload carries, or what is missing from it. */
function grantOf(p: JWTPayload): AccessGrant | string {
  const apps = stringList(p.apps);
  const entitlements = stringList(p.entitlements);
  const clientId = typeof p.client_id === 'string' ? p.client_id : p.cid;
  for (const [name, ok] of [
    ['sub', typeof p.sub === 'string'],
    ['username', typeof p.username === 'string'],
    ['client_id', typeof clientId === 'string'],
    ['scope', typeof p.scope === 'string'],
    ['apps', apps !== undefined],
    ['entitlements', entitlements !== undefined],
    ['jti', typeof p.jti === 'string'],
  ] as const) {
    if (!ok) return `the access token lacks the ${name} claim`;
  }
  return {
    userId: p.sub as string,
    username: p.username as string,
    clientId: clientId as string,
    firmId: typeof p.firm === 'string' ? p.firm : undefined,
    apps: apps ?? [],
    entitlements: new Set(entitlements),
    scopes: (p.scope as string).split(' ').filter(Boolean),
    tokenId: p.jti as string,
    expiresAt: (p.exp ?? 0) * 1000,
  };
}

/** Says what is wrong with a token jose refused, in words a script's author can act on. */
function describeRefusal(err: unknown): string | undefined {
  if (err instanceof errors.JWTExpired) {
    return 'the access token expired; request a new one with your refresh token';
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'aud':
        return 'the access token was not issued for this API (audience)';
      case 'iss':
        return 'the access token was not issued by this environment (issuer)';
      case 'nbf':
        return 'the access token is not valid yet';
      case 'typ':
        return 'not an access token (RFC 9068 typ at+jwt expected)';
      default:
        return `the access token's ${err.claim} claim is invalid`;
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the access token signature does not verify';
  if (err instanceof errors.JWKSNoMatchingKey) return 'the access token is signed with an unknown key';
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return 'the access token is signed with an algorithm this API does not accept';
  }
  if (
    err instanceof errors.JWSInvalid ||
    err instanceof errors.JWTInvalid ||
    err instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return 'the access token is malformed';
  }
  return undefined;
}

/**
 * Verifies the download API's access tokens: ES256 RFC 9068 JWTs from this environment's
 * authorization server, checked against its published keys with no database round trip (DESIGN
 * "OAuth 2.0"). A token that verified once is remembered by its SHA-256 until it expires, so each
 * signature is checked once per token per process; expiry is judged on `clock` every time.
 */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions) {
  const cacheSize = options.cacheSize ?? 10_000;
  const tolerance = options.clockToleranceSeconds ?? 5;
  const cache = new Map<string, AccessGrant>();
  // Parallel first requests with one token share one verification.
  const pending = new Map<string, Promise<TokenCheck>>();
  const counters = { verifications: 0, cacheHits: 0 };

  async function verifySignature(token: string, key: string): Promise<TokenCheck> {
    counters.verifications++;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, options.keys, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ['ES256'],
        typ: 'at+jwt',
        clockTolerance: tolerance,
        currentDate: new Date(options.clock()),
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      }));
    } catch (err) {
      const description = describeRefusal(err);
      if (description === undefined) throw new KeySetUnavailableError(err);
      return { ok: false, description };
    }
    const grant = grantOf(payload);
    if (typeof grant === 'string') return { ok: false, description: grant };
    if (cache.size >= cacheSize) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(key, grant);
    return { ok: true, grant };
  }

  return {
    /**
     * Checks a bearer token. Refusals are results; a key set that cannot be fetched throws
     * {@link KeySetUnavailableError} (a 503, not the caller's fault).
     */
    async verify(token: string): Promise<TokenCheck> {
      if (token.length > MAX_TOKEN_LENGTH || !JWS_COMPACT.test(token)) {
        return { ok: false, description: 'the access token is malformed' };
      }
      const key = createHash('sha256').update(token).digest('base64url');
      const known = cache.get(key);
      if (known) {
        if (options.clock() >= known.expiresAt + tolerance * 1000) {
          cache.delete(key);
          return { ok: false, description: 'the access token expired; request a new one with your refresh token' };
        }
        counters.cacheHits++;
        // Least recently used goes first: a token in use moves to the back.
        cache.delete(key);
        cache.set(key, known);
        return { ok: true, grant: known };
      }
      let check = pending.get(key);
      if (!check) {
        check = verifySignature(token, key).finally(() => pending.delete(key));
        pending.set(key, check);
      }
      return check;
    },
    /** Signature verifications and cache hits since start (benchmarks, metrics). */
    counters: counters as Readonly<typeof counters>,
  };
}
export type AccessTokenVerifier = ReturnType<typeof createAccessTokenVerifier>;
