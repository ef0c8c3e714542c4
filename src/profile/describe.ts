import type { AuditRow } from '../audit/repository.ts';

/** A moment as people read it on the profile: `2026-12-04 12:00 UTC`, or a dash when there is none. */
export function formatTime(ms: number | null): string {
  return ms === null ? '—' : `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)} UTC`;
}

const PROVIDERS: Readonly<Record<string, string>> = {
  GOOGLE: 'Google Authenticator',
  OKTA: 'Okta Verify (code)',
  FIDO: 'Okta Verify Desktop (FastPass)',
};

const FACTOR_TYPES: Readonly<Record<string, string>> = {
  'token:software:totp': 'Authenticator app (TOTP)',
  push: 'Okta Verify (push)',
  webauthn: 'Okta Verify Desktop (FastPass)',
  sms: 'SMS',
  call: 'Voice call',
};

/** The kind of a factor as the profile names it, e.g. "Authenticator app (TOTP)". */
export function describeFactorType(factorType: string): string {
  return FACTOR_TYPES[factorType] ?? factorType;
}

/**
 * The method an audit event names, from `factorType` (`token:software:totp:GOOGLE`), `provider`
 * or `factor` details, or null when it names none.
 */
export function describeMethod(details: Record<string, unknown>): string | null {
  if (typeof details.name === 'string') return details.name;
  const key = [details.factorType, details.factor, details.provider].find((v) => typeof v === 'string');
  if (typeof key !== 'string') return null;
  if (key === 'password') return 'Password';
  // `push:OKTA` shares its provider with Okta Verify's code.
  if (key === 'push' || key.startsWith('push:')) return describeFactorType('push');
  const provider = key.split(':').at(-1) ?? '';
  return PROVIDERS[provider] ?? describeFactorType(key);
}

const OS_PATTERNS: readonly [RegExp, string][] = [
  [/Windows/, 'Windows'],
  [/iPhone|iPad|iPod/, 'iOS'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/Android/, 'Android'],
  [/CrOS/, 'ChromeOS'],
  [/Linux/, 'Linux'],
];

// Order matters: Edge and Opera also say Chrome, Chrome also says Safari.
const BROWSER_PATTERNS: readonly [RegExp, string][] = [
  [/Edg(?:e|A|iOS)?\/(\d+)/, 'Edge'],
  [/OPR\/(\d+)/, 'Opera'],
  [/Firefox\/(\d+)/, 'Firefox'],
  [/FxiOS\/(\d+)/, 'Firefox'],
  [/(?:Headless)?Chrom(?:e|ium)\/(\d+)/, 'Chrome'],
  [/CriOS\/(\d+)/, 'Chrome'],
  [/Version\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, 'Safari'],
];

/**
 * A user agent as a person recognises it ("Chrome 156 on Linux"). Anything unrecognised (scripts,
 * the Okta SDKs) is shown as sent, shortened: the profile must never hide where a sign-in came from.
 */
export function describeBrowser(userAgent: string | null): string {
  if (!userAgent) return 'Unknown';
  const os = OS_PATTERNS.find(([re]) => re.test(userAgent))?.[1];
  for (const [re, name] of BROWSER_PATTERNS) {
    const m = re.exec(userAgent);
    if (m) return `${name} ${m[1]}${os ? ` on ${os}` : ''}`;
  }
  return userAgent.length > 60 ? `${userAgent.slice(0, 59)}…` : userAgent;
}

/** One line of "Recent activity". */
export interface ActivityEntry {
  at: number;
  /** What happened, in words ("Signed in", "Security method removed"). */
  what: string;
  kind: 'sign-in' | 'change';
  outcome: 'success' | 'failure' | 'denied';
  ip: string | null;
  browser: string;
  method: string | null;
}

type Describer = (details: Record<string, unknown>, outcome: string) => Pick<ActivityEntry, 'what' | 'kind'> | null;

const signIn = (what: string) => () => ({ what, kind: 'sign-in' as const });
const change = (what: string) => () => ({ what, kind: 'change' as const });

/** The audit actions a user sees as their own activity; everything else stays in the admin log. */
const ACTIONS: Readonly<Record<string, Describer>> = {
  'user.authentication.sso': (_d, o) => (o === 'success' ? signIn('Signed in')() : null),
  'user.session.start': (d, o) =>
    o === 'failure'
      ? { what: 'Sign-in failed: wrong password', kind: 'sign-in' }
      : o === 'denied'
        ? { what: `Sign-in refused${typeof d.reason === 'string' ? ` (${d.reason})` : ''}`, kind: 'sign-in' }
        : null,
  'user.authentication.auth_via_mfa': (_d, o) =>
    o === 'failure' ? { what: 'Sign-in failed: wrong code', kind: 'sign-in' } : null,
  'user.authentication.reverify': (_d, o) =>
    o === 'failure' ? { what: "Wrong code when verifying it's you", kind: 'sign-in' } : null,
  'user.session.end': signIn('Session signed out (too many failed attempts)'),
  'user.session.clear': change('Signed out all other sessions'),
  'user.account.lock': signIn('Account locked after too many failed attempts'),
  'user.account.unlock': change('Account unlocked'),
  'user.lifecycle.activate': (_d, o) => (o === 'success' ? change('Account activated')() : null),
  'user.mfa.factor.activate': (_d, o) => (o === 'success' ? change('Security method added')() : null),
  'user.mfa.factor.deactivate': change('Security method removed'),
  'user.mfa.factor.import': change('Retired method imported from the previous system'),
  'user.mfa.factor.suspected_clone': signIn('FastPass refused: the device may have been copied'),
  'user.mfa.okta_verify.deny_push': signIn('Push denied on your device'),
  'user.mfa.okta_verify.wrong_number': signIn('Push refused: the wrong number was picked'),
  'user.mfa.okta_verify.push_timeout': signIn('Push expired without an answer'),
  'user.mfa.okta_verify.push_refused': signIn('Push not sent: too many pushes'),
  // Activation and recovery record their own event; this one only for a change from the profile.
  'user.account.update_password': (d, o) =>
    d.via !== 'profile'
      ? null
      : o === 'success'
        ? change('Password changed')()
        : change('Password change refused: wrong current password')(),
  'user.account.reset_password': change('Password reset with an emailed link'),
  'user.account.update_recovery_question': change('Recovery question changed'),
  'user.account.update_profile': change('Contact details changed'),
  'user.account.update_preferences': change('Preference changed'),
  'user.account.report_suspicious_activity': change('Reported suspicious activity'),
};

function parseDetails(json: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** An audit event as a line of the user's "Recent activity", or undefined if it is not shown there. */
export function describeActivity(row: AuditRow): ActivityEntry | undefined {
  const describe = ACTIONS[row.action];
  if (!describe) return undefined;
  const details = parseDetails(row.details);
  const described = describe(details, row.outcome);
  if (!described) return undefined;
  const outcome = row.outcome === 'failure' || row.outcome === 'denied' ? row.outcome : 'success';
  return {
    at: row.at,
    ...described,
    outcome,
    ip: row.ip,
    browser: describeBrowser(row.user_agent),
    method: describeMethod(details),
  };
}
