import { describe, expect, it } from 'vitest';
import { createSmallFileCache } from './file-cache.ts';

describe('createSmallFileCache', () => {
  const row = (path: string, sha256 = 'a', size = 3) => ({ path, sha256, size });

  it('keeps content by path, size and digest, for ttlMs', () => {
    let now = 0;
    const cache = createSmallFileCache({ maxBytes: 100, ttlMs: 1000, clock: () => now });
    cache.set(row('x'), Buffer.from('abc'));
    expect(cache.get(row('x'))?.toString()).toBe('abc');
    // The same path published again (another digest) is another entry.
    expect(cache.get(row('x', 'b'))).toBeUndefined();
    now = 999;
    expect(cache.get(row('x'))).toBeDefined();
    now = 1000;
    expect(cache.get(row('x'))).toBeUndefined();
    expect(cache.size).toEqual({ files: 0, bytes: 0 });
  });

  it('forgets the least recently used content past maxBytes', () => {
    const cache = createSmallFileCache({ maxBytes: 6, ttlMs: 1000, clock: () => 0 });
    cache.set(row('a'), Buffer.from('aaa'));
    cache.set(row('b'), Buffer.from('bbb'));
    cache.get(row('a'));
    cache.set(row('c'), Buffer.from('ccc'));
    expect(cache.get(row('b'))).toBeUndefined();
    expect(cache.get(row('a'))).toBeDefined();
    expect(cache.get(row('c'))).toBeDefined();
    cache.set(row('big', 'z', 7), Buffer.alloc(7));
    expect(cache.size).toEqual({ files: 2, bytes: 6 });
  });
});
