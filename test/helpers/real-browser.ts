import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ParsedMail } from 'mailparser';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { z } from 'zod';
import { startTestSmtpServer, type TestSmtpServer } from '../mail-smtp-server.ts';
import { type ProductProcess, repoRoot, startProduct } from './product-process.ts';

/**
 * What the real-browser tests share: the product as its own process, a real SMTP server,
 * Debian's Chromium, and Debian's oathtool as the authenticator app.
 */

export const CHROMIUM = '/usr/bin/chromium';
export const OATHTOOL = '/usr/bin/oathtool';
/** The tools that are not installed; the browser tests skip outside CI when this is not empty. */
export const missingTools = [CHROMIUM, OATHTOOL].filter((p) => !existsSync(p));

/**
 * Whether a browser test file is skipped here: outside CI when a tool is missing, which it says on
 * the console. CI must run them, so there `startRealBrowserStack` fails instead.
 */
export function skipWithoutTools(test: string): boolean {
  const skip = missingTools.length > 0 && !process.env.CI;
  if (skip) {
    console.warn(`Skipping ${test}: ${missingTools.join(' and ')} not found (apt-get install chromium oathtool).`);
  }
  return skip;
}

export const SHOTS = join(repoRoot, 'test-artifacts', 'screenshots');
export const STEP_MS = 30_000;
export const FIRM = 'Acme Securities';

const execFileAsync = promisify(execFile);

export const stepAt = (ms: number) => Math.floor(ms / STEP_MS);

/** What `traqs user create --json` prints. */
export const provisioned = z.object({ login: z.string(), status: z.string(), firm: z.string(), expiresAt: z.string() });

/** Adds what the server printed to a failure, since its log is otherwise lost with the process. */
export function withServerOutput(err: unknown, product: ProductProcess): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`${message}\n--- server output ---\n${product.output()}`, { cause: err });
}

/** What an authenticator app shows during `step`, computed by Debian's oathtool (RFC 6238). */
export async function oathtoolCode(base32Secret: string, step: number): Promise<string> {
  // One second into the step, so the moment cannot round to a neighbour.
  const at = new Date(step * STEP_MS + 1_000).toISOString().replace('T', ' ').slice(0, 19);
  const { stdout } = await execFileAsync(OATHTOOL, ['--totp', '-b', base32Secret, '-N', `${at} UTC`]);
  const code = stdout.trim();
  expect(code).toMatch(/^\d{6}$/);
  return code;
}

export function recipients(mail: ParsedMail): string[] {
  const to = mail.to === undefined ? [] : Array.isArray(mail.to) ? mail.to : [mail.to];
  return to.flatMap((a) => a.value.map((v) => v.address?.toLowerCase() ?? ''));
}

/**
 * Polls the SMTP server for a message to `address` whose subject matches and, with `options.text`,
 * whose text contains it, until the deadline.
 */
export async function waitForMail(
  smtp: TestSmtpServer,
  address: string,
  subject: RegExp,
  options: { text?: string; timeoutMs?: number } = {},
): Promise<ParsedMail> {
  const { text, timeoutMs = 15_000 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = smtp.received.find(
      (m) =>
        recipients(m).includes(address) &&
        subject.test(m.subject ?? '') &&
        (text === undefined || (m.text ?? '').includes(text)),
    );
    if (found) return found;
    if (Date.now() > deadline) {
      const seen = smtp.received.map((m) => `${recipients(m).join(',')}: ${m.subject ?? ''}`).join('\n  ');
      const what = text === undefined ? `matching ${subject}` : `matching ${subject} with "${text}"`;
      throw new Error(`No mail to ${address} ${what} within ${timeoutMs} ms; received:\n  ${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The first `http://` link on a line of its own in a mail's text part whose path matches. */
export function linkIn(text: string, path: RegExp): string {
  const link = text
    .split('\n')
    .map((line) => line.trim())
    .find((line) => /^http:\/\/\S+$/.test(line) && path.test(new URL(line).pathname));
  if (!link) throw new Error(`No ${path} link in the email:\n${text}`);
  return link;
}

/** "Saturday, January 3, 2026 at 12:00 PM UTC" → epoch milliseconds. */
export function parseMailDate(text: string): number {
  const ms = Date.parse(text.replace(/^[A-Za-z]+, /, '').replace(' at ', ' '));
  if (Number.isNaN(ms)) throw new Error(`Cannot read the date "${text}"`);
  return ms;
}

/** The running product, SMTP server and browser of one test file. */
export interface RealBrowserStack {
  smtp: TestSmtpServer;
  product: ProductProcess;
  browser: Browser;
  close(): Promise<void>;
}

/**
 * Starts the SMTP server, the product and Chromium. If one fails, what did start is stopped
 * before the error is thrown.
 */
export async function startRealBrowserStack(): Promise<RealBrowserStack> {
  if (missingTools.length) {
    throw new Error(
      `CI must run the browser tests, but ${missingTools.join(' and ')} is missing (apt-get install chromium oathtool).`,
    );
  }
  mkdirSync(SHOTS, { recursive: true });
  const smtp = await startTestSmtpServer();
  let product: ProductProcess | undefined;
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    await product?.stop();
    await smtp.close();
  };
  // allSettled: if one fails, the other is still assigned, so close() stops it.
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
  const failed = started.find((r) => r.status === 'rejected');
  if (failed || !product || !browser) {
    await close();
    throw failed?.status === 'rejected' ? failed.reason : new Error('the stack did not start');
  }
  return { smtp, product, browser, close };
}

/**
 * Starts the stack before the tests of the calling `describe` and stops it after them. Returns
 * what gives a test the running stack.
 */
export function useRealBrowserStack(): () => RealBrowserStack {
  let stack: RealBrowserStack | undefined;
  beforeAll(async () => {
    stack = await startRealBrowserStack();
  }, 40_000);
  afterAll(async () => {
    await stack?.close();
  }, 20_000);
  return () => {
    if (!stack) throw new Error('beforeAll did not finish');
    return stack;
  };
}

/**
 * Runs `body` with a page of a fresh browser context, closed afterwards. On failure saves
 * `<failureShot>.png` in test-artifacts/screenshots and adds the server's output to the error.
 */
export async function inBrowser(
  stack: Pick<RealBrowserStack, 'product' | 'browser'>,
  failureShot: string,
  body: (page: Page, context: BrowserContext) => Promise<void>,
  viewport = { width: 1024, height: 800 },
): Promise<void> {
  const context = await stack.browser.newContext({ viewport });
  const page = await context.newPage();
  try {
    await body(page, context);
  } catch (err) {
    await page.screenshot({ path: join(SHOTS, `${failureShot}.png`), fullPage: true }).catch(() => {});
    throw withServerOutput(err, stack.product);
  } finally {
    await context.close();
  }
}

/** Checks the loaded page shows the test-environment banner. */
export async function expectBanner(page: Page): Promise<void> {
  await page.waitForLoadState('load');
  const banner = page.locator('.env-banner');
  expect(await banner.isVisible(), `environment banner on ${page.url()}`).toBe(true);
  expect(await banner.textContent()).toContain('NTF test environment');
}

/**
 * Checks the page shows the test-environment banner, then saves `<prefix>-<name>.png` in
 * test-artifacts/screenshots.
 */
export async function screenshot(page: Page, prefix: string, name: string): Promise<void> {
  await expectBanner(page);
  await page.screenshot({ path: join(SHOTS, `${prefix}-${name}.png`), fullPage: true });
}

/** Provisions a user with the CLI and returns the activation link from the email it sends. */
export async function provision(
  stack: Pick<RealBrowserStack, 'smtp' | 'product'>,
  email: string,
  first: string,
  last: string,
) {
  const { smtp, product } = stack;
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

/** The password, recovery question and answer a user chooses at activation. */
export interface Credentials {
  password: string;
  question: string;
  answer: string;
}

/** From the emailed link to the choice of methods: starts activation, sets password and question. */
export async function activateUntilFactorChoice(page: Page, link: string, credentials: Credentials): Promise<void> {
  await page.goto(link);
  await page.getByRole('button', { name: 'Start activation' }).click();
  await page.getByLabel('New password').fill(credentials.password);
  await page.getByLabel('Question').fill(credentials.question);
  await page.getByLabel('Answer').fill(credentials.answer);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'Set up multifactor authentication' }).waitFor();
}

/**
 * From the emailed link to the authenticator setup page: starts activation, sets the password and
 * recovery question, chooses Google Authenticator. Returns the setup key shown on the page.
 */
export async function activateUntilCodeEntry(
  page: Page,
  link: string,
  email: string,
  credentials: Credentials,
  snap: (name: string) => Promise<void> = async () => {},
): Promise<string> {
  await page.goto(link);
  await page.getByRole('heading', { name: 'Activate your account' }).waitFor();
  await snap('01-activation-link');

  await page.getByRole('button', { name: 'Start activation' }).click();
  await page.getByRole('heading', { name: 'Set your password' }).waitFor();
  expect(await page.locator('main').textContent()).toContain(email);
  await page.getByLabel('New password').fill(credentials.password);
  await page.getByLabel('Question').fill(credentials.question);
  await page.getByLabel('Answer').fill(credentials.answer);
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

/**
 * The error of the input labelled `label`, found through its `aria-describedby` (WCAG 3.3.1): the
 * input must be marked invalid and the error visible.
 */
export async function fieldError(page: Page, label: string): Promise<string> {
  const input = page.getByLabel(label, { exact: true });
  expect(await input.getAttribute('aria-invalid'), `aria-invalid of "${label}"`).toBe('true');
  const describedBy = (await input.getAttribute('aria-describedby'))?.split(/\s+/) ?? [];
  const errorId = describedBy.find((id) => id.endsWith('-error'));
  if (!errorId) throw new Error(`aria-describedby="${describedBy.join(' ')}" of "${label}" names no error`);
  const error = page.locator(`[id="${errorId}"]`);
  expect(await error.isVisible()).toBe(true);
  return (await error.textContent())?.trim() ?? '';
}

/**
 * Clicks the button `name` of a form and waits until the browser shows the page that answered.
 * Returns the status of the form's POST (a 303 when it redirected), which also tells apart two
 * answers that look the same, such as two failed sign-ins in a row.
 */
export async function submitForm(page: Page, name: string): Promise<number> {
  await page.evaluate(() => {
    document.body.dataset.stale = 'true';
  });
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest());
  await page.getByRole('button', { name, exact: true }).click();
  const response = await answered;
  await page.waitForFunction(() => document.body !== null && document.body.dataset.stale === undefined);
  await page.waitForLoadState('load');
  return response.status();
}
