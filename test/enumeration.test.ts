import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBrowser } from './helpers/browser.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, postJson, provisionUser } from './helpers/users.ts';

const UNKNOWN = 'nobody.here@acme.example';
const WRONG = 'not the right password at all';

let s: TestStack;
/** Several known users, so timing samples stay under the lockout limit of each. */
let known: ActiveUser[];
beforeAll(async () => {
  s = await createTestStack();
  known = [];
  for (const name of ['alice', 'bob', 'carol']) known.push(await activateUser(s, `${name}@acme.example`));
});
afterAll(async () => {
  await s?.close();
});

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

describe('no user enumeration through the Authentication API', () => {
  it('answers an unknown username exactly as a known username with a wrong password', async () => {
    const unknown = await postJson(s, '/api/v1/authn', { username: UNKNOWN, password: WRONG });
    const wrong = await postJson(s, '/api/v1/authn', { username: known[0]?.login, password: WRONG });
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(unknown.status);
    expect(unknown.body.errorCode).toBe('E0000004');
    const { errorId: a, ...unknownRest } = unknown.body;
    const { errorId: b, ...wrongRest } = wrong.body;
    expect(wrongRest).toEqual(unknownRest);
    expect(a).not.toBe(b);
    expect(JSON.stringify(unknown.body)).not.toContain(UNKNOWN);

    // Nor does a user who exists but has not activated yet (no password) stand out.
    await provisionUser(s, 'not.yet@acme.example');
    const pending = await postJson(s, '/api/v1/authn', { username: 'not.yet@acme.example', password: WRONG });
    const { errorId: _c, ...pendingRest } = pending.body;
    expect(pending.status).toBe(unknown.status);
    expect(pendingRest).toEqual(unknownRest);
  });

  it('takes about as long for an unknown username (a dummy Argon2id verification)', async () => {
    // Warm up both paths (JIT, the dummy hash computed at start).
    await postJson(s, '/api/v1/authn', { username: UNKNOWN, password: WRONG });
    const unknownMs: number[] = [];
    const knownMs: number[] = [];
    const time = async (username: string) => {
      const t0 = performance.now();
      await postJson(s, '/api/v1/authn', { username, password: WRONG });
      return performance.now() - t0;
    };
    // Interleaved, so load from other test files slows both samples alike; 3 tries per known user
    // stays under the lockout limit.
    for (let i = 0; i < 9; i++) {
      unknownMs.push(await time(`nobody${i}@acme.example`));
      knownMs.push(await time(known[i % known.length]?.login ?? ''));
    }
    const ratio = median(unknownMs) / median(knownMs);
    // Without the dummy verification an unknown user answers in a small fraction of the time of a
    // real Argon2id check; with it the two are close. The bounds leave room for a loaded machine.
    expect(ratio, `unknown ${median(unknownMs).toFixed(1)} ms, known ${median(knownMs).toFixed(1)} ms`).toBeGreaterThan(
      0.6,
    );
    expect(ratio).toBeLessThan(1.7);
  });
});

describe('no user enumeration through the sign-in page', () => {
  it('shows the same page for an unknown username and a wrong password', async () => {
    const signIn = async (username: string) => {
      const browser = createBrowser(s);
      const res = await browser.submit('/signin', '/signin', { username, password: WRONG });
      // The page echoes the username back into the form and carries a fresh CSRF token.
      const body = res.payload.replaceAll(username, 'USERNAME').replace(/name="_csrf" value="[^"]*"/g, 'CSRF');
      return { status: res.statusCode, body };
    };
    const unknown = await signIn(UNKNOWN);
    const wrong = await signIn(known[1]?.login ?? '');
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(unknown.status);
    expect(unknown.body).toContain('Sign-in failed. Check your username and password.');
    expect(wrong.body).toBe(unknown.body);
  });
});
