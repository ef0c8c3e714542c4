/**
 * `npm run bench -- download`: the `download` service (API Download) under load, with an access
 * token from the real flow (sign-in with MFA, code + PKCE, then a refresh grant through the
 * service's own `POST /oauth2/token`):
 *
 * - small-file downloads per second by `concurrency` keep-alive clients (target 5,000), each one
 *   authorised (JWT checked, entitlement, rate limit), looked up, streamed from disk and audited;
 * - large-file throughput: a 1 GiB file (`--large-mib`) over loopback by `--large-clients`
 *   clients (target 500 MB/s);
 * - in the same run, what one core does in raw ES256 JWT verifications (jose, the work of a token
 *   the service has not seen) and in checks of a token it has (the verification cache).
 *
 * The service runs in this process on SQLite, as the quick start runs it (access log at the
 * configured level into a file, audit batches); the load generator is a child process.
 */
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { createLocalJWKSet, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { createAccessTokenVerifier } from '../src/download/access-token.ts';
import { buildDownload } from '../src/download/app.ts';
import { openFileStore } from '../src/refdata/file-store.ts';
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
import type { DownloadLoadCommand, DownloadLoadMessage, DownloadLoadResult } from './download-load.ts';
import { createUsers, enrollTemplateUser, startIdp, startProfiler } from './idp.ts';
import { obtainRefreshToken } from './refresh.ts';

const TARGET_REQUESTS_PER_SECOND = 5000;
const TARGET_MB_PER_SECOND = 500;
const DEFAULT_CONCURRENCY = 32;
const DEFAULT_LARGE_CLIENTS = 2;
const DEFAULT_LARGE_MIB = 1024;
const JWT_SECONDS = 2;
const MB = 1_000_000;

function numberOption(value: string | boolean | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number of at least ${min}`);
  return n;
}

/** The chunks of a pipe-delimited reference file of about `bytes` bytes (whole lines). */
function* referenceFile(bytes: number): Generator<Buffer> {
  const header = Buffer.from('SYMBOL|CUSIP|ISSUER NAME|SECURITY DESCRIPTION|STATUS|EFFECTIVE DATE\n');
  const lines: string[] = [];
  const target = Math.min(bytes, 4 * 2 ** 20);
  for (let i = 0, length = 0; length < target; i++) {
    const line = `BNCH${i}|${100_000_000 + i}|Bench Issuer ${i} Inc|${i % 7}.125% notes due 20${30 + (i % 60)}|A|2026-12-03\n`;
    lines.push(line);
    length += line.length;
  }
  const chunk = Buffer.from(lines.join(''));
  yield header;
  let size = header.length;
  while (size < bytes) {
    const part = size + chunk.length <= bytes ? chunk : chunk.subarray(0, chunk.lastIndexOf(10, bytes - size - 1) + 1);
    if (part.length === 0) return;
    yield part;
    size += part.length;
  }
}

/** Starts the load generator (`download-load.ts`) in a child process; it starts at once. */
async function startLoad(command: Extract<DownloadLoadCommand, { type: 'start' }>) {
  const child = fork(fileURLToPath(new URL('./download-load.ts', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages: DownloadLoadMessage[] = [];
  let wake: (() => void) | undefined;
  let closed: Error | undefined;
  child.on('message', (m: DownloadLoadMessage) => {
    messages.push(m);
    wake?.();
  });
  // A child's last message can be emitted after its 'exit' and 'close' events: look at the
  // messages once more before calling the child gone.
  child.on('close', (code) =>
    setImmediate(() => {
      closed = new Error(`the load generator exited (${code})`);
      wake?.();
    }),
  );
  const receive = async <T extends DownloadLoadMessage['type']>(type: T) => {
    for (;;) {
      const i = messages.findIndex((m) => m.type === type);
      if (i >= 0) return messages.splice(i, 1)[0] as Extract<DownloadLoadMessage, { type: T }>;
      if (closed) throw closed;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  const send = (c: DownloadLoadCommand) => child.send(c);
  send(command);
  await receive('started');
  return {
    windowStart: () => send({ type: 'window-start' }),
    windowEnd: () => send({ type: 'window-end' }),
    async stop(): Promise<DownloadLoadResult> {
      try {
        send({ type: 'stop' });
        return (await receive('result')).result;
      } finally {
        if (child.connected) child.disconnect();
      }
    },
  };
}

/** One load phase: warm-up, then a measured window with the server's CPU metered. */
async function phase(
  command: Extract<DownloadLoadCommand, { type: 'start' }>,
  warmupSeconds: number,
  seconds: number,
  profile: string | undefined,
): Promise<{ load: DownloadLoadResult; server: CpuMeasurement }> {
  const load = await startLoad(command);
  await sleep(warmupSeconds * 1000);
  const stopProfiler = profile ? await startProfiler(profile) : undefined;
  load.windowStart();
  const meter = startCpuMeter();
  await sleep(seconds * 1000);
  load.windowEnd();
  const server = meter();
  if (stopProfiler) progress(`CPU profile of the server process's main thread: ${await stopProfiler()}`);
  return { load: await load.stop(), server };
}

/** One operation at a time for `seconds`: at most one core busy. */
async function measureSequential(seconds: number, op: () => Promise<unknown>) {
  for (let i = 0; i < 200; i++) await op();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  let count = 0;
  while (performance.now() < until) {
    await op();
    count++;
  }
  return { count, perSecond: count / ((performance.now() - t0) / 1000) };
}
type Sequential = Awaited<ReturnType<typeof measureSequential>>;

async function run(options: BenchOptions): Promise<BenchReport> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const seconds = options.seconds;
  const warmupSeconds = numberOption(options.extra.warmup, 'warmup', 0) ?? Math.min(3, Math.max(1, seconds / 5));
  const largeMiB = numberOption(options.extra['large-mib'], 'large-mib', 1) ?? DEFAULT_LARGE_MIB;
  const largeClients = Math.round(
    numberOption(options.extra['large-clients'], 'large-clients', 1) ?? DEFAULT_LARGE_CLIENTS,
  );
  const logLevel = options.extra['log-level'];
  const machine = machineInfo();

  const idp = await startIdp(typeof logLevel === 'string' ? { logLevel } : {});
  let app: FastifyInstance | undefined;
  try {
    const { rt } = idp;
    progress(`idp on ${idp.origin} (SQLite ${idp.databaseFile}); enrolling a user entitled to ORF and TRACE-CA`);
    const template = await enrollTemplateUser(idp);
    const [user] = await createUsers(idp, template, 2);
    const row = user ? await rt.store.repos.users.findUserByLogin(user.login) : undefined;
    if (!user || !row) throw new Error('user not created');
    await rt.store.repos.users.assignApp(row.id, 'download', Date.now());
    for (const facility of ['ORF', 'TRACE-CA'])
      await rt.store.repos.refdata.grantEntitlement(row.id, facility, Date.now());

    const store = openFileStore(rt);
    progress(`publishing a small file and a ${largeMiB} MiB file in ${store.dir}`);
    const small = await store.put({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-03' }, referenceFile(4096));
    const large = await store.put(
      { facility: 'TRACE-CA', file: 'CAMASTER', date: '2026-12-03' },
      referenceFile(largeMiB * 2 ** 20),
    );

    // Any rate limit would be the thing measured: one user here stands for many.
    app = await buildDownload(rt, { rateLimit: { perMinute: 1e12, burst: 1e12 } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    const origin = `http://127.0.0.1:${address.port}`;

    progress('getting a refresh token (sign-in, code + PKCE), then an access token through the download service');
    const { refreshToken, issuer } = await obtainRefreshToken(idp, user);
    const grant = await fetch(`${origin}/oauth2/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'traqs-api' }),
    });
    const token = String(((await grant.json()) as Record<string, unknown>).access_token ?? '');
    if (grant.status !== 200 || !token) throw new Error(`token endpoint answered ${grant.status}`);

    const smallPath = '/v1/files/ORF/EQUITYMASTERAC';
    progress(
      `${concurrency} keep-alive clients on GET ${smallPath}: ${warmupSeconds} s warm-up, ${seconds} s measured`,
    );
    const smallLoad = await phase(
      { type: 'start', origin, path: smallPath, token, concurrency, expectBytes: small.size },
      warmupSeconds,
      seconds,
      options.extra['cpu-profile'] ? 'download-small' : undefined,
    );
    // The same load on a bare Fastify app answering the same bytes from memory: what the machine
    // and the HTTP stack allow at all, to read the number above against.
    const bare = Fastify({ logger: false });
    const smallBody = Buffer.concat([...referenceFile(4096)]);
    bare.get('/bare', async (_req, reply) => reply.type('text/plain; charset=utf-8').send(smallBody));
    await bare.listen({ host: '127.0.0.1', port: 0 });
    const bareAddress = bare.server.address();
    if (!bareAddress || typeof bareAddress === 'string') throw new Error('no TCP address');
    progress(`the same clients on a bare Fastify app answering ${smallBody.length} bytes from memory`);
    const baseline = await phase(
      {
        type: 'start',
        origin: `http://127.0.0.1:${bareAddress.port}`,
        path: '/bare',
        token,
        concurrency,
        expectBytes: smallBody.length,
      },
      1,
      Math.min(seconds, 5),
      undefined,
    );
    await bare.close();

    const largePath = '/DownloadHandler.ashx?action=DOWNLOAD&facility=TRACE-CA&file=CAMASTER';
    progress(`${largeClients} clients downloading the ${largeMiB} MiB file again and again for ${seconds} s`);
    const largeLoad = await phase(
      {
        type: 'start',
        origin,
        path: largePath,
        token,
        concurrency: largeClients,
        expectBytes: large.size,
      },
      1,
      seconds,
      options.extra['cpu-profile'] ? 'download-large' : undefined,
    );

    progress(`one core: ${JWT_SECONDS} s of raw ES256 verifications, ${JWT_SECONDS} s of cached token checks`);
    const jwks = createLocalJWKSet(await (await fetch(`${issuer}/v1/keys`)).json());
    const audience = rt.environment.download.publicUrl;
    const verifyOptions = { issuer, audience, algorithms: ['ES256'], typ: 'at+jwt' };
    const rawVerify = await measureSequential(JWT_SECONDS, () => jwtVerify(token, jwks, verifyOptions));
    const verifier = createAccessTokenVerifier({ issuer, audience, keys: jwks as JWTVerifyGetKey, clock: Date.now });
    const cached = await measureSequential(JWT_SECONDS, () => verifier.verify(token));

    await app.close();
    app = undefined;
    const audited = (await rt.store.repos.audit.listEvents({ action: 'download.file', limit: 10_000_000 })).length;

    return report({
      machine,
      concurrency,
      largeClients,
      largeBytes: large.size,
      smallBytes: small.size,
      warmupSeconds,
      logLevel: rt.config.logLevel,
      small: smallLoad,
      baseline,
      large: largeLoad,
      rawVerify,
      cached,
      audited,
    });
  } finally {
    await app?.close();
    await idp.close(options.extra.keep === true);
  }
}

function report(m: {
  machine: MachineInfo;
  concurrency: number;
  largeClients: number;
  largeBytes: number;
  smallBytes: number;
  warmupSeconds: number;
  logLevel: string;
  small: { load: DownloadLoadResult; server: CpuMeasurement };
  baseline: { load: DownloadLoadResult; server: CpuMeasurement };
  large: { load: DownloadLoadResult; server: CpuMeasurement };
  rawVerify: Sequential;
  cached: Sequential;
  audited: number;
}): BenchReport {
  const f = (v: number, d = 1) => round(v, d).toFixed(d);
  const pct = (v: number | undefined) => (v === undefined ? '?' : `${f(v)} %`);
  const { small, large } = m;
  const smallRate = small.load.completed / (small.load.windowMs / 1000);
  const baselineRate = m.baseline.load.completed / (m.baseline.load.windowMs / 1000);
  const mainCpuPer = (p: { load: DownloadLoadResult; server: CpuMeasurement }) =>
    p.server.mainThreadCpuMs === undefined ? Number.NaN : p.server.mainThreadCpuMs / p.load.completed;
  const largeRate = large.load.bytes / MB / (large.load.windowMs / 1000);
  const errors = (r: DownloadLoadResult) => Object.values(r.errorsTotal).reduce((a, b) => a + b, 0);
  const errorCount = errors(small.load) + errors(large.load);
  const successes = small.load.successesTotal + large.load.successesTotal;
  const smallMet = smallRate >= TARGET_REQUESTS_PER_SECOND;
  const largeMet = largeRate >= TARGET_MB_PER_SECOND;
  // Every download is audited (cut-off large downloads too, so at least the completed ones).
  const auditOk = m.audited >= successes;
  const ok = smallMet && largeMet && errorCount === 0 && auditOk && small.load.completed > 0;
  const latency = summarize(small.load.latencies);
  const cpuPerRequest = small.server.processCpuMs / small.load.completed;

  const table = formatTable('download: API Download under load', [
    ['verdict', ok ? 'PASS' : 'FAIL'],
    [],
    ['small file', `${m.smallBytes} bytes, GET /v1/files/ORF/EQUITYMASTERAC, ${m.concurrency} keep-alive clients`],
    [
      'downloads per second',
      `${f(smallRate, 0)} (target ≥ ${TARGET_REQUESTS_PER_SECOND}: ${smallMet ? 'met' : 'missed'})`,
    ],
    ['latency ms p50/p95/p99/max', `${latency.p50} / ${latency.p95} / ${latency.p99} / ${latency.max}`],
    [
      'server CPU per download',
      `${f(cpuPerRequest, 3)} ms (main thread ${pct(percentOfMachine(small.server.mainThreadCpuMs, small.server.wallMs))} of the machine)`,
    ],
    ['server event loop busy', pct(small.server.eventLoopUtilization * 100)],
    ['load generator CPU', pct(percentOfMachine(small.load.cpuMs, small.load.windowMs))],
    [
      'bare Fastify, same load',
      `${f(baselineRate, 0)} answers/s: the service does ${pct((smallRate / baselineRate) * 100)} of that`,
    ],
    [
      'main-thread CPU per answer',
      `${f(mainCpuPer(small), 3)} ms download, ${f(mainCpuPer(m.baseline), 3)} ms bare Fastify (×${f(mainCpuPer(small) / mainCpuPer(m.baseline), 2)})`,
    ],
    [],
    ['large file', `${f(m.largeBytes / 2 ** 20, 0)} MiB by DownloadHandler.ashx, ${m.largeClients} clients`],
    ['throughput', `${f(largeRate, 0)} MB/s (target ≥ ${TARGET_MB_PER_SECOND}: ${largeMet ? 'met' : 'missed'})`],
    ['whole files in the window', String(large.load.completed)],
    ['server CPU', pct(percentOfMachine(large.server.processCpuMs, large.server.wallMs))],
    [],
    ['raw ES256 verifications/s', `${f(m.rawVerify.perSecond, 0)} (jose jwtVerify, one core)`],
    ['cached token checks/s', `${f(m.cached.perSecond, 0)} (SHA-256 + LRU, one core)`],
    [],
    [
      'errors',
      errorCount === 0 ? 'none' : JSON.stringify({ small: small.load.errorsTotal, large: large.load.errorsTotal }),
    ],
    ...(errorCount
      ? ([
          ['error samples', [...small.load.errorSamples, ...large.load.errorSamples].join(' | ').slice(0, 300)],
        ] as const)
      : []),
    [
      'audit events (download.file)',
      `${m.audited} for ${successes} complete downloads${auditOk ? '' : ' (MISSING EVENTS)'}`,
    ],
    ['access log', `level ${m.logLevel}, into a file`],
    ['machine', `${m.machine.cpus} × ${m.machine.cpuModel}, ${m.machine.node}, load ${m.machine.loadAverage1m}`],
  ]);
  return {
    ok,
    table,
    result: {
      ok,
      smallDownloadsPerSecond: round(smallRate, 0),
      smallLatencyMs: latency,
      bareFastifyAnswersPerSecond: round(baselineRate, 0),
      mainThreadCpuMsPerSmallDownload: round(mainCpuPer(small), 4),
      mainThreadCpuMsPerBareAnswer: round(mainCpuPer(m.baseline), 4),
      serverCpuMsPerSmallDownload: round(cpuPerRequest, 4),
      largeMegabytesPerSecond: round(largeRate, 0),
      largeFileBytes: m.largeBytes,
      rawEs256VerificationsPerSecond: round(m.rawVerify.perSecond, 0),
      cachedTokenChecksPerSecond: round(m.cached.perSecond, 0),
      errors: { small: small.load.errorsTotal, large: large.load.errorsTotal },
      auditedDownloads: m.audited,
      completeDownloads: successes,
      concurrency: m.concurrency,
      largeClients: m.largeClients,
      machine: m.machine,
    },
  };
}

export const benchmark: Benchmark = {
  description: 'download API: small-file downloads/s, 1 GiB throughput, JWT verifications/s',
  options: {
    'large-mib': { type: 'string', arg: 'N', help: `size of the large file in MiB (default ${DEFAULT_LARGE_MIB})` },
    'large-clients': {
      type: 'string',
      arg: 'N',
      help: `clients downloading the large file (default ${DEFAULT_LARGE_CLIENTS})`,
    },
    warmup: { type: 'string', arg: 'S', help: 'seconds of load before each measured window' },
    'log-level': { type: 'string', arg: 'L', help: "the services' log level (default: the config default)" },
    keep: { type: 'boolean', help: 'keep the data directory (database, files, log)' },
    'cpu-profile': { type: 'boolean', help: "profile the server's main thread during each measured window" },
  },
  run,
};
