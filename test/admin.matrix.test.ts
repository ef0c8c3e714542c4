import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role, UserStatus } from '../src/accounts/model.ts';
import type { UserRow } from '../src/accounts/repository.ts';
import { type AdminResult, CLI_PRINCIPAL, type Principal } from '../src/admin/service.ts';
import type { Firm } from '../src/firms/repository.ts';
import { createBearerSecret, createId, hashBearerSecret } from '../src/lib/tokens.ts';
import { type AdminStack, createAdminStack, seedUser, staff } from './helpers/admin.ts';

/**
 * The authorization matrix of issue #7, on the service every console and the API go through:
 * every role against every administrative action, allowed or denied as the FAQ assigns the work
 * (SAA requests, Operations provisions and polices, Support fixes sign-in, admin does all). The
 * expected roles are written out here, not derived from the implementation's table.
 */

const ROLES_UNDER_TEST: readonly Role[] = ['user', 'saa', 'operations', 'support', 'admin'];

interface Fixture {
  s: AdminStack;
  firm: Firm;
}

interface Case {
  name: string;
  allowed: readonly Role[];
  /** Status of the target user created fresh for each call (default ACTIVE). */
  status?: UserStatus;
  /** The action is about the target user (an SAA may reach only its own firm's). */
  onUser?: boolean;
  run: (p: Principal, target: UserRow, f: Fixture) => Promise<AdminResult<unknown>>;
}

const OPS: Role[] = ['operations', 'admin'];
const SUPPORT: Role[] = ['support', 'admin'];

async function pendingRequest(f: Fixture, kind: 'new_user' | 'deactivate', target: UserRow): Promise<string> {
  const r =
    kind === 'new_user'
      ? await f.s.admin.requestNewUser(CLI_PRINCIPAL, {
          email: `${createId('n').toLowerCase()}@acme.example`,
          firstName: 'New',
          lastName: 'Person',
          firmId: f.firm.id,
        })
      : await f.s.admin.requestDeactivation(CLI_PRINCIPAL, target.id);
  if (!r.ok) throw new Error(r.message);
  return r.value.id;
}

async function report(f: Fixture, target: UserRow): Promise<string> {
  const id = createId('rpt');
  await f.s.store.repos.reports.createReport({
    id,
    user_id: target.id,
    created_at: f.s.clock(),
    source: 'newSignIn',
    details: '{}',
    ip: null,
    user_agent: null,
    status: 'open',
    closed_at: null,
    closed_by: null,
    note: null,
  });
  return id;
}

/** A firm of its own (a firm has at most one identity provider). */
async function newFirmId(f: Fixture): Promise<string> {
  const firm = await f.s.rt.accounts.createFirm(`Firm ${createId('f')}`);
  if (!firm.ok) throw new Error('firm');
  return firm.firm.id;
}

/** A firm of its own with an OpenID Connect identity provider (issue #8), added from the CLI. */
async function firmWithIdp(f: Fixture): Promise<{ firmId: string; idpId: string }> {
  const firmId = await newFirmId(f);
  const r = await f.s.rt.federation.add({
    protocol: 'oidc',
    firmId,
    name: 'Matrix IdP',
    issuer: 'https://idp.matrix.example',
    clientId: 'traqs',
    clientSecret: 'secret',
  });
  if (!r.ok) throw new Error(r.detail);
  return { firmId, idpId: r.value.id };
}

async function refreshToken(f: Fixture, target: UserRow): Promise<string> {
  const hash = hashBearerSecret(createBearerSecret());
  const now = f.s.clock();
  await f.s.store.repos.apiTokens.insert({
    id_hash: hash,
    user_id: target.id,
    client_id: 'traqs-api',
    grant_id: null,
    label: 'job',
    created_at: now,
    expires_at: now + 86_400_000,
    last_used_at: null,
    last_used_ip: null,
    reminder_sent_at: null,
    revoked_at: null,
    revoked_reason: null,
  });
  return hash;
}

async function factor(f: Fixture, target: UserRow): Promise<string> {
  const id = createId('uft');
  const now = f.s.clock();
  await f.s.store.repos.factors.createFactor({
    id,
    user_id: target.id,
    factor_type: 'token:software:totp',
    provider: 'GOOGLE',
    status: 'ACTIVE',
    name: 'Google Authenticator',
    secret_enc: null,
    last_used_step: null,
    created_at: now,
    activated_at: now,
    last_used_at: null,
  });
  return id;
}

const CASES: Case[] = [
  // Reading
  { name: 'list users', allowed: ['saa', 'operations', 'support', 'admin'], run: (p, _t, f) => f.s.admin.listUsers(p) },
  {
    onUser: true,
    name: 'view a user',
    allowed: ['saa', 'operations', 'support', 'admin'],
    run: (p, t, f) => f.s.admin.getUser(p, t.id),
  },
  {
    onUser: true,
    name: "list a user's factors",
    allowed: ['operations', 'support', 'admin'],
    run: (p, t, f) => f.s.admin.listFactors(p, t.id),
  },
  {
    onUser: true,
    name: "list a user's refresh tokens",
    allowed: SUPPORT,
    run: (p, t, f) => f.s.admin.listRefreshTokens(p, t.id),
  },
  {
    name: "list an app's users",
    allowed: ['operations', 'support', 'admin'],
    run: (p, _t, f) => f.s.admin.listAppUsers(p, 'portal'),
  },
  {
    name: 'read the audit log',
    allowed: ['operations', 'support', 'admin'],
    run: (p, _t, f) => f.s.admin.readLog(p, { since: 0, order: 'asc', limit: 5 }),
  },
  // SAA requests and the queue
  {
    name: 'request a new username',
    allowed: ['saa', 'admin'],
    run: (p, _t, f) =>
      f.s.admin.requestNewUser(p, {
        email: `${createId('r').toLowerCase()}@acme.example`,
        firstName: 'Re',
        lastName: 'Quest',
        firmId: f.firm.id,
      }),
  },
  {
    onUser: true,
    name: 'request a deactivation',
    allowed: ['saa', 'admin'],
    run: (p, t, f) => f.s.admin.requestDeactivation(p, t.id),
  },
  { name: 'list requests', allowed: ['saa', 'operations', 'admin'], run: (p, _t, f) => f.s.admin.listRequests(p) },
  {
    onUser: true,
    name: 'approve a new-user request',
    allowed: OPS,
    run: async (p, t, f) => f.s.admin.approveRequest(p, await pendingRequest(f, 'new_user', t)),
  },
  {
    onUser: true,
    name: 'approve a deactivation request',
    allowed: OPS,
    run: async (p, t, f) => f.s.admin.approveRequest(p, await pendingRequest(f, 'deactivate', t)),
  },
  {
    onUser: true,
    name: 'reject a request',
    allowed: OPS,
    run: async (p, t, f) => f.s.admin.rejectRequest(p, await pendingRequest(f, 'new_user', t), 'No'),
  },
  // Operations
  {
    name: 'create a user',
    allowed: OPS,
    run: (p, _t, f) =>
      f.s.admin.createUser(p, {
        email: `${createId('c').toLowerCase()}@acme.example`,
        firstName: 'C',
        lastName: 'U',
        firmId: f.firm.id,
      }),
  },
  {
    onUser: true,
    name: 'activate a staged user',
    allowed: OPS,
    status: 'STAGED',
    run: (p, t, f) => f.s.admin.activateUser(p, t.id),
  },
  {
    onUser: true,
    name: 'resend the enrollment email',
    allowed: OPS,
    status: 'PROVISIONED',
    run: (p, t, f) => f.s.admin.resendEnrollment(p, t.id),
  },
  {
    onUser: true,
    name: 'edit personal information',
    allowed: OPS,
    run: (p, t, f) => f.s.admin.updatePersonalInfo(p, t.id, { firstName: 'Edited' }),
  },
  {
    onUser: true,
    name: 'unlock',
    allowed: ['operations', 'support', 'admin'],
    status: 'LOCKED_OUT',
    run: (p, t, f) => f.s.admin.unlockUser(p, t.id),
  },
  { onUser: true, name: 'suspend', allowed: OPS, run: (p, t, f) => f.s.admin.suspendUser(p, t.id) },
  {
    onUser: true,
    name: 'unsuspend',
    allowed: OPS,
    status: 'SUSPENDED',
    run: (p, t, f) => f.s.admin.unsuspendUser(p, t.id),
  },
  { onUser: true, name: 'deactivate', allowed: OPS, run: (p, t, f) => f.s.admin.deactivateUser(p, t.id) },
  {
    onUser: true,
    name: 'delete a deactivated user',
    allowed: ['admin'],
    status: 'DEPROVISIONED',
    run: (p, t, f) => f.s.admin.deleteUser(p, t.id),
  },
  {
    onUser: true,
    name: 'sign a user out everywhere',
    allowed: OPS,
    run: (p, t, f) => f.s.admin.signOutEverywhere(p, t.id),
  },
  { name: 'list suspicious-activity reports', allowed: OPS, run: (p, _t, f) => f.s.admin.listReports(p) },
  {
    onUser: true,
    name: 'view a report',
    allowed: OPS,
    run: async (p, t, f) => f.s.admin.getReport(p, await report(f, t)),
  },
  {
    onUser: true,
    name: 'report: sign the user out',
    allowed: OPS,
    run: async (p, t, f) => f.s.admin.signOutReportedUser(p, await report(f, t)),
  },
  {
    onUser: true,
    name: 'report: suspend the user',
    allowed: OPS,
    run: async (p, t, f) => f.s.admin.suspendReportedUser(p, await report(f, t)),
  },
  {
    onUser: true,
    name: 'report: close with a note',
    allowed: OPS,
    run: async (p, t, f) => f.s.admin.closeReport(p, await report(f, t), 'Checked'),
  },
  // Support
  { onUser: true, name: 'reset all factors', allowed: SUPPORT, run: (p, t, f) => f.s.admin.resetFactors(p, t.id) },
  {
    onUser: true,
    name: 'reset one factor',
    allowed: SUPPORT,
    run: async (p, t, f) => f.s.admin.resetFactor(p, t.id, await factor(f, t)),
  },
  {
    onUser: true,
    name: 'send a password-reset email',
    allowed: SUPPORT,
    run: (p, t, f) => f.s.admin.sendPasswordReset(p, t.id),
  },
  {
    onUser: true,
    name: 'switch to federated sign-in',
    allowed: SUPPORT,
    run: (p, t, f) => f.s.admin.setAuthMode(p, t.id, 'federated'),
  },
  { onUser: true, name: 'assign an app', allowed: SUPPORT, run: (p, t, f) => f.s.admin.assignApp(p, t.id, 'download') },
  {
    onUser: true,
    name: 'unassign an app',
    allowed: SUPPORT,
    run: (p, t, f) => f.s.admin.unassignApp(p, t.id, 'portal'),
  },
  {
    onUser: true,
    name: 'revoke a refresh token',
    allowed: SUPPORT,
    run: async (p, t, f) => f.s.admin.revokeRefreshToken(p, t.id, await refreshToken(f, t)),
  },
  // admin
  // Firms' identity providers (issue #8)
  { name: 'list identity providers', allowed: SUPPORT, run: (p, _t, f) => f.s.admin.listIdentityProviders(p) },
  {
    name: 'add an identity provider',
    allowed: SUPPORT,
    run: async (p, _t, f) =>
      f.s.admin.addIdentityProvider(p, {
        protocol: 'oidc',
        firmId: await newFirmId(f),
        name: 'Console IdP',
        issuer: 'https://idp.console.example',
        clientId: 'traqs',
        clientSecret: 'secret',
      }),
  },
  {
    name: 'remove an identity provider',
    allowed: SUPPORT,
    run: async (p, _t, f) => f.s.admin.removeIdentityProvider(p, (await firmWithIdp(f)).idpId),
  },
  { onUser: true, name: 'grant a role', allowed: ['admin'], run: (p, t, f) => f.s.admin.grantRole(p, t.id, 'support') },
  {
    onUser: true,
    name: 'revoke a role',
    allowed: ['admin'],
    run: async (p, t, f) => {
      await f.s.store.repos.users.grantRole(t.id, 'support');
      return f.s.admin.revokeRole(p, t.id, 'support');
    },
  },
  {
    name: 'create an API token',
    allowed: ['admin'],
    run: (p, _t, f) => f.s.admin.createApiToken(p, { name: 'x', role: 'support' }),
  },
  { name: 'list API tokens', allowed: ['admin'], run: (p, _t, f) => f.s.admin.listApiTokens(p) },
  {
    name: 'revoke an API token',
    allowed: ['admin'],
    run: async (p, _t, f) => {
      const made = await f.s.admin.createApiToken(CLI_PRINCIPAL, { name: 'y', role: 'support' });
      if (!made.ok) throw new Error(made.message);
      return f.s.admin.revokeApiToken(p, made.value.view.id);
    },
  },
];

/** Actions on one user that an SAA may do in its own firm; in another firm they must be denied. */
const ON_ONE_USER = CASES.filter((c) => c.onUser);

describe('authorization matrix (service)', () => {
  let s: AdminStack;
  const principals = new Map<Role, Principal>();

  beforeAll(async () => {
    s = await createAdminStack();
    for (const role of ROLES_UNDER_TEST) principals.set(role, (await staff(s, role, s.firmA)).principal);
  });
  afterAll(async () => {
    await s?.close();
  });

  const deniedCount = async (p: Principal) =>
    (await s.store.repos.audit.listEvents({ actorId: p.userId ?? '', limit: 1000 })).filter(
      (e) => e.outcome === 'denied',
    ).length;

  for (const c of CASES) {
    it(`${c.name}: ${c.allowed.join(', ')}`, async () => {
      const allowed: Role[] = [];
      const failures: string[] = [];
      for (const role of ROLES_UNDER_TEST) {
        const p = principals.get(role);
        if (!p) throw new Error(role);
        const target = await seedUser(s, s.firmA, { status: c.status ?? 'ACTIVE' });
        const before = await deniedCount(p);
        const r = await c.run(p, target, { s, firm: s.firmA });
        if (r.ok) allowed.push(role);
        else if (r.code !== 'DENIED') failures.push(`${role}: ${r.code} ${r.message}`);
        else if ((await deniedCount(p)) !== before + 1) failures.push(`${role}: denial not audited`);
      }
      // An allowed role succeeds (the fixtures make each action possible); others are DENIED.
      expect(failures).toEqual([]);
      expect(allowed).toEqual(ROLES_UNDER_TEST.filter((r) => c.allowed.includes(r)));
    });
  }

  it('an SAA is denied every action on another firm’s user, and on users that do not exist', async () => {
    const saa = principals.get('saa');
    if (!saa) throw new Error('saa');
    expect(ON_ONE_USER.length).toBeGreaterThan(20);
    for (const c of ON_ONE_USER) {
      const foreign = await seedUser(s, s.firmB);
      expect(await c.run(saa, foreign, { s, firm: s.firmB }), c.name).toMatchObject({ ok: false, code: 'DENIED' });
      if (!c.allowed.includes('saa')) continue;
      // A user who exists nowhere is answered as one of another firm: no existence oracle.
      const ghost = { ...foreign, id: '00uDoesNotExist00000', login: 'ghost@nowhere.example' };
      expect(await c.run(saa, ghost, { s, firm: s.firmB }), c.name).toMatchObject({ ok: false, code: 'DENIED' });
    }
    expect(await s.admin.listUsers(saa, { firmId: s.firmB.id })).toMatchObject({ ok: false, code: 'DENIED' });
    expect(await s.admin.listRequests(saa, { firmId: s.firmB.id })).toMatchObject({ ok: false, code: 'DENIED' });
    const otherFirmRequest = await s.admin.requestNewUser(CLI_PRINCIPAL, {
      email: 'b-hire@birch.example',
      firstName: 'B',
      lastName: 'Hire',
      firmId: s.firmB.id,
    });
    if (!otherFirmRequest.ok) throw new Error(otherFirmRequest.message);
    expect(await s.admin.getRequest(saa, otherFirmRequest.value.id)).toMatchObject({ ok: false, code: 'DENIED' });
    const own = await s.admin.listRequests(saa);
    expect(own.ok && own.value.every((r) => r.firmId === s.firmA.id)).toBe(true);
  });

  it('only an admin may change an administrator (no escalation through support or Operations)', async () => {
    const target = await seedUser(s, s.firmA, { roles: ['admin'] });
    for (const role of ['operations', 'support'] as const) {
      const p = principals.get(role);
      if (!p) throw new Error(role);
      expect(await s.admin.resetFactors(p, target.id)).toMatchObject({ ok: false, code: 'DENIED' });
      expect(await s.admin.suspendUser(p, target.id)).toMatchObject({ ok: false, code: 'DENIED' });
      expect(await s.admin.updatePersonalInfo(p, target.id, { email: 'mine@evil.example' })).toMatchObject({
        ok: false,
        code: 'DENIED',
      });
      // Reading is not a change.
      expect((await s.admin.getUser(p, target.id)).ok).toBe(true);
    }
    const admin = principals.get('admin');
    if (!admin) throw new Error('admin');
    expect((await s.admin.suspendUser(admin, target.id)).ok).toBe(true);
  });
});
