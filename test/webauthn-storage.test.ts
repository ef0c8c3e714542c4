import { afterEach, beforeEach, expect, it } from 'vitest';
import { bindingOfTransaction } from '../src/authn/factors/webauthn/repository.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { activateWithFastPass, challengeFastPass, verifyFastPass } from './helpers/fastpass.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';

/**
 * FastPass storage on SQLite and PostgreSQL alike (`0006-webauthn`): a whole sign-in, a challenge
 * consumed once across two nodes, the counter's compare-and-set, and the credential deleted with
 * its factor.
 */
describeEachBackend('FastPass storage', (backend: BackendHandle) => {
  let s: TestStack;
  beforeEach(async () => {
    s = await createTestStack({ store: backend.store() });
  });
  afterEach(async () => {
    await s.close();
  });

  it('enrolls, signs in, and deletes the credential with its factor', async () => {
    const u = await activateWithFastPass(s, 'storage.fastpass@acme.example');
    const c = await challengeFastPass(s, u);
    const done = await verifyFastPass(s, u.factorId, c.stateToken, u.authenticator.assert(c.options));
    expect(done.body.status).toBe('SUCCESS');
    const repo = s.rt.store.repos.factors.webauthn;
    expect((await repo.findCredential(u.factorId))?.sign_count).toBe(1);
    expect(await repo.credentialExists(u.authenticator.id)).toBe(true);
    expect(await s.rt.store.repos.factors.deleteFactor(u.userId, u.factorId)).toBe(true);
    expect(await repo.findCredential(u.factorId)).toBeUndefined();
    expect(await repo.credentialExists(u.authenticator.id)).toBe(false);
  });

  it('a challenge is consumed once even when two nodes race, and the counter moves by compare-and-set', async () => {
    const u = await activateWithFastPass(s, 'race.fastpass@acme.example');
    const now = s.clock();
    const binding = bindingOfTransaction('a'.repeat(64));
    const repo = s.rt.store.repos.factors.webauthn;
    await repo.issueChallenge({
      challenge: 'c'.repeat(43),
      user_id: u.userId,
      purpose: 'authentication',
      binding,
      factor_id: u.factorId,
      created_at: now,
      expires_at: now + 60_000,
      consumed_at: null,
    });
    const other = backend.connectAgain().repos.factors.webauthn;
    const results = await Promise.all([
      repo.consumeChallenge('c'.repeat(43), binding, 'authentication', u.factorId, now + 1),
      other.consumeChallenge('c'.repeat(43), binding, 'authentication', u.factorId, now + 1),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);

    const counts = await Promise.all([
      repo.advanceSignCount(u.factorId, 0, 5),
      other.advanceSignCount(u.factorId, 0, 6),
    ]);
    expect(counts.filter(Boolean)).toHaveLength(1);
    expect([5, 6]).toContain((await repo.findCredential(u.factorId))?.sign_count);
  });
});
