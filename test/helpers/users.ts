import type { UserRow } from '../../src/accounts/repository.ts';
import { base32Decode, generateTotp } from '../../src/authn/factors/totp/totp.ts';
import type { TestStack } from './stack.ts';

/** A password that passes the policy (long, not common, unrelated to the username). */
export const PASSWORD = 'correct horse battery staple 42';
export const RECOVERY = { recoveryQuestion: 'Name of the street you grew up on?', recoveryAnswer: 'Elm Street' };

/** Where requests appear to come from, so audit events can be checked. */
export const CLIENT = { ip: '203.0.113.7', userAgent: 'TraqsTest/1.0 (security suite)' };

/** A JSON answer of the API, its body read as an untyped tree. */
export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, unknown>;
}

/** Follows a path of keys and indexes through parsed JSON; undefined where it does not exist. */
export function field(value: unknown, ...path: (string | number)[]): unknown {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[key];
  }
  return v;
}

/** Like {@link field}, but the value must be a string. */
export function text(value: unknown, ...path: (string | number)[]): string {
  const v = field(value, ...path);
  if (typeof v !== 'string') throw new Error(`expected a string at ${path.join('.')}, got ${JSON.stringify(v)}`);
  return v;
}

/** The `errorSummary` of each of an Okta error object's `errorCauses`. */
export function causes(body: unknown): string[] {
  const list = field(body, 'errorCauses');
  return Array.isArray(list) ? list.map((c) => String(field(c, 'errorSummary'))) : [];
}

function parse(payload: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(payload);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return { unparsed: payload };
  }
}

/** POSTs JSON (or a raw body with its own content type) to the idp from {@link CLIENT}. */
export async function postJson(
  s: Pick<TestStack, 'app'>,
  url: string,
  payload: unknown,
  options: { contentType?: string; raw?: boolean } = {},
): Promise<ApiAnswer> {
  const res = await s.app.inject({
    method: 'POST',
    url,
    remoteAddress: CLIENT.ip,
    headers: { 'content-type': options.contentType ?? 'application/json', 'user-agent': CLIENT.userAgent },
    payload: options.raw ? String(payload) : JSON.stringify(payload),
  });
  return { status: res.statusCode, body: parse(res.payload), headers: res.headers };
}

/** Creates a PROVISIONED user and returns the raw token of their emailed activation link. */
export async function provisionUser(s: TestStack, email: string): Promise<{ user: UserRow; token: string }> {
  const made = await s.rt.accounts.provisionUser({ email, firstName: 'Test', lastName: 'User', firmId: s.firm.id });
  if (!made.ok) throw new Error(made.message);
  const token = new URL(made.activationUrl).searchParams.get('token');
  if (!token) throw new Error('activation link without token');
  return { user: made.user, token };
}

/** The current code of a TOTP secret, after moving the clock one step so it was never used. */
export function freshCode(s: TestStack, secret: Buffer): string {
  s.clock.advance(30_000);
  return generateTotp({ secret, now: s.clock() });
}

export interface ActiveUser {
  user: UserRow;
  login: string;
  password: string;
  secret: Buffer;
  factorId: string;
  /** The (now used) activation token. */
  token: string;
}

/** Provisions a user and activates them through the API: password, recovery question, TOTP. */
/** Throws unless the API answered the transaction status `status`. */
export function expectStatus(r: ApiAnswer, status: string) {
  if (r.body.status !== status) throw new Error(`expected ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
}

/**
 * Provisions a user and takes the activation through the API up to the factor choice: the
 * activation token, then the password and recovery question. Returns the MFA_ENROLL stateToken.
 */
export async function activateToEnrollment(
  s: TestStack,
  email: string,
  password = PASSWORD,
): Promise<{ token: string; stateToken: string; user: UserRow }> {
  const { token, user } = await provisionUser(s, email);
  let r = await postJson(s, '/api/v1/authn', { token });
  expectStatus(r, 'PASSWORD_RESET');
  r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
    stateToken: r.body.stateToken,
    newPassword: password,
    ...RECOVERY,
  });
  expectStatus(r, 'MFA_ENROLL');
  return { token, stateToken: text(r.body, 'stateToken'), user };
}

export async function activateUser(s: TestStack, email: string, password = PASSWORD): Promise<ActiveUser> {
  const { token, stateToken } = await activateToEnrollment(s, email, password);
  let r: ApiAnswer;
  r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'token:software:totp', provider: 'GOOGLE' });
  expectStatus(r, 'MFA_ENROLL_ACTIVATE');
  const factorId = text(r.body, '_embedded', 'factor', 'id');
  const secret = base32Decode(text(r.body, '_embedded', 'factor', '_embedded', 'activation', 'sharedSecret'));
  r = await postJson(s, `/api/v1/authn/factors/${factorId}/lifecycle/activate`, {
    stateToken,
    passCode: generateTotp({ secret, now: s.clock() }),
  });
  expectStatus(r, 'SUCCESS');
  const user = await s.rt.store.repos.users.findUserByLogin(email.toLowerCase());
  if (!user) throw new Error('activated user not found');
  return { user, login: user.login, password, secret, factorId, token };
}

/** Password step through the API; returns the MFA_REQUIRED stateToken. */
export async function passwordStep(s: TestStack, login: string, password: string): Promise<string> {
  const r = await postJson(s, '/api/v1/authn', { username: login, password });
  if (r.body.status !== 'MFA_REQUIRED') throw new Error(`expected MFA_REQUIRED, got ${JSON.stringify(r.body)}`);
  return text(r.body, 'stateToken');
}
