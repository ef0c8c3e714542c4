import { afterEach, describe, expect, it } from 'vitest';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import { createBrowser, csrfFrom, signInWithPages } from './helpers/browser.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, PASSWORD, text } from './helpers/users.ts';

let s: TestStack;
afterEach(async () => {
  await s?.close();
});

/** A full API sign-in from a given browser (user agent). */
async function signInFrom(u: ActiveUser, userAgent: string) {
  const post = async (url: string, payload: object) =>
    (await s.app.inject({ method: 'POST', url, payload, headers: { 'user-agent': userAgent } })).json() as Record<
      string,
      unknown
    >;
  const r = await post('/api/v1/authn', { username: u.login, password: PASSWORD });
  s.clock.advance(30_000);
  const ok = await post(`/api/v1/authn/factors/${u.factorId}/verify`, {
    stateToken: text(r, 'stateToken'),
    passCode: generateTotp({ secret: u.secret, now: s.clock() }),
  });
  expect(ok.status).toBe('SUCCESS');
}

async function mails(login: string, subject: RegExp) {
  return (await s.rt.store.repos.outbox.listRecentMessages(100, login)).filter((m) => subject.test(m.subject));
}

describe('new sign-in notification and "this wasn\'t me"', () => {
  it('emails on a sign-in from a browser not seen before, not on a known one', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'notify@acme.example');
    await signInFrom(u, 'Browser A');
    expect(await mails(u.login, /New sign-in/)).toHaveLength(1);
    await signInFrom(u, 'Browser A');
    expect(await mails(u.login, /New sign-in/)).toHaveLength(1);
    await signInFrom(u, 'Browser B');
    const notes = await mails(u.login, /New sign-in/);
    expect(notes).toHaveLength(2);
    expect(notes[0]?.text_body).toContain('Browser B');
    expect(notes[0]?.text_body).toContain("This wasn't me");
  });

  it('files a report from the link: signs the user out everywhere, once, and shows what happens next', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'victim@acme.example');
    const browser = createBrowser(s);
    await signInWithPages(s, browser, u, 'traqs_ntf_idp_sid');
    expect((await browser.get('/')).statusCode).toBe(200);

    await signInFrom(u, 'Attacker Browser');
    const [note] = await mails(u.login, /New sign-in/);
    const link = /https?:\/\/\S+\/report\?\S+/.exec(note?.text_body ?? '')?.[0];
    if (!link) throw new Error('no report link');
    const path = link.slice(link.indexOf('/report'));

    // Opening the link only shows a page (mail scanners); the session still works.
    const page = await browser.get(path);
    expect(page.statusCode).toBe(200);
    expect(page.payload).toContain('sign you out of every browser');
    expect((await browser.get('/')).statusCode).toBe(200);

    const url = new URL(link);
    const done = await browser.post('/report', {
      _csrf: csrfFrom(page.payload),
      token: url.searchParams.get('token') ?? '',
      about: url.searchParams.get('about') ?? '',
    });
    expect(done.statusCode).toBe(200);
    expect(done.payload).toContain('signed out everywhere');

    const home = await browser.get('/');
    expect(home.statusCode).toBe(303);
    const reports = await s.rt.store.repos.reports.listReports({ status: 'open' });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ user_id: u.user.id, source: 'newSignIn' });
    const events = await s.rt.store.repos.audit.listEvents({ action: 'user.account.report_suspicious_activity' });
    expect(events).toHaveLength(1);

    // Single use.
    const again = await browser.get(path);
    expect(again.statusCode).toBe(410);
  });

  it('expires report links after 7 days', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'week@acme.example');
    await signInFrom(u, 'Elsewhere');
    const [note] = await mails(u.login, /New sign-in/);
    const path = /\/report\?\S+/.exec(note?.text_body ?? '')?.[0] ?? '';
    s.clock.advance(7 * 86_400_000 + 1);
    const res = await s.app.inject({ method: 'GET', url: path });
    expect(res.statusCode).toBe(410);
    expect(res.payload).toContain('7 days');
  });
});

describe('device identity for API sign-ins', () => {
  it('uses Okta context.deviceToken when given; a copied user agent from another address is still new', async () => {
    s = await createTestStack();
    const u = await activateUser(s, 'device@acme.example');
    const signIn = async (userAgent: string, ip: string, deviceToken?: string) => {
      const headers = { 'user-agent': userAgent };
      const r = await s.app.inject({
        method: 'POST',
        url: '/api/v1/authn',
        remoteAddress: ip,
        headers,
        payload: { username: u.login, password: PASSWORD, ...(deviceToken ? { context: { deviceToken } } : {}) },
      });
      s.clock.advance(30_000);
      const ok = await s.app.inject({
        method: 'POST',
        url: `/api/v1/authn/factors/${u.factorId}/verify`,
        remoteAddress: ip,
        headers,
        payload: {
          stateToken: text(r.json(), 'stateToken'),
          passCode: generateTotp({ secret: u.secret, now: s.clock() }),
        },
      });
      expect(text(ok.json(), 'status')).toBe('SUCCESS');
    };
    await signIn('Script/1.0', '198.51.100.1', 'device-token-one');
    const count = async () => (await mails(u.login, /New sign-in/)).length;
    const base = await count();
    // Same device token from another address and user agent: a known device.
    await signIn('Script/2.0', '198.51.100.2', 'device-token-one');
    expect(await count()).toBe(base);
    // No device token: the victim's user agent copied from another address is a new device.
    await signIn('Victim UA', '198.51.100.3');
    await signIn('Victim UA', '198.51.100.4');
    expect(await count()).toBe(base + 2);
  });
});
