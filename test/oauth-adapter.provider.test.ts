import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { compactVerify, createLocalJWKSet, decodeProtectedHeader } from 'jose';
import { afterEach, expect, it } from 'vitest';
import type { Store } from '../src/db/store.ts';
import { createSecretBox } from '../src/lib/secret-box.ts';
import { systemClock } from '../src/lib/tokens.ts';
import { createOidcAdapterFactory, type OidcAdapterFactory } from '../src/oauth/adapter.ts';
import { ensureSigningKey, loadJwks, loadPublicJwks } from '../src/oauth/keys.ts';
import { describeEachBackend } from './helpers/databases.ts';

/**
 * The adapter and the key set under a real oidc-provider (a standalone instance, not yet the
 * idp's): its own models save and find refresh tokens through our storage, its token endpoint
 * exchanges one and signs the ID token with our key, and revocation reaches the database. The raw
 * token values never reach a row.
 */

/** The parts of oidc-provider's API this test touches; the package ships no type declarations. */
interface ProviderModel {
  save(): Promise<string>;
}
interface OidcProvider {
  Grant: new (init: { accountId: string; clientId: string }) => ProviderModel & { addOIDCScope(scope: string): void };
  RefreshToken: {
    new (init: Record<string, unknown>): ProviderModel;
    find(value: string): Promise<({ jti: string } & Record<string, unknown>) | undefined>;
  };
  AuthorizationCode: new (init: Record<string, unknown>) => ProviderModel;
  Client: { find(id: string): Promise<unknown> };
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

/**
 * A module name in a variable keeps TypeScript from resolving the untyped package; the narrow
 * interface above is all the test relies on.
 */
const OIDC_PROVIDER_MODULE: string = 'oidc-provider';
const loadProvider = async (): Promise<ProviderConstructor> =>
  ((await import(OIDC_PROVIDER_MODULE)) as { default: ProviderConstructor }).default;

const ACCOUNT = 'acct-provider-1';
const REDIRECT_URI = 'https://portal.example/api/programmatic/callback';
const CLIENT_ID = 'traqs-api';
const DAY = 86_400;

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A standalone provider on `store`, listening on a random port, with its client `traqs-api`. */
async function startProvider(store: Store, wrap: (factory: OidcAdapterFactory) => OidcAdapterFactory = (f) => f) {
  const secretBox = createSecretBox(randomBytes(32));
  const { kid } = await ensureSigningKey(store, secretBox, systemClock);
  const Provider = await loadProvider();
  const provider = new Provider('http://127.0.0.1/oauth2/default', {
    adapter: wrap(createOidcAdapterFactory(store, systemClock)),
    jwks: await loadJwks(store, secretBox, systemClock),
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
      },
    ],
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    // Our keys are ES256 only; oidc-provider's default for clients is RS256.
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    features: { revocation: { enabled: true }, devInteractions: { enabled: false } },
    rotateRefreshToken: false,
    ttl: { RefreshToken: 180 * DAY, Grant: 180 * DAY, AccessToken: 3600, IdToken: 3600, AuthorizationCode: 60 },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
  });

  server = createServer(provider.callback());
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const post = (path: string, form: Record<string, string>) =>
    fetch(`${base}${path}`, { method: 'POST', body: new URLSearchParams(form) });

  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: CLIENT_ID });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const client = await provider.Client.find(CLIENT_ID);
  /** What the interaction would have recorded: an MFA-confirmed sign-in just now. */
  const signIn = { client, accountId: ACCOUNT, grantId, amr: ['pwd', 'otp', 'mfa'], authTime: nowSeconds() };
  return { provider, post, kid, grantId, signIn };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Holds every `find` of `model` until `parties` of them have read the row (or a second has
 * passed), so parallel requests all see it unconsumed: the race a code replay would try to win.
 */
function findBarrier(model: string, parties: number) {
  return (factory: OidcAdapterFactory): OidcAdapterFactory => {
    const waiting: (() => void)[] = [];
    const arrive = () =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (waiting.length >= parties) for (const release of waiting.splice(0)) release();
        else setTimeout(resolve, 1000);
      });
    return (name) => {
      const adapter = factory(name);
      if (name !== model) return adapter;
      return {
        ...adapter,
        async find(id) {
          const found = await adapter.find(id);
          await arrive();
          return found;
        },
      };
    };
  };
}

describeEachBackend('oidc-provider on our storage', ({ store }) => {
  it('issues, exchanges and revokes a refresh token without storing its value', async () => {
    const { provider, post, kid, grantId, signIn } = await startProvider(store());
    const refreshToken = await new provider.RefreshToken({
      ...signIn,
      gty: 'authorization_code',
      scope: 'openid offline_access',
    }).save();

    const found = await provider.RefreshToken.find(refreshToken);
    expect(found).toMatchObject({ jti: refreshToken, accountId: ACCOUNT, grantId, clientId: CLIENT_ID });

    const exchange = () =>
      post('/token', { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: CLIENT_ID });
    const res = await exchange();
    const tokens = (await res.json()) as Record<string, string>;
    expect(res.status, JSON.stringify(tokens)).toBe(200);
    expect(tokens.access_token).toEqual(expect.any(String));

    // The ID token is signed with our active key and verifies against the published set.
    const idToken = String(tokens.id_token);
    expect(decodeProtectedHeader(idToken)).toMatchObject({ alg: 'ES256', kid });
    await compactVerify(idToken, createLocalJWKSet(await loadPublicJwks(store(), systemClock)));

    // What a database dump shows: the grant, the refresh token and the opaque access token, by hash.
    const rows = await store().repos.oauth.listOidcModelsOfAccount(ACCOUNT, systemClock());
    expect(rows.map((r) => r.model).sort()).toEqual(['AccessToken', 'Grant', 'RefreshToken']);
    const everything = JSON.stringify(rows);
    expect(everything).not.toContain(refreshToken);
    expect(everything).not.toContain(String(tokens.access_token));

    // RFC 7009: revoking the refresh token revokes its grant; the next exchange is invalid_grant.
    const revoked = await post('/token/revocation', { token: refreshToken, client_id: CLIENT_ID });
    expect(revoked.status).toBe(200);
    expect(await provider.RefreshToken.find(refreshToken)).toBeUndefined();
    const again = await exchange();
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ error: 'invalid_grant' });
    expect(await store().repos.oauth.listOidcModelsOfAccount(ACCOUNT, systemClock())).toEqual([]);
  });

  it('redeems an authorization code once when 10 token requests race (RFC 6749 §4.1.2)', async () => {
    const { provider, post, signIn } = await startProvider(store(), findBarrier('AuthorizationCode', 10));
    const verifier = randomBytes(32).toString('base64url');
    const code = await new provider.AuthorizationCode({
      ...signIn,
      scope: 'openid offline_access',
      redirectUri: REDIRECT_URI,
      // RFC 7636 §4.2: S256 challenge of the verifier.
      codeChallenge: createHash('sha256').update(verifier).digest('base64url'),
      codeChallengeMethod: 'S256',
    }).save();

    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        post('/token', {
          grant_type: 'authorization_code',
          code,
          code_verifier: verifier,
          redirect_uri: REDIRECT_URI,
          client_id: CLIENT_ID,
        }),
      ),
    );
    const bodies = await Promise.all(responses.map((r) => r.json() as Promise<Record<string, string>>));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses, JSON.stringify(bodies)).toEqual([200, 400, 400, 400, 400, 400, 400, 400, 400, 400]);
    // All ten read the code unconsumed; the nine that lost the consume get invalid_grant, not a 500.
    for (const body of bodies.filter((b) => !b.access_token)) expect(body.error).toBe('invalid_grant');
    expect(JSON.stringify(await store().repos.oauth.listOidcModelsOfAccount(ACCOUNT, systemClock()))).not.toContain(
      code,
    );
  });
});
