import type { Kysely } from 'kysely';

/**
 * Administration (issue #7): the request queue and the management API's tokens.
 *
 * `admin_requests` holds what a firm's SAA asks Operations to do (a new username, a deactivation):
 * `payload` is JSON (`{email, firstName, lastName, apps}` or `{userId}`), `requested_by` the SAA's
 * user id (or the id of the `saa` API token that asked), `status` moves once from `pending` to
 * `approved` or `rejected` (compare-and-set, so two Operations staff cannot both decide).
 *
 * `management_api_tokens` are the `SSWS` tokens of the Okta-compatible management API: bound to one
 * role (and, for `saa`, to one firm); only the SHA-256 of the token is stored (DESIGN "Secrets at
 * rest"), so a token is shown once, when created.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('admin_requests')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('firm_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('kind', 'varchar(20)', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('target_user_id', 'varchar(32)')
    .addColumn('requested_by', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(20)', (c) => c.notNull())
    .addColumn('decided_by', 'varchar(32)')
    .addColumn('reason', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('decided_at', 'bigint')
    .execute();
  await db.schema.createIndex('admin_requests_status').on('admin_requests').columns(['status', 'created_at']).execute();
  await db.schema.createIndex('admin_requests_firm').on('admin_requests').columns(['firm_id', 'created_at']).execute();

  await db.schema
    .createTable('management_api_tokens')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('role', 'varchar(20)', (c) => c.notNull())
    .addColumn('firm_id', 'varchar(32)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('management_api_tokens').ifExists().execute();
  await db.schema.dropTable('admin_requests').ifExists().execute();
}
