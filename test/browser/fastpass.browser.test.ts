import type { CDPSession, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  type Credentials,
  inBrowser,
  provision,
  screenshot,
  skipWithoutTools,
  useRealBrowserStack,
  waitForMail,
} from '../helpers/real-browser.ts';

/**
 * Issue #6 item 4: FastPass as a user meets it, in Chromium with its virtual authenticator (the
 * DevTools Protocol `WebAuthn` domain) standing in for Windows Hello: a platform authenticator
 * with user verification. Enroll at first sign-in, sign out, sign in with it; a refused user
 * verification on the way. The product runs as its own process on `http://localhost`.
 */

const EMAIL = 'robin.fastpass@acme.example';
const CREDENTIALS: Credentials = {
  password: 'copper kettle harbour 42',
  question: 'Name of the street you grew up on?',
  answer: 'Juniper Lane',
};

interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId: string;
  signCount: number;
}

/** A Windows-Hello-like authenticator in this page's browser: internal, resident keys, UV passes. */
async function addPlatformAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  return { cdp, authenticatorId };
}

describe.skipIf(skipWithoutTools('the FastPass browser test'))('FastPass in a real browser (issue #6)', () => {
  const running = useRealBrowserStack();

  /** Checks the page shows the test-environment banner, then saves `fastpass-<name>.png`. */
  const shot = (page: Page, name: string) => screenshot(page, 'fastpass', name);

  it('enrolls FastPass at first sign-in, signs out, and signs in with it', async () => {
    const { smtp, product } = running();
    const { link } = await provision(running(), EMAIL, 'Robin', 'Fastpass');

    await inBrowser(running(), 'fastpass-failure', async (page) => {
      const { cdp, authenticatorId } = await addPlatformAuthenticator(page);

      await page.goto(link);
      await page.getByRole('button', { name: 'Start activation' }).click();
      await page.getByRole('heading', { name: 'Set your password' }).waitFor();
      await page.getByLabel('New password').fill(CREDENTIALS.password);
      await page.getByLabel('Question').fill(CREDENTIALS.question);
      await page.getByLabel('Answer').fill(CREDENTIALS.answer);
      await page.getByRole('button', { name: 'Continue' }).click();

      // The enrollment choice offers FastPass next to the authenticator apps.
      await page.getByRole('heading', { name: 'Set up multifactor authentication' }).waitFor();
      expect(await page.getByRole('button', { name: 'Set up Google Authenticator' }).isVisible()).toBe(true);
      await shot(page, '01-choose-factor');
      await page.getByRole('button', { name: 'Set up FastPass' }).click();

      await page.getByRole('heading', { name: 'Set up FastPass' }).waitFor();
      const register = page.getByRole('button', { name: 'Set up FastPass on this computer' });
      // Shown by the page script (no inline script under the CSP).
      await register.waitFor({ state: 'visible' });
      await shot(page, '02-setup');
      await register.click();

      await page.waitForURL(`${product.idpUrl}/`);
      await page.getByRole('heading', { name: 'Welcome, Robin Fastpass' }).waitFor();
      expect(await page.locator('#factors').textContent()).toContain('Okta Verify Desktop (FastPass)');
      expect(await page.locator('#factors').textContent()).toContain('FastPass on Linux');
      await shot(page, '03-home-after-enrollment');
      const enrolled = await waitForMail(smtp, EMAIL, /A sign-in method was added/, { text: 'FastPass on Linux' });
      expect(enrolled.text).toContain("This wasn't me");

      const created = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })) as {
        credentials: VirtualCredential[];
      };
      expect(created.credentials).toHaveLength(1);
      expect(created.credentials[0]?.rpId).toBe('localhost');

      // Sign out, then sign in: password, then FastPass.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByText('You have signed out.').waitFor();
      await page.getByLabel('Username (your email address)').fill(EMAIL);
      await page.getByLabel('Password').fill(CREDENTIALS.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      const signIn = page.getByRole('button', { name: 'Sign in with FastPass' });
      await signIn.waitFor({ state: 'visible' });
      await shot(page, '04-verify');

      // Windows Hello says no (the face or PIN check fails): the browser refuses, the page says so.
      await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
      await signIn.click();
      await page.locator('#fastpass-status').filter({ hasText: 'cancelled or took too long' }).waitFor();
      expect(page.url()).toBe(`${product.idpUrl}/signin/next`);
      await shot(page, '05-verification-refused');

      await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });
      await signIn.click();
      await page.waitForURL(`${product.idpUrl}/`);
      await page.getByRole('heading', { name: 'Welcome, Robin Fastpass' }).waitFor();
      const activity = (await page.locator('#activity').textContent()) ?? '';
      expect(activity).toContain('Signed in');
      expect(activity).toContain('Okta Verify Desktop (FastPass)');
      await shot(page, '06-home-after-sign-in');

      const used = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })) as {
        credentials: VirtualCredential[];
      };
      // Registration and one assertion: the counter moved on.
      expect(used.credentials[0]?.signCount).toBeGreaterThan(created.credentials[0]?.signCount ?? 0);
    });
  }, 60_000);
});
