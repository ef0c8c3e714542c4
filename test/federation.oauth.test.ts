import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addSamlIdp, createTestSamlIdp, MFA_CLASS, provisionFederatedUser } from './helpers/federation.ts';
import { createHttpBrowser } from './helpers/http-browser.ts';
import { discover, type OauthStack, startOauthStack } from './helpers/oauth.ts';

/**
 * Issue #8 end to end over HTTP: an authorization request of the portal client, answered by a
 * federated sign-in at the firm's SAML IdP, ends in an authorization code whose ID token carries
 * `amr` `fed` + `mfa` (the oidc-provider interaction completes through the same session token).
 */
describe('federated sign-in completes an OpenID Connect authorization', () => {
  let s: OauthStack;
  beforeAll(async () => {
    s = await startOauthStack();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('portal authorization → our sign-in page → SAML IdP → code → ID token with amr fed, mfa', async () => {
    const idp = createTestSamlIdp('https://idp.acme.example/saml', 'https://idp.acme.example/sso');
    const added = { value: await addSamlIdp(s.rt, s.firm.id, idp) };
    const made = {
      user: await provisionFederatedUser(s.rt, {
        email: 'fed.portal@acme.example',
        firmId: s.firm.id,
        apps: ['portal'],
      }),
    };

    const config = await discover(s, 'portal');
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: s.portalCallback,
      scope: 'openid profile',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: 'st',
      nonce,
    });
    const browser = createHttpBrowser();
    const { answer } = await browser.follow(url.href, s.portalCallback);
    expect(answer.url).toContain('/signin?for=portal');
    const page = await browser.submit(answer.url, '/signin', { username: 'fed.portal@acme.example', password: '' });
    expect(page.status).toBe(200);
    const href = /<a class="button" href="([^"]+)" data-auto-follow/.exec(page.body)?.[1]?.replace(/&amp;/g, '&') ?? '';
    const spMetadata = (await browser.get(added.value.sp.metadataUrl)).body;
    const response = await idp.respond(spMetadata, href, { nameId: 'fed.portal@acme.example', classRef: MFA_CLASS });
    const acs = await browser.post(response.acsUrl, { SAMLResponse: response.samlResponse });
    expect(acs.status, acs.body.slice(0, 500)).toBe(303);
    const back = await browser.follow(acs.location ?? '', s.portalCallback);
    expect(
      String(back.answer.location),
      `${back.visited.join(' ')} ${back.answer.status} ${back.answer.body.slice(0, 2000)}`,
    ).toMatch(new RegExp(`^${s.portalCallback}`));
    const tokens = await oidc.authorizationCodeGrant(config, new URL(back.answer.location ?? ''), {
      pkceCodeVerifier: verifier,
      expectedState: 'st',
      expectedNonce: nonce,
    });
    expect(tokens.claims()?.amr).toEqual(['fed', 'mfa']);
    expect(tokens.claims()?.sub).toBe(made.user.id);
  });
});
