import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The repository root, where `bin/traqs.js` lives. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Distinct free TCP ports on loopback. All are held open together before any is released, so the
 * kernel cannot hand the same port out twice; another process could still take one in between.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** The product running as its own process (`node bin/traqs.js serve`) with the ntf environment only. */
export interface ProductProcess {
  /** `http://localhost:<port>`: the idp's public URL. */
  readonly idpUrl: string;
  /** The environment given to the server; CLI commands must use the same one. */
  readonly env: NodeJS.ProcessEnv;
  /** What the server printed so far, stdout and stderr interleaved, for failure messages. */
  output(): string;
  /** Runs `traqs <args>` as a separate process with the same environment; rejects on a non-zero exit. */
  cli(args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** SIGTERM, then SIGKILL if it has not exited within a few seconds; removes the data directory. */
  stop(): Promise<void>;
}

export interface StartProductOptions {
  smtpUrl: string;
  /** How long to wait for `/healthz`. */
  startTimeoutMs?: number;
  /** More environment for the server (a shared `DATABASE_URL` and key for several nodes). */
  env?: NodeJS.ProcessEnv;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Starts the real server on free ports (idp, portal and download all moved, so a developer's
 * `npm start` on 3100-3102 is left alone) with a fresh data directory, and waits until `/healthz`
 * answers.
 */
export async function startProduct(options: StartProductOptions): Promise<ProductProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'traqs-e2e-'));
  const [idpPort, portalPort, downloadPort] = await freePorts(3);
  const idpUrl = `http://localhost:${idpPort}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TRAQS_DATA_DIR: dataDir,
    TRAQS_ENVIRONMENTS: 'ntf',
    TRAQS_SMTP_URL: options.smtpUrl,
    TRAQS_NTF_IDP_PORT: String(idpPort),
    TRAQS_NTF_IDP_URL: idpUrl,
    TRAQS_NTF_PORTAL_PORT: String(portalPort),
    TRAQS_NTF_PORTAL_URL: `http://localhost:${portalPort}`,
    TRAQS_NTF_DOWNLOAD_PORT: String(downloadPort),
    TRAQS_NTF_DOWNLOAD_URL: `http://localhost:${downloadPort}`,
    TRAQS_LOG_LEVEL: 'warn',
    ...options.env,
  };

  let output = '';
  const child = spawn(process.execPath, ['bin/traqs.js', 'serve'], { cwd: repoRoot, env, stdio: 'pipe' });
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, 5_000))) {
        child.kill('SIGKILL');
        await waitForExit(child, 5_000);
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`traqs serve exited (${child.exitCode ?? child.signalCode}) before /healthz:\n${output}`);
      }
      try {
        const res = await fetch(`${idpUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
        if (res.ok) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`traqs serve did not answer /healthz in time:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    idpUrl,
    env,
    output: () => output,
    async cli(args) {
      try {
        return await execFileAsync(process.execPath, ['bin/traqs.js', ...args], {
          cwd: repoRoot,
          env,
          timeout: 20_000,
        });
      } catch (err) {
        // execFile's error carries what the command printed.
        const printed = (key: 'stdout' | 'stderr') =>
          typeof err === 'object' && err !== null && key in err ? String((err as Record<string, unknown>)[key]) : '';
        const message = err instanceof Error ? err.message : String(err);
        throw new Error(`traqs ${args.join(' ')} failed: ${message}\n${printed('stdout')}${printed('stderr')}`, {
          cause: err,
        });
      }
    },
    stop,
  };
}
