import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { base32Decode, generateTotp } from '../src/authn/factors/totp/totp.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';

const PASSWORD = 'correct horse battery staple 42';

let s: TestStack;
beforeEach(async () => {
  s = await createTestStack();
});
afterEach(async () => {
  await s.close();
});

async function post(url: string, payload: unknown) {
  const res = await s.app.inject({ method: 'POST', url, payload: payload as object });
  return { status: res.statusCode, body: res.json() as Record<string, any> };
}

describe('Authentication API: activation, enrollment and sign-in', () => {
  it('activates with the emailed token, enrolls TOTP and signs in with password + code', async () => {
    const created = await s.rt.accounts.provisionUser({
      email: 'Jane.Doe@Acme.example',
      firstName: 'Jane',
      lastName: 'Doe',
      firmId: s.firm.id,
    });
    if (!created.ok) throw new Error(created.message);
    const token = new URL(created.activationUrl).searchParams.get('token');

    let r = await post('/api/v1/authn', { token });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('PASSWORD_RESET');
    const stateToken = r.body.stateToken;

    r = await post('/api/v1/authn/credentials/reset_password', {
      stateToken,
      newPassword: PASSWORD,
      recoveryQuestion: 'Name of the street you grew up on?',
      recoveryAnswer: 'Elm Street',
    });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('MFA_ENROLL');
    const next = r.body.stateToken;

    r = await post('/api/v1/authn/factors', {
      stateToken: next,
      factorType: 'token:software:totp',
      provider: 'GOOGLE',
    });
    expect(r.body.status).toBe('MFA_ENROLL_ACTIVATE');
    const factor = r.body._embedded.factor;
    const secret = base32Decode(factor._embedded.activation.sharedSecret);
    r = await post(`/api/v1/authn/factors/${factor.id}/lifecycle/activate`, {
      stateToken: next,
      passCode: generateTotp({ secret, now: s.clock() }),
    });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('SUCCESS');
    expect(r.body.sessionToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(r.body._embedded.user.profile.login).toBe('jane.doe@acme.example');

    s.clock.advance(30_000);
    r = await post('/api/v1/authn', { username: 'jane.doe@acme.example', password: PASSWORD });
    expect(r.body.status).toBe('MFA_REQUIRED');
    const [f] = r.body._embedded.factors;
    expect(f.factorType).toBe('token:software:totp');
    const code = generateTotp({ secret, now: s.clock() });
    const ok = await post(`/api/v1/authn/factors/${f.id}/verify`, { stateToken: r.body.stateToken, passCode: code });
    expect(ok.body.status).toBe('SUCCESS');

    // RFC 6238 §5.2: the same code cannot sign in twice.
    r = await post('/api/v1/authn', { username: 'jane.doe@acme.example', password: PASSWORD });
    const replay = await post(`/api/v1/authn/factors/${f.id}/verify`, {
      stateToken: r.body.stateToken,
      passCode: code,
    });
    expect(replay.status).toBe(403);
    expect(replay.body.errorCode).toBe('E0000068');
  });
});
