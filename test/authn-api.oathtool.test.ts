import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestStack, type TestStack } from './helpers/stack.ts';

const OATHTOOL = '/usr/bin/oathtool';
const available = existsSync(OATHTOOL);
if (!available && !process.env.CI)
  console.warn(`Skipping the oathtool sign-in test: ${OATHTOOL} is missing (apt-get install oathtool)`);

/** The code Debian's oathtool computes for a base32 key at a given moment (RFC 6238). */
function oathtool(key: string, at: number): string {
  const when = new Date(at).toISOString().replace('T', ' ').slice(0, 19);
  return execFileSync(OATHTOOL, ['--totp', '-b', key, '-N', `${when} UTC`], { encoding: 'utf8' }).trim();
}

async function post(s: TestStack, url: string, payload: object) {
  const res = await s.app.inject({ method: 'POST', url, payload });
  return res.json() as Record<string, any>;
}

describe.skipIf(!available && !process.env.CI)('Authentication API with codes computed by oathtool', () => {
  let s: TestStack;
  beforeAll(async () => {
    if (!available) throw new Error(`${OATHTOOL} is required in CI (apt-get install oathtool)`);
    s = await createTestStack();
  });
  afterAll(() => s?.close());

  it('enrolls Okta Verify TOTP and signs in with the codes an independent implementation computes', async () => {
    const made = await s.rt.accounts.provisionUser({
      email: 'ops@acme.example',
      firstName: 'O',
      lastName: 'P',
      firmId: s.firm.id,
    });
    if (!made.ok) throw new Error(made.message);
    const token = new URL(made.activationUrl).searchParams.get('token');
    let r = await post(s, '/api/v1/authn', { token });
    r = await post(s, '/api/v1/authn/credentials/reset_password', {
      stateToken: r.stateToken,
      newPassword: 'a long and unusual passphrase',
      recoveryQuestion: 'Favourite trading venue?',
      recoveryAnswer: 'the old floor',
    });
    const stateToken = r.stateToken;
    r = await post(s, '/api/v1/authn/factors', { stateToken, factorType: 'token:software:totp', provider: 'OKTA' });
    const factor = r._embedded.factor;
    const key: string = factor._embedded.activation.sharedSecret;
    r = await post(s, `/api/v1/authn/factors/${factor.id}/lifecycle/activate`, {
      stateToken,
      passCode: oathtool(key, s.clock()),
    });
    expect(r.status).toBe('SUCCESS');

    s.clock.advance(90_000);
    r = await post(s, '/api/v1/authn', { username: 'ops@acme.example', password: 'a long and unusual passphrase' });
    expect(r.status).toBe('MFA_REQUIRED');
    const wrong = String((Number(oathtool(key, s.clock())) + 1) % 1_000_000).padStart(6, '0');
    const refused = await post(s, `/api/v1/authn/factors/${factor.id}/verify`, {
      stateToken: r.stateToken,
      passCode: wrong,
    });
    expect(refused.errorCode).toBe('E0000068');
    const ok = await post(s, `/api/v1/authn/factors/${factor.id}/verify`, {
      stateToken: r.stateToken,
      passCode: oathtool(key, s.clock()),
    });
    expect(ok.status).toBe('SUCCESS');
  });
});
