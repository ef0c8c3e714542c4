import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  checkNewPassword,
  checkRecoveryAnswer,
  loadPasswordBlocklist,
  normalizePassword,
  normalizeRecoveryAnswer,
  type PasswordPolicyOptions,
} from './policy.ts';

const codes = (password: string, options?: PasswordPolicyOptions) =>
  checkNewPassword(password, options).map((p) => p.code);

describe('shipped blocklist', () => {
  const path = fileURLToPath(new URL('./common-passwords.txt', import.meta.url));

  it('holds at least 10,000 lower-case passwords and names its source and licence', () => {
    const text = readFileSync(path, 'utf8');
    const header = text.split('\n').filter((l) => l.startsWith('#'));
    expect(header.join('\n')).toMatch(/Source: .*@zxcvbn-ts\/language-common/);
    expect(header.join('\n')).toMatch(/License: MIT/);
    const list = loadPasswordBlocklist();
    expect(list.size).toBeGreaterThanOrEqual(10_000);
    for (const entry of list) expect(entry).toBe(entry.toLowerCase());
    expect(list.has('# common passwords, most frequent first')).toBe(false);
  });

  it('is cached', () => {
    expect(loadPasswordBlocklist()).toBe(loadPasswordBlocklist());
  });

  it.each(['password', 'Password1', 'QWERTY123', 'iloveyou', 'trustno1', 'letmein', 'football'])(
    'refuses %s as COMMON_PASSWORD, whatever its case',
    (password) => {
      expect(codes(password, { minLength: 1 })).toContain('COMMON_PASSWORD');
    },
  );

  it('lets an uncommon passphrase through', () => {
    expect(checkNewPassword('correct horse battery staple, ledger 7')).toEqual([]);
  });
});

describe('loadPasswordBlocklist', () => {
  it('skips comments and blank lines and lower-cases entries', () => {
    const dir = mkdtempSync(join(tmpdir(), 'blocklist-'));
    const file = join(dir, 'list.txt');
    writeFileSync(file, '# header\n\nHunter2\r\n  Tr0ub4dor  \n#not-a-password\n');
    const list = loadPasswordBlocklist(file);
    expect([...list].sort()).toEqual(['hunter2', 'tr0ub4dor']);
    expect(codes('HUNTER2', { blocklist: list, minLength: 1 })).toEqual(['COMMON_PASSWORD']);
  });
});

describe('checkNewPassword length (NIST 800-63B §5.1.1.2)', () => {
  const blocklist = new Set<string>();

  it('defaults to 8 to 64 characters', () => {
    expect(codes('Vq7#kz!', { blocklist })).toEqual(['TOO_SHORT']);
    expect(codes('Vq7#kz!m', { blocklist })).toEqual([]);
    expect(codes('Vq7#kz!m'.repeat(8), { blocklist })).toEqual([]);
    expect(codes(`${'Vq7#kz!m'.repeat(8)}a`, { blocklist })).toEqual(['TOO_LONG']);
  });

  it('honours configured limits and says them in the message', () => {
    const problems = checkNewPassword('short pass', { blocklist, minLength: 12, maxLength: 128 });
    expect(problems).toEqual([{ code: 'TOO_SHORT', message: 'Use at least 12 characters.' }]);
    expect(checkNewPassword('a long passphrase', { blocklist, maxLength: 10 })).toEqual([
      { code: 'TOO_LONG', message: 'Use at most 10 characters.' },
    ]);
  });

  it('counts Unicode code points, not UTF-16 units', () => {
    // Seven emoji are 14 UTF-16 units but 7 characters.
    expect(codes('🔐🦊🌍🎲🧩🚲🍀', { blocklist })).toEqual(['TOO_SHORT']);
    expect(codes('🔐🦊🌍🎲🧩🚲🍀🎻', { blocklist })).toEqual([]);
    expect(codes('пароль-ключ', { blocklist })).toEqual([]);
  });

  it('counts after NFKC normalisation', () => {
    // U+FB03 "ﬃ" is one code point and becomes "ffi" (three) under NFKC.
    expect(codes('abc\ufb03de', { blocklist })).toEqual([]);
    expect(codes('ab\ufb03de', { blocklist })).toEqual(['TOO_SHORT']);
    // A decomposed "é" (e + combining acute) is two code points and composes to one.
    expect(codes('cafe\u0301bar', { blocklist })).toEqual(['TOO_SHORT']);
    expect(normalizePassword('cafe\u0301')).toBe('caf\u00e9');
  });

  it('imposes no composition rules', () => {
    expect(codes('all lower case words here', { blocklist })).toEqual([]);
    expect(codes('8472910365', { blocklist })).toEqual([]);
  });
});

describe('checkNewPassword context-specific words (NIST 800-63B §5.1.1.2)', () => {
  const blocklist = new Set<string>();

  it('refuses the username, case-insensitively', () => {
    expect(codes('Marguerite.Dupont', { blocklist, username: 'marguerite.dupont' })).toEqual(['EQUALS_USERNAME']);
  });

  it('refuses the whole email and its local part', () => {
    const options = { blocklist, username: 'Marguerite.Dupont@Example.com' };
    expect(codes('marguerite.dupont@example.com', options)).toEqual(['EQUALS_USERNAME']);
    expect(codes('MARGUERITE.DUPONT', options)).toEqual(['EQUALS_USERNAME']);
    expect(
      codes('marguerite.dupont', { blocklist, username: 'mdupont', email: 'marguerite.dupont@example.com' }),
    ).toEqual(['EQUALS_USERNAME']);
  });

  it('refuses a password that contains the username', () => {
    const problems = checkNewPassword('my-mdupont-2024', { blocklist, username: 'mdupont@example.com' });
    expect(problems.map((p) => p.code)).toEqual(['CONTAINS_USERNAME']);
    expect(problems[0]?.message).toMatch(/must not contain your username/);
  });

  it('does not search for very short usernames inside a password', () => {
    expect(codes('totally-fine-pass', { blocklist, username: 'al' })).toEqual([]);
  });

  it('refuses service-specific words', () => {
    expect(codes('Traqs2024!!', { blocklist, contextWords: ['traqs'] })).toEqual(['CONTAINS_CONTEXT_WORD']);
  });
});

describe('checkNewPassword repetitive or sequential characters (NIST 800-63B §5.1.1.2)', () => {
  const blocklist = new Set<string>();

  it.each(['aaaaaaaa', 'abababab', 'abcabcabc', 'abcdefgh', 'zyxwvuts', '98765432', '1234abcd', 'aaaa1234'])(
    'refuses %s',
    (password) => {
      expect(codes(password, { blocklist })).toEqual(['REPETITIVE_OR_SEQUENTIAL']);
    },
  );

  it.each(['abcd1234x', 'Vq7#kz!m', 'river-otter-lamp', 'aaaabbbbcccc'])('accepts %s', (password) => {
    expect(codes(password, { blocklist })).toEqual([]);
  });
});

describe('checkNewPassword messages', () => {
  it('reports every problem at once, each with a user-facing message', () => {
    const problems = checkNewPassword('qzvx', { username: 'QZVX', minLength: 8 });
    expect(problems.map((p) => p.code)).toEqual(['TOO_SHORT', 'EQUALS_USERNAME']);
    for (const p of problems) expect(p.message).toMatch(/^[A-Z].*\.$/);
  });
});

describe('recovery answers', () => {
  it('normalises with NFKC, trim, collapsed white space and lower case', () => {
    expect(normalizeRecoveryAnswer('  Rue  de\tla\u00a0Paix \n')).toBe('rue de la paix');
    expect(normalizeRecoveryAnswer('ＭＩＬＬＥＲ')).toBe('miller');
    expect(normalizeRecoveryAnswer('Cafe\u0301')).toBe(normalizeRecoveryAnswer('CAFÉ'));
  });

  it('requires 4 to 100 characters after normalisation', () => {
    expect(checkRecoveryAnswer('  a  b ').map((p) => p.code)).toEqual(['TOO_SHORT']);
    expect(checkRecoveryAnswer('a  bc')).toEqual([]);
    expect(checkRecoveryAnswer('x'.repeat(100))).toEqual([]);
    expect(checkRecoveryAnswer('x'.repeat(101)).map((p) => p.code)).toEqual(['TOO_LONG']);
    expect(checkRecoveryAnswer('🐈🐈🐈🐈')).toEqual([]);
    expect(checkRecoveryAnswer('abcdef', { minLength: 8 }).map((p) => p.code)).toEqual(['TOO_SHORT']);
  });

  it('refuses an answer that contains the password', () => {
    const problems = checkRecoveryAnswer('My dog is Hunter Two-Seven', { password: 'hunter  two-seven' });
    expect(problems).toEqual([{ code: 'CONTAINS_PASSWORD', message: 'Your answer must not contain your password.' }]);
    expect(checkRecoveryAnswer('Hunter', { password: 'hunter two-seven' })).toEqual([]);
  });
});
