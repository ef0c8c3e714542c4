import type { Kysely } from 'kysely';

/**
 * FastPass and the retired factors (issue #6).
 *
 * `webauthn_credentials`: the public-key credential of a `webauthn` factor, one per factor (deleted
 * with it). `credential_id` and `public_key` are base64url (the COSE key as the authenticator sent
 * it); `sign_count` is the last signature counter seen, which may only go up (WebAuthn §7.2 step 21).
 *
 * `webauthn_challenges`: single-use, short-lived challenges, each bound to what asked for it (a
 * sign-in transaction or a profile session, by the SHA-256 the database already keys them with) and
 * to a factor. A challenge is a nonce, not a bearer secret: knowing it grants nothing without the
 * authenticator's private key, so it is stored as sent.
 *
 * `factor_phone_numbers`: the E.164 number of an SMS or voice-call enrollment imported for
 * migration (`traqs factor import`).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('webauthn_credentials')
    .addColumn('factor_id', 'varchar(32)', (c) => c.primaryKey().references('factors.id').onDelete('cascade'))
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // WebAuthn §5.8.1: at most 1023 bytes, so at most 1364 base64url characters.
    .addColumn('credential_id', 'varchar(1400)', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('sign_count', 'bigint', (c) => c.notNull().defaultTo(0))
    /** JSON array of the transports the browser reported (`internal`, `usb`, `hybrid`…). */
    .addColumn('transports', 'varchar(200)', (c) => c.notNull().defaultTo('[]'))
    .addColumn('aaguid', 'varchar(36)')
    /** `singleDevice` or `multiDevice` (a synced passkey). */
    .addColumn('device_type', 'varchar(20)')
    .addColumn('backed_up', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('webauthn_credentials_credential_id')
    .on('webauthn_credentials')
    .column('credential_id')
    .unique()
    .execute();
  await db.schema.createIndex('webauthn_credentials_user').on('webauthn_credentials').column('user_id').execute();

  await db.schema
    .createTable('webauthn_challenges')
    .addColumn('challenge', 'varchar(100)', (c) => c.primaryKey())
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull().references('users.id').onDelete('cascade'))
    /** `registration` or `authentication`. */
    .addColumn('purpose', 'varchar(20)', (c) => c.notNull())
    /** `txn:<sha256 of the stateToken>` or `session:<sha256 of the session id>`. */
    .addColumn('binding', 'varchar(80)', (c) => c.notNull())
    .addColumn('factor_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('consumed_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('webauthn_challenges_binding')
    .on('webauthn_challenges')
    .columns(['binding', 'purpose'])
    .execute();
  await db.schema.createIndex('webauthn_challenges_user').on('webauthn_challenges').column('user_id').execute();

  await db.schema
    .createTable('factor_phone_numbers')
    .addColumn('factor_id', 'varchar(32)', (c) => c.primaryKey().references('factors.id').onDelete('cascade'))
    .addColumn('phone_number', 'varchar(20)', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('factor_phone_numbers').ifExists().execute();
  await db.schema.dropTable('webauthn_challenges').ifExists().execute();
  await db.schema.dropTable('webauthn_credentials').ifExists().execute();
}
