import type { Kysely } from 'kysely';

/**
 * Reference data (issue #5): the catalog of files the download service serves and the users'
 * entitlements per facility. The files themselves live in a directory (`{dataDir}/files/{env}/`);
 * `path` is relative to it. `(facility, file, date)` is unique: a re-import replaces a day's file.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('reference_files')
    .addColumn('id', 'varchar(40)', (c) => c.primaryKey())
    .addColumn('facility', 'varchar(20)', (c) => c.notNull())
    .addColumn('file', 'varchar(40)', (c) => c.notNull())
    /** `YYYY-MM-DD`, the business date the file is for. */
    .addColumn('date', 'varchar(10)', (c) => c.notNull())
    .addColumn('path', 'varchar(300)', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'varchar(64)', (c) => c.notNull())
    .addColumn('records', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('reference_files_key')
    .on('reference_files')
    .columns(['facility', 'file', 'date'])
    .unique()
    .execute();
  await db.schema.createIndex('reference_files_date').on('reference_files').column('date').execute();

  await db.schema
    .createTable('entitlements')
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('facility', 'varchar(20)', (c) => c.notNull())
    .addColumn('granted_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('entitlements_pk', ['user_id', 'facility'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('entitlements').ifExists().execute();
  await db.schema.dropTable('reference_files').ifExists().execute();
}
