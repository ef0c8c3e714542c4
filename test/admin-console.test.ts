import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Role } from '../src/accounts/model.ts';
import { csvCell, toCsv } from '../src/admin/console/csv.ts';
import { registerAdminConsoles } from '../src/admin/console/routes.tsx';
import { type AdminService, CLI_PRINCIPAL, createAdminServiceFor } from '../src/admin/service.ts';
import { buildIdp, cookiePrefix, type EnvironmentRuntime, openEnvironment } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { migrateToLatest, openDatabase } from '../src/db/database.ts';
import { createStore } from '../src/db/store.ts';
import type { Firm } from '../src/firms/repository.ts';
import { type Browser, createBrowser, csrfFrom, hiddenFrom, signInWithPages } from './helpers/browser.ts';
import { createTestSamlIdp } from './helpers/federation.ts';
import { createMemoryTransport, createTestClock } from './helpers/stack.ts';
import { type ActiveUser, activateUser, freshCode } from './helpers/users.ts';

const SID = `${cookiePrefix('ntf', 'idp')}_sid`;
const MINUTE = 60_000;

/** `createTestStack` with the consoles registered before the idp is ready (until app.ts wires them). */
async function createConsoleStack() {
  const dataDir = mkdtempSync(join(tmpdir(), 'traqs-console-'));
  const config = loadConfig(
    { TRAQS_DATA_DIR: dataDir, TRAQS_ENVIRONMENTS: 'ntf' },
    { logLevel: 'silent', policy: { authRequestsPerMinutePerIp: 100_000 } },
  );
  const environment = config.environments[0];
  if (!environment) throw new Error('no environment');
  const db = openDatabase(':memory:');
  await migrateToLatest(db);
  const store = createStore(db);
  const clock = createTestClock();
  const mail = createMemoryTransport();
  const rt: EnvironmentRuntime = await openEnvironment(config, environment, {
    logger: pino({ level: 'silent' }),
    clock,
    store,
    transport: mail.transport,
  });
  const app = await buildIdp(rt);
  const admin: AdminService = createAdminServiceFor(rt);
  if (!app.hasRoute({ method: 'GET', url: '/admin' })) {
    registerAdminConsoles(app, {
      admin,
      profile: rt.profile,
      sessions: rt.sessions,
      sidCookie: SID,
      page: () => ({ environment, contacts: config.contacts, serviceName: 'TRAQS MFA Profile' }),
    });
  }
  await app.ready();
  const firm = await rt.accounts.createFirm('Acme Securities');
  const firmB = await rt.accounts.createFirm('Birch Capital');
  if (!firm.ok || !firmB.ok) throw new Error('firms');
  return {
    rt,
    app,
    clock,
    config,
    firm: firm.firm,
    firmB: firmB.firm,
    admin,
    sentMail: mail.sent,
    async close() {
      await app.close();
      await rt.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
type ConsoleStack = Awaited<ReturnType<typeof createConsoleStack>>;

/** An activated user of firm A holding `roles`, signed in through the pages. */
async function staffMember(s: ConsoleStack, email: string, roles: Role[]): Promise<{ user: ActiveUser; b: Browser }> {
  const user = await activateUser(s, email);
  for (const role of roles) {
    const r = await s.admin.grantRole(CLI_PRINCIPAL, user.user.id, role);
    if (!r.ok) throw new Error(r.message);
  }
  const b = createBrowser(s);
  await signInWithPages(s, b, user, SID);
  return { user, b };
}

async function provisioned(s: ConsoleStack, email: string, firm: Firm) {
  const made = await s.rt.accounts.provisionUser({ email, firstName: 'Pat', lastName: 'Other', firmId: firm.id });
  if (!made.ok) throw new Error(made.message);
  return made.user;
}

/** Answers "Verify it's you" at `verifyUrl` with a fresh code from the staff member's authenticator. */
async function reverify(s: ConsoleStack, member: { user: ActiveUser; b: Browser }, verifyUrl: string, next: string) {
  const verify = await member.b.get(verifyUrl);
  return member.b.post('/admin/verify', {
    _csrf: csrfFrom(verify.payload),
    factorId: hiddenFrom(verify.payload, 'factorId'),
    next,
    passCode: freshCode(s, member.user.secret),
  });
}

const mailTo = (s: ConsoleStack, address: string) => s.rt.store.repos.outbox.listRecentMessages(50, address);

describe('CSV export cells (OWASP CSV injection)', () => {
  it('quotes commas, quotes and line breaks; neutralises formulas', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    for (const lead of ['=', '+', '-', '@']) expect(csvCell(`${lead}1+1`)).toBe(`'${lead}1+1`);
    expect(csvCell('=HYPERLINK("http://evil.example","x")')).toBe(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    expect(csvCell(null)).toBe('');
    expect(
      toCsv([
        ['a', 1],
        ['b', null],
      ]),
    ).toBe('a,1\r\nb,\r\n');
  });
});

describe('administration consoles', () => {
  let s: ConsoleStack;
  beforeEach(async () => {
    s = await createConsoleStack();
  });
  afterEach(async () => {
    await s?.close();
  });

  it('needs a session and an administrative role', async () => {
    const anonymous = createBrowser(s);
    const res = await anonymous.get('/admin');
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/signin');
    const { b } = await staffMember(s, 'plain@acme.example', []);
    expect((await b.get('/admin')).statusCode).toBe(403);
    expect((await b.get('/admin/audit.csv')).statusCode).toBe(403);
  });

  it('the landing page links only the consoles the roles open', async () => {
    const { b } = await staffMember(s, 'saa@acme.example', ['saa']);
    const page = (await b.get('/admin')).payload;
    expect(page).toContain('href="/admin/firm"');
    expect(page).not.toContain('href="/admin/operations"');
    expect(page).not.toContain('href="/admin/audit"');
  });

  it('an SAA sees only its own firm and cannot reach another firm’s user', async () => {
    const own = await provisioned(s, 'own@acme.example', s.firm);
    const other = await provisioned(s, 'other@birch.example', s.firmB);
    const { b } = await staffMember(s, 'saa@acme.example', ['saa']);
    const firm = await b.get('/admin/firm');
    expect(firm.statusCode).toBe(200);
    expect(firm.payload).toContain('own@acme.example');
    expect(firm.payload).not.toContain('other@birch.example');
    expect((await b.get(`/admin/users/${own.id}`)).statusCode).toBe(200);
    const foreign = await b.get(`/admin/users/${other.id}`);
    expect(foreign.statusCode).toBe(403);
    expect(foreign.payload).not.toContain('other@birch.example');
    // Nor act on it: the service refuses the deactivation request.
    const csrf = csrfFrom(firm.payload);
    const act = await b.post(`/admin/users/${other.id}/deactivation-request`, { _csrf: csrf });
    expect(act.statusCode).toBe(403);
    expect((await b.get('/admin/operations')).statusCode).toBe(403);
    expect((await b.get('/admin/support')).statusCode).toBe(403);
  });

  it('SAA requests a username, Operations approves, the enrollment email is in the outbox', async () => {
    const saa = await staffMember(s, 'saa@acme.example', ['saa']);
    const requested = await saa.b.submit('/admin/firm', '/admin/firm/requests', {
      firstName: 'New',
      lastName: 'Hire',
      email: 'new.hire@acme.example',
      apps: 'portal',
    });
    expect(requested.statusCode).toBe(200);
    expect(requested.payload).toContain('Requested username new.hire@acme.example');
    expect(requested.payload).toContain('pending');

    const ops = await staffMember(s, 'ops@acme.example', ['operations']);
    const queue = await ops.b.get('/admin/operations');
    expect(queue.payload).toContain('new.hire@acme.example');
    const id = /data-request="([^"]+)"/.exec(queue.payload)?.[1] ?? '';
    const approved = await ops.b.post(`/admin/requests/${id}/approve`, { _csrf: csrfFrom(queue.payload) });
    expect(approved.statusCode).toBe(200);
    expect(approved.payload).toContain('Request approved.');
    const [mail] = await mailTo(s, 'new.hire@acme.example');
    expect(mail?.template).toBe('enrollment');
    expect((await saa.b.get('/admin/firm')).payload).toContain('approved');
  });

  it('approving needs a recent second factor: re-verification first, then back', async () => {
    const saa = await staffMember(s, 'saa@acme.example', ['saa']);
    await saa.b.submit('/admin/firm', '/admin/firm/requests', {
      firstName: 'Late',
      lastName: 'Hire',
      email: 'late@acme.example',
      apps: 'portal',
    });
    const ops = await staffMember(s, 'ops@acme.example', ['operations']);
    s.clock.advance(6 * MINUTE);
    const queue = await ops.b.get('/admin/operations');
    const id = /data-request="([^"]+)"/.exec(queue.payload)?.[1] ?? '';
    const first = await ops.b.post(`/admin/requests/${id}/approve`, { _csrf: csrfFrom(queue.payload) });
    expect(first.statusCode).toBe(303);
    expect(first.headers.location).toBe('/admin/verify?next=%2Fadmin%2Foperations');
    expect(await mailTo(s, 'late@acme.example')).toHaveLength(0);
  });

  it('Support resets all factors after re-verifying its own second factor', async () => {
    const target = await activateUser(s, 'lost.phone@acme.example');
    const support = await staffMember(s, 'support@acme.example', ['support']);
    s.clock.advance(6 * MINUTE);
    const page = await support.b.get(`/admin/users/${target.user.id}`);
    expect(page.statusCode).toBe(200);
    expect(page.payload).toContain('Reset all methods');
    // Issue #8: support sees the firm's identity provider, read-only.
    expect(page.payload).toContain('none configured (npx traqs idp add)');
    const first = await support.b.post(`/admin/users/${target.user.id}/reset-factors`, {
      _csrf: csrfFrom(page.payload),
    });
    expect(first.statusCode).toBe(303);
    const verifyUrl = String(first.headers.location);
    expect(verifyUrl).toBe(`/admin/verify?next=${encodeURIComponent(`/admin/users/${target.user.id}`)}`);
    expect(await s.rt.store.repos.factors.listActiveFactors(target.user.id)).toHaveLength(1);

    const verify = await support.b.get(verifyUrl);
    expect(verify.payload).toContain("Verify it's you");
    const wrong = await support.b.post('/admin/verify', {
      _csrf: csrfFrom(verify.payload),
      factorId: hiddenFrom(verify.payload, 'factorId'),
      next: `/admin/users/${target.user.id}`,
      passCode: '000000',
    });
    expect(wrong.statusCode).toBe(403);
    const ok = await support.b.post('/admin/verify', {
      _csrf: csrfFrom(verify.payload),
      factorId: hiddenFrom(verify.payload, 'factorId'),
      next: `/admin/users/${target.user.id}`,
      passCode: freshCode(s, support.user.secret),
    });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe(`/admin/users/${target.user.id}`);

    const again = await support.b.submit(
      `/admin/users/${target.user.id}`,
      `/admin/users/${target.user.id}/reset-factors`,
      {},
    );
    expect(again.statusCode).toBe(200);
    expect(again.payload).toContain('All security methods reset');
    expect(await s.rt.store.repos.factors.listActiveFactors(target.user.id)).toHaveLength(0);
    expect((await mailTo(s, 'lost.phone@acme.example')).some((m) => m.template === 'factorsReset')).toBe(true);
  });

  it('"Verify it\'s you" returns only to console pages', async () => {
    const support = await staffMember(s, 'support@acme.example', ['support']);
    s.clock.advance(6 * MINUTE);
    const page = await support.b.get('/admin/verify?next=https://evil.example/');
    expect(page.payload).toContain('name="next" value="/admin"');
    const ok = await support.b.post('/admin/verify', {
      _csrf: csrfFrom(page.payload),
      factorId: hiddenFrom(page.payload, 'factorId'),
      next: '//evil.example/admin',
      passCode: freshCode(s, support.user.secret),
    });
    expect(ok.headers.location).toBe('/admin');
  });

  it('refuses a form without its CSRF token and changes nothing', async () => {
    const target = await activateUser(s, 'kept@acme.example');
    const support = await staffMember(s, 'support@acme.example', ['support']);
    const res = await support.b.post(`/admin/users/${target.user.id}/reset-factors`, {});
    expect(res.statusCode).toBe(403);
    const forged = await support.b.post(`/admin/users/${target.user.id}/reset-factors`, { _csrf: 'forged' });
    expect(forged.statusCode).toBe(403);
    expect(await s.rt.store.repos.factors.listActiveFactors(target.user.id)).toHaveLength(1);
  });

  it('exports the audit log as CSV and JSON with the filters, escaping hostile values', async () => {
    const { b } = await staffMember(s, 'ops@acme.example', ['operations']);
    await s.rt.store.repos.audit.recordEvent({
      at: s.clock(),
      actorId: '=cmd|"/c calc"!A1',
      action: 'test.hostile',
      targetId: '@SUM(1,2)\nnext',
      outcome: 'denied',
      ip: '-1+1',
      userAgent: '+ua, "quoted"',
      details: { note: 'a,b' },
    });
    const csv = await b.get('/admin/audit.csv?action=test.hostile');
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toContain('text/csv');
    const lines = csv.payload.split('\r\n');
    expect(lines[0]).toBe('id,time,actor,action,target,outcome,ip,userAgent,details');
    expect(lines[1]).toContain(`"'=cmd|""/c calc""!A1"`);
    expect(lines[1]).toContain(`"'@SUM(1,2)\nnext"`);
    expect(lines[1]).toContain(",'-1+1,");
    expect(lines[1]).toContain(`"'+ua, ""quoted"""`);
    expect(lines.filter((l) => l.includes('test.hostile'))).toHaveLength(1);

    const json = await b.get('/admin/audit.json?outcome=denied&action=test.');
    const rows = JSON.parse(json.payload) as { action: string; outcome: string; actor: string }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]?.actor).toBe('=cmd|"/c calc"!A1');
    const future = await b.get('/admin/audit.json?from=2030-01-01');
    expect(JSON.parse(future.payload)).toHaveLength(0);

    const viewer = await b.get('/admin/audit?outcome=denied');
    expect(viewer.statusCode).toBe(200);
    expect(viewer.payload).toContain('test.hostile');
    expect(viewer.payload).toContain('href="/admin/audit.csv?outcome=denied"');
  });

  it('Operations suspends and unsuspends from the user page, with the service’s message', async () => {
    const target = await activateUser(s, 'suspect@acme.example');
    const ops = await staffMember(s, 'ops@acme.example', ['operations']);
    const found = await ops.b.get('/admin/operations?q=suspect');
    expect(found.payload).toContain(`/admin/users/${target.user.id}`);
    const suspended = await ops.b.submit(
      `/admin/users/${target.user.id}`,
      `/admin/users/${target.user.id}/suspend`,
      {},
    );
    expect(suspended.payload).toContain('User suspended');
    expect(suspended.payload).toContain('data-status="SUSPENDED"');
    const again = await ops.b.submit(`/admin/users/${target.user.id}`, `/admin/users/${target.user.id}/suspend`, {});
    expect(again.statusCode).toBe(409);
    const back = await ops.b.submit(`/admin/users/${target.user.id}`, `/admin/users/${target.user.id}/unsuspend`, {});
    expect(back.payload).toContain('data-status="ACTIVE"');
  });
  it('Operations handles a suspicious-activity report: sign out (re-verified), then close with a note', async () => {
    const target = await activateUser(s, 'reported@acme.example');
    await s.rt.store.repos.reports.createReport({
      id: 'rptconsole0000001',
      user_id: target.user.id,
      created_at: s.clock(),
      source: 'newSignIn',
      details: '{}',
      ip: '203.0.113.50',
      user_agent: 'Mozilla/5.0',
      status: 'open',
      closed_at: null,
      closed_by: null,
      note: null,
    });
    await s.rt.sessions.create(target.user.id, ['pwd', 'otp'], { ip: null, userAgent: null });
    const ops = await staffMember(s, 'ops@acme.example', ['operations']);
    expect((await ops.b.get('/admin/operations')).payload).toContain('/admin/reports/rptconsole0000001');
    s.clock.advance(6 * MINUTE);
    const first = await ops.b.submit(
      '/admin/reports/rptconsole0000001',
      '/admin/reports/rptconsole0000001/sign-out',
      {},
    );
    expect(first.headers.location).toBe('/admin/verify?next=%2Fadmin%2Freports%2Frptconsole0000001');
    await reverify(s, ops, String(first.headers.location), '/admin/reports/rptconsole0000001');
    const signedOut = await ops.b.submit(
      '/admin/reports/rptconsole0000001',
      '/admin/reports/rptconsole0000001/sign-out',
      {},
    );
    expect(signedOut.statusCode).toBe(200);
    expect(signedOut.payload).toContain('Signed out and refresh tokens revoked.');
    const closed = await ops.b.submit('/admin/reports/rptconsole0000001', '/admin/reports/rptconsole0000001/close', {
      note: 'Confirmed with the user <b>by phone</b>',
    });
    expect(closed.payload).toContain('Report closed.');
    expect(closed.payload).toContain('Confirmed with the user &lt;b>by phone&lt;/b>');
  });

  it('Operations rejects a request with a reason the SAA then sees', async () => {
    const saa = await staffMember(s, 'saa@acme.example', ['saa']);
    const own = await provisioned(s, 'leaver@acme.example', s.firm);
    const requested = await saa.b.submit('/admin/firm', `/admin/users/${own.id}/deactivation-request`, {
      from: 'firm',
    });
    expect(requested.payload).toContain('Deactivation requested');
    const ops = await staffMember(s, 'ops@acme.example', ['operations']);
    const queue = await ops.b.get('/admin/operations');
    const id = /data-request="([^"]+)"/.exec(queue.payload)?.[1] ?? '';
    const rejected = await ops.b.post(`/admin/requests/${id}/reject`, {
      _csrf: csrfFrom(queue.payload),
      reason: 'Still employed until March',
    });
    expect(rejected.payload).toContain('Request rejected.');
    const firm = (await saa.b.get('/admin/firm')).payload;
    expect(firm).toContain('rejected');
    expect(firm).toContain('Still employed until March');
  });
  it('Support manages firms’ identity providers on "Firm single sign-on", re-verified and audited', async () => {
    const support = await staffMember(s, 'support@acme.example', ['support']);
    const landing = (await support.b.get('/admin')).payload;
    expect(landing).toContain('href="/admin/sso"');
    expect((await support.b.get('/admin/support')).payload).toContain('href="/admin/sso"');
    const empty = await support.b.get('/admin/sso');
    expect(empty.statusCode).toBe(200);
    expect(empty.payload).toContain('No identity providers.');
    expect(empty.payload).toContain(`<option value="${s.firm.id}">Acme Securities</option>`);
    expect(empty.payload).toContain('type="password"');
    expect(empty.payload).toContain('SSRF');
    expect(empty.payload).not.toMatch(/<script(?![^>]*\bsrc=)/);

    const idp = createTestSamlIdp('https://idp.acme.example/saml', 'https://idp.acme.example/sso');
    // Padded past the 64 KiB of the other forms: this route has a body limit of its own.
    const metadataXml = `${idp.metadataXml}\n<!-- ${'padding '.repeat(20_000)}-->`;
    const add = { firmId: s.firm.id, name: 'Acme Entra ID', protocol: 'saml', metadataXml };
    // Adding is sensitive: without a recent second factor, "Verify it's you" first, nothing added.
    s.clock.advance(6 * MINUTE);
    const first = await support.b.submit('/admin/sso', '/admin/sso', add);
    expect(first.statusCode).toBe(303);
    expect(first.headers.location).toBe('/admin/verify?next=%2Fadmin%2Fsso');
    expect(await s.rt.federation.list()).toHaveLength(0);
    const verified = await reverify(s, support, String(first.headers.location), '/admin/sso');
    expect(verified.headers.location).toBe('/admin/sso');

    const added = await support.b.submit('/admin/sso', '/admin/sso', add);
    expect(added.statusCode).toBe(200);
    const [conf] = await s.rt.federation.list();
    if (!conf) throw new Error('not added');
    const metadataUrl = `${s.rt.environment.idp.publicUrl}/sso/${conf.id}/metadata`;
    expect(added.payload).toContain(`Added Acme Entra ID. Give the firm our SP metadata URL ${metadataUrl}.`);
    expect(added.payload).toContain(`data-idp="${conf.id}"`);
    expect(added.payload).toContain(`href="${metadataUrl}"`);
    expect(added.payload).toContain(`/sso/saml/${conf.id}/acs`);
    expect(conf.settings).toMatchObject({ protocol: 'saml', entityId: 'https://idp.acme.example/saml' });

    // A key rollover at the IdP: "Update metadata" replaces its side in place, ours stays.
    expect(added.payload).toContain(`action="/admin/sso/${conf.id}/metadata"`);
    const rolled = createTestSamlIdp('https://idp.acme.example/saml', 'https://login.acme.example/sso');
    const updateUrl = `/admin/sso/${conf.id}/metadata`;
    const blank = await support.b.submit('/admin/sso', updateUrl, { metadataXml: ' ' });
    expect(blank.statusCode).toBe(400);
    expect(blank.payload).toContain("Paste the IdP's new metadata XML.");
    const foreign = createTestSamlIdp('https://idp.other.example/saml', 'https://idp.other.example/sso');
    const wrongEntity = await support.b.submit('/admin/sso', updateUrl, { metadataXml: foreign.metadataXml });
    expect(wrongEntity.statusCode).toBe(400);
    expect(wrongEntity.payload).toContain(
      'The metadata is for entity https://idp.other.example/saml; this configuration is for https://idp.acme.example/saml',
    );
    expect(wrongEntity.payload).toContain('entityID=&quot;https://idp.other.example/saml&quot;');
    const updated = await support.b.submit('/admin/sso', updateUrl, {
      metadataXml: `${rolled.metadataXml}\n<!-- ${'padding '.repeat(20_000)}-->`,
    });
    expect(updated.statusCode).toBe(200);
    expect(updated.payload).toContain(
      'Updated the metadata of Acme Entra ID: SSO URL now https://login.acme.example/sso, 1 signing certificate(s) added, 1 removed. Our SP metadata and ACS URLs are unchanged.',
    );
    expect(await s.rt.federation.show(conf.id)).toMatchObject({
      sp: conf.sp,
      settings: { ssoUrl: 'https://login.acme.example/sso', metadataSource: 'pasted in the Support console' },
    });
    // Sensitive as adding: an old second factor sends the administrator to "Verify it's you" first.
    s.clock.advance(6 * MINUTE);
    const stale = await support.b.submit('/admin/sso', updateUrl, { metadataXml: idp.metadataXml });
    expect(stale.statusCode).toBe(303);
    expect(stale.headers.location).toBe('/admin/verify?next=%2Fadmin%2Fsso');
    expect((await s.rt.federation.show(conf.id))?.settings).toMatchObject({ ssoUrl: 'https://login.acme.example/sso' });
    await reverify(s, support, String(stale.headers.location), '/admin/sso');

    // The service's refusals, on the page next to the form, the values kept.
    const second = await support.b.submit('/admin/sso', '/admin/sso', { ...add, name: 'Another' });
    expect(second.statusCode).toBe(400);
    expect(second.payload).toContain('Acme Securities already has an identity provider.');
    expect(second.payload).toContain('value="Another"');
    const garbage = await support.b.submit('/admin/sso', '/admin/sso', {
      ...add,
      firmId: s.firmB.id,
      metadataXml: '<html>no</html>',
    });
    expect(garbage.statusCode).toBe(400);
    expect(garbage.payload).toContain('The metadata has no EntityDescriptor with an IDPSSODescriptor.');
    expect(garbage.payload).toContain('&lt;html>no&lt;/html>');
    const secret = 'do-not-echo-this-secret';
    const oidcForm = {
      firmId: s.firmB.id,
      name: 'Birch Okta',
      protocol: 'oidc',
      issuer: 'http://idp.birch.example',
      clientId: 'traqs',
      clientSecret: secret,
      userClaim: 'email',
    };
    const oidc = await support.b.submit('/admin/sso', '/admin/sso', oidcForm);
    expect(oidc.statusCode).toBe(400);
    expect(oidc.payload).toContain('The issuer must use https.');
    expect(oidc.payload).not.toContain(secret);
    const tooLong = await support.b.submit('/admin/sso', '/admin/sso', { ...add, name: 'x'.repeat(201) });
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.payload).toContain('At most 200 characters.');
    // Over this route's own limit: 413 naming that limit, not the 64 KiB of the other forms.
    const huge = await support.b.submit('/admin/sso', '/admin/sso', { ...add, metadataXml: 'x'.repeat(1100 * 1024) });
    expect(huge.statusCode).toBe(413);
    expect(huge.payload).toContain('Request bodies are limited to 1024 KiB.');
    expect(await s.rt.federation.list()).toHaveLength(1);

    // An operations user has no such permission: 403 to read, add and remove, and nothing changes.
    const ops = await staffMember(s, 'ops@acme.example', ['operations']);
    expect((await ops.b.get('/admin')).payload).not.toContain('href="/admin/sso"');
    expect((await ops.b.get('/admin/sso')).statusCode).toBe(403);
    const csrf = csrfFrom((await ops.b.get('/admin')).payload);
    expect((await ops.b.post('/admin/sso', { _csrf: csrf, ...add, firmId: s.firmB.id })).statusCode).toBe(403);
    expect((await ops.b.post(`/admin/sso/${conf.id}/remove`, { _csrf: csrf })).statusCode).toBe(403);
    const opsUpdate = await ops.b.post(`/admin/sso/${conf.id}/metadata`, { _csrf: csrf, metadataXml: idp.metadataXml });
    expect(opsUpdate.statusCode).toBe(403);
    expect((await s.rt.federation.show(conf.id))?.settings).toMatchObject({ ssoUrl: 'https://login.acme.example/sso' });
    expect(await s.rt.federation.list()).toHaveLength(1);

    const removed = await support.b.submit('/admin/sso', `/admin/sso/${conf.id}/remove`, {});
    expect(removed.statusCode).toBe(200);
    expect(removed.payload).toContain('Identity provider removed');
    expect(removed.payload).toContain('No identity providers.');
    expect(await s.rt.federation.list()).toHaveLength(0);
    const gone = await support.b.submit('/admin/sso', `/admin/sso/${conf.id}/remove`, {});
    expect(gone.statusCode).toBe(404);
    // OpenID Connect: the redirect URI to register at the firm's provider; the secret never shown.
    const birch = await support.b.submit('/admin/sso', '/admin/sso', {
      ...oidcForm,
      issuer: 'https://idp.birch.example',
    });
    expect(birch.statusCode).toBe(200);
    const [birchConf] = await s.rt.federation.list();
    expect(birch.payload).toContain(`${s.rt.environment.idp.publicUrl}/sso/oidc/${birchConf?.id}/callback`);
    expect(birch.payload).not.toContain(secret);

    const events = await s.rt.store.repos.audit.listEvents({ limit: 200 });
    const lifecycle = events.filter(
      (e) => e.action.startsWith('system.idp.lifecycle.') && e.outcome === 'success' && e.details.includes(conf.id),
    );
    expect(lifecycle.map((e) => [e.action, e.actor_id, e.target_id])).toEqual(
      expect.arrayContaining([
        ['system.idp.lifecycle.create', support.user.user.id, s.firm.id],
        ['system.idp.lifecycle.update', support.user.user.id, s.firm.id],
        ['system.idp.lifecycle.delete', support.user.user.id, s.firm.id],
      ]),
    );
    expect(lifecycle).toHaveLength(3);
    for (const e of lifecycle) expect(JSON.parse(String(e.details))).toMatchObject({ idp: conf.id, via: 'console' });
    expect(
      events.some(
        (e) => e.action.startsWith('system.idp.') && e.outcome === 'denied' && e.actor_id === ops.user.user.id,
      ),
    ).toBe(true);
  });
  it('the service, not the page, refuses an action outside the role', async () => {
    const target = await activateUser(s, 'someone@acme.example');
    const ops = await staffMember(s, 'ops@acme.example', ['operations']);
    const page = await ops.b.get(`/admin/users/${target.user.id}`);
    expect(page.payload).not.toContain('Reset all methods');
    const forced = await ops.b.post(`/admin/users/${target.user.id}/reset-factors`, { _csrf: csrfFrom(page.payload) });
    expect(forced.statusCode).toBe(403);
    expect(await s.rt.store.repos.factors.listActiveFactors(target.user.id)).toHaveLength(1);
    const denied = await s.rt.store.repos.audit.listEvents({ targetId: target.user.id, limit: 20 });
    expect(denied.some((e) => e.outcome === 'denied' && e.actor_id === ops.user.user.id)).toBe(true);
    expect((await ops.b.get('/admin/support')).statusCode).toBe(403);
  });
});
