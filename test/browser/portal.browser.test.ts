import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  activateUntilCodeEntry,
  type Credentials,
  FIRM,
  inBrowser,
  oathtoolCode,
  provisioned,
  type RealBrowserStack,
  screenshot,
  skipWithoutTools,
  stepAt,
  useRealBrowserStack,
  waitForMail,
} from '../helpers/real-browser.ts';

/**
 * Issue #4: the TRAQS website in a real browser, as a firm's API user meets it. Single sign-on
 * from the MFA profile, the API menu, a refresh token after signing in again with the second
 * factor (the form's redirect to the idp must pass the CSP), the copy button, the token used and
 * then revoked, and signing out of both services. The product runs as its own process.
 */

const EMAIL = 'pat.programmer@acme.example';
const CREDENTIALS: Credentials = {
  password: 'granite lighthouse orchard 17',
  question: 'Name of your first school?',
  answer: 'Hillside Primary',
};

describe.skipIf(skipWithoutTools('the portal browser test'))('the TRAQS website in a real browser (issue #4)', () => {
  const running = useRealBrowserStack();
  const shot = (page: Page, name: string) => screenshot(page, 'portal', name);

  /** Provisions an API user (portal and download) with the CLI and returns the activation link. */
  async function provisionApiUser(stack: RealBrowserStack): Promise<string> {
    const { stdout } = await stack.product.cli([
      'user',
      'create',
      '--env',
      'ntf',
      '--email',
      EMAIL,
      '--first',
      'Pat',
      '--last',
      'Programmer',
      '--firm',
      FIRM,
      '--create-firm',
      '--app',
      'portal',
      '--app',
      'download',
      '--json',
    ]);
    expect(provisioned.parse(JSON.parse(stdout))).toMatchObject({ login: EMAIL, status: 'PROVISIONED' });
    const mail = await waitForMail(stack.smtp, EMAIL, /Activate your TRAQS account/);
    const link = /^(http:\/\/\S+\/activate\?token=\S+)$/m.exec(mail.text ?? '')?.[1];
    if (!link) throw new Error(`No activation link in the email:\n${mail.text}`);
    return link;
  }

  const refreshGrant = async (tokenUrl: string, refreshToken: string) => {
    const res = await fetch(tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'traqs-api', refresh_token: refreshToken }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('signs in once, gets a refresh token after a second MFA sign-in, copies, uses and revokes it', async () => {
    const stack = running();
    const { product } = stack;
    const portalUrl = String(product.env.TRAQS_NTF_PORTAL_URL);
    const issuer = `${product.idpUrl}/oauth2/default`;
    await inBrowser(stack, 'portal-failure', async (page, context) => {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: portalUrl });

      // Activation signs the user in to the MFA profile (the idp).
      const secret = await activateUntilCodeEntry(page, await provisionApiUser(stack), EMAIL, CREDENTIALS);
      let step = stepAt(Date.now());
      await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, step));
      await page.getByRole('button', { name: 'Verify', exact: true }).click();
      await page.getByRole('heading', { name: 'Welcome, Pat Programmer' }).waitFor();

      // The TRAQS website: single sign-on, no second password prompt.
      await page.goto(`${portalUrl}/`);
      await page.waitForURL(`${portalUrl}/`);
      await page.getByRole('heading', { name: 'Welcome, Pat Programmer' }).waitFor();
      expect(await page.locator('main').textContent()).toContain(FIRM);
      await shot(page, '01-home');

      // API menu → Programmatic.
      await page.getByRole('link', { name: 'Programmatic' }).click();
      await page.getByRole('heading', { name: 'Programmatic API access' }).waitFor();
      expect(await page.locator('main').textContent()).toContain('valid for 6 months from the date of issue');
      await page.getByLabel('Label (optional)').fill('Nightly download job');
      await shot(page, '02-programmatic');
      await page.getByRole('button', { name: 'Get a refresh token' }).click();

      // The idp asks again: password, then a new code.
      await page.getByLabel('Username (your email address)').waitFor();
      expect(page.url()).toContain('/signin?for=programmatic');
      await page.getByLabel('Username (your email address)').fill(EMAIL);
      await page.getByLabel('Password').fill(CREDENTIALS.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      step = Math.max(step + 1, stepAt(Date.now()));
      await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, step));
      await page.getByRole('button', { name: 'Verify', exact: true }).click();

      await page.getByRole('heading', { name: 'Your refresh token' }).waitFor();
      expect(page.url().startsWith(`${portalUrl}/api/programmatic/callback?`)).toBe(true);
      const token = ((await page.locator('#refresh-token').textContent()) ?? '').trim();
      expect(token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
      expect(await page.locator('main').textContent()).toContain('Nightly download job');
      await shot(page, '03-refresh-token');

      // The copy button (an external script: the CSP allows no inline one).
      await page.getByRole('button', { name: 'Copy the refresh token' }).click();
      await page.getByRole('button', { name: 'Copied' }).waitFor();
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);

      // The token works at the token endpoint.
      const used = await refreshGrant(`${issuer}/v1/token`, token);
      expect(used.status, JSON.stringify(used.body)).toBe(200);
      expect(typeof used.body.access_token).toBe('string');

      // Revoke it on the page; it stops working.
      await page.getByRole('link', { name: 'Done: back to your tokens' }).click();
      await page.getByRole('heading', { name: 'Your refresh tokens' }).waitFor();
      await page.getByRole('button', { name: 'Revoke Nightly download job' }).click();
      await page.locator('#notice').waitFor();
      expect(await page.locator('#tokens').textContent()).toContain('Revoked');
      await shot(page, '04-revoked');
      const refused = await refreshGrant(`${issuer}/v1/token`, token);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_grant');

      // Sign out: the portal, then the idp (its confirmation submits itself), back to the portal,
      // which now needs a new sign-in.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL((url) => url.href.startsWith(`${product.idpUrl}/signin`));
      await page.getByLabel('Username (your email address)').waitFor();
      await page.goto(`${product.idpUrl}/`);
      await page.waitForURL((url) => url.href.startsWith(`${product.idpUrl}/signin`));
    });
  });
});
