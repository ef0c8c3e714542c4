import { expect, it } from 'vitest';
import { createBearerSecret, hashBearerSecret } from '../src/lib/tokens.ts';
import type { NewPortalSession } from '../src/portal/session-repository.ts';
import { createPortalSessionManager } from '../src/portal/sessions.ts';
import { describeEachBackend } from './helpers/databases.ts';

/**
 * The portal's session storage behaves the same on SQLite and PostgreSQL (CONVENTIONS.md §4), and
 * its manager keeps only hashes and honours both timeouts. Times are injected; nothing sleeps.
 */

const NOW = 1_750_000_000_000;
const MINUTE = 60_000;

function row(overrides: Partial<NewPortalSession> = {}): NewPortalSession {
  return {
    id_hash: hashBearerSecret(createBearerSecret()),
    user_id: '00uportaluser000001',
    amr: '["pwd","otp","mfa"]',
    created_at: NOW,
    last_seen_at: NOW,
    idle_expires_at: NOW + 60 * MINUTE,
    absolute_expires_at: NOW + 12 * 60 * MINUTE,
    ip: '203.0.113.7',
    user_agent: 'TraqsTest/1.0',
    revoked_at: null,
    ...overrides,
  };
}

describeEachBackend('portal sessions repository', (backend) => {
  it('finds a live session with the values it was created with, and not after either timeout', async () => {
    const repo = backend.store().repos.portalSessions;
    const r = row();
    await repo.create(r);
    expect(await repo.findActive(r.id_hash, NOW)).toStrictEqual({
      ...r,
      download_token_sealed: null,
      download_token_expires_at: null,
    });
    expect(await repo.findActive(r.id_hash, r.idle_expires_at)).toBeUndefined();
    const idleLonger = row({ idle_expires_at: NOW + 24 * 60 * MINUTE });
    await repo.create(idleLonger);
    expect(await repo.findActive(idleLonger.id_hash, idleLonger.absolute_expires_at)).toBeUndefined();
    expect(await repo.findActive(hashBearerSecret('nope'), NOW)).toBeUndefined();
  });

  it('slides the idle timeout of a live session only', async () => {
    const repo = backend.store().repos.portalSessions;
    const r = row();
    await repo.create(r);
    await repo.touch(r.id_hash, NOW + 30 * MINUTE, NOW + 90 * MINUTE);
    expect(await repo.findActive(r.id_hash, NOW + 80 * MINUTE)).toMatchObject({
      last_seen_at: NOW + 30 * MINUTE,
      idle_expires_at: NOW + 90 * MINUTE,
    });
    await repo.revoke(r.id_hash, NOW + 31 * MINUTE);
    await repo.touch(r.id_hash, NOW + 32 * MINUTE, NOW + 200 * MINUTE);
    expect(await repo.findActive(r.id_hash, NOW + 32 * MINUTE)).toBeUndefined();
  });

  it('revokes once, and all of a user’s sessions at once', async () => {
    const repo = backend.store().repos.portalSessions;
    const a = row();
    const b = row();
    const other = row({ user_id: '00uportaluser000002' });
    for (const r of [a, b, other]) await repo.create(r);
    expect(await repo.revoke(a.id_hash, NOW + 1)).toBe(true);
    expect(await repo.revoke(a.id_hash, NOW + 2)).toBe(false);
    expect(await repo.revokeAllOfUser(a.user_id, NOW + 3)).toBe(1);
    expect(await repo.findActive(b.id_hash, NOW + 4)).toBeUndefined();
    expect(await repo.findActive(other.id_hash, NOW + 4)).toBeDefined();
  });

  it('forgets sessions that ended before a moment, keeps the others', async () => {
    const repo = backend.store().repos.portalSessions;
    const ended = row({ revoked_at: NOW + MINUTE });
    const timedOut = row({ idle_expires_at: NOW + 2 * MINUTE });
    const live = row({ idle_expires_at: NOW + 60 * MINUTE });
    for (const r of [ended, timedOut, live]) await repo.create(r);
    expect(await repo.deleteEndedBefore(NOW + 10 * MINUTE)).toBe(2);
    expect(await repo.findActive(live.id_hash, NOW + 10 * MINUTE)).toBeDefined();
  });

  it('the manager stores only the hash of a 256-bit id and honours idle and absolute timeouts', async () => {
    const store = backend.store();
    let now = NOW;
    const manager = createPortalSessionManager(
      store,
      { idleMinutes: 60, absoluteHours: 2 },
      () => now,
      (size) => Buffer.alloc(size, 7),
    );
    const { id, row: created } = await manager.create('00uportaluser000001', ['pwd', 'otp', 'mfa'], {
      ip: '203.0.113.7',
      userAgent: 'x'.repeat(600),
    });
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.id_hash).toBe(hashBearerSecret(id));
    expect(created.user_agent).toHaveLength(512);
    expect(JSON.stringify(created)).not.toContain(id);

    now += 59 * MINUTE;
    expect(await manager.resume(id)).toBeDefined();
    now += 59 * MINUTE; // idle window slid forward by the last request
    expect(await manager.resume(id)).toBeDefined();
    now += 3 * MINUTE; // past the absolute two hours
    expect(await manager.resume(id)).toBeUndefined();

    expect(await manager.resume(undefined)).toBeUndefined();
    expect(await manager.resume('x'.repeat(101))).toBeUndefined();
  });

  it('the manager ends a session by its cookie value', async () => {
    const store = backend.store();
    const manager = createPortalSessionManager(
      store,
      { idleMinutes: 60, absoluteHours: 12 },
      () => NOW,
      (size) => Buffer.alloc(size, 9),
    );
    const { id } = await manager.create('00uportaluser000001', [], { ip: null, userAgent: null });
    expect(await manager.end(id)).toBe(true);
    expect(await manager.resume(id)).toBeUndefined();
    expect(await manager.end(id)).toBe(false);
  });
});
