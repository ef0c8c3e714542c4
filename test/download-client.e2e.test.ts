import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildDownload } from '../src/download/app.ts';
import { EXIT_CODES } from '../src/download-client/errors.ts';
import { openFileStore } from '../src/refdata/file-store.ts';
import { createHttpBrowser } from './helpers/http-browser.ts';
import { authorize, discover, type OauthStack, startOauthStack } from './helpers/oauth.ts';
import { repoRoot } from './helpers/product-process.ts';
import { createRealTimeClock } from './helpers/stack.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * `traqs-download` as users run it (`node bin/traqs-download.js`, a child process) against the
 * real stack: the idp issues a refresh token through a sign-in with MFA, the real download service
 * verifies JWT access tokens and serves a catalogued file, and a test-only HTTP proxy in front of
 * the service delays, cuts or stalls answers the way a bad network does.
 *
 * Access tokens live 3 seconds here (policy `accessTokenMinutes: 0.05`); the service accepts one
 * up to 5 seconds past its expiry (clock tolerance), so a token is refused about 8 s after issue.
 */

const ACCESS_TOKEN_SECONDS = 3;
const SERVICE_CLOCK_TOLERANCE_MS = 5_000;

/**
 * The real time, moved forward only while users sign in (each TOTP code must come from a step
 * not used before) and set back to the real time afterwards: oidc-provider stamps access tokens
 * with the real time, and the download service judges them by this clock.
 */
function createSteppingClock() {
  const clock = createRealTimeClock();
  return Object.assign(clock, { realTime: () => clock.set(Date.now()) });
}

interface ProxiedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  status?: number;
  /** Body bytes passed on to the client. */
  bytes: number;
}

/** What the proxy does to one request: hold it before passing it on, cut or stall its answer. */
interface Plan {
  holdMs?: number;
  /** Drop the connection after this many body bytes. */
  cutAfter?: number;
  /** Pass this many body bytes, then nothing more (the connection stays open). */
  stallAfter?: number;
}

/** A test-only HTTP proxy in front of the download service, logging every request. */
async function startFaultyProxy(upstream: string) {
  const target = new URL(upstream);
  const log: ProxiedRequest[] = [];
  let plan: (req: IncomingMessage, fileRequests: number) => Plan = () => ({});
  const stalled = new Set<() => void>();

  const server: Server = createServer((req, res) => {
    const entry: ProxiedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, bytes: 0 };
    log.push(entry);
    const isFileGet = req.method === 'GET' && /^\/v1\/files\/[^/?]+\/[^/?]+/.test(entry.path);
    const p = isFileGet
      ? plan(req, log.filter((r) => r.method === 'GET' && /^\/v1\/files\/[^/?]+\/[^/?]+/.test(r.path)).length)
      : {};
    const forward = () => {
      const up = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
        },
        (answer) => {
          entry.status = answer.statusCode;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          const limit = p.cutAfter ?? p.stallAfter;
          answer.on('data', (chunk: Buffer) => {
            if (limit === undefined) {
              entry.bytes += chunk.length;
              res.write(chunk);
              return;
            }
            const room = limit - entry.bytes;
            if (room <= 0) return;
            const piece = chunk.subarray(0, room);
            entry.bytes += piece.length;
            res.write(piece);
            if (entry.bytes >= limit) {
              if (p.cutAfter !== undefined) {
                // Let the bytes leave, then break the connection as a failing network would.
                setTimeout(() => {
                  res.socket?.destroy();
                  up.destroy();
                }, 50);
              } else {
                answer.pause();
                stalled.add(() => up.destroy());
              }
            }
          });
          answer.on('end', () => {
            if (limit === undefined) res.end();
          });
        },
      );
      up.on('error', () => res.socket?.destroy());
      req.pipe(up);
    };
    if (p.holdMs) setTimeout(forward, p.holdMs);
    else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    setPlan(f: typeof plan) {
      plan = f;
    },
    fileGets: () => log.filter((r) => r.method === 'GET' && /^\/v1\/files\/[^/?]+\/[^/?]+/.test(r.path)),
    tokenRequests: () => log.filter((r) => r.method === 'POST' && r.path === '/oauth2/token'),
    reset() {
      log.length = 0;
      plan = () => ({});
      for (const release of stalled) release();
      stalled.clear();
    },
    async close() {
      for (const release of stalled) release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface ClientRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `node bin/traqs-download.js ARGS` in `cwd`; `done` resolves when it exits. */
function startClient(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  const child: ChildProcess = spawn(process.execPath, [join(repoRoot, 'bin', 'traqs-download.js'), ...args], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const done = new Promise<ClientRun>((resolve) => {
    child.on('exit', (code, signal) => {
      // Let the pipes drain.
      setTimeout(() => resolve({ code, signal, stdout, stderr }), 20);
    });
  });
  return { child, done, stderr: () => stderr };
}

/** A pipe-delimited file of about `bytes` bytes with a header row, varied enough not to compress to nothing. */
function referenceFile(bytes: number): Buffer {
  const lines = ['SYMBOL|CUSIP|NAME|STATUS|DATE'];
  let size = lines[0]?.length ?? 0;
  let seed = 12345;
  for (let i = 0; size < bytes; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const line = `S${i}|${String(seed).padStart(9, '0')}|Issuer ${seed.toString(36)} common stock|A|2026-12-03`;
    lines.push(line);
    size += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('traqs-download end to end (real idp, real download service, client as a process)', () => {
  const clock = createSteppingClock();
  let s: OauthStack;
  let download: FastifyInstance;
  let proxy: Awaited<ReturnType<typeof startFaultyProxy>>;
  let alice: ActiveUser;
  let refreshToken: string;
  let work: string;
  let cwd: string;
  const file = referenceFile(4 * 1024 * 1024);
  const NAME = 'ORF_EQUITYMASTERAC_20261203.txt';

  beforeAll(async () => {
    s = await startOauthStack({ clock, overrides: { policy: { accessTokenMinutes: ACCESS_TOKEN_SECONDS / 60 } } });
    alice = await activateUser(s, 'alice@acme.example');
    await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
    await s.rt.store.repos.refdata.grantEntitlement(alice.user.id, 'ORF', s.clock());
    const row = await openFileStore(s.rt).put({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-03' }, [file]);
    expect(row.sha256).toBe(sha256(file));

    download = await buildDownload(s.rt);
    await download.listen({ port: Number(new URL(s.downloadUrl).port), host: '127.0.0.1' });
    proxy = await startFaultyProxy(`http://127.0.0.1:${new URL(s.downloadUrl).port}`);

    // The Programmatic page's flow: a fresh sign-in with MFA, code + PKCE, a refresh token.
    const api = await discover(s, 'traqs-api');
    const flow = await authorize(
      s,
      createHttpBrowser(),
      api,
      {
        redirect_uri: s.programmaticCallback,
        scope: 'openid offline_access download',
        resource: s.downloadUrl,
        prompt: 'login consent',
        max_age: '0',
      },
      alice,
    );
    if (!flow.callbackUrl) throw new Error(`no code: ${flow.last.status} ${flow.last.body.slice(0, 300)}`);
    const tokens = await oidc.authorizationCodeGrant(api, flow.callbackUrl, {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
      expectedNonce: flow.nonce,
    });
    refreshToken = tokens.refresh_token ?? '';
    expect(tokens.expires_in).toBe(ACCESS_TOKEN_SECONDS);
    // Signing in is over: from now on the services' clock is the real time (see createSteppingClock).
    clock.realTime();
    work = mkdtempSync(join(tmpdir(), 'traqs-download-e2e-'));
  });
  afterAll(async () => {
    await proxy?.close();
    await download?.close();
    await s?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  beforeEach(() => {
    proxy.reset();
    cwd = mkdtempSync(join(work, 'run-'));
  });

  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: work,
    TRAQS_BASE_URL: proxy.url,
    TRAQS_REFRESH_TOKEN: refreshToken,
    TRAQS_DOWNLOAD_CACHE_DIR: join(cwd, 'cache'),
    ...extra,
  });
  const run = (args: string[], extra?: NodeJS.ProcessEnv) => startClient(args, { cwd, env: env(extra) }).done;
  const downloaded = () => readFileSync(join(cwd, NAME));

  it('lists the catalog with a refresh token from a 0600 file, and downloads the file verified', async () => {
    const tokenFile = join(cwd, 'refresh-token');
    writeFileSync(tokenFile, `${refreshToken}\n`, { mode: 0o600 });
    const fromFile = { TRAQS_REFRESH_TOKEN: undefined, TRAQS_REFRESH_TOKEN_FILE: tokenFile };
    const listed = await run(['list', '--facility', 'ORF'], fromFile);
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/ORF\s+EQUITYMASTERAC\s+2026-12-03\s+4\.0 MiB/);

    const got = await run(['get', 'ORF', 'EQUITYMASTERAC'], fromFile);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout.trim()).toBe(join(cwd, NAME));
    expect(sha256(downloaded())).toBe(sha256(file));
    expect(got.stderr).toContain('SHA-256 verified');
    expect(readdirSync(cwd).sort()).toEqual([NAME, 'cache', 'refresh-token']);
    // Compressed on the wire (the service gzips a whole file for a client that accepts it).
    expect(proxy.fileGets()[0]?.bytes).toBeLessThan(file.length / 2);
    // The access token is cached for the next run, readable by the user alone, without the refresh token.
    const cacheFiles = readdirSync(join(cwd, 'cache'));
    expect(cacheFiles).toHaveLength(1);
    const cached = join(cwd, 'cache', cacheFiles[0] ?? '');
    expect(statSync(cached).mode & 0o777).toBe(0o600);
    expect(readFileSync(cached, 'utf8')).not.toContain(refreshToken);
  });

  it('(a) a download that spans an access-token expiry: the service refuses the expired token, the client renews it and goes on', async () => {
    // The first file request is held until its token is past expiry and past the service's tolerance.
    proxy.setPlan((_req, n) =>
      n === 1 ? { holdMs: ACCESS_TOKEN_SECONDS * 1000 + SERVICE_CLOCK_TOLERANCE_MS + 1500 } : {},
    );
    const got = await run(['get', 'ORF', 'EQUITYMASTERAC', '--no-token-cache']);
    expect(got.code, got.stderr).toBe(0);
    expect(sha256(downloaded())).toBe(sha256(file));
    expect(proxy.fileGets().map((r) => r.status)).toEqual([401, 200]);
    expect(proxy.tokenRequests().map((r) => r.status)).toEqual([200, 200]);
    const [first, second] = proxy.fileGets();
    expect(first?.headers.authorization).not.toBe(second?.headers.authorization);
  }, 60_000);

  it('(a) does not send a cached access token that has expired: renews it first, so the service never refuses one', async () => {
    const first = await run(['list']);
    expect(first.code, first.stderr).toBe(0);
    expect(proxy.tokenRequests()).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, ACCESS_TOKEN_SECONDS * 1000 + 500));
    const later = await run(['list']);
    expect(later.code, later.stderr).toBe(0);
    // The second run found the expired token in its cache and asked for a new one before the catalog.
    expect(proxy.log.map((r) => `${r.method} ${r.path.split('?')[0]} ${r.status}`)).toEqual([
      'POST /oauth2/token 200',
      'GET /v1/files 200',
      'POST /oauth2/token 200',
      'GET /v1/files 200',
    ]);
    const [one, two] = proxy.log.filter((r) => r.method === 'GET');
    expect(one?.headers.authorization).not.toBe(two?.headers.authorization);
  }, 60_000);

  it('(b) resumes after the connection is cut mid-file: Range + If-Range, 206, the whole file verified', async () => {
    proxy.setPlan((_req, n) => (n === 1 ? { cutAfter: 300_000 } : {}));
    const got = await run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stderr).toMatch(/the download broke after [\d.]+ [KM]iB \(the connection was closed\); resuming in 1 s/);
    expect(sha256(downloaded())).toBe(sha256(file));
    const [cut, resumed] = proxy.fileGets();
    expect(cut?.status).toBe(200);
    expect(resumed?.status).toBe(206);
    const offset = Number(/^bytes=(\d+)-$/.exec(String(resumed?.headers.range))?.[1]);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(file.length);
    expect(resumed?.headers['if-range']).toBe(`"${sha256(file)}"`);
    expect(resumed?.bytes).toBe(file.length - offset);
    expect(readdirSync(cwd).filter((f) => f.includes('.part'))).toEqual([]);
  }, 60_000);

  it('(b) a run stopped with Ctrl+C keeps its .part (exit 130); the next run resumes it after the token expired', async () => {
    proxy.setPlan((_req, n) => (n === 1 ? { stallAfter: 200_000 } : {}));
    const first = startClient(['get', 'ORF', 'EQUITYMASTERAC'], { cwd, env: env() });
    const part = join(cwd, `${NAME}.part`);
    const deadline = Date.now() + 20_000;
    while (!(existsSync(part) && statSync(part).size > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    first.child.kill('SIGINT');
    const stopped = await first.done;
    expect(stopped.code, stopped.stderr).toBe(EXIT_CODES.INTERRUPTED);
    expect(stopped.stderr).toContain('run the same command again to resume');
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);

    // Past the cached access token's life (and the service's tolerance): the next run renews it first.
    await new Promise((resolve) => setTimeout(resolve, ACCESS_TOKEN_SECONDS * 1000));
    const again = await run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(again.code, again.stderr).toBe(0);
    expect(sha256(downloaded())).toBe(sha256(file));
    const resumed = proxy.fileGets().at(-1);
    expect(resumed?.headers.range).toBe(`bytes=${kept}-`);
    expect(resumed?.status).toBe(206);
    expect(proxy.tokenRequests()).toHaveLength(2);
    expect(again.stderr).toContain('resumed at');
  }, 60_000);

  it('says what to do when the refresh token is unknown (exit 4) or the user is not entitled (exit 7)', async () => {
    const unknown = await run(['list'], { TRAQS_REFRESH_TOKEN: 'not-a-real-refresh-token-at-all-0123456789abcdef' });
    expect(unknown.code).toBe(EXIT_CODES.INVALID_GRANT);
    expect(unknown.stderr).toContain(
      'your refresh token is expired, revoked or unknown: get a new one on the Programmatic page of the TRAQS website',
    );
    const denied = await run(['get', 'TRACE-CA', 'CAMASTER']);
    expect(denied.code).toBe(EXIT_CODES.FORBIDDEN);
    expect(denied.stderr).toContain('403 not_entitled');
  }, 60_000);
});
