import type { UserRow } from '../../../accounts/repository.ts';
import { createUserEventRecorder, type RequestOrigin } from '../../../audit/record.ts';
import type { PolicyConfig } from '../../../config/schema.ts';
import type { Repositories, Store } from '../../../db/store.ts';
import type { SecretBox } from '../../../lib/secret-box.ts';
import {
  type Clock,
  constantTimeEqual,
  createBearerSecret,
  createId,
  hashBearerSecret,
  type RandomBytes,
} from '../../../lib/tokens.ts';
import type { Notifier } from '../../../mail/notifications.ts';
import { describeBrowser } from '../../../profile/describe.ts';
import type { AttemptGuard } from '../../attempts.ts';
import type { FactorRow } from '../repository.ts';
import type { SeedVault } from '../totp/seed.ts';
import { createNumberChallenge, type PushDecision, parseDevicePublicKey, verifyAnswerSignature } from './answer.ts';
import { approximatePlace } from './context.ts';
import type { PushChallengeRow, PushDeviceRow } from './repository.ts';
import { type PushSignals, pushTopics } from './signals.ts';

/** Okta's push factor. */
export const PUSH = { factorType: 'push', provider: 'OKTA' } as const;

/** What a push shows on the device. */
export interface PushContext {
  app: string;
  ip: string | null;
  place: string;
  browser: string;
}

/** A push as the device receives it: never the correct number, only the three to choose from. */
export interface DevicePush {
  id: string;
  numbers: number[];
  createdAt: string;
  expiresAt: string;
  context: PushContext;
}

export type SendResult =
  | { ok: true; challenge: PushChallengeRow }
  | { ok: false; reason: 'PER_SIGN_IN_CAP' | 'USER_RATE_LIMIT' | 'NO_DEVICE' };

export type AnswerResult =
  | { ok: true; outcome: 'approved' | 'denied' | 'wrong_number'; reportUrl?: string }
  | { ok: false; status: 400 | 401 | 404 | 409 | 410; reason: string };

export type EnrollResult =
  | {
      ok: true;
      device: PushDeviceRow;
      deviceToken: string;
      user: UserRow;
      totp: { factorId: string; sharedSecret: string; period: number; digits: 6 };
    }
  | { ok: false; reason: string };

export interface PushDeps {
  store: Store;
  policy: Readonly<PolicyConfig>;
  clock: Clock;
  random: RandomBytes;
  /** Seals activation codes so the waiting page can show them again. */
  secretBox: SecretBox;
  seeds: SeedVault;
  signals: PushSignals;
  attempts: AttemptGuard;
  notifier: Notifier;
  /** The idp public URL: activation links point to it. */
  idpUrl: string;
  /** A single-use "report suspicious activity" link (the reports service); none when absent. */
  reportLink?: (repos: Repositories, userId: string, source: string) => Promise<string>;
}

const MAX_DEVICE_NAME = 60;

/** Keeps a device name printable and short (it appears in emails and pages). */
export function cleanDeviceName(name: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const clean = name.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return clean.length >= 1 && clean.length <= MAX_DEVICE_NAME ? clean : undefined;
}

/**
 * The factors removed together with `factorId` (itself first): Okta Verify is one authenticator,
 * so the push factor and the TOTP factor its device enrolled go together, whichever of the two is
 * removed (Okta: deleting either Okta Verify factor unenrolls the app and its device). Any other
 * factor goes alone. Read it before deleting: the device row goes with its push factor.
 */
export async function factorsRemovedWith(repos: Repositories, userId: string, factorId: string): Promise<string[]> {
  const device = await repos.factors.push.findDeviceOfFactor(userId, factorId);
  const companions = device ? [device.factor_id, device.totp_factor_id] : [];
  return [factorId, ...companions.filter((id): id is string => !!id && id !== factorId)];
}

/**
 * Deletes `factorId` with the factors that go with it (`factorsRemovedWith`), in the caller's
 * transaction; the rows deleted, `factorId`'s first, or none when it was already gone.
 */
export async function deleteFactorWithCompanions(
  repos: Repositories,
  userId: string,
  factorId: string,
): Promise<FactorRow[]> {
  const removed: FactorRow[] = [];
  for (const id of await factorsRemovedWith(repos, userId, factorId)) {
    const factor = await repos.factors.findFactor(userId, id);
    if (factor && (await repos.factors.deleteFactor(userId, id))) removed.push(factor);
    else if (id === factorId) return [];
  }
  return removed;
}

/**
 * The push factor: activation of a `traqs-verify` device, pushes with number matching, the
 * device's signed answers, and the rules against push bombing. Sign-in (`AuthnService`) and the
 * device endpoints both go through this.
 */
export function createPushFactor(deps: PushDeps) {
  const { store, policy, clock, random, secretBox, seeds, signals } = deps;
  const audit = createUserEventRecorder(clock);
  const timeoutMs = policy.pushTimeoutMinutes * 60_000;
  const activationAad = (factorId: string) => `push-activation:${factorId}`;
  const activationLink = (code: string) => `${deps.idpUrl}/verify/activate?code=${encodeURIComponent(code)}`;

  function devicePush(c: PushChallengeRow): DevicePush {
    return {
      id: c.id,
      numbers: JSON.parse(c.numbers) as number[],
      createdAt: new Date(c.created_at).toISOString(),
      expiresAt: new Date(c.expires_at).toISOString(),
      context: JSON.parse(c.context) as PushContext,
    };
  }

  async function publish(topic: string) {
    // A lost signal only delays: readers poll the database as well.
    await signals.publish(topic).catch(() => undefined);
  }

  return {
    signals,

    /** A push factor waiting for its device. */
    pendingFactor(userId: string, now: number): FactorRow {
      return {
        id: createId('opf', random),
        user_id: userId,
        factor_type: PUSH.factorType,
        provider: PUSH.provider,
        status: 'PENDING_ACTIVATION',
        name: 'Okta Verify (push)',
        secret_enc: null,
        last_used_step: null,
        created_at: now,
        activated_at: null,
        last_used_at: null,
      };
    },

    /** A new single-use activation code for a pending push factor (stored hashed and sealed). */
    async issueActivation(repos: Repositories, factor: FactorRow, now: number) {
      const code = createBearerSecret(random);
      const expiresAt = now + policy.pushActivationMinutes * 60_000;
      await repos.factors.push.createActivation({
        code_hash: hashBearerSecret(code),
        code_sealed: secretBox.seal(Buffer.from(code, 'utf8'), activationAad(factor.id)),
        user_id: factor.user_id,
        factor_id: factor.id,
        created_at: now,
        expires_at: expiresAt,
        consumed_at: null,
      });
      return { code, link: activationLink(code), expiresAt };
    },

    /** The live activation code of a pending factor, shown again while the page waits. */
    async activationOf(repos: Repositories, factorId: string, now: number) {
      const row = await repos.factors.push.findLiveActivation(factorId, now);
      if (!row) return undefined;
      const code = secretBox.open(row.code_sealed, activationAad(factorId)).toString('utf8');
      return { code, link: activationLink(code), expiresAt: row.expires_at };
    },

    /**
     * `traqs-verify enroll`: the activation code (single use, short-lived) proves the device was
     * given to the user who is enrolling; the push factor becomes ACTIVE with the device's public
     * key, and an Okta Verify TOTP factor is created beside it (the device's `code` command).
     */
    async enrollDevice(
      input: { activationCode: string; name: string; publicKey: unknown },
      ctx: RequestOrigin,
    ): Promise<EnrollResult> {
      const name = cleanDeviceName(input.name);
      if (!name) return { ok: false, reason: `name: 1 to ${MAX_DEVICE_NAME} printable characters` };
      const key = parseDevicePublicKey(input.publicKey);
      if (!key) return { ok: false, reason: 'publicKey: an EC P-256 public key as a JWK' };
      const codeHash = hashBearerSecret(input.activationCode);
      const activation = await store.repos.factors.push.findActivation(codeHash);
      const now = clock();
      const invalid = { ok: false as const, reason: 'The activation code is not valid or has expired.' };
      if (!activation || activation.consumed_at !== null || activation.expires_at <= now) return invalid;
      const user = await store.repos.users.findUserById(activation.user_id);
      if (!user) return invalid;
      const deviceToken = createBearerSecret(random);
      return store.transaction(async (repos) => {
        if (!(await repos.factors.push.consumeActivation(codeHash, now))) return invalid;
        if (!(await repos.factors.push.activatePushFactor(activation.factor_id, name, now))) return invalid;
        const pending = seeds.pendingFactor(
          {
            userId: user.id,
            factorType: 'token:software:totp',
            provider: 'OKTA',
            name: `Okta Verify (code) on ${name}`,
          },
          random,
          now,
        );
        const totpFactor: FactorRow = { ...pending, status: 'ACTIVE', activated_at: now };
        await repos.factors.createFactor(totpFactor);
        const device: PushDeviceRow = {
          id: createId('pfd', random),
          factor_id: activation.factor_id,
          user_id: user.id,
          totp_factor_id: totpFactor.id,
          name,
          public_key: JSON.stringify(key.jwk),
          token_hash: hashBearerSecret(deviceToken),
          created_at: now,
          last_seen_at: now,
        };
        await repos.factors.push.createDevice(device);
        const factor = await repos.factors.findFactor(user.id, activation.factor_id);
        await audit(repos, ctx, 'user.mfa.factor.activate', 'success', user.id, {
          factorId: activation.factor_id,
          provider: PUSH.provider,
          factorType: PUSH.factorType,
          deviceId: device.id,
          name,
        });
        if (factor) await deps.notifier.factorEnrolled(repos, user, factor, ctx);
        const { sharedSecret } = seeds.describe(
          { id: totpFactor.id, secret_enc: totpFactor.secret_enc ?? '' },
          user.login,
        );
        return {
          ok: true as const,
          device,
          deviceToken,
          user,
          totp: { factorId: totpFactor.id, sharedSecret, period: policy.totpStepSeconds, digits: 6 as const },
        };
      });
    },

    /** The device presenting `token`, if `deviceId` is its id (hash lookup, constant-time id check). */
    async authenticateDevice(deviceId: string, token: string): Promise<PushDeviceRow | undefined> {
      if (token.length < 20 || token.length > 200) return undefined;
      const device = await store.repos.factors.push.findDeviceByTokenHash(hashBearerSecret(token));
      if (!device || !constantTimeEqual(device.id, deviceId)) return undefined;
      return device;
    },

    /**
     * Pushes the device has yet to answer (sent on connect, then as they come); undefined once the
     * device was removed (unenrolled, factor reset by support), which ends its event stream.
     */
    async pendingPushes(device: PushDeviceRow): Promise<DevicePush[] | undefined> {
      const now = clock();
      if (!(await store.repos.factors.push.findDeviceByFactor(device.factor_id))) return undefined;
      await store.repos.factors.push.touchDevice(device.id, now);
      return (await store.repos.factors.push.listWaiting(device.factor_id, now)).map(devicePush);
    },

    /**
     * Sends a push for a sign-in transaction: within the per-sign-in cap and the per-user rate
     * limit (both in the database, so they hold across nodes), with a new number challenge that
     * expires after `pushTimeoutMinutes`. Any earlier push of the transaction still waiting is
     * withdrawn, so only the newest can be approved.
     */
    async send(
      txnHash: string,
      user: UserRow,
      factor: FactorRow,
      ctx: RequestOrigin & { app: string },
    ): Promise<SendResult> {
      const now = clock();
      const repo = store.repos.factors.push;
      if (!(await repo.findDeviceByFactor(factor.id))) return { ok: false, reason: 'NO_DEVICE' };
      const recent = await repo.countRecentPushes(user.id, now - 10 * 60_000);
      if (recent >= policy.pushesPerUserPer10Minutes) {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.mfa.okta_verify.push_refused', 'denied', user.id, { reason: 'user rate limit' }),
        );
        return { ok: false, reason: 'USER_RATE_LIMIT' };
      }
      const seq = await repo.countSend(txnHash, policy.pushesPerSignIn);
      if (seq === undefined) {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.mfa.okta_verify.push_refused', 'denied', user.id, { reason: 'per sign-in cap' }),
        );
        return { ok: false, reason: 'PER_SIGN_IN_CAP' };
      }
      const { numbers, correct } = createNumberChallenge(random);
      const context: PushContext = {
        app: ctx.app,
        ip: ctx.ip,
        place: approximatePlace(ctx.ip),
        browser: describeBrowser(ctx.userAgent),
      };
      const challenge: PushChallengeRow = {
        id: createId('pch', random),
        user_id: user.id,
        factor_id: factor.id,
        txn_hash: txnHash,
        seq,
        numbers: JSON.stringify(numbers),
        correct_number: correct,
        status: 'WAITING',
        reason: null,
        context: JSON.stringify(context),
        created_at: now,
        expires_at: now + timeoutMs,
        answered_at: null,
        result_seen_at: null,
      };
      await store.transaction(async (repos) => {
        await repos.factors.push.createChallenge(challenge);
        await repos.factors.push.supersedeEarlier(txnHash, seq, now);
        await audit(repos, ctx, 'user.mfa.okta_verify.push_sent', 'success', user.id, {
          factorId: factor.id,
          challengeId: challenge.id,
        });
      });
      await publish(pushTopics.factor(factor.id));
      return { ok: true, challenge };
    },

    /** The transaction's last push, with a WAITING one past its time turned into TIMEOUT. */
    async current(txnHash: string, ctx: RequestOrigin): Promise<PushChallengeRow | undefined> {
      const c = await store.repos.factors.push.latestChallenge(txnHash);
      const now = clock();
      if (c?.status === 'WAITING' && c.expires_at <= now) {
        if (await store.repos.factors.push.expireChallenge(c.id, now)) {
          await store.transaction((repos) =>
            audit(repos, ctx, 'user.mfa.okta_verify.push_timeout', 'failure', c.user_id, { challengeId: c.id }),
          );
          await publish(pushTopics.factor(c.factor_id));
        }
        return { ...c, status: 'TIMEOUT', answered_at: now };
      }
      return c;
    },

    markResultSeen: (id: string) => store.repos.factors.push.markResultSeen(id, clock()),

    /**
     * The device's answer. The signature (ECDSA P-256 over the canonical answer, which names the
     * challenge) is checked with the key registered at enrollment; the challenge then leaves
     * WAITING exactly once, so the same signed answer sent again is refused (replay). A denial or
     * a wrong number is a failed attempt (lockout, NIST 800-63B §5.2.2) and returns a
     * "report suspicious activity" link.
     */
    async answer(
      device: PushDeviceRow,
      input: { challengeId: string; decision: PushDecision; number: number | null; signature: string },
      ctx: RequestOrigin,
    ): Promise<AnswerResult> {
      const repo = store.repos.factors.push;
      const c = await repo.findChallenge(input.challengeId);
      if (!c || c.factor_id !== device.factor_id) return { ok: false, status: 404, reason: 'No such push.' };
      const key = parseDevicePublicKey(JSON.parse(device.public_key));
      const fields = { challengeId: c.id, deviceId: device.id, decision: input.decision, number: input.number };
      if (!key || !verifyAnswerSignature(key.key, fields, input.signature)) {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.mfa.okta_verify.answer', 'denied', c.user_id, {
            challengeId: c.id,
            reason: 'bad signature',
          }),
        );
        return { ok: false, status: 401, reason: 'The signature does not verify with this device key.' };
      }
      const now = clock();
      await repo.touchDevice(device.id, now);
      const refused = async (status: 409 | 410, reason: string, why: string): Promise<AnswerResult> => {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.mfa.okta_verify.answer', 'denied', c.user_id, { challengeId: c.id, reason: why }),
        );
        return { ok: false, status, reason };
      };
      if (c.status === 'TIMEOUT') return refused(410, 'This push expired. Sign in again to get a new one.', 'expired');
      if (c.status === 'REJECTED' && c.reason === 'superseded') {
        return refused(410, 'A newer push replaced this one: answer the newest.', 'superseded');
      }
      if (c.status !== 'WAITING') {
        return refused(409, 'This push was already answered; an answer counts once.', `replay (${c.status})`);
      }
      // Only the newest push of a sign-in counts, whatever order parallel sends committed in.
      const newest = await repo.latestChallenge(c.txn_hash);
      if (newest && newest.seq > c.seq) {
        await repo.supersedeEarlier(c.txn_hash, newest.seq, now);
        return refused(410, 'A newer push replaced this one: answer the newest.', 'superseded');
      }
      if (c.expires_at <= now) {
        if (await repo.expireChallenge(c.id, now)) await publish(pushTopics.challenge(c.id));
        return refused(410, 'This push expired. Sign in again to get a new one.', 'expired');
      }
      const right =
        input.decision === 'APPROVE' &&
        input.number !== null &&
        constantTimeEqual(String(input.number), String(c.correct_number));
      const outcome = input.decision === 'DENY' ? 'denied' : right ? 'approved' : 'wrong_number';
      const status = outcome === 'approved' ? 'APPROVED' : 'REJECTED';
      if (!(await repo.answerChallenge(c.id, status, outcome === 'approved' ? null : outcome, now))) {
        return refused(409, 'This push was already answered; an answer counts once.', 'replay (race)');
      }
      await publish(pushTopics.challenge(c.id));
      if (outcome === 'approved') {
        await store.transaction((repos) =>
          audit(repos, ctx, 'user.mfa.okta_verify.push_approved', 'success', c.user_id, { challengeId: c.id }),
        );
        return { ok: true, outcome };
      }
      // A denial or a wrong number: a failed attempt, the same counter as a wrong code.
      const attempt = await deps.attempts.reserve(c.user_id);
      const action = outcome === 'denied' ? 'user.mfa.okta_verify.deny_push' : 'user.mfa.okta_verify.wrong_number';
      if (attempt !== null) {
        await deps.attempts.recordFailure(c.user_id, attempt, ctx, action, {
          challengeId: c.id,
          factorId: c.factor_id,
        });
      } else {
        await store.transaction((repos) => audit(repos, ctx, action, 'failure', c.user_id, { challengeId: c.id }));
      }
      const reportUrl = deps.reportLink
        ? await store.transaction((repos) => deps.reportLink?.(repos, c.user_id, 'push') ?? Promise.resolve(''))
        : undefined;
      return { ok: true, outcome, ...(reportUrl ? { reportUrl } : {}) };
    },

    /** The user's push devices (the `devices` command). */
    listDevices: (userId: string) => store.repos.factors.push.listDevices(userId),

    /**
     * Ends at once the event streams (on whichever node) of the devices whose factors were just
     * removed, committed (a profile removal, a support reset); without it they end at the next
     * periodic re-read. Only push factors have streams.
     */
    async factorsRemoved(factors: readonly Pick<FactorRow, 'id' | 'factor_type'>[]): Promise<void> {
      for (const f of factors) if (f.factor_type === PUSH.factorType) await publish(pushTopics.factor(f.id));
    },

    /** `traqs-verify unenroll`: the push factor and its TOTP factor go; the device token dies with them. */
    async removeDevice(device: PushDeviceRow, ctx: RequestOrigin): Promise<boolean> {
      const user = await store.repos.users.findUserById(device.user_id);
      if (!user) return false;
      const removed = await store.transaction(async (repos) => {
        if (!(await deleteFactorWithCompanions(repos, user.id, device.factor_id)).length) return false;
        await audit(repos, ctx, 'user.mfa.factor.deactivate', 'success', user.id, {
          factorId: device.factor_id,
          factorType: PUSH.factorType,
          deviceId: device.id,
          name: device.name,
          via: 'traqs-verify unenroll',
        });
        await deps.notifier.factorRemoved(repos, user, device.name, ctx);
        return true;
      });
      // Its open event stream (on whichever node) ends at once.
      if (removed) await publish(pushTopics.factor(device.factor_id));
      return removed;
    },
  };
}
export type PushFactor = ReturnType<typeof createPushFactor>;
