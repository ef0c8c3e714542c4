import { expect } from 'vitest';
import {
  createSoftAuthenticator,
  oktaActivation,
  oktaAssertion,
  type SoftAuthenticator,
} from './soft-authenticator.ts';
import type { TestStack } from './stack.ts';
import { type ApiAnswer, field, PASSWORD, postJson, provisionUser, RECOVERY, text } from './users.ts';

/** The test idp's origin (the default public URL of the ntf idp). */
export const ORIGIN = 'http://localhost:3101';

/** A user activated through the API with FastPass (a software authenticator) as the only factor. */
export interface FastPassUser {
  userId: string;
  login: string;
  password: string;
  factorId: string;
  authenticator: SoftAuthenticator;
  /** The SUCCESS answer of the activation. */
  activated: ApiAnswer;
}

/** From the activation token to MFA_ENROLL: password and recovery question set. */
export async function toEnrollment(s: TestStack, email: string): Promise<{ userId: string; stateToken: string }> {
  const { user, token } = await provisionUser(s, email);
  let r = await postJson(s, '/api/v1/authn', { token });
  r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
    stateToken: text(r.body, 'stateToken'),
    newPassword: PASSWORD,
    ...RECOVERY,
  });
  expect(r.body.status).toBe('MFA_ENROLL');
  return { userId: user.id, stateToken: text(r.body, 'stateToken') };
}

/** Activates a user with FastPass through the Authentication API (Okta's JSON, base64 fields). */
export async function activateWithFastPass(s: TestStack, email: string): Promise<FastPassUser> {
  const { userId, stateToken } = await toEnrollment(s, email);
  let r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'webauthn', provider: 'FIDO' });
  expect(r.body.status).toBe('MFA_ENROLL_ACTIVATE');
  const factorId = text(r.body, '_embedded', 'factor', 'id');
  const activation = field(r.body, '_embedded', 'factor', '_embedded', 'activation') as {
    challenge: string;
    rp: { id: string };
  };
  const authenticator = createSoftAuthenticator(ORIGIN);
  r = await postJson(s, `/api/v1/authn/factors/${factorId}/lifecycle/activate`, {
    stateToken,
    ...oktaActivation(authenticator.register(activation)),
  });
  expect(r.body.status, JSON.stringify(r.body)).toBe('SUCCESS');
  return { userId, login: email.toLowerCase(), password: PASSWORD, factorId, authenticator, activated: r };
}

/** Password, then the FastPass challenge: the MFA_CHALLENGE answer and its request options. */
export async function challengeFastPass(
  s: TestStack,
  u: Pick<FastPassUser, 'login' | 'password' | 'factorId'>,
): Promise<{ stateToken: string; answer: ApiAnswer; options: { challenge: string; rpId: string } }> {
  const first = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
  expect(first.body.status).toBe('MFA_REQUIRED');
  const stateToken = text(first.body, 'stateToken');
  const answer = await postJson(s, `/api/v1/authn/factors/${u.factorId}/verify`, { stateToken });
  expect(answer.body.status, JSON.stringify(answer.body)).toBe('MFA_CHALLENGE');
  const options = field(answer.body, '_embedded', 'factor', '_embedded', 'challenge') as {
    challenge: string;
    rpId: string;
  };
  return { stateToken, answer, options };
}

/** Posts an assertion in Okta's verify shape. */
export function verifyFastPass(
  s: TestStack,
  factorId: string,
  stateToken: string,
  assertion: Parameters<typeof oktaAssertion>[0],
): Promise<ApiAnswer> {
  return postJson(s, `/api/v1/authn/factors/${factorId}/verify`, { stateToken, ...oktaAssertion(assertion) });
}

/** Reads the JSON of a `data-options` attribute out of a page. */
export function optionsFrom<T>(html: string): T {
  const m = /data-options="([^"]*)"/.exec(html);
  if (!m?.[1]) throw new Error('no FastPass options on the page');
  const json = m[1]
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
  return JSON.parse(json) as T;
}
