import type { Repositories } from '../db/store.ts';
import { createBearerSecret, hashBearerSecret, type RandomBytes } from '../lib/tokens.ts';

/** The purposes of emailed links; a token of one purpose is never accepted for another. */
export type EmailLinkPurpose = 'activation' | 'recovery_password' | 'recovery_unlock' | 'report';

/**
 * Creates a single-use emailed link: a 256-bit secret in the URL, only its SHA-256 stored.
 * Earlier unused links of the same purpose stop working, so only the newest email counts.
 */
export async function issueEmailLink(
  repos: Repositories,
  input: {
    userId: string;
    purpose: EmailLinkPurpose;
    ttlMs: number;
    now: number;
    random: RandomBytes;
    url: (token: string) => string;
    /** Keep earlier links of this purpose working (each notification has its own report link). */
    keepEarlier?: boolean;
  },
): Promise<{ url: string; expiresAt: number }> {
  const token = createBearerSecret(input.random);
  const expiresAt = input.now + input.ttlMs;
  if (!input.keepEarlier) await repos.tokens.revokeEmailTokens(input.userId, input.purpose, input.now);
  await repos.tokens.createEmailToken({
    token_hash: hashBearerSecret(token),
    user_id: input.userId,
    purpose: input.purpose,
    created_at: input.now,
    expires_at: expiresAt,
    consumed_at: null,
    attempts: 0,
  });
  return { url: input.url(token), expiresAt };
}
