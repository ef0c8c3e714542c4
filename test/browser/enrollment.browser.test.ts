import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ParsedMail } from 'mailparser';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../src/config/load.ts';
import { type ProductProcess, repoRoot, startProduct } from '../helpers/product-process.ts';
import { startTestSmtpServer, type TestSmtpServer } from '../mail-smtp-server.ts';

/**
 * Issue #2: the whole enrollment as a user meets it. A real SMTP server, the product as its own
 * process, the CLI as another, Debian's Chromium and Debian's oathtool as the authenticator app.
 */

const CHROMIUM = '/usr/bin/chromium';
const OATHTOOL = '/usr/bin/oathtool';
const missing = [CHROMIUM, OATHTOOL].filter((p) => !existsSync(p));
if (missing.length && !process.env.CI) {
  console.warn(
    `Skipping the enrollment browser test: ${missing.join(' and ')} not found (apt-get install chromium oathtool).`,
  );
}

const execFileAsync = promisify(execFile);
const SHOTS = join(repoRoot, 'test-artifacts', 'screenshots');
const STEP_MS = 30_000;
const DAY_MS = 24 * 3600 * 1000;
const PASSWORD = 'copper kettle harbour 42';
const FIRM = 'Acme Securities';

const stepAt = (ms: number) => Math.floor(ms / STEP_MS);

/** What `traqs user create --json` prints. */
const provisioned = z.object({ login: z.string(), status: z.string(), firm: z.string(), expiresAt: z.string() });

/** Adds what the server printed to a failure, since its log is otherwise lost with the process. */
function withServerOutput(err: unknown, product: ProductProcess): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`${message}\n--- server output ---\n${product.output()}`, { cause: err });
}

/** What an authenticator app shows during `step`, computed by Debian's oathtool (RFC 6238). */
async function oathtoolCode(base32Secret: string, step: number): Promise<string> {
  // One second into the step, so the moment cannot round to a neighbour.
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

/** Polls the SMTP server for a message to `address` whose subject matches, until the deadline. */
async function waitForMail(
  smtp: TestSmtpServer,
  address: string,
  subject: RegExp,
  timeoutMs = 15_000,
): Promise<ParsedMail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = smtp.received.find((m) => recipients(m).includes(address) && subject.test(m.subject ?? ''));
    if (found) return found;
    if (Date.now() > deadline) {
      const seen = smtp.received.map((m) => `${recipients(m).join(',')}: ${m.subject ?? ''}`).join('\n  ');
      throw new Error(`No mail to ${address} matching ${subject} within ${timeoutMs} ms; received:\n  ${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** "Saturday, January 3, 2026 at 12:00 PM UTC" → epoch milliseconds. */
function parseMailDate(text: string): number {
  const ms = Date.parse(text.replace(/^[A-Za-z]+, /, '').replace(' at ', ' '));
  if (Number.isNaN(ms)) throw new Error(`Cannot read the date "${text}"`);
  return ms;
}

describe.skipIf(missing.length > 0 && !process.env.CI)('enrollment in a real browser (issue #2)', () => {
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
    // allSettled: if one fails, the other is still assigned, so afterAll stops it.
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

  /** Checks the page shows the test-environment banner, then saves `enrollment-<name>.png`. */
  async function shot(page: Page, name: string) {
    await page.waitForLoadState('load');
    const banner = page.locator('.env-banner');
    expect(await banner.isVisible(), `environment banner on ${page.url()}`).toBe(true);
    expect(await banner.textContent()).toContain('NTF test environment');
    await page.screenshot({
      path: join(SHOTS, `enrollment-${name}.png`),
      fullPage: true,
    });
  }

  /** Provisions a user with the CLI and returns the activation link from the email it sends. */
  async function provision(email: string, first: string, last: string) {
    const { smtp, product } = running();
    const sentAt = Date.now();
    const { stdout } = await product.cli([
      'user',
      'create',
      '--env',
      'ntf',
      '--email',
      email,
      '--first',
      first,
      '--last',
      last,
      '--firm',
      FIRM,
      '--create-firm',
      '--json',
    ]);
    const created = provisioned.parse(JSON.parse(stdout));
    expect(created).toMatchObject({ login: email, status: 'PROVISIONED', firm: FIRM });
    const mail = await waitForMail(smtp, email, /Activate your TRAQS account/);
    const text = mail.text ?? '';
    const link = /^(http:\/\/\S+\/activate\?token=\S+)$/m.exec(text)?.[1];
    if (!link) throw new Error(`No activation link in the email:\n${text}`);
    expect(new URL(link).origin).toBe(product.idpUrl);
    return { mail, text, link, sentAt, created };
  }

  /**
   * From the emailed link to the authenticator setup page: starts activation, sets the password and
   * recovery question, chooses Google Authenticator. Returns the setup key shown on the page.
   */
  async function activateUntilCodeEntry(
    page: Page,
    link: string,
    email: string,
    snap: (name: string) => Promise<void> = async () => {},
  ) {
    await page.goto(link);
    await page.getByRole('heading', { name: 'Activate your account' }).waitFor();
    await snap('01-activation-link');

    await page.getByRole('button', { name: 'Start activation' }).click();
    await page.getByRole('heading', { name: 'Set your password' }).waitFor();
    expect(await page.locator('main').textContent()).toContain(email);
    await page.getByLabel('New password').fill(PASSWORD);
    await page.getByLabel('Question').fill('Name of the street you grew up on?');
    await page.getByLabel('Answer').fill('Juniper Lane');
    await snap('02-set-password');
    await page.getByRole('button', { name: 'Continue' }).click();

    await page.getByRole('heading', { name: 'Set up multifactor authentication' }).waitFor();
    await snap('03-choose-factor');
    await page.getByRole('button', { name: 'Set up Google Authenticator' }).click();

    await page.getByRole('heading', { name: 'Set up Google Authenticator' }).waitFor();
    expect(await page.locator('img.qr').isVisible()).toBe(true);
    const secret = await page.locator('#shared-secret').getAttribute('data-secret');
    if (!secret) throw new Error('No setup key on the page');
    expect(secret).toMatch(/^[A-Z2-7]+=*$/);
    return secret;
  }

  /** The field error of the six-digit code input, found through its `aria-describedby`. */
  async function codeFieldError(page: Page) {
    const input = page.getByLabel('Six-digit code');
    expect(await input.getAttribute('aria-invalid')).toBe('true');
    const describedBy = (await input.getAttribute('aria-describedby'))?.split(/\s+/) ?? [];
    const errorId = describedBy.find((id) => id.endsWith('-error'));
    if (!errorId) throw new Error(`aria-describedby="${describedBy.join(' ')}" names no error`);
    const error = page.locator(`[id="${errorId}"]`);
    expect(await error.isVisible()).toBe(true);
    return (await error.textContent())?.trim() ?? '';
  }

  it('activates from the emailed link, enrolls Google Authenticator and signs in again', async () => {
    const { product, browser } = running();
    const email = 'jane.trader@acme.example';
    const { mail, text, link, sentAt, created } = await provision(email, 'Jane', 'Trader');

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

    const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    const page = await context.newPage();
    try {
      const secret = await activateUntilCodeEntry(page, link, email, (name) => shot(page, name));
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
      await page.getByLabel('Password').fill(PASSWORD);
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
    } catch (err) {
      await page.screenshot({ path: join(SHOTS, 'enrollment-failure.png'), fullPage: true }).catch(() => {});
      throw withServerOutput(err, product);
    } finally {
      await context.close();
    }
  }, 45_000);

  it('refuses a used activation link and ties a wrong code to its field', async () => {
    const { product, browser } = running();
    const email = 'sam.broker@acme.example';
    const { link } = await provision(email, 'Sam', 'Broker');
    const contacts = loadConfig(product.env).contacts;

    const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    const page = await context.newPage();
    try {
      // The password step consumes the link, so the same link a second time is refused.
      const secret = await activateUntilCodeEntry(page, link, email);
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
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      await page.getByLabel('Six-digit code').fill(enrollCode);
      await page.getByRole('button', { name: 'Verify', exact: true }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      expect(await codeFieldError(page)).toMatch(/already used|doesn't match/);
      await shot(page, '11-reused-code-at-sign-in');
    } catch (err) {
      await page.screenshot({ path: join(SHOTS, 'enrollment-failure.png'), fullPage: true }).catch(() => {});
      throw withServerOutput(err, product);
    } finally {
      await context.close();
    }
  }, 45_000);
});
