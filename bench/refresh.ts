/**
 * `npm run bench -- refresh`: refresh-token grants per second at `POST /oauth2/default/v1/token`
 * of a real idp on SQLite and on PostgreSQL, the way the download client gets its access tokens
 * (issue #4 target: at least 1000 grants per second per core), next to what one core does in raw
 * ES256 signatures (the ceiling of a signing endpoint) and jose verifications (the work a resource
 * server does per token).
 *
 * The refresh token comes from the real flow: a sign-in through the Authentication API (password
 * then TOTP), its Okta `sessionToken` at `/v1/authorize` for `traqs-api` (code + PKCE), and the
 * code exchanged at `/v1/token` with openid-client.
 */
import { fork } from 'node:child_process';
import { generateKeyPairSync, sign as signWithNode } from 'node:crypto';
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

type Database = 'SQLite' | 'PostgreSQL';

/** What one database's run measured, and a token of it for the signing and verification rates. */
interface DatabaseRun {
  database: Database;
  load: RefreshLoadResult;
  server: CpuMeasurement;
  profile: string | undefined;
  accessToken: string;
  idToken: boolean;
  publicJwk: JWK;
  issuer: string;
  audience: string;
}

function databasesOf(value: string | boolean | undefined): Database[] {
  if (value === undefined || value === 'both') return ['SQLite', 'PostgreSQL'];
  if (value === 'sqlite') return ['SQLite'];
  if (value === 'postgres') return ['PostgreSQL'];
  throw new Error('--database must be sqlite, postgres or both');
}

async function measureOn(database: Database, options: BenchOptions): Promise<DatabaseRun> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const seconds = options.seconds;
  const warmupSeconds = numberOption(options.extra.warmup, 'warmup', 0) ?? Math.min(3, Math.max(1, seconds / 5));
  const logLevel = options.extra['log-level'];
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
    const stopProfiler = options.extra['cpu-profile'] ? await startProfiler(`refresh-${database}`) : undefined;
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
    const audience = idp.rt.environment.download.publicUrl;
    await jwtVerify(grant.access_token, await importJWK(publicJwk, 'ES256'), { issuer, audience });
    return {
      database,
      load: result,
      server,
      profile,
      accessToken: grant.access_token,
      idToken: grant.id_token !== undefined,
      publicJwk,
      issuer,
      audience,
    };
  } finally {
    await idp.close(options.extra.keep === true);
  }
}

async function run(options: BenchOptions): Promise<BenchReport> {
  const machine = machineInfo();
  const runs: DatabaseRun[] = [];
  const skipped: { database: Database; reason: string }[] = [];
  for (const database of databasesOf(options.extra.database)) {
    try {
      runs.push(await measureOn(database, options));
    } catch (error) {
      // Asked for by name, a database that cannot run is an error; as part of `both`, a note.
      if (options.extra.database !== undefined && options.extra.database !== 'both') throw error;
      const reason = (error as Error).message || String(error);
      progress(`${database} skipped: ${reason}`);
      skipped.push({ database, reason });
    }
  }
  const first = runs[0];
  if (!first) throw new Error(`no database could be measured: ${skipped.map((s) => s.reason).join('; ')}`);

  // The ceilings, on the same machine in the same run: what one core does in ES256 signatures the
  // way the server signs (node:crypto, see src/oauth/node-signing-key.ts) and the way jose does, and
  // in jose verifications (the resource server's work per token).
  progress(`raw ES256 on one core: ${JOSE_SECONDS} s each of verifications, jose and node:crypto signatures`);
  const { issuer, audience, accessToken } = first;
  const publicKey = await importJWK(first.publicJwk, 'ES256');
  const verify = await measureSequential(JOSE_SECONDS, () => jwtVerify(accessToken, publicKey, { issuer, audience }));
  const { privateKey } = await generateKeyPair('ES256');
  const claims = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString('utf8'));
  const sign = await measureSequential(JOSE_SECONDS, () =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'bench' }).sign(privateKey),
  );
  const nodeKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const signingInput = Buffer.from(accessToken.slice(0, accessToken.lastIndexOf('.')));
  const nodeSign = await measureSequential(JOSE_SECONDS, async () =>
    signWithNode('sha256', signingInput, { key: nodeKey, dsaEncoding: 'ieee-p1363' }),
  );

  return report({
    machine,
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    logLevel: typeof options.extra['log-level'] === 'string' ? options.extra['log-level'] : 'info',
    runs,
    skipped,
    verify,
    sign,
    nodeSign,
    scope: typeof options.extra.scope === 'string' ? options.extra.scope : undefined,
  });
}

function report(m: {
  machine: MachineInfo;
  concurrency: number;
  logLevel: string;
  runs: DatabaseRun[];
  skipped: { database: Database; reason: string }[];
  verify: Sequential;
  sign: Sequential;
  nodeSign: Sequential;
  scope: string | undefined;
}): BenchReport {
  const f = (v: number, d = 1) => round(v, d).toFixed(d);
  const setupOf = (database: Database) =>
    database === 'SQLite'
      ? 'SQLite (WAL, synchronous=NORMAL), file in a temp directory'
      : 'PostgreSQL, a fresh database on the local server (its CPU counts as "other programs")';

  const measured = m.runs.map((r) => {
    const { load, server } = r;
    const windowSeconds = load.windowMs / 1000;
    const grantsPerSecond = load.completed / windowSeconds;
    const serverCpuPerGrant = server.processCpuMs / load.completed;
    const kernelCpuPerGrant = server.systemCpuMs / load.completed;
    const mainCpuPerGrant = server.mainThreadCpuMs === undefined ? undefined : server.mainThreadCpuMs / load.completed;
    // "Per core": grants per second of server CPU time (the main thread does nearly all of it).
    const grantsPerCoreSecond = 1000 / serverCpuPerGrant;
    const latency = summarize(load.latencies);
    const errorsTotal = Object.values(load.errorsTotal).reduce((a, b) => a + b, 0);
    const targetMet = grantsPerCoreSecond >= TARGET_GRANTS_PER_CORE_SECOND;
    const ok = targetMet && errorsTotal === 0 && load.completed > 0;
    const others = percentOfMachine(
      server.otherProcessesCpuMs === undefined ? undefined : Math.max(0, server.otherProcessesCpuMs - load.cpuMs),
      server.wallMs,
    );
    return {
      r,
      windowSeconds,
      grantsPerSecond,
      serverCpuPerGrant,
      kernelCpuPerGrant,
      mainCpuPerGrant,
      grantsPerCoreSecond,
      latency,
      errorsTotal,
      targetMet,
      ok,
      others,
      clientCpuPerGrant: load.cpuMs / load.completed,
    };
  });
  const ok = measured.every((x) => x.ok);

  const result = {
    benchmark: 'refresh',
    target: TARGET_GRANTS_PER_CORE_SECOND,
    pass: ok,
    databases: measured.map((x) => ({
      database: x.r.database,
      grantsPerSecond: round(x.grantsPerSecond),
      grantsPerServerCpuSecond: round(x.grantsPerCoreSecond),
      pass: x.ok,
      latencyMs: x.latency,
      errors: { inWindow: x.r.load.errorsInWindow, total: x.r.load.errorsTotal, samples: x.r.load.errorSamples },
      load: {
        measuredSeconds: round(x.windowSeconds, 2),
        grants: x.r.load.completed,
        successesTotal: x.r.load.successesTotal,
      },
      cpu: {
        serverCpuMsPerGrant: round(x.serverCpuPerGrant, 3),
        serverKernelCpuMsPerGrant: round(x.kernelCpuPerGrant, 3),
        serverMainThreadCpuMsPerGrant: x.mainCpuPerGrant === undefined ? null : round(x.mainCpuPerGrant, 3),
        serverEventLoopUtilization: round(x.r.server.eventLoopUtilization, 3),
        clientCpuMsPerGrant: round(x.clientCpuPerGrant, 3),
        otherProcessesCpuPercentOfMachine: x.others === undefined ? null : round(x.others),
      },
      setup: setupOf(x.r.database),
      response: `ES256 JWT access token (${x.r.accessToken.length} chars)${x.r.idToken ? ' and an ES256 ID token' : ''}`,
      cpuProfile: x.r.profile ?? null,
    })),
    skipped: m.skipped,
    es256: {
      joseVerificationsPerSecond: round(m.verify.perSecond),
      joseVerifyCpuMs: round(m.verify.cpuMsPerOp, 3),
      joseSignaturesPerSecond: round(m.sign.perSecond),
      joseSignCpuMs: round(m.sign.cpuMsPerOp, 3),
      nodeSignaturesPerSecond: round(m.nodeSign.perSecond),
      nodeSignCpuMs: round(m.nodeSign.cpuMsPerOp, 3),
    },
    concurrency: m.concurrency,
    logLevel: m.logLevel,
    grant: `grant_type=refresh_token, client traqs-api (public), scope ${m.scope ?? 'as granted (openid offline_access download)'}`,
    machine: m.machine,
  };

  const errorText = (x: (typeof measured)[number]) =>
    x.errorsTotal
      ? `${x.errorsTotal} (${Object.entries(x.r.load.errorsTotal)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')})`
      : '0';
  const rows: (readonly [string, string] | readonly [])[] = [];
  for (const x of measured) {
    const verdict = x.ok ? 'PASS' : x.targetMet ? 'FAIL (errors, see below)' : 'FAIL';
    rows.push(
      [`${x.r.database}`, setupOf(x.r.database)],
      ['  refresh grants/s', `${f(x.grantsPerSecond)}  (${x.r.load.completed} in ${f(x.windowSeconds, 2)} s)`],
      [
        '  grants per server CPU-second',
        `${f(x.grantsPerCoreSecond)}  (${f(x.serverCpuPerGrant, 3)} ms server CPU per grant)  ${verdict}`,
      ],
      [
        '  of which in the kernel',
        `${f(x.kernelCpuPerGrant, 3)} ms per grant (${f((100 * x.kernelCpuPerGrant) / x.serverCpuPerGrant)} %: sockets, files)`,
      ],
      [
        '  latency p50/p95/p99',
        `${f(x.latency.p50)} / ${f(x.latency.p95)} / ${f(x.latency.p99)} ms (max ${f(x.latency.max)})`,
      ],
      [
        '  server main thread per grant',
        `${x.mainCpuPerGrant === undefined ? '?' : f(x.mainCpuPerGrant, 3)} ms CPU (event loop ${f(x.r.server.eventLoopUtilization * 100)} % busy)`,
      ],
      ['  client CPU per grant', `${f(x.clientCpuPerGrant, 3)} ms (child process, on the same CPUs)`],
      [
        '  other programs',
        `${x.others === undefined ? '?' : `${f(x.others)} %`} of the machine${x.r.database === 'SQLite' && (x.others ?? 0) > 5 ? '  << busy machine: unreliable' : ''}`,
      ],
      ['  errors (all phases)', errorText(x)],
      [
        '  response',
        `ES256 JWT access token (${x.r.accessToken.length} chars)${x.r.idToken ? ' and an ES256 ID token' : ''}`,
      ],
      ...(x.r.profile ? [['  CPU profile', x.r.profile] as const] : []),
      [],
    );
  }
  for (const s of m.skipped) rows.push([s.database, `skipped: ${s.reason}`], []);
  const table = formatTable('Refresh benchmark: POST /oauth2/default/v1/token grant_type=refresh_token', [
    ['target', `>= ${TARGET_GRANTS_PER_CORE_SECOND} grants per server CPU-second (per core)`],
    ['result', ok ? 'PASS' : 'FAIL'],
    [],
    ...rows,
    [
      'ES256 sign, node:crypto',
      `${f(m.nodeSign.perSecond)}/s on one core (${f(m.nodeSign.cpuMsPerOp, 3)} ms CPU each): how the server signs`,
    ],
    ['ES256 sign, jose', `${f(m.sign.perSecond)}/s on one core (${f(m.sign.cpuMsPerOp, 3)} ms CPU each)`],
    [
      'ES256 verify, jose',
      `${f(m.verify.perSecond)}/s on one core (${f(m.verify.cpuMsPerOp, 3)} ms CPU each: ${f(1000 / m.verify.cpuMsPerOp)} per CPU-second)`,
    ],
    [],
    ['concurrency', `${m.concurrency} keep-alive connections, one request in flight each`],
    ['request', result.grant],
    ['server log level', m.logLevel],
    ['machine', `${m.machine.cpus} x ${m.machine.cpuModel}, ${m.machine.os}`],
    ['node', m.machine.node],
    ['load average at start', String(m.machine.loadAverage1m)],
  ]);
  return { ok, table, result };
}

export const benchmark: Benchmark = {
  description:
    'refresh-token grants/s at /oauth2/default/v1/token on SQLite and PostgreSQL vs raw ES256 signing on one core',
  options: {
    warmup: { type: 'string', arg: 'N', help: 'seconds of load before measuring (default: seconds/5, 1 to 3)' },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'server log level (default: the configured one, info)' },
    keep: { type: 'boolean', help: 'keep the temporary database and idp.log' },
    database: {
      type: 'string',
      arg: 'DB',
      help: 'both (default: SQLite, then PostgreSQL if it answers), sqlite, or postgres (a fresh database on TRAQS_BENCH_DATABASE_URL, default the local test server)',
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
