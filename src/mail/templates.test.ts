import { describe, expect, it } from 'vitest';
import { configSchema } from '../config/schema.ts';
import { type EmailContext, escapeHtml, renderEmail } from './templates.ts';

const contacts = configSchema.shape.contacts.parse(undefined);
const test: EmailContext = { environment: { label: 'NTF', kind: 'test' }, contacts };
const production: EmailContext = { environment: { label: 'Production', kind: 'production' }, contacts };
const T0 = Date.UTC(2025, 2, 14, 15, 4);

const enrollment = {
  firstName: 'Ada',
  username: 'ada.lovelace',
  activationUrl: 'https://idp.ntf.example/welcome/abc?x=1&y=2',
  expiresAt: T0 + 30 * 86_400_000,
  validDays: 30,
};
const activity = { firstName: 'Ada', at: T0, ip: '192.0.2.1', browser: 'Mozilla/5.0 Firefox/128.0' };
const programmaticUrl = 'https://traqs.ntf.example/api/programmatic';
const refreshTokenIssued = {
  ...activity,
  label: 'Nightly download',
  expiresAt: Date.UTC(2025, 8, 14, 15, 4),
  programmaticUrl,
  reportUrl: 'https://idp.ntf.example/report?token=r1&about=refreshTokenIssued',
};
const refreshTokenExpiring = {
  firstName: 'Ada',
  label: 'Nightly download',
  createdAt: T0,
  expiresAt: Date.UTC(2025, 8, 14, 15, 4),
  lastUsedAt: Date.UTC(2025, 7, 30, 6, 15),
  programmaticUrl,
};

describe('escapeHtml', () => {
  it('escapes the five characters that matter in content and quoted attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&amp;</a>`)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;',
    );
  });
});

describe('renderEmail', () => {
  it('escapes every interpolated value in the HTML part', () => {
    const hostile = '<script>alert(1)</script>';
    const rendered = renderEmail(
      'factorEnrolled',
      { ...activity, firstName: hostile, method: '<b>TOTP</b>', browser: '"><img src=x onerror=alert(1)>' },
      test,
    );
    expect(rendered.html).not.toContain('<script');
    expect(rendered.html).not.toContain('<img');
    expect(rendered.html).not.toContain('<b>');
    expect(rendered.html).toContain('Hello &lt;script&gt;alert(1)&lt;/script&gt;,');
    expect(rendered.html).toContain('&lt;b&gt;TOTP&lt;/b&gt;');
    expect(rendered.html).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    // The text part is plain text: shown as typed.
    expect(rendered.text).toContain(`Hello ${hostile},`);
  });

  it('escapes configured contacts and the environment label too', () => {
    const rendered = renderEmail('passwordChanged', activity, {
      environment: { label: 'A&B <x>', kind: 'test' },
      contacts: { ...contacts, operationsEmail: '<ops@example.com>' },
    });
    expect(rendered.html).toContain('A&amp;B &lt;x&gt; (test)');
    expect(rendered.html).toContain('&lt;ops@example.com&gt;');
    expect(rendered.html).not.toContain('<x>');
    expect(rendered.html).not.toContain('<ops@');
  });

  it('labels test-environment mail in the subject and the body, and production mail not at all', () => {
    const t = renderEmail('enrollment', enrollment, test);
    expect(t.subject).toBe('[NTF (test)] Activate your TRAQS account');
    expect(t.text.split('\n')[0]).toBe('This message comes from the NTF test environment, not from production.');
    expect(t.html).toContain('<title>[NTF (test)] Activate your TRAQS account</title>');
    expect(t.html).toContain('NTF test environment');

    const p = renderEmail('enrollment', enrollment, production);
    expect(p.subject).toBe('Activate your TRAQS account');
    expect(p.text).not.toContain('test environment');
    expect(p.html).not.toContain('test environment');
  });

  it('gives the enrollment link, username, expiry and who to call when the link has expired', () => {
    const { text, html } = renderEmail('enrollment', enrollment, test);
    expect(text).toContain('Your username is ada.lovelace.');
    expect(text).toContain('\nhttps://idp.ntf.example/welcome/abc?x=1&y=2\n');
    expect(text).toContain('You have 30 days to activate: the link expires on Sunday, April 13, 2025 at 3:04 PM UTC.');
    expect(text).toContain(
      'If it has expired, contact Market Operations at 1-866-776-0800 option 2 or operations@traqs.example',
    );
    expect(html).toContain('href="https://idp.ntf.example/welcome/abc?x=1&amp;y=2"');
    expect(html).toContain('<html lang="en">');
  });

  it('writes dates in the time zone asked for, and names it', () => {
    const { text } = renderEmail('enrollment', enrollment, { ...test, timeZone: 'America/New_York' });
    expect(text).toContain('the link expires on Sunday, April 13, 2025 at 11:04 AM EDT.');
  });

  it('puts the contacts in the footer of every message', () => {
    for (const rendered of [
      renderEmail('enrollment', enrollment, production),
      renderEmail('factorEnrolled', { ...activity, method: 'Authenticator app (TOTP)' }, production),
      renderEmail('passwordChanged', activity, production),
      renderEmail('refreshTokenIssued', refreshTokenIssued, production),
      renderEmail('refreshTokenExpiring', refreshTokenExpiring, production),
    ]) {
      for (const part of [rendered.text, rendered.html]) {
        expect(part).toContain('Market Operations: 1-866-776-0800 option 2, operations@traqs.example');
        expect(part).toContain('Technical Support: 212-231-5180 option 4');
        expect(part).toContain('API questions: api-support@traqs.example');
      }
    }
  });

  it('tells the user what was done, from where, and what to do if it was not them', () => {
    const { subject, text } = renderEmail(
      'factorEnrolled',
      { ...activity, method: 'Authenticator app (TOTP)' },
      production,
    );
    expect(subject).toBe('A sign-in method was added to your TRAQS account');
    expect(text).toContain('Method: Authenticator app (TOTP)');
    expect(text).toContain('When: Friday, March 14, 2025 at 3:04 PM UTC');
    expect(text).toContain('IP address: 192.0.2.1');
    expect(text).toContain('Browser: Mozilla/5.0 Firefox/128.0');
    expect(text).toContain(
      "If this wasn't you, someone else may have access to your account: contact Market Operations right away at 1-866-776-0800 option 2 or operations@traqs.example.",
    );
    expect(renderEmail('passwordChanged', activity, production).subject).toBe('Your TRAQS password was changed');
  });

  it('tells the user a refresh token was issued, where to revoke it, and what to do if it was not them', () => {
    const { subject, text, html } = renderEmail('refreshTokenIssued', refreshTokenIssued, production);
    expect(subject).toBe('A TRAQS refresh token was issued for programmatic access');
    expect(text).toContain('Label: Nightly download');
    expect(text).toContain('Expires: Sunday, September 14, 2025 at 3:04 PM UTC');
    expect(text).toContain('When: Friday, March 14, 2025 at 3:04 PM UTC');
    expect(text).toContain('IP address: 192.0.2.1');
    expect(text).toContain('Browser: Mozilla/5.0 Firefox/128.0');
    expect(text).toContain('open the Programmatic page under the API menu');
    expect(text).toContain(`Open the Programmatic page:\n${programmaticUrl}\n`);
    expect(text).toContain("This wasn't me:\nhttps://idp.ntf.example/report?token=r1&about=refreshTokenIssued\n");
    expect(text).toContain("If this wasn't you, someone else may have access to your account");
    expect(html).toContain(`href="${programmaticUrl}"`);
    expect(html).toContain('href="https://idp.ntf.example/report?token=r1&amp;about=refreshTokenIssued"');
  });

  it('reminds of a refresh token before it expires: which one, when, and how to get a new one', () => {
    const { subject, text, html } = renderEmail('refreshTokenExpiring', refreshTokenExpiring, test);
    expect(subject).toBe('[NTF (test)] Your TRAQS refresh token expires on September 14, 2025');
    expect(text).toContain(
      'Your refresh token for programmatic access expires on Sunday, September 14, 2025 at 3:04 PM UTC.',
    );
    expect(text).toContain('Label: Nightly download');
    expect(text).toContain('Created: Friday, March 14, 2025 at 3:04 PM UTC');
    expect(text).toContain('Expires: Sunday, September 14, 2025 at 3:04 PM UTC');
    expect(text).toContain('Last used: Saturday, August 30, 2025 at 6:15 AM UTC');
    expect(text).toContain('At that moment it stops working');
    expect(text).toContain('open the Programmatic page under the API menu');
    expect(text).toContain(`Get a new refresh token:\n${programmaticUrl}\n`);
    expect(text).toContain('Questions about the API: api-support@traqs.example.');
    expect(html).toContain(`href="${programmaticUrl}"`);

    const unused = renderEmail('refreshTokenExpiring', { ...refreshTokenExpiring, lastUsedAt: null }, test);
    expect(unused.text).toContain('Last used: never used');
  });

  it('writes the expiry day of the subject in the time zone asked for', () => {
    const lateEvening = { ...refreshTokenExpiring, expiresAt: Date.UTC(2025, 8, 15, 2, 0) };
    expect(
      renderEmail('refreshTokenExpiring', lateEvening, { ...production, timeZone: 'America/New_York' }).subject,
    ).toBe('Your TRAQS refresh token expires on September 14, 2025');
  });

  it('escapes the label of a refresh token and refuses a Programmatic link that is not http(s)', () => {
    const label = '<img src=x onerror=alert(1)>';
    const issued = renderEmail('refreshTokenIssued', { ...refreshTokenIssued, label }, production);
    const expiring = renderEmail('refreshTokenExpiring', { ...refreshTokenExpiring, label }, production);
    for (const { html } of [issued, expiring]) {
      expect(html).not.toContain('<img');
      expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    }
    expect(() =>
      renderEmail('refreshTokenExpiring', { ...refreshTokenExpiring, programmaticUrl: 'javascript:alert(1)' }, test),
    ).toThrow('Refusing a javascript: link');
  });

  it('flattens line breaks in values, so a crafted User-Agent cannot add lines of its own', () => {
    const browser = 'Firefox\r\n\r\nEverything is fine, no need to contact anyone.';
    const { text } = renderEmail('passwordChanged', { ...activity, browser }, production);
    expect(text).toContain('Browser: Firefox Everything is fine, no need to contact anyone.');
    expect(text).not.toContain('\nEverything is fine');
  });

  it('caps long values', () => {
    const { text } = renderEmail('passwordChanged', { ...activity, browser: 'x'.repeat(5000) }, production);
    expect(text).toContain(`Browser: ${'x'.repeat(199)}…\n`);
  });

  it('refuses a link that is not http(s)', () => {
    expect(() => renderEmail('enrollment', { ...enrollment, activationUrl: 'javascript:alert(1)' }, test)).toThrow(
      'Refusing a javascript: link',
    );
  });
});
