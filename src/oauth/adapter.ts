import { createHmac, randomBytes } from 'node:crypto';
import type { Repositories, Store } from '../db/store.ts';
import { type Clock, constantTimeEqual, hashBearerSecret } from '../lib/tokens.ts';
import type { OidcModelRow } from './repository.ts';

/**
 * The storage adapter of oidc-provider (its `adapter` configuration option) over our database.
 *
 * oidc-provider calls `factory(modelName)` once per model and then the methods below; the shape is
 * that of its `lib/adapters/memory_adapter.js`. Every model lives in the `oidc_models` table.
 *
 * What is stored, per row (`src/db/migrations/0002-oauth.ts`):
 * - `id_hash`: hex SHA-256 of the model id. For RefreshToken, AuthorizationCode, opaque
 *   AccessToken, DeviceCode, Session (the session cookie), Interaction… the id is the bearer secret
 *   itself (DESIGN.md "Secrets at rest": every bearer secret only as a SHA-256 hash). oidc-provider's
 *   ids carry 256 random bits (its nanoid, `formats.bitsOfOpaqueRandomness`), so an unsalted hash is
 *   safe, as for our other bearer secrets (`hashBearerSecret`).
 * - `payload`: the JSON payload oidc-provider hands us, with every occurrence of the model's own id
 *   replaced by a placeholder. That covers `jti` (which oidc-provider sets to the id) and any other
 *   field repeating it (an Interaction's `returnTo` URL ends with its id). `find(id)` puts the id
 *   back, since the caller passed it. Also removed: `consumed` (the `consumed_at` column is the
 *   truth) and an Interaction's `session.cookie` (the raw session id, which oidc-provider writes but
 *   never reads: use `session.uid` instead).
 * - `grant_id` (grant-bound token models only), `uid` (Session), `user_code` (DeviceCode) and
 *   `account_id`: lookup keys, stored as is. A grant id or a session uid grants nothing by itself;
 *   a device user code is short-lived and too short for a hash to protect it, and the device flow
 *   is not enabled.
 * - `expires_at` = now + `expiresIn` (+ clock tolerance), `consumed_at`.
 *
 * So a refresh token's value appears nowhere in the database: not as a key, not in a payload.
 *
 * Known limits, for whoever enables more of oidc-provider: with PAR or the device flow, an
 * Interaction's payload holds the raw `parJti` / `deviceCode` of the request it belongs to.
 */

/** One model's payload as oidc-provider stores it (its `AdapterPayload`). */
export type OidcPayload = Record<string, unknown>;

/** The methods oidc-provider calls on an adapter (its `Adapter` interface). */
export interface OidcAdapter {
  upsert(id: string, payload: OidcPayload, expiresIn?: number): Promise<void>;
  find(id: string): Promise<OidcPayload | undefined>;
  findByUserCode(userCode: string): Promise<OidcPayload | undefined>;
  findByUid(uid: string): Promise<OidcPayload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

/** What oidc-provider's `adapter` option accepts: a (non-async) factory called with the model name. */
export type OidcAdapterFactory = (model: string) => OidcAdapter;

export interface OidcAdapterOptions {
  /** Seconds added to every expiry, as oidc-provider's `clockTolerance` (default 0). */
  clockToleranceSeconds?: number;
  /**
   * Runs in the transaction that saves a RefreshToken, so what it writes (the token's description,
   * its email, its audit event) commits exactly when the token does.
   */
  onRefreshTokenCreated?: (
    repos: Repositories,
    token: { idHash: string; payload: OidcPayload; expiresAt: number | null },
  ) => Promise<void>;
  /**
   * Finds a RefreshToken row in place of the plain lookup, so the caller can read what the grant
   * request needs next in the same statement (`src/oauth/provider.ts`).
   */
  findRefreshToken?: (idHash: string, now: number) => Promise<OidcModelRow | undefined>;
  /**
   * A row this request has already read for the model with this raw id (a refresh token's grant):
   * the row, `null` when it was found missing, `undefined` when it was not read.
   */
  readAhead?: (model: string, id: string) => OidcModelRow | null | undefined;
}

/**
 * Thrown by `consume` when the model was consumed by a parallel request (or is gone). It has the
 * shape oidc-provider's error handler renders (`statusCode`, `expose`, `message` as the RFC 6749
 * `error`), so the losing token request gets 400 `invalid_grant`, not a 500. RFC 6749 §4.1.2: an
 * authorization code is used once.
 */
export class OidcModelConsumedError extends Error {
  readonly code = 'OIDC_MODEL_ALREADY_CONSUMED';
  readonly error = 'invalid_grant';
  readonly error_description = 'grant request is invalid';
  readonly statusCode = 400;
  readonly status = 400;
  readonly expose = true;

  constructor(readonly model: string) {
    super('invalid_grant');
    this.name = 'OidcModelConsumedError';
  }
}

/** Models whose tokens belong to a grant, as in oidc-provider's memory adapter. */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * Stands for the model's id inside a stored payload. ECMA-262 JSON.stringify escapes every code
 * unit below U+0020, so its output never holds a raw U+0001, and ids holding one are refused:
 * replacing the id by this mark and back is an exact inverse.
 */
const ID_MARK = '\u0001';

/**
 * Prefix of a row handle: the id given to a model found by `uid` or user code, whose real id we
 * cannot know (only its hash is stored). oidc-provider ids are nanoid (`[A-Za-z0-9_-]`), so no real
 * id starts with `~`.
 */
const HANDLE_PREFIX = '~h.';

/**
 * Creates oidc-provider's `adapter` option over `store`; expiry is judged by `clock`.
 *
 * A model found by `findByUid` / `findByUserCode` comes back with a handle as its `jti`, so that
 * saving it again (the device flow does) updates the same row. A handle is MACed with a key of this
 * process: it cannot be forged from a leaked `id_hash`, and `find` never accepts one.
 */
export function createOidcAdapterFactory(
  store: Store,
  clock: Clock,
  options: OidcAdapterOptions = {},
): OidcAdapterFactory {
  const toleranceMs = (options.clockToleranceSeconds ?? 0) * 1000;
  const handleKey = randomBytes(32);
  const mac = (model: string, idHash: string) =>
    createHmac('sha256', handleKey).update(`${model}\n${idHash}`).digest('base64url');
  const handleFor = (model: string, idHash: string) => `${HANDLE_PREFIX}${idHash}.${mac(model, idHash)}`;

  /** The row key of an id; a handle resolves only where `allowHandle` (writes, never lookups). */
  const keyOf = (model: string, id: string, allowHandle: boolean): string => {
    if (allowHandle && id.startsWith(HANDLE_PREFIX)) {
      const [idHash = '', tag = ''] = id.slice(HANDLE_PREFIX.length).split('.');
      if (constantTimeEqual(tag, mac(model, idHash))) return idHash;
    }
    return hashBearerSecret(id);
  };

  return (model: string): OidcAdapter => {
    const repo = () => store.repos.oauth;

    /** Back from a row to oidc-provider's payload, with `id` where the model's id was. */
    const toPayload = (row: OidcModelRow, id: string): OidcPayload => {
      const payload = JSON.parse(row.payload.split(ID_MARK).join(id)) as OidcPayload;
      // oidc-provider's `consumed` is epoch seconds (its `epochTime()`).
      if (row.consumed_at !== null) payload.consumed = Math.floor(row.consumed_at / 1000);
      return payload;
    };

    return {
      async upsert(id, payload, expiresIn) {
        if (id === '' || id.includes(ID_MARK)) throw new TypeError('Invalid oidc-provider model id');
        const now = clock();
        const { consumed, ...rest } = payload;
        const stored: OidcPayload = model === 'Interaction' ? withoutSessionCookie(rest) : rest;
        const idHash = keyOf(model, id, true);
        const expiresAt = typeof expiresIn === 'number' ? now + expiresIn * 1000 + toleranceMs : null;
        const row = {
          model,
          id_hash: idHash,
          // A model re-saved under a handle carries that handle where its id was: it is replaced too.
          payload: JSON.stringify(stored).split(id).join(ID_MARK),
          grant_id: GRANTABLE.has(model) ? stringOrNull(payload.grantId) : null,
          uid: stringOrNull(payload.uid),
          user_code: stringOrNull(payload.userCode),
          account_id: stringOrNull(payload.accountId),
          expires_at: expiresAt,
          consumed_at: typeof consumed === 'number' ? consumed * 1000 : consumed ? now : null,
        };
        const hook = options.onRefreshTokenCreated;
        if (model === 'RefreshToken' && hook) {
          await store.transaction(async (repos) => {
            await repos.oauth.upsertOidcModel(row);
            await hook(repos, { idHash, payload, expiresAt });
          });
        } else {
          await repo().upsertOidcModel(row);
        }
      },

      async find(id) {
        const early = options.readAhead?.(model, id);
        if (early !== undefined) return early ? toPayload(early, id) : undefined;
        const idHash = keyOf(model, id, false);
        const row =
          model === 'RefreshToken' && options.findRefreshToken
            ? await options.findRefreshToken(idHash, clock())
            : await repo().findOidcModel(model, idHash, clock());
        return row ? toPayload(row, id) : undefined;
      },

      async findByUid(uid) {
        const row = await repo().findOidcModelByUid(model, uid, clock());
        return row ? toPayload(row, handleFor(model, row.id_hash)) : undefined;
      },

      async findByUserCode(userCode) {
        const row = await repo().findOidcModelByUserCode(model, userCode, clock());
        return row ? toPayload(row, handleFor(model, row.id_hash)) : undefined;
      },

      async consume(id) {
        const consumed = await repo().consumeOidcModel(model, keyOf(model, id, true), clock());
        if (!consumed) throw new OidcModelConsumedError(model);
      },

      async destroy(id) {
        const idHash = keyOf(model, id, true);
        if (model !== 'RefreshToken') return repo().destroyOidcModel(model, idHash);
        // A refresh token revoked at /v1/revoke: its description says so (the Programmatic page).
        await store.transaction(async (repos) => {
          await repos.oauth.destroyOidcModel(model, idHash);
          await repos.apiTokens.markRevoked({ idHash }, clock(), 'revoked');
        });
      },

      async revokeByGrantId(grantId) {
        await store.transaction(async (repos) => {
          await repos.oauth.revokeOidcGrant(grantId);
          await repos.apiTokens.markRevoked({ grantId }, clock(), 'revoked');
        });
      },
    };
  };
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/**
 * oidc-provider copies the session cookie value (the Session id, a bearer secret) into an
 * Interaction's `session.cookie` and never reads it back.
 */
function withoutSessionCookie(payload: OidcPayload): OidcPayload {
  const session = payload.session;
  if (typeof session !== 'object' || session === null || !('cookie' in session)) return payload;
  const { cookie: _cookie, ...rest } = session as Record<string, unknown>;
  return { ...payload, session: rest };
}
