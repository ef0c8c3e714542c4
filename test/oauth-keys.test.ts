import { randomBytes } from 'node:crypto';
import { compactVerify, createLocalJWKSet, importJWK, SignJWT } from 'jose';
import { expect, it } from 'vitest';
import { createSecretBox } from '../src/lib/secret-box.ts';
import { ensureSigningKey, loadJwks, loadPublicJwks, rotateSigningKey, SIGNING_ALG } from '../src/oauth/keys.ts';
import { DEFAULT_SIGNED_TOKEN_LIFETIMES, retiringKeyWindowMs } from '../src/oauth/lifetimes.ts';
import { describeEachBackend } from './helpers/databases.ts';

/**
 * Signing keys of the authorization server on both databases: created once at first start even by
 * two nodes at once, sealed at rest, rotated with the old key kept for verification until the
 * tokens it signed have expired (issue #4). The clock is injected.
 */

const START = 1_750_000_000_000;
const MINUTE = 60_000;

function testClock() {
  let now = START;
  return { clock: () => now, advance: (ms: number) => (now += ms) };
}

const secretBox = createSecretBox(randomBytes(32));

async function signWith(jwk: Awaited<ReturnType<typeof loadJwks>>['keys'][number]): Promise<string> {
  return new SignJWT({ sub: 'acct-1' })
    .setProtectedHeader({ alg: SIGNING_ALG, kid: String(jwk.kid) })
    .sign(await importJWK(jwk, SIGNING_ALG));
}

describeEachBackend('signing keys', ({ store, connectAgain }) => {
  it('creates one ES256 key at first start, identified by its RFC 7638 thumbprint', async () => {
    const { clock } = testClock();
    const first = await ensureSigningKey(store(), secretBox, clock);
    expect(first.created).toBe(true);
    expect(first.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await ensureSigningKey(store(), secretBox, clock)).toEqual({ alg: 'ES256', kid: first.kid, created: false });

    const jwks = await loadJwks(store(), secretBox, clock);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: first.kid });
    expect(jwks.keys[0]?.d).toEqual(expect.any(String));
    const { d: _d, ...publicPart } = jwks.keys[0] ?? {};
    expect((await loadPublicJwks(store(), clock)).keys).toEqual([publicPart]);
  });

  it('creates exactly one key when two nodes start at once', async () => {
    const { clock } = testClock();
    const nodes = [store(), connectAgain(), store(), connectAgain()];
    const results = await Promise.all(nodes.map((node) => ensureSigningKey(node, secretBox, clock)));
    expect(new Set(results.map((r) => r.kid)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect((await loadJwks(store(), secretBox, clock)).keys).toHaveLength(1);
  });

  it('keeps the private key sealed at rest: no `d` in the row, and no opening without the key', async () => {
    const { clock } = testClock();
    await ensureSigningKey(store(), secretBox, clock);
    const [privateJwk] = (await loadJwks(store(), secretBox, clock)).keys;
    const d = String(privateJwk?.d);
    const row = await store().repos.oauth.findActiveSigningKey('ES256');
    const everything = JSON.stringify(row);
    expect(everything).not.toContain(d);
    expect(everything).not.toMatch(/"d"\s*:/);
    expect(JSON.parse(String(row?.public_jwk))).not.toHaveProperty('d');

    await expect(loadJwks(store(), createSecretBox(randomBytes(32)), clock)).rejects.toThrow();
  });

  it('rotates: the new key signs first, the old one verifies until retire_after, then drops out', async () => {
    const { clock, advance } = testClock();
    const { kid: oldKid } = await ensureSigningKey(store(), secretBox, clock);
    const [oldKey] = (await loadJwks(store(), secretBox, clock)).keys;
    if (!oldKey) throw new Error('no key');
    const signedBefore = await signWith(oldKey);

    advance(10 * MINUTE);
    const rotated = await rotateSigningKey(store(), secretBox, clock);
    expect(rotated.retiringKid).toBe(oldKid);
    expect(rotated.kid).not.toBe(oldKid);
    // The longest signed token (60-minute access tokens, one-hour ID tokens) plus the margin.
    expect(rotated.retireAfter).toBe(clock() + retiringKeyWindowMs(DEFAULT_SIGNED_TOKEN_LIFETIMES));
    expect(rotated.retireAfter - clock()).toBeGreaterThanOrEqual(60 * MINUTE);
    expect(await ensureSigningKey(connectAgain(), secretBox, clock)).toEqual({
      alg: 'ES256',
      kid: rotated.kid,
      created: false,
    });

    // oidc-provider signs with the first key of the set; the retiring one is still published.
    const during = await loadJwks(store(), secretBox, clock);
    expect(during.keys.map((k) => k.kid)).toEqual([rotated.kid, oldKid]);
    const publicSet = createLocalJWKSet(await loadPublicJwks(store(), clock));
    await expect(compactVerify(signedBefore, publicSet)).resolves.toBeDefined();

    advance(rotated.retireAfter - clock() - 1);
    expect((await loadJwks(store(), secretBox, clock)).keys.map((k) => k.kid)).toEqual([rotated.kid, oldKid]);

    advance(1);
    expect((await loadJwks(store(), secretBox, clock)).keys.map((k) => k.kid)).toEqual([rotated.kid]);
    const laterSet = createLocalJWKSet(await loadPublicJwks(store(), clock));
    await expect(compactVerify(signedBefore, laterSet)).rejects.toThrow();
  });

  it('keeps every key still inside its window across several rotations, newest first', async () => {
    const { clock, advance } = testClock();
    const a = await ensureSigningKey(store(), secretBox, clock);
    advance(MINUTE);
    const b = await rotateSigningKey(store(), secretBox, clock);
    advance(MINUTE);
    const c = await rotateSigningKey(store(), secretBox, clock);
    expect((await loadJwks(store(), secretBox, clock)).keys.map((k) => k.kid)).toEqual([c.kid, b.kid, a.kid]);
    // The first rotation's `retireAfter` is when `a` leaves; `b` stays a minute longer.
    advance(b.retireAfter - clock());
    expect((await loadPublicJwks(store(), clock)).keys.map((k) => k.kid)).toEqual([c.kid, b.kid]);
    advance(c.retireAfter - clock());
    expect((await loadPublicJwks(store(), clock)).keys.map((k) => k.kid)).toEqual([c.kid]);
  });

  it('rotates with the lifetimes it is given', async () => {
    const { clock } = testClock();
    await ensureSigningKey(store(), secretBox, clock);
    const lifetimes = { accessTokenSeconds: 3600, idTokenSeconds: 7200, rotationMarginSeconds: 60 };
    const rotated = await rotateSigningKey(store(), secretBox, clock, lifetimes);
    expect(rotated.retireAfter).toBe(START + (7200 + 60) * 1000);
  });
});
