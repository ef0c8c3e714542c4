import { type Kysely, type Selectable, sql } from 'kysely';
import type { App } from '../accounts/model.ts';
import type { UserRow } from '../accounts/repository.ts';
import { preparedQuery } from '../db/prepared.ts';
import type { Database, OidcModelsTable, SigningKeysTable } from '../db/schema.ts';

export type OidcModelRow = Selectable<OidcModelsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;

/** A user as tokens describe them (see `findTokenSubject`). */
export interface TokenSubject {
  user: UserRow;
  firmName: string | null;
  apps: App[];
  facilities: string[];
}

/**
 * Storage of the authorization server: oidc-provider's models and the JWS signing keys.
 *
 * Every operation takes the hash of a model id, never the id: hashing is the adapter's job
 * (`src/oauth/adapter.ts`), so nothing here can store a bearer secret by mistake. Times are epoch
 * milliseconds from the caller's clock.
 */
export function createOauthRepository(db: Kysely<Database>) {
  const unexpired = (now: number) =>
    sql<boolean>`(${sql.ref('expires_at')} is null or ${sql.ref('expires_at')} > ${now})`;

  const findModel = preparedQuery(db, (db, model: string, idHash: string, now: number) =>
    db
      .selectFrom('oidc_models')
      .selectAll()
      .where('model', '=', model)
      .where('id_hash', '=', idHash)
      .where(unexpired(now)),
  );
  const findSubjectUser = preparedQuery(db, (db, userId: string) =>
    db
      .selectFrom('users')
      .leftJoin('firms', 'firms.id', 'users.firm_id')
      .selectAll('users')
      .select('firms.name as firm_name')
      .where('users.id', '=', userId),
  );
  const listSubjectGrants = preparedQuery(db, (db, userId: string) =>
    db
      .selectFrom('app_assignments')
      .select([sql<string>`'app'`.as('kind'), 'app as value'])
      .where('user_id', '=', userId)
      .unionAll(
        db
          .selectFrom('entitlements')
          .select([sql<string>`'facility'`.as('kind'), 'facility as value'])
          .where('user_id', '=', userId),
      ),
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
     * What a token is issued from, in two queries instead of four (the token endpoint asks on every
     * refresh grant): the user with the firm's name, then the apps the user is assigned to and the
     * facilities the user is entitled to, as one list of `(kind, value)` rows.
     */
    async findTokenSubject(userId: string): Promise<TokenSubject | undefined> {
      const user = await findSubjectUser.first(userId);
      if (!user) return undefined;
      const grants = await listSubjectGrants.all(userId);
      const { firm_name, ...row } = user;
      const valuesOf = (kind: string) =>
        grants
          .filter((g) => g.kind === kind)
          .map((g) => g.value)
          .sort();
      return { user: row, firmName: firm_name, apps: valuesOf('app') as App[], facilities: valuesOf('facility') };
    },
  };
}
export type OauthRepository = ReturnType<typeof createOauthRepository>;
