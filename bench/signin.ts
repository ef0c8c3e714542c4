/**
 * `npm run bench -- signin`: full password + TOTP sign-ins per second through the Okta
 * Authentication API of a real idp on SQLite, next to raw Argon2id verifications per second
 * measured in the same process with the same thread pool, and their ratio (target ≥ 0.75).
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
  machineInfo,
  percentOfMachine,
  progress,
  round,
  sleep,
  startCpuMeter,
  summarize,
} from './common.ts';
import { BENCH_PASSWORD, createUsers, enrollTemplateUser, runSignInLoad, startIdp } from './idp.ts';
import type { LoadClient, LoadResult } from './signin-load.ts';

const TARGET_RATIO = 0.75;
const DEFAULT_CONCURRENCY = 8;

/** Raw Argon2id: `concurrency` loops of `verify` for `seconds`, after a short warm-up. */
async function measureRaw(hash: string, password: string, concurrency: number, seconds: number) {
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
  await sleep(500);
  const t0 = performance.now();
  const meter = startCpuMeter();
  await sleep(seconds * 1000);
  const t1 = performance.now();
  const cpu = meter();
  stop = true;
  await Promise.all(loops);
  const inWindow = ends.map((e, i) => [e, i] as const).filter(([e]) => e >= t0 && e <= t1);
  const count = inWindow.length;
  return {
    perSecond: count / ((t1 - t0) / 1000),
    count,
    seconds: (t1 - t0) / 1000,
    failures,
    cpuMsPerVerify: cpu.processCpuMs / count,
    cpuPercent: (cpu.processCpuMs / cpu.wallMs) * 100,
    otherProcessesPercent: percentOfMachine(cpu.otherProcessesCpuMs, cpu.wallMs),
    latencyMs: summarize(inWindow.map(([, i]) => latencies[i] ?? 0)),
  };
}
type RawResult = Awaited<ReturnType<typeof measureRaw>>;

function numberOption(value: string | boolean | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number of at least ${min}`);
  return n;
}

async function run(options: BenchOptions): Promise<BenchReport> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const seconds = options.seconds;
  const warmupSeconds = numberOption(options.extra.warmup, 'warmup', 0) ?? Math.min(3, Math.max(1, seconds / 5));
  const users = numberOption(options.extra.users, 'users', 2);
  const rawSeconds = Math.max(1, seconds / 2);
  const machine = machineInfo();
  const logLevel = options.extra['log-level'];
  const client = options.extra.client ?? 'raw';
  if (client !== 'raw' && client !== 'http') throw new Error('--client must be raw or http');
  const idp = await startIdp(typeof logLevel === 'string' ? { logLevel } : {});
  try {
    progress(`idp on ${idp.origin} (SQLite ${idp.databaseFile}); enrolling a template user through the API`);
    const template = await enrollTemplateUser(idp);
    const hash = template.user.password_hash;
    const hashParams = /\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(hash)?.slice(1).map(Number) ?? [];

    // Raw Argon2id in two halves around the sign-in load, so a change in what else the machine
    // does affects both sides of the ratio alike.
    progress(`raw Argon2id verify: ${rawSeconds / 2} s at concurrency ${concurrency}`);
    const rawBefore = await measureRaw(hash, BENCH_PASSWORD, concurrency, rawSeconds / 2);

    // Enough users that none signs in twice within one TOTP step: the sign-in rate cannot exceed
    // the Argon2id rate, taken here with room for a raw phase slowed down by other programs.
    const expectedRate = Math.max(rawBefore.perSecond, 100 * machine.cpus);
    const userCount =
      (users === undefined ? undefined : Math.round(users)) ??
      Math.ceil(expectedRate * Math.min(warmupSeconds + seconds + 2, 31) * 1.25) + 4 * concurrency;
    progress(`creating ${userCount} users with an active TOTP factor`);
    const loadUsers = await createUsers(idp, template, userCount);

    progress(`sign-in load: ${concurrency} clients, ${warmupSeconds} s warm-up, ${seconds} s measured`);
    const { load, server } = await runSignInLoad(idp, {
      users: loadUsers,
      concurrency,
      warmupSeconds,
      seconds,
      client,
      cpuProfile: options.extra['cpu-profile'] === true,
    });

    progress(`raw Argon2id verify: ${rawSeconds / 2} s at concurrency ${concurrency}`);
    const rawAfter = await measureRaw(hash, BENCH_PASSWORD, concurrency, rawSeconds / 2);

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
      seconds,
      warmupSeconds,
      userCount,
      logLevel: idp.rt.config.logLevel,
      hashParams,
      stepSeconds: idp.rt.config.policy.totpStepSeconds,
      rawBefore,
      rawAfter,
      load,
      serverSuccesses: row.n - 1,
      server,
    });
  } finally {
    await idp.close(options.extra.keep === true);
  }
}

function report(m: {
  machine: ReturnType<typeof machineInfo>;
  concurrency: number;
  client: LoadClient;
  seconds: number;
  warmupSeconds: number;
  userCount: number;
  logLevel: string;
  hashParams: number[];
  stepSeconds: number;
  rawBefore: RawResult;
  rawAfter: RawResult;
  load: LoadResult;
  serverSuccesses: number;
  server: CpuMeasurement;
}): BenchReport {
  const { load } = m;
  const rawCount = m.rawBefore.count + m.rawAfter.count;
  const rawSecondsTotal = m.rawBefore.seconds + m.rawAfter.seconds;
  const rawPerSecond = rawCount / rawSecondsTotal;
  const signInsPerSecond = load.completed / (load.windowMs / 1000);
  const ratio = signInsPerSecond / rawPerSecond;
  const errorsInWindow = Object.values(load.errorsInWindow).reduce((a, b) => a + b, 0);
  const errorsTotal = Object.values(load.errorsTotal).reduce((a, b) => a + b, 0);
  const rawFailures = m.rawBefore.failures + m.rawAfter.failures;
  const targetMet = ratio >= TARGET_RATIO;
  const ok = targetMet && errorsTotal === 0 && rawFailures === 0 && m.serverSuccesses === load.successesTotal;
  const total = summarize(load.latency.total);
  const primary = summarize(load.latency.primary);
  const verifyLatency = summarize(load.latency.verify);
  const argon2CpuMs =
    (m.rawBefore.cpuMsPerVerify * m.rawBefore.count + m.rawAfter.cpuMsPerVerify * m.rawAfter.count) / rawCount;
  const serverCpuPerSignIn = m.server.processCpuMs / load.completed;
  const clientCpuPerSignIn = load.cpuMs / load.completed;
  const mainCpu = m.server.mainThreadCpuMs;
  const serverMainCpuPerSignIn = mainCpu === undefined ? undefined : mainCpu / load.completed;
  const serverMainBusyPerSignIn = (m.server.eventLoopUtilization * m.server.wallMs) / load.completed;
  const benchCpuPercent = percentOfMachine(m.server.processCpuMs + load.cpuMs, m.server.wallMs) ?? Number.NaN;
  // The machine meter counted the client process as "other": take it back out.
  const othersPercent = percentOfMachine(
    m.server.otherProcessesCpuMs === undefined ? undefined : Math.max(0, m.server.otherProcessesCpuMs - load.cpuMs),
    m.server.wallMs,
  );
  const noisiest = Math.max(
    othersPercent ?? 0,
    m.rawBefore.otherProcessesPercent ?? 0,
    m.rawAfter.otherProcessesPercent ?? 0,
  );
  // CPUs the raw phases kept busy: about min(UV_THREADPOOL_SIZE, CPUs) when the pool size took effect.
  const rawCpus =
    (m.rawBefore.cpuPercent * m.rawBefore.seconds + m.rawAfter.cpuPercent * m.rawAfter.seconds) / rawSecondsTotal / 100;
  // Where the ratio lands when both loads saturate the CPUs: Argon2id's CPU cost over the whole
  // sign-in's (server and client). It hardly moves when other programs take CPU time away.
  const cpuCostRatio = argon2CpuMs / (serverCpuPerSignIn + clientCpuPerSignIn);
  const verdict = ok ? 'PASS' : targetMet ? 'FAIL (errors or a count mismatch, see below)' : 'FAIL';

  const result = {
    benchmark: 'signin',
    rawArgon2idVerificationsPerSecond: round(rawPerSecond),
    signInsPerSecond: round(signInsPerSecond),
    ratio: round(ratio, 3),
    target: TARGET_RATIO,
    pass: ok,
    signInLatencyMs: total,
    primaryLatencyMs: primary,
    verifyLatencyMs: verifyLatency,
    errors: { inWindow: load.errorsInWindow, total: load.errorsTotal, samples: load.errorSamples, rawFailures },
    raw: { before: m.rawBefore, after: m.rawAfter },
    load: {
      concurrency: m.concurrency,
      client: m.client,
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
      serverMainThreadCpuMsPerSignIn: serverMainCpuPerSignIn === undefined ? null : round(serverMainCpuPerSignIn, 2),
      serverMainThreadBusyMsPerSignIn: round(serverMainBusyPerSignIn, 2),
      serverEventLoopUtilization: round(m.server.eventLoopUtilization, 3),
      clientCpuMsPerSignIn: round(clientCpuPerSignIn, 2),
      benchmarkCpuPercentOfMachine: round(benchCpuPercent),
      otherProcessesCpuPercentOfMachine: {
        signIns: othersPercent === undefined ? null : round(othersPercent),
        rawBefore: m.rawBefore.otherProcessesPercent === undefined ? null : round(m.rawBefore.otherProcessesPercent),
        rawAfter: m.rawAfter.otherProcessesPercent === undefined ? null : round(m.rawAfter.otherProcessesPercent),
      },
    },
    setup: {
      database: 'SQLite (WAL, synchronous=NORMAL), file in a temp directory',
      argon2id: { m: m.hashParams[0], t: m.hashParams[1], p: m.hashParams[2] },
      logLevel: m.logLevel,
      totpStepSeconds: m.stepSeconds,
      clock: 'real wall clock; round-robin over the users, each signs in at most once per TOTP step (client-checked)',
    },
    machine: m.machine,
  };

  const f = (v: number, d = 1) => round(v, d).toFixed(d);
  const lat = (s: ReturnType<typeof summarize>) => `${f(s.p50)} / ${f(s.p95)} / ${f(s.p99)} ms`;
  const errorText = errorsTotal
    ? `${errorsTotal} (${Object.entries(load.errorsTotal)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')})`
    : '0';
  const errorWindowText = errorsInWindow ? ` (${errorsInWindow} in the measured window)` : '';
  const table = formatTable('Sign-in benchmark: password + TOTP through /api/v1/authn on SQLite', [
    [
      'raw Argon2id verifications/s',
      `${f(rawPerSecond)}  (before ${f(m.rawBefore.perSecond)}, after ${f(m.rawAfter.perSecond)}; ${rawCount} in ${f(rawSecondsTotal)} s)`,
    ],
    ['full sign-ins/s', `${f(signInsPerSecond)}  (${load.completed} in ${f(load.windowMs / 1000, 2)} s)`],
    ['ratio', f(ratio, 3)],
    ['target', `>= ${TARGET_RATIO}`],
    ['result', verdict],
    [],
    ['sign-in latency p50/p95/p99', lat(total)],
    ['  POST /api/v1/authn', lat(primary)],
    ['  POST .../factors/{id}/verify', lat(verifyLatency)],
    [
      'raw verify latency p50/p95',
      `${f(m.rawBefore.latencyMs.p50)} / ${f(m.rawBefore.latencyMs.p95)} ms (${f(rawCpus, 2)} CPUs busy)`,
    ],
    ['errors (all phases)', `${errorText}${errorWindowText}`],
    ['raw verify failures', String(rawFailures)],
    ['SUCCESS: client / server DB', `${load.successesTotal} / ${m.serverSuccesses}`],
    [],
    ['concurrency (both loads)', `${m.concurrency} in flight`],
    ['users', `${m.userCount} ACTIVE, one TOTP factor each; stalls ${load.stalls}`],
    [
      'TOTP clock',
      `real; a user is reused only after its step passed (shortest reuse ${load.minReuseSeconds === null ? 'none' : `${f(load.minReuseSeconds)} s`})`,
    ],
    ['Argon2id', `m=${m.hashParams[0]} t=${m.hashParams[1]} p=${m.hashParams[2]}, @node-rs/argon2 async`],
    ['server log level', m.logLevel],
    [],
    ['CPU-cost ratio', `${f(cpuCostRatio, 3)} (Argon2id CPU per verify / server+client CPU per sign-in)`],
    ['Argon2id CPU per verify', `${f(argon2CpuMs, 2)} ms`],
    [
      'server CPU per sign-in',
      `${f(serverCpuPerSignIn, 2)} ms (${f(serverCpuPerSignIn - argon2CpuMs, 2)} ms besides Argon2id)`,
    ],
    [
      'server main thread per sign-in',
      `${serverMainCpuPerSignIn === undefined ? '?' : f(serverMainCpuPerSignIn, 2)} ms CPU, ${f(serverMainBusyPerSignIn, 2)} ms busy (event loop ${f(m.server.eventLoopUtilization * 100)} % busy)`,
    ],
    [
      'client CPU per sign-in',
      `${f(clientCpuPerSignIn, 2)} ms (separate process, ${m.client === 'raw' ? 'minimal HTTP/1.1 client' : 'node:http Agent'}, same CPUs)`,
    ],
    ['CPU during sign-ins', `this benchmark ${f(benchCpuPercent)} % of ${m.machine.cpus} CPUs`],
    [
      'other processes (noise)',
      `${othersPercent === undefined ? '?' : f(othersPercent)} % during sign-ins, ${f(m.rawBefore.otherProcessesPercent ?? Number.NaN)} / ${f(m.rawAfter.otherProcessesPercent ?? Number.NaN)} % during raw${noisiest > 10 ? '  << machine busy: numbers unreliable' : ''}`,
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
    users: { type: 'string', arg: 'N', help: 'users to sign in as (default: none signs in twice per TOTP step)' },
    warmup: { type: 'string', arg: 'N', help: 'seconds of load before measuring (default: seconds/5, 1 to 3)' },
    client: { type: 'string', arg: 'raw|http', help: 'load generator: minimal HTTP/1.1 (default) or node:http' },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'server log level (default: the configured one, info)' },
    keep: { type: 'boolean', help: 'keep the temporary database and idp.log' },
    'cpu-profile': { type: 'boolean', help: "profile the server's main thread over the window" },
  },
  run,
};
