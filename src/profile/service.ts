import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { type App, parsePreferences, type Role, wantsAutoPush } from '../accounts/model.ts';
import type { UserRow } from '../accounts/repository.ts';
import { createUserEventRecorder } from '../audit/record.ts';
import { checkNewPassword, checkRecoveryAnswer, normalizeRecoveryAnswer } from '../authn/factors/password/policy.ts';
import { deleteFactorWithCompanions, factorsRemovedWith, PUSH } from '../authn/factors/push/push.ts';
import type { FactorRow } from '../authn/factors/repository.ts';
import { isRetiredFactorType, notEnrollableMessage, retirementLabel, usableFactors } from '../authn/factors/retired.ts';
import type { AssertionInput, RegistrationInput } from '../authn/factors/webauthn/ceremony.ts';
import {
  createFastPass,
  fastPassMessage,
  fastPassName,
  SIGN_COUNT_MESSAGE,
  WEBAUTHN,
} from '../authn/factors/webauthn/fastpass.ts';
import type { WebAuthnSupport } from '../authn/factors/webauthn/relying-party.ts';
import { bindingOfSession } from '../authn/factors/webauthn/repository.ts';
import {
  type AuthnDeps,
  type EnrollableFactor,
  type Enrollment,
  enrollableFactors,
  orderFactors,
  type RequestContext,
  webAuthnSupportOf,
} from '../authn/service.ts';
import type { SessionRow } from '../authn/token-repository.ts';
import type { Firm } from '../firms/repository.ts';
import { type ActivityEntry, describeActivity } from './describe.ts';

/** Sensitive changes need a factor verified this recently in the session (issue #3: 5 minutes). */
export const REVERIFY_WINDOW_MS = 5 * 60_000;

/** More methods than this is a mistake or abuse, not redundancy. */
export const MAX_FACTORS = 10;

/** Phone numbers: optional, at most 40 characters (issue #3). */
export const PHONE_MAX_LENGTH = 40;

const TOTP = 'token:software:totp';

/** The factor types "Verify it's you" accepts: a code, or FastPass. */
const VERIFIABLE = [TOTP, WEBAUTHN.factorType];

/** The profile checks and changes the credentials sign-in checks, with the same services. */
export type ProfileDeps = AuthnDeps;

/** The signed-in user and the session the request came with. */
export interface Who {
  user: UserRow;
  session: SessionRow;
}

/** Problems with a form, keyed by the field they belong to. */
export type FieldErrors<F extends string> = Partial<Record<F, string>>;

/**
 * What a change came to. `signed-out`: too many wrong codes or passwords in this session, which
 * has ended (the per-session limit of issue #3 until authn exposes its lockout path).
 */
export type ChangeResult<F extends string> =
  | { kind: 'done' }
  | { kind: 'invalid'; errors: FieldErrors<F> }
  | { kind: 'signed-out' };

/** Everything the profile dashboard shows. */
export interface Dashboard {
  firm: Firm | undefined;
  roles: Role[];
  apps: App[];
  /** ACTIVE factors, oldest first, retired ones (imported SMS, voice) included. */
  factors: FactorRow[];
  /** How many of them sign-in offers (not retired). */
  usableCount: number;
  /** The mark of a retired factor: "retired since 2025-12-31". */
  retirementLabel: string;
  /** The phone numbers of retired SMS and voice-call factors, by factor id. */
  phoneNumbers: Map<string, string>;
  sessions: SessionRow[];
  activity: ActivityEntry[];
  preferences: Preferences;
}

export interface Preferences {
  /** "Send push automatically" (FAQ): applies once Okta Verify push is enrolled. */
  autoPush: boolean;
}

/** A TOTP enrollment waiting for its first code: what the setup page shows, as at sign-in. */
export type PendingEnrollment = Enrollment;

/** A FastPass enrollment waiting for its registration: the factor and the browser's options. */
export interface PendingFastPass {
  factor: FactorRow;
  options: PublicKeyCredentialCreationOptionsJSON;
}

// Digits, spaces, + - ( ) and x for an extension ("+1 (212) 555-0100 x12").
const PHONE = /^[0-9 +\-()xX]*$/;

/**
 * Checks a phone number a user typed: empty means none (null); otherwise at most 40 characters of
 * digits, spaces, `+`, `-`, `(`, `)` and `x` for an extension, with at least one digit.
 */
export function parsePhone(raw: string): { ok: true; value: string | null } | { ok: false; message: string } {
  const value = raw.trim().replace(/\s+/g, ' ');
  if (value === '') return { ok: true, value: null };
  if (value.length > PHONE_MAX_LENGTH) {
    return { ok: false, message: `Use at most ${PHONE_MAX_LENGTH} characters.` };
  }
  if (!PHONE.test(value) || !/[0-9]/.test(value)) {
    return {
      ok: false,
      message: 'Use digits, spaces, + - ( ) and x before an extension, for example +1 (212) 555-0100 x12.',
    };
  }
  return { ok: true, value };
}

/** A name that tells a second app of the same kind apart: "Google Authenticator 2". */
export function nameForNewFactor(label: string, taken: readonly string[]): string {
  if (!taken.includes(label)) return label;
  for (let n = 2; ; n++) {
    const name = `${label} ${n}`;
    if (!taken.includes(name)) return name;
  }
}

/**
 * The MFA profile's domain logic: contact details, security methods with re-verification,
 * password and recovery question, sessions, activity and preferences. Every change is audited
 * with the user as actor; security changes also queue the account-activity email in the same
 * transaction (DESIGN, "notifications").
 */
export function createProfileService(deps: ProfileDeps) {
  const { store, policy, clock, random, seeds, passwords, notifier } = deps;
  // A setup page stays usable as long as a sign-in enrollment would (a transaction's lifetime).
  const pendingTtl = policy.transactionMinutes * 60_000;
  const audit = createUserEventRecorder(clock);
  const fastPass = createFastPass({ support: webAuthnSupportOf(deps), clock, random });

  /** Ends this session (a locked account, or a guesser holding a session). */
  async function endSession(who: Who, ctx: RequestContext, reason: string): Promise<void> {
    await store.transaction(async (repos) => {
      await repos.tokens.revokeSession(who.session.id_hash, clock());
      await audit(repos, ctx, 'user.session.end', 'success', who.user.id, { reason });
    });
  }

  async function loadPending(userId: string, factorId: string): Promise<FactorRow | undefined> {
    const factor = await store.repos.factors.findFactor(userId, factorId);
    if (
      factor?.status !== 'PENDING_ACTIVATION' ||
      factor.factor_type !== TOTP ||
      !factor.secret_enc ||
      clock() - factor.created_at > pendingTtl
    ) {
      return undefined;
    }
    return factor;
  }

  async function loadPendingFastPass(userId: string, factorId: string): Promise<FactorRow | undefined> {
    const factor = await store.repos.factors.findFactor(userId, factorId);
    if (
      factor?.status !== 'PENDING_ACTIVATION' ||
      factor.factor_type !== WEBAUTHN.factorType ||
      clock() - factor.created_at > pendingTtl
    ) {
      return undefined;
    }
    return factor;
  }

  /** A verification that passed: the 5-minute window restarts, audited. */
  async function markVerified(who: Who, factor: FactorRow, ctx: RequestContext, now: number): Promise<void> {
    await store.repos.users.releaseAttempt(who.user.id);
    await store.transaction(async (repos) => {
      await repos.tokens.markSessionVerified(who.session.id_hash, now);
      await audit(repos, ctx, 'user.authentication.reverify', 'success', who.user.id, {
        factorId: factor.id,
        factorType: `${factor.factor_type}:${factor.provider}`,
      });
    });
  }

  const codeMessage = (reason: 'INVALID_FORMAT' | 'INVALID_CODE' | 'CODE_REUSED') =>
    reason === 'INVALID_FORMAT'
      ? 'Enter the six-digit code your app shows.'
      : reason === 'CODE_REUSED'
        ? 'This code was already used. Wait for the next code and try again.'
        : "Your passcode doesn't match our records. Please try again.";

  return {
    /** The user a session belongs to, if the account may still use the profile. */
    async findSignedInUser(session: SessionRow): Promise<UserRow | undefined> {
      const user = await store.repos.users.findUserById(session.user_id);
      return user && user.status !== 'SUSPENDED' && user.status !== 'DEPROVISIONED' ? user : undefined;
    },

    /** Whether the session verified a factor within {@link REVERIFY_WINDOW_MS}. */
    isRecentlyVerified(session: SessionRow): boolean {
      return clock() - session.verified_at <= REVERIFY_WINDOW_MS;
    },

    async dashboard(who: Who): Promise<Dashboard> {
      const repos = store.repos;
      const { user } = who;
      const [firm, roles, apps, factors, sessions, events] = await Promise.all([
        repos.firms.findFirmById(user.firm_id),
        repos.users.listRoles(user.id),
        repos.users.listApps(user.id),
        repos.factors.listActiveFactors(user.id),
        repos.tokens.listActiveSessions(user.id, clock()),
        repos.audit.listEvents({ targetId: user.id, limit: 200 }),
      ]);
      // Everything about the account that the user would recognise, including what support or the
      // system did to it (a lockout); ACTIONS in describe.ts decides what is shown.
      const activity = events
        .map(describeActivity)
        .filter((e): e is ActivityEntry => e !== undefined)
        .slice(0, 25);
      const phoneNumbers = factors.some((f) => isRetiredFactorType(f.factor_type))
        ? await repos.factors.listPhoneNumbers(user.id)
        : new Map<string, string>();
      return {
        firm,
        roles,
        apps,
        factors,
        usableCount: usableFactors(factors).length,
        retirementLabel: retirementLabel(policy, clock()),
        phoneNumbers,
        sessions,
        activity,
        preferences: { autoPush: wantsAutoPush(user) },
      };
    },

    /** Whether FastPass can be added here, and why not when it cannot. */
    webauthnSupport: fastPass.support as WebAuthnSupport,

    /** The methods "Add a security method" offers. */
    enrollableFactors: (): EnrollableFactor[] => enrollableFactors(fastPass.support),

    /** `policy.retiredFactorsDate`, for the pages' wording. */
    retiredFactorsDate: policy.retiredFactorsDate,

    /** The factors the "Verify it's you" step offers (codes and FastPass), the one used last first. */
    async verificationFactors(user: UserRow): Promise<FactorRow[]> {
      const factors = usableFactors(await store.repos.factors.listActiveFactors(user.id)).filter((f) =>
        VERIFIABLE.includes(f.factor_type),
      );
      return orderFactors(factors, user.last_factor_type);
    },

    /**
     * The options for "Verify it's you" with FastPass: a challenge bound to this session, reused
     * while it has time left (a reload), undefined if the factor is not this user's FastPass.
     */
    async reverifyOptions(who: Who, factorId: string): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
      const factor = await store.repos.factors.findFactor(who.user.id, factorId);
      if (factor?.status !== 'ACTIVE' || factor.factor_type !== WEBAUTHN.factorType) return undefined;
      return fastPass.authenticationOptions(
        store.repos,
        bindingOfSession(who.session.id_hash),
        who.user,
        factor,
        false,
      );
    },

    /**
     * "Verify it's you" with FastPass: the assertion must answer this session's challenge (single
     * use) with user verification and a counter above the last one; failures count toward the
     * lockout like wrong codes, and a counter going backwards alerts the user by email.
     */
    async reverifyWithFastPass(
      who: Who,
      factorId: string,
      assertion: AssertionInput,
      ctx: RequestContext,
    ): Promise<{ kind: 'verified' } | { kind: 'retry'; error: string } | { kind: 'signed-out' }> {
      const { user } = who;
      const factor = await store.repos.factors.findFactor(user.id, factorId);
      if (factor?.status !== 'ACTIVE' || factor.factor_type !== WEBAUTHN.factorType) {
        return { kind: 'retry', error: 'Choose one of your security methods.' };
      }
      const attempt = await deps.attempts.reserve(user.id);
      if (attempt === null) {
        await endSession(who, ctx, 'too many failed attempts');
        return { kind: 'signed-out' };
      }
      const checked = await fastPass.checkAssertion(
        store.repos,
        bindingOfSession(who.session.id_hash),
        factor,
        assertion,
      );
      const factorKey = `${factor.factor_type}:${factor.provider}`;
      if (checked.ok) {
        const now = clock();
        if (
          await store.repos.factors.webauthn.advanceSignCount(
            factor.id,
            checked.credential.sign_count,
            checked.signCount,
          )
        ) {
          await store.repos.factors.markFactorUsed(factor.id, now);
          await markVerified(who, factor, ctx, now);
          return { kind: 'verified' };
        }
        await store.repos.users.releaseAttempt(user.id);
        return { kind: 'retry', error: fastPassMessage('CHALLENGE') };
      }
      const details: Record<string, unknown> = { factorId: factor.id, factorType: factorKey, reason: checked.reason };
      if (checked.reason === 'SIGN_COUNT_REGRESSED') {
        Object.assign(details, { stored: checked.stored, reported: checked.reported });
        await store.transaction(async (repos) => {
          await audit(repos, ctx, 'user.mfa.factor.suspected_clone', 'denied', user.id, details);
          await notifier.signCounterRegressed(repos, user, factor.name, ctx);
        });
      }
      const locked = await deps.attempts.recordFailure(user.id, attempt, ctx, 'user.authentication.reverify', details);
      if (locked) {
        await endSession(who, ctx, "account locked after failed FastPass checks at 'Verify it's you'");
        return { kind: 'signed-out' };
      }
      return {
        kind: 'retry',
        error: checked.reason === 'SIGN_COUNT_REGRESSED' ? SIGN_COUNT_MESSAGE : fastPassMessage(checked.reason),
      };
    },

    /**
     * "Verify it's you": a current code of an enrolled factor restarts the re-verification window.
     * The code's step is marked used atomically (RFC 6238 §5.2), so a code seen once, for example
     * over the user's shoulder at sign-in, does not work here.
     */
    async reverify(
      who: Who,
      factorId: string,
      passCode: string,
      ctx: RequestContext,
    ): Promise<{ kind: 'verified' } | { kind: 'retry'; error: string } | { kind: 'signed-out' }> {
      const { user } = who;
      const factor = await store.repos.factors.findFactor(user.id, factorId);
      if (factor?.status !== 'ACTIVE' || factor.factor_type !== TOTP || !factor.secret_enc) {
        return { kind: 'retry', error: 'Choose one of your security methods.' };
      }
      // A blank or malformed entry is not a guess: it does not count against the limit.
      if (!/^\d{6}$/.test(passCode.replace(/\s+/g, ''))) return { kind: 'retry', error: codeMessage('INVALID_FORMAT') };
      const attempt = await deps.attempts.reserve(user.id);
      if (attempt === null) {
        await endSession(who, ctx, 'too many failed attempts');
        return { kind: 'signed-out' };
      }
      const now = clock();
      const check = seeds.verify({ ...factor, secret_enc: factor.secret_enc }, passCode, now);
      const accepted = check.ok && (await store.repos.factors.markTotpStepUsed(factor.id, check.step, now));
      const factorKey = `${factor.factor_type}:${factor.provider}`;
      if (accepted) {
        await markVerified(who, factor, ctx, now);
        return { kind: 'verified' };
      }
      const reason = check.ok ? 'CODE_REUSED' : check.reason;
      // Same counter and lockout as sign-in: the fifth wrong code locks the account.
      const locked = await deps.attempts.recordFailure(user.id, attempt, ctx, 'user.authentication.reverify', {
        factorId: factor.id,
        factorType: factorKey,
        reason,
      });
      if (locked) {
        await endSession(who, ctx, "account locked after wrong codes at 'Verify it's you'");
        return { kind: 'signed-out' };
      }
      return { kind: 'retry', error: codeMessage(reason) };
    },

    /** Mobile and primary phone: no re-verification (issue #3); audited when something changed. */
    async updateContactDetails(
      who: Who,
      input: { mobilePhone: string; primaryPhone: string },
      ctx: RequestContext,
    ): Promise<ChangeResult<'mobilePhone' | 'primaryPhone'>> {
      const mobile = parsePhone(input.mobilePhone);
      const primary = parsePhone(input.primaryPhone);
      if (!mobile.ok || !primary.ok) {
        const errors: FieldErrors<'mobilePhone' | 'primaryPhone'> = {};
        if (!mobile.ok) errors.mobilePhone = mobile.message;
        if (!primary.ok) errors.primaryPhone = primary.message;
        return { kind: 'invalid', errors };
      }
      const { user } = who;
      const changed = [
        ...(mobile.value !== user.mobile_phone ? ['mobilePhone'] : []),
        ...(primary.value !== user.primary_phone ? ['primaryPhone'] : []),
      ];
      if (!changed.length) return { kind: 'done' };
      await store.transaction(async (repos) => {
        await repos.users.updateContactDetails(user.id, { mobilePhone: mobile.value, primaryPhone: primary.value });
        await audit(repos, ctx, 'user.account.update_profile', 'success', user.id, { changed });
      });
      return { kind: 'done' };
    },

    /** "Send push automatically", kept beside any other preference in `users.preferences`. */
    async setAutoPush(who: Who, autoPush: boolean, ctx: RequestContext): Promise<void> {
      const { user } = who;
      const current = parsePreferences(user.preferences);
      if ((current.autoPush === true) === autoPush) return;
      await store.transaction(async (repos) => {
        await repos.users.setPreferences(user.id, { ...current, autoPush });
        await audit(repos, ctx, 'user.account.update_preferences', 'success', user.id, { autoPush });
      });
    },

    /**
     * Starts adding a TOTP method: a new PENDING_ACTIVATION factor with a fresh seed, sealed at
     * rest. It becomes ACTIVE only with a correct code ({@link activateEnrollment}).
     */
    async startEnrollment(
      who: Who,
      provider: string,
      ctx: RequestContext,
      factorType?: string,
    ): Promise<{ kind: 'started'; factorId: string } | { kind: 'invalid'; error: string }> {
      // FAQ: an account signs in through its firm or locally, never both; a federated user's
      // methods are the firm's (issue #8).
      if (who.user.auth_mode !== 'local') {
        return {
          kind: 'invalid',
          error: "Your account signs in through your firm's single sign-on: your firm manages its sign-in methods.",
        };
      }
      if (factorType && isRetiredFactorType(factorType)) {
        return { kind: 'invalid', error: notEnrollableMessage(factorType, policy) };
      }
      if (provider === WEBAUTHN.provider && !fastPass.support.available) {
        return { kind: 'invalid', error: `FastPass is not offered here. ${fastPass.support.reason}` };
      }
      const choice = enrollableFactors(fastPass.support).find(
        (f) => f.provider === provider && (factorType ? f.factorType === factorType : f.factorType !== PUSH.factorType),
      );
      if (choice?.factorType === PUSH.factorType && !deps.push)
        return { kind: 'invalid', error: 'Push is not offered here.' };
      if (!choice) return { kind: 'invalid', error: 'Choose one of the methods below.' };
      const { user } = who;
      const now = clock();
      return store.transaction(async (repos) => {
        // One setup at a time, as at sign-in: an abandoned one is dropped.
        await repos.factors.deletePendingFactors(user.id);
        const existing = await repos.factors.listActiveFactors(user.id);
        if (existing.length >= MAX_FACTORS) {
          return {
            kind: 'invalid' as const,
            error: `You can have at most ${MAX_FACTORS} security methods. Remove one you no longer use first.`,
          };
        }
        const webauthn = choice.factorType === WEBAUTHN.factorType;
        const name = nameForNewFactor(
          webauthn ? fastPassName(ctx.userAgent) : choice.label,
          existing.map((f) => f.name),
        );
        const push = choice.factorType === PUSH.factorType ? deps.push : undefined;
        const factor = webauthn
          ? fastPass.pendingFactor(user.id, name, now)
          : push
            ? push.pendingFactor(user.id, now)
            : seeds.pendingFactor(
                { userId: user.id, factorType: choice.factorType, provider: choice.provider, name },
                random,
                now,
              );
        await repos.factors.createFactor(factor);
        if (push) await push.issueActivation(repos, factor, now);
        await audit(repos, ctx, 'user.mfa.factor.enroll_started', 'success', user.id, {
          factorId: factor.id,
          provider: choice.provider,
          via: 'profile',
        });
        return { kind: 'started' as const, factorId: factor.id };
      });
    },

    /** The QR code's URI and the setup key of a pending factor of this user, if still valid. */
    async pendingEnrollment(who: Who, factorId: string): Promise<PendingEnrollment | undefined> {
      const factor = await loadPending(who.user.id, factorId);
      if (!factor?.secret_enc) return undefined;
      return { factor, ...seeds.describe({ id: factor.id, secret_enc: factor.secret_enc }, who.user.login) };
    },

    /**
     * Confirms a pending factor with a current code: PENDING_ACTIVATION → ACTIVE with the code's
     * step recorded (no replay), the audit event and the "method added" email in one transaction.
     */
    async activateEnrollment(
      who: Who,
      factorId: string,
      passCode: string,
      ctx: RequestContext,
    ): Promise<{ kind: 'activated'; factor: FactorRow } | { kind: 'retry'; error: string } | { kind: 'gone' }> {
      const { user } = who;
      const factor = await loadPending(user.id, factorId);
      if (!factor?.secret_enc) return { kind: 'gone' };
      const now = clock();
      const check = seeds.verify({ ...factor, secret_enc: factor.secret_enc }, passCode, now);
      if (!check.ok) {
        if (check.reason !== 'INVALID_FORMAT') {
          await store.transaction((repos) =>
            audit(repos, ctx, 'user.mfa.factor.activate', 'failure', user.id, {
              factorId: factor.id,
              reason: check.reason,
              via: 'profile',
            }),
          );
        }
        return { kind: 'retry', error: codeMessage(check.reason) };
      }
      return store.transaction(async (repos) => {
        if (!(await repos.factors.activateFactor(factor.id, check.step, now))) return { kind: 'gone' as const };
        await audit(repos, ctx, 'user.mfa.factor.activate', 'success', user.id, {
          factorId: factor.id,
          provider: factor.provider,
          name: factor.name,
          via: 'profile',
        });
        await notifier.factorEnrolled(repos, user, factor, ctx);
        return { kind: 'activated' as const, factor };
      });
    },

    /**
     * A push factor of this user being set up: its live activation (link and code) while pending,
     * `enrolled` once `traqs-verify enroll` used it.
     */
    async pushSetup(
      who: Who,
      factorId: string,
    ): Promise<
      | { factor: FactorRow; enrolled: boolean; activation?: { code: string; link: string; expiresAt: number } }
      | undefined
    > {
      const factor = await store.repos.factors.findFactor(who.user.id, factorId);
      if (!deps.push || factor?.factor_type !== PUSH.factorType) return undefined;
      if (factor.status === 'ACTIVE') return { factor, enrolled: true };
      const activation = await deps.push.activationOf(store.repos, factor.id, clock());
      return { factor, enrolled: false, ...(activation ? { activation } : {}) };
    },

    /** Whether `factorId` is a pending FastPass of this user (the setup page to show). */
    async isPendingFastPass(who: Who, factorId: string): Promise<boolean> {
      return (await loadPendingFastPass(who.user.id, factorId)) !== undefined;
    },

    /** The options to register a pending FastPass factor, with a challenge bound to this session. */
    async pendingFastPass(who: Who, factorId: string): Promise<PendingFastPass | undefined> {
      const factor = await loadPendingFastPass(who.user.id, factorId);
      if (!factor) return undefined;
      const options = await fastPass.registrationOptions(
        store.repos,
        bindingOfSession(who.session.id_hash),
        who.user,
        factor,
      );
      return options ? { factor, options } : undefined;
    },

    /**
     * Registers a pending FastPass factor with the browser's answer to this session's challenge:
     * PENDING_ACTIVATION → ACTIVE with its credential, the audit event and the "method added" email
     * in one transaction.
     */
    async activateFastPass(
      who: Who,
      factorId: string,
      registration: RegistrationInput,
      ctx: RequestContext,
    ): Promise<{ kind: 'activated'; factor: FactorRow } | { kind: 'retry'; error: string } | { kind: 'gone' }> {
      const { user } = who;
      const factor = await loadPendingFastPass(user.id, factorId);
      if (!factor) return { kind: 'gone' };
      const checked = await fastPass.checkRegistration(
        store.repos,
        bindingOfSession(who.session.id_hash),
        factor,
        registration,
      );
      if (!checked.ok) {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.mfa.factor.activate', 'failure', user.id, {
            factorId: factor.id,
            reason: checked.reason,
            ...(checked.detail ? { detail: checked.detail } : {}),
            via: 'profile',
          }),
        );
        return { kind: 'retry', error: fastPassMessage(checked.reason) };
      }
      const now = clock();
      return store.transaction(async (repos) => {
        if (!(await repos.factors.activatePendingFactor(factor.id, now))) return { kind: 'gone' as const };
        await repos.factors.webauthn.saveCredential(checked.credential);
        await audit(repos, ctx, 'user.mfa.factor.activate', 'success', user.id, {
          factorId: factor.id,
          provider: factor.provider,
          name: factor.name,
          via: 'profile',
        });
        await notifier.factorEnrolled(repos, user, factor, ctx);
        return { kind: 'activated' as const, factor };
      });
    },

    /**
     * An ACTIVE factor of this user (never another user's), the factors removed with it (the other
     * half of Okta Verify) and whether nothing usable is left once they all go.
     */
    async removalPreview(
      who: Who,
      factorId: string,
    ): Promise<{ factor: FactorRow; alsoRemoved: FactorRow[]; isLast: boolean } | undefined> {
      const factors = await store.repos.factors.listActiveFactors(who.user.id);
      const factor = factors.find((f) => f.id === factorId);
      if (!factor) return undefined;
      const going = new Set(await factorsRemovedWith(store.repos, who.user.id, factorId));
      const alsoRemoved = factors.filter((f) => f.id !== factorId && going.has(f.id));
      // Only a method sign-in still offers can be the last one; a retired one goes freely.
      const usable = usableFactors(factors);
      const isLast = usable.some((f) => going.has(f.id)) && usable.every((f) => going.has(f.id));
      return { factor, alsoRemoved, isLast };
    },

    /**
     * Removes a method (a lost device), even the last one: the next sign-in then starts with
     * enrollment (FAQ: "remove the lost device from your MFA settings").
     */
    async removeFactor(
      who: Who,
      factorId: string,
      ctx: RequestContext,
    ): Promise<{ kind: 'removed'; factor: FactorRow; remaining: number } | { kind: 'not-found' }> {
      const { user } = who;
      const factor = await store.repos.factors.findFactor(user.id, factorId);
      if (factor?.status !== 'ACTIVE') return { kind: 'not-found' };
      const result = await store.transaction(async (repos) => {
        // Okta Verify's push and code factors go together, in this one transaction.
        const removed = await deleteFactorWithCompanions(repos, user.id, factor.id);
        if (!removed.length) return { kind: 'not-found' as const };
        const remaining = (await repos.factors.listActiveFactors(user.id)).length;
        const companions = removed.slice(1);
        await audit(repos, ctx, 'user.mfa.factor.deactivate', 'success', user.id, {
          factorId: factor.id,
          provider: factor.provider,
          name: factor.name,
          remaining,
          ...(companions.length
            ? { alsoRemoved: companions.map((f) => ({ factorId: f.id, provider: f.provider, name: f.name })) }
            : {}),
        });
        await notifier.factorRemoved(repos, user, removed.map((f) => f.name).join(', '), ctx);
        return { kind: 'removed' as const, factor, removed, remaining };
      });
      if (result.kind === 'removed') await deps.push?.factorsRemoved(result.removed);
      return result;
    },

    /**
     * Changes the password: the new one under the activation policy (NIST 800-63B §5.1.1.2), the
     * current one checked with Argon2id and counted like a sign-in attempt. Every other session and
     * sign-in in progress ends (OWASP ASVS 3.3.3); this session stays.
     */
    async changePassword(
      who: Who,
      input: { currentPassword: string; newPassword: string },
      ctx: RequestContext,
    ): Promise<ChangeResult<'currentPassword' | 'newPassword'>> {
      const { user } = who;
      const errors: FieldErrors<'currentPassword' | 'newPassword'> = {};
      if (!input.currentPassword) errors.currentPassword = 'Enter your current password.';
      const problems = input.newPassword
        ? checkNewPassword(input.newPassword, {
            minLength: policy.passwordMinLength,
            maxLength: policy.passwordMaxLength,
            username: user.login,
            blocklist: deps.blocklist,
          })
        : [{ message: 'Enter a new password.' }];
      if (problems.length) errors.newPassword = problems.map((p) => p.message).join(' ');
      if (errors.currentPassword || errors.newPassword) return { kind: 'invalid', errors };
      if (!user.password_hash) {
        return { kind: 'invalid', errors: { currentPassword: 'Your account has no password to change.' } };
      }

      const attempt = await deps.attempts.reserve(user.id);
      if (attempt === null) {
        await endSession(who, ctx, 'too many failed attempts');
        return { kind: 'signed-out' };
      }
      const check = await passwords.verify(user.password_hash, input.currentPassword);
      if (!check.ok) {
        const locked = await deps.attempts.recordFailure(user.id, attempt, ctx, 'user.account.update_password', {
          via: 'profile',
          reason: 'wrong current password',
        });
        if (locked) {
          await endSession(who, ctx, 'account locked after wrong passwords at password change');
          return { kind: 'signed-out' };
        }
        return { kind: 'invalid', errors: { currentPassword: 'Your current password is not correct.' } };
      }
      await store.repos.users.releaseAttempt(user.id);
      if (input.newPassword.normalize('NFKC') === input.currentPassword.normalize('NFKC')) {
        return { kind: 'invalid', errors: { newPassword: 'Choose a password different from your current one.' } };
      }
      const hash = await passwords.hash(input.newPassword);
      const now = clock();
      await store.transaction(async (repos) => {
        await repos.users.setPassword(user.id, hash, now);
        const ended = await repos.tokens.revokeUserSessions(user.id, now, who.session.id_hash);
        await repos.tokens.endUserTransactions(user.id, now);
        await audit(repos, ctx, 'user.account.update_password', 'success', user.id, {
          via: 'profile',
          otherSessionsEnded: ended,
        });
        await notifier.passwordChanged(repos, user, ctx);
      });
      return { kind: 'done' };
    },

    /**
     * Changes the recovery question under activation's rules: a question of 5 to 200 characters and
     * an answer of 4 to 100 (stored as an Argon2id hash of the normalised answer).
     */
    async changeRecoveryQuestion(
      who: Who,
      input: { question: string; answer: string },
      ctx: RequestContext,
    ): Promise<Exclude<ChangeResult<'question' | 'answer'>, { kind: 'signed-out' }>> {
      const { user } = who;
      const question = input.question.trim().replace(/\s+/g, ' ');
      const errors: FieldErrors<'question' | 'answer'> = {};
      if (question.length < 5) errors.question = 'Write a recovery question of at least 5 characters.';
      else if (question.length > 200) errors.question = 'Use at most 200 characters.';
      const problems = checkRecoveryAnswer(input.answer);
      if (problems.length) errors.answer = problems.map((p) => p.message).join(' ');
      if (errors.question || errors.answer) return { kind: 'invalid', errors };
      const answerHash = await passwords.hash(normalizeRecoveryAnswer(input.answer));
      await store.transaction(async (repos) => {
        await repos.users.setRecoveryQuestion(user.id, question, answerHash);
        await audit(repos, ctx, 'user.account.update_recovery_question', 'success', user.id);
        await notifier.recoveryQuestionChanged(repos, user, ctx);
      });
      return { kind: 'done' };
    },

    /** Signs out every other session of the user and ends their sign-ins in progress. */
    async signOutOtherSessions(who: Who, ctx: RequestContext): Promise<number> {
      const now = clock();
      return store.transaction(async (repos) => {
        const ended = await repos.tokens.revokeUserSessions(who.user.id, now, who.session.id_hash);
        await repos.tokens.endUserTransactions(who.user.id, now);
        await audit(repos, ctx, 'user.session.clear', 'success', who.user.id, { sessionsEnded: ended });
        return ended;
      });
    },
  };
}

export type ProfileService = ReturnType<typeof createProfileService>;
