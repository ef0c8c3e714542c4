import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { Benchmark, BenchReport } from './common.ts';

/**
 * `npm run bench -- [name…] [--seconds N] [--concurrency N] [--threads N] [--json]`
 *
 * The registry: one line per benchmark. Modules load lazily, after the thread pool size is set.
 */
const benchmarks: Record<string, () => Promise<{ benchmark: Benchmark }>> = {
  signin: () => import('./signin.ts'),
  refresh: () => import('./refresh.ts'),
  download: () => import('./download.ts'),
};

const commonOptions = {
  seconds: { type: 'string' },
  concurrency: { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} satisfies NonNullable<ParseArgsConfig['options']>;

const args = process.argv.slice(2);

// The libuv thread pool, where @node-rs/argon2 runs its async work, is sized from
// UV_THREADPOOL_SIZE once, when something first uses it, and module loading (tsx reads files
// asynchronously) may already have. So the variable must be set before the process starts: when it
// is not what was asked for, this runs itself again with it set and passes on the exit code.
const early = parseArgs({ args, options: { threads: { type: 'string' } }, strict: false, allowPositionals: true });
const threadsArg = typeof early.values.threads === 'string' ? early.values.threads : undefined;
const threads = Number(threadsArg ?? process.env.UV_THREADPOOL_SIZE ?? availableParallelism());
if (!Number.isInteger(threads) || threads < 1 || threads > 1024) {
  console.error(`--threads must be an integer from 1 to 1024, got ${threadsArg ?? process.env.UV_THREADPOOL_SIZE}`);
  process.exit(2);
}
if (process.env.UV_THREADPOOL_SIZE !== String(threads)) {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(threads) },
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const loaded = await Promise.all(
    Object.entries(benchmarks).map(async ([name, load]) => [name, (await load()).benchmark] as const),
  );
  const registry = new Map<string, Benchmark>(loaded);

  function usage(): string {
    const line = (opt: string, arg: string | undefined, help: string) =>
      `  ${`--${opt}${arg ? ` ${arg}` : ''}`.padEnd(20)} ${help}`;
    return [
      'Usage: npm run bench -- [name...] [options]',
      '',
      'Benchmarks (no name runs all of them):',
      ...[...registry].map(([name, b]) => `  ${name.padEnd(10)} ${b.description}`),
      '',
      'Options:',
      line('seconds', 'N', 'length of the measured window (default 10)'),
      line('concurrency', 'N', 'operations in flight (default: chosen by the benchmark)'),
      line('threads', 'N', `UV_THREADPOOL_SIZE (default: the variable, else the CPU count: ${availableParallelism()})`),
      line('json', undefined, 'print machine-readable results on stdout (use `npm run -s`)'),
      ...[...registry].flatMap(([name, b]) =>
        Object.entries(b.options ?? {}).map(([opt, spec]) => line(opt, spec.arg, `${spec.help} (${name})`)),
      ),
    ].join('\n');
  }

  let parsed: ReturnType<typeof parseArgs>;
  try {
    const extraOptions: NonNullable<ParseArgsConfig['options']> = {};
    for (const b of registry.values()) {
      for (const [opt, spec] of Object.entries(b.options ?? {})) extraOptions[opt] = { type: spec.type };
    }
    parsed = parseArgs({ args, options: { ...extraOptions, ...commonOptions }, allowPositionals: true, strict: true });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage()}`);
    process.exit(2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }

  const unknown = positionals.filter((name) => !registry.has(name));
  if (unknown.length) {
    console.log(`Unknown benchmark${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}\n\n${usage()}`);
    process.exit(1);
  }

  function positiveNumber(name: string, value: unknown, fallback: number | undefined): number | undefined {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) {
      console.error(`--${name} must be a positive number, got ${String(value)}`);
      process.exit(2);
    }
    return n;
  }
  const seconds = positiveNumber('seconds', values.seconds, 10) ?? 10;
  const concurrency = positiveNumber('concurrency', values.concurrency, undefined);
  if (concurrency !== undefined && !Number.isInteger(concurrency)) {
    console.error('--concurrency must be an integer');
    process.exit(2);
  }

  const names = positionals.length ? positionals : [...registry.keys()];
  const results: Record<string, BenchReport['result']> = {};
  let allOk = true;
  for (const name of names) {
    const bench = registry.get(name);
    if (!bench) continue;
    const extra: Record<string, string | boolean | undefined> = {};
    for (const opt of Object.keys(bench.options ?? {})) {
      const v = values[opt];
      if (typeof v === 'string' || typeof v === 'boolean') extra[opt] = v;
    }
    const report = await bench.run({ seconds, concurrency, json: values.json === true, extra });
    allOk &&= report.ok;
    results[name] = report.result;
    if (!values.json) console.log(`${report.table}\n`);
  }
  // One shape whatever ran: benchmark name → its result.
  if (values.json) console.log(JSON.stringify(results, null, 2));
  process.exitCode = allOk ? 0 : 1;
}
