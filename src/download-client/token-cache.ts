import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What is kept between runs: an access token and what the server said about the refresh token. */
export interface CachedTokens {
  accessToken: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms, when it was obtained: with `expiresAt`, its lifetime, for the renewal margin. */
  obtainedAt: number;
  /** Epoch ms, when the service said when the refresh token expires. */
  refreshTokenExpiresAt?: number;
}

export interface TokenCache {
  read(): CachedTokens | undefined;
  write(tokens: CachedTokens): void;
  clear(): void;
}

/** A cache that keeps nothing (`--no-token-cache`). */
export const noTokenCache: TokenCache = {
  read: () => undefined,
  write: () => {},
  clear: () => {},
};

/**
 * `TRAQS_DOWNLOAD_CACHE_DIR`, else `$XDG_CACHE_HOME/traqs-download`, else `~/.cache/traqs-download`
 * (XDG Base Directory specification).
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv, home: string = homedir()): string {
  if (env.TRAQS_DOWNLOAD_CACHE_DIR) return env.TRAQS_DOWNLOAD_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(home, '.cache'), 'traqs-download');
}

/**
 * The cache entry's name: SHA-256 of the base URL and the refresh token, so each environment and
 * each refresh token has its own entry, and the file name reveals neither.
 */
export function cacheKey(baseUrl: string, refreshToken: string): string {
  return createHash('sha256').update(`${baseUrl}\n${refreshToken}`, 'utf8').digest('hex');
}

/**
 * Access tokens cached on disk between runs, so a script that runs `list` then several `get`s asks
 * the token endpoint once an hour rather than once a run. The directory is 0700 and each file 0600,
 * written to a temporary name and renamed (a reader never sees half a file); a file that others can
 * read, or that does not parse, is ignored. An access token is worth at most 60 minutes of the
 * access its refresh token (which lives beside it, also 0600) gives for six months.
 */
export function createFileTokenCache(
  dir: string,
  key: string,
  platform: NodeJS.Platform = process.platform,
): TokenCache {
  const file = join(dir, `${key}.json`);
  const strict = platform !== 'win32';
  return {
    read() {
      try {
        if (strict && (statSync(file).mode & 0o077) !== 0) return undefined;
        const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<CachedTokens>;
        if (typeof v.accessToken !== 'string' || typeof v.expiresAt !== 'number') return undefined;
        return {
          accessToken: v.accessToken,
          expiresAt: v.expiresAt,
          // A file without it: assume the FAQ's 60-minute lifetime for the margin.
          obtainedAt: typeof v.obtainedAt === 'number' ? v.obtainedAt : v.expiresAt - 3600_000,
          refreshTokenExpiresAt: typeof v.refreshTokenExpiresAt === 'number' ? v.refreshTokenExpiresAt : undefined,
        };
      } catch {
        return undefined;
      }
    },
    write(tokens) {
      // A cache is a convenience: failing to write one must not fail a download.
      const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        writeFileSync(tmp, JSON.stringify(tokens), { mode: 0o600, flag: 'wx' });
        // The mode given to open is filtered by the umask; 0600 is what is wanted, whatever it is.
        if (strict) chmodSync(tmp, 0o600);
        renameSync(tmp, file);
      } catch {
        rmSync(tmp, { force: true });
      }
    },
    clear() {
      try {
        rmSync(file, { force: true });
      } catch {
        // A cache that cannot be cleared is overwritten next time or ignored as stale.
      }
    },
  };
}
