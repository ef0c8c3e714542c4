import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import {
  activateUntilCodeEntry,
  FIRM,
  fieldError,
  inBrowser,
  oathtoolCode,
  parseMailDate,
  provision,
  screenshot,
  skipWithoutTools,
  stepAt,
  useRealBrowserStack,
} from '../helpers/real-browser.ts';

/**
 * Issue #2: the whole enrollment as a user meets it. A real SMTP server, the product as its own
 * process, the CLI as another, Debian's Chromium and Debian's oathtool as the authenticator app.
 */

const DAY_MS = 24 * 3600 * 1000;
const CREDENTIALS = {
  password: 'copper kettle harbour 42',
  question: 'Name of the street you grew up on?',
  answer: 'Juniper Lane',
};

describe.skipIf(skipWithoutTools('the enrollment browser test'))('enrollment in a real browser (issue #2)', () => {
  const running = useRealBrowserStack();

  /** Checks the page shows the test-environment banner, then saves `enrollment-<name>.png`. */
  const shot = (page: Page, name: string) => screenshot(page, 'enrollment', name);

  /** The field error of the six-digit code input, found through its `aria-describedby`. */
  const codeFieldError = (page: Page) => fieldError(page, 'Six-digit code');

  it('activates from the emailed link, enrolls Google Authenticator and signs in again', async () => {
    const { product } = running();
    const email = 'jane.trader@acme.example';
    const { mail, text, link, sentAt, created } = await provision(running(), email, 'Jane', 'Trader');

    // The email: test environment, username, and a link that expires 30 days after it was sent.
    expect(mail.subject).toContain('NTF (test)');
    expect(text).toContain(`Your username is ${email}.`);
    expect(text).toContain('The link works once.');
    expect(text).toContain('You have 30 days to activate');
    const expiresText = /the link expires on (.+?)\.\n/.exec(text)?.[1];
    if (!expiresText) throw new Error(`No expiry date in the email:\n${text}`);
    const expiresAt = parseMailDate(expiresText);
    // The mail shows minutes: 30 days after sending, to the minute.
    expect(Math.abs(expiresAt - (sentAt + 30 * DAY_MS))).toBeLessThan(2 * 60_000);
    expect(Math.abs(expiresAt - Date.parse(created.expiresAt))).toBeLessThan(60_000);

    await inBrowser(running(), 'enrollment-failure', async (page) => {
      const secret = await activateUntilCodeEntry(page, link, email, CREDENTIALS, (name) => shot(page, name));
      const enrollStep = stepAt(Date.now());
      await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, enrollStep));
      await shot(page, '04-google-authenticator-setup');
      await page.getByRole('button', { name: 'Verify', exact: true }).click();

      await page.waitForURL(`${product.idpUrl}/`);
      await page.getByRole('heading', { name: 'Welcome, Jane Trader' }).waitFor();
      expect((await page.locator('#username').textContent())?.trim()).toBe(email);
      expect((await page.locator('#firm').textContent())?.trim()).toBe(FIRM);
      expect(await page.locator('#factors tr').count()).toBe(1);
      expect(await page.locator('#factors').textContent()).toContain('Google Authenticator');
      await shot(page, '05-home-after-enrollment');

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByText('You have signed out.').waitFor();
      await shot(page, '06-signed-out');

      await page.getByLabel('Username (your email address)').fill(email);
      await page.getByLabel('Password').fill(CREDENTIALS.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      // RFC 6238 §5.2: the enrollment code is spent; the next step's code is within the drift window.
      const signInStep = Math.max(enrollStep + 1, stepAt(Date.now()));
      await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, signInStep));
      await shot(page, '07-verify-code');
      await page.getByRole('button', { name: 'Verify', exact: true }).click();

      await page.waitForURL(`${product.idpUrl}/`);
      await page.getByRole('heading', { name: 'Welcome, Jane Trader' }).waitFor();
      expect((await page.locator('#username').textContent())?.trim()).toBe(email);
      await shot(page, '08-home-after-sign-in');
    });
  }, 45_000);

  it('refuses a used activation link and ties a wrong code to its field', async () => {
    const { product } = running();
    const email = 'sam.broker@acme.example';
    const { link } = await provision(running(), email, 'Sam', 'Broker');
    const contacts = loadConfig(product.env).contacts;

    await inBrowser(running(), 'enrollment-failure', async (page, context) => {
      // The password step consumes the link, so the same link a second time is refused.
      const secret = await activateUntilCodeEntry(page, link, email, CREDENTIALS);
      const other = await context.newPage();
      const response = await other.goto(link);
      expect(response?.status()).toBe(410);
      await other.getByRole('heading', { name: 'This activation link is no longer valid' }).waitFor();
      const invalidText = (await other.locator('main').textContent()) ?? '';
      expect(invalidText).toContain('this link has already been used');
      expect(invalidText).toContain(contacts.operationsName);
      expect(invalidText).toContain(contacts.operationsPhone);
      expect(await other.locator(`main a[href="mailto:${contacts.operationsEmail}"]`).count()).toBe(1);
      await shot(other, '09-link-already-used');
      await other.close();

      // A wrong code at enrollment: not one of the codes in the drift window.
      const now = stepAt(Date.now());
      const valid = await Promise.all([now - 1, now, now + 1, now + 2].map((s) => oathtoolCode(secret, s)));
      const wrong = ['000000', '111111', '222222'].find((c) => !valid.includes(c)) ?? '333333';
      await page.getByLabel('Six-digit code').fill(wrong);
      await page.getByRole('button', { name: 'Verify', exact: true }).click();
      await page.getByRole('heading', { name: 'Set up Google Authenticator' }).waitFor();
      expect(await codeFieldError(page)).toContain("doesn't match");
      await shot(page, '10-wrong-code-at-enrollment');

      // The right code still works after a wrong one.
      const enrollStep = stepAt(Date.now());
      const enrollCode = await oathtoolCode(secret, enrollStep);
      await page.getByLabel('Six-digit code').fill(enrollCode);
      await page.getByRole('button', { name: 'Verify', exact: true }).click();
      await page.getByRole('heading', { name: 'Welcome, Sam Broker' }).waitFor();
      await page.getByRole('button', { name: 'Sign out' }).click();

      // Signing in with the code already spent at enrollment is refused (RFC 6238 §5.2 replay).
      await page.getByLabel('Username (your email address)').fill(email);
      await page.getByLabel('Password').fill(CREDENTIALS.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      await page.getByLabel('Six-digit code').fill(enrollCode);
      await page.getByRole('button', { name: 'Verify', exact: true }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      expect(await codeFieldError(page)).toMatch(/already used|doesn't match/);
      await shot(page, '11-reused-code-at-sign-in');
    });
  }, 45_000);
});
