/**
 * The sign-in load generator of `bench/signin.ts`, run as a child process so that its CPU time is
 * measured apart from the server's (on a real deployment the clients are on other machines).
 *
 * `concurrency` clients each repeat full sign-ins over HTTP keep-alive connections:
 * `POST /api/v1/authn {username, password}` then `POST /api/v1/authn/factors/{id}/verify
 * {stateToken, passCode}` with the current RFC 6238 code of that user's factor.
 */
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { base32Decode, generateTotp, totpStep } from '../src/authn/factors/totp/totp.ts';

/** One signed-up user the load signs in as. */
export interface LoadUser {
  login: string;
  password: string;
  factorId: string;
  /** Base32 TOTP secret. */
  secret: string;
  /** The TOTP step of the last code this factor accepted (the server refuses it and earlier ones). */
  lastStep: number;
}

export type LoadCommand =
  | {
      type: 'start';
      origin: string;
      users: LoadUser[];
      concurrency: number;
      stepSeconds: number;
      /** `raw`: a minimal HTTP/1.1 client on one socket per client; `http`: node:http with a keep-alive Agent. */
      client: LoadClient;
    }
  /** Opens a measured window: sign-ins that end inside one are counted. */
  | { type: 'window-start' }
  | { type: 'window-end' }
  /** Stops starting sign-ins and answers `paused` once none is in flight. */
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' };

export interface LoadResult {
  /** Total length of the measured windows. */
  windowMs: number;
  /** Sign-ins that ended in SUCCESS inside a measured window. */
  completed: number;
  /** Per window: its length and the sign-ins that ended in it. */
  windows: { ms: number; completed: number }[];
  /** Milliseconds, for the sign-ins counted in `completed`. */
  latency: { total: number[]; primary: number[]; verify: number[] };
  /** Failures by kind, in the window and over the whole run (warm-up and drain included). */
  errorsInWindow: Record<string, number>;
  errorsTotal: Record<string, number>;
  errorSamples: string[];
  /** Every SUCCESS of the run, warm-up and drain included (to compare with the server's records). */
  successesTotal: number;
  /** Times no user was free whose TOTP step had advanced (the client then waited 20 ms). */
  stalls: number;
  /** Shortest time between two sign-ins of one user, in seconds (null: nobody signed in twice). */
  minReuseSeconds: number | null;
  /** The client process's CPU time over the windows. */
  cpuMs: number;
}

export type LoadClient = 'raw' | 'http';

export type LoadMessage = { type: 'started' } | { type: 'paused' } | { type: 'result'; result: LoadResult };

type Json = Record<string, unknown>;
const asObject = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;

class SignInError extends Error {
  constructor(
    readonly kind: string,
    detail: string,
  ) {
    super(`${kind}: ${detail}`);
  }
}

interface UserState extends LoadUser {
  key: Buffer;
  busy: boolean;
  lastUsedAt: number | null;
}

function run(cmd: Extract<LoadCommand, { type: 'start' }>) {
  const origin = new URL(cmd.origin);
  const users: UserState[] = cmd.users.map((u) => ({
    ...u,
    key: base32Decode(u.secret),
    busy: false,
    lastUsedAt: null,
  }));

  const http = cmd.client === 'http' ? nodeHttpClient(origin, cmd.concurrency) : rawHttpClient(origin);

  const describe = (r: { status: number; body: Json }) =>
    `HTTP ${r.status} ${String(r.body.status ?? r.body.errorCode ?? '')} ${String(r.body.errorSummary ?? '')}`.trim();

  async function signIn(post: Post, user: UserState) {
    const t0 = performance.now();
    const first = await post('/api/v1/authn', { username: user.login, password: user.password });
    const t1 = performance.now();
    if (first.status !== 200 || first.body.status !== 'MFA_REQUIRED') {
      throw new SignInError(
        `primary ${first.status}/${String(first.body.status ?? first.body.errorCode)}`,
        describe(first),
      );
    }
    const factors = asObject(first.body._embedded)?.factors;
    const factor = Array.isArray(factors) ? factors.map(asObject).find((f) => f?.id === user.factorId) : undefined;
    const stateToken = first.body.stateToken;
    if (!factor || typeof stateToken !== 'string') {
      throw new SignInError('primary shape', 'MFA_REQUIRED without the enrolled factor or a stateToken');
    }
    const now = Date.now();
    const passCode = generateTotp({ secret: user.key, now, stepSeconds: cmd.stepSeconds });
    user.lastStep = totpStep(now, cmd.stepSeconds);
    const second = await post(`/api/v1/authn/factors/${user.factorId}/verify`, { stateToken, passCode });
    const t2 = performance.now();
    if (second.status !== 200 || second.body.status !== 'SUCCESS' || typeof second.body.sessionToken !== 'string') {
      throw new SignInError(
        `verify ${second.status}/${String(second.body.status ?? second.body.errorCode)}`,
        describe(second),
      );
    }
    return { total: t2 - t0, primary: t1 - t0, verify: t2 - t1, end: t2 };
  }

  // Round-robin over the users, skipping one still in flight or whose last code's step has not
  // passed yet (RFC 6238 §5.2: the server accepts each step's code once).
  let cursor = 0;
  function nextUser(): UserState | undefined {
    const step = totpStep(Date.now(), cmd.stepSeconds);
    for (let i = 0; i < users.length; i++) {
      const u = users[(cursor + i) % users.length];
      if (u && !u.busy && u.lastStep < step) {
        cursor = (cursor + i + 1) % users.length;
        return u;
      }
    }
    return undefined;
  }

  let stopping = false;
  let paused = false;
  let resumed: Promise<void> = Promise.resolve();
  let resume = () => {};
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  let windowStart: number | undefined;
  let cpuStart = process.cpuUsage();
  let cpuMs = 0;
  const windows: { start: number; end: number; completed: number }[] = [];
  const latency = { total: [] as number[], primary: [] as number[], verify: [] as number[] };
  const errorsInWindow: Record<string, number> = {};
  const errorsTotal: Record<string, number> = {};
  const errorSamples: string[] = [];
  let successesTotal = 0;
  let stalls = 0;
  let minReuseMs = Number.POSITIVE_INFINITY;
  const inWindow = (t: number) => windowStart !== undefined && t >= windowStart;

  async function client() {
    const post = http.open();
    while (!stopping) {
      if (paused) {
        await resumed;
        continue;
      }
      const user = nextUser();
      if (!user) {
        stalls++;
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      user.busy = true;
      inFlight++;
      const startedAt = Date.now();
      if (user.lastUsedAt !== null) minReuseMs = Math.min(minReuseMs, startedAt - user.lastUsedAt);
      user.lastUsedAt = startedAt;
      try {
        const r = await signIn(post, user);
        successesTotal++;
        if (inWindow(r.end)) {
          latency.total.push(r.total);
          latency.primary.push(r.primary);
          latency.verify.push(r.verify);
          const w = windows[windows.length - 1];
          if (w) w.completed++;
        }
      } catch (err) {
        const kind = err instanceof SignInError ? err.kind : `network ${(err as NodeJS.ErrnoException).code ?? ''}`;
        errorsTotal[kind] = (errorsTotal[kind] ?? 0) + 1;
        if (inWindow(performance.now())) errorsInWindow[kind] = (errorsInWindow[kind] ?? 0) + 1;
        if (errorSamples.length < 5) errorSamples.push(`${user.login}: ${(err as Error).message}`);
      } finally {
        user.busy = false;
        inFlight--;
        if (inFlight === 0) onIdle?.();
      }
    }
  }

  const clients = Array.from({ length: cmd.concurrency }, client);

  return {
    windowStart() {
      windowStart = performance.now();
      windows.push({ start: windowStart, end: windowStart, completed: 0 });
      cpuStart = process.cpuUsage();
    },
    windowEnd() {
      const w = windows[windows.length - 1];
      if (windowStart === undefined || !w) return;
      w.end = performance.now();
      windowStart = undefined;
      const cpu = process.cpuUsage(cpuStart);
      cpuMs += (cpu.user + cpu.system) / 1000;
    },
    async pause() {
      paused = true;
      resumed = new Promise((r) => {
        resume = r;
      });
      if (inFlight > 0) await new Promise<void>((r) => (onIdle = r));
      onIdle = undefined;
    },
    resume() {
      paused = false;
      resume();
    },
    async stop(): Promise<LoadResult> {
      this.windowEnd();
      stopping = true;
      this.resume();
      await Promise.all(clients);
      http.close();
      return {
        windowMs: windows.reduce((a, w) => a + (w.end - w.start), 0),
        completed: latency.total.length,
        windows: windows.map((w) => ({ ms: w.end - w.start, completed: w.completed })),
        latency,
        errorsInWindow,
        errorsTotal,
        errorSamples,
        successesTotal,
        stalls,
        minReuseSeconds: Number.isFinite(minReuseMs) ? minReuseMs / 1000 : null,
        cpuMs,
      };
    },
  };
}

type Post = (path: string, body: Json) => Promise<{ status: number; body: Json }>;

/** A source of per-client `post` functions (one connection each) that can close them all. */
interface HttpClient {
  open(): Post;
  close(): void;
}

function parseJson(text: string): Json {
  try {
    return asObject(JSON.parse(text)) ?? {};
  } catch {
    return { unparsable: text.slice(0, 200) };
  }
}

/** node:http with a keep-alive Agent: the ordinary client, about three times the CPU of `raw`. */
function nodeHttpClient(origin: URL, sockets: number): HttpClient {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const post: Post = (path, body) => {
    const payload = Buffer.from(JSON.stringify(body), 'utf8');
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: origin.hostname,
          port: origin.port,
          path,
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': payload.length,
            accept: 'application/json',
            'user-agent': 'traqs-bench/1',
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: parseJson(Buffer.concat(chunks).toString('utf8')) }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  };
  return { open: () => post, close: () => agent.destroy() };
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * A minimal HTTP/1.1 keep-alive client: one socket per client, one request at a time, responses
 * framed by Content-Length (Fastify sets it on every JSON answer; anything else is an error). The
 * load generator shares the server's CPUs, so the less it spends the less the benchmark measures
 * itself.
 */
function rawHttpClient(origin: URL): HttpClient {
  const sockets = new Set<Socket>();
  const open = (): Post => {
    let socket: Socket | undefined;
    let buffered: Buffer = Buffer.alloc(0);
    let pending: { resolve: (r: { status: number; body: Json }) => void; reject: (e: Error) => void } | undefined;

    const fail = (err: Error) => {
      socket?.destroy();
      socket = undefined;
      buffered = Buffer.alloc(0);
      const p = pending;
      pending = undefined;
      p?.reject(err);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      const end = buffered.indexOf(HEADER_END);
      if (end < 0) return;
      const head = buffered.toString('latin1', 0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
      if (length === undefined) return fail(new Error(`response without Content-Length: ${head.slice(0, 200)}`));
      const bodyEnd = end + HEADER_END.length + Number(length);
      if (buffered.length < bodyEnd) return;
      const text = buffered.toString('utf8', end + HEADER_END.length, bodyEnd);
      buffered = buffered.subarray(bodyEnd);
      if (/\r\nconnection: *close/i.test(head)) {
        socket?.end();
        socket = undefined;
      }
      const p = pending;
      pending = undefined;
      p?.resolve({ status, body: parseJson(text) });
    };
    const connected = () => {
      const s = connect({ host: origin.hostname, port: Number(origin.port), noDelay: true });
      s.on('data', onData);
      s.on('error', fail);
      s.on('close', () => {
        sockets.delete(s);
        if (socket === s) fail(new Error('connection closed'));
      });
      sockets.add(s);
      return s;
    };
    return (path, body) => {
      const payload = JSON.stringify(body);
      socket ??= connected();
      const s = socket;
      return new Promise((resolve, reject) => {
        pending = { resolve, reject };
        s.write(
          `POST ${path} HTTP/1.1\r\nhost: ${origin.host}\r\ncontent-type: application/json\r\n` +
            `accept: application/json\r\nuser-agent: traqs-bench/1\r\n` +
            `content-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
        );
      });
    };
  };
  return {
    open,
    close() {
      for (const s of sockets) s.destroy();
    },
  };
}

let load: ReturnType<typeof run> | undefined;
const send = (m: LoadMessage) => process.send?.(m);
process.on('message', (m: LoadCommand) => {
  if (m.type === 'start') {
    load = run(m);
    send({ type: 'started' });
  } else if (!load) {
    return;
  } else if (m.type === 'window-start') {
    load.windowStart();
  } else if (m.type === 'window-end') {
    load.windowEnd();
  } else if (m.type === 'pause') {
    void load.pause().then(() => send({ type: 'paused' }));
  } else if (m.type === 'resume') {
    load.resume();
  } else if (m.type === 'stop') {
    void load.stop().then((result) => send({ type: 'result', result }));
  }
});
process.on('disconnect', () => process.exit(0));
