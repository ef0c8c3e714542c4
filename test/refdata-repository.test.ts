import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { NewUser } from '../src/accounts/repository.ts';
import type { Store } from '../src/db/store.ts';
import { addDays } from '../src/refdata/business-days.ts';
import { RETENTION_DAYS } from '../src/refdata/facilities.ts';
import { createFileStore, type FileStore } from '../src/refdata/file-store.ts';
import type { ReferenceFileRow } from '../src/refdata/repository.ts';
import { pruneExpiredFiles, retentionCutoff } from '../src/refdata/retention.ts';
import { createRefdataService } from '../src/refdata/service.ts';
import { describeEachBackend } from './helpers/databases.ts';

/**
 * The reference-data catalog and entitlements behave the same on SQLite and PostgreSQL
 * (CONVENTIONS §4), and the rolling-year clean-up is safe on every node at once.
 */

const NOW = Date.parse('2026-12-04T12:00:00Z');
const TODAY = '2026-12-04';

function fileRow(overrides: Partial<ReferenceFileRow> = {}): ReferenceFileRow {
  const date = overrides.date ?? TODAY;
  const facility = overrides.facility ?? 'ORF';
  const file = overrides.file ?? 'EQUITYMASTERAC';
  return {
    id: `ref_${randomBytes(12).toString('hex')}`,
    facility,
    file,
    date,
    path: `${facility}/${file}/${date}.txt`,
    size: 1234,
    sha256: 'ab'.repeat(32),
    records: 10,
    created_at: NOW,
    ...overrides,
  };
}

async function seedUser(store: Store, login = `u${randomBytes(4).toString('hex')}@example.com`): Promise<string> {
  const firm = {
    id: `00f${randomBytes(8).toString('hex')}`,
    name: `Firm ${randomBytes(4).toString('hex')}`,
    created_at: NOW,
  };
  await store.repos.firms.createFirm(firm);
  const user: NewUser = {
    id: `00u${randomBytes(8).toString('hex')}`,
    firm_id: firm.id,
    login,
    email: login,
    first_name: 'Ada',
    last_name: 'Lovelace',
    mobile_phone: null,
    primary_phone: null,
    preferences: '{}',
    status: 'ACTIVE',
    auth_mode: 'local',
    password_hash: null,
    password_changed_at: null,
    recovery_question: null,
    recovery_answer_hash: null,
    failed_attempts: 0,
    lockout_count: 0,
    locked_at: null,
    last_login_at: null,
    last_factor_type: null,
    created_at: NOW,
    activated_at: null,
    status_changed_at: NOW,
  };
  await store.repos.users.createUser(user);
  return user.id;
}

describeEachBackend('reference-data catalog', (backend) => {
  it('upserts one entry per facility, file and date, the newest replacing the old', async () => {
    const repo = backend.store().repos.refdata;
    expect(await repo.hasFiles()).toBe(false);
    const first = fileRow();
    await repo.upsertFile(first);
    expect(await repo.hasFiles()).toBe(true);
    const second = fileRow({ size: 99, sha256: 'cd'.repeat(32), records: 3, created_at: NOW + 1 });
    await repo.upsertFile(second);
    const found = await repo.findFile('ORF', 'EQUITYMASTERAC', TODAY);
    expect(found).toEqual({ ...second, size: 99 });
    expect(Number(found?.size)).toBe(99);
    expect(await repo.listFiles()).toHaveLength(1);
  });

  it('finds the latest file when no date is given, and lists by facility, newest first', async () => {
    const repo = backend.store().repos.refdata;
    for (const date of ['2026-12-02', '2026-12-04', '2026-12-03']) await repo.upsertFile(fileRow({ date }));
    await repo.upsertFile(fileRow({ facility: 'ADF', file: 'ADFEQUITYMASTER' }));
    expect((await repo.findFile('ORF', 'EQUITYMASTERAC'))?.date).toBe('2026-12-04');
    expect(await repo.findFile('ORF', 'EQUITYMASTERAC', '2026-11-30')).toBeUndefined();
    const orf = await repo.listFiles({ facilities: ['ORF'] });
    expect(orf.map((r) => r.date)).toEqual(['2026-12-04', '2026-12-03', '2026-12-02']);
    expect(await repo.listFiles({ facilities: [] })).toEqual([]);
    expect((await repo.listFiles({ since: '2026-12-03' })).map((r) => `${r.facility} ${r.date}`)).toEqual([
      'ADF 2026-12-04',
      'ORF 2026-12-04',
      'ORF 2026-12-03',
    ]);
    expect((await repo.listFilesBefore('2026-12-03')).map((r) => r.date)).toEqual(['2026-12-02']);
  });

  it('deletes an entry once: a second delete (another node) reports false', async () => {
    const repo = backend.store().repos.refdata;
    const row = fileRow();
    await repo.upsertFile(row);
    const [a, b] = await Promise.all([
      repo.deleteFile(row.id),
      backend.connectAgain().repos.refdata.deleteFile(row.id),
    ]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    expect(await repo.hasFiles()).toBe(false);
  });

  it('grants, lists and revokes entitlements per user and facility', async () => {
    const store = backend.store();
    const repo = store.repos.refdata;
    const ada = await seedUser(store);
    const bob = await seedUser(store);
    expect(await repo.grantEntitlement(ada, 'TRACE-CA', NOW)).toBe(true);
    expect(await repo.grantEntitlement(ada, 'ORF', NOW)).toBe(true);
    expect(await repo.grantEntitlement(ada, 'ORF', NOW + 5)).toBe(false);
    expect(await repo.grantEntitlement(bob, 'ADF', NOW)).toBe(true);
    expect(await repo.listEntitlements(ada)).toEqual(['ORF', 'TRACE-CA']);
    expect(await repo.revokeEntitlement(ada, 'ORF')).toBe(true);
    expect(await repo.revokeEntitlement(ada, 'ORF')).toBe(false);
    expect(await repo.listEntitlements(ada)).toEqual(['TRACE-CA']);
    expect(await repo.listEntitlements(bob)).toEqual(['ADF']);
  });

  it('audits each entitlement change once, in the same transaction', async () => {
    const store = backend.store();
    const ada = await seedUser(store);
    const service = createRefdataService({ store, files: {} as FileStore, clock: () => NOW });
    const cli = { actorId: null, via: 'cli' };
    expect(await service.grantEntitlements(ada, ['ORF', 'ADF'], cli)).toEqual(['ORF', 'ADF']);
    expect(await service.grantEntitlements(ada, ['ORF', 'TRACE-SP'], cli)).toEqual(['TRACE-SP']);
    expect(await service.revokeEntitlements(ada, ['ADF', 'TRACE-CA'], cli)).toEqual(['ADF']);
    const events = await store.repos.audit.listEvents({ targetId: ada });
    expect(events.map((e) => `${e.action} ${JSON.parse(e.details).facility}`).reverse()).toEqual([
      'entitlement.grant ORF',
      'entitlement.grant ADF',
      'entitlement.grant TRACE-SP',
      'entitlement.revoke ADF',
    ]);
    expect(events.every((e) => e.actor_id === null && JSON.parse(e.details).via === 'cli')).toBe(true);
  });
});

describeEachBackend('rolling-year retention', (backend) => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'traqs-retention-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const filesOf = (store: Store): FileStore =>
    createFileStore({ dir: join(root, 'files'), repo: store.repos.refdata, clock: () => NOW, random: randomBytes });
  const put = (files: FileStore, date: string) =>
    files.put({ facility: 'ORF', file: 'EQUITYMASTERAC', date }, [Buffer.from(`A|B\n${date}|1\n`)]);
  const onDisk = () => readdirSync(join(root, 'files', 'ORF', 'EQUITYMASTERAC')).sort();

  it('keeps one rolling year and deletes older entries and files, idempotently', async () => {
    const store = backend.store();
    const files = filesOf(store);
    const cutoff = retentionCutoff(NOW);
    expect(cutoff).toBe(addDays(TODAY, -RETENTION_DAYS));
    for (const date of [addDays(cutoff, -30), addDays(cutoff, -1), cutoff, TODAY]) await put(files, date);
    const first = await pruneExpiredFiles({ store: files, repo: store.repos.refdata, now: NOW });
    expect(first.cutoff).toBe(cutoff);
    expect(first.deleted.map((r) => r.date).sort()).toEqual([addDays(cutoff, -30), addDays(cutoff, -1)]);
    expect(first.removedFiles).toBe(2);
    expect((await store.repos.refdata.listFiles()).map((r) => r.date)).toEqual([TODAY, cutoff]);
    expect(onDisk()).toEqual([`${cutoff}.txt`, `${TODAY}.txt`]);
    const again = await pruneExpiredFiles({ store: files, repo: store.repos.refdata, now: NOW });
    expect(again).toEqual({ cutoff, deleted: [], removedFiles: 0 });
  });

  it('runs on two nodes at once: each entry is deleted once, every expired file goes', async () => {
    const store = backend.store();
    const other = backend.connectAgain();
    const files = filesOf(store);
    const old = Array.from({ length: 12 }, (_, i) => addDays(retentionCutoff(NOW), -1 - i));
    for (const date of [...old, TODAY]) await put(files, date);
    const [a, b] = await Promise.all([
      pruneExpiredFiles({ store: files, repo: store.repos.refdata, now: NOW }),
      pruneExpiredFiles({ store: filesOf(other), repo: other.repos.refdata, now: NOW }),
    ]);
    const deleted = [...a.deleted, ...b.deleted].map((r) => r.date).sort();
    expect(deleted).toEqual([...old].sort());
    expect(a.removedFiles + b.removedFiles).toBe(old.length);
    expect(onDisk()).toEqual([`${TODAY}.txt`]);
  });

  it('sweeps expired files the catalog no longer lists and temporary files of crashed writes', async () => {
    const store = backend.store();
    const files = filesOf(store);
    await put(files, TODAY);
    const dir = join(root, 'files', 'ORF', 'EQUITYMASTERAC');
    mkdirSync(dir, { recursive: true });
    const expired = `${addDays(retentionCutoff(NOW), -3)}.txt`;
    for (const name of [expired, '.2026-12-04.txt.dead.tmp', '.2026-12-04.txt.live.tmp', 'README']) {
      writeFileSync(join(dir, name), 'x');
    }
    const twoHoursAgo = (NOW - 2 * 3600_000) / 1000;
    utimesSync(join(dir, '.2026-12-04.txt.dead.tmp'), twoHoursAgo, twoHoursAgo);
    const minuteAgo = (NOW - 60_000) / 1000;
    utimesSync(join(dir, '.2026-12-04.txt.live.tmp'), minuteAgo, minuteAgo);
    const r = await pruneExpiredFiles({ store: files, repo: store.repos.refdata, now: NOW });
    expect(r.removedFiles).toBe(2);
    expect(onDisk()).toEqual(['.2026-12-04.txt.live.tmp', `${TODAY}.txt`, 'README']);
  });
});
