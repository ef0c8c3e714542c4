import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { SIGN_IN_STATUSES, wantsAutoPush } from '../accounts/model.ts';
import type { UserRow } from '../accounts/repository.ts';
import { createUserEventRecorder } from '../audit/record.ts';
import type { PolicyConfig } from '../config/schema.ts';
import type { Repositories, Store } from '../db/store.ts';
import type { Clock, RandomBytes } from '../lib/tokens.ts';
import { createBearerSecret, hashBearerSecret } from '../lib/tokens.ts';
import type { Notifier } from '../mail/notifications.ts';
import type { OktaErrorName } from '../web/errors.ts';
import type { AttemptGuard } from './attempts.ts';
import type { EmailLinkPurpose } from './email-links.ts';
import type { PasswordHasher } from './factors/password/hashing.ts';
import { checkNewPassword, checkRecoveryAnswer, normalizeRecoveryAnswer } from './factors/password/policy.ts';
import { PUSH, type PushFactor } from './factors/push/push.ts';
import type { PushChallengeRow } from './factors/push/repository.ts';
import type { FactorRow } from './factors/repository.ts';
import {
  isRetiredFactorType,
  noLongerWorksMessage,
  notEnrollableMessage,
  retiredFactors,
  usableFactors,
} from './factors/retired.ts';
import type { SeedVault } from './factors/totp/seed.ts';
import type { AssertionInput, RegistrationInput } from './factors/webauthn/ceremony.ts';
import {
  createFastPass,
  type FastPass,
  fastPassMessage,
  fastPassName,
  SIGN_COUNT_MESSAGE,
  WEBAUTHN,
} from './factors/webauthn/fastpass.ts';
import { type WebAuthnSupport, webAuthnSupportFor } from './factors/webauthn/relying-party.ts';
import { bindingOfTransaction } from './factors/webauthn/repository.ts';
import type { TransactionRow } from './token-repository.ts';

/** Okta Authentication API transaction states that this system uses. */
export type TransactionStatus =
  | 'PASSWORD_RESET'
  | 'MFA_ENROLL'
  | 'MFA_ENROLL_ACTIVATE'
  | 'MFA_REQUIRED'
  | 'MFA_CHALLENGE'
  | 'RECOVERY';

/** Why a transaction exists; decides what PASSWORD_RESET asks for and where it leads. */
export type TransactionFlow = 'signin' | 'activation' | 'recovery_password' | 'recovery_unlock';

/** Factor types a user may enroll now; SMS and voice are retired (DESIGN, "retired factors"). */
export const ENROLLABLE_FACTORS = [
  { factorType: 'token:software:totp', provider: 'GOOGLE', label: 'Google Authenticator' },
  { factorType: 'token:software:totp', provider: 'OKTA', label: 'Okta Verify (code)' },
  { factorType: WEBAUTHN.factorType, provider: WEBAUTHN.provider, label: 'FastPass' },
  { factorType: PUSH.factorType, provider: PUSH.provider, label: 'Okta Verify (push)' },
] as const;
export type EnrollableFactor = (typeof ENROLLABLE_FACTORS)[number];

/** The factors that can be enrolled here: FastPass only where the browser can use WebAuthn. */
export function enrollableFactors(support: WebAuthnSupport): EnrollableFactor[] {
  return ENROLLABLE_FACTORS.filter((f) => f.factorType !== WEBAUTHN.factorType || support.available);
}

/**
 * The WebAuthn relying party sign-in and the profile use: the one given, or the idp public URL's
 * (the environment the attempt guard issues links for).
 */
export function webAuthnSupportOf(deps: Pick<AuthnDeps, 'webauthn' | 'attempts'>): WebAuthnSupport {
  const env = deps.attempts.environment;
  return deps.webauthn ?? webAuthnSupportFor(env.idp.publicUrl, `TRAQS ${env.label}`);
}

/** Who is asking: recorded in the audit log and in notification emails. */
export interface RequestContext {
  ip: string | null;
  userAgent: string | null;
  /**
   * A stable id of the browser (our device cookie) or API client (Okta's `context.deviceToken`),
   * for "new sign-in" notices; the user agent stands in when there is none.
   */
  deviceId?: string | undefined;
}

/** What sign-in needs; the profile, which checks and changes the same credentials, needs the same. */
export interface AuthnDeps {
  store: Store;
  policy: Readonly<PolicyConfig>;
  clock: Clock;
  random: RandomBytes;
  passwords: PasswordHasher;
  /** The TOTP seeds of every factor, and the codes checked against them. */
  seeds: SeedVault;
  blocklist: ReadonlySet<string>;
  notifier: Notifier;
  /** The consecutive-failure counter and lockout that every password and code check shares. */
  attempts: AttemptGuard;
  /**
   * The WebAuthn relying party (FastPass): the host and origin of the idp public URL. Absent, it is
   * derived from the environment of `attempts`.
   */
  webauthn?: WebAuthnSupport;
  /** Push with number matching (`traqs-verify`); without it push is neither offered nor accepted. */
  push?: PushFactor;
}

export interface Enrollment {
  factor: FactorRow;
  /** Base32 shared secret, for manual entry. */
  sharedSecret: string;
  otpauthUri: string;
}

export interface TransactionView {
  stateToken: string;
  expiresAt: number;
  status: TransactionStatus;
  flow: TransactionFlow;
  /** RECOVERY with the question policy: the user's recovery question. */
  recoveryQuestion?: string;
  user: UserRow;
  /** MFA_REQUIRED: the active factors, the one verified last first. */
  factors: FactorRow[];
  /** MFA_ENROLL_ACTIVATE: the factor being enrolled and its secret. */
  enrollment?: Enrollment;
  /** MFA_ENROLL_ACTIVATE for FastPass: the pending factor and the options for `credentials.create()`. */
  webauthnEnrollment?: { factor: FactorRow; options: PublicKeyCredentialCreationOptionsJSON };
  /** MFA_ENROLL_ACTIVATE for push: the pending factor and its activation code (absent once expired). */
  pushEnrollment?: { factor: FactorRow; activation?: { code: string; link: string; expiresAt: number } };
  /** MFA_CHALLENGE for push: the factor and the transaction's last push (status, correct number). */
  push?: { factor: FactorRow; challenge: PushChallengeRow | undefined };
  /** MFA_CHALLENGE: the FastPass factor challenged and the options for `credentials.get()`. */
  challenge?: { factor: FactorRow; options: PublicKeyCredentialRequestOptionsJSON };
  /** MFA_ENROLL: the user's retired enrollments (imported SMS, voice), which sign-in no longer offers. */
  retiredFactors?: FactorRow[];
  /** MFA_REQUIRED / MFA_CHALLENGE: the credential id of each FastPass factor (Okta's `profile.credentialId`). */
  credentialIds?: Map<string, string>;
}

export type AuthnResult =
  | { kind: 'transaction'; txn: TransactionView }
  | {
      kind: 'success';
      user: UserRow;
      amr: string[];
      factorType: string | null;
      /** Okta's one-time session token: exchanged for a browser session or at /v1/authorize. */
      sessionToken: string;
      expiresAt: number;
    }
  | { kind: 'locked'; user: UserRow | null }
  /** Self-service unlock completed: the account is unlocked; the user signs in next. */
  | { kind: 'unlocked'; user: UserRow }
  | { kind: 'error'; error: OktaErrorName; causes?: string[]; summary?: string };

const SESSION_TOKEN_TTL_MS = 5 * 60_000;
/** Reads that may record an event but have no request of their own (a timeout seen while viewing). */
const NO_CONTEXT: RequestContext = { ip: null, userAgent: null };

/** `last_factor_type` of a federated sign-in: `federated:saml` or `federated:oidc`. */
export const FEDERATED_FACTOR_PREFIX = 'federated:';

function fail(error: OktaErrorName, causes?: string[], summary?: string): AuthnResult {
  return { kind: 'error', error, ...(causes ? { causes } : {}), ...(summary ? { summary } : {}) };
}

/** Orders factors so the type the user verified with last comes first (DESIGN, "remembered choice"). */
export function orderFactors(factors: FactorRow[], lastType: string | null): FactorRow[] {
  const key = (f: FactorRow) => `${f.factor_type}:${f.provider}`;
  return [...factors].sort((a, b) => {
    const am = lastType === key(a) ? 0 : 1;
    const bm = lastType === key(b) ? 0 : 1;
    return am - bm || a.created_at - b.created_at;
  });
}

/**
 * The sign-in state machine behind both the Okta Authentication API and our HTML pages. It never
 * mints OAuth tokens; a successful sign-in ends in `{ user, amr }` and a one-time session token.
 */
export function createAuthnService(deps: AuthnDeps) {
  const { store, policy, clock, random, passwords, seeds } = deps;
  const ttl = policy.transactionMinutes * 60_000;
  const audit = createUserEventRecorder(clock);
  const fastPass: FastPass = createFastPass({ support: webAuthnSupportOf(deps), clock, random });

  /**
   * The transaction as the API and pages show it. `known` passes what the caller already read in
   * this request (the user, the active factors), so the hot sign-in path reads nothing twice.
   */
  async function view(
    repos: Repositories,
    stateToken: string,
    row: TransactionRow,
    known: { user?: UserRow; activeFactors?: FactorRow[] } = {},
  ): Promise<AuthnResult> {
    const user = known.user ?? (await repos.users.findUserById(row.user_id));
    if (!user) return fail('INVALID_TOKEN');
    const status = row.status as TransactionStatus;
    const flow = row.flow as TransactionFlow;
    const txn: TransactionView = { stateToken, expiresAt: row.expires_at, status, flow, user, factors: [] };
    if (status === 'RECOVERY' && user.recovery_question) txn.recoveryQuestion = user.recovery_question;
    if (status === 'MFA_REQUIRED' || status === 'MFA_CHALLENGE') {
      const active = known.activeFactors ?? (await repos.factors.listActiveFactors(user.id));
      txn.factors = orderFactors(usableFactors(active), user.last_factor_type);
      if (txn.factors.some((f) => f.factor_type === WEBAUTHN.factorType)) {
        const credentials = await repos.factors.webauthn.listCredentials(user.id);
        txn.credentialIds = new Map(credentials.map((c) => [c.factor_id, c.credential_id]));
      }
      const challenged = status === 'MFA_CHALLENGE' ? txn.factors.find((f) => f.id === row.factor_id) : undefined;
      if (challenged?.factor_type === WEBAUTHN.factorType) {
        const options = await fastPass.authenticationOptions(
          repos,
          bindingOfTransaction(row.token_hash),
          user,
          challenged,
          false,
        );
        if (options) txn.challenge = { factor: challenged, options };
      }
      if (challenged?.factor_type === PUSH.factorType && deps.push) {
        txn.push = { factor: challenged, challenge: await deps.push.current(row.token_hash, NO_CONTEXT) };
      }
    }
    if (status === 'MFA_ENROLL') {
      const active = known.activeFactors ?? (await repos.factors.listActiveFactors(user.id));
      const retired = retiredFactors(active);
      if (retired.length) txn.retiredFactors = retired;
    }
    if (status === 'MFA_ENROLL_ACTIVATE' && row.factor_id) {
      const factor = await repos.factors.findFactor(user.id, row.factor_id);
      if (factor?.factor_type === PUSH.factorType && deps.push) {
        const activation = await deps.push.activationOf(repos, factor.id, clock());
        txn.pushEnrollment = { factor, ...(activation ? { activation } : {}) };
      } else if (factor?.secret_enc) {
        txn.enrollment = { factor, ...seeds.describe({ id: factor.id, secret_enc: factor.secret_enc }, user.login) };
      } else if (factor?.factor_type === WEBAUTHN.factorType && factor.status === 'PENDING_ACTIVATION') {
        const options = await fastPass.registrationOptions(repos, bindingOfTransaction(row.token_hash), user, factor);
        if (options) txn.webauthnEnrollment = { factor, options };
      }
    }
    return { kind: 'transaction', txn };
  }

  async function startTransaction(
    repos: Repositories,
    user: UserRow,
    status: TransactionStatus,
    amr: string[],
    emailTokenHash: string | null = null,
    flow: TransactionFlow = 'signin',
    activeFactors?: FactorRow[],
    deviceHash: string | null = null,
  ): Promise<AuthnResult> {
    const stateToken = createBearerSecret(random);
    const now = clock();
    const row: TransactionRow = {
      token_hash: hashBearerSecret(stateToken),
      user_id: user.id,
      flow,
      status,
      factor_id: null,
      email_token_hash: emailTokenHash,
      amr: JSON.stringify(amr),
      attempts: 0,
      device_hash: deviceHash,
      created_at: now,
      expires_at: now + ttl,
      ended_at: null,
    };
    await repos.tokens.createTransaction(row);
    return view(repos, stateToken, row, { user, ...(activeFactors ? { activeFactors } : {}) });
  }

  /** The hash a stateToken is stored under, or undefined for what cannot be one. */
  function stateTokenHash(stateToken: unknown): string | undefined {
    if (typeof stateToken !== 'string' || stateToken.length < 20 || stateToken.length > 200) return undefined;
    return hashBearerSecret(stateToken);
  }

  async function loadTransaction(stateToken: unknown): Promise<TransactionRow | undefined> {
    const hash = stateTokenHash(stateToken);
    return hash === undefined ? undefined : store.repos.tokens.findTransaction(hash, clock());
  }

  /**
   * Why a stateToken no longer loads: `locked` when the lockout itself ended its transaction (a
   * push denied or answered with a wrong number once too often on the device, while this client
   * polled). Okta reports that as the transaction state LOCKED_OUT, as after the password step;
   * anything else stays INVALID_TOKEN.
   */
  async function endedByLockout(stateToken: unknown): Promise<AuthnResult> {
    const hash = stateTokenHash(stateToken);
    if (hash === undefined) return fail('INVALID_TOKEN');
    const row = await store.repos.tokens.findEndedTransaction(hash, clock());
    const user = row ? await store.repos.users.findUserById(row.user_id) : undefined;
    // `recordFailure` locks the user and ends their transactions at one instant.
    if (row && user?.status === 'LOCKED_OUT' && user.locked_at !== null && row.ended_at === user.locked_at) {
      return { kind: 'locked', user };
    }
    return fail('INVALID_TOKEN');
  }

  /** After the password (or activation) step: enroll if nothing usable, else ask for a factor. */
  async function afterPrimary(
    repos: Repositories,
    user: UserRow,
    amr: string[],
    emailTokenHash: string | null,
    ctx?: RequestContext,
  ) {
    const factors = await repos.factors.listActiveFactors(user.id);
    // Retired factors (SMS, voice) do not count: their owners enroll a current one (DESIGN).
    const status = usableFactors(factors).length ? 'MFA_REQUIRED' : 'MFA_ENROLL';
    const device = ctx ? hashBearerSecret(deviceKey(ctx)) : null;
    return startTransaction(repos, user, status, amr, emailTokenHash, 'signin', factors, device);
  }

  async function succeed(
    repos: Repositories,
    txnHash: string,
    user: UserRow,
    amr: string[],
    factorType: string | null,
    ctx: RequestContext,
    factorId?: string,
    deviceHash?: string | null,
  ): Promise<AuthnResult> {
    if (!(await repos.tokens.endTransaction(txnHash, clock()))) {
      // Lost a race for this transaction: give back the attempt reserved for the right code.
      await repos.users.releaseAttempt(user.id);
      return fail('INVALID_TOKEN');
    }
    return issueSessionToken(repos, user, amr, factorType, ctx, factorId ? { factorId } : {}, deviceHash);
  }

  /**
   * The end of every successful sign-in, local or federated: the new-device notice, the sign-in
   * recorded, the one-time session token, the audit event.
   */
  async function issueSessionToken(
    repos: Repositories,
    user: UserRow,
    amr: string[],
    factorType: string | null,
    ctx: RequestContext,
    auditDetails: Record<string, unknown>,
    deviceHash?: string | null,
  ): Promise<AuthnResult> {
    const now = clock();
    // DESIGN, "notifications": email on a sign-in from a device this user has not used before.
    // The first sign-in of all (activation) is not news to anyone.
    const device = ctx.deviceId || !deviceHash ? hashBearerSecret(deviceKey(ctx)) : deviceHash;
    const newDevice = await repos.reports.recordDevice(user.id, device, now, ctx.userAgent, ctx.ip);
    if (newDevice && user.last_login_at !== null) {
      const factors = factorType ? await repos.factors.listFactors(user.id) : [];
      const method = factorType?.startsWith(FEDERATED_FACTOR_PREFIX)
        ? "your firm's single sign-on"
        : (factors.find((f) => `${f.factor_type}:${f.provider}` === factorType)?.name ?? factorType ?? 'password');
      await deps.notifier.newSignIn(repos, user, method, ctx);
    }
    await repos.users.recordSuccessfulSignIn(user.id, factorType, now);
    const sessionToken = createBearerSecret(random);
    await repos.tokens.createOneTimeToken({
      token_hash: hashBearerSecret(sessionToken),
      user_id: user.id,
      purpose: 'session',
      amr: JSON.stringify(amr),
      created_at: now,
      expires_at: now + SESSION_TOKEN_TTL_MS,
      consumed_at: null,
    });
    await audit(repos, ctx, 'user.authentication.sso', 'success', user.id, { amr, factorType, ...auditDetails });
    // What recordSuccessfulSignIn just wrote, without reading the row back.
    const fresh: UserRow = {
      ...user,
      failed_attempts: 0,
      lockout_count: 0,
      last_login_at: now,
      last_factor_type: factorType,
    };
    return { kind: 'success', user: fresh, amr, factorType, sessionToken, expiresAt: now + SESSION_TOKEN_TTL_MS };
  }

  const attempts = deps.attempts;
  const reserveAttempt = attempts.reserve;
  const failedAttempt = attempts.recordFailure;
  const recoveryLink = attempts.recoveryLink;

  /**
   * What identifies the device for "new sign-in" notices: the browser's device cookie or Okta's
   * `context.deviceToken`; without either, the user agent together with the address, so copying
   * a user agent alone does not pass for a known device.
   */
  function deviceKey(ctx: RequestContext): string {
    return ctx.deviceId ? `id:${ctx.deviceId}` : `ua:${ctx.userAgent ?? 'unknown'}|ip:${ctx.ip ?? 'unknown'}`;
  }

  /** Locked too many times in a row: only support may unlock (Okta's rule, DESIGN "lockout"). */
  function supportOnly(user: UserRow): boolean {
    return user.status === 'LOCKED_OUT' && user.lockout_count >= policy.lockoutsBeforeSupportUnlock;
  }

  /** The locked answer with the user as now stored (the lockout just counted). */
  async function lockedResult(user: UserRow): Promise<AuthnResult> {
    return { kind: 'locked', user: (await store.repos.users.findUserById(user.id)) ?? user };
  }

  /**
   * Push for a sign-in (Okta's `verify` on a push factor). `verify`: while the last push waits, a
   * poll (WAITING with the number to show); once approved, SUCCESS; a denial, wrong number or
   * timeout is reported once (REJECTED / TIMEOUT), and the next `verify` sends a new push.
   * `resend`: a new push now. `check` (the page's "I approved — continue"): never sends, only
   * reports. Every send is within the per-sign-in cap and the user's rate limit.
   */
  async function verifyPush(
    stateToken: string,
    factorId: string,
    ctx: RequestContext,
    mode: 'verify' | 'resend' | 'check',
  ): Promise<AuthnResult> {
    if (!deps.push) return fail('NOT_FOUND');
    const row = await loadTransaction(stateToken);
    if (!row) return endedByLockout(stateToken);
    return pushOnTransaction(stateToken, row, await store.repos.factors.findFactor(row.user_id, factorId), ctx, mode);
  }

  /** `verifyPush` once the transaction and the factor are read (`challengeFactor` has them already). */
  async function pushOnTransaction(
    stateToken: string,
    row: TransactionRow,
    factor: FactorRow | undefined,
    ctx: RequestContext,
    mode: 'verify' | 'resend' | 'check',
  ): Promise<AuthnResult> {
    const push = deps.push;
    if (!push) return fail('NOT_FOUND');
    if (row.status !== 'MFA_REQUIRED' && row.status !== 'MFA_CHALLENGE') return fail('WRONG_STATE');
    if (factor?.status !== 'ACTIVE' || factor.factor_type !== PUSH.factorType) return fail('NOT_FOUND');
    // Recovery proves the user with a code or FastPass: a push approved by habit must not reset a password.
    if (row.flow !== 'signin') return fail('FORBIDDEN', ['Use a code or FastPass to confirm it is you.']);
    const user = await store.repos.users.findUserById(row.user_id);
    if (!user) return fail('INVALID_TOKEN');
    const current =
      row.status === 'MFA_CHALLENGE' && row.factor_id === factor.id
        ? await push.current(row.token_hash, ctx)
        : undefined;
    if (current?.status === 'APPROVED') {
      const attempt = await reserveAttempt(user.id);
      if (attempt === null) {
        await store.repos.tokens.endTransaction(row.token_hash, clock());
        return { kind: 'locked', user };
      }
      await store.repos.factors.markFactorUsed(factor.id, clock());
      return succeedWithPush(row, user, factor, ctx);
    }
    if (mode === 'check') return view(store.repos, stateToken, row, { user });
    if (current && mode === 'verify') {
      if (current.status === 'WAITING') return view(store.repos, stateToken, row, { user });
      if (current.result_seen_at === null && (await push.markResultSeen(current.id))) {
        return view(store.repos, stateToken, row, { user });
      }
    }
    const sent = await push.send(row.token_hash, user, factor, {
      ...ctx,
      app: `TRAQS ${deps.attempts.environment.label}`,
    });
    if (!sent.ok) {
      if (sent.reason === 'NO_DEVICE') return fail('NOT_FOUND');
      return fail('RATE_LIMITED', [
        sent.reason === 'PER_SIGN_IN_CAP'
          ? `At most ${policy.pushesPerSignIn} pushes can be sent for one sign-in. Use another method or sign in again.`
          : 'Too many pushes were sent to your device recently. Wait a few minutes or use another method.',
      ]);
    }
    const now = clock();
    // A parallel request of the same sign-in may have moved it to this challenge first: that is
    // the state wanted, not a lost race.
    await store.repos.tokens.advanceTransaction(
      row.token_hash,
      row.status,
      { status: 'MFA_CHALLENGE', factorId: factor.id },
      now,
    );
    const updated = await store.repos.tokens.findTransaction(row.token_hash, now);
    if (updated?.status !== 'MFA_CHALLENGE' || updated.factor_id !== factor.id) return fail('INVALID_TOKEN');
    return view(store.repos, stateToken, updated, { user });
  }

  /**
   * Sign-in completed with the push factor (its device enrolled, or a push approved): `amr` `swk`
   * (RFC 8176: proof of possession of a software-held key, the device's P-256 key) and `mfa`.
   */
  function succeedWithPush(row: TransactionRow, user: UserRow, factor: FactorRow, ctx: RequestContext) {
    const amr = [...new Set([...(JSON.parse(row.amr) as string[]), 'swk', 'mfa'])];
    const factorKey = `${PUSH.factorType}:${PUSH.provider}`;
    return store.transaction((repos) =>
      succeed(repos, row.token_hash, user, amr, factorKey, ctx, factor.id, row.device_hash),
    );
  }

  /** Automatic unlock after the configured period (DESIGN: 15 minutes), unless only support may unlock. */
  async function autoUnlockIfDue(user: UserRow): Promise<UserRow> {
    if (user.status !== 'LOCKED_OUT' || user.locked_at === null) return user;
    if (user.lockout_count >= policy.lockoutsBeforeSupportUnlock) return user;
    const unlockAfter = policy.lockoutAutoUnlockMinutes * 60_000;
    const now = clock();
    if (now - user.locked_at < unlockAfter) return user;
    if (await store.repos.users.unlockUser(user.id, now, now - unlockAfter)) {
      return (await store.repos.users.findUserById(user.id)) ?? user;
    }
    return user;
  }

  const purposeOf = (row: TransactionRow): EmailLinkPurpose =>
    row.flow === 'recovery_password'
      ? 'recovery_password'
      : row.flow === 'recovery_unlock'
        ? 'recovery_unlock'
        : 'activation';

  /**
   * Counts one recovery try (answer or code) against the emailed link, not the transaction: a new
   * transaction from the same link does not start a fresh allowance (OWASP ASVS 2.2.1).
   */
  function countRecoveryAttempt(row: TransactionRow): Promise<number> {
    return row.email_token_hash
      ? store.repos.tokens.countEmailTokenAttempt(row.email_token_hash)
      : store.repos.tokens.countTransactionAttempt(row.token_hash);
  }

  /** A wrong recovery answer or code: audited; at the limit the link is spent and the transaction ends. */
  async function recoveryFailure(
    row: TransactionRow,
    userId: string,
    attempts: number,
    what: 'answer' | 'code',
    ctx: RequestContext,
    details: Record<string, unknown>,
  ): Promise<AuthnResult> {
    const spent = attempts >= policy.maxFailedAttempts;
    const now = clock();
    await store.transaction(async (repos) => {
      const action = what === 'answer' ? 'user.account.recovery.answer' : 'user.account.recovery.factor';
      await audit(repos, ctx, action, 'failure', userId, { ...details, attempts });
      if (spent) {
        if (row.email_token_hash) await repos.tokens.consumeEmailToken(row.email_token_hash, purposeOf(row), now);
        await repos.tokens.endTransaction(row.token_hash, now);
      }
    });
    if (spent) return fail('INVALID_TOKEN', [], `Too many wrong ${what}s. Request a new link.`);
    return fail('INVALID_PASSCODE', [
      what === 'answer'
        ? 'The answer does not match our records. Please try again.'
        : "Your passcode doesn't match our records. Please try again.",
    ]);
  }

  /**
   * The user proved control of the email and answered the question (or verified a factor):
   * unlock completes here; password recovery moves on to PASSWORD_RESET.
   */
  async function completeRecoveryProof(
    stateToken: string,
    row: TransactionRow,
    user: UserRow,
    ctx: RequestContext,
  ): Promise<AuthnResult> {
    const now = clock();
    const current = await store.repos.users.findUserById(user.id);
    if (!current || supportOnly(current)) {
      return fail('FORBIDDEN', ['This account can only be unlocked by technical support.']);
    }
    return store.transaction(async (repos) => {
      if (row.flow === 'recovery_unlock') {
        if (
          !row.email_token_hash ||
          !(await repos.tokens.consumeEmailToken(row.email_token_hash, 'recovery_unlock', now))
        ) {
          return fail('INVALID_TOKEN', [], 'The recovery link is no longer valid.');
        }
        if (!(await repos.tokens.endTransaction(row.token_hash, now))) return fail('INVALID_TOKEN');
        await repos.users.unlockUser(user.id, now);
        await deps.notifier.accountUnlocked(repos, user, ctx);
        await audit(repos, ctx, 'user.account.unlock', 'success', user.id, { via: 'self-service recovery' });
        const fresh = (await repos.users.findUserById(user.id)) ?? user;
        return { kind: 'unlocked', user: fresh };
      }
      const moved = await repos.tokens.advanceTransaction(
        row.token_hash,
        row.status,
        { status: 'PASSWORD_RESET', expiresAt: now + ttl },
        now,
      );
      if (!moved) return fail('INVALID_TOKEN');
      await audit(repos, ctx, 'user.account.recovery.answer', 'success', user.id);
      const updated = await repos.tokens.findTransaction(row.token_hash, now);
      return updated ? view(repos, stateToken, updated) : fail('INVALID_TOKEN');
    });
  }

  return {
    /**
     * A sign-in vouched for by the firm's identity provider (src/federation): the assertion or ID
     * token was verified and mapped to this federated, ACTIVE user there. Ends like every other
     * sign-in, in a one-time session token, without a password or a local factor.
     */
    async signInFederated(
      user: UserRow,
      amr: string[],
      protocol: 'saml' | 'oidc',
      ctx: RequestContext,
      auditDetails: Record<string, unknown>,
    ): Promise<AuthnResult> {
      return store.transaction((repos) =>
        issueSessionToken(repos, user, amr, `${FEDERATED_FACTOR_PREFIX}${protocol}`, ctx, auditDetails),
      );
    },

    /** `POST /api/v1/authn {username, password}`: the primary (password) step. */
    async primaryAuth(username: string, password: string, ctx: RequestContext): Promise<AuthnResult> {
      let user = await store.repos.users.findUserByLogin(username);
      // No user enumeration: an unknown user costs one Argon2id verification too (OWASP
      // Authentication Cheat Sheet, "Authentication Responses"). A federated user has no password
      // here (FAQ: never both); one typed in is refused like a wrong one and, since there is nothing
      // to guess, not counted towards a lockout (issue #8 item 2).
      if (user?.auth_mode !== 'local' || !user.password_hash) {
        await passwords.verifyDummy(password);
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.session.start', 'failure', user?.id ?? null, {
            reason: !user ? 'unknown user' : user.auth_mode === 'federated' ? 'federated user' : 'no local password',
            username: username.slice(0, 254),
          }),
        );
        return fail('AUTH_FAILED');
      }
      user = await autoUnlockIfDue(user);
      if (user.status === 'LOCKED_OUT') {
        await passwords.verifyDummy(password);
        return { kind: 'locked', user };
      }
      if (!SIGN_IN_STATUSES.includes(user.status as never)) {
        await passwords.verifyDummy(password);
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.session.start', 'denied', user.id, { reason: `status ${user.status}` }),
        );
        return fail('AUTH_FAILED');
      }
      const attempt = await reserveAttempt(user.id);
      if (attempt === null) {
        await passwords.verifyDummy(password);
        return { kind: 'locked', user };
      }
      const storedHash = user.password_hash ?? '';
      const result = await passwords.verify(storedHash, password);
      if (!result.ok) {
        const locked = await failedAttempt(user.id, attempt, ctx, 'user.session.start', { factor: 'password' });
        return locked ? lockedResult(user) : fail('AUTH_FAILED');
      }
      const newHash = result.needsRehash ? await passwords.hash(password) : null;
      const signedIn = user;
      const primary = await store.transaction(async (repos) => {
        // The right password gives its reserved attempt back (in this commit, not one of its own).
        await repos.users.releaseAttempt(signedIn.id);
        // OWASP Password Storage: upgrade the hash on the next successful sign-in.
        if (newHash) await repos.users.rehashPassword(signedIn.id, storedHash, newHash);
        await audit(repos, ctx, 'user.authentication.auth_via_password', 'success', signedIn.id);
        return afterPrimary(repos, signedIn, ['pwd'], null, ctx);
      });
      // FAQ, "send push automatically": the push goes out as soon as the password is accepted.
      if (primary.kind === 'transaction' && primary.txn.status === 'MFA_REQUIRED' && wantsAutoPush(signedIn)) {
        const pushFactor = primary.txn.factors.find((f) => f.factor_type === PUSH.factorType);
        if (pushFactor) {
          const pushed = await verifyPush(primary.txn.stateToken, pushFactor.id, ctx, 'verify');
          // Over the limits, the user still chooses a method themselves.
          if (pushed.kind === 'transaction') return pushed;
        }
      }
      return primary;
    },

    /**
     * `POST /api/v1/authn {token}` with an activation token: starts PASSWORD_RESET. The link is
     * consumed only when the password is set, so opening it (or a mail scanner) cannot burn it.
     */
    async startActivation(token: string, ctx: RequestContext): Promise<AuthnResult> {
      const hash = hashBearerSecret(token);
      const row = await store.repos.tokens.findEmailToken(hash);
      const now = clock();
      if (row?.purpose !== 'activation' || row.consumed_at !== null || row.expires_at <= now) {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.lifecycle.activate', 'failure', row?.user_id ?? null, {
            reason: !row ? 'unknown token' : row.consumed_at ? 'token used' : 'token expired',
          }),
        );
        return fail('INVALID_TOKEN', [], 'The activation token is no longer valid.');
      }
      const user = await store.repos.users.findUserById(row.user_id);
      if (user?.status !== 'PROVISIONED' || user.auth_mode !== 'local') {
        return fail('INVALID_TOKEN', [], 'The activation token is no longer valid.');
      }
      return store.transaction((repos) => startTransaction(repos, user, 'PASSWORD_RESET', [], hash, 'activation'));
    },

    /** Describes an activation link without consuming it (the GET page). */
    async inspectActivationToken(token: string): Promise<'valid' | 'expired' | 'used' | 'unknown'> {
      const row = await store.repos.tokens.findEmailToken(hashBearerSecret(token));
      if (row?.purpose !== 'activation') return 'unknown';
      if (row.consumed_at !== null) return 'used';
      if (row.expires_at <= clock()) return 'expired';
      return 'valid';
    },

    /** `POST /api/v1/authn {stateToken}`: the current state of a transaction. */
    async getTransaction(stateToken: string): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return endedByLockout(stateToken);
      return view(store.repos, stateToken, row);
    },

    /**
     * `POST /api/v1/authn/credentials/reset_password`: at activation (with the recovery question
     * and answer) or after self-service password recovery (new password only).
     */
    async resetPassword(
      stateToken: string,
      input: { newPassword: string; recoveryQuestion?: string | undefined; recoveryAnswer?: string | undefined },
      ctx: RequestContext,
    ): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      if (row.status !== 'PASSWORD_RESET') return fail('WRONG_STATE');
      const user = await store.repos.users.findUserById(row.user_id);
      if (!user) return fail('INVALID_TOKEN');
      const activation = row.flow === 'activation';
      if (!activation && supportOnly(user)) {
        return fail('FORBIDDEN', ['This account can only be unlocked by technical support.']);
      }
      const problems = checkNewPassword(input.newPassword, {
        minLength: policy.passwordMinLength,
        maxLength: policy.passwordMaxLength,
        username: user.login,
        blocklist: deps.blocklist,
      });
      if (problems.length)
        return fail(
          'PASSWORD_POLICY',
          problems.map((p) => p.message),
        );
      const question = input.recoveryQuestion?.trim() ?? '';
      const answer = input.recoveryAnswer ?? '';
      if (activation) {
        const causes = checkRecoveryAnswer(answer, { password: input.newPassword }).map((p) => p.message);
        if (question.length < 5)
          causes.unshift('recoveryQuestion: Write a recovery question of at least 5 characters.');
        if (causes.length) return fail('VALIDATION', causes);
      } else if (user.recovery_answer_hash && answer) {
        // NIST 800-63B §5.1.1.2: the new secret must not be guessable from what the user told us.
        if (normalizeRecoveryAnswer(input.newPassword).includes(normalizeRecoveryAnswer(answer))) {
          return fail('PASSWORD_POLICY', ['Your password must not contain your recovery answer.']);
        }
      }
      const [passwordHash, answerHash] = await Promise.all([
        passwords.hash(input.newPassword),
        activation ? passwords.hash(normalizeRecoveryAnswer(answer)) : Promise.resolve(null),
      ]);
      const now = clock();
      const purpose: EmailLinkPurpose = activation ? 'activation' : 'recovery_password';
      return store.transaction(async (repos) => {
        // The emailed link is single-use: consumed here, atomically with the password it sets.
        if (row.email_token_hash && !(await repos.tokens.consumeEmailToken(row.email_token_hash, purpose, now))) {
          return fail(
            'INVALID_TOKEN',
            [],
            activation ? 'The activation token is no longer valid.' : 'The recovery link is no longer valid.',
          );
        }
        if (!(await repos.tokens.endTransaction(row.token_hash, now))) return fail('INVALID_TOKEN');
        await repos.users.setPassword(user.id, passwordHash, now);
        if (activation && answerHash) {
          await repos.users.setRecoveryQuestion(user.id, question, answerHash);
          await repos.users.activateUser(user.id, now);
          await audit(repos, ctx, 'user.lifecycle.activate', 'success', user.id);
        } else {
          // A reset password ends every other sign-in and session (OWASP ASVS 3.3.3) and unlocks.
          await repos.users.unlockUser(user.id, now);
          await repos.tokens.endUserTransactions(user.id, now);
          await repos.tokens.revokeUserSessions(user.id, now);
          await deps.notifier.passwordChanged(repos, user, ctx);
          await audit(repos, ctx, 'user.account.reset_password', 'success', user.id, { via: 'self-service recovery' });
        }
        await audit(repos, ctx, 'user.account.update_password', 'success', user.id);
        const fresh = (await repos.users.findUserById(user.id)) ?? user;
        // TRAQS: a new password is never a sign-in by itself; the second factor still follows.
        return afterPrimary(repos, fresh, ['pwd'], null);
      });
    },

    /**
     * `POST /api/v1/authn/recovery/{password,unlock}`: emails a single-use link (8 hours) if the
     * account can use it. The caller answers the same whether or not it exists (no enumeration);
     * the work runs after the answer, so the response time does not tell either.
     */
    requestRecovery(username: string, kind: 'password' | 'unlock', ctx: RequestContext): { settled: Promise<void> } {
      const settled = (async () => {
        const user = await store.repos.users.findUserByLogin(username);
        const purpose: EmailLinkPurpose = kind === 'password' ? 'recovery_password' : 'recovery_unlock';
        const supportOnly =
          !!user && user.lockout_count >= policy.lockoutsBeforeSupportUnlock && user.status === 'LOCKED_OUT';
        const eligible =
          !!user &&
          user.auth_mode === 'local' &&
          !!user.password_hash &&
          !supportOnly &&
          (kind === 'unlock'
            ? user.status === 'LOCKED_OUT'
            : ['ACTIVE', 'LOCKED_OUT', 'RECOVERY', 'PASSWORD_EXPIRED'].includes(user.status));
        await store.transaction(async (repos) => {
          if (!user || !eligible) {
            await audit(repos, ctx, `user.account.recovery.${kind}`, 'denied', user?.id ?? null, {
              reason: !user ? 'unknown user' : supportOnly ? 'support-only unlock' : `not eligible (${user.status})`,
              username: username.slice(0, 254),
            });
            return;
          }
          const now = clock();
          const link = await recoveryLink(repos, user.id, purpose, now);
          await deps.notifier.recovery(repos, user, {
            kind,
            url: link.url,
            expiresAt: link.expiresAt,
            validHours: policy.recoveryLinkHours,
          });
          await audit(repos, ctx, `user.account.recovery.${kind}`, 'success', user.id, { step: 'email sent' });
        });
      })();
      return { settled };
    },

    /** Describes a recovery link without using it (the GET page). */
    async inspectRecoveryToken(
      token: string,
    ): Promise<{ state: 'valid' | 'expired' | 'used' | 'unknown'; kind?: 'password' | 'unlock' }> {
      const row = await store.repos.tokens.findEmailToken(hashBearerSecret(token));
      if (!row || (row.purpose !== 'recovery_password' && row.purpose !== 'recovery_unlock'))
        return { state: 'unknown' };
      const kind = row.purpose === 'recovery_password' ? 'password' : 'unlock';
      if (row.consumed_at !== null) return { state: 'used', kind };
      if (row.expires_at <= clock()) return { state: 'expired', kind };
      return { state: 'valid', kind };
    },

    /**
     * `POST /api/v1/authn/recovery/token {recoveryToken}`: starts the RECOVERY transaction (the
     * question) or, under the factor policy, asks for an enrolled factor. The link is consumed
     * when the recovery completes.
     */
    async startRecovery(token: string, ctx: RequestContext): Promise<AuthnResult> {
      const hash = hashBearerSecret(token);
      const row = await store.repos.tokens.findEmailToken(hash);
      const now = clock();
      const valid =
        !!row &&
        (row.purpose === 'recovery_password' || row.purpose === 'recovery_unlock') &&
        row.consumed_at === null &&
        row.expires_at > now;
      const user = valid && row ? await store.repos.users.findUserById(row.user_id) : undefined;
      if (user && supportOnly(user)) {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.account.recovery.token', 'denied', user.id, { reason: 'support-only unlock' }),
        );
        return fail('FORBIDDEN', [
          'This account was locked too many times in a row and can only be unlocked by technical support.',
        ]);
      }
      if (!row || !valid || !user || user.auth_mode !== 'local' || row.attempts >= policy.maxFailedAttempts) {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.account.recovery.token', 'failure', row?.user_id ?? null, {
            reason: !row ? 'unknown token' : row.consumed_at ? 'token used' : 'token expired',
          }),
        );
        return fail('INVALID_TOKEN', [], 'The recovery link is no longer valid.');
      }
      const flow: TransactionFlow = row.purpose === 'recovery_password' ? 'recovery_password' : 'recovery_unlock';
      return store.transaction(async (repos) => {
        if (policy.recoveryVerification === 'factor') {
          const factors = usableFactors(await repos.factors.listActiveFactors(user.id));
          if (!factors.length) {
            return fail('FORBIDDEN', [
              'No sign-in method is enrolled to confirm it is you. Call technical support to recover the account.',
            ]);
          }
          return startTransaction(repos, user, 'MFA_REQUIRED', ['email'], hash, flow);
        }
        if (!user.recovery_answer_hash) {
          return fail('FORBIDDEN', ['No recovery question is set. Call technical support to recover the account.']);
        }
        return startTransaction(repos, user, 'RECOVERY', ['email'], hash, flow);
      });
    },

    /** `POST /api/v1/authn/recovery/answer {stateToken, answer}`. */
    async answerRecovery(stateToken: string, answer: string, ctx: RequestContext): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      if (row.status !== 'RECOVERY') return fail('WRONG_STATE');
      const user = await store.repos.users.findUserById(row.user_id);
      if (!user?.recovery_answer_hash) return fail('INVALID_TOKEN');
      const attempts = await countRecoveryAttempt(row);
      const check =
        attempts <= policy.maxFailedAttempts
          ? await passwords.verify(user.recovery_answer_hash, normalizeRecoveryAnswer(answer))
          : { ok: false };
      if (!check.ok) return recoveryFailure(row, user.id, attempts, 'answer', ctx, {});
      return completeRecoveryProof(stateToken, row, user, ctx);
    },
    /** Whether FastPass can be set up here, and why not when it cannot. */
    webauthnSupport: fastPass.support,

    /** The day SMS and voice were retired (`policy.retiredFactorsDate`), for the pages' wording. */
    retiredFactorsDate: policy.retiredFactorsDate,

    /** The factors the enrollment choice offers (the API's MFA_ENROLL list, the page's buttons). */
    enrollableFactors: () => enrollableFactors(fastPass.support),

    /**
     * `POST /api/v1/authn/factors {stateToken, factorType, provider}`: begin enrolling TOTP or
     * FastPass (`webauthn`/`FIDO`, whose registration options the MFA_ENROLL_ACTIVATE view carries).
     */
    async enrollFactor(
      stateToken: string,
      factorType: string,
      provider: string,
      ctx: RequestContext,
    ): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      if (row.status !== 'MFA_ENROLL' && row.status !== 'MFA_ENROLL_ACTIVATE') return fail('WRONG_STATE');
      if (isRetiredFactorType(factorType)) return fail('VALIDATION', [notEnrollableMessage(factorType, policy)]);
      if (factorType === WEBAUTHN.factorType && !fastPass.support.available) {
        return fail('VALIDATION', [fastPass.support.reason]);
      }
      const push = deps.push;
      if (factorType === PUSH.factorType && !push) return fail('VALIDATION', ['Push is not available here.']);
      const choice = ENROLLABLE_FACTORS.find((f) => f.factorType === factorType && f.provider === provider);
      if (!choice) {
        return fail('VALIDATION', [`factorType/provider: ${factorType}/${provider} is not an enrollable factor.`]);
      }
      const now = clock();
      return store.transaction(async (repos) => {
        await repos.factors.deletePendingFactors(row.user_id);
        const factor =
          choice.factorType === WEBAUTHN.factorType
            ? fastPass.pendingFactor(row.user_id, fastPassName(ctx.userAgent), now)
            : choice.factorType === PUSH.factorType && push
              ? push.pendingFactor(row.user_id, now)
              : seeds.pendingFactor(
                  { userId: row.user_id, factorType: choice.factorType, provider: choice.provider, name: choice.label },
                  random,
                  now,
                );
        await repos.factors.createFactor(factor);
        if (factor.factor_type === PUSH.factorType) await push?.issueActivation(repos, factor, now);
        const moved = await repos.tokens.advanceTransaction(
          row.token_hash,
          row.status,
          { status: 'MFA_ENROLL_ACTIVATE', factorId: factor.id, expiresAt: now + ttl },
          now,
        );
        if (!moved) return fail('INVALID_TOKEN');
        await audit(repos, ctx, 'user.mfa.factor.enroll_started', 'success', row.user_id, {
          factorId: factor.id,
          provider,
        });
        const updated = await repos.tokens.findTransaction(row.token_hash, now);
        return updated ? view(repos, stateToken, updated) : fail('INVALID_TOKEN');
      });
    },

    /**
     * `POST /api/v1/authn/previous`: back from MFA_ENROLL_ACTIVATE to the factor choice, or from
     * MFA_CHALLENGE to the list of factors.
     */
    async previous(stateToken: string): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      const now = clock();
      if (row.status === 'MFA_CHALLENGE') {
        const moved = await store.repos.tokens.advanceTransaction(
          row.token_hash,
          row.status,
          { status: 'MFA_REQUIRED', factorId: null },
          now,
        );
        if (!moved) return fail('INVALID_TOKEN');
        const updated = await store.repos.tokens.findTransaction(row.token_hash, now);
        return updated ? view(store.repos, stateToken, updated) : fail('INVALID_TOKEN');
      }
      if (row.status !== 'MFA_ENROLL_ACTIVATE') return fail('WRONG_STATE');
      return store.transaction(async (repos) => {
        await repos.factors.deletePendingFactors(row.user_id);
        if (
          !(await repos.tokens.advanceTransaction(
            row.token_hash,
            row.status,
            { status: 'MFA_ENROLL', factorId: null },
            now,
          ))
        )
          return fail('INVALID_TOKEN');
        const updated = await repos.tokens.findTransaction(row.token_hash, now);
        return updated ? view(repos, stateToken, updated) : fail('INVALID_TOKEN');
      });
    },

    /**
     * Verifies a TOTP code: `…/factors/{id}/lifecycle/activate` in MFA_ENROLL_ACTIVATE (completes
     * enrollment) or `…/factors/{id}/verify` in MFA_REQUIRED (completes sign-in).
     */
    async verifyPasscode(
      stateToken: string,
      factorId: string,
      passCode: string,
      mode: 'activate' | 'verify',
      ctx: RequestContext,
    ): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      const allowed = mode === 'activate' ? ['MFA_ENROLL_ACTIVATE'] : ['MFA_REQUIRED', 'MFA_CHALLENGE'];
      if (!allowed.includes(row.status)) return fail('WRONG_STATE');
      if (mode === 'activate' && row.factor_id !== factorId) return fail('NOT_FOUND');
      const factor = await store.repos.factors.findFactor(row.user_id, factorId);
      if (factor && isRetiredFactorType(factor.factor_type)) {
        return fail('FORBIDDEN', [noLongerWorksMessage(factor.factor_type, policy)]);
      }
      const wantStatus = mode === 'activate' ? 'PENDING_ACTIVATION' : 'ACTIVE';
      if (
        !factor ||
        factor.status !== wantStatus ||
        !factor.secret_enc ||
        factor.factor_type !== 'token:software:totp'
      ) {
        return fail('NOT_FOUND');
      }
      const user = await store.repos.users.findUserById(row.user_id);
      if (!user) return fail('INVALID_TOKEN');
      // A recovery transaction counts its own tries (the account may be locked already): the
      // emailed link allows as many factor tries as the lockout limit, then it is spent.
      const recovery = row.flow === 'recovery_password' || row.flow === 'recovery_unlock';
      const attempt = recovery ? await countRecoveryAttempt(row) : await reserveAttempt(user.id);
      if (attempt === null || attempt > policy.maxFailedAttempts) {
        await store.repos.tokens.endTransaction(row.token_hash, clock());
        return recovery
          ? fail('INVALID_TOKEN', [], 'Too many wrong codes. Request a new link.')
          : { kind: 'locked', user };
      }
      const now = clock();
      const check = seeds.verify({ ...factor, secret_enc: factor.secret_enc }, passCode, now);
      const action = mode === 'activate' ? 'user.mfa.factor.activate' : 'user.authentication.auth_via_mfa';
      // RFC 6238 §5.2: a code is accepted once; the compare-and-set makes that hold under races.
      const accepted =
        check.ok &&
        (mode === 'activate'
          ? await store.repos.factors.activateFactor(factor.id, check.step, now)
          : await store.repos.factors.markTotpStepUsed(factor.id, check.step, now));
      if (!accepted) {
        const reason = check.ok ? 'CODE_REUSED' : check.reason;
        if (recovery) return recoveryFailure(row, user.id, attempt, 'code', ctx, { reason });
        const locked = await failedAttempt(user.id, attempt, ctx, action, { factor: factor.factor_type, reason });
        if (locked) return lockedResult(user);
        return fail('INVALID_PASSCODE', [
          reason === 'CODE_REUSED'
            ? 'This code was already used. Wait for the next code and try again.'
            : "Your passcode doesn't match our records. Please try again.",
        ]);
      }
      if (recovery) {
        // Recovery under the factor policy: the verified factor stands in for the question.
        return completeRecoveryProof(stateToken, row, user, ctx);
      }
      const amr = [...new Set([...(JSON.parse(row.amr) as string[]), 'otp', 'mfa'])];
      const factorKey = `${factor.factor_type}:${factor.provider}`;
      return store.transaction(async (repos) => {
        // The reserved attempt is not given back here: a successful sign-in resets the counter.
        if (mode === 'activate') {
          await audit(repos, ctx, action, 'success', user.id, { factorId: factor.id, provider: factor.provider });
          await deps.notifier.factorEnrolled(repos, user, factor, ctx);
        }
        // A verified factor in sign-in is recorded once, as the sign-in itself (`sso`, with the factor).
        return succeed(repos, row.token_hash, user, amr, factorKey, ctx, factor.id, row.device_hash);
      });
    },

    /**
     * `POST …/factors/{id}/verify {stateToken}` for a FastPass factor: a new challenge for it, bound
     * to this transaction (MFA_CHALLENGE with the options for `navigator.credentials.get()`).
     */
    async challengeWebAuthn(stateToken: string, factorId: string): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      if (row.status !== 'MFA_REQUIRED' && row.status !== 'MFA_CHALLENGE') return fail('WRONG_STATE');
      const factor = await store.repos.factors.findFactor(row.user_id, factorId);
      if (factor?.status !== 'ACTIVE') return fail('NOT_FOUND');
      if (isRetiredFactorType(factor.factor_type)) {
        return fail('FORBIDDEN', [noLongerWorksMessage(factor.factor_type, policy)]);
      }
      // The other factors are verified in one step, with their code.
      if (factor.factor_type !== WEBAUTHN.factorType) return fail('VALIDATION', ['passCode: Required']);
      if (!fastPass.support.available) return fail('FORBIDDEN', [fastPass.support.reason]);
      const user = await store.repos.users.findUserById(row.user_id);
      if (!user) return fail('INVALID_TOKEN');
      const now = clock();
      const moved = await store.repos.tokens.advanceTransaction(
        row.token_hash,
        row.status,
        { status: 'MFA_CHALLENGE', factorId: factor.id },
        now,
      );
      if (!moved) return fail('INVALID_TOKEN');
      // Always a new challenge when asked for one; the view then shows it.
      await fastPass.authenticationOptions(store.repos, bindingOfTransaction(row.token_hash), user, factor, true);
      const updated = await store.repos.tokens.findTransaction(row.token_hash, now);
      return updated ? view(store.repos, stateToken, updated, { user }) : fail('INVALID_TOKEN');
    },

    /**
     * `…/factors/{id}/lifecycle/activate {stateToken, attestation, clientData}` for FastPass: checks
     * the registration against this transaction's challenge (single use), stores the credential and
     * completes the sign-in with `amr` `hwk` + `mfa` (RFC 8176).
     */
    async activateWebAuthn(
      stateToken: string,
      factorId: string,
      registration: RegistrationInput,
      ctx: RequestContext,
    ): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      if (row.status !== 'MFA_ENROLL_ACTIVATE') return fail('WRONG_STATE');
      if (row.factor_id !== factorId) return fail('NOT_FOUND');
      const factor = await store.repos.factors.findFactor(row.user_id, factorId);
      if (factor?.status !== 'PENDING_ACTIVATION' || factor.factor_type !== WEBAUTHN.factorType) {
        return fail('NOT_FOUND');
      }
      const user = await store.repos.users.findUserById(row.user_id);
      if (!user) return fail('INVALID_TOKEN');
      const attempt = await reserveAttempt(user.id);
      if (attempt === null) {
        await store.repos.tokens.endTransaction(row.token_hash, clock());
        return { kind: 'locked', user };
      }
      const checked = await fastPass.checkRegistration(
        store.repos,
        bindingOfTransaction(row.token_hash),
        factor,
        registration,
      );
      if (!checked.ok) {
        const locked = await failedAttempt(user.id, attempt, ctx, 'user.mfa.factor.activate', {
          factor: WEBAUTHN.factorType,
          factorId: factor.id,
          reason: checked.reason,
          ...(checked.detail ? { detail: checked.detail } : {}),
        });
        if (locked) return lockedResult(user);
        return fail('INVALID_PASSCODE', [fastPassMessage(checked.reason)]);
      }
      const now = clock();
      const amr = [...new Set([...(JSON.parse(row.amr) as string[]), 'hwk', 'mfa'])];
      return store.transaction(async (repos) => {
        if (!(await repos.factors.activatePendingFactor(factor.id, now))) return fail('INVALID_TOKEN');
        await repos.factors.webauthn.saveCredential(checked.credential);
        await audit(repos, ctx, 'user.mfa.factor.activate', 'success', user.id, {
          factorId: factor.id,
          provider: factor.provider,
          name: factor.name,
        });
        await deps.notifier.factorEnrolled(repos, user, factor, ctx);
        return succeed(
          repos,
          row.token_hash,
          user,
          amr,
          `${WEBAUTHN.factorType}:${WEBAUTHN.provider}`,
          ctx,
          factor.id,
          row.device_hash,
        );
      });
    },

    /**
     * `…/factors/{id}/verify {stateToken, clientData, authenticatorData, signatureData}` for
     * FastPass: the assertion must answer this transaction's live challenge (consumed first, so a
     * replay fails), verify the user and carry a signature counter above the last one; a counter
     * that goes backwards is refused and the user alerted by email. Success: `amr` `hwk` + `mfa`.
     */
    async verifyWebAuthn(
      stateToken: string,
      factorId: string,
      assertion: AssertionInput,
      ctx: RequestContext,
    ): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      if (row.status !== 'MFA_REQUIRED' && row.status !== 'MFA_CHALLENGE') return fail('WRONG_STATE');
      const factor = await store.repos.factors.findFactor(row.user_id, factorId);
      if (factor?.status !== 'ACTIVE' || factor.factor_type !== WEBAUTHN.factorType) return fail('NOT_FOUND');
      const user = await store.repos.users.findUserById(row.user_id);
      if (!user) return fail('INVALID_TOKEN');
      const recovery = row.flow === 'recovery_password' || row.flow === 'recovery_unlock';
      const attempt = recovery ? await countRecoveryAttempt(row) : await reserveAttempt(user.id);
      if (attempt === null || attempt > policy.maxFailedAttempts) {
        await store.repos.tokens.endTransaction(row.token_hash, clock());
        return recovery
          ? fail('INVALID_TOKEN', [], 'Too many failed attempts. Request a new link.')
          : { kind: 'locked', user };
      }
      const checked = await fastPass.checkAssertion(
        store.repos,
        bindingOfTransaction(row.token_hash),
        factor,
        assertion,
      );
      if (!checked.ok) {
        const details: Record<string, unknown> = { factor: WEBAUTHN.factorType, factorId: factor.id };
        if (checked.reason === 'SIGN_COUNT_REGRESSED') {
          Object.assign(details, { reason: checked.reason, stored: checked.stored, reported: checked.reported });
          // A possible clone: the owner hears of it at once, with the "this wasn't me" link.
          await store.transaction(async (repos) => {
            await audit(repos, ctx, 'user.mfa.factor.suspected_clone', 'denied', user.id, details);
            await deps.notifier.signCounterRegressed(repos, user, factor.name, ctx);
          });
        } else {
          Object.assign(details, { reason: checked.reason, ...(checked.detail ? { detail: checked.detail } : {}) });
        }
        const message =
          checked.reason === 'SIGN_COUNT_REGRESSED' ? SIGN_COUNT_MESSAGE : fastPassMessage(checked.reason);
        if (recovery) {
          const r = await recoveryFailure(row, user.id, attempt, 'code', ctx, details);
          return r.kind === 'error' && r.error === 'INVALID_PASSCODE' ? fail('INVALID_PASSCODE', [message]) : r;
        }
        const locked = await failedAttempt(user.id, attempt, ctx, 'user.authentication.auth_via_mfa', details);
        if (locked) return lockedResult(user);
        return fail('INVALID_PASSCODE', [message]);
      }
      const now = clock();
      // Compare-and-set: of two assertions racing with the same counter, only one gets through.
      if (
        !(await store.repos.factors.webauthn.advanceSignCount(
          factor.id,
          checked.credential.sign_count,
          checked.signCount,
        ))
      ) {
        if (!recovery) await store.repos.users.releaseAttempt(user.id);
        return fail('INVALID_PASSCODE', [fastPassMessage('CHALLENGE')]);
      }
      await store.repos.factors.markFactorUsed(factor.id, now);
      if (recovery) return completeRecoveryProof(stateToken, row, user, ctx);
      const amr = [...new Set([...(JSON.parse(row.amr) as string[]), 'hwk', 'mfa'])];
      return store.transaction((repos) =>
        succeed(
          repos,
          row.token_hash,
          user,
          amr,
          `${WEBAUTHN.factorType}:${WEBAUTHN.provider}`,
          ctx,
          factor.id,
          row.device_hash,
        ),
      );
    },

    /**
     * `POST …/factors/{id}/verify {stateToken}` without a code: a push factor sends (or polls) a
     * push; a FastPass factor gets a challenge.
     */
    async challengeFactor(stateToken: string, factorId: string, ctx: RequestContext): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return endedByLockout(stateToken);
      const factor = await store.repos.factors.findFactor(row.user_id, factorId);
      if (factor?.factor_type === PUSH.factorType) return pushOnTransaction(stateToken, row, factor, ctx, 'verify');
      return this.challengeWebAuthn(stateToken, factorId);
    },

    verifyPush,

    /**
     * `POST …/factors/{id}/lifecycle/activate/poll {stateToken}`: WAITING until `traqs-verify
     * enroll` used the activation code, then SUCCESS (the device's enrollment completes the sign-in,
     * as Okta Verify's does); TIMEOUT once the code expired unused.
     */
    async pollPushActivation(stateToken: string, factorId: string, ctx: RequestContext): Promise<AuthnResult> {
      const row = await loadTransaction(stateToken);
      if (!row) return fail('INVALID_TOKEN');
      if (row.status !== 'MFA_ENROLL_ACTIVATE') return fail('WRONG_STATE');
      if (row.factor_id !== factorId) return fail('NOT_FOUND');
      const factor = await store.repos.factors.findFactor(row.user_id, factorId);
      if (!factor || factor.factor_type !== PUSH.factorType) return fail('NOT_FOUND');
      if (factor.status !== 'ACTIVE') return view(store.repos, stateToken, row);
      const user = await store.repos.users.findUserById(row.user_id);
      if (!user) return fail('INVALID_TOKEN');
      return succeedWithPush(row, user, factor, ctx);
    },

    /** `POST /api/v1/authn/cancel`. */
    async cancel(stateToken: string, ctx: RequestContext): Promise<boolean> {
      const row = await loadTransaction(stateToken);
      if (!row) return false;
      return store.transaction(async (repos) => {
        await repos.factors.deletePendingFactors(row.user_id);
        await audit(repos, ctx, 'user.authentication.cancel', 'success', row.user_id);
        return repos.tokens.endTransaction(row.token_hash, clock());
      });
    },

    /** Exchanges a one-time session token (from SUCCESS) for who signed in and how. */
    async redeemSessionToken(sessionToken: string): Promise<{ userId: string; amr: string[] } | undefined> {
      if (sessionToken.length > 200) return undefined;
      const row = await store.repos.tokens.consumeOneTimeToken(hashBearerSecret(sessionToken), 'session', clock());
      return row ? { userId: row.user_id, amr: JSON.parse(row.amr) as string[] } : undefined;
    },
  };
}

export type AuthnService = ReturnType<typeof createAuthnService>;
