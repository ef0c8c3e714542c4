import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import { addMonths } from '../src/oauth/provider.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { createHttpBrowser } from './helpers/http-browser.ts';
import { authorize, discover, type OauthStack, startOauthStack } from './helpers/oauth.ts';
import { type ActiveUser, activateUser, freshCode, postJson } from './helpers/users.ts';

/**
 * The authorization server with real clients: openid-client (discovery, code + PKCE, ID token
 * validation, userinfo), the programmatic refresh-token flow of `traqs-api`, and what an attacker
 * or a careless script would try against the token endpoint.
 */

describeEachBackend(
  'authorization server',
  (backend: BackendHandle) => {
    let s: OauthStack;
    let alice: ActiveUser;
    let portal: oidc.Configuration;
    let api: oidc.Configuration;

    beforeAll(async () => {
      s = await startOauthStack({ store: backend.store() });
      alice = await activateUser(s, 'alice@acme.example');
      await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
      portal = await discover(s, 'portal');
      api = await discover(s, 'traqs-api');
    });
    afterAll(async () => {
      await s?.close();
    });

    const portalParams = () => ({ redirect_uri: s.portalCallback, scope: 'openid profile email' });
    const apiParams = () => ({
      redirect_uri: s.programmaticCallback,
      scope: 'openid offline_access download',
      resource: s.downloadUrl,
      // OpenID Connect Core §11: offline_access (a refresh token) is granted only with prompt=consent.
      prompt: 'login consent',
      max_age: '0',
    });

    async function jwks() {
      const res = await fetch(`${s.issuer}/v1/keys`);
      return createLocalJWKSet(await res.json());
    }

    const tokenRequest = (form: Record<string, string>) =>
      fetch(`${s.issuer}/v1/token`, { method: 'POST', body: new URLSearchParams(form) }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Record<string, unknown>,
      }));

    /** A fresh browser that signs in and gets a refresh token for `traqs-api`, as the Programmatic page does. */
    async function getRefreshToken(user: ActiveUser = alice) {
      const browser = createHttpBrowser();
      const flow = await authorize(s, browser, api, apiParams(), user);
      if (!flow.callbackUrl)
        throw new Error(
          `no code: ${flow.last.status} ${flow.last.url} -> ${(flow.last as { location?: string }).location} ${flow.last.body.slice(0, 400)}`,
        );
      const tokens = await oidc.authorizationCodeGrant(api, flow.callbackUrl, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
      });
      return { browser, tokens };
    }

    describe('discovery and Okta route names', () => {
      it('publishes the issuer under /oauth2/default with Okta endpoint names, code flow only', async () => {
        const meta = portal.serverMetadata();
        expect(meta.issuer).toBe(s.issuer);
        for (const [key, path] of [
          ['authorization_endpoint', '/v1/authorize'],
          ['token_endpoint', '/v1/token'],
          ['jwks_uri', '/v1/keys'],
          ['introspection_endpoint', '/v1/introspect'],
          ['revocation_endpoint', '/v1/revoke'],
          ['userinfo_endpoint', '/v1/userinfo'],
          ['end_session_endpoint', '/v1/logout'],
        ] as const) {
          expect(meta[key]).toBe(`${s.issuer}${path}`);
        }
        expect(meta.grant_types_supported).toEqual(['authorization_code', 'refresh_token']);
        expect(meta.response_types_supported).toEqual(['code']);
        expect(meta.code_challenge_methods_supported).toEqual(['S256']);
      });

      it('publishes an ES256 and an RS256 key with key ids, and no private parts', async () => {
        const res = await fetch(`${s.issuer}/v1/keys`);
        const body = (await res.json()) as { keys: Record<string, unknown>[] };
        expect(body.keys.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
        for (const k of body.keys) {
          expect(typeof k.kid).toBe('string');
          expect(k).not.toHaveProperty('d');
          expect(k).not.toHaveProperty('p');
        }
      });
    });

    describe('the portal client with openid-client', () => {
      it('signs in through our pages with code + PKCE; the ID token carries MFA; userinfo answers', async () => {
        const browser = createHttpBrowser();
        const flow = await authorize(s, browser, portal, portalParams(), alice);
        expect(flow.signedIn).toBe(true);
        expect(flow.callbackUrl).toBeDefined();
        const tokens = await oidc.authorizationCodeGrant(portal, flow.callbackUrl as URL, {
          pkceCodeVerifier: flow.verifier,
          expectedState: flow.state,
          expectedNonce: flow.nonce,
        });
        const claims = tokens.claims();
        expect(claims?.sub).toBe(alice.user.id);
        expect(claims?.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
        expect(claims?.acr).toBe('urn:okta:loa:2fa:any');
        expect(claims?.name).toBe('Test User');
        expect(decodeProtectedHeader(tokens.id_token ?? '').alg).toBe('RS256');
        const info = await oidc.fetchUserInfo(portal, tokens.access_token, alice.user.id);
        expect(info.email).toBe('alice@acme.example');
        expect(info.firm_id).toBe(s.firm.id);

        // Single sign-on: a second request in the same browser needs no sign-in.
        const again = await authorize(s, browser, portal, portalParams());
        expect(again.signedIn).toBe(false);
        expect(again.callbackUrl?.searchParams.get('code')).toBeTruthy();
      });

      it('ends single sign-on when the user signs out of the MFA profile', async () => {
        const browser = createHttpBrowser();
        expect((await authorize(s, browser, portal, portalParams(), alice)).signedIn).toBe(true);
        expect((await authorize(s, browser, portal, portalParams())).signedIn).toBe(false);
        const out = await browser.submit(`${s.idpUrl}/`, '/signout', {});
        expect(out.body).toContain('You have signed out.');
        // oidc-provider's own session cookie is still in the browser, but it no longer counts.
        const after = await authorize(s, browser, portal, portalParams());
        expect(after.callbackUrl).toBeUndefined();
        expect(after.last.url).toContain('/signin?for=portal');
      });

      it('refuses a code without its PKCE verifier, and a code used twice', async () => {
        const browser = createHttpBrowser();
        const flow = await authorize(s, browser, portal, portalParams(), alice);
        const code = flow.callbackUrl?.searchParams.get('code') ?? '';
        const basic = `Basic ${Buffer.from(`portal:${s.rt.keys.portalClientSecret}`).toString('base64')}`;
        const exchange = (extra: Record<string, string>) =>
          fetch(`${s.issuer}/v1/token`, {
            method: 'POST',
            headers: { authorization: basic },
            body: new URLSearchParams({
              grant_type: 'authorization_code',
              code,
              redirect_uri: s.portalCallback,
              ...extra,
            }),
          }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, string> }));
        const noVerifier = await exchange({});
        expect(noVerifier.status).toBe(400);
        expect(noVerifier.body.error).toBe('invalid_grant');
        // The failed attempt above does not burn the code; with the verifier it works once, then never.
        const ok = await exchange({ code_verifier: flow.verifier });
        expect(ok.status).toBe(200);
        const replay = await exchange({ code_verifier: flow.verifier });
        expect(replay.status).toBe(400);
        expect(replay.body.error).toBe('invalid_grant');
      });

      it('shows "App not assigned" (403) to a user not assigned to the portal, and issues no code', async () => {
        const bob = await activateUser(s, 'bob@acme.example');
        await s.rt.store.transaction(async (repos) => {
          await repos.users.unassignApp(bob.user.id, 'portal');
        });
        const browser = createHttpBrowser();
        const flow = await authorize(s, browser, portal, portalParams(), bob);
        expect(flow.callbackUrl).toBeUndefined();
        expect(flow.last.status).toBe(403);
        expect(flow.last.body).toContain('App not assigned');
      });
    });

    describe('programmatic refresh tokens (traqs-api)', () => {
      it('demands a new sign-in with MFA even inside a signed-in session, then issues a refresh token and an ES256 JWT', async () => {
        const browser = createHttpBrowser();
        // Signed in to the portal first…
        const first = await authorize(s, browser, portal, portalParams(), alice);
        expect(first.signedIn).toBe(true);
        // …the programmatic request still sends the user to sign in again (no single sign-on).
        const flow = await authorize(s, browser, api, { ...apiParams(), prompt: 'consent', max_age: '3600' });
        expect(flow.callbackUrl).toBeUndefined();
        expect(flow.last.url).toContain('/signin?for=programmatic');
        expect(flow.last.body).toContain('confirm it is you');

        const { tokens } = await getRefreshToken();
        expect(tokens.refresh_token).toMatch(/^[A-Za-z0-9_-]{43,}$/);
        expect(tokens.expires_in).toBe(3600);
        const { payload, protectedHeader } = await jwtVerify(tokens.access_token, await jwks(), {
          issuer: s.issuer,
          audience: s.downloadUrl,
        });
        expect(protectedHeader.alg).toBe('ES256');
        expect(payload.sub).toBe(alice.user.id);
        expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(3600);
        expect(payload.firm).toBe(s.firm.id);
        expect(payload.apps).toEqual(['download', 'portal']);
        expect(payload.entitlements).toEqual([]);
        expect(payload.scope).toBe('download');
        expect(payload.client_id).toBe('traqs-api');
      });

      it('stores only the hash of the refresh token, describes it, and mails the user', async () => {
        const { tokens } = await getRefreshToken();
        const token = tokens.refresh_token ?? '';
        const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(token));
        expect(row?.user_id).toBe(alice.user.id);
        expect(row?.expires_at).toBe(addMonths(row?.created_at ?? 0, 6));
        const dump = JSON.stringify(await s.rt.store.repos.oauth.listOidcModelsOfAccount(alice.user.id, s.clock()));
        expect(dump).not.toContain(token);
        const mail = await s.rt.store.repos.outbox.listRecentMessages(20, 'alice@acme.example');
        expect(mail.some((m) => m.template === 'refreshTokenIssued')).toBe(true);
        // The audit event says where the request came from (the request the code was exchanged in).
        const [issued] = await s.rt.store.repos.audit.listEvents({
          targetId: alice.user.id,
          action: 'oauth.refresh_token.issued',
          limit: 1,
        });
        expect(issued?.ip).toMatch(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/);
        expect(issued?.user_agent).toBeTruthy();
      });

      it('exchanges the refresh token for a 60-minute access token, again and again, without rotating it', async () => {
        const { tokens } = await getRefreshToken();
        const refresh = tokens.refresh_token ?? '';
        for (let i = 0; i < 2; i++) {
          const r = await tokenRequest({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'traqs-api' });
          expect(r.status).toBe(200);
          expect(r.body.token_type).toBe('Bearer');
          expect(r.body.expires_in).toBe(3600);
          // Not rotated: the same token keeps working on every machine that holds it.
          expect(r.body.refresh_token).toBeUndefined();
          expect(Number(r.body.refresh_token_expires_in)).toBeGreaterThan(180 * 86_400);
          const { payload } = await jwtVerify(String(r.body.access_token), await jwks(), { audience: s.downloadUrl });
          expect(payload.sub).toBe(alice.user.id);
        }
        // The JWT stops verifying after 60 minutes (a verifier with the clock moved on).
        const r = await tokenRequest({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'traqs-api' });
        const at = String(r.body.access_token);
        await expect(
          jwtVerify(at, await jwks(), { audience: s.downloadUrl, currentDate: new Date(Date.now() + 59 * 60_000) }),
        ).resolves.toBeTruthy();
        await expect(
          jwtVerify(at, await jwks(), { audience: s.downloadUrl, currentDate: new Date(Date.now() + 61 * 60_000) }),
        ).rejects.toThrow(/exp/);
        const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(refresh));
        expect(row?.last_used_at).not.toBeNull();
      });

      it("carries the user's current entitlements, and refuses a token whose grant was revoked", async () => {
        const erin = await activateUser(s, 'erin@acme.example');
        await s.rt.store.repos.users.assignApp(erin.user.id, 'download', s.clock());
        const refresh = (await getRefreshToken(erin)).tokens.refresh_token ?? '';
        const entitlementsNow = async () => {
          const r = await tokenRequest({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'traqs-api' });
          expect(r.status).toBe(200);
          const { payload } = await jwtVerify(String(r.body.access_token), await jwks(), { audience: s.downloadUrl });
          expect(payload.username).toBe(erin.user.login);
          return payload.entitlements;
        };
        expect(await entitlementsNow()).toEqual([]);
        await s.rt.store.repos.refdata.grantEntitlement(erin.user.id, 'TRACE-TSY', s.clock());
        await s.rt.store.repos.refdata.grantEntitlement(erin.user.id, 'ORF', s.clock());
        expect(await entitlementsNow()).toEqual(['ORF', 'TRACE-TSY']);
        await s.rt.store.repos.refdata.revokeEntitlement(erin.user.id, 'ORF');
        expect(await entitlementsNow()).toEqual(['TRACE-TSY']);

        // The token's grant gone (oidc-provider revokes grants; an operator may delete one): refused.
        const row = await s.rt.store.repos.oauth.readRefreshGrant(hashBearerSecret(refresh), s.clock());
        const grantHash = row?.grant?.row?.id_hash ?? '';
        expect(grantHash).toMatch(/^[0-9a-f]{64}$/);
        await s.rt.store.repos.oauth.destroyOidcModel('Grant', grantHash);
        const refused = await tokenRequest({
          grant_type: 'refresh_token',
          refresh_token: refresh,
          client_id: 'traqs-api',
        });
        expect(refused.status).toBe(400);
        expect(refused.body.error).toBe('invalid_grant');
        expect(refused.body.access_token).toBeUndefined();
      });

      it('answers 400 invalid_request naming what is missing, and invalid_grant for unknown tokens', async () => {
        const missing = await tokenRequest({ grant_type: 'refresh_token', client_id: 'traqs-api' });
        expect(missing.status).toBe(400);
        expect(missing.body.error).toBe('invalid_request');
        expect(String(missing.body.error_description)).toContain('refresh_token');
        const noGrantType = await tokenRequest({ client_id: 'traqs-api', refresh_token: 'x' });
        expect(noGrantType.status).toBe(400);
        expect(String(noGrantType.body.error_description)).toContain('grant_type');
        const unknown = await tokenRequest({
          grant_type: 'refresh_token',
          refresh_token: 'x'.repeat(43),
          client_id: 'traqs-api',
        });
        expect(unknown.status).toBe(400);
        expect(unknown.body.error).toBe('invalid_grant');
      });

      it('refuses every grant but authorization_code and refresh_token for traqs-api', async () => {
        for (const grant_type of [
          'client_credentials',
          'password',
          'urn:ietf:params:oauth:grant-type:device_code',
          'urn:openid:params:grant-type:ciba',
          'urn:ietf:params:oauth:grant-type:token-exchange',
        ]) {
          const r = await tokenRequest({
            grant_type,
            client_id: 'traqs-api',
            username: alice.login,
            password: alice.password,
          });
          expect(r.status, grant_type).toBe(400);
          expect(['unsupported_grant_type', 'unauthorized_client'], grant_type).toContain(r.body.error);
          expect(r.body.access_token).toBeUndefined();
        }
      });

      it('refuses the refresh token once it is revoked, the user is unassigned from download or suspended', async () => {
        const exchange = (refresh: string) =>
          tokenRequest({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'traqs-api' });

        const revoked = (await getRefreshToken()).tokens.refresh_token ?? '';
        await s.rt.store.repos.apiTokens.revoke(hashBearerSecret(revoked), s.clock(), 'user', alice.user.id);
        expect((await exchange(revoked)).body.error).toBe('invalid_grant');

        const carol = await activateUser(s, 'carol@acme.example');
        await s.rt.store.repos.users.assignApp(carol.user.id, 'download', s.clock());
        const carolsToken = (await getRefreshToken(carol)).tokens.refresh_token ?? '';
        expect((await exchange(carolsToken)).status).toBe(200);
        await s.rt.store.repos.users.unassignApp(carol.user.id, 'download');
        expect((await exchange(carolsToken)).body.error).toBe('invalid_grant');
        await s.rt.store.repos.users.assignApp(carol.user.id, 'download', s.clock());
        expect((await exchange(carolsToken)).status).toBe(200);
        await s.rt.store.repos.users.transitionStatus(carol.user.id, ['ACTIVE'], 'SUSPENDED', s.clock());
        expect((await exchange(carolsToken)).body.error).toBe('invalid_grant');
      });

      it('revokes every refresh token of a user who reports suspicious activity ("this wasn\'t me")', async () => {
        const dave = await activateUser(s, 'dave@acme.example');
        await s.rt.store.repos.users.assignApp(dave.user.id, 'download', s.clock());
        const refresh = (await getRefreshToken(dave)).tokens.refresh_token ?? '';
        const exchange = () =>
          tokenRequest({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'traqs-api' });
        expect((await exchange()).status).toBe(200);
        const link = await s.rt.store.transaction((repos) =>
          s.rt.reports.link(repos, dave.user.id, 'refreshTokenIssued'),
        );
        const filed = await s.rt.reports.file(new URL(link).searchParams.get('token') ?? '', 'refreshTokenIssued', {
          ip: null,
          userAgent: null,
        });
        expect(filed.ok).toBe(true);
        const r = await exchange();
        expect(r.status).toBe(400);
        expect(r.body.error).toBe('invalid_grant');
        const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(refresh));
        expect(row?.revoked_reason).toBe('reported');
      });

      it('stops the refresh token after 6 calendar months, not a minute before', async () => {
        const { tokens } = await getRefreshToken();
        const refresh = tokens.refresh_token ?? '';
        const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(refresh));
        const expiresAt = row?.expires_at ?? 0;
        const exchange = () =>
          tokenRequest({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'traqs-api' });
        const start = s.clock();
        s.clock.set(expiresAt - 60_000);
        const before = await exchange();
        expect(before.status, JSON.stringify(before.body)).toBe(200);
        s.clock.set(expiresAt + 1);
        const late = await exchange();
        expect(late.status).toBe(400);
        expect(late.body.error).toBe('invalid_grant');
        s.clock.set(start);
      });

      it('accepts an Okta sessionToken at /v1/authorize as the sign-in it stands for, once', async () => {
        let r = await postJson(s, '/api/v1/authn', { username: alice.login, password: alice.password });
        const stateToken = String(r.body.stateToken);
        r = await postJson(s, `/api/v1/authn/factors/${alice.factorId}/verify`, {
          stateToken,
          passCode: freshCode(s, alice.secret),
        });
        expect(r.body.status).toBe('SUCCESS');
        const sessionToken = String(r.body.sessionToken);
        // A browser with no cookies at all: the sessionToken alone signs it in.
        const flow = await authorize(s, createHttpBrowser(), api, { ...apiParams(), sessionToken });
        expect(flow.callbackUrl?.searchParams.get('code')).toBeTruthy();
        const tokens = await oidc.authorizationCodeGrant(api, flow.callbackUrl as URL, {
          pkceCodeVerifier: flow.verifier,
          expectedState: flow.state,
          expectedNonce: flow.nonce,
        });
        expect(tokens.refresh_token).toBeTruthy();
        // Used once: the same sessionToken again is refused.
        const again = await authorize(s, createHttpBrowser(), api, { ...apiParams(), sessionToken });
        expect(again.callbackUrl?.searchParams.get('error')).toBe('access_denied');
      });
    });
  },
  { fresh: 'suite' },
);
