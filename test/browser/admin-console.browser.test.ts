import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../src/accounts/model.ts';
import { registerAdminConsoles } from '../../src/admin/console/routes.tsx';
import { CLI_PRINCIPAL, createAdminServiceFor } from '../../src/admin/service.ts';
import { buildIdp, cookiePrefix, type EnvironmentRuntime, openEnvironment } from '../../src/app.ts';
import { generateTotp } from '../../src/authn/factors/totp/totp.ts';
import { loadConfig } from '../../src/config/load.ts';
import { migrateToLatest, openDatabase } from '../../src/db/database.ts';
import { createStore } from '../../src/db/store.ts';
import { createTestSamlIdp } from '../helpers/federation.ts';
import { freePorts, repoRoot } from '../helpers/product-process.ts';
import { CHROMIUM, missingTools } from '../helpers/real-browser.ts';
import { createMemoryTransport, createTestClock } from '../helpers/stack.ts';
import { type ActiveUser, activateUser } from '../helpers/users.ts';

const SHOTS = join(repoRoot, 'docs', 'screenshots');

/** The idp with the consoles on a real listener, driven by Debian's Chromium. */
async function startConsoleIdp() {
  const dataDir = mkdtempSync(join(tmpdir(), 'traqs-console-browser-'));
  const [port] = await freePorts(1);
  const url = `http://localhost:${port}`;
  const config = loadConfig(
    { TRAQS_DATA_DIR: dataDir, TRAQS_ENVIRONMENTS: 'ntf', TRAQS_NTF_IDP_PORT: String(port), TRAQS_NTF_IDP_URL: url },
    { logLevel: 'silent', policy: { authRequestsPerMinutePerIp: 100_000 } },
  );
  const environment = config.environments[0];
  if (!environment) throw new Error('no environment');
  const db = openDatabase(':memory:');
  await migrateToLatest(db);
  const store = createStore(db);
  // Real time: the browser judges cookie expiry by its own clock.
  const clock = createTestClock(Date.now());
  const mail = createMemoryTransport();
  const rt: EnvironmentRuntime = await openEnvironment(config, environment, {
    logger: pino({ level: 'silent' }),
    clock,
    store,
    transport: mail.transport,
  });
  const app = await buildIdp(rt);
  const admin = createAdminServiceFor(rt);
  if (!app.hasRoute({ method: 'GET', url: '/admin' })) {
    registerAdminConsoles(app, {
      admin,
      profile: rt.profile,
      sessions: rt.sessions,
      sidCookie: `${cookiePrefix('ntf', 'idp')}_sid`,
      page: () => ({ environment, contacts: config.contacts, serviceName: 'TRAQS MFA Profile' }),
    });
  }
  await app.ready();
  await app.listen({ port, host: '127.0.0.1' });
  const firm = await rt.accounts.createFirm('Acme Securities');
  if (!firm.ok) throw new Error(firm.message);
  return {
    rt,
    app,
    clock,
    config,
    firm: firm.firm,
    admin,
    url,
    sentMail: mail.sent,
    async close() {
      await app.close();
      await rt.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
type ConsoleIdp = Awaited<ReturnType<typeof startConsoleIdp>>;

describe.skipIf(missingTools.length > 0 && !process.env.CI)('administration consoles in Chromium', () => {
  let s: ConsoleIdp;
  let browser: Browser;
  beforeAll(async () => {
    s = await startConsoleIdp();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  }, 40_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  async function staffMember(email: string, role: Role): Promise<ActiveUser> {
    const user = await activateUser(s, email);
    const r = await s.admin.grantRole(CLI_PRINCIPAL, user.user.id, role);
    if (!r.ok) throw new Error(r.message);
    return user;
  }

  async function signIn(page: Page, user: ActiveUser) {
    await page.goto(`${s.url}/signin`);
    await page.getByLabel('Username (your email address)').fill(user.login);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
    s.clock.advance(30_000);
    await page.getByLabel('Six-digit code').fill(generateTotp({ secret: user.secret, now: s.clock() }));
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    await page.waitForURL(`${s.url}/`);
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(SHOTS, `admin-${name}.png`), fullPage: true });

  it('an SAA requests a username, Operations approves, the enrollment email arrives', async () => {
    const saa = await staffMember('saa@acme.example', 'saa');
    const ops = await staffMember('ops@acme.example', 'operations');

    const saaContext = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await saaContext.newPage();
    await signIn(page, saa);
    await page.goto(`${s.url}/admin`);
    await page.getByRole('link', { name: "Your firm's users and requests" }).click();
    await page.getByLabel('First name').fill('New');
    await page.getByLabel('Last name').fill('Hire');
    await page.getByLabel('Email').fill('new.hire@acme.example');
    await page.getByLabel('API Download').check();
    await page.getByRole('button', { name: 'Request username' }).click();
    await page.getByText('Requested username new.hire@acme.example').waitFor();
    await shot(page, 'saa-requested');
    await saaContext.close();

    const opsContext = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const opsPage = await opsContext.newPage();
    await signIn(opsPage, ops);
    await opsPage.goto(`${s.url}/admin/operations`);
    await opsPage.getByText('New Hire <new.hire@acme.example>').waitFor();
    await shot(opsPage, 'operations-queue');
    await opsPage.getByRole('button', { name: 'Approve' }).click();
    await opsPage.getByText('Request approved.').waitFor();
    await shot(opsPage, 'operations-approved');
    await opsContext.close();

    const [mail] = await s.rt.store.repos.outbox.listRecentMessages(10, 'new.hire@acme.example');
    expect(mail?.template).toBe('enrollment');
  });
  it('Support resets a lost device after verifying its own second factor; the user is asked to set up a new one', async () => {
    const support = await staffMember('support@acme.example', 'support');
    const caller = await activateUser(s, 'lost.phone@acme.example');

    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    await signIn(page, support);
    await page.goto(`${s.url}/admin/support`);
    await page.getByLabel('Find a user (name or email starts with)').fill('lost.phone');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'lost.phone@acme.example' }).click();
    await shot(page, 'support-user');

    // More than 5 minutes since the support member last verified: the reset asks first.
    s.clock.advance(6 * 60_000);
    await page.getByRole('button', { name: 'Reset all methods (lost device)' }).click();
    await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
    await shot(page, 'support-verify');
    s.clock.advance(30_000);
    await page.getByLabel('Code').fill(generateTotp({ secret: support.secret, now: s.clock() }));
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    await page.waitForURL(`${s.url}/admin/users/${caller.user.id}`);
    await page.getByRole('button', { name: 'Reset all methods (lost device)' }).click();
    await page.getByText('All security methods reset').waitFor();
    await shot(page, 'support-reset');

    // The firm's identity provider, from pasted SAML metadata (verified a moment ago: no new check).
    const idp = createTestSamlIdp('https://idp.acme.example/saml', 'https://idp.acme.example/sso');
    await page.goto(`${s.url}/admin/support`);
    await page.getByRole('link', { name: 'Firm single sign-on' }).first().click();
    await page.getByLabel('Firm').selectOption({ label: 'Acme Securities' });
    await page.getByLabel('Display name').fill('Acme Entra ID');
    await page.getByLabel('SAML 2.0').check();
    await page.getByLabel('IdP metadata XML').fill(idp.metadataXml);
    await page.getByRole('button', { name: 'Add identity provider' }).click();
    await page.getByText('Added Acme Entra ID. Give the firm our SP metadata URL').waitFor();
    await shot(page, 'support-sso');
    await context.close();
    expect(await s.rt.store.repos.factors.listActiveFactors(caller.user.id)).toHaveLength(0);

    const userContext = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const userPage = await userContext.newPage();
    await userPage.goto(`${s.url}/signin`);
    await userPage.getByLabel('Username (your email address)').fill(caller.login);
    await userPage.getByLabel('Password').fill(caller.password);
    await userPage.getByRole('button', { name: 'Sign in' }).click();
    await userPage.waitForLoadState('load');
    await userPage.getByRole('heading', { name: 'Set up multifactor authentication' }).waitFor();
    await shot(userPage, 'support-user-reenrolls');
    await userContext.close();
  });
});
