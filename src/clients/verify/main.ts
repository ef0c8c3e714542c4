import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Command, CommanderError, Option } from 'commander';
import { type PushDecision, signAnswer } from '../../authn/factors/push/answer.ts';
import { base32Decode, generateTotp } from '../../authn/factors/totp/totp.ts';
import { backoffDelay, createEventParser } from './events.ts';
import {
  type Enrollment,
  loadEnrollment,
  openKey,
  protectKey,
  removeEnrollment,
  saveEnrollment,
  stateDir,
} from './state.ts';

export const PROGRAM = 'traqs-verify';

/** 0 done, 1 server or network, 2 usage, 3 not enrolled (or the enrollment was removed). */
export const EXIT = { OK: 0, SERVER: 1, USAGE: 2, NOT_ENROLLED: 3 } as const;

class VerifyError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface VerifyContext {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  stdin: Readable;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  signal?: AbortSignal;
  now?: () => number;
}

/** A push as the idp streams it: the three numbers, never which one is right. */
interface DevicePush {
  id: string;
  numbers: number[];
  createdAt: string;
  expiresAt: string;
  context: { app: string; ip: string | null; place: string; browser: string };
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/** The idp URL and the code from an activation link, or the code alone with `--url`. */
export function parseActivation(input: string, url: string | undefined, allowInsecure: boolean) {
  let idpUrl: string;
  let code: string;
  if (/^https?:\/\//i.test(input)) {
    const link = new URL(input);
    code = link.searchParams.get('code') ?? '';
    idpUrl = link.origin;
  } else {
    if (!url) throw new VerifyError(EXIT.USAGE, 'an activation code alone needs --url <idp URL>');
    idpUrl = new URL(url).origin;
    code = input.trim();
  }
  if (!/^[A-Za-z0-9_-]{20,200}$/.test(code))
    throw new VerifyError(EXIT.USAGE, 'that is not an activation link or code');
  const parsed = new URL(idpUrl);
  // The device token and the answers are bearer credentials: no clear text beyond this machine.
  if (parsed.protocol === 'http:' && !LOOPBACK.test(parsed.hostname) && !allowInsecure) {
    throw new VerifyError(EXIT.USAGE, `refusing plain HTTP to ${parsed.host}: use https (or --allow-insecure-http)`);
  }
  return { idpUrl, code };
}

function readPassphrase(file: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (file) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  return env.TRAQS_VERIFY_PASSPHRASE || undefined;
}

/** Lines typed on stdin, handed out one per question. */
function createLineReader(stdin: Readable) {
  const lines: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  let closed = false;
  const rl = createInterface({ input: stdin, terminal: false });
  rl.on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else lines.push(line);
  });
  rl.on('close', () => {
    closed = true;
    for (const w of waiting.splice(0)) w(undefined);
  });
  return {
    next(): Promise<string | undefined> {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (closed) return Promise.resolve(undefined);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close: () => rl.close(),
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function errorText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { errorSummary?: string; errorCauses?: { errorSummary?: string }[] };
    return body.errorCauses?.[0]?.errorSummary ?? body.errorSummary ?? `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

/** Runs `traqs-verify` with `ctx.argv`; answers the exit code. */
export async function runVerify(ctx: VerifyContext): Promise<number> {
  const out = (s: string) => ctx.stdout.write(`${s}\n`);
  const userAgent = `${PROGRAM} (node ${process.version})`;
  const program = new Command(PROGRAM)
    .description('The TRAQS authenticator: approves sign-ins with number matching and shows one-time codes.')
    .addOption(
      new Option('--home <dir>', 'where the enrollment is kept [env: TRAQS_VERIFY_HOME, default ~/.traqs-verify]'),
    )
    .addOption(
      new Option(
        '--passphrase-file <file>',
        'file holding the passphrase of the device key [env: TRAQS_VERIFY_PASSPHRASE]',
      ),
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(s) });
  const home = () => stateDir(program.opts<{ home?: string }>().home, ctx.env);
  const passphrase = () => readPassphrase(program.opts<{ passphraseFile?: string }>().passphraseFile, ctx.env);
  const enrolled = (): Enrollment => {
    const e = loadEnrollment(home());
    if (!e)
      throw new VerifyError(
        EXIT.NOT_ENROLLED,
        `not enrolled (no enrollment in ${home()}): run "${PROGRAM} enroll <activation link>"`,
      );
    return e;
  };
  const api = (e: Enrollment, path: string, init: RequestInit = {}) =>
    fetch(`${e.idpUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${e.deviceToken}`, 'user-agent': userAgent, ...(init.headers ?? {}) },
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });

  program
    .command('enroll')
    .description(
      'register this machine as a push device with the activation link (or code) shown when adding Okta Verify',
    )
    .argument('<activation>', 'the activation link, or the code with --url')
    .option('--url <idp>', 'the MFA profile URL, when giving the code alone')
    .option('--name <name>', 'a name for this device', `traqs-verify on ${hostname()}`)
    .option('--force', 'replace an enrollment already in --home')
    .option('--allow-insecure-http', 'allow http:// to a host other than this machine (test networks)')
    .action(
      async (activation: string, o: { url?: string; name: string; force?: boolean; allowInsecureHttp?: boolean }) => {
        const { idpUrl, code } = parseActivation(activation, o.url, !!o.allowInsecureHttp);
        if (loadEnrollment(home()) && !o.force) {
          throw new VerifyError(
            EXIT.USAGE,
            `${home()} already holds an enrollment: unenroll first, use --force or another --home`,
          );
        }
        const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const res = await fetch(`${idpUrl}/api/v1/devices`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': userAgent },
          body: JSON.stringify({ activationCode: code, name: o.name, publicKey: publicKey.export({ format: 'jwk' }) }),
        });
        if (res.status !== 201) throw new VerifyError(EXIT.SERVER, `enrollment refused: ${await errorText(res)}`);
        const body = (await res.json()) as {
          id: string;
          name: string;
          deviceToken: string;
          user: { login: string };
          totp: Enrollment['totp'];
        };
        saveEnrollment(home(), {
          version: 1,
          idpUrl,
          deviceId: body.id,
          deviceToken: body.deviceToken,
          name: body.name,
          login: body.user.login,
          totp: { sharedSecret: body.totp.sharedSecret, period: body.totp.period, digits: body.totp.digits },
          key: protectKey(privateKey, passphrase()),
        });
        out(`Enrolled "${body.name}" for ${body.user.login} (device ${body.id}).`);
        out(`Run "${PROGRAM} listen" to approve sign-ins; "${PROGRAM} code" prints a one-time code.`);
      },
    );

  program
    .command('listen')
    .description('wait for pushes and answer them: pick the number shown on the sign-in screen, or deny')
    .option('--max-delay <seconds>', 'longest wait between reconnection attempts', '30')
    .action(async (o: { maxDelay: string }) => {
      const e = enrolled();
      const key = openKey(e.key, passphrase());
      const capMs = Math.max(1, Number(o.maxDelay) || 30) * 1000;
      const lines = createLineReader(ctx.stdin);
      const seen = new Set<string>();
      const queue: DevicePush[] = [];
      let wake: (() => void) | undefined;
      let revoked = false;

      const answerOne = async (p: DevicePush) => {
        out('');
        out(`Push ${p.id}: sign-in to ${p.context.app} as ${e.login}`);
        out(`  from:    ${p.context.browser}, ${p.context.ip ?? 'unknown address'} (${p.context.place})`);
        out(`  at:      ${p.createdAt} (expires ${p.expiresAt})`);
        out(`  numbers: ${p.numbers.join('  ')}`);
        for (;;) {
          out('Type the number shown on the sign-in screen, or "deny" if this is not you:');
          const line = await lines.next();
          if (line === undefined) return;
          const typed = line.trim().toLowerCase();
          let decision: PushDecision;
          let number: number | null = null;
          if (typed === 'deny' || typed === 'd' || typed === 'no') decision = 'DENY';
          else if (/^\d{1,3}$/.test(typed) && p.numbers.includes(Number(typed))) {
            decision = 'APPROVE';
            number = Number(typed);
          } else {
            out(`Pick one of ${p.numbers.join(', ')}, or type deny.`);
            continue;
          }
          const signature = signAnswer(key, { challengeId: p.id, deviceId: e.deviceId, decision, number });
          const res = await api(e, `/api/v1/devices/${e.deviceId}/pushes/${p.id}/answer`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ decision, ...(number === null ? {} : { number }), signature }),
          });
          if (!res.ok) {
            out(`Not accepted: ${await errorText(res)}`);
            return;
          }
          const r = (await res.json()) as { outcome: string; reportUrl?: string };
          if (r.outcome === 'approved') out('Approved. Return to the sign-in screen.');
          else if (r.outcome === 'wrong_number') {
            out('Wrong number: that is not the number on the sign-in screen. The sign-in was refused.');
          } else out('Denied. The sign-in was refused.');
          if (r.reportUrl) out(`Not you? Report suspicious activity: ${r.reportUrl}`);
          return;
        }
      };

      const worker = (async () => {
        while (!ctx.signal?.aborted && !revoked) {
          const p = queue.shift();
          if (p) await answerOne(p);
          else await new Promise<void>((resolve) => (wake = resolve));
        }
      })();

      let attempt = 0;
      try {
        while (!ctx.signal?.aborted) {
          const conn = new AbortController();
          const abort = () => conn.abort();
          ctx.signal?.addEventListener('abort', abort);
          // Heartbeats come every 15 s: silence for 45 s means the connection is dead.
          let idle = setTimeout(abort, 45_000);
          try {
            const res = await fetch(`${e.idpUrl}/api/v1/devices/${e.deviceId}/events`, {
              headers: {
                authorization: `Bearer ${e.deviceToken}`,
                accept: 'text/event-stream',
                'user-agent': userAgent,
              },
              signal: conn.signal,
            });
            if (res.status === 401) {
              revoked = true;
              wake?.();
              throw new VerifyError(EXIT.NOT_ENROLLED, 'this device is no longer enrolled: enroll it again');
            }
            if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
            attempt = 0;
            out(`Listening for pushes for ${e.login} on ${e.idpUrl} (Ctrl+C to stop).`);
            const parse = createEventParser((ev) => {
              if (ev.event !== 'push') return;
              const p = JSON.parse(ev.data) as DevicePush;
              if (seen.has(p.id)) return;
              seen.add(p.id);
              queue.push(p);
              wake?.();
            });
            const decoder = new TextDecoder();
            for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
              clearTimeout(idle);
              idle = setTimeout(abort, 45_000);
              parse(decoder.decode(chunk, { stream: true }));
            }
          } catch (err) {
            if (err instanceof VerifyError) throw err;
          } finally {
            clearTimeout(idle);
            ctx.signal?.removeEventListener('abort', abort);
          }
          if (ctx.signal?.aborted) break;
          const delay = backoffDelay(attempt++, Math.random, 500, capMs);
          out(`Connection to ${e.idpUrl} lost; reconnecting in ${(delay / 1000).toFixed(1)} s.`);
          await sleep(delay, ctx.signal);
        }
      } finally {
        // Stopped or refused: nothing may keep the process alive (stdin, the answering loop).
        revoked = true;
        wake?.();
        lines.close();
        await Promise.race([worker, sleep(100)]);
      }
    });

  program
    .command('code')
    .description('print the current one-time code (Okta Verify TOTP) of this enrollment')
    .action(() => {
      const e = enrolled();
      const now = (ctx.now ?? Date.now)();
      out(generateTotp({ secret: base32Decode(e.totp.sharedSecret), now, stepSeconds: e.totp.period }));
    });

  program
    .command('devices')
    .description("list the user's push devices")
    .action(async () => {
      const e = enrolled();
      const res = await api(e, `/api/v1/devices/${e.deviceId}`);
      if (res.status === 401) throw new VerifyError(EXIT.NOT_ENROLLED, 'this device is no longer enrolled');
      if (!res.ok) throw new VerifyError(EXIT.SERVER, await errorText(res));
      const body = (await res.json()) as {
        devices: { id: string; name: string; created: string; lastSeen: string | null; current: boolean }[];
      };
      for (const d of body.devices) {
        out(`${d.current ? '*' : ' '} ${d.name}  ${d.id}  enrolled ${d.created}  last seen ${d.lastSeen ?? 'never'}`);
      }
    });

  program
    .command('unenroll')
    .description('remove this device (and its one-time codes) from the account and forget it here')
    .action(async () => {
      const e = enrolled();
      const res = await api(e, `/api/v1/devices/${e.deviceId}`, { method: 'DELETE' });
      if (res.status !== 204 && res.status !== 401) throw new VerifyError(EXIT.SERVER, await errorText(res));
      removeEnrollment(home());
      out(
        res.status === 204 ? `Removed "${e.name}" from ${e.login}.` : 'The device was already removed; forgotten here.',
      );
    });

  try {
    await program.parseAsync([...ctx.argv], { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    if (err instanceof VerifyError) {
      ctx.stderr.write(`${PROGRAM}: ${err.message}\n`);
      return err.exitCode;
    }
    ctx.stderr.write(`${PROGRAM}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.SERVER;
  }
}

export async function runFromProcess(): Promise<number> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    return await runVerify({
      argv: process.argv.slice(2),
      env: process.env,
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
