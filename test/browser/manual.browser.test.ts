import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  activateUntilCodeEntry,
  type Credentials,
  FIRM,
  inBrowser,
  oathtoolCode,
  provisioned,
  screenshot,
  skipWithoutTools,
  stepAt,
  useRealBrowserStack,
  waitForMail,
} from '../helpers/real-browser.ts';

/**
 * Issue #5: the Manual page of the TRAQS website in a real browser. The product (its own process)
 * generated sample reference data at first start; a user entitled to ORF browses it and downloads
 * a file, which the portal fetched from the download API with the user's own access token.
 */

const EMAIL = 'morgan.manual@acme.example';
const CREDENTIALS: Credentials = {
  password: 'copper meadow lantern 58',
  question: 'Name of your first pet?',
  answer: 'Biscuit',
};

describe.skipIf(skipWithoutTools('the Manual page browser test'))(
  'the Manual page in a real browser (issue #5)',
  () => {
    const running = useRealBrowserStack();
    const shot = (page: Page, name: string) => screenshot(page, 'manual', name);

    it('lists the entitled facility only and downloads a file in the browser', async () => {
      const stack = running();
      const { product } = stack;
      const portalUrl = String(product.env.TRAQS_NTF_PORTAL_URL);
      const { stdout } = await product.cli([
        'user',
        'create',
        '--env',
        'ntf',
        '--email',
        EMAIL,
        '--first',
        'Morgan',
        '--last',
        'Manual',
        '--firm',
        FIRM,
        '--create-firm',
        '--app',
        'portal',
        '--app',
        'download',
        '--json',
      ]);
      expect(provisioned.parse(JSON.parse(stdout))).toMatchObject({ login: EMAIL });
      await product.cli(['entitlement', 'grant', '--env', 'ntf', '--user', EMAIL, '--facility', 'ORF']);
      const mail = await waitForMail(stack.smtp, EMAIL, /Activate your TRAQS account/);
      const link = /^(http:\/\/\S+\/activate\?token=\S+)$/m.exec(mail.text ?? '')?.[1];
      if (!link) throw new Error(`No activation link in the email:\n${mail.text}`);

      await inBrowser(stack, 'manual-failure', async (page) => {
        const secret = await activateUntilCodeEntry(page, link, EMAIL, CREDENTIALS);
        await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, stepAt(Date.now())));
        await page.getByRole('button', { name: 'Verify', exact: true }).click();
        await page.getByRole('heading', { name: 'Welcome, Morgan Manual' }).waitFor();

        // Single sign-on into the TRAQS website, then API → Manual.
        await page.goto(`${portalUrl}/`);
        await page.getByRole('link', { name: 'Manual' }).click();
        await page.getByRole('heading', { name: 'Manual download' }).waitFor();
        const main = (await page.locator('main').textContent()) ?? '';
        expect(main).toContain('OTC Reporting Facility');
        expect(main).toContain('EQUITYMASTERAC');
        // Entitled to ORF only: TRACE files are not listed.
        expect(main).not.toContain('TRACE Corporate and Agency');
        await shot(page, '01-manual');

        const [download] = await Promise.all([
          page.waitForEvent('download'),
          page.locator('a[href*="file=EQUITYMASTERAC"]').first().click(),
        ]);
        expect(download.suggestedFilename()).toMatch(/^ORF_EQUITYMASTERAC_\d{8}\.txt$/);
        const path = await download.path();
        const { readFile } = await import('node:fs/promises');
        const text = await readFile(path, 'utf8');
        const [header, ...rows] = text.trimEnd().split('\n');
        expect(header).toContain('|');
        expect(rows.length).toBeGreaterThan(10);
      });
    });
  },
);
