import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  activateUntilCodeEntry,
  type Credentials,
  FIRM,
  inBrowser,
  oathtoolCode,
  provision,
  screenshot,
  skipWithoutTools,
  stepAt,
  useRealBrowserStack,
  waitForMail,
} from '../helpers/real-browser.ts';

/**
 * Issue #3: the MFA profile as a user meets it after losing a phone. Sign in, add a second
 * Google Authenticator, remove the first, see both under Recent activity and receive both
 * account-activity emails on a real SMTP server. The product runs as its own process; Debian's
 * Chromium is the browser and Debian's oathtool the authenticator app.
 */

const EMAIL = 'lee.dealer@acme.example';
const CREDENTIALS: Credentials = {
  password: 'copper kettle harbour 42',
  question: 'Name of the street you grew up on?',
  answer: 'Juniper Lane',
};

describe.skipIf(skipWithoutTools('the profile browser test'))('the MFA profile in a real browser (issue #3)', () => {
  const running = useRealBrowserStack();

  /** Checks the page shows the test-environment banner, then saves `profile-<name>.png`. */
  const shot = (page: Page, name: string) => screenshot(page, 'profile', name);

  /** Provisions the user with the CLI and activates the account with a first Google Authenticator. */
  async function activate(page: Page): Promise<{ secret: string; step: number }> {
    const { link } = await provision(running(), EMAIL, 'Lee', 'Dealer');
    const secret = await activateUntilCodeEntry(page, link, EMAIL, CREDENTIALS);
    const step = stepAt(Date.now());
    await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, step));
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    await page.getByRole('heading', { name: 'Welcome, Lee Dealer' }).waitFor();
    return { secret, step };
  }

  it('adds a second Google Authenticator, removes the first, and shows and emails both changes', async () => {
    const { smtp, product } = running();
    await inBrowser(
      running(),
      'profile-failure',
      async (page) => {
        const first = await activate(page);

        // A real sign-in with the first app.
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.getByLabel('Username (your email address)').fill(EMAIL);
        await page.getByLabel('Password').fill(CREDENTIALS.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
        // RFC 6238 §5.2: the activation code is spent; the next step's is within the drift window.
        const signInStep = Math.max(first.step + 1, stepAt(Date.now()));
        await page.getByLabel('Six-digit code').fill(await oathtoolCode(first.secret, signInStep));
        await page.getByRole('button', { name: 'Verify', exact: true }).click();
        await page.waitForURL(`${product.idpUrl}/`);
        await page.getByRole('heading', { name: 'Welcome, Lee Dealer' }).waitFor();
        expect((await page.locator('#username').textContent())?.trim()).toBe(EMAIL);
        expect((await page.locator('#firm').textContent())?.trim()).toBe(FIRM);
        expect(await page.locator('#factors tr').count()).toBe(1);
        expect(await page.locator('#activity').textContent()).toContain('Signed in');
        expect(await page.locator('#sessions').textContent()).toContain('This session');
        await shot(page, '01-signed-in');

        // Add a second Google Authenticator (a new phone).
        await page.getByRole('link', { name: 'Add a security method' }).click();
        await page.getByRole('heading', { name: 'Add a security method' }).waitFor();
        await shot(page, '02-add-method');
        await page.getByRole('button', { name: 'Set up Google Authenticator' }).click();
        await page.getByRole('heading', { name: 'Set up Google Authenticator 2' }).waitFor();
        expect(await page.locator('img.qr').isVisible()).toBe(true);
        const second = await page.locator('#shared-secret').getAttribute('data-secret');
        if (!second) throw new Error('No setup key on the page');
        expect(second).not.toBe(first.secret);
        await page.getByLabel('Six-digit code').fill(await oathtoolCode(second, stepAt(Date.now())));
        await shot(page, '03-setup-second-app');
        await page.getByRole('button', { name: 'Verify', exact: true }).click();
        await page.getByText('The new security method was added.').waitFor();
        expect(await page.locator('#factors tr').count()).toBe(2);
        await shot(page, '04-two-methods');

        // Remove the first (the lost phone).
        await page.getByRole('link', { name: 'Remove Google Authenticator', exact: true }).click();
        await page.getByRole('heading', { name: 'Remove Google Authenticator?' }).waitFor();
        expect(await page.locator('#last-method-warning').count()).toBe(0);
        await shot(page, '05-confirm-removal');
        await page.getByRole('button', { name: 'Remove Google Authenticator', exact: true }).click();
        await page.getByText('The security method was removed.').waitFor();
        const methods = page.locator('#factors tr');
        expect(await methods.count()).toBe(1);
        expect(await methods.first().locator('td').nth(1).textContent()).toBe('Google Authenticator 2');

        // Recent activity, newest first.
        const rows = page.locator('#activity tr');
        expect(await rows.nth(0).locator('td').nth(1).textContent()).toBe('Security method removed');
        expect(await rows.nth(0).locator('td').nth(3).textContent()).toBe('Google Authenticator');
        expect(await rows.nth(1).locator('td').nth(1).textContent()).toBe('Security method added');
        expect(await rows.nth(1).locator('td').nth(3).textContent()).toBe('Google Authenticator 2');
        expect(await rows.nth(0).locator('td').nth(5).textContent()).toMatch(/^Chrome \d+ on Linux$/);
        await shot(page, '06-after-removal');

        // The two account-activity emails, each with its "this wasn't me" link.
        const added = await waitForMail(smtp, EMAIL, /A sign-in method was added/, { text: 'Google Authenticator 2' });
        const removed = await waitForMail(smtp, EMAIL, /A sign-in method was removed/);
        expect(added.subject).toContain('NTF (test)');
        expect(removed.text).toMatch(/Google Authenticator\b(?! 2)/);
        for (const mail of [added, removed]) {
          expect(mail.text).toMatch(/\/report\?token=/);
          expect(mail.text).toMatch(/127\.0\.0\.1|::1/);
        }
      },
      { width: 1100, height: 900 },
    );
  }, 60_000);
});
