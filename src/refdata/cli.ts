import { type Command, Option } from 'commander';
import type { EnvironmentRuntime } from '../app.ts';
import { assertIsoDate, businessDaysEndingOn, utcDate } from './business-days.ts';
import { RefdataError } from './errors.ts';
import { assertFacility, assertFileKind, FACILITIES, FACILITY_CODES } from './facilities.ts';
import { openFileStore } from './file-store.ts';
import { assertRows, DEFAULT_ROWS } from './generate.ts';
import type { ReferenceFileRow } from './repository.ts';
import { assertWithinRetention } from './retention.ts';
import { type Actor, createRefdataService } from './service.ts';

/** Where the commands write; tests capture it. */
export interface DataCommandsIo {
  out(text: string): void;
  err(text: string): void;
  /** Sets the process exit code (2 for a usage error) without cutting the command's clean-up short. */
  setExitCode(code: number): void;
}

const consoleIo: DataCommandsIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

/** A user mistake: printed as `traqs: …` without a stack, exit code 2 (as src/cli/main.ts does). */
class DataUsageError extends Error {}

const CLI: Actor = { actorId: null, via: 'cli' };
/** Files with at least this many rows get progress lines. */
const PROGRESS_ROWS = 200_000;
const PROGRESS_STEP = 128 << 20;

const envOption = () => new Option('--env <id>', 'environment: ntf or production').default('ntf');

function wholeNumber(option: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new DataUsageError(`${option} must be a whole number, not "${value}"`);
  return Number(value);
}

function mib(bytes: number): string {
  if (bytes < 1 << 20) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function fileLine(row: ReferenceFileRow): string {
  return `${row.facility.padEnd(9)}  ${row.file.padEnd(15)}  ${row.date}  ${String(row.records).padStart(9)} rows  ${mib(
    row.size,
  ).padStart(10)}  sha256 ${row.sha256.slice(0, 16)}…`;
}

function facilityList(values: string[] | undefined, all: boolean | undefined): string[] {
  if (all && values?.length) throw new DataUsageError('Give --facility or --all, not both');
  if (all) return [...FACILITY_CODES];
  if (!values?.length)
    throw new DataUsageError(`Give --facility <code> (one of: ${FACILITY_CODES.join(', ')}) or --all`);
  return [...new Set(values.map((v) => assertFacility(v).code))];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * The `data` (reference files) and `entitlement` (who may download which facility) commands.
 * `open` gives an environment runtime for `--env`; each command closes it when done. Usage
 * errors print `traqs: …` and set exit code 2.
 */
export function registerDataCommands(
  program: Command,
  open: (envId: string) => Promise<EnvironmentRuntime>,
  io: DataCommandsIo = consoleIo,
): void {
  /** Runs a command on an environment, closing it after; turns refused input into exit code 2. */
  const run = async (envId: string, work: (rt: EnvironmentRuntime) => Promise<void>): Promise<void> => {
    let rt: EnvironmentRuntime | undefined;
    try {
      rt = await open(envId);
      await work(rt);
    } catch (error) {
      if (!(error instanceof DataUsageError || error instanceof RefdataError)) throw error;
      io.err(`traqs: ${error.message}`);
      io.setExitCode(2);
    } finally {
      await rt?.close();
    }
  };
  const serviceOf = (rt: EnvironmentRuntime) =>
    createRefdataService({ store: rt.store, files: openFileStore(rt), clock: rt.clock });
  const print = (json: boolean | undefined, value: unknown, text: () => string) =>
    io.out(json ? JSON.stringify(value, null, 2) : text());

  const data = program
    .command('data')
    .description('Reference data files the download service serves (facility security masters and daily lists)');

  data
    .command('generate')
    .description('Generate realistic synthetic files (deterministic: the same date gives the same bytes)')
    .addOption(envOption())
    .option('--date <YYYY-MM-DD>', 'the last business date to generate (default: today, UTC)')
    .option('--days <n>', 'business days ending at --date, weekends skipped', '1')
    .option('--facility <code>', `only this facility (${FACILITY_CODES.join(', ')})`)
    .option('--file <code>', 'only this file of the facility')
    .option('--rows <n>', 'securities per master (default per facility, a few thousand)')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        env: string;
        date?: string;
        days: string;
        facility?: string;
        file?: string;
        rows?: string;
        json?: boolean;
      }) => {
        await run(opts.env, async (rt) => {
          if (opts.file && !opts.facility) throw new DataUsageError('--file needs --facility');
          const days = wholeNumber('--days', opts.days);
          if (days < 1 || days > 400) throw new DataUsageError('--days must be from 1 to 400');
          const rowsOption = opts.rows === undefined ? undefined : assertRows(wholeNumber('--rows', opts.rows));
          const facilities = opts.facility ? [assertFacility(opts.facility)] : FACILITIES;
          const kinds = facilities.flatMap((f) =>
            (opts.file ? [assertFileKind(f.code, opts.file).kind] : f.files).map((k) => ({
              facility: f.code,
              file: k.code,
            })),
          );
          const last = opts.date ? assertIsoDate(opts.date) : utcDate(rt.clock());
          const dates = businessDaysEndingOn(last, days);
          for (const d of dates) assertWithinRetention(d, rt.clock());
          const service = serviceOf(rt);
          const made: (ReferenceFileRow & { seconds: number })[] = [];
          for (const date of dates) {
            for (const { facility, file } of kinds) {
              const rows = rowsOption ?? DEFAULT_ROWS[facility] ?? 0;
              const started = performance.now();
              let next = PROGRESS_STEP;
              const onProgress =
                rows >= PROGRESS_ROWS && !opts.json
                  ? (bytes: number) => {
                      if (bytes < next) return;
                      next += PROGRESS_STEP;
                      const rate = bytes / 2 ** 20 / ((performance.now() - started) / 1000);
                      io.err(`  ${facility} ${file} ${date}: ${mib(bytes)} written (${rate.toFixed(0)} MiB/s)…`);
                    }
                  : undefined;
              const row = await service.generate(
                { facility, file, date, ...(rowsOption !== undefined ? { rows: rowsOption } : {}) },
                CLI,
                onProgress ? { onProgress } : {},
              );
              const seconds = (performance.now() - started) / 1000;
              made.push({ ...row, seconds });
              if (!opts.json) {
                io.out(
                  `${fileLine(row)}  ${seconds.toFixed(2)} s (${(row.size / 2 ** 20 / seconds).toFixed(1)} MiB/s)`,
                );
              }
            }
          }
          if (opts.json) io.out(JSON.stringify(made, null, 2));
          else io.out(`Generated ${made.length} file(s) in ${service.files.dir}`);
        });
      },
    );

  data
    .command('import')
    .description('Register a real file: pipe-delimited text with a header row, copied into the store')
    .addOption(envOption())
    .requiredOption('--facility <code>', `the facility (${FACILITY_CODES.join(', ')})`)
    .requiredOption('--file <code>', 'the file code, e.g. EQUITYMASTERAC')
    .requiredOption('--date <YYYY-MM-DD>', 'the business date the file is for')
    .argument('<path>', 'the file to import')
    .option('--json', 'print JSON')
    .action(
      async (path: string, opts: { env: string; facility: string; file: string; date: string; json?: boolean }) => {
        await run(opts.env, async (rt) => {
          const row = await serviceOf(rt).importFile(
            { facility: opts.facility, file: opts.file, date: opts.date, source: path },
            CLI,
          );
          print(opts.json, row, () => `Imported ${path}:\n${fileLine(row)}`);
        });
      },
    );

  data
    .command('list')
    .description('List the catalog of files, newest first per file')
    .addOption(envOption())
    .option('--facility <code>', 'only this facility')
    .option('--date <YYYY-MM-DD>', 'only this date')
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; facility?: string; date?: string; json?: boolean }) => {
      await run(opts.env, async (rt) => {
        const facility = opts.facility ? assertFacility(opts.facility).code : undefined;
        const date = opts.date ? assertIsoDate(opts.date) : undefined;
        let rows = await rt.store.repos.refdata.listFiles(facility ? { facilities: [facility] } : {});
        if (date) rows = rows.filter((r) => r.date === date);
        print(opts.json, rows, () => (rows.length ? rows.map(fileLine).join('\n') : 'No files.'));
      });
    });

  data
    .command('prune')
    .description('Delete files older than the one-year retention (safe to run on every node)')
    .addOption(envOption())
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      await run(opts.env, async (rt) => {
        const r = await serviceOf(rt).prune(CLI);
        print(
          opts.json,
          { cutoff: r.cutoff, deleted: r.deleted, removedFiles: r.removedFiles },
          () =>
            `Deleted ${r.deleted.length} catalog entr${r.deleted.length === 1 ? 'y' : 'ies'} dated before ${r.cutoff}; removed ${r.removedFiles} file(s).`,
        );
      });
    });

  const entitlement = program
    .command('entitlement')
    .description("Which facilities' files a user may download (with the download app assigned)");
  const findUser = async (rt: EnvironmentRuntime, who: string) => {
    const repos = rt.store.repos;
    const u = (await repos.users.findUserByLogin(who)) ?? (await repos.users.findUserById(who));
    if (!u) throw new DataUsageError(`No user "${who}" in ${rt.environment.label}`);
    return u;
  };

  for (const verb of ['grant', 'revoke'] as const) {
    entitlement
      .command(verb)
      .description(verb === 'grant' ? 'Entitle a user to facilities' : 'Take facilities away from a user')
      .addOption(envOption())
      .requiredOption('--user <email>', 'username (email) or user id')
      .option('--facility <code>', `a facility, repeatable (${FACILITY_CODES.join(', ')})`, collect)
      .option('--all', 'every facility')
      .action(async (opts: { env: string; user: string; facility?: string[]; all?: boolean }) => {
        await run(opts.env, async (rt) => {
          const facilities = facilityList(opts.facility, opts.all);
          const user = await findUser(rt, opts.user);
          const service = serviceOf(rt);
          if (verb === 'grant') {
            const granted = await service.grantEntitlements(user.id, facilities, CLI);
            const unchanged = facilities.filter((f) => !granted.includes(f));
            io.out(
              [
                granted.length
                  ? `Granted ${user.login}: ${granted.join(', ')}.`
                  : `${user.login} already had ${facilities.join(', ')}.`,
                granted.length && unchanged.length ? `Already held: ${unchanged.join(', ')}.` : '',
              ]
                .filter(Boolean)
                .join(' '),
            );
            const apps = await rt.store.repos.users.listApps(user.id);
            if (!apps.includes('download')) {
              io.out(`Note: ${user.login} has no download app assignment; the entitlements apply once it is assigned.`);
            }
          } else {
            const revoked = await service.revokeEntitlements(user.id, facilities, CLI);
            io.out(
              revoked.length
                ? `Revoked from ${user.login}: ${revoked.join(', ')}.`
                : `${user.login} had none of ${facilities.join(', ')}.`,
            );
          }
        });
      });
  }

  entitlement
    .command('list')
    .description("List a user's facility entitlements")
    .addOption(envOption())
    .requiredOption('--user <email>', 'username (email) or user id')
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; user: string; json?: boolean }) => {
      await run(opts.env, async (rt) => {
        const user = await findUser(rt, opts.user);
        const facilities = await rt.store.repos.refdata.listEntitlements(user.id);
        print(opts.json, { user: user.login, facilities }, () =>
          facilities.length ? `${user.login}: ${facilities.join(', ')}` : `${user.login} has no facility entitlements.`,
        );
      });
    });
}
