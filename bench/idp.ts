/**
 * A real idp for benchmarks: built by the production code (`openEnvironment` + `buildIdp`) on its
 * own SQLite file in a temporary directory, listening on 127.0.0.1, with enrolled users.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { UserRow } from '../src/accounts/repository.ts';
import { buildIdp, type EnvironmentRuntime, openEnvironment } from '../src/app.ts';
import { DEFAULT_ARGON2_PARAMS } from '../src/authn/factors/password/hashing.ts';
import type { FactorRow } from '../src/authn/factors/repository.ts';
import {
  base32Decode,
  base32Encode,
  createTotpSecret,
  generateTotp,
  totpStep,
} from '../src/authn/factors/totp/totp.ts';
import { loadConfig } from '../src/config/load.ts';
import { sqlitePathFor } from '../src/db/database.ts';
import { createSecretBox } from '../src/lib/secret-box.ts';
import { createId } from '../src/lib/tokens.ts';
import type { MailTransport } from '../src/mail/transport.ts';
import { progress } from './common.ts';
import type { LoadClient, LoadCommand, LoadMessage, LoadResult, LoadUser } from './signin-load.ts';

/** Every benchmark user's password (it passes the password policy). */
export const BENCH_PASSWORD = 'correct horse battery staple 42';

type Json = Record<string, unknown>;

const nullTransport: MailTransport = { async send() {}, async close() {} };

export interface BenchIdp {
  rt: EnvironmentRuntime;
  origin: string;
  dataDir: string;
  databaseFile: string;
  logFile: string;
  close(keep?: boolean): Promise<void>;
}

/**
 * Starts an idp the way `serve` does (pino at the configured level, synchronous, but into a file;
 * the mail worker polling every second), with the OWASP Argon2id parameters. Only the variables
 * passed here are read, so a DATABASE_URL or TRAQS_* of the caller's shell cannot point it elsewhere.
 */
export async function startIdp(options: { logLevel?: string; postgresUrl?: string } = {}): Promise<BenchIdp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'traqs-bench-'));
  // PostgreSQL: a database of its own on the given server, dropped at close.
  const pgDatabase = options.postgresUrl ? await createBenchDatabase(options.postgresUrl) : undefined;
  // The idp's public URL is where it listens: the authorization server's issuer must be reachable.
  const port = await freePort();
  const config = loadConfig(
    {
      TRAQS_DATA_DIR: dataDir,
      TRAQS_ENVIRONMENTS: 'ntf',
      TRAQS_NTF_IDP_PORT: String(port),
      TRAQS_NTF_IDP_URL: `http://127.0.0.1:${port}`,
      ...(pgDatabase ? { TRAQS_NTF_DATABASE_URL: pgDatabase.url } : {}),
    },
    {
      ...(options.logLevel ? { logLevel: options.logLevel } : {}),
      // The load comes from one loopback address: lift the per-IP limit, measure the sign-in.
      policy: { authRequestsPerMinutePerIp: 10_000_000 },
    },
  );
  const environment = config.environments[0];
  if (!environment) throw new Error('no environment');
  const { memoryKiB, timeCost, parallelism } = config.argon2;
  if (
    memoryKiB !== DEFAULT_ARGON2_PARAMS.memoryKiB ||
    timeCost !== DEFAULT_ARGON2_PARAMS.timeCost ||
    parallelism !== DEFAULT_ARGON2_PARAMS.parallelism
  ) {
    throw new Error('Benchmarks run with the OWASP Argon2id parameters m=19456, t=2, p=1');
  }
  const logFile = join(dataDir, 'idp.log');
  const logger = pino(
    { level: config.logLevel, base: { service: 'traqs-mfa' } },
    pino.destination({ dest: logFile, sync: true }),
  );
  const rt = await openEnvironment(config, environment, { logger, transport: nullTransport });
  const app = await buildIdp(rt);
  await app.listen({ host: '127.0.0.1', port });
  rt.mailWorker?.start(1000);
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  return {
    rt,
    origin: `http://127.0.0.1:${address.port}`,
    dataDir,
    databaseFile: pgDatabase ? pgDatabase.url : sqlitePathFor(dataDir, environment.id),
    logFile,
    async close(keep = false) {
      await app.close();
      await rt.close();
      await pgDatabase?.drop();
      if (keep) progress(`kept ${dataDir} (database and idp.log)`);
      else rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A fresh PostgreSQL database next to the one `url` names (CREATE DATABASE needs no schema juggling). */
async function createBenchDatabase(url: string): Promise<{ url: string; drop(): Promise<void> }> {
  const { default: pg } = await import('pg');
  const name = `traqs_bench_${process.pid}_${Date.now()}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  return { url: target.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name}`) };
}

/** A TCP port free on loopback right now (another process could still take it before we listen). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

export async function postJson(origin: string, path: string, body: Json, status: string): Promise<Json> {
  const res = await fetch(`${origin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Json;
  if (res.status !== 200 || json.status !== status) {
    throw new Error(`${path}: expected ${status}, got HTTP ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
  }
  return json;
}

function field(json: unknown, ...path: string[]): unknown {
  let v: unknown = json;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as Json)[k] : undefined;
  return v;
}

export interface TemplateUser {
  user: UserRow & { password_hash: string };
  factor: FactorRow;
  roles: Awaited<ReturnType<EnvironmentRuntime['store']['repos']['users']['listRoles']>>;
  apps: Awaited<ReturnType<EnvironmentRuntime['store']['repos']['users']['listApps']>>;
  load: LoadUser;
}

/**
 * One user the way a real one arrives: provisioned, then activation link, password, TOTP
 * enrollment and activation, all through the Authentication API.
 */
export async function enrollTemplateUser(idp: BenchIdp): Promise<TemplateUser> {
  const { rt, origin } = idp;
  const stepSeconds = rt.config.policy.totpStepSeconds;
  const firm = await rt.accounts.createFirm('Bench Securities');
  if (!firm.ok) throw new Error(firm.message);
  const created = await rt.accounts.provisionUser({
    email: 'template@bench.example',
    firstName: 'Template',
    lastName: 'User',
    firmId: firm.firm.id,
  });
  if (!created.ok) throw new Error(created.message);
  const token = new URL(created.activationUrl).searchParams.get('token');
  const reset = await postJson(origin, '/api/v1/authn', { token }, 'PASSWORD_RESET');
  const enroll = await postJson(
    origin,
    '/api/v1/authn/credentials/reset_password',
    {
      stateToken: reset.stateToken,
      newPassword: BENCH_PASSWORD,
      recoveryQuestion: 'Name of the street you grew up on?',
      recoveryAnswer: 'Elm Street',
    },
    'MFA_ENROLL',
  );
  const stateToken = enroll.stateToken;
  const activate = await postJson(
    origin,
    '/api/v1/authn/factors',
    { stateToken, factorType: 'token:software:totp', provider: 'GOOGLE' },
    'MFA_ENROLL_ACTIVATE',
  );
  const factorId = String(field(activate, '_embedded', 'factor', 'id'));
  const secret = String(field(activate, '_embedded', 'factor', '_embedded', 'activation', 'sharedSecret'));
  const now = Date.now();
  await postJson(
    origin,
    `/api/v1/authn/factors/${factorId}/lifecycle/activate`,
    { stateToken, passCode: generateTotp({ secret: base32Decode(secret), now, stepSeconds }) },
    'SUCCESS',
  );
  const { repos } = rt.store;
  const user = await repos.users.findUserByLogin('template@bench.example');
  const [factor] = user ? await repos.factors.listFactors(user.id) : [];
  if (!user?.password_hash || !factor) throw new Error('template user not enrolled');
  return {
    user: { ...user, password_hash: user.password_hash },
    factor,
    roles: await repos.users.listRoles(user.id),
    apps: await repos.users.listApps(user.id),
    load: { login: user.login, password: BENCH_PASSWORD, factorId, secret, lastStep: totpStep(now, stepSeconds) },
  };
}

/**
 * Adds `count - 1` users shaped exactly like the template (ACTIVE, same roles and apps, one ACTIVE
 * TOTP factor) with their own ids, logins and TOTP secrets, sealed like an enrollment seals them.
 * The template's Argon2id hash is reused: hashing thousands of passwords would take minutes, and
 * the cost of verifying does not depend on the salt. Returns every user, the template last.
 */
export async function createUsers(idp: BenchIdp, template: TemplateUser, count: number): Promise<LoadUser[]> {
  const { rt } = idp;
  const stepSeconds = rt.config.policy.totpStepSeconds;
  const box = createSecretBox(rt.keys.secretBoxKey);
  const now = Date.now();
  // As if the factor had been activated one step ago, so every user can sign in right away.
  const previousStep = totpStep(now, stepSeconds) - 1;
  const activatedAt = now - stepSeconds * 1000;
  const users: LoadUser[] = [];
  for (let start = 1; start < count; start += 500) {
    await rt.store.transaction(async (trx) => {
      for (let i = start; i < Math.min(count, start + 500); i++) {
        const id = createId('00u');
        const login = `user${String(i).padStart(5, '0')}@bench.example`;
        await trx.users.createUser({
          ...template.user,
          id,
          login,
          email: login,
          first_name: 'Bench',
          last_name: `User ${i}`,
          created_at: now,
          activated_at: now,
          status_changed_at: now,
          last_login_at: null,
        });
        for (const role of template.roles) await trx.users.grantRole(id, role);
        for (const app of template.apps) await trx.users.assignApp(id, app, now);
        const factorId = createId('uft');
        const secret = createTotpSecret();
        await trx.factors.createFactor({
          ...template.factor,
          id: factorId,
          user_id: id,
          // The envelope and binding AuthnService uses (`factor:<id>` as associated data).
          secret_enc: box.seal(secret, `factor:${factorId}`),
          last_used_step: previousStep,
          created_at: activatedAt,
          activated_at: activatedAt,
          last_used_at: activatedAt,
        });
        users.push({ login, password: BENCH_PASSWORD, factorId, secret: base32Encode(secret), lastStep: previousStep });
      }
    });
  }
  users.push(template.load);
  return users;
}

export interface SignInLoadOptions {
  users: LoadUser[];
  concurrency: number;
  client: LoadClient;
}

/** The running load generator: windows are measured between `windowStart` and `windowEnd`. */
export interface SignInLoad {
  windowStart(): void;
  windowEnd(): void;
  /** Resolves once no sign-in is in flight any more. */
  pause(): Promise<void>;
  resume(): void;
  stop(): Promise<LoadResult>;
}

/**
 * Starts the sign-in load generator (`signin-load.ts`) in a child process, so that its CPU time is
 * measured apart from the server's. It starts signing in at once.
 */
export async function startSignInLoad(idp: BenchIdp, options: SignInLoadOptions): Promise<SignInLoad> {
  const child = fork(fileURLToPath(new URL('./signin-load.ts', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages: LoadMessage[] = [];
  let wake: (() => void) | undefined;
  child.on('message', (m: LoadMessage) => {
    messages.push(m);
    wake?.();
  });
  const exited = new Promise<never>((_, reject) =>
    child.on('exit', (code) => reject(new Error(`the load generator exited (${code})`))),
  );
  exited.catch(() => undefined);
  const receive = async <T extends LoadMessage['type']>(type: T) => {
    for (;;) {
      const i = messages.findIndex((m) => m.type === type);
      if (i >= 0) return messages.splice(i, 1)[0] as Extract<LoadMessage, { type: T }>;
      await Promise.race([new Promise<void>((resolve) => (wake = resolve)), exited]);
    }
  };
  const command = (c: LoadCommand) => child.send(c);
  command({
    type: 'start',
    origin: idp.origin,
    users: options.users,
    concurrency: options.concurrency,
    stepSeconds: idp.rt.config.policy.totpStepSeconds,
    client: options.client,
  });
  await receive('started');
  return {
    windowStart: () => command({ type: 'window-start' }),
    windowEnd: () => command({ type: 'window-end' }),
    async pause() {
      command({ type: 'pause' });
      await receive('paused');
    },
    resume: () => command({ type: 'resume' }),
    async stop() {
      try {
        command({ type: 'stop' });
        return (await receive('result')).result;
      } finally {
        if (child.connected) child.disconnect();
      }
    },
  };
}

/** Profiles this process's main thread from `start()` to `stop()`, into a `.cpuprofile` file. */
export async function startProfiler(name: string) {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    const file = join(tmpdir(), `traqs-bench-${name}-${Date.now()}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    return file;
  };
}
