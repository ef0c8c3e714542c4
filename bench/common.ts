import { readFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';

/** Command-line options every benchmark understands (parsed once by `bench/main.ts`). */
export interface BenchOptions {
  /** Length of the measured window of the main load, in seconds. */
  seconds: number;
  /** Requests (or operations) in flight at once; undefined lets the benchmark choose. */
  concurrency: number | undefined;
  /** Print machine-readable JSON instead of a table. */
  json: boolean;
  /** Options declared by the benchmark itself (its `options`), as parsed. */
  extra: Record<string, string | boolean | undefined>;
}

/** What a benchmark hands back to the dispatcher. */
export interface BenchReport {
  /** False when a target was missed or any operation failed; the process then exits with 1. */
  ok: boolean;
  /** The human-readable table. */
  table: string;
  /** The same results, JSON-serialisable. */
  result: Record<string, unknown>;
}

/** An extra `--option` of one benchmark. */
export interface BenchOption {
  type: 'string' | 'boolean';
  /** The value's placeholder in `--help`, e.g. `N` (string options). */
  arg?: string;
  /** What it does, for `--help`. */
  help: string;
}

/** One entry of the `bench/main.ts` registry. */
export interface Benchmark {
  description: string;
  options?: Record<string, BenchOption>;
  run(options: BenchOptions): Promise<BenchReport>;
}

/** Progress goes to stderr, so `--json` output on stdout stays parseable. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** The machine a result was measured on; load average shows whether something else was running. */
export function machineInfo() {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    node: process.version,
    os: `${platform()} ${release()}`,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
    loadAverage1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}
export type MachineInfo = ReturnType<typeof machineInfo>;

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

/** p50/p95/p99/max of a sample, in its unit, rounded to 0.1. */
export function summarize(sample: readonly number[]) {
  const sorted = [...sample].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 10) / 10;
  return {
    p50: r(percentile(sorted, 50)),
    p95: r(percentile(sorted, 95)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A two-column table with a title; rows of `[label, value]`, `[]` for a separator line. */
export function formatTable(title: string, rows: readonly (readonly [string, string] | readonly [])[]): string {
  const width = Math.max(...rows.map((r) => (r.length ? r[0].length : 0)));
  const lines = rows.map((r) => (r.length ? `  ${r[0].padEnd(width)}  ${r[1]}` : ''));
  return [title, '='.repeat(title.length), ...lines].join('\n');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ, 100 on Linux (`getconf CLK_TCK`)

/** Busy and total CPU time of the whole machine so far, in ms (Linux `/proc/stat`), else undefined. */
export function machineCpuMs(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already counted in user).
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    const toMs = 1000 / CLOCK_TICKS_PER_SECOND;
    return { busy: (total - idle) * toMs, total: total * toMs };
  } catch {
    return undefined;
  }
}

/** CPU time one thread of this process has used, in ms (Linux; 10 ms resolution), else undefined. */
export function threadCpuMs(tid: number = process.pid): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * Measures a phase: this process's CPU, its main thread's CPU, and how much CPU the rest of the
 * machine used meanwhile (other programs make a benchmark on a small machine unreliable).
 */
export function startCpuMeter() {
  const cpu0 = process.cpuUsage();
  const main0 = threadCpuMs();
  const machine0 = machineCpuMs();
  const t0 = performance.now();
  const elu0 = performance.eventLoopUtilization();
  return () => {
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const processMs = (cpu.user + cpu.system) / 1000;
    const main1 = threadCpuMs();
    const machine1 = machineCpuMs();
    const others = machine0 && machine1 ? Math.max(0, machine1.busy - machine0.busy - processMs) : undefined;
    return {
      wallMs,
      processCpuMs: processMs,
      /** Of `processCpuMs`, the time spent in the kernel (system calls: sockets, files). */
      systemCpuMs: cpu.system / 1000,
      mainThreadCpuMs: main0 !== undefined && main1 !== undefined ? main1 - main0 : undefined,
      eventLoopUtilization: performance.eventLoopUtilization(elu0).utilization,
      /** CPU used by every other process of the machine, in ms. */
      otherProcessesCpuMs: others,
    };
  };
}
export type CpuMeasurement = ReturnType<ReturnType<typeof startCpuMeter>>;

/** CPU milliseconds over a wall-clock span, as a percentage of all the machine's CPUs. */
export function percentOfMachine(cpuMs: number | undefined, wallMs: number): number | undefined {
  return cpuMs === undefined ? undefined : (cpuMs / wallMs / cpus().length) * 100;
}

/** Several phases' measurements as one (CPU times and wall time added up). */
export function sumCpu(parts: readonly CpuMeasurement[]): CpuMeasurement {
  const add = (f: (m: CpuMeasurement) => number | undefined) =>
    parts.some((m) => f(m) === undefined) ? undefined : parts.reduce((a, m) => a + (f(m) ?? 0), 0);
  const wallMs = parts.reduce((a, m) => a + m.wallMs, 0);
  return {
    wallMs,
    processCpuMs: add((m) => m.processCpuMs) ?? 0,
    systemCpuMs: add((m) => m.systemCpuMs) ?? 0,
    mainThreadCpuMs: add((m) => m.mainThreadCpuMs),
    eventLoopUtilization: parts.reduce((a, m) => a + m.eventLoopUtilization * m.wallMs, 0) / wallMs,
    otherProcessesCpuMs: add((m) => m.otherProcessesCpuMs),
  };
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}
