import { describe, expect, it } from 'vitest';
import type { AuditRow } from '../audit/repository.ts';
import { describeActivity, describeBrowser, describeMethod, formatTime } from './describe.ts';

const row = (action: string, outcome: string, details: Record<string, unknown> = {}): AuditRow => ({
  id: 1,
  at: Date.parse('2026-12-04T12:34:56Z'),
  actor_id: 'u1',
  action,
  target_id: 'u1',
  outcome,
  ip: '203.0.113.7',
  user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36',
  details: JSON.stringify(details),
});

describe('describeBrowser', () => {
  it.each([
    [
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
      'Edge 131 on Windows',
    ],
    [
      'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
      'Safari 17 on macOS',
    ],
    ['Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', 'Firefox 128 on Linux'],
    [
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36',
      'Chrome 156 on Linux',
    ],
    [
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
      'Safari 17 on iOS',
    ],
    [
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
      'Chrome 131 on Android',
    ],
  ])('%s → %s', (ua, expected) => {
    expect(describeBrowser(ua)).toBe(expected);
  });

  it('shows anything else as sent, shortened, so the source of a sign-in is never hidden', () => {
    expect(describeBrowser('okta-auth-js/7.8.1')).toBe('okta-auth-js/7.8.1');
    expect(describeBrowser('x'.repeat(100))).toBe(`${'x'.repeat(59)}…`);
    expect(describeBrowser(null)).toBe('Unknown');
  });
});

describe('describeMethod', () => {
  it('names the method from the details each event records', () => {
    expect(describeMethod({ factorType: 'token:software:totp:GOOGLE' })).toBe('Google Authenticator');
    expect(describeMethod({ factorType: 'token:software:totp:OKTA' })).toBe('Okta Verify (code)');
    expect(describeMethod({ factor: 'token:software:totp' })).toBe('Authenticator app (TOTP)');
    expect(describeMethod({ factor: 'password' })).toBe('Password');
    expect(describeMethod({ provider: 'GOOGLE' })).toBe('Google Authenticator');
    expect(describeMethod({ name: 'Google Authenticator 2', provider: 'GOOGLE' })).toBe('Google Authenticator 2');
    expect(describeMethod({})).toBeNull();
  });
});

describe('describeActivity', () => {
  it('puts sign-ins and security changes in words', () => {
    expect(
      describeActivity(row('user.authentication.sso', 'success', { factorType: 'token:software:totp:GOOGLE' })),
    ).toEqual({
      at: Date.parse('2026-12-04T12:34:56Z'),
      what: 'Signed in',
      kind: 'sign-in',
      outcome: 'success',
      ip: '203.0.113.7',
      browser: 'Chrome 156 on Linux',
      method: 'Google Authenticator',
    });
    expect(describeActivity(row('user.session.start', 'failure', { factor: 'password' }))?.what).toBe(
      'Sign-in failed: wrong password',
    );
    expect(
      describeActivity(row('user.mfa.factor.deactivate', 'success', { name: 'Okta Verify (code)' })),
    ).toMatchObject({ what: 'Security method removed', kind: 'change', method: 'Okta Verify (code)' });
    expect(describeActivity(row('user.account.update_password', 'success', { via: 'profile' }))?.what).toBe(
      'Password changed',
    );
  });

  it('leaves out internal steps and events recorded twice', () => {
    expect(describeActivity(row('user.authentication.auth_via_password', 'success'))).toBeUndefined();
    expect(describeActivity(row('user.mfa.factor.enroll_started', 'success'))).toBeUndefined();
    expect(describeActivity(row('user.authentication.reverify', 'success'))).toBeUndefined();
    // Activation records it too, under its own name.
    expect(describeActivity(row('user.account.update_password', 'success'))).toBeUndefined();
    expect(describeActivity({ ...row('user.authentication.sso', 'success'), details: 'not json' })?.method).toBeNull();
  });
});

describe('formatTime', () => {
  it('shows minutes in UTC, or a dash', () => {
    expect(formatTime(Date.parse('2026-12-04T12:34:56Z'))).toBe('2026-12-04 12:34 UTC');
    expect(formatTime(null)).toBe('—');
  });
});
