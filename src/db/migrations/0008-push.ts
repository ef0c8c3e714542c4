import type { Kysely } from 'kysely';

/**
 * Okta-Verify-style push with number matching and the `traqs-verify` authenticator (issue #6,
 * items 1–3).
 *
 * `push_devices`: one `traqs-verify` enrollment per `push` factor (deleted with it). The device's
 * P-256 public key as a JWK; `token_hash` is the SHA-256 of the bearer token the device presents
 * on its event stream and answers (DESIGN: every bearer secret stored only as a hash).
 * `totp_factor_id` is the `token:software:totp`/`OKTA` factor created with it, whose codes
 * `traqs-verify code` prints (Okta Verify enrolls both together).
 *
 * `push_activations`: the single-use, short-lived activation code shown as link and QR code while
 * a push factor waits for its device. Looked up by hash; the code itself is also kept sealed
 * (AES-256-GCM, bound to the factor) so the waiting page can show it again.
 *
 * `push_challenges`: one per push sent. `numbers` (JSON array of three) go to the device, the
 * browser shows `correct_number` (number matching, NIST SP 800-63B-4 §5.1.3.1 / §5.2.x); the
 * status moves from WAITING exactly once (conditional UPDATE), which makes a replayed device
 * signature useless. `txn_hash` ties it to the sign-in transaction; `context` is what the device
 * shows (app, IP, approximate place, browser).
 *
 * `push_sends`: pushes sent per sign-in transaction, capped by a conditional upsert (push
 * bombing, OWASP ASVS 6.6.4).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('push_devices')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('factor_id', 'varchar(32)', (c) => c.notNull().unique().references('factors.id').onDelete('cascade'))
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('totp_factor_id', 'varchar(32)')
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint')
    .execute();
  await db.schema.createIndex('push_devices_user').on('push_devices').column('user_id').execute();

  await db.schema
    .createTable('push_activations')
    .addColumn('code_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('code_sealed', 'text', (c) => c.notNull())
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('factor_id', 'varchar(32)', (c) => c.notNull().references('factors.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('consumed_at', 'bigint')
    .execute();
  await db.schema.createIndex('push_activations_factor').on('push_activations').column('factor_id').execute();

  await db.schema
    .createTable('push_challenges')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('factor_id', 'varchar(32)', (c) => c.notNull().references('factors.id').onDelete('cascade'))
    .addColumn('txn_hash', 'varchar(64)', (c) => c.notNull())
    /** 1, 2, 3…: which push of its transaction this is (the newest decides). */
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('numbers', 'varchar(40)', (c) => c.notNull())
    .addColumn('correct_number', 'integer', (c) => c.notNull())
    /** WAITING, APPROVED, REJECTED or TIMEOUT. */
    .addColumn('status', 'varchar(10)', (c) => c.notNull())
    /** Why REJECTED: `denied` or `wrong_number`. */
    .addColumn('reason', 'varchar(20)')
    .addColumn('context', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('answered_at', 'bigint')
    /** When the sign-in was told a final result (REJECTED/TIMEOUT); the next verify sends a new push. */
    .addColumn('result_seen_at', 'bigint')
    .execute();
  await db.schema.createIndex('push_challenges_txn').on('push_challenges').column('txn_hash').execute();
  await db.schema
    .createIndex('push_challenges_user_created')
    .on('push_challenges')
    .columns(['user_id', 'created_at'])
    .execute();
  await db.schema
    .createIndex('push_challenges_factor_status')
    .on('push_challenges')
    .columns(['factor_id', 'status'])
    .execute();

  await db.schema
    .createTable('push_sends')
    .addColumn('txn_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('count', 'integer', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('push_sends').ifExists().execute();
  await db.schema.dropTable('push_challenges').ifExists().execute();
  await db.schema.dropTable('push_activations').ifExists().execute();
  await db.schema.dropTable('push_devices').ifExists().execute();
}
