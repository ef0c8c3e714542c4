import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, repoRoot } from './helpers/product-process.ts';
import { createRealTimeClock, createTestStack, type TestStack } from './helpers/stack.ts';
import { type ApiAnswer, activateToEnrollment, causes, field, PASSWORD, postJson, text } from './helpers/users.ts';

/**
 * `traqs-verify` as users run it (`node bin/traqs-verify.js`, child processes) against the idp on
 * a real listener: enroll with the activation link, then one long-running `listen` that shows
 * each push and reads the number the "user" types on its stdin. The test types what a user would:
 * the number the sign-in (the API's `correctAnswer`) shows, another number, or "deny".
 *
 * The device talks to the idp through a recording proxy, so the test can replay a signed answer
 * exactly as a network attacker who captured it would.
 */

const execFileAsync = promisify(execFile);

interface Recorded {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** A pass-through HTTP proxy that keeps every request body (streams answers through unbuffered). */
async function startRecordingProxy(upstreamPort: number) {
  const log: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      log.push({ method: req.method ?? '', path: req.url ?? '', headers, body: body.toString('utf8') });
      const up = request(
        { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    log,
    /** Cuts every open connection, the device's event stream included (a network blip). */
    cut: () => server.closeAllConnections(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let s: TestStack;
let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
let home: string;
let login: string;
let pushFactorId: string;
let listener: ChildProcessWithoutNullStreams;
let output = '';
let readFrom = 0;

const verify = (...args: string[]) =>
  execFileAsync(process.execPath, ['bin/traqs-verify.js', '--home', home, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: home },
    timeout: 30_000,
  });

/** Waits until the listener printed a line matching `pattern` after what was already read. */
async function waitForOutput(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(output.slice(readFrom));
    if (m) {
      readFrom += m.index + m[0].length;
      return m;
    }
    if (Date.now() > deadline) throw new Error(`no ${pattern} in traqs-verify output:\n${output}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const type = (line: string) => listener.stdin.write(`${line}\n`);

/** The device's view of the next push: id and the three numbers. */
async function nextPush() {
  const m = await waitForOutput(/Push (pch\w+): [^\n]*\n[^\n]*\n[^\n]*\n {2}numbers: (\d+) {2}(\d+) {2}(\d+)/);
  return { id: m[1] ?? '', numbers: [m[2], m[3], m[4]].map(Number) };
}

async function signInWithPush(): Promise<{ stateToken: string; correct: number; r: ApiAnswer }> {
  const r = await postJson(s, '/api/v1/authn', { username: login, password: PASSWORD });
  const stateToken = text(r.body, 'stateToken');
  const v = await postJson(s, `/api/v1/authn/factors/${pushFactorId}/verify`, { stateToken });
  expect(v.body.factorResult).toBe('WAITING');
  const correct = Number(field(v.body, '_embedded', 'factor', '_embedded', 'challenge', 'correctAnswer'));
  return { stateToken, correct, r: v };
}

const poll = (stateToken: string) => postJson(s, `/api/v1/authn/factors/${pushFactorId}/verify`, { stateToken });

beforeAll(async () => {
  const [port] = await freePorts(1);
  s = await createTestStack({
    clock: createRealTimeClock(),
    env: { TRAQS_NTF_IDP_PORT: String(port), TRAQS_NTF_IDP_URL: `http://127.0.0.1:${port}` },
  });
  await s.app.listen({ port: port ?? 0, host: '127.0.0.1' });
  proxy = await startRecordingProxy(port ?? 0);
  home = mkdtempSync(join(tmpdir(), 'traqs-verify-e2e-'));

  const { stateToken, user } = await activateToEnrollment(s, 'verify.e2e@acme.example');
  login = user.login;
  const r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'push', provider: 'OKTA' });
  pushFactorId = text(r.body, '_embedded', 'factor', 'id');
  const link = new URL(text(r.body, '_embedded', 'factor', '_embedded', 'activation', 'activationLink'));
  // The device reaches the idp through the recording proxy.
  const viaProxy = `${proxy.origin}${link.pathname}${link.search}`;
  const enrolled = await verify('enroll', viaProxy, '--name', 'e2e laptop');
  expect(enrolled.stdout).toMatch(/Enrolled "e2e laptop" for verify\.e2e@acme\.example/);
  const done = await postJson(s, `/api/v1/authn/factors/${pushFactorId}/lifecycle/activate/poll`, { stateToken });
  expect(done.body.status).toBe('SUCCESS');

  listener = spawn(process.execPath, ['bin/traqs-verify.js', '--home', home, 'listen', '--max-delay', '2'], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: home },
  });
  listener.stdout.on('data', (c: Buffer) => {
    output += c.toString('utf8');
  });
  listener.stderr.on('data', (c: Buffer) => {
    output += c.toString('utf8');
  });
  await waitForOutput(/Listening for pushes/, 30_000);
}, 90_000);

afterAll(async () => {
  listener?.kill('SIGTERM');
  await proxy?.close();
  await s?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('traqs-verify (a real process) with push and number matching', () => {
  it('keeps its enrollment readable by the user alone', () => {
    expect(statSync(join(home, 'enrollment.json')).mode & 0o777).toBe(0o600);
    expect(statSync(home).mode & 0o777).toBe(0o700);
  });

  it('prints the Okta Verify code, which signs in', async () => {
    const { stdout } = await verify('code');
    const code = stdout.trim();
    expect(code).toMatch(/^\d{6}$/);
    const r = await postJson(s, '/api/v1/authn', { username: login, password: PASSWORD });
    const factors = field(r.body, '_embedded', 'factors') as { id: string; factorType: string; provider: string }[];
    const totp = factors.find((f) => f.factorType === 'token:software:totp' && f.provider === 'OKTA');
    const v = await postJson(s, `/api/v1/authn/factors/${totp?.id}/verify`, {
      stateToken: r.body.stateToken,
      passCode: code,
    });
    expect(v.body.status).toBe('SUCCESS');
  });

  it('approve with the right number: the sign-in succeeds; the captured answer cannot be replayed', async () => {
    const { stateToken, correct } = await signInWithPush();
    const push = await nextPush();
    expect(push.numbers).toContain(correct);
    expect(output).toMatch(/from: {4}Unknown browser|from: {4}\S/);
    type(String(correct));
    await waitForOutput(/Approved\. Return to the sign-in screen\./);
    const done = await poll(stateToken);
    expect(done.body.status).toBe('SUCCESS');

    const captured = proxy.log.find((r) => r.method === 'POST' && r.path.includes(`/pushes/${push.id}/answer`));
    if (!captured) throw new Error('the answer did not pass the proxy');
    const replay = (path: string) =>
      s.app.inject({
        method: 'POST',
        url: path,
        headers: { 'content-type': 'application/json', authorization: captured.headers.authorization ?? '' },
        payload: captured.body,
      });
    const same = await replay(captured.path);
    expect(same.statusCode).toBe(403);
    expect(causes(JSON.parse(same.payload)).join()).toMatch(/already answered/);
    // The same signature on a new push: it names the old push, so it does not verify.
    const next = await signInWithPush();
    const fresh = await nextPush();
    const other = await replay(captured.path.replace(push.id, fresh.id));
    expect(other.statusCode).toBe(401);
    expect((await poll(next.stateToken)).body.factorResult).toBe('WAITING');
    type('deny');
    await waitForOutput(/Denied\./);
  });

  it('wrong number: refused, counted as a failed attempt, with a report link', async () => {
    const before = (await s.rt.store.repos.users.findUserByLogin(login))?.failed_attempts ?? 0;
    const { stateToken, correct } = await signInWithPush();
    const push = await nextPush();
    type(String(push.numbers.find((n) => n !== correct)));
    await waitForOutput(/Wrong number: that is not the number on the sign-in screen/);
    await waitForOutput(/Report suspicious activity: http:\/\/\S+\/report\?token=/);
    expect((await poll(stateToken)).body.factorResult).toBe('REJECTED');
    const after = (await s.rt.store.repos.users.findUserByLogin(login))?.failed_attempts ?? 0;
    expect(after).toBe(before + 1);
  });

  it('deny: the sign-in is REJECTED and the user may report it', async () => {
    const { stateToken } = await signInWithPush();
    await nextPush();
    type('deny');
    await waitForOutput(/Denied\. The sign-in was refused\.\nNot you\? Report suspicious activity: /);
    expect((await poll(stateToken)).body.factorResult).toBe('REJECTED');
  });

  it('timeout: after 5 minutes the sign-in sees TIMEOUT and a late approval is refused', async () => {
    const { stateToken, correct } = await signInWithPush();
    await nextPush();
    s.clock.advance(5 * 60_000);
    expect((await poll(stateToken)).body.factorResult).toBe('TIMEOUT');
    type(String(correct));
    await waitForOutput(/Not accepted: This push expired/);
  });

  it('more than 3 pushes: the 4th is refused; only the newest can be approved', async () => {
    const { stateToken } = await signInWithPush();
    const resend = () => postJson(s, `/api/v1/authn/factors/${pushFactorId}/verify/resend`, { stateToken });
    await resend();
    const third = await resend();
    const correct = Number(field(third.body, '_embedded', 'factor', '_embedded', 'challenge', 'correctAnswer'));
    const fourth = await resend();
    expect(fourth.status).toBe(429);
    expect(causes(fourth.body).join()).toMatch(/At most 3 pushes can be sent for one sign-in/);
    const newest = (await s.rt.store.repos.factors.push.listWaiting(pushFactorId, s.clock()))[0]?.id;
    for (let shown = 0; shown < 3; shown++) {
      const push = await nextPush();
      if (push.id === newest) {
        type(String(correct));
        await waitForOutput(/Approved\./);
        break;
      }
      type(String(push.numbers[0]));
      await waitForOutput(/Not accepted: A newer push replaced this one/);
    }
    expect((await poll(stateToken)).body.status).toBe('SUCCESS');
  });

  it('reconnects with backoff after the connection drops, and still gets pushes', async () => {
    proxy.cut();
    await waitForOutput(/Connection to \S+ lost; reconnecting in \d+\.\d s\./);
    await waitForOutput(/Listening for pushes/);
    const { stateToken, correct } = await signInWithPush();
    await nextPush();
    type(String(correct));
    await waitForOutput(/Approved\./);
    expect((await poll(stateToken)).body.status).toBe('SUCCESS');
  });

  it('devices lists this device; unenroll removes it from the account', async () => {
    const { stdout } = await verify('devices');
    expect(stdout).toMatch(/^\* e2e laptop {2}pfd\w+ {2}enrolled /m);
    const removed = await verify('unenroll');
    expect(removed.stdout).toMatch(/Removed "e2e laptop"/);
    // The listening device is told at once: its stream ends and the reconnection is refused.
    await waitForOutput(/this device is no longer enrolled/);
    await expect.poll(() => listener.exitCode, { timeout: 10_000 }).toBe(3);
    const factors = await s.rt.store.repos.factors.listFactors(
      (await s.rt.store.repos.users.findUserByLogin(login))?.id ?? '',
    );
    expect(factors.filter((f) => f.factor_type === 'push' || f.provider === 'OKTA')).toEqual([]);
    await expect(verify('code')).rejects.toMatchObject({ code: 3 });
  });
});
