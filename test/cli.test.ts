import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/product-process.ts';

const run = promisify(execFile);
let dataDir: string;

/** Runs `traqs …` as a user would, against a fresh data directory; never throws. */
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

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'traqs-cli-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('npx traqs', () => {
  it('lists every command in --help and has --help on each', async () => {
    const help = await traqs('--help');
    for (const c of ['serve', 'migrate', 'firm', 'user', 'reports']) expect(help.out).toContain(c);
    const create = await traqs('user', 'create', '--help');
    expect(create.out).toContain('--email');
    expect(create.out).toContain('--firm');
  });

  // Eight real CLI processes, each loading the TypeScript sources through tsx: seconds apiece on a
  // busy 2-core machine.
  it('provisions a user, shows them, re-sends enrollment and refuses bad input with exit code 2', async () => {
    const created = await traqs(
      'user',
      'create',
      '--env',
      'ntf',
      '--email',
      'Cli.User@Acme.example',
      '--first',
      'Cli',
      '--last',
      'User',
      '--firm',
      'Acme CLI',
      '--create-firm',
      '--role',
      'saa',
      '--app',
      'download',
      '--json',
    );
    expect(created.code).toBe(0);
    const made = JSON.parse(created.out) as { login: string; status: string };
    expect(made).toMatchObject({ login: 'cli.user@acme.example', status: 'PROVISIONED' });

    const shown = JSON.parse((await traqs('user', 'show', '--env', 'ntf', 'cli.user@acme.example', '--json')).out);
    expect(shown).toMatchObject({
      firm: 'Acme CLI',
      roles: ['saa', 'user'],
      apps: ['download'],
      status: 'PROVISIONED',
    });

    const listed = await traqs('user', 'list', '--env', 'ntf', '--firm', 'Acme CLI');
    expect(listed.out).toContain('cli.user@acme.example');

    const again = await traqs('user', 'resend-enrollment', '--env', 'ntf', 'cli.user@acme.example');
    expect(again.code).toBe(0);
    expect(again.out).toContain('The previous link no longer works');

    const dup = await traqs(
      'user',
      'create',
      '--email',
      'cli.user@acme.example',
      '--first',
      'A',
      '--last',
      'B',
      '--firm',
      'Acme CLI',
    );
    expect(dup.code).toBe(2);
    expect(dup.err).toContain('already exists');
    const badRole = await traqs(
      'user',
      'create',
      '--email',
      'x@acme.example',
      '--first',
      'A',
      '--last',
      'B',
      '--firm',
      'Acme CLI',
      '--role',
      'root',
    );
    expect(badRole.code).not.toBe(0);
    expect(badRole.err).toContain('unknown role "root"');
    const unlock = await traqs('user', 'unlock', 'cli.user@acme.example');
    expect(unlock.code).toBe(2);
    expect(unlock.err).toContain('is not locked');
    expect((await traqs('reports', 'list')).out).toContain('No open reports.');
  }, 120_000);
});
