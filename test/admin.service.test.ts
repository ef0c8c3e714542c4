import { afterEach, beforeEach, expect, it } from 'vitest';
import { CLI_PRINCIPAL, type Principal } from '../src/admin/service.ts';
import { createBearerSecret, hashBearerSecret } from '../src/lib/tokens.ts';
import {
  type AdminStack,
  apiToken,
  createAdminStack,
  linkIn,
  mailTo,
  seedUser,
  staff,
  tokenOf,
} from './helpers/admin.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { addPushDevice, endsWithin, openEventStream } from './helpers/push.ts';

/**
 * The administration service end to end on both databases: each action changes the state, writes
 * its audit event and queues the email the affected person expects, in one transaction; refusals
 * are results, audited as `denied`.
 */
describeEachBackend('administration service', (backend: BackendHandle) => {
  let s: AdminStack;
  let ops: Principal;
  let support: Principal;
  beforeEach(async () => {
    s = await createAdminStack({ store: backend.store() });
    ops = (await staff(s, 'operations', s.firmA)).principal;
    support = (await staff(s, 'support', s.firmA)).principal;
  });
  afterEach(async () => {
    await s?.close();
  });

  const events = async (action: string) =>
    (await s.store.repos.audit.listEvents({ action, limit: 50 })).map((e) => ({
      outcome: e.outcome,
      actor: e.actor_id,
      target: e.target_id,
      details: JSON.parse(e.details) as Record<string, unknown>,
    }));

  it('SAA requests a username, Operations approves: user PROVISIONED with an enrollment email, SAA told', async () => {
    const saa = await staff(s, 'saa', s.firmA);
    const asked = await s.admin.requestNewUser(saa.principal, {
      email: 'New.Hire@Acme.example',
      firstName: 'New',
      lastName: 'Hire',
      apps: ['portal', 'download'],
    });
    if (!asked.ok) throw new Error(asked.message);
    expect(asked.value).toMatchObject({ kind: 'new_user', status: 'pending', firmId: s.firmA.id });
    // The SAA sees its request; Operations sees the queue.
    const mine = await s.admin.listRequests(saa.principal);
    expect(mine.ok && mine.value.map((r) => r.id)).toEqual([asked.value.id]);
    const queue = await s.admin.listRequests(ops, { status: 'pending' });
    expect(queue.ok && queue.value.map((r) => r.id)).toContain(asked.value.id);

    const approved = await s.admin.approveRequest(ops, asked.value.id);
    if (!approved.ok) throw new Error(approved.message);
    expect(approved.value.user).toMatchObject({
      login: 'new.hire@acme.example',
      status: 'PROVISIONED',
      firmId: s.firmA.id,
      apps: ['download', 'portal'],
    });
    const [enrollment] = await mailTo(s, 'new.hire@acme.example');
    expect(enrollment?.template).toBe('enrollment');
    expect(await s.rt.authn.inspectActivationToken(tokenOf(linkIn(enrollment, '/activate')))).toBe('valid');
    const [told] = await mailTo(s, saa.user.email);
    expect(told?.template).toBe('requestDecided');
    expect(told?.text_body).toContain('approved');
    expect(await events('admin.request.approve')).toEqual([
      expect.objectContaining({ outcome: 'success', actor: ops.userId, target: asked.value.id }),
    ]);
    expect(await events('user.lifecycle.create')).toEqual([
      expect.objectContaining({
        outcome: 'success',
        actor: ops.userId,
        details: expect.objectContaining({ requestId: asked.value.id }),
      }),
    ]);
    // Decided once: a second approval is refused and changes nothing.
    const again = await s.admin.approveRequest(ops, asked.value.id);
    expect(again).toMatchObject({ ok: false, code: 'INVALID_STATE' });
  });

  it('two Operations staff approving one request at once: exactly one creates the user', async () => {
    const saa = await staff(s, 'saa', s.firmA);
    const asked = await s.admin.requestNewUser(saa.principal, {
      email: 'race@acme.example',
      firstName: 'Ra',
      lastName: 'Ce',
    });
    if (!asked.ok) throw new Error(asked.message);
    const other = (await staff(s, 'operations', s.firmA)).principal;
    const results = await Promise.all([
      s.admin.approveRequest(ops, asked.value.id),
      s.admin.approveRequest(other, asked.value.id),
    ]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect((await mailTo(s, 'race@acme.example')).filter((m) => m.template === 'enrollment')).toHaveLength(1);
  });

  it('Operations rejects with a reason; the SAA is emailed the reason; deactivation requests are carried out', async () => {
    const saa = await staff(s, 'saa', s.firmA);
    const asked = await s.admin.requestNewUser(saa.principal, {
      email: 'nope@acme.example',
      firstName: 'No',
      lastName: 'Pe',
    });
    if (!asked.ok) throw new Error(asked.message);
    expect(await s.admin.rejectRequest(ops, asked.value.id, '  ')).toMatchObject({ ok: false, code: 'INVALID_INPUT' });
    const rejected = await s.admin.rejectRequest(ops, asked.value.id, 'Duplicate of an existing account');
    expect(rejected).toMatchObject({
      ok: true,
      value: { status: 'rejected', reason: 'Duplicate of an existing account' },
    });
    expect(await s.store.repos.users.findUserByLogin('nope@acme.example')).toBeUndefined();
    const [told] = await mailTo(s, saa.user.email);
    expect(told?.template).toBe('requestDecided');
    expect(told?.text_body).toContain('Duplicate of an existing account');

    const leaver = await seedUser(s, s.firmA);
    const deact = await s.admin.requestDeactivation(saa.principal, leaver.login, { reason: 'Left the firm' });
    if (!deact.ok) throw new Error(deact.message);
    expect(await s.admin.requestDeactivation(saa.principal, leaver.id)).toMatchObject({ ok: false, code: 'CONFLICT' });
    const done = await s.admin.approveRequest(ops, deact.value.id);
    expect(done).toMatchObject({ ok: true, value: { user: { status: 'DEPROVISIONED' } } });
    expect((await mailTo(s, leaver.email))[0]?.template).toBe('accountDeactivated');
  });

  it('an SAA reaching for another firm is denied, and the attempt is audited', async () => {
    const saa = await staff(s, 'saa', s.firmA);
    const foreign = await seedUser(s, s.firmB);
    expect(await s.admin.getUser(saa.principal, foreign.id)).toMatchObject({ ok: false, code: 'DENIED' });
    expect(await s.admin.getUser(saa.principal, 'nobody@nowhere.example')).toMatchObject({ ok: false, code: 'DENIED' });
    expect(await s.admin.requestDeactivation(saa.principal, foreign.login)).toMatchObject({
      ok: false,
      code: 'DENIED',
    });
    expect(
      await s.admin.requestNewUser(saa.principal, {
        email: 'x@y.example',
        firstName: 'X',
        lastName: 'Y',
        firmId: s.firmB.id,
      }),
    ).toMatchObject({ ok: false, code: 'DENIED' });
    expect(await s.admin.listUsers(saa.principal, { firmId: s.firmB.id })).toMatchObject({ ok: false, code: 'DENIED' });
    // Its own firm: users with status, methods and last sign-in; never another firm's.
    const list = await s.admin.listUsers(saa.principal);
    if (!list.ok) throw new Error(list.message);
    expect(list.value.every((u) => u.firmId === s.firmA.id)).toBe(true);
    expect(list.value[0]).toHaveProperty('methods');
    expect(list.value[0]).toHaveProperty('lastLoginAt');
    const denied = await s.store.repos.audit.listEvents({ actorId: saa.user.id, limit: 20 });
    expect(denied.filter((e) => e.outcome === 'denied').length).toBeGreaterThanOrEqual(5);
    expect(denied.find((e) => e.target_id === foreign.id)?.outcome).toBe('denied');
  });

  it('resending enrollment: the old link stops working, the new one works', async () => {
    const made = await s.rt.accounts.provisionUser({
      email: 'late@acme.example',
      firstName: 'La',
      lastName: 'Te',
      firmId: s.firmA.id,
    });
    if (!made.ok) throw new Error(made.message);
    const old = tokenOf(made.activationUrl);
    const r = await s.admin.resendEnrollment(ops, 'late@acme.example');
    expect(r.ok).toBe(true);
    expect(await s.rt.authn.inspectActivationToken(old)).toBe('used');
    const [fresh] = await mailTo(s, 'late@acme.example');
    expect(await s.rt.authn.inspectActivationToken(tokenOf(linkIn(fresh, '/activate')))).toBe('valid');
    expect(await s.admin.resendEnrollment(support, made.user.id)).toMatchObject({ ok: false, code: 'DENIED' });
  });

  it('suspend ends idp and portal sessions and refresh tokens; unsuspend lets the user back; both emailed', async () => {
    const user = await seedUser(s, s.firmA);
    const now = s.clock();
    await s.rt.sessions.create(user.id, ['pwd', 'otp'], { ip: null, userAgent: null });
    await s.store.repos.portalSessions.create({
      id_hash: hashBearerSecret(createBearerSecret()),
      user_id: user.id,
      amr: '["pwd","otp"]',
      created_at: now,
      last_seen_at: now,
      idle_expires_at: now + 3_600_000,
      absolute_expires_at: now + 3_600_000,
      ip: null,
      user_agent: null,
      revoked_at: null,
    });
    const tokenHash = hashBearerSecret(createBearerSecret());
    await s.store.repos.apiTokens.insert({
      id_hash: tokenHash,
      user_id: user.id,
      client_id: 'traqs-api',
      grant_id: null,
      label: 'nightly job',
      created_at: now,
      expires_at: now + 180 * 86_400_000,
      last_used_at: null,
      last_used_ip: null,
      reminder_sent_at: null,
      revoked_at: null,
      revoked_reason: null,
    });
    const r = await s.admin.suspendUser(ops, user.id);
    expect(r).toEqual({ ok: true, value: { sessionsEnded: 1, portalSessionsEnded: 1, refreshTokensRevoked: 1 } });
    expect((await s.store.repos.users.findUserById(user.id))?.status).toBe('SUSPENDED');
    expect(await s.store.repos.tokens.listActiveSessions(user.id, s.clock())).toEqual([]);
    expect((await s.store.repos.apiTokens.find(tokenHash))?.revoked_reason).toBe('suspended');
    expect((await mailTo(s, user.email))[0]?.template).toBe('accountSuspended');
    expect(await s.admin.suspendUser(ops, user.id)).toMatchObject({ ok: false, code: 'INVALID_STATE' });
    expect((await events('user.lifecycle.suspend')).map((e) => e.outcome)).toEqual(['failure', 'success']);

    expect((await s.admin.unsuspendUser(ops, user.id)).ok).toBe(true);
    expect((await s.store.repos.users.findUserById(user.id))?.status).toBe('ACTIVE');
    expect((await mailTo(s, user.email))[0]?.template).toBe('accountUnsuspended');
  });

  it('deactivate, activate again: a fresh enrollment; delete only after deactivation', async () => {
    const user = await seedUser(s, s.firmA);
    expect(await s.admin.deleteUser(CLI_PRINCIPAL, user.id)).toMatchObject({ ok: false, code: 'INVALID_STATE' });
    expect((await s.admin.deactivateUser(ops, user.login)).ok).toBe(true);
    expect((await mailTo(s, user.email))[0]?.template).toBe('accountDeactivated');
    const again = await s.admin.activateUser(ops, user.id);
    expect(again).toMatchObject({ ok: true, value: { status: 'PROVISIONED' } });
    const row = await s.store.repos.users.findUserById(user.id);
    expect(row).toMatchObject({ status: 'PROVISIONED', password_hash: null, recovery_answer_hash: null });
    const [mail] = await mailTo(s, user.email);
    expect(mail?.template).toBe('enrollment');
    expect(mail?.text_body).toContain('set up again');
    expect((await s.admin.deactivateUser(ops, user.id)).ok).toBe(true);
    expect(await s.admin.deleteUser(ops, user.id)).toMatchObject({ ok: false, code: 'DENIED' });
    expect((await s.admin.deleteUser(CLI_PRINCIPAL, user.id)).ok).toBe(true);
    expect(await s.store.repos.users.findUserById(user.id)).toBeUndefined();
    expect((await events('user.lifecycle.delete'))[0]).toMatchObject({ outcome: 'success', target: user.id });
  });

  it('unlock by support, even after the lockouts only support may lift', async () => {
    const user = await seedUser(s, s.firmA, { status: 'LOCKED_OUT' });
    await s.store.repos.users.clearLockouts(user.id);
    expect((await s.admin.unlockUser(support, user.id)).ok).toBe(true);
    expect(await s.store.repos.users.findUserById(user.id)).toMatchObject({ status: 'ACTIVE', lockout_count: 0 });
    const [mail] = await mailTo(s, user.email);
    expect(mail?.template).toBe('accountUnlockedByAdmin');
    expect(mail?.text_body).toContain('Technical Support');
    expect(await s.admin.unlockUser(ops, user.id)).toMatchObject({ ok: false, code: 'INVALID_STATE' });
  });

  it('support resets one factor (lost device) or all of them, each emailed', async () => {
    const user = await seedUser(s, s.firmA);
    const now = s.clock();
    for (const [id, provider] of [
      ['uftlost', 'GOOGLE'],
      ['uftother', 'OKTA'],
    ] as const) {
      await s.store.repos.factors.createFactor({
        id,
        user_id: user.id,
        factor_type: 'token:software:totp',
        provider,
        status: 'ACTIVE',
        name: provider === 'GOOGLE' ? 'Google Authenticator' : 'Okta Verify (code)',
        secret_enc: null,
        last_used_step: null,
        created_at: now,
        activated_at: now,
        last_used_at: null,
      });
    }
    const one = await s.admin.resetFactor(support, user.id, 'uftlost');
    expect(one).toMatchObject({ ok: true, value: { id: 'uftlost' } });
    expect((await mailTo(s, user.email))[0]?.template).toBe('factorsReset');
    expect(await s.admin.resetFactor(support, user.id, 'uftlost')).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    const all = await s.admin.resetFactors(support, user.id);
    expect(all.ok && all.value.removed.map((f) => f.id)).toEqual(['uftother']);
    expect(await s.store.repos.factors.listFactors(user.id)).toEqual([]);
    expect(await s.admin.resetFactors(ops, user.id)).toMatchObject({ ok: false, code: 'DENIED' });
  });

  it('support resetting either half of Okta Verify removes both, in one email; the device stream ends at once', async () => {
    const user = await seedUser(s, s.firmA);
    const lost = await addPushDevice(s, user.id, 'Lost phone');
    const stream = await openEventStream(s, lost.device);
    const one = await s.admin.resetFactor(support, user.id, lost.totpFactorId);
    expect(one).toMatchObject({ ok: true, value: { id: lost.totpFactorId } });
    // Okta Verify is one authenticator (push and code): its device is gone with either.
    expect(await s.store.repos.factors.listFactors(user.id)).toEqual([]);
    const [mail, ...more] = (await mailTo(s, user.email)).filter((m) => m.template === 'factorsReset');
    expect(more).toEqual([]);
    expect(mail?.text_body).toContain('Lost phone');
    expect(mail?.text_body).toContain('Okta Verify (code) on Lost phone');
    const [event] = await events('user.mfa.factor.deactivate');
    expect(event?.details).toMatchObject({
      factorId: lost.totpFactorId,
      alsoRemoved: [{ factorId: lost.pushFactorId, factorType: 'push:OKTA' }],
    });
    expect(await endsWithin(stream.ended, 3_000)).toBe(true);

    // The management API (DELETE /api/v1/users/{id}/factors/{fid}) is the same reset.
    const other = await addPushDevice(s, user.id, 'Second phone');
    const token = await apiToken(s, 'support');
    const deleted = await s.app.inject({
      method: 'DELETE',
      url: `/api/v1/users/${user.id}/factors/${other.pushFactorId}`,
      headers: { authorization: `SSWS ${token}` },
    });
    expect(deleted.statusCode).toBe(204);
    expect(await s.store.repos.factors.listFactors(user.id)).toEqual([]);

    // Resetting every factor ends the device's stream at once as well.
    const third = await addPushDevice(s, user.id, 'Third phone');
    const thirdStream = await openEventStream(s, third.device);
    expect(await s.admin.resetFactors(support, user.id)).toMatchObject({ ok: true });
    expect(await endsWithin(thirdStream.ended, 3_000)).toBe(true);

    // So does switching the user to the firm's single sign-on, which removes every factor.
    const fourth = await addPushDevice(s, user.id, 'Fourth phone');
    const fourthStream = await openEventStream(s, fourth.device);
    expect(await s.admin.setAuthMode(support, user.id, 'federated')).toMatchObject({ ok: true });
    expect(await s.store.repos.factors.listFactors(user.id)).toEqual([]);
    expect(await endsWithin(fourthStream.ended, 3_000)).toBe(true);
  });

  it('support sends a password-reset link (never a password) that opens the recovery flow', async () => {
    const user = await seedUser(s, s.firmA);
    const r = await s.admin.sendPasswordReset(support, user.login);
    expect(r.ok).toBe(true);
    const [mail] = await mailTo(s, user.email);
    expect(mail?.template).toBe('passwordResetBySupport');
    const link = linkIn(mail, '/recover');
    expect(await s.rt.authn.inspectRecoveryToken(tokenOf(link))).toEqual({ state: 'valid', kind: 'password' });
    expect(JSON.stringify(r)).not.toContain(tokenOf(link));
    const staged = await seedUser(s, s.firmA, { status: 'PROVISIONED', password: false });
    expect(await s.admin.sendPasswordReset(support, staged.id)).toMatchObject({ ok: false, code: 'INVALID_STATE' });
  });

  it('switch to federated removes the password and factors; back to local sends an enrollment email', async () => {
    const user = await seedUser(s, s.firmA);
    await s.rt.sessions.create(user.id, ['pwd', 'otp'], { ip: null, userAgent: null });
    const fed = await s.admin.setAuthMode(support, user.id, 'federated');
    expect(fed).toMatchObject({ ok: true, value: { authMode: 'federated', status: 'ACTIVE', hasPassword: false } });
    expect(await s.store.repos.tokens.listActiveSessions(user.id, s.clock())).toEqual([]);
    expect((await mailTo(s, user.email))[0]?.template).toBe('switchedToFederated');
    expect(await s.admin.setAuthMode(support, user.id, 'federated')).toMatchObject({
      ok: false,
      code: 'INVALID_STATE',
    });
    const local = await s.admin.setAuthMode(support, user.id, 'local');
    expect(local).toMatchObject({ ok: true, value: { authMode: 'local', status: 'PROVISIONED' } });
    const [mail] = await mailTo(s, user.email);
    expect(mail?.template).toBe('enrollment');
    expect(await s.rt.authn.inspectActivationToken(tokenOf(linkIn(mail, '/activate')))).toBe('valid');
  });

  it('apps, refresh tokens and personal information, each with its email', async () => {
    const user = await seedUser(s, s.firmA);
    expect(await s.admin.assignApp(support, user.id, 'download')).toMatchObject({ ok: true, value: { created: true } });
    expect((await mailTo(s, user.email))[0]?.template).toBe('appAccessChanged');
    expect(await s.admin.assignApp(support, user.id, 'nosuchapp')).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect((await s.admin.unassignApp(support, user.id, 'download')).ok).toBe(true);
    expect(await s.store.repos.users.listApps(user.id)).toEqual(['portal']);

    const now = s.clock();
    const hash = hashBearerSecret(createBearerSecret());
    await s.store.repos.apiTokens.insert({
      id_hash: hash,
      user_id: user.id,
      client_id: 'traqs-api',
      grant_id: null,
      label: 'reporting box',
      created_at: now,
      expires_at: now + 86_400_000,
      last_used_at: null,
      last_used_ip: null,
      reminder_sent_at: null,
      revoked_at: null,
      revoked_reason: null,
    });
    const listed = await s.admin.listRefreshTokens(support, user.id);
    expect(listed.ok && listed.value.map((t) => t.label)).toEqual(['reporting box']);
    expect((await s.admin.revokeRefreshToken(support, user.id, hash)).ok).toBe(true);
    expect((await s.store.repos.apiTokens.find(hash))?.revoked_reason).toBe('support');
    const [revoked] = await mailTo(s, user.email);
    expect(revoked?.template).toBe('refreshTokenRevokedBySupport');
    expect(revoked?.text_body).toContain('reporting box');

    const old = user.email;
    const edited = await s.admin.updatePersonalInfo(ops, user.id, {
      lastName: 'Hopper-Smith',
      email: 'grace@acme.example',
    });
    expect(edited).toMatchObject({
      ok: true,
      value: { lastName: 'Hopper-Smith', email: 'grace@acme.example', login: user.login },
    });
    expect((await mailTo(s, 'grace@acme.example'))[0]?.template).toBe('personalInfoChanged');
    expect((await mailTo(s, old))[0]?.template).toBe('personalInfoChanged');
    expect(await s.admin.updatePersonalInfo(ops, user.id, { email: 'not an email' })).toMatchObject({
      ok: false,
      code: 'INVALID_INPUT',
    });
    expect(await s.admin.updatePersonalInfo(support, user.id, { firstName: 'X' })).toMatchObject({
      ok: false,
      code: 'DENIED',
    });
  });

  it('suspicious-activity reports: view, sign out, suspend, close with a note', async () => {
    const user = await seedUser(s, s.firmA);
    await s.store.repos.reports.createReport({
      id: 'rpttest0000000001',
      user_id: user.id,
      created_at: s.clock(),
      source: 'newSignIn',
      details: '{}',
      ip: '203.0.113.50',
      user_agent: 'Mozilla/5.0',
      status: 'open',
      closed_at: null,
      closed_by: null,
      note: null,
    });
    const open = await s.admin.listReports(ops, { status: 'open' });
    expect(open.ok && open.value.map((r) => [r.id, r.userLogin])).toEqual([['rpttest0000000001', user.login]]);
    expect(await s.admin.listReports(support)).toMatchObject({ ok: false, code: 'DENIED' });
    await s.rt.sessions.create(user.id, ['pwd', 'otp'], { ip: null, userAgent: null });
    expect(await s.admin.signOutReportedUser(ops, 'rpttest0000000001')).toMatchObject({
      ok: true,
      value: { sessionsEnded: 1 },
    });
    expect((await s.admin.suspendReportedUser(ops, 'rpttest0000000001')).ok).toBe(true);
    expect((await s.store.repos.users.findUserById(user.id))?.status).toBe('SUSPENDED');
    const closed = await s.admin.closeReport(
      ops,
      'rpttest0000000001',
      'User confirmed a new laptop; suspended pending callback.',
    );
    expect(closed).toMatchObject({ ok: true, value: { status: 'closed', closedBy: ops.userId } });
    expect(await s.admin.closeReport(ops, 'rpttest0000000001', 'again')).toMatchObject({
      ok: false,
      code: 'INVALID_STATE',
    });
    expect((await events('user.lifecycle.suspend'))[0]?.details).toMatchObject({ reportId: 'rpttest0000000001' });
  });
});
