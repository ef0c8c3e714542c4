import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditRow } from '../src/audit/repository.ts';
import { createBrowser, signInWithPages } from './helpers/browser.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { activateUser, CLIENT, freshCode, passwordStep, postJson } from './helpers/users.ts';

let s: TestStack;
beforeEach(async () => {
  s = await createTestStack();
});
afterEach(async () => {
  await s.close();
});

async function events(action: string, targetId?: string): Promise<AuditRow[]> {
  return s.rt.store.repos.audit.listEvents({ action, ...(targetId ? { targetId } : {}) });
}

const details = (e: AuditRow | undefined): Record<string, unknown> =>
  e ? (JSON.parse(e.details) as Record<string, unknown>) : {};

/** Who did it from where: every security event names the client's address and user agent. */
function expectFromClient(e: AuditRow | undefined) {
  expect(e).toBeDefined();
  expect(e?.ip).toBe(CLIENT.ip);
  expect(e?.user_agent).toBe(CLIENT.userAgent);
  expect(e?.at).toBe(s.clock());
}

describe('audit events of sign-in and enrollment', () => {
  it('enrollment start and factor activation are recorded with IP and user agent', async () => {
    const alice = await activateUser(s, 'alice@acme.example');
    const started = await events('user.mfa.factor.enroll_started', alice.user.id);
    expect(started).toHaveLength(1);
    expectFromClient(started[0]);
    expect(started[0]?.outcome).toBe('success');
    expect(details(started[0])).toMatchObject({ factorId: alice.factorId, provider: 'GOOGLE' });

    const activated = await events('user.mfa.factor.activate', alice.user.id);
    expect(activated.filter((e) => e.outcome === 'success')).toHaveLength(1);
    expectFromClient(activated[0]);
    expect(details(activated[0])).toMatchObject({ factorId: alice.factorId });

    const activation = await events('user.lifecycle.activate', alice.user.id);
    expect(activation.map((e) => e.outcome)).toEqual(['success']);
    expectFromClient(activation[0]);
  });

  it('a failed sign-in (wrong password, unknown user) is recorded with IP and user agent', async () => {
    const alice = await activateUser(s, 'alice@acme.example');
    s.clock.advance(1000);
    const wrong = await postJson(s, '/api/v1/authn', { username: alice.login, password: 'a wrong password here' });
    expect(wrong.status).toBe(401);
    const failures = (await events('user.session.start', alice.user.id)).filter((e) => e.outcome === 'failure');
    expect(failures).toHaveLength(1);
    expectFromClient(failures[0]);
    expect(failures[0]?.actor_id).toBe(alice.user.id);
    expect(details(failures[0])).toMatchObject({ factor: 'password', consecutiveFailures: 1 });
    // The wrong password itself is never written down.
    expect(failures[0]?.details).not.toContain('a wrong password here');

    await postJson(s, '/api/v1/authn', { username: 'ghost@acme.example', password: 'a wrong password here' });
    const unknown = (await events('user.session.start')).find((e) => details(e).username === 'ghost@acme.example');
    expectFromClient(unknown);
    expect(unknown?.outcome).toBe('failure');
    expect(unknown?.actor_id).toBeNull();
    expect(unknown?.details).not.toContain('a wrong password here');
  });

  it('a wrong code is recorded as a failed MFA verification', async () => {
    const alice = await activateUser(s, 'alice@acme.example');
    const stateToken = await passwordStep(s, alice.login, alice.password);
    await postJson(s, `/api/v1/authn/factors/${alice.factorId}/verify`, { stateToken, passCode: '000000' });
    const failed = (await events('user.authentication.auth_via_mfa', alice.user.id)).filter(
      (e) => e.outcome === 'failure',
    );
    expect(failed).toHaveLength(1);
    expectFromClient(failed[0]);
  });

  it('a successful sign-in is recorded with the factor type, through the API and the pages', async () => {
    const alice = await activateUser(s, 'alice@acme.example');
    const before = (await events('user.authentication.sso', alice.user.id)).length;
    const stateToken = await passwordStep(s, alice.login, alice.password);
    const ok = await postJson(s, `/api/v1/authn/factors/${alice.factorId}/verify`, {
      stateToken,
      passCode: freshCode(s, alice.secret),
    });
    expect(ok.body.status).toBe('SUCCESS');

    const sso = await events('user.authentication.sso', alice.user.id);
    expect(sso).toHaveLength(before + 1);
    expectFromClient(sso[0]);
    expect(sso[0]?.outcome).toBe('success');
    expect(details(sso[0])).toMatchObject({ factorType: 'token:software:totp:GOOGLE' });
    expect(details(sso[0]).amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    const password = (await events('user.authentication.auth_via_password', alice.user.id))[0];
    expect([password?.ip, password?.user_agent]).toEqual([CLIENT.ip, CLIENT.userAgent]);

    await signInWithPages(s, createBrowser(s), alice, 'traqs_ntf_idp_sid');
    const viaPages = await events('user.authentication.sso', alice.user.id);
    expect(viaPages).toHaveLength(before + 2);
    expectFromClient(viaPages[0]);
    expect(details(viaPages[0])).toMatchObject({ factorType: 'token:software:totp:GOOGLE' });
  });

  it('a lockout is recorded', async () => {
    const alice = await activateUser(s, 'alice@acme.example');
    for (let i = 0; i < 5; i++) {
      await postJson(s, '/api/v1/authn', { username: alice.login, password: 'a wrong password here' });
    }
    const locks = await events('user.account.lock', alice.user.id);
    expect(locks).toHaveLength(1);
    expectFromClient(locks[0]);
  });
});
