import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activatePushUser,
  answerPush,
  newDeviceKey,
  oneFailureFromLockout,
  type PushUser,
  waitingPushes,
} from './helpers/push.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { causes, field, postJson, provisionUser, text } from './helpers/users.ts';

let s: TestStack;
beforeAll(async () => {
  s = await createTestStack();
});
afterAll(() => s?.close());

async function startPush(u: PushUser) {
  const r = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
  expect(r.body.status).toBe('MFA_REQUIRED');
  const stateToken = text(r.body, 'stateToken');
  const verify = await postJson(s, `/api/v1/authn/factors/${u.pushFactorId}/verify`, { stateToken });
  return { stateToken, verify };
}

const poll = (u: PushUser, stateToken: string) =>
  postJson(s, `/api/v1/authn/factors/${u.pushFactorId}/verify`, { stateToken });

describe('push factor through the Authentication API', () => {
  it('enrolls with an activation link and QR code; the code is single use', async () => {
    const { token } = await provisionUser(s, 'enroll.push@acme.example');
    let r = await postJson(s, '/api/v1/authn', { token });
    r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken: r.body.stateToken,
      newPassword: 'correct horse battery staple 42',
      recoveryQuestion: 'Name of the street you grew up on?',
      recoveryAnswer: 'Elm Street',
    });
    const factors = field(r.body, '_embedded', 'factors') as { factorType: string; provider: string }[];
    expect(factors).toContainEqual(expect.objectContaining({ factorType: 'push', provider: 'OKTA' }));
    const stateToken = text(r.body, 'stateToken');
    r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'push', provider: 'OKTA' });
    expect(r.body).toMatchObject({ status: 'MFA_ENROLL_ACTIVATE', factorResult: 'WAITING' });
    const activation = field(r.body, '_embedded', 'factor', '_embedded', 'activation') as Record<string, unknown>;
    expect(String(activation.activationLink)).toMatch(/\/verify\/activate\?code=/);
    expect(String(field(activation, '_links', 'qrcode', 'href'))).toMatch(/^data:image\/png;base64,/);
    expect(field(r.body, '_links', 'next', 'name')).toBe('poll');
    const factorId = text(r.body, '_embedded', 'factor', 'id');
    const pollUrl = `/api/v1/authn/factors/${factorId}/lifecycle/activate/poll`;
    expect((await postJson(s, pollUrl, { stateToken })).body.factorResult).toBe('WAITING');

    const bad = await postJson(s, '/api/v1/devices', {
      activationCode: String(activation.activationCode),
      name: 'laptop',
      publicKey: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'BBBB' },
    });
    expect(bad.status).toBe(400);
    expect(causes(bad.body).join()).toMatch(/publicKey/);
    const key = newDeviceKey();
    const body = { activationCode: String(activation.activationCode), name: 'laptop', publicKey: key.publicJwk };
    const ok = await postJson(s, '/api/v1/devices', body);
    expect(ok.status).toBe(201);
    expect(ok.body.totp).toMatchObject({ period: 30, digits: 6 });
    const again = await postJson(s, '/api/v1/devices', body);
    expect(again.status).toBe(401);
    const done = await postJson(s, pollUrl, { stateToken });
    expect(done.body.status).toBe('SUCCESS');
  });

  it('approves with the right number: WAITING with correctAnswer, then SUCCESS', async () => {
    const u = await activatePushUser(s, 'approve.push@acme.example');
    const { stateToken, verify } = await startPush(u);
    expect(verify.body).toMatchObject({ status: 'MFA_CHALLENGE', factorResult: 'WAITING' });
    expect(field(verify.body, '_links', 'next')).toMatchObject({ name: 'poll' });
    const correct = field(verify.body, '_embedded', 'factor', '_embedded', 'challenge', 'correctAnswer');
    const [pushed] = await waitingPushes(s, u.device);
    if (!pushed) throw new Error('no push for the device');
    expect(pushed.numbers).toHaveLength(3);
    expect(pushed.numbers).toContain(correct);
    expect(pushed).not.toHaveProperty('correct');
    expect((await poll(u, stateToken)).body.factorResult).toBe('WAITING');
    const answered = await answerPush(s, u.device, pushed.id, 'APPROVE', Number(correct));
    expect(answered.body).toEqual({ outcome: 'approved' });
    const done = await poll(u, stateToken);
    expect(done.body.status).toBe('SUCCESS');
    expect(text(done.body, 'sessionToken')).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // The same signed answer again is refused: the challenge left WAITING once.
    const replay = await answerPush(s, u.device, pushed.id, 'APPROVE', Number(correct), {
      signature: answered.signature,
    });
    expect(replay.status).toBe(403);
    expect(causes(replay.body).join()).toMatch(/already answered/);
  });

  it('a wrong number or a denial is REJECTED, counts as a failed attempt and offers a report link', async () => {
    const u = await activatePushUser(s, 'reject.push@acme.example');
    const { stateToken, verify } = await startPush(u);
    const correct = Number(field(verify.body, '_embedded', 'factor', '_embedded', 'challenge', 'correctAnswer'));
    const [pushed] = await waitingPushes(s, u.device);
    if (!pushed) throw new Error('no push');
    const wrong = pushed.numbers.find((n) => n !== correct) ?? 0;
    const answered = await answerPush(s, u.device, pushed.id, 'APPROVE', wrong);
    expect(answered.body.outcome).toBe('wrong_number');
    expect(String(answered.body.reportUrl)).toMatch(/\/report\?token=/);
    const rejected = await poll(u, stateToken);
    expect(rejected.body).toMatchObject({ status: 'MFA_CHALLENGE', factorResult: 'REJECTED' });
    expect(field(rejected.body, '_embedded', 'factor', '_embedded', 'challenge')).toBeUndefined();
    const user = await s.rt.store.repos.users.findUserByLogin(u.login);
    expect(user?.failed_attempts).toBe(1);
    // The next verify sends a new push; this one is denied.
    const second = await poll(u, stateToken);
    expect(second.body.factorResult).toBe('WAITING');
    const [next] = await waitingPushes(s, u.device);
    if (!next) throw new Error('no second push');
    expect((await answerPush(s, u.device, next.id, 'DENY', null)).body.outcome).toBe('denied');
    expect((await poll(u, stateToken)).body.factorResult).toBe('REJECTED');
    expect((await s.rt.store.repos.users.findUserByLogin(u.login))?.failed_attempts).toBe(2);
    const events = await s.rt.store.repos.audit.listEvents({ limit: 50 });
    const actions = events.map((e) => e.action);
    expect(actions).toContain('user.mfa.okta_verify.wrong_number');
    expect(actions).toContain('user.mfa.okta_verify.deny_push');
  });

  it('a poll after the device locked the account out answers LOCKED_OUT, as the password step does', async () => {
    const u = await activatePushUser(s, 'locked.push@acme.example');
    const { stateToken } = await startPush(u);
    // One failure short of the limit: the denial is the attempt that locks (NIST 800-63B §5.2.2).
    await oneFailureFromLockout(s, u.login);
    const [pushed] = await waitingPushes(s, u.device);
    if (!pushed) throw new Error('no push');
    expect((await answerPush(s, u.device, pushed.id, 'DENY', null)).body.outcome).toBe('denied');
    expect((await s.rt.store.repos.users.findUserByLogin(u.login))?.status).toBe('LOCKED_OUT');
    // Okta's transaction state, not an INVALID_TOKEN error: the client shows "account locked".
    const locked = await poll(u, stateToken);
    expect(locked.status).toBe(200);
    expect(locked.body).toEqual({ status: 'LOCKED_OUT', _links: {} });
    // A stateToken that never belonged to a locked user is still just invalid.
    expect((await poll(u, 'x'.repeat(43))).body.errorCode).toBe('E0000011');
  });

  it('a push expires after 5 minutes (TIMEOUT) and cannot be approved afterwards', async () => {
    const u = await activatePushUser(s, 'timeout.push@acme.example');
    const { stateToken, verify } = await startPush(u);
    const correct = Number(field(verify.body, '_embedded', 'factor', '_embedded', 'challenge', 'correctAnswer'));
    const [pushed] = await waitingPushes(s, u.device);
    if (!pushed) throw new Error('no push');
    s.clock.advance(4 * 60_000 + 59_000);
    expect((await poll(u, stateToken)).body.factorResult).toBe('WAITING');
    s.clock.advance(1_000);
    expect((await poll(u, stateToken)).body.factorResult).toBe('TIMEOUT');
    const late = await answerPush(s, u.device, pushed.id, 'APPROVE', correct);
    expect(late.status).toBe(403);
  });

  it('sends at most 3 pushes per sign-in', async () => {
    const u = await activatePushUser(s, 'cap.push@acme.example');
    const { stateToken } = await startPush(u);
    const resend = () => postJson(s, `/api/v1/authn/factors/${u.pushFactorId}/verify/resend`, { stateToken });
    expect((await resend()).body.factorResult).toBe('WAITING');
    expect((await resend()).body.factorResult).toBe('WAITING');
    const fourth = await resend();
    expect(fourth.status).toBe(429);
    expect(causes(fourth.body).join()).toMatch(/At most 3 pushes/);
    // Only the newest push can be approved; the earlier ones were withdrawn.
    expect(await waitingPushes(s, u.device)).toHaveLength(1);
  });

  it('refuses a signature from another key and an unknown device token', async () => {
    const u = await activatePushUser(s, 'forged.push@acme.example');
    const { verify } = await startPush(u);
    const correct = Number(field(verify.body, '_embedded', 'factor', '_embedded', 'challenge', 'correctAnswer'));
    const [pushed] = await waitingPushes(s, u.device);
    if (!pushed) throw new Error('no push');
    const other = { ...u.device, privateKey: newDeviceKey().privateKey };
    const forged = await answerPush(s, other, pushed.id, 'APPROVE', correct);
    expect(forged.status).toBe(401);
    const stranger = await answerPush(s, { ...u.device, token: 'x'.repeat(43) }, pushed.id, 'APPROVE', correct);
    expect(stranger.status).toBe(401);
    const malformed = await s.app.inject({
      method: 'POST',
      url: `/api/v1/devices/${u.device.id}/pushes/${pushed.id}/answer`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${u.device.token}` },
      payload: JSON.stringify({ decision: 'APPROVE', signature: 'abc' }),
    });
    expect(malformed.statusCode).toBe(400);
  });

  it('"send push automatically" sends the push with the password step', async () => {
    const u = await activatePushUser(s, 'auto.push@acme.example');
    const user = await s.rt.store.repos.users.findUserByLogin(u.login);
    if (!user) throw new Error('no user');
    await s.rt.store.repos.users.setPreferences(user.id, { autoPush: true });
    const r = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    expect(r.body).toMatchObject({ status: 'MFA_CHALLENGE', factorResult: 'WAITING' });
    expect(await waitingPushes(s, u.device)).toHaveLength(1);
  });
});
