import type { Kysely } from 'kysely';

/**
 * Federated single sign-on (issue #8). Numbered 0009: 0008 is reserved for the push factor.
 *
 * `identity_providers`: a firm's own identity provider, SAML 2.0 or OpenID Connect. `settings` is
 * JSON (SAML: IdP entity id, SSO URL, signing certificates; OIDC: issuer, client id), the OIDC
 * client secret and our SP private key are sealed with the environment's key (AES-256-GCM, the
 * row id as associated data); our SP certificate is public and stored as PEM.
 *
 * `federation_requests`: one row per sign-in sent to an IdP: the SAML AuthnRequest ID (checked
 * against `InResponseTo`, SAML Core §3.2.2) or the SHA-256 of the OIDC `state`, with the nonce and
 * the sealed PKCE verifier. Bound to the browser that started it by the SHA-256 of a cookie (login
 * CSRF, RFC 6749 §10.12). In the database, not in memory, so the answer may reach any node.
 *
 * `federation_assertions`: the ids of accepted SAML assertions until they expire, so one is never
 * accepted twice (SAML Profiles §4.1.4.5, one-time use of bearer assertions).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('identity_providers')
    .addColumn('id', 'varchar(40)', (c) => c.primaryKey())
    .addColumn('firm_id', 'varchar(32)', (c) => c.notNull().references('firms.id').onDelete('cascade'))
    .addColumn('name', 'varchar(200)', (c) => c.notNull())
    /** `saml` or `oidc`. */
    .addColumn('protocol', 'varchar(10)', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('client_secret_sealed', 'text')
    .addColumn('sp_private_key_sealed', 'text', (c) => c.notNull())
    .addColumn('sp_certificate', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  // One identity provider per firm: the sign-in page knows where to send a federated user.
  await db.schema.createIndex('identity_providers_firm').on('identity_providers').column('firm_id').unique().execute();

  await db.schema
    .createTable('federation_requests')
    .addColumn('id', 'varchar(100)', (c) => c.primaryKey())
    .addColumn('idp_id', 'varchar(40)', (c) => c.notNull().references('identity_providers.id').onDelete('cascade'))
    .addColumn('binding_hash', 'varchar(64)', (c) => c.notNull())
    .addColumn('nonce', 'varchar(100)')
    .addColumn('verifier_sealed', 'text')
    .addColumn('login_hint', 'varchar(254)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    /** When the IdP's answer was verified, and whom and how it signed in. */
    .addColumn('answered_at', 'bigint')
    .addColumn('user_id', 'varchar(32)')
    .addColumn('amr', 'varchar(200)')
    .addColumn('consumed_at', 'bigint')
    .execute();
  await db.schema.createIndex('federation_requests_expires').on('federation_requests').column('expires_at').execute();

  await db.schema
    .createTable('federation_assertions')
    .addColumn('idp_id', 'varchar(40)', (c) => c.notNull().references('identity_providers.id').onDelete('cascade'))
    .addColumn('assertion_id', 'varchar(256)', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('federation_assertions_pk', ['idp_id', 'assertion_id'])
    .execute();
  await db.schema
    .createIndex('federation_assertions_expires')
    .on('federation_assertions')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('federation_assertions').ifExists().execute();
  await db.schema.dropTable('federation_requests').ifExists().execute();
  await db.schema.dropTable('identity_providers').ifExists().execute();
}
