import { type Kysely, sql } from 'kysely';

/**
 * Programmatic refresh tokens and signing keys per algorithm (issue #4).
 *
 * `api_refresh_tokens` describes each refresh token oidc-provider issues: whose it is, its label,
 * when it was created, expires and was last used (and from where), whether its expiry reminder went
 * out and whether it was revoked. `id_hash` is the same SHA-256 of the token as the `oidc_models`
 * key of the `RefreshToken` row; the token itself is stored nowhere (DESIGN "Secrets at rest").
 * A revoked token's description stays (the user sees it was revoked); its `oidc_models` row goes.
 *
 * `portal_sessions` are the TRAQS website's browser sessions (the portal is an OpenID Connect client
 * of the idp): the cookie holds a 256-bit id, the row its SHA-256, as for idp sessions.
 *
 * `signing_keys` may now hold one active key per algorithm: ES256 signs the download API's access
 * tokens and the ID tokens of `traqs-api`; RS256 signs other ID tokens (OpenID Connect Discovery
 * §3 makes RS256 the one algorithm every client supports) and access tokens for Okta's default
 * audience `api://default`, which `@okta/jwt-verifier` verifies with RS256 only.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('api_refresh_tokens')
    .addColumn('id_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('client_id', 'varchar(100)', (c) => c.notNull())
    .addColumn('grant_id', 'varchar(200)')
    .addColumn('label', 'varchar(100)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('last_used_ip', 'varchar(64)')
    .addColumn('reminder_sent_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_reason', 'varchar(100)')
    .execute();
  await db.schema
    .createIndex('api_refresh_tokens_user')
    .on('api_refresh_tokens')
    .columns(['user_id', 'created_at'])
    .execute();
  // The reminder job looks only at live tokens that have not been reminded yet.
  await db.schema
    .createIndex('api_refresh_tokens_reminder_due')
    .on('api_refresh_tokens')
    .column('expires_at')
    .where(sql.ref('reminder_sent_at'), 'is', null)
    .execute();

  await db.schema
    .createTable('portal_sessions')
    .addColumn('id_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('amr', 'varchar(200)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('idle_expires_at', 'bigint', (c) => c.notNull())
    .addColumn('absolute_expires_at', 'bigint', (c) => c.notNull())
    .addColumn('ip', 'varchar(64)')
    .addColumn('user_agent', 'varchar(512)')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('portal_sessions_user').on('portal_sessions').column('user_id').execute();

  await db.schema.dropIndex('signing_keys_one_active').execute();
  await db.schema
    .createIndex('signing_keys_one_active_per_alg')
    .on('signing_keys')
    .column('alg')
    .unique()
    .where(sql.ref('status'), '=', 'active')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('signing_keys_one_active_per_alg').execute();
  await db.schema
    .createIndex('signing_keys_one_active')
    .on('signing_keys')
    .column('status')
    .unique()
    .where('status', '=', 'active')
    .execute();
  await db.schema.dropTable('portal_sessions').ifExists().execute();
  await db.schema.dropTable('api_refresh_tokens').ifExists().execute();
}
