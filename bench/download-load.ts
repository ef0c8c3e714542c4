/**
 * The load generator of `bench/download.ts`, run as a child process so that its CPU time is
 * measured apart from the server's (real clients run on other machines).
 *
 * `concurrency` clients, each on its own HTTP/1.1 keep-alive connection, repeat
 * `GET {path}` with `Authorization: Bearer …`, one request at a time, counting the answers and the
 * body bytes as they arrive (a 1 GiB body is counted, never kept).
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export type DownloadLoadCommand =
  | {
      type: 'start';
      origin: string;
      path: string;
      token: string;
      concurrency: number;
      /** The body length every answer must have (the file's size). */
      expectBytes: number;
    }
  /** Opens the measured window: answers that end inside it, and bytes received inside it, count. */
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'stop' };

export interface DownloadLoadResult {
  windowMs: number;
  /** Downloads answered 200 with the whole file that ended inside the window. */
  completed: number;
  /** Body bytes received inside the window. */
  bytes: number;
  /** Milliseconds per counted download. */
  latencies: number[];
  errorsInWindow: Record<string, number>;
  errorsTotal: Record<string, number>;
  errorSamples: string[];
  /** Every complete download of the run, warm-up included. */
  successesTotal: number;
  /** The client process's CPU time over the window. */
  cpuMs: number;
}

export type DownloadLoadMessage = { type: 'started' } | { type: 'result'; result: DownloadLoadResult };

interface Answer {
  status: number;
  length: number;
  sample: string;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * One keep-alive connection, one request at a time, the body framed by Content-Length (the
 * service sets it on files without gzip and on JSON answers). Minimal, so the client takes as
 * little CPU as it can from the server it shares the machine with.
 */
function openConnection(origin: URL, path: string, token: string, onBytes: (n: number) => void, sockets: Set<Socket>) {
  const request = Buffer.from(
    `GET ${path} HTTP/1.1\r\nhost: ${origin.host}\r\nauthorization: Bearer ${token}\r\n` +
      'user-agent: traqs-bench/1\r\naccept: */*\r\n\r\n',
  );
  let socket: Socket | undefined;
  let head: Buffer = Buffer.alloc(0);
  let remaining = -1;
  let answer: Answer | undefined;
  let pending: { resolve: (a: Answer) => void; reject: (e: Error) => void } | undefined;

  const fail = (err: Error) => {
    socket?.destroy();
    socket = undefined;
    head = Buffer.alloc(0);
    remaining = -1;
    const p = pending;
    pending = undefined;
    p?.reject(err);
  };
  const finish = () => {
    const p = pending;
    const a = answer;
    pending = undefined;
    answer = undefined;
    remaining = -1;
    if (p && a) p.resolve(a);
  };
  const onData = (chunk: Buffer) => {
    let body = chunk;
    if (remaining < 0) {
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      const end = head.indexOf(HEADER_END);
      if (end < 0) return;
      const text = head.toString('latin1', 0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      const length = /\r\ncontent-length: *(\d+)/i.exec(text)?.[1];
      if (length === undefined) return fail(new Error(`response without Content-Length: ${text.slice(0, 200)}`));
      body = head.subarray(end + HEADER_END.length);
      head = Buffer.alloc(0);
      remaining = Number(length);
      answer = { status, length: remaining, sample: '' };
    }
    if (body.length > remaining) return fail(new Error('more bytes than Content-Length (no pipelining here)'));
    remaining -= body.length;
    onBytes(body.length);
    if (answer && answer.status !== 200 && answer.sample.length < 300) {
      answer.sample += body.toString('utf8', 0, Math.min(body.length, 300));
    }
    if (remaining === 0) finish();
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
  return (): Promise<Answer> => {
    socket ??= connected();
    const s = socket;
    return new Promise((resolve, reject) => {
      pending = { resolve, reject };
      s.write(request);
    });
  };
}

function run(cmd: Extract<DownloadLoadCommand, { type: 'start' }>) {
  const origin = new URL(cmd.origin);
  const sockets = new Set<Socket>();
  let stopping = false;
  let windowStart: number | undefined;
  let windowEnd: number | undefined;
  let cpuStart = process.cpuUsage();
  let cpuMs = 0;
  let bytes = 0;
  const latencies: number[] = [];
  const errorsInWindow: Record<string, number> = {};
  const errorsTotal: Record<string, number> = {};
  const errorSamples: string[] = [];
  let successesTotal = 0;
  const open = () => windowStart !== undefined && windowEnd === undefined;

  const countError = (kind: string, sample: string) => {
    errorsTotal[kind] = (errorsTotal[kind] ?? 0) + 1;
    if (open()) errorsInWindow[kind] = (errorsInWindow[kind] ?? 0) + 1;
    if (errorSamples.length < 5) errorSamples.push(sample);
  };
  const onBytes = (n: number) => {
    if (open()) bytes += n;
  };

  async function client() {
    const get = openConnection(origin, cmd.path, cmd.token, onBytes, sockets);
    while (!stopping) {
      const t0 = performance.now();
      try {
        const answer = await get();
        const t1 = performance.now();
        if (answer.status === 200 && answer.length === cmd.expectBytes) {
          successesTotal++;
          if (open()) latencies.push(t1 - t0);
        } else {
          countError(`HTTP ${answer.status}`, `${answer.status} ${answer.length} bytes ${answer.sample}`);
        }
      } catch (err) {
        if (stopping) break;
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
    async stop(): Promise<DownloadLoadResult> {
      this.windowEnd();
      stopping = true;
      // A download still under way (a large file) is cut off rather than waited for.
      for (const s of sockets) s.destroy();
      await Promise.all(clients);
      return {
        windowMs: windowStart !== undefined && windowEnd !== undefined ? windowEnd - windowStart : 0,
        completed: latencies.length,
        bytes,
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
const send = (m: DownloadLoadMessage) => process.send?.(m);
process.on('message', (m: DownloadLoadCommand) => {
  if (m.type === 'start') {
    load = run(m);
    send({ type: 'started' });
  } else if (m.type === 'window-start') load?.windowStart();
  else if (m.type === 'window-end') load?.windowEnd();
  else if (m.type === 'stop') {
    // Disconnect once the result is written: a large message still queued would be dropped.
    void load?.stop().then((result) => process.send?.({ type: 'result', result }, () => process.disconnect?.()));
  }
});
