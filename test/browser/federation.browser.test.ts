import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSamlIdp, MFA_CLASS, startTestOpenIdProvider, type TestSamlIdp } from '../helpers/federation.ts';
import { freePorts } from '../helpers/product-process.ts';
import {
  inBrowser,
  provisioned,
  type RealBrowserStack,
  SHOTS,
  screenshot,
  skipWithoutTools,
  useRealBrowserStack,
} from '../helpers/real-browser.ts';

/**
 * Issue #8 in a real browser: a firm's SAML IdP (samlify, an HTTP server with a one-button sign-in
 * page) and another firm's OpenID provider (a separate oidc-provider with its development login
 * pages) each sign a user into the TRAQS website through our idp. The product runs as its own
 * process and is configured with the CLI (`traqs idp add`, `traqs user auth-mode`).
 */

const SAML_USER = 'sam.saml@acme-fed.example';
const OIDC_USER = 'olivia.oidc@beta-fed.example';
const OIDC_SECRET = 'beta-op-client-secret-0123456789abcdef';

/** `{ env: 'ntf' }` → `['--env', 'ntf']`. */
const flags = (o: Record<string, string>) => Object.entries(o).flatMap(([k, v]) => [`--${k}`, v]);

/** `traqs idp add … --json` in the product's environment. */
async function addIdp(product: RealBrowserStack['product'], o: Record<string, string>): Promise<{ stdout: string }> {
  return product.cli(['idp', 'add', ...flags({ env: 'ntf', ...o }), '--json']);
}

describe.skipIf(skipWithoutTools('the federation browser test'))(
  'federated sign-in in a real browser (issue #8)',
  () => {
    const running = useRealBrowserStack();
    const shot = (page: Page, name: string) => screenshot(page, 'federation', name);
    const servers: Server[] = [];
    const closers: (() => Promise<void>)[] = [];
    let samlIdp: TestSamlIdp;
    let samlPort = 0;
    let opPort = 0;
    /** Who the test SAML IdP says signed in next (its "session"). */
    let samlSubject = SAML_USER;
    let spMetadata = '';

    beforeAll(async () => {
      [samlPort, opPort] = (await freePorts(2)) as [number, number];
      samlIdp = createTestSamlIdp(`http://localhost:${samlPort}/metadata`, `http://localhost:${samlPort}/sso`);
      // The firm's SAML IdP: metadata, and a sign-in page that POSTs the signed response to our ACS.
      const server = createServer((req, res) => {
        const url = new URL(req.url ?? '/', `http://localhost:${samlPort}`);
        if (url.pathname === '/metadata') {
          res.writeHead(200, { 'content-type': 'application/samlmetadata+xml' }).end(samlIdp.metadataXml);
          return;
        }
        if (url.pathname !== '/sso') {
          res.writeHead(404).end();
          return;
        }
        samlIdp
          .respond(spMetadata, url.href, { nameId: samlSubject, classRef: MFA_CLASS })
          .then(({ samlResponse, acsUrl }) => {
            res
              .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
              .end(
                `<!doctype html><html><head><title>Acme Corp sign-in</title></head><body style="font-family:sans-serif;margin:3rem">` +
                  `<h1>Acme Corp single sign-on</h1><p>Signed in with password and authenticator as ${samlSubject}.</p>` +
                  `<form method="post" action="${acsUrl}"><input type="hidden" name="SAMLResponse" value="${samlResponse}">` +
                  `<button type="submit">Continue to TRAQS</button></form></body></html>`,
              );
          })
          .catch((err: Error) => res.writeHead(400).end(err.message));
      });
      await new Promise<void>((resolve) => server.listen(samlPort, '127.0.0.1', resolve));
      servers.push(server);
    }, 30_000);
    afterAll(async () => {
      for (const s of servers) await new Promise((resolve) => s.close(resolve));
      for (const close of closers) await close();
    });

    /** Provisions a portal user in `firm` with the CLI and switches them to federated sign-in. */
    async function federatedPortalUser(
      stack: RealBrowserStack,
      email: string,
      first: string,
      last: string,
      firm: string,
    ) {
      const { stdout } = await stack.product.cli([
        ...['user', 'create', ...flags({ env: 'ntf', email, first, last, firm })],
        ...['--create-firm', '--app', 'portal', '--json'],
      ]);
      expect(provisioned.parse(JSON.parse(stdout))).toMatchObject({ login: email });
      const switched = await stack.product.cli([
        'user',
        'auth-mode',
        '--env',
        'ntf',
        '--user',
        email,
        '--mode',
        'federated',
      ]);
      expect(switched.stdout).toContain('now signs in through federation');
    }

    /** From the portal to our sign-in page, the username only, and on to the firm's IdP. */
    async function toIdp(page: Page, portalUrl: string, email: string, name: string) {
      await page.goto(`${portalUrl}/`);
      await page.getByLabel('Username (your email address)').waitFor();
      await page.getByLabel('Username (your email address)').fill(email);
      await shot(page, `${name}-01-username`);
      await page.getByRole('button', { name: 'Sign in' }).click();
    }

    it('signs a user into the portal through the firm’s SAML IdP (samlify)', async () => {
      const stack = running();
      const { product } = stack;
      const portalUrl = String(product.env.TRAQS_NTF_PORTAL_URL);
      await federatedPortalUser(stack, SAML_USER, 'Sam', 'Saml', 'Acme Federated');
      const added = await addIdp(product, {
        firm: 'Acme Federated',
        name: 'Acme Corp SSO',
        protocol: 'saml',
        metadata: `http://localhost:${samlPort}/metadata`,
      });
      const conf = JSON.parse(added.stdout) as { id: string; sp: { metadataUrl: string } };
      spMetadata = await (await fetch(conf.sp.metadataUrl)).text();
      expect(spMetadata).toContain('AssertionConsumerService');

      await inBrowser(stack, 'federation-saml-failure', async (page) => {
        await toIdp(page, portalUrl, SAML_USER, 'saml');
        await page.getByRole('heading', { name: 'Acme Corp single sign-on' }).waitFor();
        expect(page.url().startsWith(`http://localhost:${samlPort}/sso?SAMLRequest=`)).toBe(true);
        await page.screenshot({ path: join(SHOTS, 'federation-saml-02-firm-idp.png'), fullPage: true });
        await page.getByRole('button', { name: 'Continue to TRAQS' }).click();
        await page.waitForURL(`${portalUrl}/`);
        await page.getByRole('heading', { name: 'Welcome, Sam Saml' }).waitFor();
        expect(await page.locator('main').textContent()).toContain('Acme Federated');
        expect(await page.locator('main').textContent()).toContain("You sign in through your firm's single sign-on");
        await shot(page, 'saml-03-portal');
      });

      // The firm's IdP vouches for someone TRAQS does not know: a clear page, whom to contact.
      samlSubject = 'someone.else@acme-fed.example';
      try {
        await inBrowser(stack, 'federation-saml-unknown-failure', async (page) => {
          await toIdp(page, portalUrl, SAML_USER, 'saml-unknown');
          await page.getByRole('button', { name: 'Continue to TRAQS' }).click();
          await page.getByRole('heading', { name: 'No TRAQS account for this user' }).waitFor();
          expect(await page.locator('main').textContent()).toContain('Accounts are not created at sign-in');
          await shot(page, 'saml-04-not-provisioned');
        });
      } finally {
        samlSubject = SAML_USER;
      }
    }, 90_000);

    it('signs a user into the portal through the firm’s OpenID provider (oidc-provider)', async () => {
      const stack = running();
      const { product } = stack;
      const portalUrl = String(product.env.TRAQS_NTF_PORTAL_URL);
      const issuer = `http://localhost:${opPort}`;
      await federatedPortalUser(stack, OIDC_USER, 'Olivia', 'Oidc', 'Beta Federated');
      const secretFile = join(tmpdir(), `traqs-op-secret-${opPort}`);
      writeFileSync(secretFile, OIDC_SECRET, { mode: 0o600 });
      const added = await addIdp(product, {
        firm: 'Beta Federated',
        name: 'Beta OpenID',
        protocol: 'oidc',
        issuer,
        'client-id': 'traqs-fed',
        'client-secret-file': secretFile,
      });
      const conf = JSON.parse(added.stdout) as { sp: { redirectUri: string } };

      // The firm's OpenID provider: a separate oidc-provider with its development login pages.
      const op = await startTestOpenIdProvider(opPort, [
        { clientId: 'traqs-fed', secret: OIDC_SECRET, redirectUri: conf.sp.redirectUri },
      ]);
      closers.push(op.close);

      await inBrowser(stack, 'federation-oidc-failure', async (page) => {
        await toIdp(page, portalUrl, OIDC_USER, 'oidc');
        await page.waitForURL(new RegExp(`^${issuer}/interaction/`));
        // oidc-provider's development sign-in: any login; it becomes the subject and email.
        await page.locator('input[name="login"]').fill(OIDC_USER);
        await page.locator('input[name="password"]').fill('firm password');
        await page.screenshot({ path: join(SHOTS, 'federation-oidc-02-firm-op.png'), fullPage: true });
        await page.locator('button[type="submit"]').first().click();
        // Its consent page, then back through our callback to the portal.
        await page.locator('button[type="submit"]').first().click();
        await page.waitForURL(`${portalUrl}/`);
        await page.getByRole('heading', { name: 'Welcome, Olivia Oidc' }).waitFor();
        expect(await page.locator('main').textContent()).toContain('Beta Federated');
        await shot(page, 'oidc-03-portal');
      });
    }, 90_000);

    it('lists, shows and removes identity providers with the CLI', async () => {
      const { product } = running();
      const list = await product.cli(['idp', 'list', '--env', 'ntf', '--json']);
      const all = JSON.parse(list.stdout) as { id: string; protocol: string; name: string }[];
      expect(all.map((i) => [i.protocol, i.name])).toEqual([
        ['saml', 'Acme Corp SSO'],
        ['oidc', 'Beta OpenID'],
      ]);
      const [saml, oidcIdp] = all as unknown as [{ id: string }, { id: string }];
      const metadata = await product.cli(['idp', 'show', saml.id, '--env', 'ntf', '--sp-metadata']);
      expect(metadata.stdout).toContain('<EntityDescriptor');
      const shown = await product.cli(['idp', 'show', oidcIdp.id, '--env', 'ntf']);
      expect(shown.stdout).toContain(`Redirect URI:     ${product.idpUrl}/sso/oidc/${oidcIdp.id}/callback`);
      expect(shown.stdout).not.toContain(OIDC_SECRET);
      await product.cli(['idp', 'remove', oidcIdp.id, '--env', 'ntf']);
      const after = JSON.parse((await product.cli(['idp', 'list', '--env', 'ntf', '--json'])).stdout) as unknown[];
      expect(after).toHaveLength(1);
    }, 60_000);
  },
);
