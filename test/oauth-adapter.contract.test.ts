import { expect, it } from 'vitest';
import type { Store } from '../src/db/store.ts';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import {
  createOidcAdapterFactory,
  type OidcAdapterFactory,
  OidcModelConsumedError,
  type OidcPayload,
} from '../src/oauth/adapter.ts';
import type { OidcModelRow } from '../src/oauth/repository.ts';
import { describeEachBackend } from './helpers/databases.ts';

/**
 * The oidc-provider storage adapter on SQLite and PostgreSQL (CONVENTIONS.md §4): the adapter
 * contract of oidc-provider's memory adapter, single use under concurrency, and no bearer secret at
 * rest. The clock is injected, so expiry is tested without sleeping.
 */

const START = 1_750_000_000_000;
const SECOND = 1000;

/** A 256-bit value shaped like oidc-provider's opaque token ids (nanoid, 43 characters). */
function tokenId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
}

function testClock() {
  let now = START;
  const clock = () => now;
  return { clock, advance: (ms: number) => (now += ms) };
}

function refreshTokenPayload(jti: string, grantId: string, accountId = 'acct-1'): OidcPayload {
  return {
    iat: START / SECOND,
    exp: START / SECOND + 180 * 86_400,
    jti,
    kind: 'RefreshToken',
    clientId: 'traqs-api',
    grantId,
    accountId,
    gty: 'authorization_code',
    scope: 'openid offline_access',
    sessionUid: 'session-uid-1',
    amr: ['pwd', 'otp', 'mfa'],
    iiat: START / SECOND,
  };
}

/** Every column of every row an attacker with a dump of these rows would see, as one string. */
function dump(rows: readonly (OidcModelRow | undefined)[]): string {
  return JSON.stringify(rows);
}

describeEachBackend('oidc-provider adapter', ({ store, connectAgain }) => {
  let factory: OidcAdapterFactory;
  let time: ReturnType<typeof testClock>;
  const adapter = (model: string) => factory(model);
  const row = (s: Store, model: string, id: string) =>
    s.repos.oauth.findOidcModel(model, hashBearerSecret(id), Number.MIN_SAFE_INTEGER);

  const setUp = () => {
    time = testClock();
    factory = createOidcAdapterFactory(store(), time.clock);
  };

  it('round-trips a payload by id, and upsert replaces it', async () => {
    setUp();
    const id = tokenId();
    const payload = refreshTokenPayload(id, 'grant-1');
    await adapter('RefreshToken').upsert(id, payload, 3600);
    expect(await adapter('RefreshToken').find(id)).toEqual(payload);
    // Models are separate namespaces, as in oidc-provider's memory adapter.
    expect(await adapter('AccessToken').find(id)).toBeUndefined();
    expect(await adapter('RefreshToken').find(tokenId())).toBeUndefined();

    const changed = { ...payload, scope: 'openid' };
    await adapter('RefreshToken').upsert(id, changed, 3600);
    expect(await adapter('RefreshToken').find(id)).toEqual(changed);
  });

  it('stops finding a model once it has expired by the injected clock', async () => {
    setUp();
    const id = tokenId();
    await adapter('AuthorizationCode').upsert(id, { jti: id, kind: 'AuthorizationCode', grantId: 'g' }, 60);
    const forever = tokenId();
    await adapter('Client').upsert(forever, { client_id: forever });

    time.advance(59 * SECOND);
    expect(await adapter('AuthorizationCode').find(id)).toBeDefined();
    time.advance(1 * SECOND);
    expect(await adapter('AuthorizationCode').find(id)).toBeUndefined();
    expect(await adapter('Client').find(forever)).toEqual({ client_id: forever });

    expect(await store().repos.oauth.deleteExpiredOidcModels(time.clock())).toBe(1);
    expect(await row(store(), 'AuthorizationCode', id)).toBeUndefined();
    expect(await row(store(), 'Client', forever)).toBeDefined();
  });

  it('adds the clock tolerance to every expiry', async () => {
    time = testClock();
    factory = createOidcAdapterFactory(store(), time.clock, { clockToleranceSeconds: 5 });
    const id = tokenId();
    await adapter('AccessToken').upsert(id, { jti: id }, 60);
    time.advance(64 * SECOND);
    expect(await adapter('AccessToken').find(id)).toBeDefined();
    time.advance(1 * SECOND);
    expect(await adapter('AccessToken').find(id)).toBeUndefined();
  });

  it('consumes a model exactly once under 10 parallel calls from two nodes', async () => {
    setUp();
    const id = tokenId();
    await adapter('AuthorizationCode').upsert(id, { jti: id, kind: 'AuthorizationCode', grantId: 'g' }, 60);
    const other = createOidcAdapterFactory(connectAgain(), time.clock);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? other : factory)('AuthorizationCode').consume(id)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected).toHaveLength(9);
    for (const r of rejected) {
      expect(r.reason).toBeInstanceOf(OidcModelConsumedError);
      // Rendered by oidc-provider as 400 invalid_grant (RFC 6749 §5.2), not a server error.
      expect(r.reason).toMatchObject({ statusCode: 400, expose: true, message: 'invalid_grant' });
    }
    // oidc-provider reads `consumed` (epoch seconds) to detect a replayed code.
    expect(await adapter('AuthorizationCode').find(id)).toMatchObject({ consumed: START / SECOND });
  });

  it('keeps a consumed model consumed when a stale copy is saved again', async () => {
    setUp();
    const id = tokenId();
    const payload = { jti: id, kind: 'AuthorizationCode', grantId: 'g' };
    await adapter('AuthorizationCode').upsert(id, payload, 60);
    await adapter('AuthorizationCode').consume(id);
    await adapter('AuthorizationCode').upsert(id, payload, 60);
    expect(await adapter('AuthorizationCode').find(id)).toMatchObject({ consumed: START / SECOND });
    await expect(adapter('AuthorizationCode').consume(id)).rejects.toBeInstanceOf(OidcModelConsumedError);
  });

  it('does not consume an expired or unknown model', async () => {
    setUp();
    const id = tokenId();
    await adapter('AuthorizationCode').upsert(id, { jti: id }, 60);
    time.advance(60 * SECOND);
    await expect(adapter('AuthorizationCode').consume(id)).rejects.toBeInstanceOf(OidcModelConsumedError);
    await expect(adapter('AuthorizationCode').consume(tokenId())).rejects.toBeInstanceOf(OidcModelConsumedError);
  });

  it('destroys one model', async () => {
    setUp();
    const [a, b] = [tokenId(), tokenId()];
    await adapter('AccessToken').upsert(a, { jti: a }, 60);
    await adapter('AccessToken').upsert(b, { jti: b }, 60);
    await adapter('AccessToken').destroy(a);
    expect(await adapter('AccessToken').find(a)).toBeUndefined();
    expect(await adapter('AccessToken').find(b)).toBeDefined();
  });

  it('revokeByGrantId removes every code and token of the grant, and only those', async () => {
    setUp();
    const ids = { code: tokenId(), access: tokenId(), refresh: tokenId(), otherGrant: tokenId() };
    await adapter('AuthorizationCode').upsert(ids.code, { jti: ids.code, grantId: 'grant-a' }, 60);
    await adapter('AccessToken').upsert(ids.access, { jti: ids.access, grantId: 'grant-a' }, 3600);
    await adapter('RefreshToken').upsert(ids.refresh, refreshTokenPayload(ids.refresh, 'grant-a'), 3600);
    await adapter('RefreshToken').upsert(ids.otherGrant, refreshTokenPayload(ids.otherGrant, 'grant-b'), 3600);
    // An Interaction names its grant too, but is not a token of it (as in the memory adapter).
    const interaction = tokenId();
    await adapter('Interaction').upsert(interaction, { jti: interaction, grantId: 'grant-a' }, 3600);

    // oidc-provider calls it on each token model's adapter in turn; the first call does the work.
    await adapter('RefreshToken').revokeByGrantId('grant-a');
    await adapter('AccessToken').revokeByGrantId('grant-a');

    expect(await adapter('AuthorizationCode').find(ids.code)).toBeUndefined();
    expect(await adapter('AccessToken').find(ids.access)).toBeUndefined();
    expect(await adapter('RefreshToken').find(ids.refresh)).toBeUndefined();
    expect(await adapter('RefreshToken').find(ids.otherGrant)).toBeDefined();
    expect(await adapter('Interaction').find(interaction)).toBeDefined();
  });

  it('finds a Session by uid, and honours its expiry', async () => {
    setUp();
    const id = tokenId();
    const session = { jti: id, kind: 'Session', uid: 'uid-123', accountId: 'acct-1', loginTs: START / SECOND };
    await adapter('Session').upsert(id, session, 600);
    const found = await adapter('Session').findByUid('uid-123');
    expect(found).toMatchObject({ uid: 'uid-123', accountId: 'acct-1', loginTs: START / SECOND });
    // The session id (the cookie) is not stored, so the copy found by uid cannot carry it.
    expect(JSON.stringify(found)).not.toContain(id);
    expect(await adapter('Session').findByUid('uid-other')).toBeUndefined();
    time.advance(600 * SECOND);
    expect(await adapter('Session').findByUid('uid-123')).toBeUndefined();
  });

  it('finds a DeviceCode by user code, and saving that copy updates the same row', async () => {
    setUp();
    const deviceCode = tokenId();
    const payload = { jti: deviceCode, kind: 'DeviceCode', userCode: 'BCDF-GHJK', clientId: 'device', grantId: 'g' };
    await adapter('DeviceCode').upsert(deviceCode, payload, 600);

    const found = await adapter('DeviceCode').findByUserCode('BCDF-GHJK');
    expect(found).toMatchObject({ userCode: 'BCDF-GHJK', clientId: 'device' });
    expect(await adapter('DeviceCode').findByUserCode('XXXX-XXXX')).toBeUndefined();

    // oidc-provider's device flow: the user approves, the code found by user code is saved again.
    const handle = String(found?.jti);
    expect(handle).not.toBe(deviceCode);
    await adapter('DeviceCode').upsert(handle, { ...found, accountId: 'acct-1' }, 600);
    // The device polls with the real device code and sees the approval.
    expect(await adapter('DeviceCode').find(deviceCode)).toEqual({ ...payload, accountId: 'acct-1' });
    await adapter('DeviceCode').consume(handle);
    expect(await adapter('DeviceCode').find(deviceCode)).toMatchObject({ consumed: START / SECOND });
  });

  it('accepts neither a row handle nor a stored hash as a model id for lookups', async () => {
    setUp();
    const deviceCode = tokenId();
    await adapter('DeviceCode').upsert(deviceCode, { jti: deviceCode, userCode: 'WXYZ-BCDF' }, 600);
    const handle = String((await adapter('DeviceCode').findByUserCode('WXYZ-BCDF'))?.jti);
    const idHash = hashBearerSecret(deviceCode);
    expect(await adapter('DeviceCode').find(handle)).toBeUndefined();
    expect(await adapter('DeviceCode').find(idHash)).toBeUndefined();

    // A handle forged from a leaked hash (or made by another process) does not reach the row.
    const forged = handle.replace(/\.[^.]+$/, '.AAAA');
    await adapter('DeviceCode').destroy(forged);
    await adapter('DeviceCode').destroy(`~h.${idHash}`);
    const otherProcess = createOidcAdapterFactory(store(), time.clock)('DeviceCode');
    await otherProcess.destroy(handle);
    expect(await adapter('DeviceCode').find(deviceCode)).toBeDefined();
  });

  it('never stores a refresh token value: no column of any row holds it', async () => {
    setUp();
    const refresh = tokenId();
    const interaction = tokenId();
    const sessionId = tokenId();
    await adapter('RefreshToken').upsert(refresh, refreshTokenPayload(refresh, 'grant-1'), 3600);
    // An Interaction's payload repeats its own id (returnTo) and the session cookie (session.cookie).
    await adapter('Interaction').upsert(
      interaction,
      {
        jti: interaction,
        kind: 'Interaction',
        returnTo: `https://idp.example/oauth2/default/v1/authorize/${interaction}`,
        session: { accountId: 'acct-1', uid: 'session-uid-1', cookie: sessionId },
        params: { client_id: 'traqs-api' },
        accountId: 'acct-1',
      },
      3600,
    );
    await adapter('Session').upsert(sessionId, { jti: sessionId, uid: 'session-uid-1', accountId: 'acct-1' }, 3600);

    const rows = await store().repos.oauth.listOidcModelsOfAccount('acct-1', time.clock());
    expect(rows.map((r) => r.model).sort()).toEqual(['Interaction', 'RefreshToken', 'Session']);
    const everything = dump(rows);
    for (const secret of [refresh, interaction, sessionId]) expect(everything).not.toContain(secret);
    expect(everything).toContain(hashBearerSecret(refresh));

    // The caller passes the id to find, so the payload comes back whole.
    expect(await adapter('RefreshToken').find(refresh)).toEqual(refreshTokenPayload(refresh, 'grant-1'));
    expect(await adapter('Interaction').find(interaction)).toMatchObject({
      jti: interaction,
      returnTo: `https://idp.example/oauth2/default/v1/authorize/${interaction}`,
      session: { accountId: 'acct-1', uid: 'session-uid-1' },
    });
  });

  it('round-trips payloads that contain the id, look like the placeholder, or hold any text', async () => {
    setUp();
    const id = 'portal';
    const payload = {
      client_id: 'portal',
      redirect_uris: ['https://portal.example/callback', 'https://portalportal.example/'],
      note: 'control \u0001id\u0001 and unicode ☃ \u0000 "quotes" \\ backslash',
    };
    await adapter('Client').upsert(id, payload);
    expect(await adapter('Client').find(id)).toEqual(payload);
    expect((await row(store(), 'Client', id))?.payload).not.toContain('portal');
    await expect(adapter('Client').upsert('a\u0001b', payload)).rejects.toThrow(TypeError);
  });
});
