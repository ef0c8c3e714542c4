/**
 * Lifetimes of what the authorization server signs, in seconds. DESIGN.md "OAuth 2.0 / OpenID
 * Connect": access tokens for the download API last 60 minutes.
 */
export interface SignedTokenLifetimes {
  /** JWT access tokens (RFC 9068). */
  accessTokenSeconds: number;
  /** ID tokens (OpenID Connect Core §2); oidc-provider's default is one hour. */
  idTokenSeconds: number;
  /**
   * Added to a retiring key's window: covers nodes that still sign with the old key until they
   * reload the key set, and verifiers' clock skew.
   */
  rotationMarginSeconds: number;
}

export const DEFAULT_SIGNED_TOKEN_LIFETIMES: Readonly<SignedTokenLifetimes> = Object.freeze({
  accessTokenSeconds: 60 * 60,
  idTokenSeconds: 60 * 60,
  rotationMarginSeconds: 5 * 60,
});

/**
 * How long a key that stopped signing must still verify: the longest-lived token it may have
 * signed, plus the margin. Refresh tokens are opaque (not signed), so they do not count.
 */
export function retiringKeyWindowMs(lifetimes: Readonly<SignedTokenLifetimes>): number {
  return (Math.max(lifetimes.accessTokenSeconds, lifetimes.idTokenSeconds) + lifetimes.rotationMarginSeconds) * 1000;
}
