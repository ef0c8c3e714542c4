import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { generateKeyPair, importJWK, type JWTPayload, SignJWT } from 'jose';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';
import * as oidc from 'openid-client';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../src/db/database.ts';
import { createStore } from '../src/db/store.ts';
import {
  buildDownload,
  type DownloadOptions,
  defaultFileStoreDir,
  tokenVerificationCounters,
} from '../src/download/app.ts';
import { WHOLE_READ_LIMIT } from '../src/download/file-answer.ts';
import { createSecretBox } from '../src/lib/secret-box.ts';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import { loadJwks } from '../src/oauth/keys.ts';
import { openFileStore } from '../src/refdata/file-store.ts';
import { createHttpBrowser } from './helpers/http-browser.ts';
import { authorize, discover, type OauthStack, startOauthStack } from './helpers/oauth.ts';
import { freePorts } from './helpers/product-process.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * The `download` service over real HTTP, with access tokens from the real authorization server
 * (sign-in with MFA, code + PKCE, refresh grant), answering every status a script can meet
 * (DESIGN "Reference data API", FAQ "400 Error", "403/404 Errors").
 */

/** Counts the SELECTs the services run, to show a download needs none. */
function createQueryCounter() {
  const counts = { select: 0, insert: 0, other: 0 };
  const plugin: KyselyPlugin = {
    transformQuery(args: PluginTransformQueryArgs) {
      if (args.node.kind === 'SelectQueryNode') counts.select++;
      else if (args.node.kind === 'InsertQueryNode') counts.insert++;
      else counts.other++;
      return args.node;
    },
    async transformResult(args: PluginTransformResultArgs) {
      return args.result;
    },
  };
  return { plugin, counts };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): Record<string, unknown>;
}

/** A raw HTTP request (no automatic decompression, unlike fetch). */
function call(
  baseUrl: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: url.port, method, path: `${url.pathname}${url.search}`, headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown>,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A pipe-delimited reference file with a header row, as the generator writes them. */
function referenceText(facility: string, file: string, date: string, rows: number): string {
  const lines = ['SYMBOL|CUSIP|NAME|STATUS|DATE'];
  for (let i = 0; i < rows; i++) {
    lines.push(`${facility.slice(0, 2)}${i}|${String(100000000 + i)}|${file} issue ${i}|A|${date}`);
  }
  return `${lines.join('\n')}\n`;
}

describe('download API', () => {
  let s: OauthStack;
  let app: FastifyInstance;
  let alice: ActiveUser;
  let api: oidc.Configuration;
  let storeDir: string;
  const queries = createQueryCounter();
  const files = new Map<string, Buffer>();
  const logLines: string[] = [];
  let aliceToken: string;
  let aliceRefresh: string;

  /** Publishes a file through the real file store (written atomically, then catalogued). */
  async function publish(facility: string, file: string, date: string, rows: number) {
    const body = Buffer.from(referenceText(facility, file, date, rows));
    files.set(`${facility}/${file}/${date}`, body);
    const row = await openFileStore(s.rt).put({ facility, file, date }, [body]);
    expect(row).toMatchObject({ size: body.length, sha256: sha256(body), records: rows });
    return body;
  }

  /** A catalog entry written by hand, pointing wherever `path` says (broken entries). */
  async function catalogOnly(facility: string, file: string, date: string, path: string) {
    const body = Buffer.from(referenceText(facility, file, date, 2));
    await s.rt.store.repos.refdata.upsertFile({
      id: `rf_${facility}_${file}_${date}`,
      facility,
      file,
      date,
      path,
      size: body.length,
      sha256: sha256(body),
      records: 2,
      created_at: s.clock(),
    });
  }

  /** Signs in with MFA and gets a refresh token and an access token, as the Programmatic page does. */
  async function getTokens(user: ActiveUser) {
    const browser = createHttpBrowser();
    const flow = await authorize(
      s,
      browser,
      api,
      {
        redirect_uri: s.programmaticCallback,
        scope: 'openid offline_access download',
        resource: s.downloadUrl,
        prompt: 'login consent',
        max_age: '0',
      },
      user,
    );
    if (!flow.callbackUrl) throw new Error(`no code: ${flow.last.status} ${flow.last.body.slice(0, 300)}`);
    const tokens = await oidc.authorizationCodeGrant(api, flow.callbackUrl, {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
      expectedNonce: flow.nonce,
    });
    return { access: tokens.access_token, refresh: tokens.refresh_token ?? '', id: tokens.id_token ?? '' };
  }

  /** A token signed with the idp's own active ES256 key, for claims the idp would not issue. */
  async function mintToken(claims: JWTPayload, header: { kid?: string } = {}) {
    const jwks = await loadJwks(s.rt.store, createSecretBox(s.rt.keys.secretBoxKey), s.clock);
    const jwk = jwks.keys.find((k) => k.alg === 'ES256');
    if (!jwk) throw new Error('no ES256 key');
    const now = Math.floor(s.clock() / 1000);
    return new SignJWT({
      sub: alice.user.id,
      username: alice.login,
      client_id: 'traqs-api',
      scope: 'download',
      apps: ['download', 'portal'],
      entitlements: ['ORF'],
      jti: `jti-${Math.random()}`,
      ...claims,
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: header.kid ?? jwk.kid })
      .setIssuer(s.issuer)
      .setAudience(typeof claims.aud === 'string' ? claims.aud : s.downloadUrl)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(await importJWK(jwk, 'ES256'));
  }

  const get = (path: string, token: string | undefined, headers: Record<string, string> = {}) =>
    call(s.downloadUrl, 'GET', path, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });
  const postForm = (path: string, token: string, form: Record<string, string>) =>
    call(s.downloadUrl, 'POST', path, {
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });

  /** Another download app on a free port (its own limits and counters), closed by the caller. */
  async function secondApp(options: DownloadOptions) {
    const other = await buildDownload(s.rt, { fileStoreDir: storeDir, ...options });
    const [port] = await freePorts(1);
    await other.listen({ port: port ?? 0, host: '127.0.0.1' });
    return { app: other, url: `http://127.0.0.1:${port}` };
  }

  beforeAll(async () => {
    const db = openDatabase(':memory:');
    await migrateToLatest(db);
    const store = createStore({ ...db, kysely: db.kysely.withPlugin(queries.plugin) });
    s = await startOauthStack({
      store,
      logger: pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) }),
    });
    storeDir = defaultFileStoreDir(s.config, s.rt.environment);
    alice = await activateUser(s, 'Alice@Acme.example');
    await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
    for (const facility of ['ORF', 'TRACE-CA']) {
      await s.rt.store.repos.refdata.grantEntitlement(alice.user.id, facility, s.clock());
    }
    await publish('ORF', 'EQUITYMASTERAC', '2026-12-02', 40);
    await publish('ORF', 'EQUITYMASTERAC', '2026-12-03', 50);
    await publish('ORF', 'EQUITYMASTERIN', '2026-12-03', 5);
    await publish('TRACE-CA', 'CAMASTER', '2026-12-03', 3000);
    await publish('ADF', 'ADFEQUITYMASTER', '2026-12-03', 10);
    // Catalogued, but the file is not on the disk / the entry points outside the store / the file
    // on the disk is not the size the catalog says (half written, or replaced behind its back).
    await catalogOnly('TRACE-CA', 'CADAILYLIST', '2026-12-01', 'TRACE-CA/CADAILYLIST/missing.txt');
    await catalogOnly('TRACE-CA', 'CADAILYLIST', '2026-12-02', '../../../../etc/hostname');
    await publish('TRACE-CA', 'CADAILYLIST', '2026-11-30', 2);
    writeFileSync(join(storeDir, 'TRACE-CA/CADAILYLIST/2026-11-30.txt'), 'SYMBOL|CUSIP\n');
    api = await discover(s, 'traqs-api');
    app = await buildDownload(s.rt);
    await app.listen({ port: Number(new URL(s.downloadUrl).port), host: '127.0.0.1' });
    ({ access: aliceToken, refresh: aliceRefresh } = await getTokens(alice));
  });
  afterAll(async () => {
    await app?.close();
    await s?.close();
    if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  });

  describe('discovery and health', () => {
    it('publishes RFC 9728 protected-resource metadata naming the authorization server', async () => {
      const r = await get('/.well-known/oauth-protected-resource', undefined);
      expect(r.status).toBe(200);
      expect(r.json()).toEqual({
        resource: s.downloadUrl,
        authorization_servers: [s.issuer],
        bearer_methods_supported: ['header'],
        scopes_supported: ['download'],
        resource_name: 'TRAQS API Download (NTF)',
      });
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    });

    it('answers /healthz', async () => {
      const r = await get('/healthz', undefined);
      expect(r.status).toBe(200);
      expect(r.json()).toEqual({ status: 'ok' });
    });

    it('answers an unknown path with a JSON 404', async () => {
      const r = await get('/nothing/here', aliceToken);
      expect(r.status).toBe(404);
      expect(r.json().error).toBe('not_found');
    });
  });

  describe('401: the access token', () => {
    const challenge = (r: Answer) => String(r.headers['www-authenticate']);

    it('asks for a token without naming an error when none was sent (RFC 6750 §3.1)', async () => {
      const r = await get('/v1/files', undefined);
      expect(r.status).toBe(401);
      expect(challenge(r)).toMatch(/^Bearer realm="TRAQS API Download \(NTF\)", resource_metadata="[^"]+"$/);
      expect(challenge(r)).not.toContain('error=');
      expect(r.json().error).toBe('invalid_token');
      expect(String(r.json().error_description)).toContain('Authorization: Bearer');
      expect(r.headers['cache-control']).toBe('no-store');
      const basic = await get('/v1/files', undefined, { authorization: 'Basic dXNlcjpwYXNz' });
      expect(basic.status).toBe(401);
      expect(challenge(basic)).not.toContain('error=');
    });

    it('refuses a malformed, badly signed, foreign-key or wrong-audience token with invalid_token', async () => {
      const [head, payload, sig] = aliceToken.split('.') as [string, string, string];
      const flipped = `${head}.${payload}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`;
      const foreign = await new SignJWT({ sub: alice.user.id })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'someone-elses-key' })
        .setIssuer(s.issuer)
        .setAudience(s.downloadUrl)
        .setExpirationTime('1h')
        .sign((await generateKeyPair('ES256')).privateKey);
      for (const [token, description] of [
        ['not-a-jwt', 'malformed'],
        [flipped, 'signature does not verify'],
        [foreign, 'unknown key'],
        [await mintToken({ aud: 'https://elsewhere.example' }), 'not issued for this API'],
        [await mintToken({ apps: undefined }), 'lacks the apps claim'],
      ] as const) {
        const r = await get('/v1/files', token);
        expect(r.status, description).toBe(401);
        expect(challenge(r), description).toContain('error="invalid_token"');
        expect(challenge(r), description).toContain(description);
        expect(r.json(), description).toEqual({ error: 'invalid_token', error_description: expect.any(String) });
      }
    });

    it('refuses an ID token and a JWT that is not typed as an access token (RFC 9068 §4)', async () => {
      const { id } = await getTokens(alice);
      const r = await get('/v1/files', id);
      expect(r.status).toBe(401);
      expect(String(r.json().error_description)).toContain('not an access token');
      const jwks = await loadJwks(s.rt.store, createSecretBox(s.rt.keys.secretBoxKey), s.clock);
      const jwk = jwks.keys.find((k) => k.alg === 'ES256');
      const untyped = await new SignJWT({ sub: alice.user.id, jti: 'x', username: alice.login })
        .setProtectedHeader({ alg: 'ES256', kid: jwk?.kid ?? '' })
        .setIssuer(s.issuer)
        .setAudience(s.downloadUrl)
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(await importJWK(jwk ?? {}, 'ES256'));
      const typ = await get('/v1/files', untyped);
      expect(typ.status).toBe(401);
      expect(String(typ.json().error_description)).toContain('typ');
    });

    it('refuses the token once 60 minutes have passed on the injected clock, cached or not', async () => {
      const { access } = await getTokens(alice);
      expect((await get('/v1/files', access)).status).toBe(200);
      const { access: unused } = await getTokens(alice);
      const start = s.clock();
      try {
        s.clock.advance(61 * 60_000);
        for (const token of [access, unused]) {
          const r = await get('/v1/files', token);
          expect(r.status).toBe(401);
          expect(String(r.headers['www-authenticate'])).toContain('error="invalid_token"');
          expect(String(r.json().error_description)).toContain('expired');
        }
      } finally {
        s.clock.set(start);
      }
    });
  });

  describe('403: app assignment and entitlements', () => {
    it('answers "App not assigned" to a token whose user is not assigned to download', async () => {
      const r = await get('/v1/files', await mintToken({ apps: ['portal'] }));
      expect(r.status).toBe(403);
      expect(r.json().error).toBe('app_not_assigned');
      expect(String(r.json().error_description)).toMatch(/^App not assigned: alice@acme\.example .*212-231-5180/);
    });

    it('refuses a facility the user is not entitled to, in the catalog and for a file', async () => {
      for (const path of [
        '/v1/files/ADF/ADFEQUITYMASTER',
        '/v1/files?facility=ADF',
        '/DownloadHandler.ashx?action=DOWNLOAD&facility=ADF&file=ADFEQUITYMASTER',
      ]) {
        const r = await get(path, aliceToken);
        expect(r.status, path).toBe(403);
        expect(r.json(), path).toEqual({ error: 'not_entitled', error_description: 'Not entitled to facility ADF' });
      }
    });

    it('refuses a token without the download scope', async () => {
      const r = await get('/v1/files', await mintToken({ scope: 'openid' }));
      expect(r.status).toBe(403);
      expect(r.json().error).toBe('insufficient_scope');
      expect(String(r.headers['www-authenticate'])).toContain('scope="download"');
    });
  });

  describe('the catalog', () => {
    it('lists the files of the entitled facilities only, newest first per file, with download URLs', async () => {
      const r = await get('/v1/files', aliceToken);
      expect(r.status).toBe(200);
      expect(r.headers['cache-control']).toBe('no-store');
      const list = r.json().files as Record<string, unknown>[];
      expect(list.map((f) => `${f.facility}/${f.file}/${f.date}`)).toEqual([
        'ORF/EQUITYMASTERAC/2026-12-03',
        'ORF/EQUITYMASTERAC/2026-12-02',
        'ORF/EQUITYMASTERIN/2026-12-03',
        'TRACE-CA/CADAILYLIST/2026-12-02',
        'TRACE-CA/CADAILYLIST/2026-12-01',
        'TRACE-CA/CADAILYLIST/2026-11-30',
        'TRACE-CA/CAMASTER/2026-12-03',
      ]);
      const body = files.get('ORF/EQUITYMASTERAC/2026-12-03') as Buffer;
      expect(list[0]).toEqual({
        facility: 'ORF',
        file: 'EQUITYMASTERAC',
        date: '2026-12-03',
        size: body.length,
        sha256: sha256(body),
        records: 50,
        url: `${s.downloadUrl}/v1/files/ORF/EQUITYMASTERAC?date=2026-12-03`,
      });
      // The listed URL downloads the listed file.
      const file = await get(String(list[0]?.url), aliceToken);
      expect(sha256(file.body)).toBe(list[0]?.sha256);
    });

    it('filters by facility and by date', async () => {
      const orf = (await get('/v1/files?facility=orf&since=2026-12-03', aliceToken)).json().files as { file: string }[];
      expect(orf.map((f) => f.file)).toEqual(['EQUITYMASTERAC', 'EQUITYMASTERIN']);
      expect((await get('/v1/files?since=2026-13-01', aliceToken)).status).toBe(400);
      expect((await get('/v1/files?facility=NOPE', aliceToken)).status).toBe(404);
    });
  });

  describe('400 and 404: what was asked for', () => {
    it('names the missing or malformed parameter', async () => {
      for (const [path, description] of [
        ['/DownloadHandler.ashx?facility=ORF&file=EQUITYMASTERAC', 'missing required parameter action'],
        ['/DownloadHandler.ashx?action=DOWNLOAD&file=EQUITYMASTERAC', 'missing required parameter facility'],
        ['/DownloadHandler.ashx?action=DOWNLOAD&facility=ORF', 'missing required parameter file'],
        ['/DownloadHandler.ashx?action=LIST&facility=ORF&file=EQUITYMASTERAC', 'unsupported value of parameter action'],
        ['/v1/files/ORF/EQUITYMASTERAC?date=2026-12-3', 'malformed parameter date'],
        ['/v1/files/ORF/EQUITYMASTERAC?date=2026-02-30', 'malformed parameter date'],
        ['/v1/files/ORF/EQUITYMASTERAC?date=2026-12-02&date=2026-12-03', 'parameter date given more than once'],
        ['/v1/files/OR%20F/EQUITYMASTERAC', 'malformed parameter facility'],
      ] as const) {
        const r = await get(path, aliceToken);
        expect(r.status, path).toBe(400);
        expect(r.json().error, path).toBe('invalid_request');
        expect(String(r.json().error_description), path).toContain(description);
      }
    });

    it('says which of facility, file and date does not exist', async () => {
      for (const [path, description] of [
        ['/v1/files/NOPE/EQUITYMASTERAC', 'no such facility NOPE'],
        ['/v1/files/ORF/CAMASTER', 'facility ORF has no file CAMASTER'],
        ['/v1/files/ORF/EQUITYMASTERAC?date=2025-01-01', 'no EQUITYMASTERAC file of facility ORF for 2025-01-01'],
        ['/v1/files/TRACE-CA/CAMASTER?date=2026-12-02', 'for 2026-12-02'],
      ] as const) {
        const r = await get(path, aliceToken);
        expect(r.status, path).toBe(404);
        expect(r.json(), path).toEqual({ error: 'not_found', error_description: expect.stringContaining(description) });
      }
    });

    it('answers a catalogued file missing from the disk, outside the store or of another size with a 500 and no detail', async () => {
      for (const date of ['2026-12-01', '2026-12-02', '2026-11-30']) {
        const r = await get(`/v1/files/TRACE-CA/CADAILYLIST?date=${date}`, aliceToken);
        expect(r.status, date).toBe(500);
        expect(r.json().error).toBe('server_error');
        const text = r.body.toString();
        expect(text).not.toMatch(/etc\/hostname|missing\.txt|ENOENT|at .*\.ts/);
      }
      const logged = logLines.filter((l) => l.includes('A catalogued reference file cannot be read'));
      expect(logged.map((l) => JSON.parse(l).path)).toEqual([
        join(storeDir, 'TRACE-CA/CADAILYLIST/missing.txt'),
        '../../../../etc/hostname',
        join(storeDir, 'TRACE-CA/CADAILYLIST/2026-11-30.txt'),
      ]);
    });
  });

  describe('files', () => {
    it('streams the latest file by default, with its name, ETag and digest', async () => {
      const body = files.get('ORF/EQUITYMASTERAC/2026-12-03') as Buffer;
      const r = await get('/v1/files/ORF/EQUITYMASTERAC', aliceToken);
      expect(r.status).toBe(200);
      expect(r.body.equals(body)).toBe(true);
      expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(r.headers['content-disposition']).toBe('attachment; filename="ORF_EQUITYMASTERAC_20261203.txt"');
      expect(r.headers.etag).toBe(`"${sha256(body)}"`);
      expect(r.headers['x-content-sha256']).toBe(sha256(body));
      expect(r.headers['repr-digest']).toBe(`sha-256=:${Buffer.from(sha256(body), 'hex').toString('base64')}:`);
      expect(r.headers['content-length']).toBe(String(body.length));
      expect(r.headers['accept-ranges']).toBe('bytes');
      expect(r.headers.vary).toBe('Accept-Encoding');
      expect(r.headers['cache-control']).toBe('private, no-cache');
      expect(r.headers['x-frame-options']).toBe('DENY');

      const older = await get('/v1/files/orf/equitymasterac?date=2026-12-02', aliceToken);
      expect(older.body.equals(files.get('ORF/EQUITYMASTERAC/2026-12-02') as Buffer)).toBe(true);
      expect(older.headers['content-disposition']).toContain('ORF_EQUITYMASTERAC_20261202.txt');
    });

    it('answers 304 to If-None-Match with the current ETag', async () => {
      const first = await get('/v1/files/ORF/EQUITYMASTERAC', aliceToken);
      const etag = String(first.headers.etag);
      const again = await get('/v1/files/ORF/EQUITYMASTERAC', aliceToken, { 'if-none-match': `"other", ${etag}` });
      expect(again.status).toBe(304);
      expect(again.body.length).toBe(0);
      expect(again.headers.etag).toBe(etag);
      const older = await get('/v1/files/ORF/EQUITYMASTERAC?date=2026-12-02', aliceToken, { 'if-none-match': etag });
      expect(older.status).toBe(200);
    });

    it('serves one byte range with 206, and 416 for a range outside the file', async () => {
      const body = files.get('TRACE-CA/CAMASTER/2026-12-03') as Buffer;
      const path = '/v1/files/TRACE-CA/CAMASTER';
      for (const [range, start, end] of [
        ['bytes=0-99', 0, 99],
        ['bytes=1000-', 1000, body.length - 1],
        ['bytes=-500', body.length - 500, body.length - 1],
        [`bytes=10-${body.length + 1000}`, 10, body.length - 1],
      ] as const) {
        const r = await get(path, aliceToken, { range, 'accept-encoding': 'gzip' });
        expect(r.status, range).toBe(206);
        expect(r.headers['content-range'], range).toBe(`bytes ${start}-${end}/${body.length}`);
        expect(r.headers['content-encoding'], range).toBeUndefined();
        expect(r.body.equals(body.subarray(start, end + 1)), range).toBe(true);
      }
      // A small file (read whole, sent as one buffer) answers ranges the same way.
      const small = files.get('ORF/EQUITYMASTERAC/2026-12-03') as Buffer;
      const part = await get('/v1/files/ORF/EQUITYMASTERAC', aliceToken, { range: 'bytes=-10' });
      expect(part.status).toBe(206);
      expect(part.headers['content-range']).toBe(`bytes ${small.length - 10}-${small.length - 1}/${small.length}`);
      expect(part.body.equals(small.subarray(small.length - 10))).toBe(true);
      const outside = await get(path, aliceToken, { range: `bytes=${body.length}-` });
      expect(outside.status).toBe(416);
      expect(outside.headers['content-range']).toBe(`bytes */${body.length}`);
      expect(outside.json().error).toBe('range_not_satisfiable');
      // If-Range with another version's ETag: the whole (current) file.
      const changed = await get(path, aliceToken, { range: 'bytes=0-9', 'if-range': '"older"' });
      expect(changed.status).toBe(200);
      expect(changed.body.length).toBe(body.length);
      // Several ranges: RFC 9110 §14.2 lets the server send the whole file instead.
      expect((await get(path, aliceToken, { range: 'bytes=0-1,5-6' })).status).toBe(200);
    });

    it('compresses with gzip when the client accepts it, small and large files alike', async () => {
      const small = files.get('ORF/EQUITYMASTERAC/2026-12-03') as Buffer;
      const zipped = await get('/v1/files/ORF/EQUITYMASTERAC', aliceToken, { 'accept-encoding': 'gzip' });
      expect(zipped.headers['content-encoding']).toBe('gzip');
      expect(gunzipSync(zipped.body).equals(small)).toBe(true);
      const body = files.get('TRACE-CA/CAMASTER/2026-12-03') as Buffer;
      expect(body.length).toBeGreaterThan(WHOLE_READ_LIMIT);
      const r = await get('/v1/files/TRACE-CA/CAMASTER', aliceToken, { 'accept-encoding': 'br;q=1, gzip;q=0.8' });
      expect(r.status).toBe(200);
      expect(r.headers['content-encoding']).toBe('gzip');
      expect(r.headers['content-length']).toBeUndefined();
      expect(r.headers['x-content-sha256']).toBe(sha256(body));
      expect(r.body.length).toBeLessThan(body.length / 3);
      expect(gunzipSync(r.body).equals(body)).toBe(true);
      const refused = await get('/v1/files/TRACE-CA/CAMASTER', aliceToken, { 'accept-encoding': 'gzip;q=0' });
      expect(refused.headers['content-encoding']).toBeUndefined();
    });

    it('keeps a small file in memory for a minute, then notices it is gone from the disk', async () => {
      const body = await publish('ORF', 'EQUITYMASTERIN', '2026-12-01', 3);
      const path = '/v1/files/ORF/EQUITYMASTERIN?date=2026-12-01';
      expect((await get(path, aliceToken)).body.equals(body)).toBe(true);
      rmSync(join(storeDir, 'ORF/EQUITYMASTERIN/2026-12-01.txt'));
      const kept = await get(path, aliceToken);
      expect(kept.status).toBe(200);
      expect(kept.body.equals(body)).toBe(true);
      const start = s.clock();
      try {
        s.clock.advance(60_000);
        expect((await get(path, aliceToken)).status).toBe(500);
      } finally {
        s.clock.set(start);
      }
    });

    it('answers HEAD with the headers only', async () => {
      const body = files.get('ORF/EQUITYMASTERAC/2026-12-03') as Buffer;
      const r = await call(s.downloadUrl, 'HEAD', '/v1/files/ORF/EQUITYMASTERAC', {
        headers: { authorization: `Bearer ${aliceToken}` },
      });
      expect(r.status).toBe(200);
      expect(r.headers['content-length']).toBe(String(body.length));
      expect(r.body.length).toBe(0);
    });
  });

  describe('DownloadHandler.ashx', () => {
    const query = 'action=DOWNLOAD&facility=ORF&file=EQUITYMASTERAC';
    const latest = () => files.get('ORF/EQUITYMASTERAC/2026-12-03') as Buffer;

    it('downloads by GET with query parameters', async () => {
      const r = await get(`/DownloadHandler.ashx?${query}`, aliceToken);
      expect(r.status).toBe(200);
      expect(r.body.equals(latest())).toBe(true);
      const lower = await get(`/downloadhandler.ashx?${query}&date=2026-12-02`, aliceToken);
      expect(lower.status).toBe(200);
      expect(lower.headers['content-disposition']).toContain('20261202');
    });

    it('downloads by POST when the username matches the token, in any case', async () => {
      const r = await postForm('/DownloadHandler.ashx', aliceToken, {
        action: 'DOWNLOAD',
        facility: 'ORF',
        file: 'EQUITYMASTERAC',
        username: 'ALICE@acme.EXAMPLE',
      });
      expect(r.status).toBe(200);
      expect(r.body.equals(latest())).toBe(true);
      // Parameters may come in the query and the form together.
      const mixed = await postForm(`/DownloadHandler.ashx?${query}`, aliceToken, { username: alice.login });
      expect(mixed.status).toBe(200);
    });

    it('refuses a POST with another username (403) or none (400)', async () => {
      const wrong = await postForm(`/DownloadHandler.ashx?${query}`, aliceToken, { username: 'mallory@acme.example' });
      expect(wrong.status).toBe(403);
      expect(wrong.json().error).toBe('username_mismatch');
      expect(String(wrong.json().error_description)).toContain('mallory@acme.example');
      const missing = await postForm(`/DownloadHandler.ashx?${query}`, aliceToken, {});
      expect(missing.status).toBe(400);
      expect(missing.json()).toEqual({
        error: 'invalid_request',
        error_description: 'missing required parameter username',
      });
      const json = await call(s.downloadUrl, 'POST', `/DownloadHandler.ashx?${query}`, {
        headers: { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ username: alice.login }),
      });
      expect(json.status).toBe(415);
      const big = await postForm(`/DownloadHandler.ashx?${query}`, aliceToken, { username: 'x'.repeat(9000) });
      expect(big.status).toBe(413);
    });
  });

  describe('the token endpoint under the download URL', () => {
    it('forwards a refresh grant; the idp records the caller address the download service saw', async () => {
      const r = await app.inject({
        method: 'POST',
        url: '/oauth2/token',
        remoteAddress: '198.51.100.23',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: aliceRefresh,
          client_id: 'traqs-api',
        }).toString(),
      });
      expect(r.statusCode).toBe(200);
      expect(r.headers['cache-control']).toBe('no-store');
      const body = r.json() as Record<string, unknown>;
      expect(body.token_type).toBe('Bearer');
      expect(body.expires_in).toBe(3600);
      const row = await s.rt.store.repos.apiTokens.find(hashBearerSecret(aliceRefresh));
      expect(row?.last_used_ip).toBe('198.51.100.23');
      // The token it returns works here.
      expect((await get('/v1/files', String(body.access_token))).status).toBe(200);
    });

    it('passes the authorization server’s refusals through', async () => {
      const r = await call(s.downloadUrl, 'POST', '/oauth2/token', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=refresh_token&client_id=traqs-api',
      });
      expect(r.status).toBe(400);
      expect(r.json().error).toBe('invalid_request');
      expect(String(r.json().error_description)).toContain('refresh_token');
    });

    it('answers 502 temporarily_unavailable when the authorization server cannot be reached', async () => {
      const [closedPort] = await freePorts(1);
      const other = await secondApp({ tokenEndpoint: `http://127.0.0.1:${closedPort}/oauth2/default/v1/token` });
      try {
        const r = await call(other.url, 'POST', '/oauth2/token', {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `grant_type=refresh_token&client_id=traqs-api&refresh_token=${aliceRefresh}`,
        });
        expect(r.status).toBe(502);
        expect(r.json().error).toBe('temporarily_unavailable');
      } finally {
        await other.app.close();
      }
    });
  });

  describe('rate limit', () => {
    it('answers 429 with Retry-After past the per-user budget, and again when time has passed', async () => {
      const other = await secondApp({ rateLimit: { perMinute: 60, burst: 3 } });
      try {
        for (let i = 0; i < 3; i++) expect((await call(other.url, 'GET', '/v1/files', auth())).status).toBe(200);
        const limited = await call(other.url, 'GET', '/v1/files', auth());
        expect(limited.status).toBe(429);
        expect(limited.headers['retry-after']).toBe('1');
        expect(limited.json().error).toBe('rate_limited');
        // Another user has a budget of their own.
        expect((await call(other.url, 'GET', '/v1/files', auth(await mintToken({ sub: 'other-user' })))).status).toBe(
          200,
        );
        s.clock.advance(1000);
        expect((await call(other.url, 'GET', '/v1/files', auth())).status).toBe(200);
      } finally {
        await other.app.close();
      }
    });
    const auth = (token = aliceToken) => ({ headers: { authorization: `Bearer ${token}` } });
  });

  describe('cost per request and audit', () => {
    it('verifies each token once and reads nothing from the database per request', async () => {
      const other = await secondApp({});
      try {
        const auth = { headers: { authorization: `Bearer ${aliceToken}` } };
        expect((await call(other.url, 'GET', '/v1/files', auth)).status).toBe(200);
        expect((await call(other.url, 'GET', '/v1/files/ORF/EQUITYMASTERAC', auth)).status).toBe(200);
        const before = { ...queries.counts };
        for (let i = 0; i < 20; i++) {
          expect((await call(other.url, 'GET', '/v1/files/ORF/EQUITYMASTERAC', auth)).status).toBe(200);
          expect(
            (
              await call(
                other.url,
                'GET',
                `/DownloadHandler.ashx?action=DOWNLOAD&facility=TRACE-CA&file=CAMASTER`,
                auth,
              )
            ).status,
          ).toBe(200);
          expect((await call(other.url, 'GET', '/v1/files?facility=ORF', auth)).status).toBe(200);
        }
        expect(queries.counts.select - before.select).toBe(0);
        expect(tokenVerificationCounters(other.app)).toEqual({ verifications: 1, cacheHits: 61 });
      } finally {
        await other.app.close();
      }
    });

    it('records every download and every refusal of a known user in the audit log', async () => {
      const other = await secondApp({ auditFlushMs: 60_000 });
      const { access } = await getTokens(alice);
      const auth = { headers: { authorization: `Bearer ${access}`, 'user-agent': 'traqs-download/1.0' } };
      expect((await call(other.url, 'GET', '/v1/files/ORF/EQUITYMASTERAC?date=2026-12-02', auth)).status).toBe(200);
      expect(
        (
          await call(other.url, 'GET', '/v1/files/ORF/EQUITYMASTERAC', {
            headers: { ...auth.headers, range: 'bytes=0-9' },
          })
        ).status,
      ).toBe(206);
      expect((await call(other.url, 'GET', '/v1/files/ADF/ADFEQUITYMASTER', auth)).status).toBe(403);
      // Buffered, not yet written; closing the app writes them.
      const jtiEvents = async () =>
        (await s.rt.store.repos.audit.listEvents({ actorId: alice.user.id, limit: 500 })).filter((e) =>
          e.details.includes(JSON.parse(Buffer.from(access.split('.')[1] ?? '', 'base64url').toString()).jti),
        );
      expect(await jtiEvents()).toEqual([]);
      await other.app.close();
      const events = (await jtiEvents()).reverse();
      expect(events.map((e) => [e.action, e.outcome])).toEqual([
        ['download.file', 'success'],
        ['download.file', 'success'],
        ['download.refused', 'denied'],
      ]);
      expect(events[0]?.ip).toBe('127.0.0.1');
      expect(events[0]?.user_agent).toBe('traqs-download/1.0');
      expect(JSON.parse(events[0]?.details ?? '{}')).toMatchObject({
        facility: 'ORF',
        file: 'EQUITYMASTERAC',
        date: '2026-12-02',
        status: 200,
        client: 'traqs-api',
      });
      expect(JSON.parse(events[1]?.details ?? '{}')).toMatchObject({ status: 206, range: '0-9' });
      expect(JSON.parse(events[2]?.details ?? '{}')).toMatchObject({ status: 403, error: 'not_entitled' });
    });
  });
});
