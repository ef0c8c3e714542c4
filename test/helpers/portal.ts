import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { cookiePrefix } from '../../src/app.ts';
import { hashBearerSecret } from '../../src/lib/tokens.ts';
import { buildPortal } from '../../src/portal/app.ts';
import type {
  ApiTokenGrant,
  OidcProblem,
  OidcResult,
  PendingAuthorization,
  PortalOidc,
  PortalSignIn,
} from '../../src/portal/oidc-client.ts';
import { type Browser, createBrowser } from './browser.ts';
import type { TestStack } from './stack.ts';

export const PORTAL_SID = `${cookiePrefix('ntf', 'portal')}_sid`;
export const FAKE_ISSUER = 'https://idp.test/oauth2/default';

interface IssuedCode {
  client: 'portal' | 'traqs-api';
  sub: string;
  amr?: string[];
  refreshToken?: string;
}

/**
 * A stand-in for the authorization server, for page tests that need no idp: it hands out codes the
 * test chooses, checks `state` as openid-client would, and accepts each code once.
 */
export function createFakeOidc(clock: () => number) {
  const codes = new Map<string, IssuedCode>();
  const received: URL[] = [];
  const pending: { signIn?: PendingAuthorization; api?: PendingAuthorization } = {};
  let down: OidcProblem | undefined;

  function start(kind: 'signIn' | 'api'): OidcResult<{ url: URL; pending: PendingAuthorization }> {
    if (down) return { ok: false, problem: down };
    const p: PendingAuthorization = {
      state: randomBytes(16).toString('base64url'),
      nonce: randomBytes(16).toString('base64url'),
      codeVerifier: randomBytes(32).toString('base64url'),
      startedAt: clock(),
    };
    pending[kind] = p;
    const url = new URL(`${FAKE_ISSUER}/v1/authorize`);
    url.searchParams.set('client_id', kind === 'api' ? 'traqs-api' : 'portal');
    url.searchParams.set('state', p.state);
    return { ok: true, value: { url, pending: p } };
  }

  function redeem(url: URL, p: PendingAuthorization, client: IssuedCode['client']): OidcResult<IssuedCode> {
    received.push(url);
    const error = url.searchParams.get('error');
    if (error) return { ok: false, problem: { kind: 'idp-error', error } };
    if (url.searchParams.get('state') !== p.state) return { ok: false, problem: { kind: 'rejected', reason: 'state' } };
    const code = url.searchParams.get('code') ?? '';
    const issued = codes.get(code);
    codes.delete(code);
    if (!issued || issued.client !== client) {
      return { ok: false, problem: { kind: 'rejected', reason: 'invalid_grant' } };
    }
    return { ok: true, value: issued };
  }

  const oidc: PortalOidc = {
    issuer: FAKE_ISSUER,
    startSignIn: async () => start('signIn'),
    async finishSignIn(url, p): Promise<OidcResult<PortalSignIn>> {
      const r = redeem(url, p, 'portal');
      if (!r.ok) return r;
      return { ok: true, value: { sub: r.value.sub, amr: r.value.amr ?? ['pwd', 'otp', 'mfa'], authTime: 0 } };
    },
    startApiToken: async () => start('api'),
    async finishApiToken(url, p): Promise<OidcResult<ApiTokenGrant>> {
      const r = redeem(url, p, 'traqs-api');
      if (!r.ok) return r;
      return {
        ok: true,
        value: { sub: r.value.sub, refreshToken: r.value.refreshToken ?? '', authTime: Math.floor(clock() / 1000) },
      };
    },
    logoutUrl: () => `${FAKE_ISSUER}/v1/logout?client_id=portal&post_logout_redirect_uri=x`,
  };

  return {
    oidc,
    /** The callback URLs the portal passed on, as openid-client would receive them. */
    received,
    pending,
    /** Makes the next flows fail to start, as when the idp cannot be reached. */
    fail(problem: OidcProblem | undefined) {
      down = problem;
    },
    /** A code the next callback may carry. */
    issueCode(issued: IssuedCode): string {
      const code = randomBytes(12).toString('base64url');
      codes.set(code, issued);
      return code;
    },
  };
}
export type FakeOidc = ReturnType<typeof createFakeOidc>;

/** The stack's environment with its portal built on a fake authorization server. */
export async function createPortalWithFakeIdp(s: TestStack) {
  const fake = createFakeOidc(s.clock);
  const portal: FastifyInstance = await buildPortal(s.rt, { oidc: fake.oidc });
  await portal.ready();
  return { portal, fake };
}

/** A browser over the portal (inject), with the same jar semantics as the idp tests' browser. */
export function portalBrowser(s: TestStack, portal: FastifyInstance): Browser {
  return createBrowser({ ...s, app: portal });
}

/** Signs `sub` in to the portal through `/login` and the callback with a code the fake issued. */
export async function signInToPortal(b: Browser, fake: FakeOidc, sub: string): Promise<string> {
  const login = await b.get('/login');
  if (login.statusCode !== 303) throw new Error(`/login answered ${login.statusCode}`);
  const state = new URL(String(login.headers.location)).searchParams.get('state') ?? '';
  const code = fake.issueCode({ client: 'portal', sub });
  const back = await b.get(`/authorization-code/callback?code=${code}&state=${encodeURIComponent(state)}`);
  if (back.statusCode !== 303) throw new Error(`callback answered ${back.statusCode}: ${back.payload.slice(0, 300)}`);
  const sid = b.jar.get(PORTAL_SID);
  if (!sid) throw new Error('no portal session cookie');
  return sid;
}

/**
 * What the idp does when it issues a refresh token: a random token, recorded by its hash with the
 * default label. Returns the token.
 */
export async function recordIssuedToken(s: TestStack, userId: string, clientId = 'traqs-api'): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  const now = s.clock();
  await s.rt.store.repos.apiTokens.insert({
    id_hash: hashBearerSecret(token),
    user_id: userId,
    client_id: clientId,
    grant_id: null,
    label: `Refresh token ${new Date(now).toISOString().slice(0, 10)}`,
    created_at: now,
    expires_at: now + 182 * 86_400_000,
    last_used_at: null,
    last_used_ip: null,
    reminder_sent_at: null,
    revoked_at: null,
    revoked_reason: null,
  });
  return token;
}
