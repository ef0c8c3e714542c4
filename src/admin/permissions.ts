import type { AdminRole, Role } from '../accounts/model.ts';

/**
 * Who may do what (issue #7, FAQ "who does what"): a firm's SAA requests usernames and
 * deactivations and sees its own firm's users; Operations creates users, resends enrollment
 * emails, edits personal data, unlocks, suspends, deactivates and handles suspicious-activity
 * reports; Support resets factors after a lost device, sends password-reset links, unlocks,
 * switches users to federated sign-in, manages firms' identity providers, assigns apps and revokes
 * refresh tokens; `admin` may do everything. Checked on the server for every action (`authorize` in `service.ts`).
 */
export const PERMISSIONS = {
  'users.read': ['saa', 'operations', 'support', 'admin'],
  'users.create': ['operations', 'admin'],
  'users.activate': ['operations', 'admin'],
  'users.resendEnrollment': ['operations', 'admin'],
  'users.updateProfile': ['operations', 'admin'],
  'users.unlock': ['operations', 'support', 'admin'],
  'users.suspend': ['operations', 'admin'],
  'users.unsuspend': ['operations', 'admin'],
  'users.deactivate': ['operations', 'admin'],
  'users.delete': ['admin'],
  'users.signOut': ['operations', 'admin'],
  'factors.read': ['operations', 'support', 'admin'],
  'factors.reset': ['support', 'admin'],
  'password.sendReset': ['support', 'admin'],
  'authMode.set': ['support', 'admin'],
  'apps.read': ['operations', 'support', 'admin'],
  'apps.assign': ['support', 'admin'],
  'refreshTokens.read': ['support', 'admin'],
  'refreshTokens.revoke': ['support', 'admin'],
  'requests.create': ['saa', 'admin'],
  'requests.read': ['saa', 'operations', 'admin'],
  'requests.decide': ['operations', 'admin'],
  'reports.read': ['operations', 'admin'],
  'reports.close': ['operations', 'admin'],
  'logs.read': ['operations', 'support', 'admin'],
  /** Firms' identity providers for federated sign-in (issue #8): list, add, remove. */
  'idp.manage': ['support', 'admin'],
  'roles.manage': ['admin'],
} as const satisfies Record<string, readonly AdminRole[]>;

export type Permission = keyof typeof PERMISSIONS;

/** Permissions that only read: an SAA's reach and the admin-target rule below do not forbid less. */
const READS: ReadonlySet<Permission> = new Set([
  'users.read',
  'factors.read',
  'apps.read',
  'refreshTokens.read',
  'requests.read',
  'reports.read',
  'logs.read',
]);

export function isReadPermission(permission: Permission): boolean {
  return READS.has(permission);
}

/** Whether any of `roles` carries `permission`, ignoring whose data it is about. */
export function hasPermission(roles: readonly Role[], permission: Permission): boolean {
  const allowed: readonly Role[] = PERMISSIONS[permission];
  return roles.some((r) => allowed.includes(r));
}

/**
 * Whether `roles` carry `permission` only through `saa`, so the action is limited to the SAA's own
 * firm. An SAA who is also, say, `admin` is not limited.
 */
export function limitedToOwnFirm(roles: readonly Role[], permission: Permission): boolean {
  const allowed: readonly Role[] = PERMISSIONS[permission];
  return roles.includes('saa') && !roles.some((r) => r !== 'saa' && allowed.includes(r));
}

export type AccessDecision = { allowed: true } | { allowed: false; reason: string };

/**
 * The pure authorization rule for one action on one user (or on no user, for firm-wide lists and
 * requests): role, then the SAA's firm, then the protection of administrators.
 *
 * - `targetFirmId`: the firm the action is about (the target user's, or a request's); `null` when
 *   the user does not exist, which an SAA is answered the same as another firm's user, so an SAA
 *   cannot tell whether an id or username exists outside its firm.
 * - `targetRoles`: a user holding `admin` may be changed only by an `admin` (no privilege escalation
 *   by resetting an administrator's factors or email address).
 */
export function decideAccess(
  principal: { roles: readonly Role[]; firmId: string | null },
  permission: Permission,
  target?: { firmId: string | null; roles?: readonly Role[] },
): AccessDecision {
  if (!hasPermission(principal.roles, permission)) {
    return { allowed: false, reason: `role ${principal.roles.join(',') || 'none'} may not ${permission}` };
  }
  if (target && limitedToOwnFirm(principal.roles, permission)) {
    if (!principal.firmId || target.firmId !== principal.firmId) {
      return { allowed: false, reason: 'outside the SAA firm' };
    }
  }
  if (target?.roles?.includes('admin') && !isReadPermission(permission) && !principal.roles.includes('admin')) {
    return { allowed: false, reason: 'only an administrator may change an administrator' };
  }
  return { allowed: true };
}
