import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerAdminCommands } from '../src/admin/cli.ts';
import type { EnvironmentRuntime } from '../src/app.ts';
import { hashBearerSecret } from '../src/lib/tokens.ts';
import { type AdminStack, createAdminStack, seedUser } from './helpers/admin.ts';
import { type CliRun, runTraqs } from './helpers/cli.ts';

/**
 * `traqs role grant|revoke` and `traqs api-token create|list|revoke`, run through commander as the
 * CLI runs them, against a test environment (the process-level CLI test covers the wiring).
 */
describe('admin commands', () => {
  let s: AdminStack;

  beforeAll(async () => {
    s = await createAdminStack();
  });
  afterAll(async () => {
    await s?.close();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  async function traqs(...args: string[]): Promise<CliRun> {
    return runTraqs(
      registerAdminCommands,
      (envId) => {
        expect(envId).toBe('ntf');
        return s.rt as EnvironmentRuntime;
      },
      args,
    );
  }

  it('creates an API token, printed once and stored only as its SHA-256; lists and revokes it', async () => {
    const made = await traqs('api-token', 'create', '--name', 'provisioning script', '--role', 'operations', '--json');
    expect(made.code).toBe(0);
    const view = JSON.parse(made.out) as { id: string; token: string; role: string };
    expect(view.role).toBe('operations');
    const row = await s.store.repos.managementTokens.findById(view.id);
    expect(row?.token_hash).toBe(hashBearerSecret(view.token));
    expect(JSON.stringify(row)).not.toContain(view.token);
    expect(await s.admin.authenticateApiToken(view.token)).toMatchObject({
      apiTokenId: view.id,
      roles: ['operations'],
    });

    const listed = await traqs('api-token', 'list');
    expect(listed.out).toContain(view.id);
    expect(listed.out).not.toContain(view.token);

    expect((await traqs('api-token', 'revoke', view.id)).code).toBe(0);
    expect(await s.admin.authenticateApiToken(view.token)).toBeUndefined();
    expect((await traqs('api-token', 'revoke', view.id)).code).toBe(2);
    const events = await s.store.repos.audit.listEvents({ action: 'system.api_token.create' });
    expect(events[0]).toMatchObject({ actor_id: null, target_id: view.id });
    expect(JSON.parse(events[0]?.details ?? '{}')).toMatchObject({ via: 'cli', role: 'operations' });
  });

  it('defaults to an admin token; an saa token needs a firm, by name or id', async () => {
    const plain = await traqs('api-token', 'create', '--name', 'ops console');
    expect(plain.code).toBe(0);
    expect(plain.out).toContain('role admin');
    const noFirm = await traqs('api-token', 'create', '--name', 'saa', '--role', 'saa');
    expect(noFirm.code).toBe(2);
    expect(noFirm.err).toContain('firm');
    const withFirm = await traqs('api-token', 'create', '--name', 'saa', '--role', 'saa', '--firm', 'Acme Securities');
    expect(withFirm.code).toBe(0);
    const badRole = await traqs('api-token', 'create', '--name', 'x', '--role', 'wizard');
    expect(badRole.code).not.toBe(0);
    expect(badRole.err).toContain('unknown role');
  });

  it('grants and revokes roles by username', async () => {
    const user = await seedUser(s, s.firmA, { login: 'staffer@acme.example' });
    const granted = await traqs('role', 'grant', '--user', 'staffer@acme.example', '--role', 'support');
    expect(granted.code).toBe(0);
    expect(granted.out).toContain('support');
    expect(await s.store.repos.users.listRoles(user.id)).toEqual(['support', 'user']);
    expect((await traqs('role', 'revoke', '--user', user.id, '--role', 'support')).code).toBe(0);
    expect(await s.store.repos.users.listRoles(user.id)).toEqual(['user']);
    const missing = await traqs('role', 'grant', '--user', 'nobody@acme.example', '--role', 'admin');
    expect(missing.code).toBe(2);
    expect((await traqs('role', 'revoke', '--user', user.id, '--role', 'user')).code).toBe(2);
  });
});
