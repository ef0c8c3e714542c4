import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { ClientError } from './errors.ts';

/** Where the refresh token came from, for messages (never the token itself). */
export type RefreshTokenSource = 'TRAQS_REFRESH_TOKEN' | { file: string };

export interface LoadedRefreshToken {
  token: string;
  source: RefreshTokenSource;
}

/**
 * Finds the refresh token: `--refresh-token-file`, else `TRAQS_REFRESH_TOKEN`, else
 * `TRAQS_REFRESH_TOKEN_FILE`. Never a command-line value: other users see arguments in `ps`.
 */
export function loadRefreshToken(options: {
  file?: string;
  env: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
}): LoadedRefreshToken {
  if (options.file)
    return { token: readRefreshTokenFile(options.file, options.platform), source: { file: options.file } };
  const fromEnv = options.env.TRAQS_REFRESH_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: 'TRAQS_REFRESH_TOKEN' };
  const envFile = options.env.TRAQS_REFRESH_TOKEN_FILE;
  if (envFile) return { token: readRefreshTokenFile(envFile, options.platform), source: { file: envFile } };
  throw new ClientError(
    'CREDENTIALS',
    'no refresh token: set TRAQS_REFRESH_TOKEN, or put the token in a file only you can read (chmod 600) and pass --refresh-token-file PATH or set TRAQS_REFRESH_TOKEN_FILE. Get a refresh token on the Programmatic page of the TRAQS website.',
  );
}

/**
 * Reads a refresh token file, refusing one that group or others may read (as ssh refuses a private
 * key with loose permissions). The mode is checked on the opened descriptor, so the file cannot be
 * swapped between the check and the read.
 */
export function readRefreshTokenFile(path: string, platform: NodeJS.Platform = process.platform): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ClientError(
      'CREDENTIALS',
      code === 'ENOENT'
        ? `refresh token file ${path} does not exist`
        : `cannot read refresh token file ${path} (${code ?? String(err)})`,
    );
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ClientError('CREDENTIALS', `refresh token file ${path} is not a regular file`);
    // Windows has no POSIX mode bits to speak of; its ACLs are the user's business there.
    if (platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      throw new ClientError(
        'CREDENTIALS',
        `refresh token file ${path} can be read by other users (mode ${(stat.mode & 0o777).toString(8).padStart(3, '0')}): run "chmod 600 ${path}" and try again`,
      );
    }
    const token = readFileSync(fd, 'utf8').trim();
    if (!token) throw new ClientError('CREDENTIALS', `refresh token file ${path} is empty`);
    if (/\s/.test(token)) {
      throw new ClientError('CREDENTIALS', `refresh token file ${path} must contain the token alone, on one line`);
    }
    return token;
  } finally {
    closeSync(fd);
  }
}
