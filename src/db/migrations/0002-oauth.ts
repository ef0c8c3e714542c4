import type { Kysely } from 'kysely';

/**
 * Storage of the OpenID Connect / OAuth 2.0 authorization server (oidc-provider).
 *
 * `oidc_models` holds every oidc-provider model (Session, Interaction, Grant, AuthorizationCode,
 * RefreshToken, opaque AccessToken, DeviceCode…) in one table keyed by `(model, id_hash)`:
 * `id_hash` is the hex SHA-256 of the model's id, never the id itself, because for token models the
 * id *is* the bearer secret (DESIGN.md "Secrets at rest"). What `payload` holds is documented in
 * `src/oauth/adapter.ts`. The other columns are the adapter's secondary keys: `grant_id`
 * (revokeByGrantId), `uid` (Session.findByUid), `user_code` (DeviceCode.findByUserCode), and
 * `account_id` to find a user's tokens (the Programmatic page, revocation on suspension).
 * Times are epoch milliseconds; `expires_at` null means "no expiry".
 *
 * `signing_keys` holds the JWS keys of ID tokens and JWT access tokens (`src/oauth/keys.ts`). The
 * partial unique index allows at most one `active` key, which makes the first start of two nodes
 * at once create one key, not two.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('oidc_models')
    .addColumn('model', 'varchar(40)', (c) => c.notNull())
    .addColumn('id_hash', 'varchar(64)', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('grant_id', 'varchar(200)')
    .addColumn('uid', 'varchar(200)')
    .addColumn('user_code', 'varchar(200)')
    .addColumn('account_id', 'varchar(200)')
    .addColumn('expires_at', 'bigint')
    .addColumn('consumed_at', 'bigint')
    .addPrimaryKeyConstraint('oidc_models_pk', ['model', 'id_hash'])
    .execute();
  await db.schema.createIndex('oidc_models_grant').on('oidc_models').column('grant_id').execute();
  await db.schema.createIndex('oidc_models_uid').on('oidc_models').columns(['model', 'uid']).execute();
  await db.schema.createIndex('oidc_models_user_code').on('oidc_models').columns(['model', 'user_code']).execute();
  await db.schema.createIndex('oidc_models_account').on('oidc_models').columns(['account_id', 'model']).execute();
  await db.schema.createIndex('oidc_models_expires').on('oidc_models').column('expires_at').execute();

  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'varchar(100)', (c) => c.primaryKey())
    .addColumn('alg', 'varchar(20)', (c) => c.notNull())
    .addColumn('private_jwk_sealed', 'text', (c) => c.notNull())
    .addColumn('public_jwk', 'text', (c) => c.notNull())
    .addColumn('status', 'varchar(20)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('retire_after', 'bigint')
    .execute();
  // At most one signing key is active: a second node's first-start insert loses the race cleanly.
  await db.schema
    .createIndex('signing_keys_one_active')
    .on('signing_keys')
    .column('status')
    .unique()
    .where('status', '=', 'active')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('signing_keys').ifExists().execute();
  await db.schema.dropTable('oidc_models').ifExists().execute();
}
