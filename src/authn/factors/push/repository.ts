import { type Kysely, type Selectable, sql } from 'kysely';
import type { Database, PushActivationsTable, PushChallengesTable, PushDevicesTable } from '../../../db/schema.ts';

export type PushDeviceRow = Selectable<PushDevicesTable>;
export type PushActivationRow = Selectable<PushActivationsTable>;
export type PushChallengeRow = Selectable<PushChallengesTable>;
export type PushStatus = 'WAITING' | 'APPROVED' | 'REJECTED' | 'TIMEOUT';

/** Push devices, activation codes and challenges: named atomic operations (CONVENTIONS 4). */
export function createPushRepository(db: Kysely<Database>) {
  return {
    async createActivation(row: PushActivationRow): Promise<void> {
      await db.insertInto('push_activations').values(row).execute();
    },
    async findActivation(codeHash: string): Promise<PushActivationRow | undefined> {
      return db.selectFrom('push_activations').selectAll().where('code_hash', '=', codeHash).executeTakeFirst();
    },
    /** The newest live activation code of a pending factor, for showing it again. */
    async findLiveActivation(factorId: string, now: number): Promise<PushActivationRow | undefined> {
      return db
        .selectFrom('push_activations')
        .selectAll()
        .where('factor_id', '=', factorId)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now)
        .orderBy('created_at', 'desc')
        .executeTakeFirst();
    },
    /** Single use: true for exactly one caller, and only before it expires. */
    async consumeActivation(codeHash: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('push_activations')
        .set({ consumed_at: now })
        .where('code_hash', '=', codeHash)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** PENDING_ACTIVATION → ACTIVE for a push factor, named after its device. */
    async activatePushFactor(factorId: string, name: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('factors')
        .set({ status: 'ACTIVE', name, activated_at: now, last_used_at: null })
        .where('id', '=', factorId)
        .where('status', '=', 'PENDING_ACTIVATION')
        .where('factor_type', '=', 'push')
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async createDevice(row: PushDeviceRow): Promise<void> {
      await db.insertInto('push_devices').values(row).execute();
    },
    async findDeviceByTokenHash(tokenHash: string): Promise<PushDeviceRow | undefined> {
      return db.selectFrom('push_devices').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
    },
    async findDeviceByFactor(factorId: string): Promise<PushDeviceRow | undefined> {
      return db.selectFrom('push_devices').selectAll().where('factor_id', '=', factorId).executeTakeFirst();
    },
    /** The user's device enrolled with `factorId`, whether that is its push or its TOTP factor. */
    async findDeviceOfFactor(userId: string, factorId: string): Promise<PushDeviceRow | undefined> {
      return db
        .selectFrom('push_devices')
        .selectAll()
        .where('user_id', '=', userId)
        .where((eb) => eb.or([eb('factor_id', '=', factorId), eb('totp_factor_id', '=', factorId)]))
        .executeTakeFirst();
    },
    async listDevices(userId: string): Promise<PushDeviceRow[]> {
      return db.selectFrom('push_devices').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
    },
    async touchDevice(deviceId: string, now: number): Promise<void> {
      await db.updateTable('push_devices').set({ last_seen_at: now }).where('id', '=', deviceId).execute();
    },
    /**
     * Counts one push for a sign-in transaction: its number (1, 2…), or undefined (nothing counted)
     * once `max` were sent. One conditional upsert, atomic on SQLite and PostgreSQL, so parallel
     * resends cannot pass the cap.
     */
    async countSend(txnHash: string, max: number): Promise<number | undefined> {
      const r = await db
        .insertInto('push_sends')
        .values({ txn_hash: txnHash, count: 1 })
        .onConflict((oc) =>
          oc
            .column('txn_hash')
            .doUpdateSet({ count: sql<number>`push_sends.count + 1` })
            .where('push_sends.count', '<', max),
        )
        .returning('count')
        .executeTakeFirst();
      return r?.count;
    },
    /** Pushes sent to a user since `since`, across every node (the per-user rate limit). */
    async countRecentPushes(userId: string, since: number): Promise<number> {
      const r = await db
        .selectFrom('push_challenges')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('user_id', '=', userId)
        .where('created_at', '>', since)
        .executeTakeFirst();
      return Number(r?.n ?? 0);
    },
    async createChallenge(row: PushChallengeRow): Promise<void> {
      await db.insertInto('push_challenges').values(row).execute();
    },
    async findChallenge(id: string): Promise<PushChallengeRow | undefined> {
      return db.selectFrom('push_challenges').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** The last push of a sign-in transaction. */
    async latestChallenge(txnHash: string): Promise<PushChallengeRow | undefined> {
      return db
        .selectFrom('push_challenges')
        .selectAll()
        .where('txn_hash', '=', txnHash)
        .orderBy('seq', 'desc')
        .executeTakeFirst();
    },
    /**
     * The pushes a device has not answered yet and that have not expired, without those a newer
     * push of the same sign-in replaced (whatever order parallel sends committed in).
     */
    async listWaiting(factorId: string, now: number): Promise<PushChallengeRow[]> {
      return db
        .selectFrom('push_challenges as c')
        .selectAll('c')
        .where('c.factor_id', '=', factorId)
        .where('c.status', '=', 'WAITING')
        .where('c.expires_at', '>', now)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('push_challenges as newer')
                .select('newer.id')
                .whereRef('newer.txn_hash', '=', 'c.txn_hash')
                .whereRef('newer.seq', '>', 'c.seq'),
            ),
          ),
        )
        .orderBy('c.created_at')
        .execute();
    },
    /**
     * WAITING → the answer, once, before expiry. A replayed (or racing) answer finds the challenge
     * no longer WAITING and changes nothing.
     */
    async answerChallenge(
      id: string,
      status: 'APPROVED' | 'REJECTED',
      reason: string | null,
      now: number,
    ): Promise<boolean> {
      const r = await db
        .updateTable('push_challenges')
        .set({ status, reason, answered_at: now })
        .where('id', '=', id)
        .where('status', '=', 'WAITING')
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Withdraws the pushes of a transaction sent before push number `seq`, so only the newest can
     * be approved; parallel sends each withdraw the lower numbers, which leaves the highest.
     */
    async supersedeEarlier(txnHash: string, seq: number, now: number): Promise<void> {
      await db
        .updateTable('push_challenges')
        .set({ status: 'REJECTED', reason: 'superseded', answered_at: now })
        .where('txn_hash', '=', txnHash)
        .where('status', '=', 'WAITING')
        .where('seq', '<', seq)
        .execute();
    },
    /** WAITING → TIMEOUT once it has expired; true for the caller that made the change. */
    async expireChallenge(id: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('push_challenges')
        .set({ status: 'TIMEOUT', answered_at: now })
        .where('id', '=', id)
        .where('status', '=', 'WAITING')
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** Marks a final REJECTED/TIMEOUT as told to the sign-in; true for the first caller only. */
    async markResultSeen(id: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('push_challenges')
        .set({ result_seen_at: now })
        .where('id', '=', id)
        .where('result_seen_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
  };
}
export type PushRepository = ReturnType<typeof createPushRepository>;
