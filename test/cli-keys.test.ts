import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/product-process.ts';

/**
 * `npx traqs keys rotate|list` as an operator runs them: rotation adds new active keys and keeps
 * the previous ones verifying until their retire time (the longest signed token plus a margin).
 */

const run = promisify(execFile);
let dataDir: string;

/** Runs `traqs …` against a fresh data directory; never throws. */
async function traqs(...args: string[]) {
  try {
    const r = await run(process.execPath, [join(repoRoot, 'bin/traqs.js'), ...args], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        TRAQS_DATA_DIR: dataDir,
        TRAQS_LOG_LEVEL: 'error',
      },
    });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? 1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

interface RotatedView {
  alg: string;
  kid: string;
  retiringKid: string | null;
  retireAfter: string | null;
}
interface KeyView {
  kid: string;
  alg: string;
  status: string;
  created: string;
  retireAfter: string | null;
}

/** Each run starts tsx and transpiles the CLI: seconds each on a small, busy machine. */
const CLI_TEST_TIMEOUT = 120_000;

const KID = /^[A-Za-z0-9_-]{43}$/;
/** 60-minute access and ID tokens plus the 5-minute margin (src/oauth/lifetimes.ts). */
const RETIRE_WINDOW_MS = 65 * 60_000;

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'traqs-cli-keys-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('npx traqs keys', () => {
  it(
    'is listed in --help with both subcommands',
    async () => {
      expect((await traqs('--help')).out).toContain('keys');
      const help = await traqs('keys', '--help');
      expect(help.out).toContain('rotate');
      expect(help.out).toContain('list');
      expect((await traqs('keys', 'rotate', '--help')).out).toContain('--env');
    },
    CLI_TEST_TIMEOUT,
  );

  it(
    'lists nothing before the first start, and refuses an unknown environment with exit code 2',
    async () => {
      const empty = await traqs('keys', 'list', '--env', 'ntf');
      expect(empty.code).toBe(0);
      expect(empty.out).toContain('No signing keys');
      expect(JSON.parse((await traqs('keys', 'list', '--json')).out)).toEqual([]);
      const unknown = await traqs('keys', 'rotate', '--env', 'staging');
      expect(unknown.code).toBe(2);
      expect(unknown.err).toContain('Unknown environment "staging"');
    },
    CLI_TEST_TIMEOUT,
  );

  it(
    'rotates: new active ES256 and RS256 keys, the previous ones retiring until their retire time',
    async () => {
      const first = await traqs('keys', 'rotate', '--env', 'ntf', '--json');
      expect(first.code).toBe(0);
      const created = JSON.parse(first.out) as RotatedView[];
      expect(created.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
      for (const k of created) {
        expect(k.kid).toMatch(KID);
        expect(k.retiringKid).toBeNull();
      }

      const before = Date.now();
      const second = await traqs('keys', 'rotate', '--env', 'ntf');
      const after = Date.now();
      expect(second.code).toBe(0);
      for (const k of created) {
        expect(second.out).toContain(`${k.alg}  new active key`);
        expect(second.out).toContain(`previous key ${k.kid} keeps verifying until`);
      }
      const retireTimes = [...second.out.matchAll(/keeps verifying until (\S+)/g)].map((m) => Date.parse(m[1] ?? ''));
      expect(retireTimes).toHaveLength(2);
      for (const t of retireTimes) {
        expect(t).toBeGreaterThanOrEqual(before + RETIRE_WINDOW_MS - 1000);
        expect(t).toBeLessThanOrEqual(after + RETIRE_WINDOW_MS);
      }

      const listed = JSON.parse((await traqs('keys', 'list', '--env', 'ntf', '--json')).out) as KeyView[];
      expect(listed).toHaveLength(4);
      for (const alg of ['ES256', 'RS256']) {
        const ofAlg = listed.filter((k) => k.alg === alg);
        expect(ofAlg.map((k) => k.status)).toEqual(['active', 'retiring']);
        expect(ofAlg[0]?.retireAfter).toBeNull();
        expect(ofAlg[1]?.kid).toBe(created.find((k) => k.alg === alg)?.kid);
        expect(Date.parse(ofAlg[1]?.retireAfter ?? '')).toBe(retireTimes[0]);
      }

      const table = (await traqs('keys', 'list')).out.trim().split('\n');
      expect(table[0]).toMatch(/^KID\s+ALG\s+STATUS\s+CREATED\s+RETIRE_AFTER$/);
      expect(table).toHaveLength(5);
      for (const k of listed) {
        expect(table.some((line) => line.startsWith(k.kid) && line.includes(k.status) && line.includes(k.alg))).toBe(
          true,
        );
      }
    },
    CLI_TEST_TIMEOUT,
  );
});
