import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KoaContext, OidcClient, OidcToken, Provider } from 'oidc-provider';
import type { Logger } from 'pino';
import { type App, AUTH_MODES, type AuthMode } from '../accounts/model.ts';
import type { SessionManager } from '../authn/sessions.ts';
import type { Config, EnvironmentConfig } from '../config/schema.ts';
import type { EnvironmentKeys } from '../config/secrets.ts';
import type { Repositories, Store } from '../db/store.ts';
import { FORWARDED_HEADER, verifyForwardedFor } from '../lib/forwarded.ts';
import { createSecretBox } from '../lib/secret-box.ts';
import { type Clock, hashBearerSecret } from '../lib/tokens.ts';
import type { Notifier } from '../mail/notifications.ts';
import { createOidcAdapterFactory } from './adapter.ts';
import { ensureSigningKeys, loadJwks } from './keys.ts';
import { NodeSigningKey } from './node-signing-key.ts';
import type { OauthPages } from './pages.tsx';
import type { RefreshGrantRead, SubjectUser } from './repository.ts';

/**
 * The OpenID Connect / OAuth 2.0 authorization server of the idp (DESIGN "OAuth 2.0 / OpenID
 * Connect"): oidc-provider (OpenID Certified) with our storage adapter, our keys and our sign-in
 * pages as its interactions, mounted at `/oauth2/default` with Okta's route names.
 */

/** Where the authorization server lives under the idp, as Okta's default authorization server. */
export const OAUTH_MOUNT = '/oauth2/default';

/** Okta's route names, relative to the issuer. */
const ROUTES = {
  authorization: '/v1/authorize',
  token: '/v1/token',
  jwks: '/v1/keys',
  introspection: '/v1/introspect',
  revocation: '/v1/revoke',
  userinfo: '/v1/userinfo',
  end_session: '/v1/logout',
  pushed_authorization_request: '/v1/par',
  registration: '/v1/clients',
  device_authorization: '/v1/device/authorize',
  backchannel_authentication: '/v1/bc/authorize',
  code_verification: '/v1/device',
  challenge: '/v1/challenge',
} as const;

/** The client ids this system registers. */
export const PORTAL_CLIENT_ID = 'portal';
export const API_CLIENT_ID = 'traqs-api';

/**
 * Okta's default authorization server audience. Access tokens for it are RS256 JWTs, so that
 * `@okta/jwt-verifier` (which accepts RS256 only) verifies them as it verifies Okta's; the portal
 * may ask for one with `resource=api://default`.
 */
export const OKTA_DEFAULT_AUDIENCE = 'api://default';

/** The scope of the download API's access tokens. */
export const DOWNLOAD_SCOPE = 'download';

/** The app a user must be assigned to for each client (DESIGN "Accounts": 403 "App not assigned"). */
export function appOfClient(clientId: string): App {
  return clientId === API_CLIENT_ID ? 'download' : 'portal';
}

/** Statuses whose tokens keep working: a lockout stops password guessing, not issued tokens. */
const TOKEN_STATUSES = new Set(['ACTIVE', 'LOCKED_OUT', 'RECOVERY', 'PASSWORD_EXPIRED']);

/**
 * Okta's `acr` for a sign-in with two factors; NIST 800-63B AAL2 needs two distinct factors, which
 * is what `mfa` in `amr` (RFC 8176) records.
 */
export const ACR_MFA = 'urn:okta:loa:2fa:any';
export const ACR_PASSWORD = 'urn:okta:loa:1fa:pwd';

export interface AuthorizationServerDeps {
  config: Readonly<Config>;
  environment: Readonly<EnvironmentConfig>;
  store: Store;
  clock: Clock;
  logger: Logger;
  keys: EnvironmentKeys;
  sessions: SessionManager;
  notifier: Notifier;
  /** The idp's session cookie name: oidc-provider's sessions follow ours. */
  sidCookie: string;
  /** Prefix of oidc-provider's cookie names (environment and service, DESIGN "Environments"). */
  cookiePrefix: string;
  pages: OauthPages;
}

/** The account object oidc-provider works with, carrying the user row so claims need no second query. */
interface Account {
  accountId: string;
  user: SubjectUser;
  apps: App[];
  /** Facilities whose reference data the user may download (issue #5). */
  facilities: string[];
  claims(use: string, scope: string): Promise<Record<string, unknown>>;
}

/** What code oidc-provider calls without the request knows of it (see `requestOf`). */
interface CurrentRequest {
  ip: string | null;
  userAgent: string | null;
  refreshTokenExpiresAt?: number;
  /**
   * What the refresh token's lookup read ahead for the rest of the grant request (its grant, its
   * user, its description), each taken once: a second lookup in the same request reads the
   * database again.
   */
  readAhead?: ReadAhead;
}

interface ReadAhead {
  tokenHash: string;
  accountId: string | null;
  grant?: RefreshGrantRead['grant'];
  subject?: RefreshGrantRead['subject'];
  described?: RefreshGrantRead['described'];
}

const REQUEST_STATE = 'traqsRequest';

/**
 * The request being handled, for code oidc-provider calls without it: where it came from (the
 * adapter's refresh-token hook runs inside oidc-provider's save, for the email and audit) and the
 * expiry of the refresh token it used (`findAccount`, for the token answer). Kept on the Koa
 * context, which oidc-provider's own AsyncLocalStorage finds (`Provider.ctx`): a second
 * AsyncLocalStorage would add its own hook to every promise of every request.
 */
function requestOf(ctx: KoaContext | undefined): CurrentRequest | undefined {
  return ctx?.state?.[REQUEST_STATE] as CurrentRequest | undefined;
}

/**
 * The client's address as Fastify determined it from the trusted proxies (`trustProxy`), which
 * middie hands on as `req.ip`; Koa's own `ctx.ip` would take the left-most X-Forwarded-For entry,
 * which the client chooses.
 */
function clientIp(ctx: KoaContext): string | null {
  const fromFastify = ctx.req.ip;
  return typeof fromFastify === 'string' ? fromFastify : (ctx.req.socket.remoteAddress ?? null);
}

/** One thing read ahead, once: `undefined` when it was not read or is already taken. */
function takeAhead<K extends 'grant' | 'subject' | 'described'>(
  ahead: ReadAhead | undefined,
  key: K,
): ReadAhead[K] | undefined {
  if (!ahead || !(key in ahead)) return undefined;
  const value = ahead[key];
  delete ahead[key];
  return value;
}

const ownTokensOnly = (_ctx: KoaContext, client: OidcClient, token: OidcToken) => token.clientId === client.clientId;

const defaultLabel = (now: number) => `Refresh token ${new Date(now).toISOString().slice(0, 10)}`;

/** Adds `months` calendar months in UTC (the 31st becomes the last day of a shorter month). */
export function addMonths(epochMs: number, months: number): number {
  const d = new Date(epochMs);
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return d.getTime();
}

export interface AuthorizationServer {
  readonly issuer: string;
  /** The download API's resource indicator and the `aud` of its access tokens. */
  readonly downloadAudience: string;
  /** The current provider (replaced when the signing keys change). */
  provider(): Provider;
  /** Node request handler for everything under `OAUTH_MOUNT` (prefix already stripped). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Rebuilds the provider if the usable signing keys changed (rotation on another node or by the CLI). */
  reloadKeysIfChanged(): Promise<boolean>;
}

export async function createAuthorizationServer(deps: AuthorizationServerDeps): Promise<AuthorizationServer> {
  // Loaded when a server is built, not when this module is: the CLI never pays for it.
  const { default: Provider, errors, interactionPolicy } = await import('oidc-provider');
  const { config, environment, store, clock, logger } = deps;
  const policy = config.policy;
  const issuer = `${environment.idp.publicUrl}${OAUTH_MOUNT}`;
  const downloadAudience = environment.download.publicUrl;
  const portalUrl = environment.portal.publicUrl;
  const secretBox = createSecretBox(deps.keys.secretBoxKey);
  const adapter = createOidcAdapterFactory(store, clock, {
    onRefreshTokenCreated: (repos, token) => describeRefreshToken(repos, token),
    // A refresh-token grant reads the token, its grant, its user (twice) and its description:
    // one statement instead of five, the rest handed to the grant and account lookups that follow
    // in the same request (bench/refresh.ts measures the token endpoint).
    findRefreshToken: async (idHash, now) => {
      const read = await store.repos.oauth.readRefreshGrant(idHash, now);
      const request = requestOf(Provider.ctx);
      if (request) {
        request.readAhead = read && {
          tokenHash: read.token.id_hash,
          accountId: read.token.account_id,
          grant: read.grant,
          subject: read.subject,
          described: read.described,
        };
      }
      return read?.token;
    },
    readAhead: (model, id) => {
      const ahead = requestOf(Provider.ctx)?.readAhead;
      if (model !== 'Grant' || ahead?.grant?.id !== id) return undefined;
      return takeAhead(ahead, 'grant')?.row;
    },
  });

  await ensureSigningKeys(store, secretBox, clock);

  const accessTokenSeconds = Math.round(policy.accessTokenMinutes * 60);
  const refreshTokenSeconds = () => Math.round((addMonths(clock(), policy.refreshTokenMonths) - clock()) / 1000);
  const sessionSeconds = Math.round(policy.sessionAbsoluteHours * 3600);

  /**
   * Records a newly issued refresh token (label, dates), tells the user by email and audits it, in
   * the transaction that stores the token: the token exists exactly when its email does.
   */
  async function describeRefreshToken(
    repos: Repositories,
    token: { idHash: string; payload: Record<string, unknown>; expiresAt: number | null },
  ): Promise<void> {
    const userId = String(token.payload.accountId ?? '');
    const user = await repos.users.findUserById(userId);
    if (!user) return;
    const now = clock();
    const expiresAt = token.expiresAt ?? addMonths(now, policy.refreshTokenMonths);
    const inserted = await repos.apiTokens.insert({
      id_hash: token.idHash,
      user_id: userId,
      client_id: String(token.payload.clientId ?? ''),
      grant_id: typeof token.payload.grantId === 'string' ? token.payload.grantId : null,
      label: defaultLabel(now),
      created_at: now,
      expires_at: expiresAt,
      last_used_at: null,
      last_used_ip: null,
      reminder_sent_at: null,
      revoked_at: null,
      revoked_reason: null,
    });
    if (!inserted) return;
    const { ip = null, userAgent = null } = requestOf(Provider.ctx) ?? {};
    const origin = { ip, userAgent };
    const label = defaultLabel(now);
    await repos.audit.recordEvent({
      at: now,
      actorId: userId,
      action: 'oauth.refresh_token.issued',
      targetId: userId,
      outcome: 'success',
      ip: origin.ip,
      userAgent: origin.userAgent,
      details: { client: token.payload.clientId, expiresAt: new Date(expiresAt).toISOString() },
    });
    await deps.notifier.refreshTokenIssued(repos, user, { label, expiresAt }, origin, `${portalUrl}/api/programmatic`);
  }

  async function findAccount(ctx: KoaContext, sub: string, token?: OidcToken): Promise<Account | undefined> {
    const idHash = token?.kind === 'RefreshToken' ? hashBearerSecret(token.jti) : undefined;
    const ahead = requestOf(ctx)?.readAhead;
    const early = ahead && ahead.tokenHash === idHash && ahead.accountId === sub ? ahead : undefined;
    const readSubject = takeAhead(early, 'subject');
    const subject = readSubject !== undefined ? readSubject : await store.repos.oauth.findTokenSubject(sub);
    if (!subject) return undefined;
    const { user, apps } = subject;
    // Local users and, since issue #8, federated ones (signed in by their firm's IdP, `amr` `fed`).
    if (!TOKEN_STATUSES.has(user.status) || !AUTH_MODES.includes(user.auth_mode as AuthMode)) return undefined;
    const clientId = ctx.oidc?.client?.clientId ?? token?.clientId;
    // A token is refused once its user is unassigned from the client's app (issue #4 item 4).
    if (clientId && !apps.includes(appOfClient(clientId))) return undefined;
    if (idHash !== undefined) {
      const readDescription = takeAhead(early, 'described');
      const described = readDescription !== undefined ? readDescription : await store.repos.apiTokens.find(idHash);
      if (!described || described.revoked_at !== null) return undefined;
      // Through `download`'s token endpoint the caller's address comes in a signed header.
      const forwarded = verifyForwardedFor(deps.keys.forwardingKey, ctx.get(FORWARDED_HEADER) || undefined, clock());
      const ip = forwarded ?? clientIp(ctx);
      const now = clock();
      if (described.last_used_at === null || described.last_used_at < now - 60_000 || described.last_used_ip !== ip) {
        await store.repos.apiTokens.markUsed(idHash, now, ip);
      }
      const request = requestOf(ctx);
      if (request) request.refreshTokenExpiresAt = described.expires_at;
    }
    const facilities = apps.includes('download') ? subject.facilities : [];
    return {
      accountId: sub,
      user,
      apps,
      facilities,
      async claims() {
        return {
          sub,
          email: user.email,
          email_verified: true,
          name: `${user.first_name} ${user.last_name}`.trim(),
          given_name: user.first_name,
          family_name: user.last_name,
          preferred_username: user.login,
          firm_id: user.firm_id,
          firm_name: subject.firmName,
        };
      },
    };
  }

  const policyWithChecks = interactionPolicy.base();
  const login = policyWithChecks.get('login');
  if (!login) throw new Error('oidc-provider has no login prompt');
  // `traqs-api` gets a code only from an interactive sign-in made for this very request (issue #4
  // item 7): never from single sign-on, whatever the request's `prompt` and `max_age` say.
  login.checks.add(
    new interactionPolicy.Check(
      'programmatic_requires_fresh_mfa',
      'a refresh token requires signing in again with a second factor',
      'login_required',
      (ctx) =>
        ctx.oidc.client?.clientId === API_CLIENT_ID && !ctx.oidc.result?.login
          ? interactionPolicy.Check.REQUEST_PROMPT
          : interactionPolicy.Check.NO_NEED_TO_PROMPT,
    ),
  );
  // oidc-provider's session follows the idp's: signing out of the MFA profile ends single sign-on.
  login.checks.add(
    new interactionPolicy.Check('idp_session_ended', 'the sign-in session has ended', 'login_required', async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      if (!accountId || ctx.oidc.result?.login) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const row = await deps.sessions.resume(ctx.cookies.get(deps.sidCookie));
      return row?.user_id === accountId
        ? interactionPolicy.Check.NO_NEED_TO_PROMPT
        : interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );

  const clients = [
    {
      client_id: PORTAL_CLIENT_ID,
      client_name: 'TRAQS website',
      client_secret: deps.keys.portalClientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [`${portalUrl}/authorization-code/callback`],
      post_logout_redirect_uris: [`${portalUrl}/`],
      // OpenID Connect Core §15.1: RS256 is the algorithm every client supports.
      id_token_signed_response_alg: 'RS256',
    },
    {
      client_id: API_CLIENT_ID,
      client_name: 'TRAQS API (programmatic access)',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [`${portalUrl}/api/programmatic/callback`],
      id_token_signed_response_alg: 'ES256',
    },
  ];

  const build = async () => {
    const jwks = await loadJwks(store, secretBox, clock);
    const fingerprint = jwks.keys.map((k) => k.kid).join(',');
    const provider = new Provider(issuer, {
      adapter,
      clients,
      findAccount,
      jwks: { keys: jwks.keys.map((jwk) => new NodeSigningKey(jwk)) },
      routes: ROUTES,
      scopes: ['openid', 'offline_access', 'profile', 'email', DOWNLOAD_SCOPE],
      claims: {
        // With `openid`: RFC 8176 `amr` and `acr`, how and how strongly the user signed in
        // (pwd, otp, mfa…), and when (OpenID Connect Core §2), in every ID token.
        openid: ['sub', 'acr', 'amr', 'auth_time', 'sid'],
        email: ['email', 'email_verified'],
        profile: ['name', 'given_name', 'family_name', 'preferred_username', 'firm_id', 'firm_name'],
      },
      // The portal reads the user's name from the ID token; conforming would move it to userinfo.
      conformIdTokenClaims: false,
      responseTypes: ['code'],
      // RFC 9700 §2.1.1: PKCE for every client, confidential ones too; S256 only (oidc-provider's default).
      pkce: { required: () => true },
      extraParams: ['sessionToken'],
      cookies: {
        keys: [deps.keys.oidcCookieKey],
        names: {
          session: `${deps.cookiePrefix}_oidc`,
          interaction: `${deps.cookiePrefix}_oidc_interaction`,
          resume: `${deps.cookiePrefix}_oidc_resume`,
        },
        long: { httpOnly: true, sameSite: 'lax' },
        short: { httpOnly: true, sameSite: 'lax' },
      },
      interactions: {
        url: (_ctx: KoaContext, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
        policy: policyWithChecks,
      },
      // Every programmatic authorization gets a grant of its own, so a refresh token never
      // outlives the grant it depends on and revoking one token leaves the others alone.
      loadExistingGrant: async (ctx: KoaContext & { oidc: { session?: { grantIdFor(id: string): string } } }) => {
        const client = ctx.oidc.client;
        if (!client) return undefined;
        // The grant just made by this request's consent step, else (portal only) the session's.
        const justGranted = (ctx.oidc.result?.consent as { grantId?: string } | undefined)?.grantId;
        const grantId =
          justGranted ??
          (client.clientId === API_CLIENT_ID ? undefined : ctx.oidc.session?.grantIdFor(client.clientId));
        return grantId ? provider.Grant.find(grantId) : undefined;
      },
      features: {
        devInteractions: { enabled: false },
        // Sign with node:crypto (see NodeSigningKey); the acknowledged version pins the interface.
        externalSigningSupport: { enabled: true, ack: 'experimental-01' },
        // A client may introspect and revoke only its own tokens: the portal learns nothing about
        // a user's programmatic refresh tokens (RFC 7662 §4, RFC 7009 §2.1).
        introspection: { enabled: true, allowedPolicy: ownTokensOnly },
        revocation: { enabled: true, allowedPolicy: ownTokensOnly },
        userinfo: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: (ctx: KoaContext, form: string) => deps.pages.logout(ctx, form),
          postLogoutSuccessSource: (ctx: KoaContext) => deps.pages.signedOut(ctx),
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: (_ctx: KoaContext, client: OidcClient) =>
            client.clientId === API_CLIENT_ID ? downloadAudience : undefined,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: KoaContext, resource: string, client: OidcClient) => {
            // The portal's Manual page downloads with the signed-in user's own token.
            if (resource === downloadAudience) {
              return {
                scope: DOWNLOAD_SCOPE,
                audience: downloadAudience,
                accessTokenTTL: accessTokenSeconds,
                // RFC 9068 JWT access tokens, verified by `download` with no database round trip.
                accessTokenFormat: 'jwt',
                jwt: { sign: { alg: 'ES256' } },
              };
            }
            if (resource === OKTA_DEFAULT_AUDIENCE && client.clientId === PORTAL_CLIENT_ID) {
              return {
                scope: 'openid profile email',
                audience: OKTA_DEFAULT_AUDIENCE,
                accessTokenTTL: accessTokenSeconds,
                accessTokenFormat: 'jwt',
                jwt: { sign: { alg: 'RS256' } },
              };
            }
            throw new (errors.InvalidTarget as new () => Error)();
          },
        },
      },
      clientBasedCORS: () => false,
      issueRefreshToken: (_ctx: KoaContext, client: OidcClient, code: OidcToken) =>
        client.clientId === API_CLIENT_ID &&
        client.grantTypeAllowed('refresh_token') &&
        code.scopes.has('offline_access'),
      // Not rotated: one refresh token may serve several machines at once (FAQ).
      rotateRefreshToken: false,
      ttl: {
        AccessToken: accessTokenSeconds,
        AuthorizationCode: 60,
        IdToken: 3600,
        Interaction: Math.round(policy.transactionMinutes * 60),
        Session: sessionSeconds,
        RefreshToken: () => refreshTokenSeconds(),
        // A grant outlives every token issued under it by a day.
        Grant: (_ctx: KoaContext, grant: { clientId?: string }) =>
          grant.clientId === API_CLIENT_ID ? refreshTokenSeconds() + 86_400 : sessionSeconds + 86_400,
      },
      extraTokenClaims: (ctx: KoaContext, token: OidcToken) => {
        if (token.kind !== 'AccessToken' || !token.resourceServer) return undefined;
        const account = ctx.oidc.entities.Account as Account | undefined;
        return {
          // Okta's claims for the client and user ids, as in its JWT access tokens.
          cid: token.clientId,
          uid: token.accountId,
          // The username `DownloadHandler.ashx` callers send must match (issue #5).
          username: account?.user.login,
          firm: account?.user.firm_id,
          // What `download` authorizes without asking the database: the apps the user is assigned
          // to and the facilities whose files they may download.
          apps: account?.apps ?? [],
          entitlements: account?.facilities ?? [],
          amr: token.amr,
        };
      },
      renderError: (ctx: KoaContext, out: Record<string, string>, error: Error) => {
        deps.pages.error(ctx, out, error);
      },
      // Nodes' clocks differ a little: accept tokens a few seconds early or late (RFC 7519 §4.1.4).
      clockTolerance: 5,
    });
    // X-Forwarded-Proto and -Host from the proxy; the client address is Fastify's (`clientIp`).
    provider.proxy = config.trustProxy !== false;
    provider.use(async (ctx, next) => {
      const userAgent = ctx.get('user-agent');
      const request: CurrentRequest = {
        ip: clientIp(ctx),
        userAgent: userAgent ? userAgent.slice(0, 512) : null,
      };
      ctx.state[REQUEST_STATE] = request;
      await next();
      const expiresAt = request.refreshTokenExpiresAt;
      if (ctx.oidc?.route === 'token' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        const body = ctx.body as Record<string, unknown>;
        if (expiresAt !== undefined && ctx.oidc.params?.grant_type === 'refresh_token') {
          // Not rotated (RFC 6749 §6: a new one is optional): the answer carries none, and says
          // how long the one used stays valid, so clients can warn before it expires.
          delete body.refresh_token;
          body.refresh_token_expires_in = Math.max(0, Math.floor((expiresAt - clock()) / 1000));
        } else if (typeof body.refresh_token === 'string') {
          body.refresh_token_expires_in = refreshTokenSeconds();
        }
      }
      // Only once oidc-provider accepted the confirmation (its anti-forgery field checked).
      if (
        ctx.oidc?.route === 'end_session_confirm' &&
        ctx.method === 'POST' &&
        ctx.status < 400 &&
        ctx.oidc.params?.logout
      ) {
        // RP-initiated logout ends the idp session too (issue #4 item 2).
        await deps.sessions.end(ctx.cookies.get(deps.sidCookie));
        ctx.cookies.set(deps.sidCookie, null, { path: '/' });
      }
    });
    return { provider, fingerprint, handler: provider.callback() };
  };

  let current = await build();
  return {
    issuer,
    downloadAudience,
    provider: () => current.provider,
    handle: (req, res) => current.handler(req, res),
    async reloadKeysIfChanged() {
      const jwks = await loadJwks(store, secretBox, clock);
      const fingerprint = jwks.keys.map((k) => k.kid).join(',');
      if (fingerprint === current.fingerprint) return false;
      current = await build();
      logger.info({ keys: fingerprint }, 'Signing keys changed: authorization server reloaded');
      return true;
    },
  };
}
