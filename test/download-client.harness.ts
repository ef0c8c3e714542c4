import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../src/download-client/main.ts';
import type { FakeService } from './download-client.fake-service.ts';

/** Output that collects what the program writes. */
function collector(isTTY = false) {
  let text = '';
  return {
    out: {
      isTTY,
      columns: 120,
      write(s: string) {
        text += s;
        return true;
      },
    },
    text: () => text,
  };
}

/**
 * Runs `traqs-download` in-process against a fake service: a temporary working directory and
 * token cache, a clock shared with the service that `sleep` moves forward instead of waiting, and
 * the waits it was asked for recorded.
 */
export function createClientHarness(service: FakeService, clock: { now: number }) {
  const root = mkdtempSync(join(tmpdir(), 'traqs-download-test-'));
  const cwd = join(root, 'work');
  const cacheDir = join(root, 'cache');
  mkdirSync(cwd);
  const sleeps: number[] = [];
  return {
    root,
    cwd,
    cacheDir,
    sleeps,
    async run(
      args: string[],
      options: { env?: NodeJS.ProcessEnv; tty?: boolean; refreshToken?: string | null; signal?: AbortSignal } = {},
    ) {
      const stdout = collector();
      const stderr = collector(options.tty);
      const env: NodeJS.ProcessEnv = {
        TRAQS_BASE_URL: service.url,
        TRAQS_DOWNLOAD_CACHE_DIR: cacheDir,
        ...(options.refreshToken === null ? {} : { TRAQS_REFRESH_TOKEN: options.refreshToken ?? 'rt-good' }),
        ...options.env,
      };
      const code = await runCli({
        argv: args,
        env,
        cwd,
        stdout: stdout.out,
        stderr: stderr.out,
        now: () => clock.now,
        sleep: async (ms) => {
          sleeps.push(ms);
          clock.now += ms;
        },
        retry: { backoffMs: (n) => 1000 * n },
        idleTimeoutMs: 5_000,
        signal: options.signal,
      });
      return { code, stdout: stdout.text(), stderr: stderr.text() };
    },
    close() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}
