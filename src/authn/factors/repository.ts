import type { Kysely, Selectable } from 'kysely';
import type { Database, FactorsTable } from '../../db/schema.ts';
import { createPushRepository } from './push/repository.ts';
import { createWebAuthnRepository } from './webauthn/repository.ts';

export type FactorRow = Selectable<FactorsTable>;

/** Enrolled authentication factors (all types share one table). */
export function createFactorRepository(db: Kysely<Database>) {
  const listFactors = (userId: string): Promise<FactorRow[]> =>
    db.selectFrom('factors').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  return {
    async createFactor(factor: FactorRow): Promise<void> {
      await db.insertInto('factors').values(factor).execute();
    },
    async findFactor(userId: string, factorId: string): Promise<FactorRow | undefined> {
      return db
        .selectFrom('factors')
        .selectAll()
        .where('id', '=', factorId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
    },
    listFactors,
    /** The factors that can be used (not those waiting for their first code), in `listFactors` order. */
    async listActiveFactors(userId: string): Promise<FactorRow[]> {
      return (await listFactors(userId)).filter((f) => f.status === 'ACTIVE');
    },
    /** PENDING_ACTIVATION → ACTIVE, recording the step of the code that proved possession. */
    async activateFactor(factorId: string, step: number, now: number): Promise<boolean> {
      const r = await db
        .updateTable('factors')
        .set({ status: 'ACTIVE', activated_at: now, last_used_at: now, last_used_step: step })
        .where('id', '=', factorId)
        .where('status', '=', 'PENDING_ACTIVATION')
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Records that a TOTP code of `step` was accepted. Atomic compare-and-set: false when this or a
     * later step was already used, so a code is never accepted twice (RFC 6238 §5.2).
     */
    async markTotpStepUsed(factorId: string, step: number, now: number): Promise<boolean> {
      const r = await db
        .updateTable('factors')
        .set({ last_used_step: step, last_used_at: now })
        .where('id', '=', factorId)
        .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', step)]))
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** Removes one enrolled factor (a lost device); false if the user has no such factor. */
    async deleteFactor(userId: string, factorId: string): Promise<boolean> {
      const r = await db
        .deleteFrom('factors')
        .where('id', '=', factorId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },
    /**
     * PENDING_ACTIVATION → ACTIVE for a factor proven by other means than a TOTP code (a FastPass
     * registration); false if it was not pending.
     */
    async activatePendingFactor(factorId: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('factors')
        .set({ status: 'ACTIVE', activated_at: now, last_used_at: now })
        .where('id', '=', factorId)
        .where('status', '=', 'PENDING_ACTIVATION')
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** Records when a factor was last verified (FastPass: the counter is kept with the credential). */
    async markFactorUsed(factorId: string, now: number): Promise<void> {
      await db.updateTable('factors').set({ last_used_at: now }).where('id', '=', factorId).execute();
    },
    /** The phone number of an imported SMS or voice-call factor. */
    async setPhoneNumber(factorId: string, phoneNumber: string): Promise<void> {
      await db.insertInto('factor_phone_numbers').values({ factor_id: factorId, phone_number: phoneNumber }).execute();
    },
    /** The phone numbers of a user's SMS and voice-call factors, by factor id. */
    async listPhoneNumbers(userId: string): Promise<Map<string, string>> {
      const rows = await db
        .selectFrom('factor_phone_numbers')
        .innerJoin('factors', 'factors.id', 'factor_phone_numbers.factor_id')
        .select(['factor_phone_numbers.factor_id', 'factor_phone_numbers.phone_number'])
        .where('factors.user_id', '=', userId)
        .execute();
      return new Map(rows.map((r) => [r.factor_id, r.phone_number]));
    },
    /** FastPass credentials and challenges. */
    webauthn: createWebAuthnRepository(db),
    /** Push devices (`traqs-verify`), activation codes and number challenges. */
    push: createPushRepository(db),
    /** Drops enrollments that were started but never confirmed. */
    async deletePendingFactors(userId: string): Promise<void> {
      await db.deleteFrom('factors').where('user_id', '=', userId).where('status', '=', 'PENDING_ACTIVATION').execute();
    },
  };
}
export type FactorRepository = ReturnType<typeof createFactorRepository>;
