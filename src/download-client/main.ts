import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { createAccessTokenSource } from './access-tokens.ts';
import { type ApiClient, createApiClient } from './api.ts';
import { fetchCatalog, filterCatalog, formatCatalogTable } from './catalog.ts';
import { getFile } from './download.ts';
import { ClientError, EXIT_CODES } from './errors.ts';
import { isIsoDate } from './file-name.ts';
import { DEFAULT_RETRY_POLICY, type HttpDeps, type RetryPolicy, systemSleep } from './http.ts';
import { createProgress, formatBytes, silentProgress } from './progress.ts';
import { loadRefreshToken } from './refresh-token.ts';
import { cacheKey, createFileTokenCache, defaultCacheDir, noTokenCache } from './token-cache.ts';

interface Output {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Everything the program touches, so tests can run it in-process with a fake network and clock. */
export interface CliContext {
  /** The arguments after the program name. */
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdout: Output;
  stderr: Output;
  fetch?: typeof fetch;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  retry?: Partial<RetryPolicy>;
  /** A connection that delivers nothing for this long counts as cut (default 60 s). */
  idleTimeoutMs?: number;
  /** Aborted with an `INTERRUPTED` error on Ctrl+C. */
  signal?: AbortSignal;
  /** The home directory, for the token cache. */
  home?: string;
}

export const PROGRAM = 'traqs-download';

export function clientVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const HELP_AFTER = `
Environment:
  TRAQS_BASE_URL             the API download URL of the environment (instead of --base-url),
                             e.g. https://apidownload-ntf.example.org
  TRAQS_REFRESH_TOKEN        the refresh token from the Programmatic page of the TRAQS website
  TRAQS_REFRESH_TOKEN_FILE   a file holding the refresh token (instead of --refresh-token-file);
                             it must be readable by you alone (chmod 600)
  TRAQS_DOWNLOAD_CACHE_DIR   where access tokens are cached (default ~/.cache/traqs-download)

Exit codes:
  0 done   1 server error   2 usage   3 no usable refresh token   4 refresh token expired,
  revoked or unknown   5 bad request (400)   6 access token refused (401)   7 not assigned or
  not entitled (403)   8 not found (404)   9 rate limited (429)   10 checksum mismatch
  11 network   12 local file   130 interrupted (run again to resume)
`;

function parseDate(value: string): string {
  if (!isIsoDate(value)) throw new InvalidArgumentError('expected a date as YYYY-MM-DD');
  return value;
}

function parseCount(value: string): number {
  if (!/^\d{1,2}$/.test(value)) throw new InvalidArgumentError('expected a number from 0 to 99');
  return Number(value);
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/** The base URL without a trailing slash; plain HTTP only to this machine unless allowed. */
export function parseBaseUrl(value: string | undefined, allowInsecure: boolean): string {
  if (!value) {
    throw new ClientError(
      'USAGE',
      'no service given: pass --base-url URL or set TRAQS_BASE_URL (the API download URL of your environment)',
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ClientError('USAGE', `--base-url "${value}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ClientError('USAGE', `--base-url must be an https:// URL, not ${url.protocol}`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ClientError('USAGE', '--base-url must not carry a query, fragment or credentials');
  }
  // The refresh token is good for six months: it does not cross a network in clear text.
  if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname) && !allowInsecure) {
    throw new ClientError(
      'USAGE',
      `refusing to send the refresh token over plain HTTP to ${url.host}: use the https:// URL (or --allow-insecure-http on a trusted test network)`,
    );
  }
  return url.toString().replace(/\/+$/, '');
}

interface GlobalOptions {
  baseUrl?: string;
  refreshTokenFile?: string;
  refreshToken?: string;
  tokenCache: boolean;
  allowInsecureHttp?: boolean;
}

/** Runs `traqs-download` with `ctx.argv` and answers its exit code; prints errors to stderr. */
export async function runCli(ctx: CliContext): Promise<number> {
  const now = ctx.now ?? Date.now;
  const version = clientVersion();
  const deps: HttpDeps = {
    fetch: ctx.fetch ?? fetch,
    now,
    sleep: ctx.sleep ?? systemSleep,
    userAgent: `${PROGRAM}/${version} (node ${process.version})`,
    notice: (line) => ctx.stderr.write(`${PROGRAM}: ${line}\n`),
  };
  const baseRetry: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...ctx.retry };

  const program = new Command(PROGRAM)
    .description(
      'Download TRAQS reference data files with a refresh token: lists the catalog, downloads with a progress bar, resumes interrupted downloads and checks every file against its published SHA-256.',
    )
    .version(version, '-V, --version')
    .addOption(new Option('--base-url <url>', 'the API download URL of the environment [env: TRAQS_BASE_URL]'))
    .addOption(
      new Option(
        '--refresh-token-file <path>',
        'read the refresh token from this file (chmod 600) [env: TRAQS_REFRESH_TOKEN_FILE]',
      ),
    )
    .addOption(new Option('--refresh-token <token>').hideHelp())
    .option('--no-token-cache', 'keep access tokens in memory only, not in ~/.cache/traqs-download')
    .addOption(new Option('--allow-insecure-http', 'allow a plain http:// base URL other than this machine').hideHelp())
    .addHelpText('after', HELP_AFTER)
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });

  /** The client for a command: base URL, refresh token, token cache. */
  const connect = (global: GlobalOptions, retry: RetryPolicy): ApiClient => {
    if (global.refreshToken !== undefined) {
      throw new ClientError(
        'USAGE',
        'a refresh token is never accepted on the command line, where other users can see it (ps): set TRAQS_REFRESH_TOKEN or use --refresh-token-file. If that was a real token, it may now be in your shell history: revoke it on the Programmatic page.',
      );
    }
    const baseUrl = parseBaseUrl(global.baseUrl ?? ctx.env.TRAQS_BASE_URL, global.allowInsecureHttp === true);
    const { token } = loadRefreshToken({ file: global.refreshTokenFile, env: ctx.env });
    const cache = global.tokenCache
      ? createFileTokenCache(defaultCacheDir(ctx.env, ctx.home), cacheKey(baseUrl, token))
      : noTokenCache;
    const tokens = createAccessTokenSource({ baseUrl, refreshToken: token, deps, retry, cache });
    return createApiClient({ baseUrl, tokens, deps, retry });
  };

  program
    .command('list')
    .description('list the files you may download: facility, file, date, size, records')
    .option('--facility <code>', 'only this facility (e.g. ORF, TRACE-CA)')
    .option('--latest', 'only the newest date of each file')
    .option('--json', 'print the catalog as JSON ({ files: [...] })')
    .action(async (opts: { facility?: string; latest?: boolean; json?: boolean }, cmd: Command) => {
      const api = connect(cmd.optsWithGlobals<GlobalOptions>(), baseRetry);
      const entries = filterCatalog(
        await fetchCatalog(api, { facility: opts.facility?.toUpperCase(), signal: ctx.signal }),
        opts,
      );
      ctx.stdout.write(
        opts.json ? `${JSON.stringify({ files: entries }, null, 2)}\n` : `${formatCatalogTable(entries)}\n`,
      );
    });

  program
    .command('get')
    .description('download one file, verify its SHA-256 and save it (resumes an earlier partial download)')
    .argument('<facility>', 'facility code, e.g. ORF')
    .argument('<file>', 'file name, e.g. EQUITYMASTERAC')
    .option('--date <YYYY-MM-DD>', 'the file of this date (default: the latest)', parseDate)
    .option(
      '-o, --output <path>',
      'where to save it: a file, or a directory for the default name (default: the name the service proposes, else FACILITY_FILE_YYYYMMDD.txt)',
    )
    .option('-q, --quiet', 'no progress and no summary (errors and warnings still go to stderr)')
    .option('--retries <n>', 'how many times to go on after a broken connection', parseCount)
    .action(
      async (
        facility: string,
        file: string,
        opts: { date?: string; output?: string; quiet?: boolean; retries?: number },
        cmd: Command,
      ) => {
        const retry = opts.retries === undefined ? baseRetry : { ...baseRetry, transientRetries: opts.retries };
        const api = connect(cmd.optsWithGlobals<GlobalOptions>(), retry);
        const result = await getFile({
          api,
          deps,
          retry,
          facility: facility.toUpperCase(),
          file: file.toUpperCase(),
          date: opts.date,
          output: opts.output,
          cwd: ctx.cwd,
          progress: opts.quiet ? silentProgress : createProgress(ctx.stderr, now),
          signal: ctx.signal,
          idleTimeoutMs: ctx.idleTimeoutMs ?? 60_000,
        });
        if (!opts.quiet) {
          const how = result.upToDate
            ? 'already up to date'
            : `${formatBytes(result.size)}, SHA-256 verified${result.resumedFrom > 0 ? `, resumed at ${formatBytes(result.resumedFrom)}` : ''}`;
          deps.notice(`${result.path}: ${how}`);
        }
        ctx.stdout.write(`${result.path}\n`);
      },
    );

  try {
    // With no command, commander prints the help to stderr and throws: exit code 2 below.
    await program.parseAsync([...ctx.argv], { from: 'user' });
    return EXIT_CODES.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT_CODES.OK : EXIT_CODES.USAGE;
    }
    if (err instanceof ClientError) {
      ctx.stderr.write(`${PROGRAM}: ${err.code === 'USAGE' ? '' : 'error: '}${err.message}\n`);
      return err.exitCode;
    }
    ctx.stderr.write(`${PROGRAM}: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_CODES.UNEXPECTED;
  }
}

/**
 * The program as `bin/traqs-download.js` runs it: real process, real network. Ctrl+C stops the
 * transfer and keeps the partial file for the next run; a second Ctrl+C exits at once.
 */
export async function runFromProcess(): Promise<number> {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(EXIT_CODES.INTERRUPTED);
    controller.abort(new ClientError('INTERRUPTED', 'interrupted'));
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  // `traqs-download list | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_CODES.OK);
    throw err;
  });
  try {
    return await runCli({
      argv: process.argv.slice(2),
      env: process.env,
      cwd: process.cwd(),
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
    });
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}
