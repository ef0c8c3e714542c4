import type { AddressInfo } from 'node:net';
import { OktaAuth } from '@okta/okta-auth-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import { freePorts } from './helpers/product-process.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, PASSWORD } from './helpers/users.ts';

let s: TestStack;
let u: ActiveUser;
let issuer: string;

beforeAll(async () => {
  // The API's `_links` use the public URL, which okta-auth-js follows: make it the real listener.
  const [port] = await freePorts(1);
  s = await createTestStack({
    env: { TRAQS_NTF_IDP_PORT: String(port), TRAQS_NTF_IDP_URL: `http://127.0.0.1:${port}` },
  });
  u = await activateUser(s, 'okta.client@acme.example');
  await s.app.listen({ port: port ?? 0, host: '127.0.0.1' });
  issuer = `http://127.0.0.1:${(s.app.server.address() as AddressInfo).port}/oauth2/default`;
});
afterAll(() => s?.close());

describe('@okta/okta-auth-js (unmodified) against the Authentication API', () => {
  it('signs in with signInWithCredentials and verifies the TOTP factor', async () => {
    const auth = new OktaAuth({ issuer, clientId: 'traqs-api', redirectUri: 'http://localhost/callback', pkce: false });
    const tx = await auth.signInWithCredentials({ username: u.login, password: PASSWORD });
    expect(tx.status).toBe('MFA_REQUIRED');
    const factor = tx.factors?.find((f) => f.factorType === 'token:software:totp');
    if (!factor) throw new Error('no TOTP factor offered');
    s.clock.advance(30_000);
    const done = await factor.verify({ passCode: generateTotp({ secret: u.secret, now: s.clock() }) });
    expect(done.status).toBe('SUCCESS');
    expect(done.sessionToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(done.user?.profile?.login).toBe(u.login);
  });

  it("reports a wrong password with Okta's error code", async () => {
    const auth = new OktaAuth({ issuer, clientId: 'traqs-api', redirectUri: 'http://localhost/callback', pkce: false });
    await expect(
      auth.signInWithCredentials({ username: u.login, password: 'not the password at all' }),
    ).rejects.toMatchObject({
      errorCode: 'E0000004',
    });
  });

  it('recovers a forgotten password: forgotPassword, verifyRecoveryToken, answer, resetPassword', async () => {
    const auth = new OktaAuth({ issuer, clientId: 'traqs-api', redirectUri: 'http://localhost/callback', pkce: false });
    const challenge = await auth.forgotPassword({ username: u.login, factorType: 'EMAIL' });
    expect(challenge.status).toBe('RECOVERY_CHALLENGE');
    // The email goes out after the answer; wait for it in the outbox.
    let token: string | undefined;
    await expect
      .poll(async () => {
        const [mail] = (await s.rt.store.repos.outbox.listRecentMessages(10, u.login)).filter((m) =>
          /Reset your/.test(m.subject),
        );
        token = /recover\?token=([A-Za-z0-9_-]+)/.exec(mail?.text_body ?? '')?.[1];
        return token;
      })
      .toBeTruthy();
    const recovery = await auth.verifyRecoveryToken({ recoveryToken: token ?? '' });
    expect(recovery.status).toBe('RECOVERY');
    const reset = await recovery.answer?.({ answer: 'Elm Street' });
    expect(reset?.status).toBe('PASSWORD_RESET');
    const next = await reset?.resetPassword?.({ newPassword: 'an entirely new passphrase 7' });
    // TRAQS: a new password is followed by the second factor, never a session by itself.
    expect(next?.status).toBe('MFA_REQUIRED');
  });
});
