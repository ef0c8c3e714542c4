import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDownload } from '../src/download/app.ts';
import { buildPortal } from '../src/portal/app.ts';
import { openFileStore } from '../src/refdata/file-store.ts';
import { createHttpBrowser } from './helpers/http-browser.ts';
import { type OauthStack, signInOnPages, startOauthStack } from './helpers/oauth.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * The Manual page of the TRAQS website end to end: idp, portal and download service on their own
 * ports; the user signs in once and downloads reference data in the browser with the access token
 * the portal obtained for them at sign-in — entitlements enforced by the download service.
 */

let s: OauthStack;
let portal: FastifyInstance;
let download: FastifyInstance;
let alice: ActiveUser;
const ORF = 'Symbol|CUSIP|Issue Name\nACME|000360206|ACME CORP\nBETA|00036020A|BETA INC\n';

beforeAll(async () => {
  s = await startOauthStack();
  portal = await buildPortal(s.rt);
  await portal.listen({ port: s.rt.environment.portal.port, host: '127.0.0.1' });
  download = await buildDownload(s.rt);
  await download.listen({ port: s.rt.environment.download.port, host: '127.0.0.1' });
  alice = await activateUser(s, 'alice@acme.example');
  await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
  await s.rt.store.repos.refdata.grantEntitlement(alice.user.id, 'ORF', s.clock());
  const files = openFileStore(s.rt);
  await files.put({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-03' }, [Buffer.from(ORF)]);
  await files.put({ facility: 'TRACE-CA', file: 'CAMASTER', date: '2026-12-03' }, [Buffer.from('CUSIP|Issuer\n')]);
});
afterAll(async () => {
  await download?.close();
  await portal?.close();
  await s?.close();
});

describe('Manual page', () => {
  const browser = createHttpBrowser();

  it('lists the files of the facilities the user is entitled to, after one sign-in', async () => {
    const { answer: signInPage } = await browser.follow(`${s.portalUrl}/api/manual`);
    expect(signInPage.url).toContain('/signin?for=portal');
    const done = await signInOnPages(s, browser, signInPage.url, alice);
    const { answer: page } = await browser.follow(done.location ?? '');
    expect(page.status, page.body.slice(0, 400)).toBe(200);
    expect(page.url).toBe(`${s.portalUrl}/api/manual`);
    expect(page.body).toContain('OTC Reporting Facility');
    expect(page.body).toContain('EQUITYMASTERAC');
    expect(page.body).toContain('2026-12-03');
    // Not entitled to TRACE Corporate and Agency: not listed.
    expect(page.body).not.toContain('CAMASTER');
  });

  it('downloads a file in the browser through the download API, as the user', async () => {
    const res = await browser.get(
      `${s.portalUrl}/api/manual/download?facility=ORF&file=EQUITYMASTERAC&date=2026-12-03`,
    );
    expect(res.status).toBe(200);
    expect(res.body).toBe(ORF);
    expect(res.headers.get('content-disposition')).toContain('attachment');
  });

  it("refuses a facility the user is not entitled to, with the download service's reason", async () => {
    const res = await browser.get(`${s.portalUrl}/api/manual/download?facility=TRACE-CA&file=CAMASTER&date=2026-12-03`);
    expect(res.status).toBe(403);
    expect(res.body).toContain('TRACE-CA');
  });

  it('sends a user not assigned to API Download a 403 "App not assigned"', async () => {
    await s.rt.store.repos.users.unassignApp(alice.user.id, 'download');
    const res = await browser.get(`${s.portalUrl}/api/manual`);
    expect(res.status).toBe(403);
    expect(res.body).toContain('App not assigned');
    await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
  });
});
