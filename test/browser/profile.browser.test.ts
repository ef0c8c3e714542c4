import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ParsedMail } from 'mailparser';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProductProcess, repoRoot, startProduct } from '../helpers/product-process.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../mail-smtp-server.ts';

/**
 * Issue #3: the MFA profile as a user meets it after losing a phone. Sign in, add a second
 * Google Authenticator, remove the first, see both under Recent activity and receive both
 * account-activity emails on a real SMTP server. The product runs as its own process; Debian's
 * Chromium is the browser and Debian's oathtool the authenticator app.
 */

const CHROMIUM = '/usr/bin/chromium';
const OATHTOOL = '/usr/bin/oathtool';
const missing = [CHROMIUM, OATHTOOL].filter((p) => !existsSync(p));
if (missing.length && !process.env.CI) {
  console.warn(
    `Skipping the profile browser test: ${missing.join(' and ')} not found (apt-get install chromium oathtool).`,
  );
}

const execFileAsync = promisify(execFile);
const SHOTS = join(repoRoot, 'test-artifacts', 'screenshots');
const STEP_MS = 30_000;
const PASSWORD = 'copper kettle harbour 42';
const FIRM = 'Acme Securities';
const EMAIL = 'lee.dealer@acme.example';

const stepAt = (ms: number) => Math.floor(ms / STEP_MS);

function withServerOutput(err: unknown, product: ProductProcess): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`${message}\n--- server output ---\n${product.output()}`, { cause: err });
}

/** What an authenticator app shows during `step`, computed by Debian's oathtool (RFC 6238). */
async function oathtoolCode(base32Secret: string, step: number): Promise<string> {
  const at = new Date(step * STEP_MS + 1_000).toISOString().replace('T', ' ').slice(0, 19);
  const { stdout } = await execFileAsync(OATHTOOL, ['--totp', '-b', base32Secret, '-N', `${at} UTC`]);
  const code = stdout.trim();
  expect(code).toMatch(/^\d{6}$/);
  return code;
}

function recipients(mail: ParsedMail): string[] {
  const to = mail.to === undefined ? [] : Array.isArray(mail.to) ? mail.to : [mail.to];
  return to.flatMap((a) => a.value.map((v) => v.address?.toLowerCase() ?? ''));
}

/** Polls the SMTP server for a message to `address` that `matches`, until the deadline. */
async function waitForMail(
  smtp: TestSmtpServer,
  address: string,
  what: string,
  matches: (mail: ParsedMail) => boolean,
  timeoutMs = 15_000,
): Promise<ParsedMail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = smtp.received.find((m) => recipients(m).includes(address) && matches(m));
    if (found) return found;
    if (Date.now() > deadline) {
      const seen = smtp.received.map((m) => `${recipients(m).join(',')}: ${m.subject ?? ''}`).join('\n  ');
      throw new Error(`No mail to ${address} (${what}) within ${timeoutMs} ms; received:\n  ${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(missing.length > 0 && !process.env.CI)('the MFA profile in a real browser (issue #3)', () => {
  let smtp: TestSmtpServer | undefined;
  let product: ProductProcess | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (missing.length) {
      throw new Error(
        `CI must run the browser tests, but ${missing.join(' and ')} is missing (apt-get install chromium oathtool).`,
      );
    }
    mkdirSync(SHOTS, { recursive: true });
    smtp = await startTestSmtpServer();
    const started = await Promise.allSettled([
      startProduct({ smtpUrl: smtp.url }).then((p) => {
        product = p;
      }),
      chromium
        .launch({
          executablePath: CHROMIUM,
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
          ],
          timeout: 20_000,
        })
        .then((b) => {
          browser = b;
        }),
    ]);
    for (const result of started) if (result.status === 'rejected') throw result.reason;
  }, 40_000);

  afterAll(async () => {
    await browser?.close();
    await product?.stop();
    await smtp?.close();
  }, 20_000);

  function running() {
    if (!smtp || !product || !browser) throw new Error('beforeAll did not finish');
    return { smtp, product, browser };
  }

  async function shot(page: Page, name: string) {
    await page.waitForLoadState('load');
    expect(await page.locator('.env-banner').isVisible(), `environment banner on ${page.url()}`).toBe(true);
    await page.screenshot({ path: join(SHOTS, `profile-${name}.png`), fullPage: true });
  }

  /** Provisions the user with the CLI and activates the account with a first Google Authenticator. */
  async function activate(page: Page): Promise<{ secret: string; step: number }> {
    const { smtp, product } = running();
    await product.cli([
      'user',
      'create',
      '--env',
      'ntf',
      '--email',
      EMAIL,
      '--first',
      'Lee',
      '--last',
      'Dealer',
      '--firm',
      FIRM,
      '--create-firm',
      '--json',
    ]);
    const mail = await waitForMail(smtp, EMAIL, 'enrollment', (m) =>
      /Activate your TRAQS account/.test(m.subject ?? ''),
    );
    const link = /^(http:\/\/\S+\/activate\?token=\S+)$/m.exec(mail.text ?? '')?.[1];
    if (!link) throw new Error(`No activation link in the email:\n${mail.text ?? ''}`);

    await page.goto(link);
    await page.getByRole('button', { name: 'Start activation' }).click();
    await page.getByLabel('New password').fill(PASSWORD);
    await page.getByLabel('Question').fill('Name of the street you grew up on?');
    await page.getByLabel('Answer').fill('Juniper Lane');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Set up Google Authenticator' }).click();
    const secret = await page.locator('#shared-secret').getAttribute('data-secret');
    if (!secret) throw new Error('No setup key on the page');
    const step = stepAt(Date.now());
    await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, step));
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    await page.getByRole('heading', { name: 'Welcome, Lee Dealer' }).waitFor();
    return { secret, step };
  }

  it('adds a second Google Authenticator, removes the first, and shows and emails both changes', async () => {
    const { smtp, product, browser } = running();
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    try {
      const first = await activate(page);

      // A real sign-in with the first app.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Username (your email address)').fill(EMAIL);
      await page.getByLabel('Password').fill(PASSWORD);
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
      const added = await waitForMail(
        smtp,
        EMAIL,
        'method added',
        (m) => /A sign-in method was added/.test(m.subject ?? '') && (m.text ?? '').includes('Google Authenticator 2'),
      );
      const removed = await waitForMail(smtp, EMAIL, 'method removed', (m) =>
        /A sign-in method was removed/.test(m.subject ?? ''),
      );
      expect(added.subject).toContain('NTF (test)');
      expect(removed.text).toMatch(/Google Authenticator\b(?! 2)/);
      for (const mail of [added, removed]) {
        expect(mail.text).toMatch(/\/report\?token=/);
        expect(mail.text).toMatch(/127\.0\.0\.1|::1/);
      }
    } catch (err) {
      await page.screenshot({ path: join(SHOTS, 'profile-failure.png'), fullPage: true }).catch(() => {});
      throw withServerOutput(err, product);
    } finally {
      await context.close();
    }
  }, 60_000);
});
