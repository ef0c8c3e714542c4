import { describe, expect, it } from 'vitest';
import { approximatePlace } from './context.ts';

describe('approximate place of a sign-in', () => {
  it('says only what the address itself tells', () => {
    expect(approximatePlace('127.0.0.1')).toBe('This computer');
    expect(approximatePlace('::1')).toBe('This computer');
    expect(approximatePlace('::ffff:192.168.1.20')).toBe('Private network');
    expect(approximatePlace('172.20.0.5')).toBe('Private network');
    expect(approximatePlace('172.32.0.5')).toBe('Unknown location');
    expect(approximatePlace('203.0.113.7')).toBe('Documentation network (RFC 5737)');
    expect(approximatePlace('8.8.8.8')).toBe('Unknown location');
    expect(approximatePlace('not an address')).toBe('Unknown location');
    expect(approximatePlace(null)).toBe('Unknown location');
  });
});
