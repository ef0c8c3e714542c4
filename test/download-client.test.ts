import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { needsRenewal, parseTokenAnswer, refreshTokenWarning } from '../src/download-client/access-tokens.ts';
import { filterCatalog, formatCatalogTable } from '../src/download-client/catalog.ts';
import { EXIT_CODES, INVALID_GRANT_MESSAGE } from '../src/download-client/errors.ts';
import { parseRetryAfter } from '../src/download-client/http.ts';
import { readRefreshTokenFile } from '../src/download-client/refresh-token.ts';
import { cacheKey } from '../src/download-client/token-cache.ts';
import { type FakeService, sampleFile, startFakeService } from './download-client.fake-service.ts';
import { createClientHarness } from './download-client.harness.ts';

/**
 * `traqs-download`: where the refresh token may come from, how access tokens are obtained, cached
 * and renewed, the refresh-token expiry warning, and the message and exit code of each refusal.
 * The service is a stand-in (download-client.fake-service.ts); the end-to-end suite runs the real one.
 */

const START = Date.parse('2026-12-04T12:00:00Z');
const DAY = 24 * 3600_000;

describe('traqs-download: credentials, tokens and errors', () => {
  const clock = { now: START };
  let service: FakeService;
  let h: ReturnType<typeof createClientHarness>;

  beforeEach(async () => {
    clock.now = START;
    service = await startFakeService({ now: () => clock.now });
    service.refreshTokens.add('rt-good');
    service.files.push(
      { facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-03', body: sampleFile(3000, 'X'), records: 40 },
      { facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-04', body: sampleFile(5000, 'Y'), records: 70 },
      { facility: 'TRACE-CA', file: 'CAMASTER', date: '2026-12-04', body: sampleFile(2 * 1024 * 1024), records: 9 },
    );
    h = createClientHarness(service, clock);
  });
  afterEach(async () => {
    await service.close();
    h.close();
  });

  describe('the refresh token', () => {
    const tokenFile = (mode: number, content = 'rt-good\n') => {
      const path = join(h.root, `token-${mode.toString(8)}`);
      writeFileSync(path, content);
      chmodSync(path, mode);
      return path;
    };

    it.each(['644', '640', '604', '660', '602'])(
      'refuses a token file with mode %s and says to chmod 600',
      async (mode) => {
        const path = tokenFile(Number.parseInt(mode, 8));
        const r = await h.run(['list', '--refresh-token-file', path], { refreshToken: null });
        expect(r.code).toBe(EXIT_CODES.CREDENTIALS);
        expect(r.stderr).toContain(`chmod 600 ${path}`);
        expect(r.stderr).toContain('can be read by other users');
        // Nothing was sent: a token in a loose file is not used even once.
        expect(service.log).toHaveLength(0);
      },
    );

    it('reads a 0600 (or 0400) file given by option or by TRAQS_REFRESH_TOKEN_FILE', async () => {
      expect(readRefreshTokenFile(tokenFile(0o400))).toBe('rt-good');
      const path = tokenFile(0o600);
      expect((await h.run(['list', '--refresh-token-file', path], { refreshToken: null })).code).toBe(0);
      const r = await h.run(['list', '--no-token-cache'], {
        refreshToken: null,
        env: { TRAQS_REFRESH_TOKEN_FILE: path },
      });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('EQUITYMASTERAC');
      expect(readRefreshTokenFile(path)).toBe('rt-good');
    });

    it('refuses the token file of a group-readable env setting too, and an empty or missing file', async () => {
      const loose = tokenFile(0o640);
      const r = await h.run(['list'], { refreshToken: null, env: { TRAQS_REFRESH_TOKEN_FILE: loose } });
      expect(r.code).toBe(EXIT_CODES.CREDENTIALS);
      const empty = tokenFile(0o600, '\n');
      expect((await h.run(['list', '--refresh-token-file', empty], { refreshToken: null })).stderr).toContain(
        'is empty',
      );
      const missing = await h.run(['list', '--refresh-token-file', join(h.root, 'nope')], { refreshToken: null });
      expect(missing.code).toBe(EXIT_CODES.CREDENTIALS);
      expect(missing.stderr).toContain('does not exist');
    });

    it('says where to get a token when there is none', async () => {
      const r = await h.run(['list'], { refreshToken: null });
      expect(r.code).toBe(EXIT_CODES.CREDENTIALS);
      expect(r.stderr).toContain('TRAQS_REFRESH_TOKEN');
      expect(r.stderr).toContain('Programmatic page');
    });

    it('never takes a refresh token as a command-line argument (ps shows arguments)', async () => {
      const r = await h.run(['list', '--refresh-token', 'rt-good'], { refreshToken: null });
      expect(r.code).toBe(EXIT_CODES.USAGE);
      expect(r.stderr).toContain('never accepted on the command line');
      expect(service.log).toHaveLength(0);
    });

    it('does not send the refresh token over plain HTTP to another machine', async () => {
      const r = await h.run(['list'], { env: { TRAQS_BASE_URL: 'http://apidownload.example.org' } });
      expect(r.code).toBe(EXIT_CODES.USAGE);
      expect(r.stderr).toContain('refusing to send the refresh token over plain HTTP');
    });
  });

  describe('access tokens', () => {
    it('asks the token endpoint as RFC 6749 §6 says, with the traqs-api client', async () => {
      await h.run(['list']);
      const [token] = service.requests('token');
      expect(token?.headers['content-type']).toBe('application/x-www-form-urlencoded');
      expect(token?.headers['user-agent']).toMatch(/^traqs-download\/\d+\.\d+\.\d+/);
      const catalog = service.requests('catalog')[0];
      expect(catalog?.headers.authorization).toBe('Bearer at-1');
    });

    it('caches the access token between runs in a 0600 file named by a hash, without the refresh token', async () => {
      expect((await h.run(['list'])).code).toBe(0);
      expect((await h.run(['list', '--json'])).code).toBe(0);
      expect(service.requests('token')).toHaveLength(1);
      expect(service.requests('catalog')).toHaveLength(2);
      const [name] = readdirSync(h.cacheDir);
      expect(name).toBe(`${cacheKey(service.url, 'rt-good')}.json`);
      const file = join(h.cacheDir, name ?? '');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(h.cacheDir).mode & 0o777).toBe(0o700);
      expect(readFileSync(file, 'utf8')).not.toContain('rt-good');
    });

    it('keeps a separate cache per refresh token, and none with --no-token-cache', async () => {
      service.refreshTokens.add('rt-other');
      await h.run(['list']);
      await h.run(['list'], { refreshToken: 'rt-other' });
      expect(service.requests('token')).toHaveLength(2);
      await h.run(['list', '--no-token-cache']);
      await h.run(['list', '--no-token-cache']);
      expect(service.requests('token')).toHaveLength(4);
    });

    it('ignores a cache file others can read', async () => {
      await h.run(['list']);
      const file = join(h.cacheDir, `${cacheKey(service.url, 'rt-good')}.json`);
      chmodSync(file, 0o644);
      await h.run(['list']);
      expect(service.requests('token')).toHaveLength(2);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    });

    it('renews the access token by itself when less than a minute is left', async () => {
      await h.run(['list']);
      clock.now += 58 * 60_000;
      await h.run(['list']);
      expect(service.requests('token')).toHaveLength(1);
      clock.now += 61_000;
      await h.run(['list']);
      expect(service.requests('token')).toHaveLength(2);
      expect(service.requests('catalog').map((r) => r.status)).toEqual([200, 200, 200]);
    });

    it('judges a cached short-lived token by its own lifetime', async () => {
      await service.close();
      h.close();
      service = await startFakeService({ now: () => clock.now, accessTokenSeconds: 8 });
      service.refreshTokens.add('rt-good');
      h = createClientHarness(service, clock);
      await h.run(['list']);
      clock.now += 5_000;
      await h.run(['list']);
      expect(service.requests('token')).toHaveLength(1);
      clock.now += 1_500;
      await h.run(['list']);
      expect(service.requests('token')).toHaveLength(2);
    });

    it('renews once on a 401 and repeats the request; a second 401 is final (exit 6)', async () => {
      await h.run(['list']);
      service.expireAccessTokens();
      const r = await h.run(['list']);
      expect(r.code).toBe(0);
      expect(service.requests('token')).toHaveLength(2);
      expect(service.requests('catalog').map((x) => x.status)).toEqual([200, 401, 200]);

      service.script.push(
        { route: 'catalog', status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } },
        {
          route: 'catalog',
          status: 401,
          headers: { 'www-authenticate': 'Bearer error="invalid_token", error_description="wrong audience"' },
        },
      );
      const twice = await h.run(['list']);
      expect(twice.code).toBe(EXIT_CODES.UNAUTHORIZED);
      expect(twice.stderr).toContain('401 invalid_token');
      expect(twice.stderr).toContain('wrong audience');
    });

    it('says the refresh token is expired, revoked or unknown on invalid_grant (exit 4) and forgets the cache', async () => {
      await h.run(['list']);
      clock.now += 2 * 3600_000;
      service.refreshTokens.clear();
      const r = await h.run(['list']);
      expect(r.code).toBe(EXIT_CODES.INVALID_GRANT);
      expect(r.stderr).toContain(INVALID_GRANT_MESSAGE);
      expect(INVALID_GRANT_MESSAGE).toBe(
        'your refresh token is expired, revoked or unknown: get a new one on the Programmatic page of the TRAQS website',
      );
      expect(readdirSync(h.cacheDir)).toEqual([]);
    });

    it('decides renewal from expires_in: a minute before, or a quarter of a short lifetime', () => {
      const hour = { value: 'a', obtainedAt: 0, expiresAt: 3600_000 };
      expect(needsRenewal(undefined, 0)).toBe(true);
      expect(needsRenewal(hour, 3600_000 - 61_000)).toBe(false);
      expect(needsRenewal(hour, 3600_000 - 60_000)).toBe(true);
      const short = { value: 'b', obtainedAt: 0, expiresAt: 3000 };
      expect(needsRenewal(short, 2000)).toBe(false);
      expect(needsRenewal(short, 2250)).toBe(true);
    });
  });

  describe('the refresh-token expiry warning', () => {
    it('warns from refresh_token_expires_in within 15 days, with the date', async () => {
      await service.close();
      h.close();
      service = await startFakeService({ now: () => clock.now, refreshTokenExpiresIn: 10 * 24 * 3600 });
      service.refreshTokens.add('rt-good');
      h = createClientHarness(service, clock);
      const r = await h.run(['list']);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(
        'your refresh token expires within 15 days (on 2026-12-14 12:00 UTC): get a new one on the Programmatic page',
      );
      // The cached token carries the date: the next run warns too, without asking the token endpoint.
      const again = await h.run(['list']);
      expect(again.stderr).toContain('expires within 15 days');
      expect(service.requests('token')).toHaveLength(1);
    });

    it('warns from the x-refresh-token-expires-at header', async () => {
      await service.close();
      h.close();
      service = await startFakeService({ now: () => clock.now, refreshTokenExpiresAtHeader: '2026-12-10T08:00:00Z' });
      service.refreshTokens.add('rt-good');
      h = createClientHarness(service, clock);
      const r = await h.run(['list', '--no-token-cache']);
      expect(r.stderr).toContain('expires within 15 days (on 2026-12-10 08:00 UTC)');
    });

    it('stays quiet with more than 15 days left or when the service says nothing', () => {
      expect(refreshTokenWarning(START + 16 * DAY, START)).toBeUndefined();
      expect(refreshTokenWarning(undefined, START)).toBeUndefined();
      expect(refreshTokenWarning(START + 15 * DAY, START)).toContain('2026-12-19');
      const both = parseTokenAnswer(
        { access_token: 'x', token_type: 'Bearer', expires_in: 3600, refresh_token_expires_in: 60 },
        new Headers({ 'x-refresh-token-expires-at': '2027-01-01T00:00:00Z' }),
        START,
      );
      expect(both.refreshTokenExpiresAt).toBe(START + 60_000);
    });
  });

  describe('refusals: one message and one exit code each', () => {
    const cases: [string, { status: number; body?: unknown; headers?: Record<string, string> }, number, string][] = [
      [
        '400',
        { status: 400, body: { error: 'invalid_request', error_description: 'date must be YYYY-MM-DD' } },
        EXIT_CODES.BAD_REQUEST,
        'incomplete or invalid (400 invalid_request) (date must be YYYY-MM-DD)',
      ],
      [
        '403 app_not_assigned',
        { status: 403, body: { error: 'app_not_assigned', error_description: 'Contact NASDAQ Tech Support.' } },
        EXIT_CODES.FORBIDDEN,
        'App not assigned (403 app_not_assigned)',
      ],
      [
        '403 not_entitled',
        { status: 403, body: { error: 'not_entitled', error_description: 'Not entitled to facility ADF' } },
        EXIT_CODES.FORBIDDEN,
        'you are not entitled to the file catalog (403 not_entitled)',
      ],
      [
        '403 insufficient_scope',
        {
          status: 403,
          body: { error: 'insufficient_scope', error_description: 'the access token lacks the download scope' },
        },
        EXIT_CODES.FORBIDDEN,
        'refused access to the file catalog (403 insufficient_scope) (the access token lacks the download scope)',
      ],
      [
        '404',
        { status: 404, body: { error: 'not_found', error_description: 'no such path' } },
        EXIT_CODES.NOT_FOUND,
        'not found (404): no such path; check --base-url',
      ],
      ['500', { status: 500, body: { error: 'server_error' } }, EXIT_CODES.UNEXPECTED, 'failed (500)'],
    ];
    it.each(cases)('%s', async (_name, answer, code, message) => {
      service.script.push({ route: 'catalog', ...answer });
      const r = await h.run(['list']);
      expect(r.code).toBe(code);
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });

    it('waits as long as a 429 says (Retry-After), then goes on', async () => {
      service.script.push(
        { route: 'catalog', status: 429, headers: { 'retry-after': '7' } },
        { route: 'catalog', status: 429, headers: { 'retry-after': '3' } },
      );
      const r = await h.run(['list']);
      expect(r.code).toBe(0);
      expect(h.sleeps).toEqual([7000, 3000]);
      expect(r.stderr).toContain('waiting 7 s as it asks');
    });

    it('gives up after three 429 answers (exit 9), and at once when asked to wait too long', async () => {
      for (let i = 0; i < 4; i++)
        service.script.push({ route: 'catalog', status: 429, headers: { 'retry-after': '2' } });
      const r = await h.run(['list']);
      expect(r.code).toBe(EXIT_CODES.RATE_LIMITED);
      expect(h.sleeps).toEqual([2000, 2000, 2000]);
      expect(r.stderr).toContain('limiting requests (429)');
      service.script.length = 0;
      service.script.push({ route: 'catalog', status: 429, headers: { 'retry-after': '3600' } });
      const long = await h.run(['list']);
      expect(long.code).toBe(EXIT_CODES.RATE_LIMITED);
      expect(long.stderr).toContain('asks to wait 60 min');
      expect(h.sleeps).toHaveLength(3);
    });

    it('retries a 503 and a token endpoint that cannot be reached, then says so (exit 11)', async () => {
      service.script.push({ route: 'catalog', status: 503, headers: { 'retry-after': '4' } });
      expect((await h.run(['list'])).code).toBe(0);
      expect(h.sleeps).toEqual([4000]);
      const r = await h.run(['list', '--no-token-cache'], { env: { TRAQS_BASE_URL: 'http://127.0.0.1:9' } });
      expect(r.code).toBe(EXIT_CODES.NETWORK);
      expect(r.stderr).toContain('cannot reach http://127.0.0.1:9');
    });

    it('tells other refusals of the token endpoint from invalid_grant', async () => {
      service.script.push({ route: 'token', status: 400, body: { error: 'invalid_client', error_description: 'x' } });
      const r = await h.run(['list']);
      expect(r.code).toBe(EXIT_CODES.BAD_REQUEST);
      expect(r.stderr).toContain('the token endpoint refused the request (400 invalid_client)');
      const wrong = await h.run(['list'], { env: { TRAQS_BASE_URL: `${service.url}/wrong` } });
      expect(wrong.code).toBe(EXIT_CODES.NOT_FOUND);
      expect(wrong.stderr).toContain('no token endpoint at');
    });

    it('parses Retry-After as seconds or an HTTP date', () => {
      expect(parseRetryAfter('120', START)).toBe(120_000);
      expect(parseRetryAfter(new Date(START + 30_000).toUTCString(), START)).toBe(30_000);
      expect(parseRetryAfter('soon', START)).toBeUndefined();
      expect(parseRetryAfter(null, START)).toBeUndefined();
    });
  });

  describe('list', () => {
    it('prints a table of facility, file, date, size and records', async () => {
      const r = await h.run(['list']);
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^FACILITY\s+FILE\s+DATE\s+SIZE\s+RECORDS$/);
      expect(lines).toHaveLength(4);
      expect(r.stdout).toMatch(/TRACE-CA\s+CAMASTER\s+2026-12-04\s+2\.0 MiB\s+9/);
    });

    it('filters by facility (asking the service for that facility) and keeps the newest with --latest', async () => {
      const r = await h.run(['list', '--facility', 'orf', '--latest', '--json']);
      const body = JSON.parse(r.stdout) as { files: { date: string; sha256: string }[] };
      expect(body.files.map((f) => f.date)).toEqual(['2026-12-04']);
      expect(body.files[0]?.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(service.requests('catalog')[0]?.path).toBe('/v1/files?facility=ORF');
    });

    it('formats an empty catalog and sorts by facility, file, newest date', () => {
      expect(formatCatalogTable([])).toBe('No files.');
      const e = (facility: string, date: string) => ({
        facility,
        file: 'F',
        date,
        size: 1,
        sha256: '',
        records: 0,
        url: '',
      });
      expect(filterCatalog([e('B', '2026-01-01'), e('A', '2026-01-01'), e('A', '2026-02-01')], {})).toEqual([
        e('A', '2026-02-01'),
        e('A', '2026-01-01'),
        e('B', '2026-01-01'),
      ]);
    });
  });

  describe('usage', () => {
    it('answers --help and --version with exit 0, and a wrong command with exit 2', async () => {
      const help = await h.run(['--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('Exit codes:');
      expect(help.stdout).not.toContain('--refresh-token <');
      expect((await h.run(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
      expect((await h.run(['fetch'])).code).toBe(EXIT_CODES.USAGE);
      expect((await h.run(['get', 'ORF', 'EQUITYMASTERAC', '--date', '2026-02-30'])).code).toBe(EXIT_CODES.USAGE);
      expect((await h.run([])).code).toBe(EXIT_CODES.USAGE);
      expect(service.log).toHaveLength(0);
    });
  });
});
