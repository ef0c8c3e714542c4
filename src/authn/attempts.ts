import { createUserEventRecorder } from '../audit/record.ts';
import type { EnvironmentConfig, PolicyConfig } from '../config/schema.ts';
import type { Repositories, Store } from '../db/store.ts';
import type { Clock, RandomBytes } from '../lib/tokens.ts';
import type { Notifier } from '../mail/notifications.ts';
import { type EmailLinkPurpose, issueEmailLink } from './email-links.ts';
import type { RequestContext } from './service.ts';

/**
 * The consecutive-failure counter and the lockout it leads to, shared by everything that checks a
 * password or a code (sign-in, "Verify it's you", password change), so all of them lock the same
 * way: 5 failures, an email with an 8-hour unlock link, support-only after 10 lockouts in a row.
 */
export function createAttemptGuard(deps: {
  store: Store;
  policy: Readonly<PolicyConfig>;
  environment: Readonly<EnvironmentConfig>;
  clock: Clock;
  random: RandomBytes;
  notifier: Notifier;
}) {
  const { store, policy, clock } = deps;
  const audit = createUserEventRecorder(clock);

  /** A single-use recovery link (FAQ: valid 8 hours) for the user's email. */
  function recoveryLink(repos: Repositories, userId: string, purpose: EmailLinkPurpose, now: number) {
    return issueEmailLink(repos, {
      userId,
      purpose,
      ttlMs: policy.recoveryLinkHours * 3_600_000,
      now,
      random: deps.random,
      url: (token) => `${deps.environment.idp.publicUrl}/recover?token=${encodeURIComponent(token)}`,
    });
  }

  return {
    /**
     * The environment whose idp the links point to; sign-in also takes the WebAuthn relying party
     * from its public URL when none is given explicitly (`AuthnDeps.webauthn`).
     */
    environment: deps.environment,
    recoveryLink,

    /**
     * Reserves an attempt before a credential is checked, so parallel guesses cannot exceed the
     * limit (OWASP ASVS 2.2.1). The attempt number, or null when the limit is already used up.
     * A right credential gives the reservation back with `release`.
     */
    async reserve(userId: string): Promise<number | null> {
      const attempt = await store.repos.users.recordFailedAttempt(userId);
      if (attempt > policy.maxFailedAttempts) {
        await store.repos.users.releaseAttempt(userId);
        return null;
      }
      return attempt;
    },

    release(userId: string): Promise<void> {
      return store.repos.users.releaseAttempt(userId);
    },

    /**
     * Records a wrong credential (the reservation stays taken) and locks the account when it
     * reaches the limit. True when the account is now locked.
     */
    async recordFailure(
      userId: string,
      attempt: number,
      ctx: RequestContext,
      action: string,
      details: Record<string, unknown>,
    ): Promise<boolean> {
      return store.transaction(async (repos) => {
        await audit(repos, ctx, action, 'failure', userId, { ...details, consecutiveFailures: attempt });
        if (attempt < policy.maxFailedAttempts) return false;
        const now = clock();
        if (await repos.users.lockUser(userId, now)) {
          await repos.tokens.endUserTransactions(userId, now);
          const user = await repos.users.findUserById(userId);
          if (user) {
            // Okta's rule: after N lockouts in a row without a successful sign-in, only support unlocks.
            const supportOnly = user.lockout_count >= policy.lockoutsBeforeSupportUnlock;
            const options: { unlockUrl?: string; unlockUrlExpiresAt?: number; autoUnlockAt?: number } = {};
            if (supportOnly) {
              // Links sent before must not unlock what only support may unlock now.
              await repos.tokens.revokeEmailTokens(user.id, 'recovery_unlock', now);
              await repos.tokens.revokeEmailTokens(user.id, 'recovery_password', now);
            } else {
              options.autoUnlockAt = now + policy.lockoutAutoUnlockMinutes * 60_000;
              const link = await recoveryLink(repos, user.id, 'recovery_unlock', now);
              options.unlockUrl = link.url;
              options.unlockUrlExpiresAt = link.expiresAt;
            }
            await deps.notifier.accountLocked(repos, user, ctx, options);
            await audit(repos, ctx, 'user.account.lock', 'success', userId, {
              reason: 'too many failed attempts',
              lockoutCount: user.lockout_count,
              supportOnly,
            });
          }
        }
        return true;
      });
    },
  };
}
export type AttemptGuard = ReturnType<typeof createAttemptGuard>;
