import { describe, expect, it } from 'vitest';
import { defaultTokenLabel, LABEL_MAX_LENGTH, parseTokenLabel } from './label.ts';

const NOW = Date.parse('2026-12-04T23:59:00Z');

describe('parseTokenLabel', () => {
  it('defaults an empty or missing label to "Refresh token {date}" (UTC)', () => {
    expect(defaultTokenLabel(NOW)).toBe('Refresh token 2026-12-04');
    expect(parseTokenLabel(undefined, NOW)).toEqual({ ok: true, label: 'Refresh token 2026-12-04' });
    expect(parseTokenLabel('   ', NOW)).toEqual({ ok: true, label: 'Refresh token 2026-12-04' });
  });

  it('trims and keeps up to 60 characters, counting characters rather than UTF-16 units', () => {
    expect(parseTokenLabel('  build server 1 ', NOW)).toEqual({ ok: true, label: 'build server 1' });
    expect(parseTokenLabel('x'.repeat(LABEL_MAX_LENGTH), NOW).ok).toBe(true);
    expect(parseTokenLabel('😀'.repeat(LABEL_MAX_LENGTH), NOW).ok).toBe(true);
    expect(parseTokenLabel('x'.repeat(LABEL_MAX_LENGTH + 1), NOW)).toEqual({
      ok: false,
      error: 'Use at most 60 characters.',
    });
  });

  it('refuses control characters, line separators and non-text', () => {
    for (const bad of ['a\nb', 'a\tb', 'a\u0000b', 'a\u007fb', 'a\u2028b']) {
      expect(parseTokenLabel(bad, NOW).ok, JSON.stringify(bad)).toBe(false);
    }
    expect(parseTokenLabel(['a'], NOW).ok).toBe(false);
    expect(parseTokenLabel('Zürich — desk #2 (prod)', NOW).ok).toBe(true);
  });
});
