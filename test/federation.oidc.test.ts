import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityProviderView } from '../src/federation/service.ts';
import { provisionFederatedUser, startTestOpenIdProvider } from './helpers/federation.ts';
import { createHttpBrowser, type HttpBrowser } from './helpers/http-browser.ts';
import { type OauthStack, startOauthStack } from './helpers/oauth.ts';
import { freePorts } from './helpers/product-process.ts';

/**
 * Issue #8 over OpenID Connect: a separate oidc-provider is the firm's OpenID provider (one per
 * firm, as two clients of one provider). Code flow with PKCE, state and nonce; a replayed or
 * foreign callback and a user of another firm are refused.
 */
describe('federated sign-in over OpenID Connect', () => {
  let s: OauthStack;
  let op: { issuer: string; close(): Promise<void> };
  let confA: IdentityProviderView;
  let userA = '';
  let userB = '';
  let userMfa = '';

  beforeAll(async () => {
    s = await startOauthStack();
    const [opPort] = (await freePorts(1)) as [number];
    const firmB = await s.rt.accounts.createFirm('Beta Brokers');
    if (!firmB.ok) throw new Error(firmB.message);
    const add = async (firmId: string, clientId: string) => {
      const r = await s.rt.federation.add({
        protocol: 'oidc',
        firmId,
        name: `OP ${clientId}`,
        issuer: `http://localhost:${opPort}`,
        clientId,
        clientSecret: `${clientId}-secret-0123456789`,
      });
      if (!r.ok) throw new Error(r.detail);
      return r.value;
    };
    confA = await add(s.firm.id, 'traqs-a');
    const confB = await add(firmB.firm.id, 'traqs-b');
    op = await startTestOpenIdProvider(
      opPort,
      [confA, confB].map((c) => ({
        clientId: c.settings.protocol === 'oidc' ? c.settings.clientId : '',
        secret: `${c.settings.protocol === 'oidc' ? c.settings.clientId : ''}-secret-0123456789`,
        redirectUri: c.sp.redirectUri,
      })),
      // The firm's OP says Mona signed in with a second factor (RFC 8176), and no one else.
      (login) => (login === 'mona@acme.example' ? ['pwd', 'otp', 'mfa'] : undefined),
    );
    userA = (await provisionFederatedUser(s.rt, { email: 'olivia@acme.example', firmId: s.firm.id })).login;
    userMfa = (await provisionFederatedUser(s.rt, { email: 'mona@acme.example', firmId: s.firm.id })).login;
    userB = (await provisionFederatedUser(s.rt, { email: 'bert@beta.example', firmId: firmB.firm.id })).login;
  }, 30_000);
  afterAll(async () => {
    await op?.close();
    await s?.close();
  });

  /** Our sign-in form, then the OP's login and consent pages; returns our callback URL. */
  async function atOp(browser: HttpBrowser, username: string, opLogin: string): Promise<string> {
    const page = await browser.submit(`${s.idpUrl}/signin`, '/signin', { username, password: 'ignored' });
    expect(page.status).toBe(200);
    const href = /<a class="button" href="([^"]+)" data-auto-follow/.exec(page.body)?.[1]?.replace(/&amp;/g, '&') ?? '';
    expect(href.startsWith(`${op.issuer}/auth?`)).toBe(true);
    expect(new URL(href).searchParams.get('code_challenge_method')).toBe('S256');
    let { answer } = await browser.follow(href);
    const forms: Record<string, string>[] = [{ login: opLogin, password: 'firm password' }, {}];
    for (const form of forms) {
      const action = /<form[^>]*action="([^"]+)"/.exec(answer.body)?.[1] ?? '';
      const prompt = /name="prompt" value="([^"]+)"/.exec(answer.body)?.[1] ?? '';
      const posted = await browser.post(new URL(action, answer.url).href, { prompt, ...form });
      ({ answer } = await browser.follow(posted.location ?? '', `${s.idpUrl}/sso/oidc/`));
      if (answer.location?.startsWith(`${s.idpUrl}/sso/oidc/`)) return answer.location;
    }
    throw new Error(`the OP did not send the browser back: ${answer.status} ${answer.body.slice(0, 300)}`);
  }

  it('signs a user in with amr fed; the callback cannot be replayed or used by another browser', async () => {
    const browser = createHttpBrowser();
    const callback = await atOp(browser, userA, userA);
    expect(new URL(callback).pathname).toBe(`/sso/oidc/${confA.id}/callback`);
    const stranger = await createHttpBrowser().get(callback);
    expect(stranger.status).toBe(400);
    expect(stranger.body).toContain('data-reason="request_mismatch"');
    const done = await browser.get(callback);
    expect(done.status).toBe(303);
    expect(done.location).toBe(`${s.idpUrl}/`);
    const events = await s.rt.store.repos.audit.listEvents({ action: 'user.authentication.sso' });
    expect(events.some((e) => e.outcome === 'success' && JSON.parse(e.details).amr.join() === 'fed')).toBe(true);
    const replay = await browser.get(callback);
    expect(replay.status).toBe(400);
  });

  it('signs a user in with amr fed and mfa when the firm’s OP reports a second factor', async () => {
    const browser = createHttpBrowser();
    const done = await browser.get(await atOp(browser, userMfa, userMfa));
    expect(done.status).toBe(303);
    const events = await s.rt.store.repos.audit.listEvents({ action: 'user.authentication.sso' });
    const mona = await s.rt.store.repos.users.findUserByLogin(userMfa);
    const signedIn = events.find((e) => e.outcome === 'success' && e.target_id === mona?.id);
    // RFC 8176: the OP's `mfa` carries over; without it (Olivia, above) the sign-in is `fed` only.
    expect(JSON.parse(signedIn?.details ?? '{}').amr).toEqual(['fed', 'mfa']);
  });

  it('shows the IdP’s refusal (error=access_denied) as its own page', async () => {
    const browser = createHttpBrowser();
    const page = await browser.submit(`${s.idpUrl}/signin`, '/signin', { username: userA, password: '' });
    const href = /<a class="button" href="([^"]+)" data-auto-follow/.exec(page.body)?.[1]?.replace(/&amp;/g, '&') ?? '';
    const state = new URL(href).searchParams.get('state') ?? '';
    const refused = await browser.get(`${confA.sp.redirectUri}?error=access_denied&state=${encodeURIComponent(state)}`);
    expect(refused.status).toBe(401);
    expect(refused.body).toContain('data-reason="idp_error"');
  });

  it("refuses firm B's client vouching for a user of firm A", async () => {
    const browser = createHttpBrowser();
    const callback = await atOp(browser, userB, userA);
    const refused = await browser.get(callback);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('data-reason="wrong_firm"');
  });
});
