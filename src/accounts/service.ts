import { issueEmailLink } from '../authn/email-links.ts';
import type { Config, EnvironmentConfig } from '../config/schema.ts';
import type { Repositories, Store } from '../db/store.ts';
import type { Firm } from '../firms/repository.ts';
import type { Clock, RandomBytes } from '../lib/tokens.ts';
import { createId } from '../lib/tokens.ts';
import type { Notifier } from '../mail/notifications.ts';
import type { EnrollmentOccasion } from '../mail/templates.ts';
import type { App, Role } from './model.ts';
import type { UserRow } from './repository.ts';

export interface ProvisionInput {
  email: string;
  firstName: string;
  lastName: string;
  firmId: string;
  roles?: Role[];
  apps?: App[];
  /**
   * False: create the user STAGED, without an activation link or email (Okta's `activate=false`);
   * the administration service's `activateUser` provisions them later. Default true.
   */
  activate?: boolean;
  /** Who did it, for the audit log (null: the system, e.g. the first start). */
  actorId?: string | null;
  /** More for the audit event of the creation (e.g. the request it came from). */
  auditDetails?: Record<string, unknown>;
  ip?: string | null;
  userAgent?: string | null;
}

export type ProvisionFailure = {
  ok: false;
  code: 'USER_EXISTS' | 'FIRM_NOT_FOUND' | 'INVALID_EMAIL' | 'INVALID_NAME';
  message: string;
};

export type ProvisionResult = { ok: true; user: UserRow; activationUrl: string; expiresAt: number } | ProvisionFailure;

/** What `provisionUserIn` gives: with `activate: false` the user is STAGED and nothing was sent. */
export type CreateUserResult =
  | { ok: true; user: UserRow; activationUrl: string | null; expiresAt: number | null }
  | ProvisionFailure;

// A practical email check (RFC 5321 lengths, one @, a dot in the domain); delivery proves the rest.
const EMAIL = /^[^\s@,;:<>()[\]\\"]{1,64}@[^\s@,;:<>()[\]\\"]+\.[^\s@,;:<>()[\]\\"]+$/;

/** Whether an address passes the check usernames and email addresses get (lower-case it first). */
export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL.test(email);
}

/** Account lifecycle operations that span several repositories and send mail. */
export function createAccountService(deps: {
  store: Store;
  config: Readonly<Config>;
  environment: Readonly<EnvironmentConfig>;
  clock: Clock;
  random: RandomBytes;
  notifier: Notifier;
}) {
  const { store, clock, random } = deps;

  /**
   * Issues a fresh activation link (30 days, single-use, stored hashed) and mails it; old links stop
   * working. `occasion` words the email for a user who is not new (see the enrollment template).
   */
  async function issueActivation(repos: Repositories, user: UserRow, occasion?: EnrollmentOccasion) {
    const link = await issueEmailLink(repos, {
      userId: user.id,
      purpose: 'activation',
      ttlMs: deps.config.policy.activationTtlDays * 86_400_000,
      now: clock(),
      random,
      url: (token) => `${deps.environment.idp.publicUrl}/activate?token=${encodeURIComponent(token)}`,
    });
    await deps.notifier.enrollment(
      repos,
      user,
      link.url,
      link.expiresAt,
      deps.config.policy.activationTtlDays,
      occasion,
    );
    return { activationUrl: link.url, expiresAt: link.expiresAt };
  }

  async function provisionUserIn(repos: Repositories, input: ProvisionInput): Promise<CreateUserResult> {
    const email = input.email.trim().toLowerCase();
    if (email.length > 254 || !EMAIL.test(email)) {
      return { ok: false, code: 'INVALID_EMAIL', message: `"${input.email}" is not a valid email address.` };
    }
    const first = input.firstName.trim();
    const last = input.lastName.trim();
    if (!first || !last || first.length > 100 || last.length > 100) {
      return {
        ok: false,
        code: 'INVALID_NAME',
        message: 'First and last names are required (at most 100 characters).',
      };
    }
    if (!(await repos.firms.findFirmById(input.firmId))) {
      return { ok: false, code: 'FIRM_NOT_FOUND', message: 'No such firm.' };
    }
    if (await repos.users.findUserByLogin(email)) {
      return { ok: false, code: 'USER_EXISTS', message: `A user with username ${email} already exists.` };
    }
    const activate = input.activate ?? true;
    const now = clock();
    const user: UserRow = {
      id: createId('00u', random),
      firm_id: input.firmId,
      login: email,
      email,
      first_name: first,
      last_name: last,
      mobile_phone: null,
      primary_phone: null,
      preferences: '{}',
      status: activate ? 'PROVISIONED' : 'STAGED',
      auth_mode: 'local',
      password_hash: null,
      password_changed_at: null,
      recovery_question: null,
      recovery_answer_hash: null,
      failed_attempts: 0,
      lockout_count: 0,
      locked_at: null,
      last_login_at: null,
      last_factor_type: null,
      created_at: now,
      activated_at: null,
      status_changed_at: now,
    };
    await repos.users.createUser(user);
    for (const role of new Set<Role>(['user', ...(input.roles ?? [])])) await repos.users.grantRole(user.id, role);
    for (const app of new Set<App>(input.apps ?? ['portal'])) await repos.users.assignApp(user.id, app, now);
    const link = activate ? await issueActivation(repos, user) : { activationUrl: null, expiresAt: null };
    await repos.audit.recordEvent({
      at: now,
      actorId: input.actorId ?? null,
      action: 'user.lifecycle.create',
      targetId: user.id,
      outcome: 'success',
      ip: input.ip ?? null,
      userAgent: input.userAgent ?? null,
      details: {
        login: email,
        firmId: input.firmId,
        roles: input.roles ?? [],
        apps: input.apps ?? ['portal'],
        ...(activate ? {} : { status: 'STAGED' }),
        ...input.auditDetails,
      },
    });
    return { ok: true, user, ...link };
  }

  return {
    /**
     * Issues a new enrollment email to a user who has not activated yet; the previous link stops
     * working at once.
     */
    async resendEnrollment(userId: string, actorId: string | null = null) {
      return store.transaction(async (repos) => {
        const user = await repos.users.findUserById(userId);
        if (user?.status !== 'PROVISIONED')
          throw new Error('Only a user who has not activated can be re-sent enrollment');
        const link = await issueActivation(repos, user);
        await repos.audit.recordEvent({
          at: clock(),
          actorId,
          action: 'user.lifecycle.reactivate',
          targetId: user.id,
          outcome: 'success',
          ip: null,
          userAgent: null,
          details: { resend: true },
        });
        return link;
      });
    },

    /**
     * Support or Operations unlocks a locked account, whatever the lockout count (the only way
     * after 10 lockouts in a row). Audited with the actor.
     */
    async unlockBySupport(userId: string, actorId: string | null = null): Promise<'unlocked' | 'not-locked'> {
      const now = clock();
      return store.transaction(async (repos) => {
        const unlocked = await repos.users.unlockUser(userId, now, Number.MAX_SAFE_INTEGER);
        await repos.users.clearLockouts(userId);
        await repos.audit.recordEvent({
          at: now,
          actorId,
          action: 'user.account.unlock_by_admin',
          targetId: userId,
          outcome: unlocked ? 'success' : 'failure',
          ip: null,
          userAgent: null,
          details: unlocked ? {} : { reason: 'not locked' },
        });
        return unlocked ? 'unlocked' : 'not-locked';
      });
    },

    async createFirm(name: string): Promise<{ ok: true; firm: Firm } | { ok: false; message: string }> {
      const trimmed = name.trim();
      if (trimmed.length < 2 || trimmed.length > 200)
        return { ok: false, message: 'A firm name has 2 to 200 characters.' };
      if (await store.repos.firms.findFirmByName(trimmed))
        return { ok: false, message: `Firm "${trimmed}" already exists.` };
      const firm: Firm = { id: createId('fir', random), name: trimmed, created_at: clock() };
      await store.transaction(async (repos) => {
        await repos.firms.createFirm(firm);
        await repos.audit.recordEvent({
          at: firm.created_at,
          actorId: null,
          action: 'firm.create',
          targetId: firm.id,
          outcome: 'success',
          ip: null,
          userAgent: null,
          details: { name: firm.name },
        });
      });
      return { ok: true, firm };
    },

    /**
     * Issues a new activation link and enrollment email inside the caller's transaction (the
     * administration service's resend, reactivation and switch to local sign-in); earlier links stop
     * working.
     */
    issueActivationIn: issueActivation,

    /**
     * Creates a user in PROVISIONED status with roles and apps and sends the enrollment email,
     * all in one transaction: no user without their email, no email without the user.
     */
    async provisionUser(input: Omit<ProvisionInput, 'activate'>): Promise<ProvisionResult> {
      const email = input.email.trim().toLowerCase();
      try {
        const made = await store.transaction((repos) => provisionUserIn(repos, { ...input, activate: true }));
        if (made.ok && made.activationUrl === null) throw new Error('an activated user has an activation link');
        return made as ProvisionResult;
      } catch (err) {
        // Two creations racing for one username: the unique index decides, the loser gets a clear answer.
        if (await store.repos.users.findUserByLogin(email)) {
          return { ok: false, code: 'USER_EXISTS', message: `A user with username ${email} already exists.` };
        }
        throw err;
      }
    },

    /**
     * `provisionUser` inside the caller's transaction (an approved request creates the user and
     * decides the request atomically). A race on the username makes the transaction fail; the
     * caller's catch can look the login up as `provisionUser` does.
     */
    provisionUserIn,
  };
}
export type AccountService = ReturnType<typeof createAccountService>;
