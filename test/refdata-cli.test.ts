import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EnvironmentRuntime, openEnvironment } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { addDays } from '../src/refdata/business-days.ts';
import { registerDataCommands } from '../src/refdata/cli.ts';
import { openFileStore } from '../src/refdata/file-store.ts';
import type { ReferenceFileRow } from '../src/refdata/repository.ts';
import { retentionCutoff } from '../src/refdata/retention.ts';
import { ensureSampleData } from '../src/refdata/sample-data.ts';

/**
 * `traqs data …` and `traqs entitlement …` through `registerDataCommands` on a commander program,
 * each command opening and closing the environment as the real CLI does (src/cli/main.ts does not
 * register them yet, so the module is tested directly).
 */

const NOW = Date.parse('2026-12-04T15:00:00Z');
let dataDir: string;
let config: ReturnType<typeof loadConfig>;

const open = async (envId: string): Promise<EnvironmentRuntime> => {
  const environment = config.environments.find((e) => e.id === envId);
  if (!environment) throw new Error(`Unknown environment "${envId}"`);
  return openEnvironment(config, environment, { logger: pino({ level: 'silent' }), clock: () => NOW });
};

async function withRuntime<T>(work: (rt: EnvironmentRuntime) => Promise<T>): Promise<T> {
  const rt = await open('ntf');
  try {
    return await work(rt);
  } finally {
    await rt.close();
  }
}

/** Runs `traqs <args>`; never throws for a usage error. */
async function traqs(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  let code = 0;
  const program = new Command('traqs').exitOverride();
  program.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  registerDataCommands(program, open, {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    setExitCode: (c) => {
      code = c;
    },
  });
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (error) {
    code = (error as { exitCode?: number }).exitCode ?? 1;
  }
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const auditActions = (action: string) => withRuntime((rt) => rt.store.repos.audit.listEvents({ action, limit: 1000 }));

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'traqs-refdata-cli-'));
  config = loadConfig({ TRAQS_DATA_DIR: dataDir, TRAQS_ENVIRONMENTS: 'ntf' }, { logLevel: 'silent' });
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('traqs data', () => {
  it('lists its commands in --help', async () => {
    const help = await traqs('data', '--help');
    for (const c of ['generate', 'import', 'list', 'prune']) expect(help.out).toContain(c);
    expect((await traqs('entitlement', '--help')).out).toMatch(/grant[\s\S]*revoke[\s\S]*list/);
  });

  it('generates every file for N business days ending today, and lists them', async () => {
    const r = await traqs('data', 'generate', '--days', '2');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/Generated 20 file\(s\) in .*files[/\\]ntf/);
    expect(r.out).toContain('TRACE-CA   CAMASTER         2026-12-04       5000 rows');
    const listed = await traqs('data', 'list', '--json');
    const rows = JSON.parse(listed.out) as ReferenceFileRow[];
    expect(rows).toHaveLength(20);
    expect(new Set(rows.map((x) => x.date))).toEqual(new Set(['2026-12-03', '2026-12-04']));
    const one = rows.find((x) => x.file === 'TSYMASTER' && x.date === '2026-12-04') as ReferenceFileRow;
    const bytes = readFileSync(join(dataDir, 'files', 'ntf', one.path));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(one.sha256);
    const events = await auditActions('refdata.file.generate');
    expect(events).toHaveLength(20);
    expect(events.every((e) => e.actor_id === null && JSON.parse(e.details).via === 'cli')).toBe(true);

    const orf = await traqs('data', 'list', '--facility', 'orf', '--date', '2026-12-03');
    expect(orf.out.trim().split('\n')).toHaveLength(2);
    expect(orf.out).toContain('EQUITYMASTERIN');
  });

  it('generates one file of a chosen size, the same bytes as before for the same day', async () => {
    const before = JSON.parse((await traqs('data', 'list', '--facility', 'ADF', '--date', '2026-12-04', '--json')).out);
    const r = await traqs('data', 'generate', '--facility', 'ADF', '--file', 'adfequitymaster', '--date', '2026-12-06');
    expect(r.code).toBe(0);
    expect(r.out).toContain('ADF        ADFEQUITYMASTER  2026-12-04');
    const after = JSON.parse((await traqs('data', 'list', '--facility', 'ADF', '--date', '2026-12-04', '--json')).out);
    const sha = (rows: ReferenceFileRow[]) => rows.find((x) => x.file === 'ADFEQUITYMASTER')?.sha256;
    expect(sha(after)).toBe(sha(before));
    const small = await traqs(
      'data',
      'generate',
      '--facility',
      'ADF',
      '--file',
      'ADFEQUITYMASTER',
      '--rows',
      '50',
      '--json',
    );
    expect(JSON.parse(small.out)[0]).toMatchObject({ records: 50, date: '2026-12-04' });
  });

  it('refuses bad input with exit code 2 and a clear message', async () => {
    const cases: [string[], RegExp][] = [
      [['--facility', 'NYSE'], /Unknown facility "NYSE" \(one of: TRACE-TSY, TRACE-CA, TRACE-SP, ORF, ADF\)/],
      [
        ['--facility', 'ORF', '--file', 'CAMASTER'],
        /Unknown file "CAMASTER" for ORF \(one of: EQUITYMASTERAC, EQUITYMASTERIN\)/,
      ],
      [['--file', 'CAMASTER'], /--file needs --facility/],
      [['--date', '2026-02-30'], /Invalid date "2026-02-30"/],
      [['--date', '2025-06-02'], /older than the 366-day retention/],
      [['--days', 'two'], /--days must be a whole number/],
      [['--days', '0'], /--days must be from 1 to 400/],
      [['--rows', '-5'], /--rows must be a whole number/],
      [['--rows', '0'], /Invalid row count/],
    ];
    for (const [args, message] of cases) {
      const r = await traqs('data', 'generate', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(/^traqs: /);
      expect(r.err).toMatch(message);
    }
  });

  it('imports a real file, refusing bad ones with exit code 2', async () => {
    const good = join(dataDir, 'orf-active.txt');
    writeFileSync(good, 'SYMBOL|CUSIP|ISSUE_NAME\nAAPL|037833100|Apple Inc\n');
    const r = await traqs(
      'data',
      'import',
      '--facility',
      'ORF',
      '--file',
      'EQUITYMASTERAC',
      '--date',
      '2026-11-27',
      good,
      '--json',
    );
    expect(r.code).toBe(0);
    const row = JSON.parse(r.out) as ReferenceFileRow;
    expect(row).toMatchObject({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-11-27', records: 1 });
    const [event] = await auditActions('refdata.file.import');
    expect(event?.target_id).toBe(row.id);
    expect(JSON.parse(event?.details ?? '{}')).toMatchObject({ source: good, sha256: row.sha256, via: 'cli' });

    const bad = join(dataDir, 'bad.txt');
    writeFileSync(bad, 'SYMBOL,CUSIP\nAAPL,037833100\n');
    const refused = await traqs(
      'data',
      'import',
      '--facility',
      'ORF',
      '--file',
      'EQUITYMASTERAC',
      '--date',
      '2026-11-26',
      bad,
    );
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/traqs: The header line "SYMBOL,CUSIP" has no "\|"/);
    const missing = await traqs(
      'data',
      'import',
      '--facility',
      'ORF',
      '--file',
      'EQUITYMASTERAC',
      '--date',
      '2026-11-26',
    );
    expect(missing.code).not.toBe(0);
  });

  it('prunes files older than a year, auditing each', async () => {
    const old = addDays(retentionCutoff(NOW), -1);
    const planted = await withRuntime((rt) =>
      openFileStore(rt).put({ facility: 'ADF', file: 'ADFDAILYLIST', date: old }, [Buffer.from('A|B\n1|2\n')]),
    );
    const r = await traqs('data', 'prune');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`Deleted 1 catalog entry dated before ${retentionCutoff(NOW)}; removed 1 file(s).`);
    const [event] = await auditActions('refdata.file.delete');
    expect(event?.target_id).toBe(planted.id);
    expect((await traqs('data', 'prune')).out).toMatch(/^Deleted 0 catalog entries/);
  });
});

describe('traqs entitlement', () => {
  let login: string;
  beforeAll(async () => {
    login = await withRuntime(async (rt) => {
      const firm = await rt.accounts.createFirm('Entitled Securities');
      if (!firm.ok) throw new Error(firm.message);
      const made = await rt.accounts.provisionUser({
        email: 'Quant@Entitled.example',
        firstName: 'Q',
        lastName: 'Uant',
        firmId: firm.firm.id,
        apps: ['portal'],
      });
      if (!made.ok) throw new Error(made.message);
      return made.user.login;
    });
  });

  it('grants, lists and revokes facilities per user, auditing each change', async () => {
    const granted = await traqs(
      'entitlement',
      'grant',
      '--user',
      'quant@entitled.example',
      '--facility',
      'ORF',
      '--facility',
      'trace-ca',
    );
    expect(granted.code).toBe(0);
    expect(granted.out).toContain(`Granted ${login}: ORF, TRACE-CA.`);
    expect(granted.out).toContain('has no download app assignment');
    const list = await traqs('entitlement', 'list', '--user', login, '--json');
    expect(JSON.parse(list.out)).toEqual({ user: login, facilities: ['ORF', 'TRACE-CA'] });

    const all = await traqs('entitlement', 'grant', '--user', login, '--all');
    expect(all.out).toContain(`Granted ${login}: TRACE-TSY, TRACE-SP, ADF. Already held: TRACE-CA, ORF.`);
    const revoked = await traqs('entitlement', 'revoke', '--user', login, '--facility', 'ORF');
    expect(revoked.out).toBe(`Revoked from ${login}: ORF.`);
    expect((await traqs('entitlement', 'list', '--user', login)).out).toBe(
      `${login}: ADF, TRACE-CA, TRACE-SP, TRACE-TSY`,
    );
    expect((await traqs('entitlement', 'revoke', '--user', login, '--facility', 'ORF')).out).toBe(
      `${login} had none of ORF.`,
    );

    const grants = await auditActions('entitlement.grant');
    const revokes = await auditActions('entitlement.revoke');
    expect(grants).toHaveLength(5);
    expect(revokes).toHaveLength(1);
    expect(JSON.parse(revokes[0]?.details ?? '{}')).toEqual({ facility: 'ORF', via: 'cli' });
  });

  it('refuses unknown users and facilities, and ambiguous choices, with exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['grant', '--user', 'nobody@x.example', '--all'], /No user "nobody@x.example" in NTF/],
      [['grant', '--user', login, '--facility', 'NYSE'], /Unknown facility "NYSE" \(one of: TRACE-TSY/],
      [['revoke', '--user', login], /Give --facility <code> .* or --all/],
      [['grant', '--user', login, '--facility', 'ORF', '--all'], /not both/],
      [['list', '--user', 'nobody@x.example'], /No user "nobody@x.example"/],
    ];
    for (const [args, message] of cases) {
      const r = await traqs('entitlement', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(message);
    }
  });
});

describe('first start', () => {
  it('generates the last five business days of every file into an empty catalog, once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'traqs-refdata-first-'));
    try {
      const fresh = loadConfig({ TRAQS_DATA_DIR: dir, TRAQS_ENVIRONMENTS: 'ntf' }, { logLevel: 'silent' });
      const environment = fresh.environments[0];
      if (!environment) throw new Error('no environment');
      // Saturday: the five business days are Monday to Friday of that week.
      const saturday = Date.parse('2026-12-05T08:00:00Z');
      const rt = await openEnvironment(fresh, environment, {
        logger: pino({ level: 'silent' }),
        clock: () => saturday,
      });
      try {
        const started = performance.now();
        const made = await ensureSampleData(rt);
        const seconds = (performance.now() - started) / 1000;
        expect(made).toHaveLength(5 * 10);
        expect([...new Set(made.map((r) => r.date))]).toEqual([
          '2026-11-30',
          '2026-12-01',
          '2026-12-02',
          '2026-12-03',
          '2026-12-04',
        ]);
        // Fast enough for `npm start` (a few seconds, more on a busy test machine).
        expect(seconds).toBeLessThan(20);
        expect(await ensureSampleData(rt)).toEqual([]);
        expect(await rt.store.repos.refdata.listFiles()).toHaveLength(50);
      } finally {
        await rt.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
