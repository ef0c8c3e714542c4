import { type ExpressionBuilder, type Kysely, type Selectable, sql } from 'kysely';
import type { App } from '../accounts/model.ts';
import type { UserRow } from '../accounts/repository.ts';
import { type Dialect, jsonArrayOf, jsonArraySql, sha256HexSql } from '../db/database.ts';
import { preparedQuery } from '../db/prepared.ts';
import type { ApiRefreshTokensTable, Database, OidcModelsTable, SigningKeysTable } from '../db/schema.ts';

export type OidcModelRow = Selectable<OidcModelsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;

/**
 * The columns of a user that tokens and their checks read: who, which firm, the ID token's claims,
 * and whether the user may still get tokens. Nothing else (no password hash) leaves the database
 * on a token request.
 */
const SUBJECT_USER_COLUMNS = [
  'u.id',
  'u.firm_id',
  'u.login',
  'u.email',
  'u.first_name',
  'u.last_name',
  'u.status',
  'u.auth_mode',
] as const;
type WithoutAlias<T> = T extends `u.${infer C extends keyof UserRow}` ? C : never;
export type SubjectUser = Pick<UserRow, WithoutAlias<(typeof SUBJECT_USER_COLUMNS)[number]>>;

/** A user as tokens describe them (see `findTokenSubject`). */
export interface TokenSubject {
  user: SubjectUser;
  firmName: string | null;
  apps: App[];
  facilities: string[];
}

/** What a refresh-token grant needs besides the token, read with it (see `readRefreshGrant`). */
export interface RefreshGrantRead {
  token: OidcModelRow;
  /** The token's grant, unless it is gone or expired (`null`); keyed by the raw grant id. */
  grant: { id: string; row: OidcModelRow | null } | null;
  /** The token's user, unless gone. */
  subject: TokenSubject | null;
  /** The token's description (`api_refresh_tokens`), unless there is none. */
  described: Pick<
    Selectable<ApiRefreshTokensTable>,
    'id_hash' | 'expires_at' | 'revoked_at' | 'last_used_at' | 'last_used_ip'
  > | null;
}

/**
 * Storage of the authorization server: oidc-provider's models and the JWS signing keys.
 *
 * Every operation takes the hash of a model id, never the id: hashing is the adapter's job
 * (`src/oauth/adapter.ts`), so nothing here can store a bearer secret by mistake. Times are epoch
 * milliseconds from the caller's clock.
 */
export function createOauthRepository(db: Kysely<Database>, dialect: Dialect) {
  const unexpired = (now: number, table?: string) => {
    const column = sql.ref(table ? `${table}.expires_at` : 'expires_at');
    return sql<boolean>`(${column} is null or ${column} > ${now})`;
  };

  /** The user `u` as tokens describe them: firm name, and the apps and facilities as JSON arrays. */
  const subjectColumns = (
    eb: ExpressionBuilder<Database & { u: Database['users']; f: Database['firms'] }, 'u' | 'f'>,
  ) => [
    eb.ref('f.name').as('firm_name'),
    eb
      .selectFrom('app_assignments as a')
      .select(jsonArraySql(dialect, sql.ref('a.app')).as('v'))
      .whereRef('a.user_id', '=', 'u.id')
      .as('subject_apps'),
    eb
      .selectFrom('entitlements as e')
      .select(jsonArraySql(dialect, sql.ref('e.facility')).as('v'))
      .whereRef('e.user_id', '=', 'u.id')
      .as('subject_facilities'),
  ];

  const findModel = preparedQuery(db, (db, model: string, idHash: string, now: number) =>
    db
      .selectFrom('oidc_models')
      .selectAll()
      .where('model', '=', model)
      .where('id_hash', '=', idHash)
      .where(unexpired(now)),
  );
  const findSubject = preparedQuery(db, (db, userId: string) =>
    db
      .selectFrom('users as u')
      .leftJoin('firms as f', 'f.id', 'u.firm_id')
      .select(SUBJECT_USER_COLUMNS)
      .select(subjectColumns)
      .where('u.id', '=', userId),
  );
  /**
   * A refresh token with its grant, user and description, in one statement: the grant row is keyed
   * by the SHA-256 of the token's `grant_id` column (the adapter hashes every model id).
   */
  const findRefreshGrant = preparedQuery(db, (db, idHash: string, now: number) =>
    db
      .selectFrom('oidc_models as rt')
      .leftJoin('oidc_models as g', (join) =>
        join.on(
          sql<boolean>`${sql.ref('g.model')} = 'Grant' and ${sql.ref('g.id_hash')} = ${sha256HexSql(dialect, sql.ref('rt.grant_id'))} and ${unexpired(now, 'g')}`,
        ),
      )
      .leftJoin('users as u', 'u.id', 'rt.account_id')
      .leftJoin('firms as f', 'f.id', 'u.firm_id')
      .leftJoin('api_refresh_tokens as t', 't.id_hash', 'rt.id_hash')
      .select(SUBJECT_USER_COLUMNS)
      .select(subjectColumns)
      .select([
        'rt.model as rt_model',
        'rt.id_hash as rt_id_hash',
        'rt.payload as rt_payload',
        'rt.grant_id as rt_grant_id',
        'rt.uid as rt_uid',
        'rt.user_code as rt_user_code',
        'rt.account_id as rt_account_id',
        'rt.expires_at as rt_expires_at',
        'rt.consumed_at as rt_consumed_at',
        'g.model as g_model',
        'g.id_hash as g_id_hash',
        'g.payload as g_payload',
        'g.grant_id as g_grant_id',
        'g.uid as g_uid',
        'g.user_code as g_user_code',
        'g.account_id as g_account_id',
        'g.expires_at as g_expires_at',
        'g.consumed_at as g_consumed_at',
        't.id_hash as t_id_hash',
        't.expires_at as t_expires_at',
        't.revoked_at as t_revoked_at',
        't.last_used_at as t_last_used_at',
        't.last_used_ip as t_last_used_ip',
      ])
      .where(sql<boolean>`${sql.ref('rt.model')} = 'RefreshToken'`)
      .where('rt.id_hash', '=', idHash)
      .where(unexpired(now, 'rt')),
  );

  return {
    /**
     * Inserts or replaces a model. Consumption is never undone: a stale copy saved after a parallel
     * request consumed the row keeps it consumed (RFC 6749 §4.1.2: a code is used once).
     */
    async upsertOidcModel(row: OidcModelRow): Promise<void> {
      await db
        .insertInto('oidc_models')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['model', 'id_hash']).doUpdateSet((eb) => ({
            payload: eb.ref('excluded.payload'),
            grant_id: eb.ref('excluded.grant_id'),
            uid: eb.ref('excluded.uid'),
            user_code: eb.ref('excluded.user_code'),
            account_id: eb.ref('excluded.account_id'),
            expires_at: eb.ref('excluded.expires_at'),
            consumed_at: sql<
              number | null
            >`coalesce(${sql.ref('oidc_models.consumed_at')}, ${sql.ref('excluded.consumed_at')})`,
          })),
        )
        .execute();
    },

    /** The model unless it has expired by `now`. */
    async findOidcModel(model: string, idHash: string, now: number): Promise<OidcModelRow | undefined> {
      return findModel.first(model, idHash, now);
    },

    /** A model by its `uid` (oidc-provider's Session), unless expired. */
    async findOidcModelByUid(model: string, uid: string, now: number): Promise<OidcModelRow | undefined> {
      return db
        .selectFrom('oidc_models')
        .selectAll()
        .where('model', '=', model)
        .where('uid', '=', uid)
        .where(unexpired(now))
        .executeTakeFirst();
    },

    /** A model by its user code (oidc-provider's DeviceCode), unless expired. */
    async findOidcModelByUserCode(model: string, userCode: string, now: number): Promise<OidcModelRow | undefined> {
      return db
        .selectFrom('oidc_models')
        .selectAll()
        .where('model', '=', model)
        .where('user_code', '=', userCode)
        .where(unexpired(now))
        .executeTakeFirst();
    },

    /**
     * An account's unexpired models (its sessions, grants, refresh tokens…), for listing and
     * revoking a user's refresh tokens (issue #4: the Programmatic page, suspension).
     */
    async listOidcModelsOfAccount(accountId: string, now: number): Promise<OidcModelRow[]> {
      return db
        .selectFrom('oidc_models')
        .selectAll()
        .where('account_id', '=', accountId)
        .where(unexpired(now))
        .orderBy('model')
        .orderBy('id_hash')
        .execute();
    },

    /**
     * Marks an unexpired model consumed, atomically: of any number of parallel calls exactly one
     * returns true (one conditional UPDATE; the row lock orders them on PostgreSQL, the write lock
     * on SQLite).
     */
    async consumeOidcModel(model: string, idHash: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('oidc_models')
        .set({ consumed_at: now })
        .where('model', '=', model)
        .where('id_hash', '=', idHash)
        .where('consumed_at', 'is', null)
        .where(unexpired(now))
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async destroyOidcModel(model: string, idHash: string): Promise<void> {
      await db.deleteFrom('oidc_models').where('model', '=', model).where('id_hash', '=', idHash).execute();
    },

    /** Deletes every model of a grant (its codes and tokens of every kind); returns how many. */
    async revokeOidcGrant(grantId: string): Promise<number> {
      const r = await db.deleteFrom('oidc_models').where('grant_id', '=', grantId).executeTakeFirst();
      return Number(r.numDeletedRows);
    },

    /** Housekeeping: deletes models expired by `now`; returns how many. */
    async deleteExpiredOidcModels(now: number): Promise<number> {
      const r = await db
        .deleteFrom('oidc_models')
        .where('expires_at', 'is not', null)
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    },

    /**
     * Inserts `row` as the active key of its algorithm unless one is already active (the partial
     * unique index `signing_keys_one_active_per_alg`); true when this call inserted it. Two nodes
     * starting at once both call this and exactly one wins.
     */
    async insertSigningKeyIfNoneActive(row: SigningKeyRow): Promise<boolean> {
      const r = await db
        .insertInto('signing_keys')
        .values({ ...row, status: 'active', retire_after: null })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    async findActiveSigningKey(alg: string): Promise<SigningKeyRow | undefined> {
      return db
        .selectFrom('signing_keys')
        .selectAll()
        .where('status', '=', 'active')
        .where('alg', '=', alg)
        .executeTakeFirst();
    },

    /**
     * Makes `row` the active key of its algorithm and the previously active one `retiring` until
     * `retireAfter`. Run it inside `store.transaction` so both changes commit together; a
     * concurrent rotation fails on the unique index rather than leaving two active keys.
     */
    async replaceActiveSigningKey(row: SigningKeyRow, retireAfter: number): Promise<string | undefined> {
      const previous = await db
        .updateTable('signing_keys')
        .set({ status: 'retiring', retire_after: retireAfter })
        .where('status', '=', 'active')
        .where('alg', '=', row.alg)
        .returning('kid')
        .executeTakeFirst();
      await db
        .insertInto('signing_keys')
        .values({ ...row, status: 'active', retire_after: null })
        .execute();
      return previous?.kid;
    },

    /** The active key and the retiring keys still inside their window, newest first. */
    async listUsableSigningKeys(now: number): Promise<SigningKeyRow[]> {
      return db
        .selectFrom('signing_keys')
        .selectAll()
        .where((eb) =>
          eb.or([eb('status', '=', 'active'), eb.and([eb('status', '=', 'retiring'), eb('retire_after', '>', now)])]),
        )
        .orderBy('created_at', 'desc')
        .orderBy('kid')
        .execute();
    },

    /**
     * What a token is issued from, in one query (the token endpoint asks on every grant): the user
     * with the firm's name, the apps the user is assigned to and the facilities the user may
     * download.
     */
    async findTokenSubject(userId: string): Promise<TokenSubject | undefined> {
      const row = await findSubject.first(userId);
      if (!row) return undefined;
      const { firm_name, subject_apps, subject_facilities, ...user } = row;
      return subjectOf(user, firm_name, subject_apps, subject_facilities);
    },

    /**
     * A refresh token unless expired by `now`, with what its grant request reads next (its grant,
     * user and description), in one statement instead of five: see `RefreshGrantRead`.
     */
    async readRefreshGrant(idHash: string, now: number): Promise<RefreshGrantRead | undefined> {
      const row = await findRefreshGrant.first(idHash, now);
      if (!row) return undefined;
      const {
        firm_name,
        subject_apps,
        subject_facilities,
        rt_model,
        rt_id_hash,
        rt_payload,
        rt_grant_id,
        rt_uid,
        rt_user_code,
        rt_account_id,
        rt_expires_at,
        rt_consumed_at,
        g_model,
        g_id_hash,
        g_payload,
        g_grant_id,
        g_uid,
        g_user_code,
        g_account_id,
        g_expires_at,
        g_consumed_at,
        t_id_hash,
        t_expires_at,
        t_revoked_at,
        t_last_used_at,
        t_last_used_ip,
        ...user
      } = row;
      // Joined rows are all null when missing; their keys (`NOT NULL` columns) tell.
      const grantRow =
        g_model !== null && g_id_hash !== null && g_payload !== null
          ? {
              model: g_model,
              id_hash: g_id_hash,
              payload: g_payload,
              grant_id: g_grant_id,
              uid: g_uid,
              user_code: g_user_code,
              account_id: g_account_id,
              expires_at: g_expires_at,
              consumed_at: g_consumed_at,
            }
          : null;
      return {
        token: {
          model: rt_model,
          id_hash: rt_id_hash,
          payload: rt_payload,
          grant_id: rt_grant_id,
          uid: rt_uid,
          user_code: rt_user_code,
          account_id: rt_account_id,
          expires_at: rt_expires_at,
          consumed_at: rt_consumed_at,
        },
        grant: rt_grant_id === null ? null : { id: rt_grant_id, row: grantRow },
        subject: user.id === null ? null : subjectOf(user as SubjectUser, firm_name, subject_apps, subject_facilities),
        described:
          t_id_hash === null || t_expires_at === null
            ? null
            : {
                id_hash: t_id_hash,
                expires_at: t_expires_at,
                revoked_at: t_revoked_at,
                last_used_at: t_last_used_at,
                last_used_ip: t_last_used_ip,
              },
      };
    },
  };
}
export type OauthRepository = ReturnType<typeof createOauthRepository>;

function subjectOf(user: SubjectUser, firmName: string | null, apps: unknown, facilities: unknown): TokenSubject {
  return {
    user,
    firmName,
    apps: jsonArrayOf(apps).sort() as App[],
    facilities: jsonArrayOf(facilities).sort(),
  };
}
