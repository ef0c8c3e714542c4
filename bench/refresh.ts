/**
 * `npm run bench -- refresh`: refresh-token grants per second at `POST /oauth2/default/v1/token`
 * of a real idp on SQLite, the way the download client gets its access tokens (issue #4 target:
 * at least 1000 grants per second per core), next to what one core does in raw ES256 JWT
 * verifications with jose (the work a resource server does per token).
 *
 * The refresh token comes from the real flow: a sign-in through the Authentication API (password
 * then TOTP), its Okta `sessionToken` at `/v1/authorize` for `traqs-api` (code + PKCE), and the
 * code exchanged at `/v1/token` with openid-client.
 */
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { decodeProtectedHeader, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { base32Decode, generateTotp } from '../src/authn/factors/totp/totp.ts';
import { OAUTH_MOUNT } from '../src/oauth/provider.ts';
import {
  type Benchmark,
  type BenchOptions,
  type BenchReport,
  type CpuMeasurement,
  formatTable,
  type MachineInfo,
  machineInfo,
  percentOfMachine,
  progress,
  round,
  sleep,
  startCpuMeter,
  summarize,
} from './common.ts';
import { type BenchIdp, createUsers, enrollTemplateUser, postJson, startIdp, startProfiler } from './idp.ts';
import type { RefreshLoadCommand, RefreshLoadMessage, RefreshLoadResult } from './refresh-load.ts';

/** Issue #4: refresh-token grants per second the token endpoint sustains on one core. */
const TARGET_GRANTS_PER_CORE_SECOND = 1000;
const DEFAULT_CONCURRENCY = 16;
/** Length of each raw jose measurement (ES256 verify, ES256 sign). */
const JOSE_SECONDS = 2;

function numberOption(value: string | boolean | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number of at least ${min}`);
  return n;
}

/**
 * A browser's part of the authorization request, minimal: follows redirects with a cookie jar
 * (oidc-provider's interaction and resume cookies) until the client's redirect URI.
 */
async function followToRedirectUri(start: string, redirectUri: string): Promise<URL> {
  const jar = new Map<string, string>();
  let url = start;
  for (let i = 0; i < 20; i++) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = value === '' || /expires=Thu, 01 Jan 1970/i.test(line);
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
    const location = res.headers.get('location');
    await res.arrayBuffer();
    if (!location || res.status < 300 || res.status >= 400) {
      throw new Error(`authorization stopped at ${url}: HTTP ${res.status}`);
    }
    const next = new URL(location, url);
    if (next.toString().startsWith(redirectUri)) return next;
    url = next.toString();
  }
  throw new Error('too many redirects in the authorization request');
}

/** A refresh token for `traqs-api` through the real flow (see the file comment). */
export async function obtainRefreshToken(
  idp: BenchIdp,
  user: { login: string; password: string; factorId: string; secret: string },
) {
  const { rt, origin } = idp;
  const issuer = `${rt.environment.idp.publicUrl}${OAUTH_MOUNT}`;
  const redirectUri = `${rt.environment.portal.publicUrl}/api/programmatic/callback`;
  const config = await oidc.discovery(new URL(issuer), 'traqs-api', undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });

  const primary = await postJson(
    origin,
    '/api/v1/authn',
    { username: user.login, password: user.password },
    'MFA_REQUIRED',
  );
  const passCode = generateTotp({
    secret: base32Decode(user.secret),
    now: Date.now(),
    stepSeconds: rt.config.policy.totpStepSeconds,
  });
  const verified = await postJson(
    origin,
    `/api/v1/authn/factors/${user.factorId}/verify`,
    { stateToken: primary.stateToken, passCode },
    'SUCCESS',
  );

  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid offline_access download',
    resource: rt.environment.download.publicUrl,
    prompt: 'login consent',
    max_age: '0',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    sessionToken: String(verified.sessionToken),
  });
  const callback = await followToRedirectUri(authorizationUrl.toString(), redirectUri);
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
  });
  if (!tokens.refresh_token) throw new Error('the code exchange gave no refresh token');
  return { config, issuer, refreshToken: tokens.refresh_token };
}

/** Starts the load generator (`refresh-load.ts`) in a child process; it starts at once. */
export async function startLoad(command: Extract<RefreshLoadCommand, { type: 'start' }>) {
  const child = fork(fileURLToPath(new URL('./refresh-load.ts', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages: RefreshLoadMessage[] = [];
  let wake: (() => void) | undefined;
  child.on('message', (m: RefreshLoadMessage) => {
    messages.push(m);
    wake?.();
  });
  const exited = new Promise<never>((_, reject) =>
    child.on('exit', (code) => reject(new Error(`the load generator exited (${code})`))),
  );
  exited.catch(() => undefined);
  const receive = async <T extends RefreshLoadMessage['type']>(type: T) => {
    for (;;) {
      const i = messages.findIndex((m) => m.type === type);
      if (i >= 0) return messages.splice(i, 1)[0] as Extract<RefreshLoadMessage, { type: T }>;
      await Promise.race([new Promise<void>((resolve) => (wake = resolve)), exited]);
    }
  };
  const send = (c: RefreshLoadCommand) => child.send(c);
  send(command);
  await receive('started');
  return {
    windowStart: () => send({ type: 'window-start' }),
    windowEnd: () => send({ type: 'window-end' }),
    async stop(): Promise<RefreshLoadResult> {
      try {
        send({ type: 'stop' });
        return (await receive('result')).result;
      } finally {
        if (child.connected) child.disconnect();
      }
    },
  };
}

/** One operation at a time for `seconds`: at most one core busy. Rate, latency and CPU per op. */
async function measureSequential(seconds: number, op: () => Promise<unknown>) {
  for (let i = 0; i < 200; i++) await op();
  const meter = startCpuMeter();
  const until = performance.now() + seconds * 1000;
  let count = 0;
  while (performance.now() < until) {
    await op();
    count++;
  }
  const cpu = meter();
  return { count, perSecond: count / (cpu.wallMs / 1000), cpuMsPerOp: cpu.processCpuMs / count, cpu };
}
type Sequential = Awaited<ReturnType<typeof measureSequential>>;

async function run(options: BenchOptions): Promise<BenchReport> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const seconds = options.seconds;
  const warmupSeconds = numberOption(options.extra.warmup, 'warmup', 0) ?? Math.min(3, Math.max(1, seconds / 5));
  const logLevel = options.extra['log-level'];
  const machine = machineInfo();

  const database: 'SQLite' | 'PostgreSQL' = options.extra.database === 'postgres' ? 'PostgreSQL' : 'SQLite';
  const postgresUrl =
    database === 'PostgreSQL'
      ? (process.env.TRAQS_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test')
      : undefined;
  const idp = await startIdp({
    ...(typeof logLevel === 'string' ? { logLevel } : {}),
    ...(postgresUrl ? { postgresUrl } : {}),
  });
  try {
    progress(`idp on ${idp.origin} (${database} ${idp.databaseFile}); enrolling a user through the API`);
    const template = await enrollTemplateUser(idp);
    // A second user shaped like the template whose last TOTP step has passed: it signs in at once.
    const [user] = await createUsers(idp, template, 2);
    if (!user) throw new Error('no user');
    const row = await idp.rt.store.repos.users.findUserByLogin(user.login);
    if (!row) throw new Error('user not created');
    await idp.rt.store.repos.users.assignApp(row.id, 'download', Date.now());

    progress('getting a refresh token: Authentication API sign-in, /v1/authorize with its sessionToken, code + PKCE');
    const { config, issuer, refreshToken } = await obtainRefreshToken(idp, user);
    const tokenPath = `${OAUTH_MOUNT}/v1/token`;
    const scope = typeof options.extra.scope === 'string' ? options.extra.scope : undefined;
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: 'traqs-api',
      // RFC 6749 §6: a narrower scope; without `openid` the grant issues no ID token.
      ...(scope ? { scope } : {}),
    }).toString();

    progress(
      `${concurrency} keep-alive clients on POST ${tokenPath}: ${warmupSeconds} s warm-up, ${seconds} s measured`,
    );
    const load = await startLoad({ type: 'start', origin: idp.origin, path: tokenPath, form, concurrency });
    await sleep(warmupSeconds * 1000);
    const stopProfiler = options.extra['cpu-profile'] ? await startProfiler('refresh') : undefined;
    load.windowStart();
    const meter = startCpuMeter();
    await sleep(seconds * 1000);
    load.windowEnd();
    const server = meter();
    const result = await load.stop();
    const profile = stopProfiler ? await stopProfiler() : undefined;
    if (profile) progress(`CPU profile of the server process's main thread: ${profile}`);

    // One more grant, checked as the download service checks it; its token is what jose verifies.
    const grant = await oidc.refreshTokenGrant(config, refreshToken, scope ? { scope } : undefined);
    const header = decodeProtectedHeader(grant.access_token);
    const jwks = (await (await fetch(`${issuer}/v1/keys`)).json()) as { keys: JWK[] };
    const publicJwk = jwks.keys.find((k) => k.kid === header.kid);
    if (!publicJwk || header.alg !== 'ES256') throw new Error(`access token signed with ${header.alg}/${header.kid}`);
    const publicKey = await importJWK(publicJwk, 'ES256');
    const audience = idp.rt.environment.download.publicUrl;
    await jwtVerify(grant.access_token, publicKey, { issuer, audience });

    progress(`raw jose ES256 on one core: ${JOSE_SECONDS} s of verifications, ${JOSE_SECONDS} s of signatures`);
    const verify = await measureSequential(JOSE_SECONDS, () =>
      jwtVerify(grant.access_token, publicKey, { issuer, audience }),
    );
    const { privateKey } = await generateKeyPair('ES256');
    const claims = JSON.parse(Buffer.from(grant.access_token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    const sign = await measureSequential(JOSE_SECONDS, () =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'bench' }).sign(privateKey),
    );

    return report({
      machine,
      concurrency,
      warmupSeconds,
      logLevel: idp.rt.config.logLevel,
      database,
      load: result,
      server,
      verify,
      sign,
      accessTokenBytes: grant.access_token.length,
      idToken: grant.id_token !== undefined,
      scope,
      profile,
    });
  } finally {
    await idp.close(options.extra.keep === true);
  }
}

function report(m: {
  database: 'SQLite' | 'PostgreSQL';
  machine: MachineInfo;
  concurrency: number;
  warmupSeconds: number;
  logLevel: string;
  load: RefreshLoadResult;
  server: CpuMeasurement;
  verify: Sequential;
  sign: Sequential;
  accessTokenBytes: number;
  idToken: boolean;
  scope: string | undefined;
  profile: string | undefined;
}): BenchReport {
  const { load, server } = m;
  const f = (v: number, d = 1) => round(v, d).toFixed(d);
  const windowSeconds = load.windowMs / 1000;
  const grantsPerSecond = load.completed / windowSeconds;
  const serverCpuPerGrant = server.processCpuMs / load.completed;
  const mainCpuPerGrant = server.mainThreadCpuMs === undefined ? undefined : server.mainThreadCpuMs / load.completed;
  // "Per core": grants per second of server CPU time (the main thread does nearly all of it).
  const grantsPerCoreSecond = 1000 / serverCpuPerGrant;
  const clientCpuPerGrant = load.cpuMs / load.completed;
  const latency = summarize(load.latencies);
  const errorsTotal = Object.values(load.errorsTotal).reduce((a, b) => a + b, 0);
  const targetMet = grantsPerCoreSecond >= TARGET_GRANTS_PER_CORE_SECOND;
  const ok = targetMet && errorsTotal === 0 && load.completed > 0;
  const verdict = ok ? 'PASS' : targetMet ? 'FAIL (errors, see below)' : 'FAIL';
  const others = percentOfMachine(
    server.otherProcessesCpuMs === undefined ? undefined : Math.max(0, server.otherProcessesCpuMs - load.cpuMs),
    server.wallMs,
  );
  const noisy = (others ?? 0) > 5;

  const database = m.database;
  const result = {
    benchmark: 'refresh',
    grantsPerSecond: round(grantsPerSecond),
    grantsPerServerCpuSecond: round(grantsPerCoreSecond),
    target: TARGET_GRANTS_PER_CORE_SECOND,
    pass: ok,
    latencyMs: latency,
    joseEs256: {
      verificationsPerSecond: round(m.verify.perSecond),
      verifyCpuMs: round(m.verify.cpuMsPerOp, 3),
      verificationsPerCpuSecond: round(1000 / m.verify.cpuMsPerOp),
      signaturesPerSecond: round(m.sign.perSecond),
      signCpuMs: round(m.sign.cpuMsPerOp, 3),
    },
    errors: { inWindow: load.errorsInWindow, total: load.errorsTotal, samples: load.errorSamples },
    load: {
      concurrency: m.concurrency,
      measuredSeconds: round(windowSeconds, 2),
      warmupSeconds: m.warmupSeconds,
      grants: load.completed,
      successesTotal: load.successesTotal,
    },
    cpu: {
      serverCpuMsPerGrant: round(serverCpuPerGrant, 3),
      serverMainThreadCpuMsPerGrant: mainCpuPerGrant === undefined ? null : round(mainCpuPerGrant, 3),
      serverEventLoopUtilization: round(server.eventLoopUtilization, 3),
      clientCpuMsPerGrant: round(clientCpuPerGrant, 3),
      otherProcessesCpuPercentOfMachine: others === undefined ? null : round(others),
    },
    setup: {
      database:
        database === 'SQLite'
          ? 'SQLite (WAL, synchronous=NORMAL), file in a temp directory'
          : 'PostgreSQL, a fresh database on the local server',
      logLevel: m.logLevel,
      grant: `grant_type=refresh_token, client traqs-api (public), scope ${m.scope ?? 'as granted (openid offline_access download)'}`,
      response: `ES256 JWT access token (${m.accessTokenBytes} chars)${m.idToken ? ' and an ES256 ID token' : ''}`,
    },
    cpuProfile: m.profile ?? null,
    machine: m.machine,
  };

  const errorText = errorsTotal
    ? `${errorsTotal} (${Object.entries(load.errorsTotal)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')})`
    : '0';
  const table = formatTable(
    `Refresh benchmark: POST /oauth2/default/v1/token grant_type=refresh_token on ${database}`,
    [
      ['refresh grants/s', `${f(grantsPerSecond)}  (${load.completed} in ${f(windowSeconds, 2)} s)`],
      [
        'grants per server CPU-second',
        `${f(grantsPerCoreSecond)}  (${f(serverCpuPerGrant, 3)} ms server CPU per grant)`,
      ],
      ['target', `>= ${TARGET_GRANTS_PER_CORE_SECOND} per core`],
      ['result', verdict],
      ['latency p50/p95/p99', `${f(latency.p50)} / ${f(latency.p95)} / ${f(latency.p99)} ms (max ${f(latency.max)})`],
      ['errors (all phases)', errorText],
      [],
      [
        'jose ES256 verify, one core',
        `${f(m.verify.perSecond)}/s  (${f(m.verify.cpuMsPerOp, 3)} ms CPU each: ${f(1000 / m.verify.cpuMsPerOp)} per CPU-second)`,
      ],
      ['jose ES256 sign, one core', `${f(m.sign.perSecond)}/s  (${f(m.sign.cpuMsPerOp, 3)} ms CPU each)`],
      [],
      [
        'server main thread per grant',
        `${mainCpuPerGrant === undefined ? '?' : f(mainCpuPerGrant, 3)} ms CPU (event loop ${f(server.eventLoopUtilization * 100)} % busy)`,
      ],
      ['client CPU per grant', `${f(clientCpuPerGrant, 3)} ms (child process, on the same CPUs)`],
      [
        'other programs (noise)',
        `${others === undefined ? '?' : `${f(others)} %`} of the machine${noisy ? '  << busy machine: unreliable' : ''}`,
      ],
      ['concurrency', `${m.concurrency} keep-alive connections, one request in flight each`],
      ['request', result.setup.grant],
      ['response', result.setup.response],
      ['server', `log level ${m.logLevel}; ${result.setup.database}`],
      ...(m.profile ? [['CPU profile', m.profile] as const] : []),
      [],
      ['machine', `${m.machine.cpus} x ${m.machine.cpuModel}, ${m.machine.os}`],
      ['node', m.machine.node],
      ['load average at start', String(m.machine.loadAverage1m)],
    ],
  );
  return { ok, table, result };
}

export const benchmark: Benchmark = {
  description:
    'refresh-token grants/s at /oauth2/default/v1/token (SQLite or PostgreSQL) vs raw jose ES256 on one core',
  options: {
    warmup: { type: 'string', arg: 'N', help: 'seconds of load before measuring (default: seconds/5, 1 to 3)' },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'server log level (default: the configured one, info)' },
    keep: { type: 'boolean', help: 'keep the temporary database and idp.log' },
    database: {
      type: 'string',
      arg: 'DB',
      help: 'sqlite (default) or postgres (a fresh database on TRAQS_BENCH_DATABASE_URL, default the local test server)',
    },
    'cpu-profile': { type: 'boolean', help: "profile the server's main thread over the measured window" },
    scope: {
      type: 'string',
      arg: 'S',
      help: 'scope of each refresh request, e.g. "offline_access download" (no ID token); default: as granted',
    },
  },
  run,
};
