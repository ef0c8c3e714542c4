import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClientError, EXIT_CODES } from '../src/download-client/errors.ts';
import { fileNameFromContentDisposition, parseContentRange, sha256FromEtag } from '../src/download-client/file-name.ts';
import { createProgress, formatProgressLine, progressFigures } from '../src/download-client/progress.ts';
import { type FakeService, sampleFile, startFakeService } from './download-client.fake-service.ts';
import { createClientHarness } from './download-client.harness.ts';

/**
 * `traqs-download get`: the file lands under its name only once its SHA-256 matches; a partial
 * download resumes with Range + If-Range; a broken connection is resumed a few times, with the
 * access token renewed if it expired meanwhile; a changed file starts over.
 */

const START = Date.parse('2026-12-04T12:00:00Z');
const NAME = 'ORF_EQUITYMASTERAC_20261204.txt';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('traqs-download get', () => {
  const clock = { now: START };
  let service: FakeService;
  let h: ReturnType<typeof createClientHarness>;
  const body = sampleFile(1024 * 1024, 'Q');

  async function start(options: Parameters<typeof startFakeService>[0] = {}) {
    service = await startFakeService({ now: () => clock.now, ...options });
    service.refreshTokens.add('rt-good');
    service.files.push({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-04', body });
    h = createClientHarness(service, clock);
  }
  beforeEach(async () => {
    clock.now = START;
    await start();
  });
  afterEach(async () => {
    await service.close();
    h.close();
  });

  const saved = () => join(h.cwd, NAME);
  const files = () => readdirSync(h.cwd).sort();

  it('saves the latest file under the name the service proposes, verified, and prints its path', async () => {
    const r = await h.run(['get', 'orf', 'equitymasterac']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${saved()}\n`);
    expect(readFileSync(saved()).equals(body)).toBe(true);
    expect(files()).toEqual([NAME]);
    expect(r.stderr).toContain('SHA-256 verified');
    // Not a terminal: a plain line each time another tenth is done, never more than ten.
    const lines = r.stderr.split('\n').filter((l) => l.startsWith(`${NAME}: `) && l.includes('%'));
    const tenths = lines.map((l) => Math.floor(Number(/(\d+)%/.exec(l)?.[1]) / 10));
    expect(lines.length).toBeGreaterThanOrEqual(5);
    expect(new Set(tenths).size).toBe(lines.length);
    expect(tenths.at(-1)).toBe(10);
    expect(lines.at(-1)).toMatch(/100%\s+1\.0 MiB \/ 1\.0 MiB\s+\S+ \S+\/s/);
    expect(service.requests('head')).toHaveLength(1);
    expect(service.requests('file')[0]?.headers.range).toBeUndefined();
  });

  it('takes --date and -o (a file, or a directory), and is silent with --quiet', async () => {
    service.files.push({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-11-30', body: sampleFile(5000, 'O') });
    const out = await h.run(['get', 'ORF', 'EQUITYMASTERAC', '--date', '2026-11-30', '-o', 'old.txt', '--quiet']);
    expect(out.code).toBe(0);
    expect(out.stderr).toBe('');
    expect(service.requests('file')[0]?.path).toBe('/v1/files/ORF/EQUITYMASTERAC?date=2026-11-30');
    expect(readFileSync(join(h.cwd, 'old.txt')).equals(sampleFile(5000, 'O'))).toBe(true);
    mkdirSync(join(h.cwd, 'data'));
    const dir = await h.run(['get', 'ORF', 'EQUITYMASTERAC', '-o', 'data', '-q']);
    expect(dir.stdout).toBe(`${join(h.cwd, 'data', NAME)}\n`);
    const created = await h.run(['get', 'ORF', 'EQUITYMASTERAC', '-o', 'new/dir/', '-q']);
    expect(created.stdout).toBe(`${join(h.cwd, 'new', 'dir', NAME)}\n`);
    expect(readFileSync(join(h.cwd, 'new', 'dir', NAME)).equals(body)).toBe(true);
  });

  it('says so when the file cannot be written (exit 12)', async () => {
    writeFileSync(join(h.cwd, 'plain'), 'a file, not a directory');
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC', '-o', 'plain/x.txt']);
    expect(r.code).toBe(EXIT_CODES.LOCAL_FILE);
    expect(r.stderr).toMatch(/cannot write .*plain\/x\.txt\.part\.json \(E(NOTDIR|EXIST)\)/);
  });

  it('does not download a file that is already there with the published SHA-256', async () => {
    writeFileSync(saved(), body);
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('already up to date');
    expect(service.requests('file')).toHaveLength(0);
  });

  it('resumes from an existing .part with Range and If-Range, and checks the whole file', async () => {
    const etag = `"${sha(body)}"`;
    writeFileSync(`${saved()}.part`, body.subarray(0, 300_000));
    writeFileSync(`${saved()}.part.json`, JSON.stringify({ etag, total: body.length }));
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    const [get] = service.requests('file');
    expect(get?.headers.range).toBe('bytes=300000-');
    expect(get?.headers['if-range']).toBe(etag);
    expect(get?.status).toBe(206);
    expect(readFileSync(saved()).equals(body)).toBe(true);
    expect(files()).toEqual([NAME]);
    expect(r.stderr).toContain('resuming at 293.0 KiB');
    expect(r.stderr).toContain('resumed at 293.0 KiB');
  });

  it('starts over when the file changed since the partial download (If-Range → 200)', async () => {
    writeFileSync(`${saved()}.part`, Buffer.from('stale bytes of an older version'));
    writeFileSync(`${saved()}.part.json`, JSON.stringify({ etag: `"${'0'.repeat(64)}"` }));
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    expect(service.requests('file')[0]?.status).toBe(200);
    expect(r.stderr).toContain('starting over');
    expect(readFileSync(saved()).equals(body)).toBe(true);
  });

  it('does not trust a .part without its record: downloads the whole file', async () => {
    writeFileSync(`${saved()}.part`, Buffer.from('who knows'));
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    expect(service.requests('file')[0]?.headers.range).toBeUndefined();
    expect(readFileSync(saved()).equals(body)).toBe(true);
  });

  it('finishes a complete .part on 416 without downloading it again', async () => {
    writeFileSync(`${saved()}.part`, body);
    writeFileSync(`${saved()}.part.json`, JSON.stringify({ etag: `"${sha(body)}"` }));
    // HEAD would say "up to date" only for the final name; the part is complete but not renamed.
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    expect(service.requests('file').map((x) => x.status)).toEqual([416]);
    expect(readFileSync(saved()).equals(body)).toBe(true);
    expect(files()).toEqual([NAME]);
  });

  it('goes on after the connection is cut mid-file, renewing the access token that expired meanwhile', async () => {
    await service.close();
    h.close();
    // 1-second access tokens: each of the client's waits (recorded, the shared clock moved) outlasts one.
    await start({ accessTokenSeconds: 1 });
    service.cuts.push(200_000, 500_000);
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    expect(readFileSync(saved()).equals(body)).toBe(true);
    const gets = service.requests('file');
    expect(gets.map((g) => g.headers.range)).toEqual([
      undefined,
      expect.stringMatching(/^bytes=\d+-$/),
      expect.stringMatching(/^bytes=\d+-$/),
    ]);
    expect(gets.slice(1).map((g) => g.status)).toEqual([206, 206]);
    expect(h.sleeps).toEqual([1000, 2000]);
    expect(r.stderr).toMatch(/the download broke after .* resuming in 1 s/);
    // A new access token before each resumed request, obtained ahead of use: the service never
    // had to refuse one.
    expect(service.requests('token').length).toBe(3);
    expect(gets.every((g) => g.status !== 401)).toBe(true);
  });

  it('renews on a 401 when resuming after a cut, and goes on', async () => {
    service.cuts.push(300_000);
    // The service stops accepting the token (its keys rotated, say) while the client waits to resume.
    service.onCut = () => service.expireAccessTokens();
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    expect(readFileSync(saved()).equals(body)).toBe(true);
    expect(service.requests('file').map((g) => g.status)).toEqual([200, 401, 206]);
    expect(service.requests('token')).toHaveLength(2);
  });

  it('gives up after --retries broken connections with exit 11, keeps the .part, and the next run resumes', async () => {
    service.cuts.push(100_000, 100_000, 100_000);
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC', '--retries', '2']);
    expect(r.code).toBe(EXIT_CODES.NETWORK);
    expect(r.stderr).toContain('run the same command again to resume');
    expect(files()).toEqual([`${NAME}.part`, `${NAME}.part.json`]);
    const kept = readFileSync(join(h.cwd, `${NAME}.part`)).length;
    expect(kept).toBeGreaterThanOrEqual(300_000);
    const again = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(again.code).toBe(0);
    expect(service.requests('file').at(-1)?.headers.range).toBe(`bytes=${kept}-`);
    expect(readFileSync(saved()).equals(body)).toBe(true);
    expect(files()).toEqual([NAME]);
  });

  it('refuses bytes that do not match the SHA-256 (exit 10) and keeps nothing', async () => {
    service.corrupt.nextWholeBodies = 5;
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stderr).toContain('does not match its published SHA-256');
    expect(r.stderr).toContain(`expected ${sha(body)}`);
    expect(files()).toEqual([]);
  });

  it('downloads the whole file again once when a resumed file does not match', async () => {
    const tampered = Buffer.from(body.subarray(0, 300_000));
    tampered.writeUInt8(tampered.readUInt8(10) ^ 0xff, 10);
    writeFileSync(`${saved()}.part`, tampered);
    writeFileSync(`${saved()}.part.json`, JSON.stringify({ etag: `"${sha(body)}"` }));
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('downloading it whole again');
    expect(service.requests('file').map((x) => x.status)).toEqual([206, 200]);
    expect(readFileSync(saved()).equals(body)).toBe(true);
  });

  it('takes a gzip answer when the service offers one, and resumes a cut one with a plain range', async () => {
    await service.close();
    h.close();
    await start({ gzip: true });
    service.cuts.push(50_000);
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(0);
    const gets = service.requests('file');
    expect(gets[0]?.headers['accept-encoding']).toBe('gzip');
    // Fetch adds `Accept-Encoding: identity` to a Range request by itself (Fetch standard, HTTP-network-or-cache fetch).
    expect(gets[1]?.headers['accept-encoding']).toBe('identity');
    expect(gets[1]?.status).toBe(206);
    expect(readFileSync(saved()).equals(body)).toBe(true);
  });

  it('maps the refusals of a file: 403 not_entitled, 404, 400', async () => {
    service.script.push({
      route: 'file',
      status: 403,
      body: { error: 'not_entitled', error_description: 'Not entitled to facility ORF' },
    });
    const r = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(r.code).toBe(EXIT_CODES.FORBIDDEN);
    expect(r.stderr).toContain('you are not entitled to ORF EQUITYMASTERAC (latest) (403 not_entitled)');
    const missing = await h.run(['get', 'ORF', 'EQUITYMASTERIN']);
    expect(missing.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(missing.stderr).toContain('run "traqs-download list"');
    service.script.push({ route: 'file', status: 400, body: { error: 'invalid_request', error_description: 'bad' } });
    expect((await h.run(['get', 'ORF', 'EQUITYMASTERAC'])).code).toBe(EXIT_CODES.BAD_REQUEST);
    expect(files()).toEqual([]);
  });

  it('keeps the .part when interrupted and says how to resume (exit 130); the next run resumes', async () => {
    const controller = new AbortController();
    service.stalls.push(400_000);
    const run = h.run(['get', 'ORF', 'EQUITYMASTERAC'], { signal: controller.signal });
    const part = `${saved()}.part`;
    for (let i = 0; i < 400 && !(existsSync(part) && readFileSync(part).length === 400_000); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // What Ctrl+C does in bin/traqs-download.js.
    controller.abort(new ClientError('INTERRUPTED', 'interrupted'));
    const r = await run;
    expect(r.code).toBe(EXIT_CODES.INTERRUPTED);
    expect(r.stderr).toContain(`390.6 KiB kept in ${part}; run the same command again to resume`);
    expect(files()).toEqual([`${NAME}.part`, `${NAME}.part.json`]);
    const again = await h.run(['get', 'ORF', 'EQUITYMASTERAC']);
    expect(again.code).toBe(0);
    expect(service.requests('file').at(-1)?.headers.range).toBe('bytes=400000-');
    expect(readFileSync(saved()).equals(body)).toBe(true);
  });

  describe('pure parts', () => {
    it('takes only a plain file name from Content-Disposition', () => {
      expect(fileNameFromContentDisposition('attachment; filename="ORF_X_20261204.txt"')).toBe('ORF_X_20261204.txt');
      expect(fileNameFromContentDisposition('attachment; filename*=UTF-8\'\'a%20b.txt; filename="c.txt"')).toBe(
        'a b.txt',
      );
      for (const bad of ['../../etc/passwd', '/etc/passwd', '.bashrc', 'C:x', 'a\u0007b', '..']) {
        expect(fileNameFromContentDisposition(`attachment; filename="${bad}"`)).toBeUndefined();
      }
      expect(fileNameFromContentDisposition('attachment; filename=a\\b')).toBeUndefined();
      expect(fileNameFromContentDisposition("attachment; filename*=UTF-8''..%2F..%2Fx")).toBeUndefined();
      expect(fileNameFromContentDisposition(null)).toBeUndefined();
    });

    it('reads Content-Range and the SHA-256 of a strong ETag only', () => {
      expect(parseContentRange('bytes 100-999/1000')).toEqual({ start: 100, end: 999, total: 1000 });
      expect(parseContentRange('bytes 100-999/*')).toEqual({ start: 100, end: 999, total: undefined });
      expect(parseContentRange('items 1-2/3')).toBeUndefined();
      const hex = 'a'.repeat(64);
      expect(sha256FromEtag(`"${hex}"`)).toBe(hex);
      expect(sha256FromEtag(`W/"${hex}"`)).toBeUndefined();
      expect(sha256FromEtag('"abc"')).toBeUndefined();
    });

    it('shows bytes, percent, speed and ETA; on a terminal redraws one line', () => {
      const f = progressFigures(5 * 1024 * 1024, 10 * 1024 * 1024, 0, 2000);
      expect(formatProgressLine(f, 10)).toBe('[#####-----]   50%  5.0 MiB / 10.0 MiB  2.5 MiB/s  ETA 0:02');
      let text = '';
      let t = 0;
      const p = createProgress({ isTTY: true, columns: 120, write: (s: string) => (text += s) }, () => t);
      p.start('f.txt', 1000, 0);
      for (let i = 1; i <= 10; i++) {
        t += 50;
        p.update(i * 100);
      }
      p.stop();
      expect(text).toContain('\r');
      expect(text.endsWith('\n')).toBe(true);
      expect(text.split('\n')).toHaveLength(2);
      expect(text).toContain('100%');
      expect(text).toMatch(/\[#{30}\]/);

      // An 80-column terminal: each redrawn line stays narrower than the terminal (no wrapping).
      let narrow = '';
      const q = createProgress({ isTTY: true, columns: 80, write: (s: string) => (narrow += s) }, () => t);
      q.start('ORF_EQUITYMASTERAC_20261204.txt', 40 * 1024 * 1024, 0);
      t += 1000;
      q.update(20 * 1024 * 1024);
      q.stop();
      const drawn = narrow
        .split('\r')
        .filter(Boolean)
        .map((l) => l.replace('\x1b[K', '').replace('\n', ''));
      expect(drawn.length).toBeGreaterThan(0);
      for (const line of drawn) expect(line.length).toBeLessThan(80);
      expect(drawn.at(-1)).toContain('50%');
    });
  });
});
