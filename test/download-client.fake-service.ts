import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

/**
 * A stand-in for the download service (`src/download`) for the client's unit tests: the token
 * endpoint, the catalog and the file routes with ETag, Range and If-Range, plus knobs to misbehave
 * (scripted answers, connections cut after n bytes, corrupted bodies). Real HTTP on loopback, so
 * the client's own fetch, streams and retries run unchanged.
 */

export interface FakeFile {
  facility: string;
  file: string;
  date: string;
  body: Buffer;
  records?: number;
}

export interface ScriptedAnswer {
  /** Which requests it answers: the token endpoint, the catalog, a file (GET) or a HEAD. */
  route: 'token' | 'catalog' | 'file' | 'head';
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface LoggedRequest {
  method: string;
  path: string;
  route: 'token' | 'catalog' | 'file' | 'head' | 'other';
  headers: IncomingMessage['headers'];
  status?: number;
}

export interface FakeServiceOptions {
  /** The service's clock (epoch ms), for access-token expiry. */
  now?: () => number;
  /** Access-token lifetime in seconds (default 3600). */
  accessTokenSeconds?: number;
  /** Sent as `refresh_token_expires_in` with every token answer, when set. */
  refreshTokenExpiresIn?: number;
  /** Sent as `x-refresh-token-expires-at`, when set. */
  refreshTokenExpiresAtHeader?: string;
  /** Gzip whole-file answers when the client accepts it. */
  gzip?: boolean;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export async function startFakeService(options: FakeServiceOptions = {}) {
  const now = options.now ?? Date.now;
  const files: FakeFile[] = [];
  const refreshTokens = new Set<string>();
  const accessTokens = new Map<string, number>();
  const script: ScriptedAnswer[] = [];
  const log: LoggedRequest[] = [];
  /** File GETs to cut: each entry cuts one answer after that many body bytes. */
  const cuts: number[] = [];
  /** File GETs to stall: each entry sends that many body bytes, then nothing more (until closed). */
  const stalls: number[] = [];
  /** When set, whole-file bodies are sent with this byte flipped (the ETag stays the real digest). */
  const corrupt = { nextWholeBodies: 0 };
  let issued = 0;
  const hooks: { onCut?: () => void } = {};

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  const takeScripted = (route: ScriptedAnswer['route']) => {
    const i = script.findIndex((s) => s.route === route);
    return i === -1 ? undefined : script.splice(i, 1)[0];
  };

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });

  function authorized(req: IncomingMessage, res: ServerResponse): boolean {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const expiresAt = token ? accessTokens.get(token) : undefined;
    if (expiresAt === undefined || now() >= expiresAt) {
      json(
        res,
        401,
        { error: 'invalid_token', error_description: 'the access token expired' },
        { 'www-authenticate': 'Bearer error="invalid_token", error_description="the access token expired"' },
      );
      return false;
    }
    return true;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, entry: LoggedRequest) {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (req.method === 'POST' && url.pathname === '/oauth2/token') {
      entry.route = 'token';
      const form = new URLSearchParams(await readBody(req));
      const scripted = takeScripted('token');
      if (scripted) return json(res, scripted.status, scripted.body ?? {}, scripted.headers);
      if (form.get('grant_type') !== 'refresh_token' || form.get('client_id') !== 'traqs-api') {
        return json(res, 400, { error: 'invalid_request', error_description: 'grant_type and client_id required' });
      }
      if (!refreshTokens.has(form.get('refresh_token') ?? '')) {
        return json(res, 400, { error: 'invalid_grant', error_description: 'grant request is invalid' });
      }
      const token = `at-${++issued}`;
      const seconds = options.accessTokenSeconds ?? 3600;
      accessTokens.set(token, now() + seconds * 1000);
      const body: Record<string, unknown> = { access_token: token, token_type: 'Bearer', expires_in: seconds };
      if (options.refreshTokenExpiresIn !== undefined) body.refresh_token_expires_in = options.refreshTokenExpiresIn;
      const headers: Record<string, string> = { 'cache-control': 'no-store' };
      if (options.refreshTokenExpiresAtHeader)
        headers['x-refresh-token-expires-at'] = options.refreshTokenExpiresAtHeader;
      return json(res, 200, body, headers);
    }
    if (url.pathname === '/v1/files' && req.method === 'GET') {
      entry.route = 'catalog';
      const scripted = takeScripted('catalog');
      if (scripted) return json(res, scripted.status, scripted.body ?? {}, scripted.headers);
      if (!authorized(req, res)) return;
      const facility = url.searchParams.get('facility');
      return json(res, 200, {
        files: files
          .filter((f) => !facility || f.facility === facility)
          .map((f) => ({
            facility: f.facility,
            file: f.file,
            date: f.date,
            size: f.body.length,
            sha256: sha256(f.body),
            records: f.records ?? 0,
            url: `/v1/files/${f.facility}/${f.file}?date=${f.date}`,
          })),
      });
    }
    const m = /^\/v1\/files\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (m && (req.method === 'GET' || req.method === 'HEAD')) {
      const head = req.method === 'HEAD';
      entry.route = head ? 'head' : 'file';
      const scripted = takeScripted(entry.route);
      if (scripted) {
        if (head) {
          res.writeHead(scripted.status, scripted.headers);
          return res.end();
        }
        return json(res, scripted.status, scripted.body ?? {}, scripted.headers);
      }
      if (!authorized(req, res)) return;
      const date = url.searchParams.get('date');
      const f = files
        .filter((x) => x.facility === m[1] && x.file === m[2] && (!date || x.date === date))
        .sort((a, b) => b.date.localeCompare(a.date))[0];
      if (!f) return json(res, 404, { error: 'not_found', error_description: `no ${m[2]} file of ${m[1]}` });
      const etag = `"${sha256(f.body)}"`;
      const headers: Record<string, string> = {
        etag,
        'accept-ranges': 'bytes',
        'content-type': 'text/plain; charset=utf-8',
        'content-disposition': `attachment; filename="${f.facility}_${f.file}_${f.date.replaceAll('-', '')}.txt"`,
      };
      const size = f.body.length;
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const ifRange = req.headers['if-range'];
      if (range && (ifRange === undefined || ifRange === etag)) {
        const start = Number(range[1]);
        if (start >= size) {
          res.writeHead(416, { 'content-range': `bytes */${size}` });
          return res.end();
        }
        res.writeHead(206, {
          ...headers,
          'content-range': `bytes ${start}-${size - 1}/${size}`,
          'content-length': String(size - start),
        });
        if (head) return res.end();
        return send(res, f.body.subarray(start));
      }
      let body = f.body;
      if (!head && corrupt.nextWholeBodies > 0) {
        corrupt.nextWholeBodies--;
        body = Buffer.from(body);
        const at = Math.floor(body.length / 2);
        body.writeUInt8(body.readUInt8(at) ^ 0xff, at);
      }
      if (!head && options.gzip && /gzip/.test(String(req.headers['accept-encoding'] ?? ''))) {
        const gz = gzipSync(body);
        res.writeHead(200, { ...headers, 'content-encoding': 'gzip', 'content-length': String(gz.length) });
        return send(res, gz);
      }
      res.writeHead(200, { ...headers, 'content-length': String(size) });
      if (head) return res.end();
      return send(res, body);
    }
    json(res, 404, { error: 'not_found', error_description: `no such path: ${url.pathname}` });
  }

  /** Sends a body in 16 KiB pieces, cutting the connection where a cut is scheduled. */
  function send(res: ServerResponse, body: Buffer) {
    const cutAt = cuts.shift();
    const stallAt = cutAt === undefined ? stalls.shift() : undefined;
    const limit = Math.min(cutAt ?? stallAt ?? body.length, body.length);
    let sent = 0;
    const next = () => {
      while (sent < limit) {
        const piece = body.subarray(sent, Math.min(limit, sent + 16 * 1024));
        sent += piece.length;
        if (!res.write(piece)) {
          res.once('drain', next);
          return;
        }
      }
      if (cutAt !== undefined) {
        // Let the bytes leave, then drop the connection as a broken network would.
        setTimeout(() => {
          res.socket?.destroy();
          hooks.onCut?.();
        }, 20);
      } else if (stallAt === undefined) res.end();
    };
    next();
  }

  const server = createServer((req, res) => {
    const entry: LoggedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      route: 'other',
      headers: req.headers,
    };
    log.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    res.on('close', () => {
      entry.status ??= res.statusCode;
    });
    void handle(req, res, entry);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    files,
    refreshTokens,
    script,
    log,
    cuts,
    stalls,
    corrupt,
    sha256,
    /** Every access token issued so far stops working (as if the service's keys rotated). */
    expireAccessTokens() {
      for (const k of accessTokens.keys()) accessTokens.set(k, 0);
    },
    /** Runs after each cut connection. */
    set onCut(f: (() => void) | undefined) {
      hooks.onCut = f;
    },
    requests(route: LoggedRequest['route']) {
      return log.filter((r) => r.route === route);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
export type FakeService = Awaited<ReturnType<typeof startFakeService>>;

/** A deterministic body of about `size` bytes, pipe-delimited like the real files. */
export function sampleFile(size: number, seed = 'A'): Buffer {
  const lines = ['Symbol|Name|Status'];
  let i = 0;
  let length = lines[0]?.length ?? 0;
  while (length < size) {
    const line = `${seed}${String(i).padStart(6, '0')}|Company ${seed} number ${i}|A`;
    lines.push(line);
    length += line.length + 1;
    i++;
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}
