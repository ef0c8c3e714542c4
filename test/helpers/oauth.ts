import * as oidc from 'openid-client';
import { hiddenFrom } from './browser.ts';
import type { HttpBrowser } from './http-browser.ts';
import { freePorts } from './product-process.ts';
import { createTestClock, createTestStack, type TestStack, type TestStackOptions } from './stack.ts';
import { type ActiveUser, freshCode } from './users.ts';

/**
 * A test stack whose idp listens on a free port at `http://localhost:{port}` (the authorization
 * server's issuer must be a real URL for real clients), with the portal and download URLs set to
 * further free ports that nothing needs to answer on. Its clock starts at the real time, since
 * oidc-provider stamps its own records with the real time.
 */
export async function startOauthStack(options: TestStackOptions = {}) {
  const [idpPort, portalPort, downloadPort] = await freePorts(3);
  const idpUrl = `http://localhost:${idpPort}`;
  const s = await createTestStack({
    clock: createTestClock(Date.now()),
    ...options,
    env: {
      TRAQS_NTF_IDP_PORT: String(idpPort),
      TRAQS_NTF_IDP_URL: idpUrl,
      TRAQS_NTF_PORTAL_PORT: String(portalPort),
      TRAQS_NTF_PORTAL_URL: `http://localhost:${portalPort}`,
      TRAQS_NTF_DOWNLOAD_PORT: String(downloadPort),
      TRAQS_NTF_DOWNLOAD_URL: `http://localhost:${downloadPort}`,
      ...options.env,
    },
  });
  await s.app.listen({ port: idpPort ?? 0, host: '127.0.0.1' });
  const environment = s.rt.environment;
  return {
    ...s,
    idpUrl,
    issuer: `${idpUrl}/oauth2/default`,
    portalUrl: environment.portal.publicUrl,
    downloadUrl: environment.download.publicUrl,
    programmaticCallback: `${environment.portal.publicUrl}/api/programmatic/callback`,
    portalCallback: `${environment.portal.publicUrl}/authorization-code/callback`,
    sidCookie: 'traqs_ntf_idp_sid',
  };
}
export type OauthStack = Awaited<ReturnType<typeof startOauthStack>>;

/** openid-client's configuration for one of our clients, by discovery. */
export async function discover(s: OauthStack, client: 'portal' | 'traqs-api'): Promise<oidc.Configuration> {
  const auth = client === 'portal' ? oidc.ClientSecretBasic(s.rt.keys.portalClientSecret) : oidc.None();
  return oidc.discovery(new URL(s.issuer), client, undefined, auth, { execute: [oidc.allowInsecureRequests] });
}

/** Signs in on the idp's pages (password, then TOTP) from wherever the browser was sent to sign in. */
export async function signInOnPages(s: TestStack, browser: HttpBrowser, signInUrl: string, user: ActiveUser) {
  const first = await browser.submit(signInUrl, '/signin', { username: user.login, password: user.password });
  if (first.status !== 303) throw new Error(`password step answered ${first.status}: ${first.body.slice(0, 300)}`);
  const verifyUrl = new URL('/signin/next', signInUrl).toString();
  const verify = await browser.get(verifyUrl);
  const done = await browser.post(new URL('/signin/verify', signInUrl).toString(), {
    factorId: hiddenFrom(verify.body, 'factorId'),
    passCode: freshCode(s, user.secret),
    _csrf: (/name="_csrf" value="([^"]+)"/.exec(verify.body) ?? [])[1] ?? '',
  });
  if (done.status !== 303 || !done.location) throw new Error(`verify step answered ${done.status}`);
  return done;
}

/** Starts an authorization request in `browser` and follows it to the client's redirect URI. */
export async function authorize(
  s: OauthStack,
  browser: HttpBrowser,
  config: oidc.Configuration,
  params: Record<string, string>,
  user?: ActiveUser,
): Promise<{
  callbackUrl: URL | undefined;
  signedIn: boolean;
  last: { status: number; body: string; url: string };
  verifier: string;
  state: string;
  nonce: string;
}> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...params,
  });
  const redirectUri = params.redirect_uri ?? '';
  let { answer } = await browser.follow(url.toString(), redirectUri);
  let signedIn = false;
  if (answer.location === undefined && answer.url.includes('/signin') && user) {
    const done = await signInOnPages(s, browser, answer.url, user);
    signedIn = true;
    ({ answer } = await browser.follow(done.location ?? '', redirectUri));
  }
  const callbackUrl = answer.location?.startsWith(redirectUri) ? new URL(answer.location) : undefined;
  return { callbackUrl, signedIn, last: answer, verifier, state, nonce };
}
