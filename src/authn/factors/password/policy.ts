import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Stable codes of the reasons a new password is refused. */
export type PasswordProblemCode =
  | 'TOO_SHORT'
  | 'TOO_LONG'
  | 'COMMON_PASSWORD'
  | 'REPETITIVE_OR_SEQUENTIAL'
  | 'EQUALS_USERNAME'
  | 'CONTAINS_USERNAME'
  | 'CONTAINS_CONTEXT_WORD';

/** One reason a password is refused, with a message to show the user as it is. */
export interface PasswordProblem {
  code: PasswordProblemCode;
  message: string;
}

/** Options of {@link checkNewPassword}. */
export interface PasswordPolicyOptions {
  /** Minimum length in code points; 8 by default (NIST 800-63B §5.1.1.2, with a second factor). */
  minLength?: number;
  /** Maximum length in code points; 64 by default (NIST 800-63B §5.1.1.2: permit at least 64). */
  maxLength?: number;
  /** The sign-in name; when it is an email address its local part is refused too. */
  username?: string;
  /** The user's email address, if it differs from the username. */
  email?: string;
  /** Words specific to this service (its name, the firm's name) that a password must not contain. */
  contextWords?: readonly string[];
  /** Lower-case blocked passwords; the shipped list ({@link loadPasswordBlocklist}) by default. */
  blocklist?: ReadonlySet<string>;
}

/** Default minimum length: NIST 800-63B §5.1.1.2 (8 characters for a password used with MFA). */
export const DEFAULT_MIN_PASSWORD_LENGTH = 8;
/** Default maximum length: NIST 800-63B §5.1.1.2 asks verifiers to permit at least 64 characters. */
export const DEFAULT_MAX_PASSWORD_LENGTH = 64;

// Identifiers shorter than this are not searched for inside a password ("al" in "totally").
const MIN_CONTAINED_IDENTIFIER_LENGTH = 4;

/**
 * Normalises a password before it is measured, compared or hashed. NIST 800-63B §5.1.1.2: apply
 * NFKC or NFKD so the same password typed on different keyboards or platforms matches.
 */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Length in Unicode code points, not UTF-16 units: an emoji counts as one character. */
function codePointLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

// NIST 800-63B §5.1.1.2 (rev. 3): refuse repetitive or sequential characters such as "aaaaaa" or
// "1234abcd": a short unit repeated throughout ("abcabcabc"), or at most two runs of 3 or more
// characters that each repeat one character or step through consecutive code points.
function isRepetitiveOrSequential(lower: string): boolean {
  const points = [...lower].map((c) => c.codePointAt(0) ?? 0);
  if (points.length < 3) return false;
  for (let unit = 1; unit <= 4 && unit * 2 <= points.length; unit++) {
    if (points.length % unit === 0 && points.every((p, i) => p === points[i % unit])) return true;
  }
  const runs: number[] = [];
  let i = 0;
  while (i < points.length) {
    const delta = (points[i + 1] ?? Number.NaN) - (points[i] ?? 0);
    let j = i + 1;
    if (Math.abs(delta) <= 1) {
      while (j < points.length && (points[j] ?? 0) - (points[j - 1] ?? 0) === delta) j++;
    }
    runs.push(j - i);
    i = j;
  }
  return runs.length <= 2 && runs.every((n) => n >= 3);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Checks a new password against NIST 800-63B §5.1.1.2: length in code points after NFKC, a
 * blocklist of common passwords, repetitive or sequential characters, and context-specific words
 * (the username, the email's local part, the service's name). No composition rules and no
 * hints, as §5.1.1.2 says.
 *
 * @returns every problem found; an empty list means the password is acceptable
 */
export function checkNewPassword(password: string, options: PasswordPolicyOptions = {}): PasswordProblem[] {
  const minLength = options.minLength ?? DEFAULT_MIN_PASSWORD_LENGTH;
  const maxLength = options.maxLength ?? DEFAULT_MAX_PASSWORD_LENGTH;
  const normalized = normalizePassword(password);
  const lower = normalized.toLowerCase();
  const length = codePointLength(normalized);
  const problems: PasswordProblem[] = [];

  if (length < minLength) {
    problems.push({ code: 'TOO_SHORT', message: `Use at least ${plural(minLength, 'character')}.` });
  }
  if (length > maxLength) {
    problems.push({ code: 'TOO_LONG', message: `Use at most ${plural(maxLength, 'character')}.` });
  }

  const blocklist = options.blocklist ?? loadPasswordBlocklist();
  if (blocklist.has(lower)) {
    problems.push({
      code: 'COMMON_PASSWORD',
      message: 'This password is too common and is easy to guess. Choose a different one.',
    });
  } else if (isRepetitiveOrSequential(lower)) {
    problems.push({
      code: 'REPETITIVE_OR_SEQUENTIAL',
      message: 'Avoid repeated or sequential characters such as "aaaa" or "1234". Choose a different password.',
    });
  }

  // NIST 800-63B §5.1.1.2: refuse the username and derivatives of it, including an email's local part.
  const identifiers = new Set<string>();
  for (const value of [options.username, options.email]) {
    if (value === undefined) continue;
    const id = value.normalize('NFKC').trim().toLowerCase();
    if (id === '') continue;
    identifiers.add(id);
    const at = id.lastIndexOf('@');
    if (at > 0) identifiers.add(id.slice(0, at));
  }
  if (identifiers.has(lower)) {
    problems.push({ code: 'EQUALS_USERNAME', message: 'Your password must not be your username or email address.' });
  } else if (
    [...identifiers].some((id) => codePointLength(id) >= MIN_CONTAINED_IDENTIFIER_LENGTH && lower.includes(id))
  ) {
    problems.push({
      code: 'CONTAINS_USERNAME',
      message: 'Your password must not contain your username or email address.',
    });
  }

  const contextWords = (options.contextWords ?? []).map((w) => w.normalize('NFKC').trim().toLowerCase());
  if (contextWords.some((w) => w !== '' && lower.includes(w))) {
    problems.push({
      code: 'CONTAINS_CONTEXT_WORD',
      message: 'Your password must not contain the name of this service or your organisation.',
    });
  }

  return problems;
}

const DEFAULT_BLOCKLIST_PATH = fileURLToPath(new URL('./common-passwords.txt', import.meta.url));
const blocklistCache = new Map<string, ReadonlySet<string>>();

/**
 * Loads a blocklist of common passwords, one per line; blank lines and lines starting with `#`
 * are skipped and entries are lower-cased, so look-ups of a lower-cased password are
 * case-insensitive. Read once per path and cached. Defaults to the shipped
 * `common-passwords.txt` (NIST 800-63B §5.1.1.2: values known to be commonly used).
 */
export function loadPasswordBlocklist(path: string = DEFAULT_BLOCKLIST_PATH): ReadonlySet<string> {
  const cached = blocklistCache.get(path);
  if (cached) return cached;
  const entries = new Set<string>();
  for (const line of readFileSync(path, 'utf8').split(/\r?\n/)) {
    const entry = line.trim();
    if (entry === '' || entry.startsWith('#')) continue;
    entries.add(normalizePassword(entry).toLowerCase());
  }
  blocklistCache.set(path, entries);
  return entries;
}

/** Stable codes of the reasons a recovery answer is refused. */
export type RecoveryAnswerProblemCode = 'TOO_SHORT' | 'TOO_LONG' | 'CONTAINS_PASSWORD';

/** One reason a recovery answer is refused, with a message to show the user as it is. */
export interface RecoveryAnswerProblem {
  code: RecoveryAnswerProblemCode;
  message: string;
}

/** Options of {@link checkRecoveryAnswer}. */
export interface RecoveryAnswerOptions {
  /** The user's password, which the answer must not contain (compared after the same normalisation). */
  password?: string;
  /** 4 by default. */
  minLength?: number;
  /** 100 by default. */
  maxLength?: number;
}

/**
 * Normalises a recovery-question answer so small typing differences still match: NFKC, trimmed,
 * internal white space collapsed to one space, lower-cased. Store only a hash of the result.
 */
export function normalizeRecoveryAnswer(answer: string): string {
  return answer.normalize('NFKC').trim().replace(/\s+/gu, ' ').toLowerCase();
}

/**
 * Checks a new recovery-question answer: 4 to 100 code points (by default) after
 * {@link normalizeRecoveryAnswer}, and not containing the password (else the answer, which users
 * treat as less secret, would give the password away).
 *
 * NIST 800-63B §5.1.1.2 forbids prompting for specific types of information ("What was the name of
 * your first pet?") as a memorised secret: an answer only ever adds to recovery through another
 * channel, never replaces a factor.
 */
export function checkRecoveryAnswer(answer: string, options: RecoveryAnswerOptions = {}): RecoveryAnswerProblem[] {
  const minLength = options.minLength ?? 4;
  const maxLength = options.maxLength ?? 100;
  const normalized = normalizeRecoveryAnswer(answer);
  const length = codePointLength(normalized);
  const problems: RecoveryAnswerProblem[] = [];
  if (length < minLength) {
    problems.push({ code: 'TOO_SHORT', message: `Your answer must be at least ${plural(minLength, 'character')}.` });
  }
  if (length > maxLength) {
    problems.push({ code: 'TOO_LONG', message: `Your answer must be at most ${plural(maxLength, 'character')}.` });
  }
  if (options.password !== undefined) {
    const normalizedPassword = normalizeRecoveryAnswer(options.password);
    if (normalizedPassword !== '' && normalized.includes(normalizedPassword)) {
      problems.push({ code: 'CONTAINS_PASSWORD', message: 'Your answer must not contain your password.' });
    }
  }
  return problems;
}
