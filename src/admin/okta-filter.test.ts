import { describe, expect, it } from 'vitest';
import { parseOktaFilter } from './okta-filter.ts';

describe('parseOktaFilter', () => {
  it("parses the examples of Okta's user and log filters", () => {
    expect(parseOktaFilter('status eq "LOCKED_OUT"')).toEqual({
      ok: true,
      combinator: 'and',
      terms: [{ attribute: 'status', op: 'eq', value: 'LOCKED_OUT' }],
    });
    expect(parseOktaFilter('profile.login eq "a@b.example" or profile.email eq "c@d.example"')).toEqual({
      ok: true,
      combinator: 'or',
      terms: [
        { attribute: 'profile.login', op: 'eq', value: 'a@b.example' },
        { attribute: 'profile.email', op: 'eq', value: 'c@d.example' },
      ],
    });
    expect(parseOktaFilter('eventType sw "user.lifecycle" AND outcome.result eq "SUCCESS"')).toMatchObject({
      ok: true,
      combinator: 'and',
      terms: [
        { attribute: 'eventType', op: 'sw', value: 'user.lifecycle' },
        { attribute: 'outcome.result', op: 'eq', value: 'SUCCESS' },
      ],
    });
  });

  it('unescapes quoted values', () => {
    expect(parseOktaFilter('profile.lastName eq "O\\"Brien"')).toMatchObject({
      ok: true,
      terms: [{ value: 'O"Brien' }],
    });
  });

  it('refuses what it cannot answer correctly instead of guessing', () => {
    for (const bad of [
      '',
      '(status eq "ACTIVE")',
      'status ne "ACTIVE"',
      'status eq "ACTIVE" and',
      'status eq "ACTIVE" and id eq "x" or id eq "y"',
      'status eq ACTIVE',
      'not status eq "ACTIVE"',
    ]) {
      expect(parseOktaFilter(bad).ok, bad).toBe(false);
    }
  });
});
