import { afterEach, beforeEach, expect, it } from 'vitest';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { activatePushUser, answerPush, waitingPushes } from './helpers/push.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { field, postJson, text } from './helpers/users.ts';

/**
 * Push storage on SQLite and PostgreSQL alike (`0008-push`): the per-sign-in cap is one
 * conditional upsert that parallel resends cannot pass, and a push leaves WAITING exactly once
 * even when two nodes take the same answer at the same moment.
 */
describeEachBackend('push storage', (backend: BackendHandle) => {
  let s: TestStack;
  beforeEach(async () => {
    s = await createTestStack({ store: backend.store() });
  });
  afterEach(async () => {
    await s.close();
  });

  it('caps pushes per sign-in under parallel resends, and answers a push once across two nodes', async () => {
    const u = await activatePushUser(s, 'storage.push@acme.example');
    const r = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    const stateToken = text(r.body, 'stateToken');
    const resend = () => postJson(s, `/api/v1/authn/factors/${u.pushFactorId}/verify/resend`, { stateToken });
    const answers = await Promise.all([resend(), resend(), resend(), resend(), resend()]);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(3);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(2);

    const latest = await postJson(s, `/api/v1/authn/factors/${u.pushFactorId}/verify`, { stateToken });
    const correct = Number(field(latest.body, '_embedded', 'factor', '_embedded', 'challenge', 'correctAnswer'));
    const [push] = await waitingPushes(s, u.device);
    if (!push) throw new Error('no waiting push');
    const other = backend.connectAgain();
    const now = s.clock();
    const [one, two] = await Promise.all([
      s.rt.store.repos.factors.push.answerChallenge(push.id, 'APPROVED', null, now),
      other.repos.factors.push.answerChallenge(push.id, 'APPROVED', null, now),
    ]);
    expect([one, two].filter(Boolean)).toHaveLength(1);
    // The device's own answer now finds it answered.
    expect((await answerPush(s, u.device, push.id, 'APPROVE', correct)).status).toBe(403);
    expect((await postJson(s, `/api/v1/authn/factors/${u.pushFactorId}/verify`, { stateToken })).body.status).toBe(
      'SUCCESS',
    );
  });
});
