import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Database, UsersTable } from '../db/schema.ts';
import type { App, Role, UserStatus } from './model.ts';

export type UserRow = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;

export interface UserListFilter {
  firmId?: string;
  status?: UserStatus;
  limit?: number;
}

/** Users, their roles and app assignments. Every write is a named operation. */
export function createUserRepository(db: Kysely<Database>) {
  return {
    async createUser(user: NewUser): Promise<void> {
      await db
        .insertInto('users')
        .values({ ...user, login: user.login.trim().toLowerCase() })
        .execute();
    },
    async findUserById(id: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** Logins are stored lower-cased; callers pass the raw username. */
    async findUserByLogin(login: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('login', '=', login.trim().toLowerCase()).executeTakeFirst();
    },
    async listUsers(filter: UserListFilter = {}): Promise<UserRow[]> {
      let q = db.selectFrom('users').selectAll().orderBy('login');
      if (filter.firmId) q = q.where('firm_id', '=', filter.firmId);
      if (filter.status) q = q.where('status', '=', filter.status);
      return q.limit(filter.limit ?? 1000).execute();
    },
    async countUsers(): Promise<number> {
      const r = await db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(r.n);
    },
    /** Moves a user from one of `from` to `to`; false when the user was not in an allowed status. */
    async transitionStatus(id: string, from: readonly UserStatus[], to: UserStatus, now: number): Promise<boolean> {
      const r = await db
        .updateTable('users')
        .set({ status: to, status_changed_at: now })
        .where('id', '=', id)
        .where('status', 'in', [...from])
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async setPassword(id: string, passwordHash: string, now: number): Promise<void> {
      await db
        .updateTable('users')
        .set({ password_hash: passwordHash, password_changed_at: now })
        .where('id', '=', id)
        .execute();
    },
    /** Replaces a hash after an Argon2 parameter change, only if the old hash is still current. */
    async rehashPassword(id: string, oldHash: string, newHash: string): Promise<void> {
      await db
        .updateTable('users')
        .set({ password_hash: newHash })
        .where('id', '=', id)
        .where('password_hash', '=', oldHash)
        .execute();
    },
    async setRecoveryQuestion(id: string, question: string, answerHash: string): Promise<void> {
      await db
        .updateTable('users')
        .set({ recovery_question: question, recovery_answer_hash: answerHash })
        .where('id', '=', id)
        .execute();
    },
    /** Completes activation: PROVISIONED → ACTIVE. */
    async activateUser(id: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('users')
        .set({ status: 'ACTIVE', activated_at: now, status_changed_at: now })
        .where('id', '=', id)
        .where('status', '=', 'PROVISIONED')
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Reserves one password or factor attempt in a single statement, before the credential is
     * checked: parallel requests each see a distinct count, so none can slip past the lockout
     * threshold. A wrong credential keeps the reservation (it was a failed attempt); a right one
     * gives it back with `releaseAttempt`.
     */
    async recordFailedAttempt(id: string): Promise<number> {
      const r = await db
        .updateTable('users')
        .set((eb) => ({ failed_attempts: eb('failed_attempts', '+', 1) }))
        .where('id', '=', id)
        .returning('failed_attempts')
        .executeTakeFirst();
      return r?.failed_attempts ?? 0;
    },
    /** Gives back an attempt reserved by `recordFailedAttempt` once the credential proved right. */
    async releaseAttempt(id: string): Promise<void> {
      await db
        .updateTable('users')
        .set((eb) => ({ failed_attempts: eb('failed_attempts', '-', 1) }))
        .where('id', '=', id)
        .where('failed_attempts', '>', 0)
        .execute();
    },
    /** ACTIVE/RECOVERY → LOCKED_OUT; counts consecutive lockouts. False if already locked. */
    async lockUser(id: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('users')
        .set((eb) => ({
          status: 'LOCKED_OUT',
          locked_at: now,
          status_changed_at: now,
          lockout_count: eb('lockout_count', '+', 1),
        }))
        .where('id', '=', id)
        .where('status', 'in', ['ACTIVE', 'RECOVERY', 'PASSWORD_EXPIRED'])
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** LOCKED_OUT → ACTIVE with a fresh attempt counter, if it was locked at or before `lockedBefore`. */
    async unlockUser(id: string, now: number, lockedBefore: number = now): Promise<boolean> {
      const r = await db
        .updateTable('users')
        .set({ status: 'ACTIVE', locked_at: null, failed_attempts: 0, status_changed_at: now })
        .where('id', '=', id)
        .where('status', '=', 'LOCKED_OUT')
        .where('locked_at', '<=', lockedBefore)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** Support's unlock: also forgets the consecutive-lockout count, so automatic unlock resumes. */
    async clearLockouts(id: string): Promise<void> {
      await db.updateTable('users').set({ lockout_count: 0, failed_attempts: 0 }).where('id', '=', id).execute();
    },
    async recordSuccessfulSignIn(id: string, factorType: string | null, now: number): Promise<void> {
      await db
        .updateTable('users')
        .set({ failed_attempts: 0, lockout_count: 0, last_login_at: now, last_factor_type: factorType })
        .where('id', '=', id)
        .execute();
    },
    /** The contact details a user may edit themselves (not name, username or firm). */
    async updateContactDetails(
      id: string,
      contact: { mobilePhone: string | null; primaryPhone: string | null },
    ): Promise<void> {
      await db
        .updateTable('users')
        .set({ mobile_phone: contact.mobilePhone, primary_phone: contact.primaryPhone })
        .where('id', '=', id)
        .execute();
    },
    async setPreferences(id: string, preferences: Record<string, unknown>): Promise<void> {
      await db
        .updateTable('users')
        .set({ preferences: JSON.stringify(preferences) })
        .where('id', '=', id)
        .execute();
    },
    async grantRole(userId: string, role: Role): Promise<void> {
      await db
        .insertInto('user_roles')
        .values({ user_id: userId, role })
        .onConflict((oc) => oc.doNothing())
        .execute();
    },
    /** Removes a role; true if the user had it. */
    async revokeRole(userId: string, role: Role): Promise<boolean> {
      const r = await db
        .deleteFrom('user_roles')
        .where('user_id', '=', userId)
        .where('role', '=', role)
        .executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },
    /**
     * The personal information only Operations may change (FAQ: "the personal information section
     * of the user profile cannot be edited" by the user). The username (login) does not change.
     */
    async updatePersonalInfo(
      id: string,
      info: {
        firstName: string;
        lastName: string;
        email: string;
        mobilePhone: string | null;
        primaryPhone: string | null;
      },
    ): Promise<void> {
      await db
        .updateTable('users')
        .set({
          first_name: info.firstName,
          last_name: info.lastName,
          email: info.email,
          mobile_phone: info.mobilePhone,
          primary_phone: info.primaryPhone,
        })
        .where('id', '=', id)
        .execute();
    },
    /**
     * STAGED or DEPROVISIONED → PROVISIONED with no password and no recovery question: the user
     * enrolls from the start with a new activation link. False if the user was in another status.
     */
    async markProvisioned(id: string, from: readonly UserStatus[], now: number): Promise<boolean> {
      const r = await db
        .updateTable('users')
        .set({
          status: 'PROVISIONED',
          status_changed_at: now,
          password_hash: null,
          password_changed_at: null,
          recovery_question: null,
          recovery_answer_hash: null,
          failed_attempts: 0,
          lockout_count: 0,
          locked_at: null,
        })
        .where('id', '=', id)
        .where('status', 'in', [...from])
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Local → federated (the firm's identity provider signs the user in): the password and the
     * recovery question go, any lockout ends and the user is ACTIVE. A user is never both (FAQ).
     * False if the user was not local or not in one of `from`.
     */
    async switchToFederated(id: string, from: readonly UserStatus[], now: number): Promise<boolean> {
      const r = await db
        .updateTable('users')
        .set({
          auth_mode: 'federated',
          status: 'ACTIVE',
          status_changed_at: now,
          password_hash: null,
          password_changed_at: null,
          recovery_question: null,
          recovery_answer_hash: null,
          failed_attempts: 0,
          lockout_count: 0,
          locked_at: null,
        })
        .where('id', '=', id)
        .where('auth_mode', '=', 'local')
        .where('status', 'in', [...from])
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Federated → local: PROVISIONED, so the user enrolls (password, recovery question, a factor)
     * with an activation link. False if the user was not federated or not in one of `from`.
     */
    async switchToLocal(id: string, from: readonly UserStatus[], now: number): Promise<boolean> {
      const r = await db
        .updateTable('users')
        .set({ auth_mode: 'local', status: 'PROVISIONED', status_changed_at: now, activated_at: null })
        .where('id', '=', id)
        .where('auth_mode', '=', 'federated')
        .where('status', 'in', [...from])
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /**
     * Deletes a DEPROVISIONED user for good (Okta: delete only after deactivate); what hangs off
     * the user goes with it (foreign keys cascade). The audit log keeps its events.
     */
    async deleteDeprovisionedUser(id: string): Promise<boolean> {
      const r = await db
        .deleteFrom('users')
        .where('id', '=', id)
        .where('status', '=', 'DEPROVISIONED')
        .executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },
    async listRoles(userId: string): Promise<Role[]> {
      const rows = await db.selectFrom('user_roles').select('role').where('user_id', '=', userId).execute();
      return rows.map((r) => r.role as Role).sort();
    },
    async assignApp(userId: string, app: App, now: number): Promise<void> {
      await db
        .insertInto('app_assignments')
        .values({ user_id: userId, app, assigned_at: now })
        .onConflict((oc) => oc.doNothing())
        .execute();
    },
    /** Removes an app assignment; true if there was one. */
    async unassignApp(userId: string, app: App): Promise<boolean> {
      const r = await db
        .deleteFrom('app_assignments')
        .where('user_id', '=', userId)
        .where('app', '=', app)
        .executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },
    async listApps(userId: string): Promise<App[]> {
      const rows = await db.selectFrom('app_assignments').select('app').where('user_id', '=', userId).execute();
      return rows.map((r) => r.app as App).sort();
    },
  };
}
export type UserRepository = ReturnType<typeof createUserRepository>;
