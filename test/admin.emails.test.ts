import { describe, expect, it } from 'vitest';
import { renderEmail, type TemplateData } from '../src/mail/templates.ts';
import { contacts, testContext } from './mail-fixtures.ts';

/**
 * The emails administrative changes send (issue #7): who did it, whom to call, the test banner;
 * names and reasons from the database are text, never markup or extra lines.
 */
const AT = Date.UTC(2026, 11, 4, 15, 30);
const HOSTILE = 'Eve <script>alert(1)</script>\nBcc: attacker@evil.example';

const CASES: { [K in keyof TemplateData]?: TemplateData[K] } = {
  accountSuspended: { firstName: HOSTILE, at: AT, by: 'operations' },
  accountUnsuspended: { firstName: 'Ada', at: AT, by: 'operations' },
  accountDeactivated: { firstName: 'Ada', at: AT, by: 'operations' },
  accountUnlockedByAdmin: { firstName: 'Ada', at: AT, by: 'support' },
  factorsReset: { firstName: 'Ada', at: AT, by: 'support', methods: ['Google Authenticator', HOSTILE], all: true },
  passwordResetBySupport: {
    firstName: 'Ada',
    url: 'https://idp.example/recover?token=abc',
    expiresAt: AT,
    validHours: 8,
  },
  switchedToFederated: { firstName: 'Ada', at: AT, by: 'support' },
  appAccessChanged: { firstName: 'Ada', at: AT, by: 'support', app: 'the TRAQS website', assigned: false },
  refreshTokenRevokedBySupport: {
    firstName: 'Ada',
    at: AT,
    by: 'support',
    label: HOSTILE,
    programmaticUrl: 'https://portal.example/api/programmatic',
  },
  personalInfoChanged: { firstName: 'Ada', at: AT, by: 'operations', fields: ['Email address'] },
  requestDecided: { firstName: 'Sam', kind: 'new_user', subject: HOSTILE, approved: false, reason: HOSTILE },
};

describe('administration emails', () => {
  for (const [name, data] of Object.entries(CASES)) {
    it(`${name}: test banner, contacts, no markup or header injection from data`, () => {
      const mail = renderEmail(name as keyof TemplateData, data as never, testContext);
      expect(mail.subject.startsWith('[NTF (test)]')).toBe(true);
      expect(mail.subject).not.toMatch(/[\r\n]/);
      expect(mail.html).not.toContain('<script>');
      expect(mail.text).not.toMatch(/^Bcc:/m);
      // Whoever made the change, the user learns whom to call.
      expect(mail.text.includes(contacts.operationsPhone) || mail.text.includes(contacts.techSupportPhone)).toBe(true);
    });
  }

  it('names the team that acted', () => {
    expect(renderEmail('factorsReset', CASES.factorsReset as TemplateData['factorsReset'], testContext).text).toContain(
      contacts.techSupportName,
    );
    expect(
      renderEmail('accountSuspended', CASES.accountSuspended as TemplateData['accountSuspended'], testContext).text,
    ).toContain(contacts.operationsName);
  });

  it('refuses a javascript: link in the password-reset email', () => {
    expect(() =>
      renderEmail(
        'passwordResetBySupport',
        { firstName: 'A', url: 'javascript:alert(1)', expiresAt: AT, validHours: 8 },
        testContext,
      ),
    ).toThrow();
  });

  it('words the enrollment email for a user switched back to local sign-in', () => {
    const mail = renderEmail(
      'enrollment',
      {
        occasion: 'switched-to-local',
        firstName: 'Ada',
        username: 'ada@acme.example',
        activationUrl: 'https://idp.example/activate?token=x',
        expiresAt: AT,
        validDays: 30,
      },
      testContext,
    );
    expect(mail.text).toContain("instead of your firm's single sign-on");
  });
});
