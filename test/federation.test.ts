import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PRINCIPAL, createAdminServiceFor } from '../src/admin/service.ts';
import type { IdentityProviderView } from '../src/federation/service.ts';
import { type Browser, createBrowser, csrfFrom } from './helpers/browser.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import {
  createTestSamlIdp,
  MFA_CLASS,
  opensslKeyAndCertificate,
  provisionFederatedUser,
  type ResponseOptions,
  samlRoundTrip,
  startFederatedSignIn,
  type TestSamlIdp,
} from './helpers/federation.ts';
import { createTestClock, createTestStack, type TestStack } from './helpers/stack.ts';
import { postJson } from './helpers/users.ts';

/**
 * Issue #8 over HTTP: a firm's SAML IdP (samlify, independent of our node-saml SP) signs users in,
 * and every forged, replayed, stale or misdirected answer is refused with its own page.
 */
describeEachBackend(
  'federated sign-in over SAML',
  (backend: BackendHandle) => {
    let s: TestStack;
    let idpA: TestSamlIdp;
    let idpB: TestSamlIdp;
    let confA: IdentityProviderView;
    let confB: IdentityProviderView;
    let spMetadataA: string;
    let spMetadataB: string;
    let n = 0;

    beforeAll(async () => {
      // node-saml checks assertion times against the real clock: the stack's clock follows it.
      s = await createTestStack({ store: backend.store(), clock: createTestClock(Date.now()) });
      const firmB = await s.rt.accounts.createFirm('Beta Brokers');
      if (!firmB.ok) throw new Error(firmB.message);
      idpA = createTestSamlIdp('https://idp.acme.example/saml', 'https://idp.acme.example/sso');
      idpB = createTestSamlIdp('https://idp.beta.example/saml', 'https://idp.beta.example/sso');
      const a = await s.rt.federation.add({
        protocol: 'saml',
        firmId: s.firm.id,
        name: 'Acme IdP',
        metadataXml: idpA.metadataXml,
      });
      const b = await s.rt.federation.add({
        protocol: 'saml',
        firmId: firmB.firm.id,
        name: 'Beta IdP',
        metadataXml: idpB.metadataXml,
      });
      if (!a.ok || !b.ok) throw new Error('adding the identity providers failed');
      confA = a.value;
      confB = b.value;
      spMetadataA = (await s.app.inject({ url: `/sso/${confA.id}/metadata` })).payload;
      spMetadataB = (await s.app.inject({ url: `/sso/${confB.id}/metadata` })).payload;
    }, 30_000);
    afterAll(async () => {
      await s?.close();
    });

    /** A provisioned user switched to federated sign-in by support, in firm A unless told. */
    async function federatedUser(firmId?: string) {
      n += 1;
      const login = `fed.user${n}@acme.example`;
      const user = await provisionFederatedUser(s.rt, { email: login, firmId: firmId ?? s.firm.id });
      return { id: user.id, login };
    }

    /** The whole round trip; returns the ACS answer and, if it redirected, the finish answer. */
    async function roundTrip(
      browser: Browser,
      username: string,
      options: Partial<ResponseOptions> & { idp?: TestSamlIdp; spMetadata?: string; acsId?: string } = {},
    ) {
      const { idp = idpA, spMetadata = spMetadataA, acsId = confA.id, ...response } = options;
      return samlRoundTrip(browser, idp, spMetadata, acsId, username, response);
    }

    it('publishes our SP metadata: entity id, ACS URL, signing certificate; 404 for an unknown id', async () => {
      expect(spMetadataA).toContain(`entityID="${confA.sp.entityId}"`);
      expect(spMetadataA).toContain(`Location="${confA.sp.acsUrl}"`);
      expect(spMetadataA).toContain('<ds:X509Certificate>');
      expect(spMetadataA).toContain('WantAssertionsSigned="true"');
      const unknown = await s.app.inject({ url: '/sso/0oaNOSUCHIDP/metadata' });
      expect(unknown.statusCode).toBe(404);
    });

    it('refuses a second IdP for a firm, an http issuer, and metadata that is not SAML metadata', async () => {
      const again = await s.rt.federation.add({
        protocol: 'saml',
        firmId: s.firm.id,
        name: 'x',
        metadataXml: idpA.metadataXml,
      });
      expect(again).toEqual({ ok: false, detail: 'Acme Securities already has an identity provider.' });
      const firm = await s.rt.accounts.createFirm('Delta Dealers');
      if (!firm.ok) throw new Error(firm.message);
      const base = { firmId: firm.firm.id, name: 'x' };
      const http = await s.rt.federation.add({
        ...base,
        protocol: 'oidc',
        issuer: 'http://op.delta.example',
        clientId: 'c',
        clientSecret: 's',
      });
      expect(http).toEqual({ ok: false, detail: 'The issuer must use https.' });
      const junk = await s.rt.federation.add({ ...base, protocol: 'saml', metadataXml: '<html>no</html>' });
      expect(junk).toMatchObject({ ok: false, detail: expect.stringContaining('IDPSSODescriptor') });
    });

    it('routes a federated user to the IdP whatever password is typed, and signs them in with amr fed (+ mfa)', async () => {
      const user = await federatedUser();
      const browser = createBrowser(s);
      const { acs, url } = await roundTrip(browser, user.login);
      // Our AuthnRequest went to the SSO URL of the metadata, signed (samlify verified it).
      expect(url.startsWith('https://idp.acme.example/sso?SAMLRequest=')).toBe(true);
      expect(url).toContain('&Signature=');
      expect(acs.statusCode).toBe(303);
      const done = await browser.get(String(acs.headers.location));
      expect(done.statusCode).toBe(303);
      expect(done.headers.location).toBe('/');
      expect(browser.jar.has('traqs_ntf_idp_sid')).toBe(true);
      const profile = await browser.get('/');
      expect(profile.statusCode).toBe(200);
      expect(profile.payload).toContain(user.login);
      // The profile says who manages sign-in instead of offering a password or methods to change.
      expect(profile.payload).toContain("You sign in through your firm's single sign-on");
      expect(profile.payload).not.toContain('Add a security method');
      expect(profile.payload).not.toContain('href="/profile/password"');
      // Never both (FAQ): no local method can be added to a federated account.
      const add = await browser.post('/profile/factors/add', { provider: 'GOOGLE', _csrf: csrfFrom(profile.payload) });
      expect(String(add.headers.location ?? '')).not.toContain('/activate');
      expect(await s.rt.store.repos.factors.listFactors(user.id)).toEqual([]);

      const mfa = createBrowser(s);
      const second = await roundTrip(mfa, user.login, { classRef: MFA_CLASS });
      expect((await mfa.get(String(second.acs.headers.location))).statusCode).toBe(303);
      const events = await s.rt.store.repos.audit.listEvents({ targetId: user.id, action: 'user.authentication.sso' });
      const amrs = events.filter((e) => e.outcome === 'success').map((e) => JSON.parse(e.details).amr);
      expect(amrs).toEqual(expect.arrayContaining([['fed'], ['fed', 'mfa']]));
    });

    it('refuses a response signed with a key not in the metadata', async () => {
      const user = await federatedUser();
      const forger = idpA.withKey(opensslKeyAndCertificate('forger'));
      const { acs } = await roundTrip(createBrowser(s), user.login, { idp: forger });
      expect(acs.statusCode).toBe(401);
      expect(acs.payload).toContain('data-reason="signature_invalid"');
      expect(acs.payload).toContain("contact your firm's Identity and Access Management team");
    });

    it('refuses an assertion for another audience', async () => {
      const user = await federatedUser();
      const { acs } = await roundTrip(createBrowser(s), user.login, { audience: 'https://other-sp.example/metadata' });
      expect(acs.statusCode).toBe(401);
      expect(acs.payload).toContain('data-reason="audience_mismatch"');
    });

    it('refuses an assertion whose bearer Recipient is another ACS (SAML Profiles §4.1.4.3)', async () => {
      const user = await federatedUser();
      const { acs } = await roundTrip(createBrowser(s), user.login, { recipient: 'https://other-sp.example/acs' });
      expect(acs.statusCode).toBe(401);
      expect(acs.payload).toContain('data-reason="audience_mismatch"');
    });

    it('refuses an expired assertion (outside the one-minute skew)', async () => {
      const user = await federatedUser();
      const { acs } = await roundTrip(createBrowser(s), user.login, { issuedAt: Date.now() - 7 * 60_000 });
      expect(acs.statusCode).toBe(401);
      expect(acs.payload).toContain('data-reason="expired"');
    });

    it('refuses a replayed assertion, and a finish from another browser', async () => {
      const user = await federatedUser();
      const browser = createBrowser(s);
      const { acs, answer } = await roundTrip(browser, user.login);
      expect(acs.statusCode).toBe(303);
      const again = await browser.post(`/sso/saml/${confA.id}/acs`, { SAMLResponse: answer.samlResponse });
      expect(again.statusCode).toBe(401);
      expect(again.payload).toContain('data-reason="replayed"');
      // Login CSRF: the verified answer does not sign in a browser that did not start it.
      const stranger = await createBrowser(s).get(String(acs.headers.location));
      expect(stranger.statusCode).toBe(400);
      expect(stranger.payload).toContain('data-reason="request_mismatch"');
      expect((await browser.get(String(acs.headers.location))).statusCode).toBe(303);
      // Once used, the finish link signs nobody in again (the binding cookie is gone too).
      expect((await browser.get(String(acs.headers.location))).statusCode).toBe(400);
    });

    it('refuses an answer to a request we never sent (InResponseTo)', async () => {
      const user = await federatedUser();
      const { acs } = await roundTrip(createBrowser(s), user.login, {
        inResponseTo: '_0123456789abcdef0123456789abcdef',
      });
      expect(acs.statusCode).toBe(400);
      expect(acs.payload).toContain('data-reason="request_mismatch"');
    });

    it("refuses firm B's IdP asserting a user of firm A", async () => {
      const victim = await federatedUser();
      const firmB = await s.rt.store.repos.firms.findFirmByName('Beta Brokers');
      const insider = await federatedUser(firmB?.id);
      const browser = createBrowser(s);
      // Firm B's own user starts a sign-in at firm B's IdP, which answers with firm A's user.
      const url = await startFederatedSignIn(browser, insider.login);
      expect(url.startsWith('https://idp.beta.example/sso?')).toBe(true);
      const answer = await idpB.respond(spMetadataB, url, { nameId: victim.login });
      const acs = await browser.post(`/sso/saml/${confB.id}/acs`, { SAMLResponse: answer.samlResponse });
      expect(acs.statusCode).toBe(403);
      expect(acs.payload).toContain('data-reason="wrong_firm"');
      // Nor does firm B's response pass at firm A's ACS.
      const again = await roundTrip(createBrowser(s), insider.login, {
        idp: idpB,
        spMetadata: spMetadataB,
        acsId: confA.id,
        nameId: victim.login,
      });
      expect(again.acs.statusCode).toBeGreaterThanOrEqual(400);
      expect(again.acs.statusCode).toBeLessThan(500);
    });

    it('refuses a user who is not provisioned, and a suspended one', async () => {
      const user = await federatedUser();
      const { acs } = await roundTrip(createBrowser(s), user.login, { nameId: 'nobody@acme.example' });
      expect(acs.statusCode).toBe(403);
      expect(acs.payload).toContain('data-reason="user_not_provisioned"');
      expect(acs.payload).toContain(s.config.contacts.operationsPhone);

      const suspended = await createAdminServiceFor(s.rt).suspendUser(CLI_PRINCIPAL, user.id);
      expect(suspended.ok).toBe(true);
      // Suspended users are not routed either; their IdP answer is refused at the ACS.
      const browser = createBrowser(s);
      const url = await startFederatedSignIn(browser, user.login);
      const answer = await idpA.respond(spMetadataA, url, { nameId: user.login });
      const refused = await browser.post(`/sso/saml/${confA.id}/acs`, { SAMLResponse: answer.samlResponse });
      expect(refused.statusCode).toBe(403);
      expect(refused.payload).toContain('data-reason="suspended"');
    });

    it('tells a federated user whose firm has no identity provider whom to contact', async () => {
      const firm = await s.rt.accounts.createFirm('Epsilon Equities');
      if (!firm.ok) throw new Error(firm.message);
      const user = await federatedUser(firm.firm.id);
      const res = await createBrowser(s).submit('/signin', '/signin', { username: user.login, password: 'x' });
      expect(res.statusCode).toBe(404);
      expect(res.payload).toContain('data-reason="no_idp"');
      expect(res.payload).toContain(s.config.contacts.techSupportPhone);
    });

    it('never accepts a password of a federated user through the Authentication API', async () => {
      const user = await federatedUser();
      const r = await postJson(s, '/api/v1/authn', {
        username: user.login,
        password: 'correct horse battery staple 42',
      });
      expect(r.status).toBe(401);
      expect(r.body.errorCode).toBe('E0000004');
      expect(r.body.errorSummary).toBe('Authentication failed');
      // Nothing to guess, nothing counted: no lockout of a federated user by strangers.
      expect((await s.rt.store.repos.users.findUserById(user.id))?.failed_attempts).toBe(0);
    });

    it('shows a bad-gateway page when an OpenID provider cannot be reached, and 4xx for bad input', async () => {
      const firm = await s.rt.accounts.createFirm('Gamma Capital');
      if (!firm.ok) throw new Error(firm.message);
      const added = await s.rt.federation.add({
        protocol: 'oidc',
        firmId: firm.firm.id,
        name: 'Gamma OP',
        issuer: 'http://127.0.0.1:9/oauth2',
        clientId: 'traqs',
        clientSecret: 'a client secret of some length',
      });
      expect(added.ok).toBe(true);
      const user = await federatedUser(firm.firm.id);
      const res = await createBrowser(s).submit('/signin', '/signin', { username: user.login, password: '' });
      expect(res.statusCode).toBe(502);
      expect(res.payload).toContain('data-reason="idp_unreachable"');

      expect((await s.app.inject({ method: 'POST', url: `/sso/saml/${confA.id}/acs`, payload: {} })).statusCode).toBe(
        400,
      );
      const junk = await s.app.inject({
        method: 'POST',
        url: `/sso/saml/${confA.id}/acs`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'SAMLResponse=PG5vdCB4bWw%2B',
      });
      expect(junk.statusCode).toBe(400);
      expect((await s.app.inject({ url: '/sso/finish?request=' })).statusCode).toBe(400);
      expect(
        (await s.app.inject({ url: `/sso/oidc/${added.ok ? added.value.id : ''}/callback?state=x&code=y` })).statusCode,
      ).toBe(400);
    });
  },
  { fresh: 'suite' },
);
