import type { Kysely } from 'kysely';

/**
 * The portal's Manual page downloads reference data with the signed-in user's own access token for
 * the download API (issue #5 item 3), obtained at sign-in. It is kept with the portal session,
 * sealed (AES-256-GCM under the environment key, bound to the session), never in clear.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('portal_sessions').addColumn('download_token_sealed', 'text').execute();
  await db.schema.alterTable('portal_sessions').addColumn('download_token_expires_at', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('portal_sessions').dropColumn('download_token_expires_at').execute();
  await db.schema.alterTable('portal_sessions').dropColumn('download_token_sealed').execute();
}
