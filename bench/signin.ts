/**
 * `npm run bench -- signin`: full password + TOTP sign-ins per second through the Okta
 * Authentication API of a real idp on SQLite, next to raw Argon2id verifications per second
 * measured in the same process with the same thread pool, and their ratio (target ≥ 0.75).
 *
 * The two loads alternate in rounds (raw, sign-ins, raw, sign-ins, …, raw), so a program that
 * starts or stops on the machine meanwhile weighs on both sides of the ratio alike.
 */
import { performance } from 'node:perf_hooks';
import { verify as argon2Verify } from '@node-rs/argon2';
import SQLite from 'better-sqlite3';
import {
  type Benchmark,
  type BenchOptions,
  type BenchReport,
  type CpuMeasurement,
  formatTable,
  type MachineInfo,
  machineInfo,
  median,
  percentOfMachine,
  progress,
  round,
  sleep,
  startCpuMeter,
  sumCpu,
  summarize,
} from './common.ts';
import { BENCH_PASSWORD, createUsers, enrollTemplateUser, startIdp, startProfiler, startSignInLoad } from './idp.ts';
import type { LoadClient, LoadResult } from './signin-load.ts';

const TARGET_RATIO = 0.75;
const DEFAULT_CONCURRENCY = 8;
const DEFAULT_ROUNDS = 5;
/** After resuming the sign-in load, time for every client to have a sign-in under way again. */
const RAMP_MS = 300;

/** Raw Argon2id: `concurrency` loops of `verify`, counted over `seconds` after `warmupMs`. */
async function measureRaw(hash: string, password: string, concurrency: number, seconds: number, warmupMs: number) {
  const ends: number[] = [];
  const latencies: number[] = [];
  let failures = 0;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const s = performance.now();
      const ok = await argon2Verify(hash, password);
      const e = performance.now();
      if (!ok) failures++;
      ends.push(e);
      latencies.push(e - s);
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  await sleep(warmupMs);
  const t0 = performance.now();
  const meter = startCpuMeter();
  await sleep(seconds * 1000);
  const t1 = performance.now();
  const cpu = meter();
  stop = true;
  await Promise.all(loops);
  const counted = ends.flatMap((e, i) => (e >= t0 && e <= t1 ? [latencies[i] ?? 0] : []));
  return { count: counted.length, seconds: (t1 - t0) / 1000, failures, latencies: counted, cpu };
}
type RawSlice = Awaited<ReturnType<typeof measureRaw>>;

function numberOption(value: string | boolean | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number of at least ${min}`);
  return n;
}

async function run(options: BenchOptions): Promise<BenchReport> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const seconds = options.seconds;
  const rounds = Math.round(numberOption(options.extra.rounds, 'rounds', 1) ?? DEFAULT_ROUNDS);
  const warmupSeconds = numberOption(options.extra.warmup, 'warmup', 0) ?? Math.min(3, Math.max(1, seconds / 5));
  const users = numberOption(options.extra.users, 'users', 2);
  const client = options.extra.client ?? 'raw';
  if (client !== 'raw' && client !== 'http') throw new Error('--client must be raw or http');
  // Sign-ins for `seconds` in all, raw Argon2id for half as long, in rounds + 1 slices around them.
  const signInSlice = seconds / rounds;
  const rawSlice = seconds / 2 / (rounds + 1);
  const machine = machineInfo();
  const logLevel = options.extra['log-level'];

  const idp = await startIdp(typeof logLevel === 'string' ? { logLevel } : {});
  try {
    progress(`idp on ${idp.origin} (SQLite ${idp.databaseFile}); enrolling a template user through the API`);
    const template = await enrollTemplateUser(idp);
    const hash = template.user.password_hash;
    const hashParams = /\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(hash)?.slice(1).map(Number) ?? [];

    // A first raw measurement (not counted) warms Argon2id up and sizes the user population:
    // enough users that none signs in twice within one TOTP step, since the sign-in rate cannot
    // exceed the Argon2id rate (with room for a machine busier now than later).
    const probe = await measureRaw(hash, BENCH_PASSWORD, concurrency, 1, 300);
    const expectedRate = Math.max(probe.count / probe.seconds, 100 * machine.cpus);
    const measuredSpan = warmupSeconds + seconds * 1.5 + rounds * 0.5;
    const userCount =
      (users === undefined ? undefined : Math.round(users)) ??
      Math.ceil(expectedRate * Math.min(measuredSpan, 31) * 1.25) + 4 * concurrency;
    progress(`creating ${userCount} users with an active TOTP factor`);
    const loadUsers = await createUsers(idp, template, userCount);

    progress(
      `${rounds} rounds of ${round(rawSlice, 2)} s raw Argon2id and ${round(signInSlice, 2)} s of sign-ins, ` +
        `concurrency ${concurrency}, after ${warmupSeconds} s of sign-ins to warm up`,
    );
    const load = await startSignInLoad(idp, { users: loadUsers, concurrency, client });
    await sleep(warmupSeconds * 1000);
    const stopProfiler = options.extra['cpu-profile'] ? await startProfiler('signin') : undefined;
    await load.pause();
    const raw: RawSlice[] = [await measureRaw(hash, BENCH_PASSWORD, concurrency, rawSlice, 100)];
    const server: CpuMeasurement[] = [];
    for (let i = 0; i < rounds; i++) {
      load.resume();
      await sleep(RAMP_MS);
      load.windowStart();
      const meter = startCpuMeter();
      await sleep(signInSlice * 1000);
      load.windowEnd();
      server.push(meter());
      await load.pause();
      raw.push(await measureRaw(hash, BENCH_PASSWORD, concurrency, rawSlice, 100));
    }
    const result = await load.stop();
    if (stopProfiler) progress(`CPU profile of the server process's main thread: ${await stopProfiler()}`);

    // What the server recorded: one one-time session token per SUCCESS (the template user's
    // factor activation made one too).
    const db = new SQLite(idp.databaseFile, { readonly: true });
    const row = db.prepare("select count(*) as n from one_time_tokens where purpose = 'session'").get() as {
      n: number;
    };
    db.close();

    return report({
      machine,
      concurrency,
      client,
      rounds,
      warmupSeconds,
      userCount,
      logLevel: idp.rt.config.logLevel,
      hashParams,
      stepSeconds: idp.rt.config.policy.totpStepSeconds,
      raw,
      load: result,
      serverSuccesses: row.n - 1,
      server,
    });
  } finally {
    await idp.close(options.extra.keep === true);
  }
}

function report(m: {
  machine: MachineInfo;
  concurrency: number;
  client: LoadClient;
  rounds: number;
  warmupSeconds: number;
  userCount: number;
  logLevel: string;
  hashParams: number[];
  stepSeconds: number;
  raw: RawSlice[];
  load: LoadResult;
  serverSuccesses: number;
  server: CpuMeasurement[];
}): BenchReport {
  const { load } = m;
  const f = (v: number, d = 1) => round(v, d).toFixed(d);
  const pct = (v: number | undefined) => (v === undefined ? '?' : `${f(v)} %`);

  // Throughputs and their ratio, overall and per round (each round's sign-ins against the raw
  // slices on either side).
  const rawCount = m.raw.reduce((a, r) => a + r.count, 0);
  const rawSeconds = m.raw.reduce((a, r) => a + r.seconds, 0);
  const rawPerSecond = rawCount / rawSeconds;
  const signInsPerSecond = load.completed / (load.windowMs / 1000);
  const ratio = signInsPerSecond / rawPerSecond;
  const rawRate = (r: RawSlice | undefined) => (r ? r.count / r.seconds : Number.NaN);
  const roundRatios = load.windows.map(
    (w, i) => w.completed / (w.ms / 1000) / ((rawRate(m.raw[i]) + rawRate(m.raw[i + 1])) / 2),
  );

  // Correctness: every sign-in must end in SUCCESS, and the server must have recorded each.
  const errorsInWindow = Object.values(load.errorsInWindow).reduce((a, b) => a + b, 0);
  const errorsTotal = Object.values(load.errorsTotal).reduce((a, b) => a + b, 0);
  const rawFailures = m.raw.reduce((a, r) => a + r.failures, 0);
  const targetMet = ratio >= TARGET_RATIO;
  const ok = targetMet && errorsTotal === 0 && rawFailures === 0 && m.serverSuccesses === load.successesTotal;
  const verdict = ok ? 'PASS' : targetMet ? 'FAIL (errors or a count mismatch, see below)' : 'FAIL';

  // Where the CPU time went.
  const rawCpu = sumCpu(m.raw.map((r) => r.cpu));
  const server = sumCpu(m.server);
  const argon2CpuMs = rawCpu.processCpuMs / rawCount;
  const rawCpus = rawCpu.processCpuMs / rawCpu.wallMs;
  const serverCpuPerSignIn = server.processCpuMs / load.completed;
  const clientCpuPerSignIn = load.cpuMs / load.completed;
  const mainCpuPerSignIn = server.mainThreadCpuMs === undefined ? undefined : server.mainThreadCpuMs / load.completed;
  const mainBusyPerSignIn = (server.eventLoopUtilization * server.wallMs) / load.completed;
  // Where the ratio lands when both loads keep the CPUs busy: Argon2id's CPU cost over the whole
  // sign-in's (server and client). It moves less than the ratio when other programs take CPU time.
  const cpuCostRatio = argon2CpuMs / (serverCpuPerSignIn + clientCpuPerSignIn);
  const benchCpuPercent = percentOfMachine(server.processCpuMs + load.cpuMs, server.wallMs) ?? Number.NaN;
  // The machine meter counts the client process as another program: take it back out.
  const othersSignIn = percentOfMachine(
    server.otherProcessesCpuMs === undefined ? undefined : Math.max(0, server.otherProcessesCpuMs - load.cpuMs),
    server.wallMs,
  );
  const othersRaw = percentOfMachine(rawCpu.otherProcessesCpuMs, rawCpu.wallMs);
  const noisy = Math.max(othersSignIn ?? 0, othersRaw ?? 0) > 5;

  const total = summarize(load.latency.total);
  const primary = summarize(load.latency.primary);
  const verifyLatency = summarize(load.latency.verify);
  const rawLatency = summarize(m.raw.flatMap((r) => r.latencies));
  const result = {
    benchmark: 'signin',
    rawArgon2idVerificationsPerSecond: round(rawPerSecond),
    signInsPerSecond: round(signInsPerSecond),
    ratio: round(ratio, 3),
    target: TARGET_RATIO,
    pass: ok,
    roundRatios: roundRatios.map((r) => round(r, 3)),
    signInLatencyMs: total,
    primaryLatencyMs: primary,
    verifyLatencyMs: verifyLatency,
    rawVerifyLatencyMs: rawLatency,
    errors: { inWindow: load.errorsInWindow, total: load.errorsTotal, samples: load.errorSamples, rawFailures },
    raw: {
      verifications: rawCount,
      seconds: round(rawSeconds, 2),
      slicesPerSecond: m.raw.map((r) => round(rawRate(r))),
    },
    load: {
      concurrency: m.concurrency,
      client: m.client,
      rounds: m.rounds,
      measuredSeconds: round(load.windowMs / 1000, 2),
      warmupSeconds: m.warmupSeconds,
      signIns: load.completed,
      users: m.userCount,
      clientSuccessesTotal: load.successesTotal,
      serverRecordedSuccesses: m.serverSuccesses,
      stalls: load.stalls,
      minSecondsBetweenSignInsOfOneUser: load.minReuseSeconds,
    },
    cpu: {
      cpuCostRatio: round(cpuCostRatio, 3),
      rawCpusBusy: round(rawCpus, 2),
      argon2idCpuMsPerVerify: round(argon2CpuMs, 2),
      serverCpuMsPerSignIn: round(serverCpuPerSignIn, 2),
      serverNonArgon2CpuMsPerSignIn: round(serverCpuPerSignIn - argon2CpuMs, 2),
      serverMainThreadCpuMsPerSignIn: mainCpuPerSignIn === undefined ? null : round(mainCpuPerSignIn, 2),
      serverMainThreadBusyMsPerSignIn: round(mainBusyPerSignIn, 2),
      serverEventLoopUtilization: round(server.eventLoopUtilization, 3),
      clientCpuMsPerSignIn: round(clientCpuPerSignIn, 2),
      benchmarkCpuPercentOfMachine: round(benchCpuPercent),
      otherProcessesCpuPercentOfMachine: {
        signIns: othersSignIn === undefined ? null : round(othersSignIn),
        raw: othersRaw === undefined ? null : round(othersRaw),
      },
    },
    setup: {
      database: 'SQLite (WAL, synchronous=NORMAL), file in a temp directory',
      argon2id: { m: m.hashParams[0], t: m.hashParams[1], p: m.hashParams[2] },
      logLevel: m.logLevel,
      totpStepSeconds: m.stepSeconds,
      clock: 'real wall clock; round-robin over the users, each signs in at most once per TOTP step (client-checked)',
      perIpRateLimit: 'lifted (all load comes from 127.0.0.1)',
    },
    machine: m.machine,
  };

  const lat = (s: ReturnType<typeof summarize>) => `${f(s.p50)} / ${f(s.p95)} / ${f(s.p99)} ms`;
  const errorText = errorsTotal
    ? `${errorsTotal} (${Object.entries(load.errorsTotal)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')})${errorsInWindow ? `, ${errorsInWindow} in measured windows` : ''}`
    : '0';
  const slices = m.raw.map((r) => rawRate(r));
  const table = formatTable('Sign-in benchmark: password + TOTP through /api/v1/authn on SQLite', [
    [
      'raw Argon2id verifications/s',
      `${f(rawPerSecond)}  (${rawCount} in ${f(rawSeconds, 2)} s; slices ${f(Math.min(...slices))}-${f(Math.max(...slices))})`,
    ],
    ['full sign-ins/s', `${f(signInsPerSecond)}  (${load.completed} in ${f(load.windowMs / 1000, 2)} s)`],
    ['ratio', f(ratio, 3)],
    ['target', `>= ${TARGET_RATIO}`],
    ['result', verdict],
    ['ratio per round', `${roundRatios.map((r) => f(r, 2)).join(' ')} (median ${f(median(roundRatios), 3)})`],
    [],
    ['sign-in latency p50/p95/p99', lat(total)],
    ['  POST /api/v1/authn', lat(primary)],
    ['  POST .../factors/{id}/verify', lat(verifyLatency)],
    ['raw verify latency p50/p95/p99', lat(rawLatency)],
    ['errors (all phases)', errorText],
    ['raw verify failures', String(rawFailures)],
    ['SUCCESS: client / server DB', `${load.successesTotal} / ${m.serverSuccesses}`],
    [],
    ['concurrency (both loads)', `${m.concurrency} in flight`],
    [
      'rounds',
      `${m.rounds} x (raw, sign-ins) + raw; ${f(m.warmupSeconds)} s warm-up, ${RAMP_MS} ms ramp after each pause`,
    ],
    ['users', `${m.userCount} ACTIVE, one TOTP factor each; stalls ${load.stalls}`],
    [
      'TOTP clock',
      `real; a user is reused only after its step passed (shortest reuse: ${load.minReuseSeconds === null ? 'none' : `${f(load.minReuseSeconds)} s`})`,
    ],
    ['Argon2id', `m=${m.hashParams[0]} t=${m.hashParams[1]} p=${m.hashParams[2]}, @node-rs/argon2 async`],
    ['server', `log level ${m.logLevel}; per-IP rate limit lifted (one client address)`],
    [
      'load generator',
      m.client === 'raw'
        ? 'child process, minimal HTTP/1.1 keep-alive client'
        : 'child process, node:http keep-alive Agent',
    ],
    [],
    ['CPU-cost ratio', `${f(cpuCostRatio, 3)} (Argon2id CPU per verify / server+client CPU per sign-in)`],
    ['Argon2id CPU per verify', `${f(argon2CpuMs, 2)} ms (raw phases kept ${f(rawCpus, 2)} CPUs busy)`],
    [
      'server CPU per sign-in',
      `${f(serverCpuPerSignIn, 2)} ms (${f(serverCpuPerSignIn - argon2CpuMs, 2)} ms besides Argon2id)`,
    ],
    [
      'server main thread per sign-in',
      `${mainCpuPerSignIn === undefined ? '?' : f(mainCpuPerSignIn, 2)} ms CPU, ${f(mainBusyPerSignIn, 2)} ms busy (event loop ${f(server.eventLoopUtilization * 100)} % busy)`,
    ],
    ['client CPU per sign-in', `${f(clientCpuPerSignIn, 2)} ms (on the same CPUs)`],
    ['CPU during sign-ins', `${f(benchCpuPercent)} % of ${m.machine.cpus} CPUs`],
    [
      'other programs (noise)',
      `${pct(othersSignIn)} of the machine during sign-ins, ${pct(othersRaw)} during raw${noisy ? '  << busy machine: unreliable' : ''}`,
    ],
    [],
    ['machine', `${m.machine.cpus} x ${m.machine.cpuModel}, ${m.machine.os}`],
    ['node', `${m.machine.node}, UV_THREADPOOL_SIZE=${m.machine.uvThreadpoolSize}`],
    ['load average at start', String(m.machine.loadAverage1m)],
  ]);
  return { ok, table, result };
}

export const benchmark: Benchmark = {
  description: 'password + TOTP sign-ins/s through the Authentication API (SQLite) vs raw Argon2id verify/s',
  options: {
    rounds: { type: 'string', arg: 'N', help: 'alternations of raw Argon2id and sign-ins (default 5)' },
    users: { type: 'string', arg: 'N', help: 'users to sign in as (default: none signs in twice per TOTP step)' },
    warmup: { type: 'string', arg: 'N', help: 'seconds of load before measuring (default: seconds/5, 1 to 3)' },
    client: { type: 'string', arg: 'raw|http', help: 'load generator: minimal HTTP/1.1 (default) or node:http' },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'server log level (default: the configured one, info)' },
    keep: { type: 'boolean', help: 'keep the temporary database and idp.log' },
    'cpu-profile': { type: 'boolean', help: "profile the server's main thread over the measured rounds" },
  },
  run,
};
