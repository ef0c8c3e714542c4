import { hash as argon2Hash } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';
import { createPasswordHasher, DEFAULT_ARGON2_PARAMS } from './hashing.ts';

// Small parameters keep the suite fast; one test uses the OWASP defaults.
const FAST = { memoryKiB: 1024, timeCost: 1, parallelism: 1 };

describe('createPasswordHasher', () => {
  it('uses the OWASP Argon2id parameters by default', async () => {
    expect(DEFAULT_ARGON2_PARAMS).toEqual({ memoryKiB: 19_456, timeCost: 2, parallelism: 1 });
    const hasher = createPasswordHasher();
    const phc = await hasher.hash('correct horse battery staple');
    expect(phc).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(await hasher.verify(phc, 'correct horse battery staple')).toEqual({ ok: true, needsRehash: false });
  });

  it('salts every hash', async () => {
    const hasher = createPasswordHasher(FAST);
    const a = await hasher.hash('same password');
    const b = await hasher.hash('same password');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
  });

  it('accepts the right password and refuses a wrong one', async () => {
    const hasher = createPasswordHasher(FAST);
    const phc = await hasher.hash('Tr0ub4dor&3');
    expect(await hasher.verify(phc, 'Tr0ub4dor&3')).toEqual({ ok: true, needsRehash: false });
    expect(await hasher.verify(phc, 'tr0ub4dor&3')).toEqual({ ok: false, needsRehash: false });
    expect(await hasher.verify(phc, '')).toEqual({ ok: false, needsRehash: false });
  });

  it('matches the same password however its Unicode was composed (NIST 800-63B §5.1.1.2)', async () => {
    const hasher = createPasswordHasher(FAST);
    const phc = await hasher.hash('café crème');
    expect((await hasher.verify(phc, 'cafe\u0301 cre\u0300me')).ok).toBe(true);
  });

  it('refuses parameters Argon2 does not allow', () => {
    expect(() => createPasswordHasher({ memoryKiB: 4 })).toThrow(RangeError);
    expect(() => createPasswordHasher({ timeCost: 0 })).toThrow(RangeError);
    expect(() => createPasswordHasher({ parallelism: 0 })).toThrow(RangeError);
    expect(() => createPasswordHasher({ parallelism: 1.5 })).toThrow(RangeError);
  });
});

describe('needsRehash', () => {
  it('is true when the stored m, t or p differ from the configured ones', async () => {
    const older = createPasswordHasher({ memoryKiB: 512, timeCost: 1, parallelism: 1 });
    const current = createPasswordHasher(FAST);
    for (const params of [
      { memoryKiB: 512, timeCost: 1, parallelism: 1 },
      { memoryKiB: 1024, timeCost: 2, parallelism: 1 },
      { memoryKiB: 1024, timeCost: 1, parallelism: 2 },
    ]) {
      const phc = await createPasswordHasher(params).hash('rotate me please');
      expect(await current.verify(phc, 'rotate me please'), JSON.stringify(params)).toEqual({
        ok: true,
        needsRehash: true,
      });
    }
    const phc = await older.hash('rotate me please');
    const rehashed = await current.hash('rotate me please');
    expect(await current.verify(rehashed, 'rotate me please')).toEqual({ ok: true, needsRehash: false });
    expect(await older.verify(rehashed, 'rotate me please')).toEqual({ ok: true, needsRehash: true });
    expect(await older.verify(phc, 'rotate me please')).toEqual({ ok: true, needsRehash: false });
  });

  it('is true for another Argon2 variant', async () => {
    const argon2i = await argon2Hash('legacy variant', { algorithm: 1, memoryCost: 1024, timeCost: 1, parallelism: 1 });
    expect(argon2i).toMatch(/^\$argon2i\$/);
    const hasher = createPasswordHasher(FAST);
    expect(await hasher.verify(argon2i, 'legacy variant')).toEqual({ ok: true, needsRehash: true });
  });

  it('is false when the password is wrong, since there is nothing to rehash', async () => {
    const phc = await createPasswordHasher({ memoryKiB: 512, timeCost: 1, parallelism: 1 }).hash('the real one');
    expect(await createPasswordHasher(FAST).verify(phc, 'not it')).toEqual({ ok: false, needsRehash: false });
  });
});

describe('malformed stored hashes', () => {
  it.each([
    ['empty', ''],
    ['plain text', 'hunter2'],
    ['bcrypt', '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy'],
    ['truncated PHC', '$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ'],
    ['bad base64', '$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQxMjM0$!!!!!!!!!!!!!!!!!!!!!!!!'],
    ['corrupt salt', '$argon2id$v=19$m=1024,t=1,p=1$A$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    ['impossible cost', '$argon2id$v=19$m=1,t=0,p=0$c29tZXNhbHQxMjM0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
  ])('%s: returns ok false and never throws', async (_name, stored) => {
    const hasher = createPasswordHasher(FAST);
    await expect(hasher.verify(stored, 'hunter2')).resolves.toEqual({ ok: false, needsRehash: false });
  });
});

describe('verifyDummy (no user enumeration, OWASP Authentication Cheat Sheet)', () => {
  it('never returns ok, whatever the password', async () => {
    const hasher = createPasswordHasher(FAST);
    for (const plain of ['', 'password', 'x'.repeat(1000), '🔐']) {
      expect(await hasher.verifyDummy(plain)).toEqual({ ok: false, needsRehash: false });
    }
  });

  it('never returns ok, even for the dummy password itself', async () => {
    const fixed = Buffer.alloc(32, 0x41);
    const hasher = createPasswordHasher(FAST, (n) => fixed.subarray(0, n));
    expect(await hasher.verifyDummy(fixed.toString('base64url'))).toEqual({ ok: false, needsRehash: false });
  });

  it('costs about as much as verifying a real hash', async () => {
    const hasher = createPasswordHasher({ memoryKiB: 8192, timeCost: 2, parallelism: 1 });
    const phc = await hasher.hash('a real password');
    await hasher.verifyDummy('warm up');
    const time = async (fn: () => Promise<unknown>) => {
      const start = performance.now();
      for (let i = 0; i < 5; i++) await fn();
      return performance.now() - start;
    };
    const real = await time(() => hasher.verify(phc, 'a wrong password'));
    const dummy = await time(() => hasher.verifyDummy('a wrong password'));
    // Generous bounds: a shared CI machine is noisy; what matters is that no work is skipped.
    expect(dummy).toBeGreaterThan(real * 0.4);
    expect(dummy).toBeLessThan(real * 2.5);
  });
});
