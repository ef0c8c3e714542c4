import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { type PushDecision, signAnswer } from '../../src/authn/factors/push/answer.ts';
import { base32Decode } from '../../src/authn/factors/totp/totp.ts';
import { hashBearerSecret } from '../../src/lib/tokens.ts';
import type { TestStack } from './stack.ts';
import { type ApiAnswer, activateToEnrollment, expectStatus, PASSWORD, postJson, text } from './users.ts';

/** A `traqs-verify` device as the tests hold it: its id, bearer token and private key. */
export interface TestDevice {
  id: string;
  token: string;
  privateKey: KeyObject;
  publicJwk: Record<string, unknown>;
}

export interface PushUser {
  login: string;
  password: string;
  pushFactorId: string;
  /** The Okta Verify TOTP seed created with the push enrollment. */
  totpSecret: Buffer;
  device: TestDevice;
}

export function newDeviceKey() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicJwk: publicKey.export({ format: 'jwk' }) as Record<string, unknown> };
}

/**
 * Provisions a user and activates them through the API with push as their first factor: the
 * enrollment shows an activation code, the "device" registers its key with it, and the poll ends
 * in SUCCESS.
 */
export async function activatePushUser(s: TestStack, email: string): Promise<PushUser> {
  const { stateToken } = await activateToEnrollment(s, email);
  let r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'push', provider: 'OKTA' });
  expectStatus(r, 'MFA_ENROLL_ACTIVATE');
  const pushFactorId = text(r.body, '_embedded', 'factor', 'id');
  const code = text(r.body, '_embedded', 'factor', '_embedded', 'activation', 'activationCode');
  const enrolled = await enrollDevice(s, code, `Test device of ${email}`);
  r = await postJson(s, `/api/v1/authn/factors/${pushFactorId}/lifecycle/activate/poll`, { stateToken });
  expectStatus(r, 'SUCCESS');
  return {
    login: email.toLowerCase(),
    password: PASSWORD,
    pushFactorId,
    totpSecret: enrolled.totpSecret,
    device: enrolled.device,
  };
}

/** `traqs-verify enroll` with an activation code: the new device and its Okta Verify code factor. */
async function enrollDevice(s: Pick<TestStack, 'app'>, activationCode: string, name: string) {
  const key = newDeviceKey();
  const enrolled = await postJson(s, '/api/v1/devices', { activationCode, name, publicKey: key.publicJwk });
  if (enrolled.status !== 201) throw new Error(`device enrollment failed: ${JSON.stringify(enrolled.body)}`);
  return {
    totpFactorId: text(enrolled.body, 'totp', 'factorId'),
    totpSecret: base32Decode(text(enrolled.body, 'totp', 'sharedSecret')),
    device: { id: text(enrolled.body, 'id'), token: text(enrolled.body, 'deviceToken'), ...key } satisfies TestDevice,
  };
}

/**
 * Adds Okta Verify to an active user, as the profile's "add a method" does: a pending push factor,
 * its activation code, and the device enrolling with it. The push factor is ACTIVE afterwards,
 * with its Okta Verify code factor beside it.
 */
export async function addPushDevice(s: Pick<TestStack, 'app' | 'rt'>, userId: string, name = 'Test phone') {
  const now = s.rt.clock();
  const { factorId, code } = await s.rt.store.transaction(async (repos) => {
    const factor = s.rt.push.pendingFactor(userId, now);
    await repos.factors.createFactor(factor);
    return { factorId: factor.id, code: (await s.rt.push.issueActivation(repos, factor, now)).code };
  });
  return { pushFactorId: factorId, ...(await enrollDevice(s, code, name)) };
}

/**
 * Puts a user one failed attempt short of the lockout (as after wrong codes), so that the next
 * denial or wrong number on the device locks the account.
 */
export async function oneFailureFromLockout(s: Pick<TestStack, 'rt' | 'config'>, login: string): Promise<void> {
  const user = await s.rt.store.repos.users.findUserByLogin(login);
  if (!user) throw new Error(`no user ${login}`);
  for (let i = 1; i < s.config.policy.maxFailedAttempts; i++) await s.rt.store.repos.users.recordFailedAttempt(user.id);
}

/** The pushes waiting for a device, as its event stream would deliver them. */
export async function waitingPushes(s: TestStack, device: TestDevice) {
  const row = await s.rt.push.authenticateDevice(device.id, device.token);
  if (!row) throw new Error('device not found');
  return (await s.rt.push.pendingPushes(row)) ?? [];
}

/** The device's signed answer to a push, POSTed as `traqs-verify` does. */
export async function answerPush(
  s: TestStack,
  device: TestDevice,
  challengeId: string,
  decision: PushDecision,
  number: number | null,
  options: { signature?: string } = {},
): Promise<ApiAnswer & { signature: string }> {
  const signature =
    options.signature ?? signAnswer(device.privateKey, { challengeId, deviceId: device.id, decision, number });
  const res = await s.app.inject({
    method: 'POST',
    url: `/api/v1/devices/${device.id}/pushes/${challengeId}/answer`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
    payload: JSON.stringify({ decision, ...(number === null ? {} : { number }), signature }),
  });
  return {
    status: res.statusCode,
    body: JSON.parse(res.payload) as Record<string, unknown>,
    headers: res.headers,
    signature,
  };
}

/**
 * Opens the device's event stream (`traqs-verify listen`) and waits until it is subscribed (its
 * first read touched the device). `ended` settles with the stream's body once the server ends it.
 */
export async function openEventStream(s: Pick<TestStack, 'app' | 'rt' | 'clock'>, device: TestDevice) {
  s.clock.advance(1_000);
  const ended = s.app
    .inject({
      method: 'GET',
      url: `/api/v1/devices/${device.id}/events`,
      headers: { authorization: `Bearer ${device.token}` },
    })
    .then((res) => res.payload);
  for (let i = 0; i < 100; i++) {
    const row = await s.rt.store.repos.factors.push.findDeviceByTokenHash(hashBearerSecret(device.token));
    if (row?.last_seen_at === s.clock()) return { ended };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the event stream did not start');
}

/** Whether `stream` ends within `ms` of real time (well under the streams' 10 s re-read). */
export function endsWithin(stream: Promise<string>, ms: number): Promise<boolean> {
  return Promise.race([stream.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
}
