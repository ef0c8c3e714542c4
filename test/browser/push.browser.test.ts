import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/product-process.ts';
import {
  activateUntilFactorChoice,
  type Credentials,
  inBrowser,
  provision,
  screenshot,
  skipWithoutTools,
  useRealBrowserStack,
} from '../helpers/real-browser.ts';

/**
 * Push as a user meets it (issue #6 items 1–2): Chromium on the sign-in pages of the real product
 * process, and `traqs-verify` as a real process beside it. Enroll push at first sign-in with the
 * link the page shows; the page notices the enrollment by itself (its waiting script). Sign out,
 * sign in: the page shows a number, the user types it into `traqs-verify listen`, and the page
 * continues by itself.
 */

const execFileAsync = promisify(execFile);
const EMAIL = 'sam.push@acme.example';
const CREDENTIALS: Credentials = {
  password: 'silver lantern meadow 42',
  question: 'Name of the street you grew up on?',
  answer: 'Birch Road',
};

describe.skipIf(skipWithoutTools('the push browser test'))('push in a real browser with traqs-verify', () => {
  const running = useRealBrowserStack();
  const home = mkdtempSync(join(tmpdir(), 'traqs-verify-browser-'));
  let listener: ChildProcessWithoutNullStreams | undefined;
  let output = '';
  afterAll(() => {
    listener?.kill('SIGTERM');
    rmSync(home, { recursive: true, force: true });
  });
  const env = { PATH: process.env.PATH, HOME: home };
  const shot = (page: Page, name: string) => screenshot(page, 'push', name);

  async function waitForOutput(pattern: RegExp): Promise<RegExpExecArray> {
    for (let i = 0; i < 300; i++) {
      const m = pattern.exec(output);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no ${pattern} in traqs-verify output:\n${output}`);
  }

  it('enrolls push at first sign-in, then signs in by picking the number', async () => {
    const { product } = running();
    const { link } = await provision(running(), EMAIL, 'Sam', 'Push');

    await inBrowser(running(), 'push-failure', async (page) => {
      await activateUntilFactorChoice(page, link, CREDENTIALS);
      await page.getByRole('button', { name: 'Set up Okta Verify (push)' }).click();

      await page.getByRole('heading', { name: 'Set up Okta Verify (push)' }).waitFor();
      expect(await page.getByAltText('QR code of the activation link').isVisible()).toBe(true);
      await shot(page, '01-enroll');
      const command = (await page.locator('pre.command').textContent()) ?? '';
      const activation = /"(http:\/\/\S+)"/.exec(command)?.[1];
      if (!activation) throw new Error(`no activation link in ${command}`);
      const enrolled = await execFileAsync(
        process.execPath,
        ['bin/traqs-verify.js', '--home', home, 'enroll', activation, '--name', 'Sam laptop'],
        { cwd: repoRoot, env },
      );
      expect(enrolled.stdout).toContain('Enrolled "Sam laptop"');
      // The waiting script notices and continues: no click.
      await page.waitForURL(`${product.idpUrl}/`, { timeout: 15_000 });
      await page.getByRole('heading', { name: 'Welcome, Sam Push' }).waitFor();
      expect(await page.locator('#factors').textContent()).toContain('Sam laptop');
      await shot(page, '02-home-after-enrollment');

      listener = spawn(process.execPath, ['bin/traqs-verify.js', '--home', home, 'listen'], { cwd: repoRoot, env });
      listener.stdout.on('data', (c: Buffer) => {
        output += c.toString('utf8');
      });
      await waitForOutput(/Listening for pushes/);

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Username (your email address)').fill(EMAIL);
      await page.getByLabel('Password').fill(CREDENTIALS.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      await page.getByRole('button', { name: 'Send push' }).click();
      const number = (await page.locator('.push-number').textContent())?.trim() ?? '';
      expect(number).toMatch(/^\d{2}$/);
      await shot(page, '03-number');

      const shown = await waitForOutput(/numbers: (\d+) {2}(\d+) {2}(\d+)/);
      expect(shown.slice(1)).toContain(number);
      expect(output).toMatch(/from: {4}Chrom\w* \d+ on Linux, 127\.0\.0\.1 \(This computer\)/);
      listener.stdin.write(`${number}\n`);
      await waitForOutput(/Approved\./);
      await page.waitForURL(`${product.idpUrl}/`, { timeout: 15_000 });
      await page.getByRole('heading', { name: 'Welcome, Sam Push' }).waitFor();
      expect(await page.locator('#activity').textContent()).toContain('Okta Verify (push)');
      await shot(page, '04-home-after-push');
    });
  }, 90_000);
});
