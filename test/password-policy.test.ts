import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import { createBrowser, csrfFrom } from './helpers/browser.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { causes, PASSWORD, postJson, provisionUser, RECOVERY, text } from './helpers/users.ts';

const EMAIL = 'jane.doe@acme.example';

let s: TestStack;
beforeEach(async () => {
  s = await createTestStack();
});
afterEach(async () => {
  await s.close();
});

async function startActivation() {
  const { user, token } = await provisionUser(s, EMAIL);
  const r = await postJson(s, '/api/v1/authn', { token });
  return { user, token, stateToken: text(r.body, 'stateToken') };
}

/** NIST 800-63B §5.1.1.2, checked when the password is chosen at activation. */
describe('password policy at activation', () => {
  const refused: { name: string; password: string; cause: RegExp }[] = [
    { name: 'too short', password: 'Tr0ub4dor&3', cause: /at least 12 characters/ },
    { name: 'a common password', password: 'password1234', cause: /too common/ },
    { name: 'a common password in other case', password: 'PASSWORD1234', cause: /too common/ },
    { name: 'the username', password: EMAIL, cause: /must not be your username/ },
    { name: 'the username in upper case', password: EMAIL.toUpperCase(), cause: /must not be your username/ },
    { name: 'repeated characters', password: 'aaaaaaaaaaaaaaaa', cause: /repeated or sequential/ },
  ];

  for (const c of refused) {
    it(`refuses ${c.name} with 403 E0000080 and the reason, changing nothing`, async () => {
      const { user, token, stateToken } = await startActivation();
      const r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
        stateToken,
        newPassword: c.password,
        ...RECOVERY,
      });
      expect(r.status).toBe(403);
      expect(r.body.errorCode).toBe('E0000080');
      expect(causes(r.body).join(' ')).toMatch(c.cause);

      const after = await s.rt.store.repos.users.findUserById(user.id);
      expect(after?.password_hash).toBeNull();
      expect(after?.recovery_answer_hash).toBeNull();
      expect(after?.status).toBe('PROVISIONED');
      expect((await s.rt.store.repos.tokens.findEmailToken(hashBearerSecret(token)))?.consumed_at).toBeNull();
      expect((await postJson(s, '/api/v1/authn', { stateToken })).body.status).toBe('PASSWORD_RESET');
      // The refused password does not sign in.
      expect((await postJson(s, '/api/v1/authn', { username: EMAIL, password: c.password })).status).toBe(401);
    });
  }

  it('accepts a long passphrase after a refusal, in the same transaction', async () => {
    const { stateToken } = await startActivation();
    await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken,
      newPassword: 'password1234',
      ...RECOVERY,
    });
    const ok = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken,
      newPassword: PASSWORD,
      ...RECOVERY,
    });
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe('MFA_ENROLL');
  });

  it('the password page shows the reason next to the field', async () => {
    const { token } = await provisionUser(s, EMAIL);
    const b = createBrowser(s);
    const url = `/activate?token=${encodeURIComponent(token)}`;
    await b.submit(url, '/activate', { token });
    const page = await b.get('/signin/next');
    const res = await b.post('/signin/password', {
      newPassword: 'password1234',
      ...RECOVERY,
      _csrf: csrfFrom(page.payload),
    });
    expect(res.statusCode).toBe(400);
    expect(res.payload).toContain('too common');
    expect(res.payload).toContain('aria-invalid="true"');
  });
});
