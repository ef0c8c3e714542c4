import { describe, expect, it } from 'vitest';
import { parsePreferences } from '../accounts/model.ts';
import { nameForNewFactor, parsePhone } from './service.ts';

describe('parsePhone', () => {
  it.each([
    ['', null],
    ['   ', null],
    ['+1 (212) 555-0100', '+1 (212) 555-0100'],
    ['  212   555 0199 x12 ', '212 555 0199 x12'],
    ['+44 20 7946 0958', '+44 20 7946 0958'],
    ['2125550100X7', '2125550100X7'],
  ])('accepts %j as %j', (raw, value) => {
    expect(parsePhone(raw)).toEqual({ ok: true, value });
  });

  it.each([
    ['call me', 'Use digits'],
    ['212.555.0100', 'Use digits'],
    ['+1 212 555 0100 ext 12', 'Use digits'],
    ['()-+x', 'Use digits'],
    ['<script>', 'Use digits'],
    [`+${'1'.repeat(40)}`, 'at most 40'],
  ])('refuses %j', (raw, message) => {
    const r = parsePhone(raw);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.message).toContain(message);
  });

  it('allows exactly 40 characters', () => {
    expect(parsePhone('1'.repeat(40)).ok).toBe(true);
  });
});

describe('nameForNewFactor', () => {
  it('numbers a second app of the same kind', () => {
    expect(nameForNewFactor('Google Authenticator', [])).toBe('Google Authenticator');
    expect(nameForNewFactor('Google Authenticator', ['Okta Verify (code)'])).toBe('Google Authenticator');
    expect(nameForNewFactor('Google Authenticator', ['Google Authenticator'])).toBe('Google Authenticator 2');
    expect(nameForNewFactor('Google Authenticator', ['Google Authenticator', 'Google Authenticator 2'])).toBe(
      'Google Authenticator 3',
    );
  });
});

describe('parsePreferences', () => {
  it('reads the JSON object, and treats anything else as no preferences', () => {
    expect(parsePreferences('{"autoPush":true}')).toEqual({ autoPush: true });
    expect(parsePreferences('[1]')).toEqual({});
    expect(parsePreferences('null')).toEqual({});
    expect(parsePreferences('{')).toEqual({});
  });
});
