/** Okta's user status lifecycle, plus RECOVERY while a reset is under way. */
export const USER_STATUSES = [
  'STAGED',
  'PROVISIONED',
  'ACTIVE',
  'RECOVERY',
  'LOCKED_OUT',
  'PASSWORD_EXPIRED',
  'SUSPENDED',
  'DEPROVISIONED',
] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

export const ROLES = ['user', 'saa', 'operations', 'support', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Roles that administer other users (every role but `user`). */
export const ADMIN_ROLES = ['saa', 'operations', 'support', 'admin'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

export const APPS = ['portal', 'download'] as const;
export type App = (typeof APPS)[number];

export const AUTH_MODES = ['local', 'federated'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

/** Statuses in which a password sign-in may proceed. */
export const SIGN_IN_STATUSES: readonly UserStatus[] = ['ACTIVE', 'RECOVERY', 'PASSWORD_EXPIRED'];

/** Reads `users.preferences`; anything unreadable counts as the defaults. */
export function parsePreferences(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The "send push automatically" preference (FAQ): the push goes out once the password is accepted. */
export function wantsAutoPush(user: { preferences: string }): boolean {
  return parsePreferences(user.preferences).autoPush === true;
}
