import type { AddressInfo } from 'node:net';
import { OktaAuth } from '@okta/okta-auth-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import { freePorts } from './helpers/product-process.ts';
import { activatePushUser, answerPush, oneFailureFromLockout, type PushUser, waitingPushes } from './helpers/push.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';

let s: TestStack;
let u: PushUser;
let issuer: string;

beforeAll(async () => {
  // okta-auth-js follows the API's `_links`, which use the public URL: make it the real listener.
  const [port] = await freePorts(1);
  s = await createTestStack({
    env: { TRAQS_NTF_IDP_PORT: String(port), TRAQS_NTF_IDP_URL: `http://127.0.0.1:${port}` },
  });
  u = await activatePushUser(s, 'okta.push@acme.example');
  await s.app.listen({ port: port ?? 0, host: '127.0.0.1' });
  issuer = `http://127.0.0.1:${(s.app.server.address() as AddressInfo).port}/oauth2/default`;
});
afterAll(() => s?.close());

const client = () =>
  new OktaAuth({ issuer, clientId: 'traqs-api', redirectUri: 'http://localhost/callback', pkce: false });

/** Answers the device's waiting push once the browser side shows its number. */
async function deviceAnswers(correct: () => number | undefined, pick: 'right' | 'wrong' | 'deny', user = u) {
  for (let i = 0; i < 100; i++) {
    const [push] = await waitingPushes(s, user.device);
    const n = correct();
    if (push && n !== undefined) {
      const number = pick === 'right' ? n : pick === 'wrong' ? (push.numbers.find((x) => x !== n) ?? 0) : null;
      return answerPush(s, user.device, push.id, pick === 'deny' ? 'DENY' : 'APPROVE', number);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no push arrived');
}

describe('@okta/okta-auth-js (unmodified) with the push factor', () => {
  it('signs in with push: verify, poll while WAITING, SUCCESS once the right number is picked', async () => {
    const tx = await client().signInWithCredentials({ username: u.login, password: u.password });
    expect(tx.status).toBe('MFA_REQUIRED');
    const factor = tx.factors?.find((f) => f.factorType === 'push');
    if (!factor) throw new Error('no push factor offered');
    const challenge = await factor.verify({ autoPush: false });
    expect(challenge.status).toBe('MFA_CHALLENGE');
    expect(challenge.factorResult).toBe('WAITING');
    const correct = (
      challenge.data?._embedded as { factor?: { _embedded?: { challenge?: { correctAnswer?: number } } } }
    )?.factor?._embedded?.challenge?.correctAnswer;
    expect(correct).toBeGreaterThanOrEqual(10);
    const answering = deviceAnswers(() => correct, 'right');
    const seen: string[] = [];
    const done = await challenge.poll?.({
      delay: 100,
      transactionCallBack: (t: { factorResult?: string }) => seen.push(String(t.factorResult)),
    });
    expect((await answering).body.outcome).toBe('approved');
    expect(done?.status).toBe('SUCCESS');
    expect(done?.sessionToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  });

  it('reports REJECTED to the polling client when the user denies', async () => {
    const tx = await client().signInWithCredentials({ username: u.login, password: u.password });
    const factor = tx.factors?.find((f) => f.factorType === 'push');
    const challenge = await factor?.verify();
    const correct = (
      challenge?.data?._embedded as { factor?: { _embedded?: { challenge?: { correctAnswer?: number } } } }
    )?.factor?._embedded?.challenge?.correctAnswer;
    const answering = deviceAnswers(() => correct, 'deny');
    const done = await challenge?.poll?.(100);
    await answering;
    expect(done?.status).toBe('MFA_CHALLENGE');
    expect(done?.factorResult).toBe('REJECTED');
  });

  it('ends the poll with LOCKED_OUT when a wrong number on the device locks the account', async () => {
    const locked = await activatePushUser(s, 'okta.locked.push@acme.example');
    const tx = await client().signInWithCredentials({ username: locked.login, password: locked.password });
    // One failure short of the limit: the wrong number locks (NIST 800-63B §5.2.2).
    await oneFailureFromLockout(s, locked.login);
    const challenge = await tx.factors?.find((f) => f.factorType === 'push')?.verify();
    const correct = (
      challenge?.data?._embedded as { factor?: { _embedded?: { challenge?: { correctAnswer?: number } } } }
    )?.factor?._embedded?.challenge?.correctAnswer;
    const answering = deviceAnswers(() => correct, 'wrong', locked);
    const done = await challenge?.poll?.(100);
    expect((await answering).body.outcome).toBe('wrong_number');
    expect(done?.status).toBe('LOCKED_OUT');
  });

  it('signs in with the Okta Verify code of the same enrollment', async () => {
    const tx = await client().signInWithCredentials({ username: u.login, password: u.password });
    const factor = tx.factors?.find((f) => f.factorType === 'token:software:totp' && f.provider === 'OKTA');
    if (!factor) throw new Error('no Okta Verify code factor offered');
    s.clock.advance(30_000);
    const done = await factor.verify({ passCode: generateTotp({ secret: u.totpSecret, now: s.clock() }) });
    expect(done.status).toBe('SUCCESS');
  });
});
