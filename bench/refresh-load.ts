/**
 * The load generator of `bench/refresh.ts`, run as a child process so that its CPU time is measured
 * apart from the server's (real clients run on other machines).
 *
 * `concurrency` clients, each on its own HTTP/1.1 keep-alive connection, repeat
 * `POST {path}` with a form body (the refresh-token grant) one request at a time.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export type RefreshLoadCommand =
  | {
      type: 'start';
      origin: string;
      path: string;
      /** `application/x-www-form-urlencoded` body, sent as is on every request. */
      form: string;
      concurrency: number;
    }
  /** Opens the measured window: grants that end inside it are counted. */
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'stop' };

export interface RefreshLoadResult {
  windowMs: number;
  /** Grants answered 200 with an access token inside the window. */
  completed: number;
  /** Milliseconds per counted grant. */
  latencies: number[];
  errorsInWindow: Record<string, number>;
  errorsTotal: Record<string, number>;
  errorSamples: string[];
  /** Every successful grant of the run, warm-up included. */
  successesTotal: number;
  /** The client process's CPU time over the window. */
  cpuMs: number;
}

export type RefreshLoadMessage = { type: 'started' } | { type: 'result'; result: RefreshLoadResult };

interface Answer {
  status: number;
  body: string;
}
type Post = () => Promise<Answer>;

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * One keep-alive connection, one request at a time, responses framed by Content-Length
 * (oidc-provider's Koa sets it on every JSON answer; anything else is an error). Minimal so that
 * the client, on the same CPUs as the server, takes as little from it as possible.
 */
function openConnection(origin: URL, path: string, form: string, sockets: Set<Socket>): Post {
  const request = Buffer.from(
    `POST ${path} HTTP/1.1\r\nhost: ${origin.host}\r\ncontent-type: application/x-www-form-urlencoded\r\n` +
      `accept: application/json\r\nuser-agent: traqs-bench/1\r\ncontent-length: ${Buffer.byteLength(form)}\r\n\r\n${form}`,
  );
  let socket: Socket | undefined;
  let buffered: Buffer = Buffer.alloc(0);
  let pending: { resolve: (a: Answer) => void; reject: (e: Error) => void } | undefined;

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
    const body = buffered.toString('utf8', end + HEADER_END.length, bodyEnd);
    buffered = buffered.subarray(bodyEnd);
    if (/\r\nconnection: *close/i.test(head)) {
      socket?.end();
      socket = undefined;
    }
    const p = pending;
    pending = undefined;
    p?.resolve({ status, body });
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
  return () => {
    socket ??= connected();
    const s = socket;
    return new Promise((resolve, reject) => {
      pending = { resolve, reject };
      s.write(request);
    });
  };
}

/** The OAuth error of a failed grant, for counting failures by kind. */
function errorKind(answer: Answer): string {
  try {
    const body = JSON.parse(answer.body) as { error?: unknown };
    return `HTTP ${answer.status} ${typeof body.error === 'string' ? body.error : ''}`.trim();
  } catch {
    return `HTTP ${answer.status}`;
  }
}

function run(cmd: Extract<RefreshLoadCommand, { type: 'start' }>) {
  const origin = new URL(cmd.origin);
  const sockets = new Set<Socket>();
  let stopping = false;
  let windowStart: number | undefined;
  let windowEnd: number | undefined;
  let cpuStart = process.cpuUsage();
  let cpuMs = 0;
  const latencies: number[] = [];
  const errorsInWindow: Record<string, number> = {};
  const errorsTotal: Record<string, number> = {};
  const errorSamples: string[] = [];
  let successesTotal = 0;
  const inWindow = (t: number) => windowStart !== undefined && t >= windowStart && windowEnd === undefined;

  const countError = (kind: string, sample: string) => {
    errorsTotal[kind] = (errorsTotal[kind] ?? 0) + 1;
    if (inWindow(performance.now())) errorsInWindow[kind] = (errorsInWindow[kind] ?? 0) + 1;
    if (errorSamples.length < 5) errorSamples.push(sample);
  };

  async function client() {
    const post = openConnection(origin, cmd.path, cmd.form, sockets);
    while (!stopping) {
      const t0 = performance.now();
      try {
        const answer = await post();
        const t1 = performance.now();
        // Only the first bytes need reading: a grant answers {"access_token":"…", …}.
        if (answer.status === 200 && answer.body.includes('"access_token":"')) {
          successesTotal++;
          if (inWindow(t1)) latencies.push(t1 - t0);
        } else {
          countError(errorKind(answer), answer.body.slice(0, 200));
        }
      } catch (err) {
        countError(`network ${(err as NodeJS.ErrnoException).code ?? ''}`.trim(), (err as Error).message);
      }
    }
  }
  const clients = Array.from({ length: cmd.concurrency }, client);

  return {
    windowStart() {
      windowStart = performance.now();
      cpuStart = process.cpuUsage();
    },
    windowEnd() {
      if (windowStart === undefined || windowEnd !== undefined) return;
      windowEnd = performance.now();
      const cpu = process.cpuUsage(cpuStart);
      cpuMs = (cpu.user + cpu.system) / 1000;
    },
    async stop(): Promise<RefreshLoadResult> {
      this.windowEnd();
      stopping = true;
      await Promise.all(clients);
      for (const s of sockets) s.destroy();
      return {
        windowMs: windowStart !== undefined && windowEnd !== undefined ? windowEnd - windowStart : 0,
        completed: latencies.length,
        latencies,
        errorsInWindow,
        errorsTotal,
        errorSamples,
        successesTotal,
        cpuMs,
      };
    },
  };
}

let load: ReturnType<typeof run> | undefined;
const send = (m: RefreshLoadMessage) => process.send?.(m);
process.on('message', (m: RefreshLoadCommand) => {
  if (m.type === 'start') {
    load = run(m);
    send({ type: 'started' });
  } else if (!load) {
    return;
  } else if (m.type === 'window-start') {
    load.windowStart();
  } else if (m.type === 'window-end') {
    load.windowEnd();
  } else if (m.type === 'stop') {
    void load.stop().then((result) => send({ type: 'result', result }));
  }
});
process.on('disconnect', () => process.exit(0));
