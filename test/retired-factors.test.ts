import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { registerFactorCommands } from '../src/authn/factors/cli.ts';
import { createBrowser, csrfFrom } from './helpers/browser.ts';
import { signedInUser, textOf } from './helpers/profile.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, activateUser, causes, field, postJson, text } from './helpers/users.ts';

/**
 * SMS and voice call (issue #6 item 5): retired on 2025-12-31. They cannot be enrolled; imported
 * enrollments are listed as retired and never offered; a user with nothing else enrolls a current
 * method after the password. The test clock is in December 2026.
 */

let s: TestStack;
beforeEach(async () => {
  s = await createTestStack();
});
afterEach(async () => {
  await s.close();
});

class UsageError extends Error {}

/** The text of the profile's row for one factor, tags stripped. */
function rowOf(html: string, factorId: string): string {
  const m = new RegExp(`<tr[^>]*data-factor-id="${factorId}"[^>]*>([\\s\\S]*?)</tr>`).exec(html);
  return (m?.[1] ?? '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Runs `traqs factor …` against the test stack's environment; what it printed, or the usage error. */
async function traqs(args: string[], stack: TestStack = s): Promise<{ out: string; error?: string }> {
  const program = new Command('traqs').exitOverride();
  registerFactorCommands(program, {
    withEnvironment: async (envId, work) => {
      if (envId !== stack.rt.environment.id) throw new UsageError(`Unknown environment "${envId}"`);
      return work(stack.rt);
    },
    usageError: (message) => new UsageError(message),
  });
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => {
    lines.push(parts.join(' '));
  });
  try {
    await program.parseAsync(['node', 'traqs', ...args]);
    return { out: lines.join('\n') };
  } catch (err) {
    if (err instanceof UsageError) return { out: lines.join('\n'), error: err.message };
    throw err;
  } finally {
    log.mockRestore();
  }
}

const importSms = (login: string, phone = '+12125550100', type = 'sms') =>
  traqs(['factor', 'import', '--env', 'ntf', '--user', login, '--type', type, '--phone', phone, '--json']);

/** Leaves the user with only their imported retired factors. */
async function removeTotp(u: ActiveUser) {
  await s.rt.store.repos.factors.deleteFactor(u.user.id, u.factorId);
}

describe('traqs factor import', () => {
  it('imports an SMS or voice-call enrollment as a retired factor, audited', async () => {
    const u = await activateUser(s, 'sms.user@acme.example');
    const r = await importSms('SMS.User@acme.example');
    expect(r.error).toBeUndefined();
    const printed = JSON.parse(r.out) as Record<string, unknown>;
    expect(printed).toMatchObject({
      user: 'sms.user@acme.example',
      factorType: 'sms',
      phoneNumber: '+12125550100',
      status: 'retired since 2025-12-31',
    });
    expect(String(printed.id)).toMatch(/^sms/);
    expect((await importSms(u.login, '+12125550199', 'call')).error).toBeUndefined();
    const factors = await s.rt.store.repos.factors.listActiveFactors(u.user.id);
    expect(factors.map((f) => [f.factor_type, f.provider, f.name])).toEqual([
      ['token:software:totp', 'GOOGLE', 'Google Authenticator'],
      ['sms', 'OKTA', 'SMS'],
      ['call', 'OKTA', 'Voice call'],
    ]);
    const [imported] = await s.rt.store.repos.audit.listEvents({
      action: 'user.mfa.factor.import',
      targetId: u.user.id,
    });
    expect(imported?.actor_id).toBeNull();
    expect(JSON.parse(imported?.details ?? '{}')).toMatchObject({ phone: '+1•••0199', via: 'cli' });
  });

  it('refuses a number that is not E.164, an unknown user, another type and the same number twice', async () => {
    const u = await activateUser(s, 'careful@acme.example');
    expect((await importSms(u.login, '212-555-0100')).error).toContain('E.164');
    expect((await importSms('nobody@acme.example')).error).toBe('No user "nobody@acme.example"');
    expect((await importSms(u.login)).error).toBeUndefined();
    expect((await importSms(u.login)).error).toBe('careful@acme.example already has SMS +12125550100');
    await expect(importSms(u.login, '+12125550100', 'email')).rejects.toThrow(/Allowed choices are sms, call/);
  });
});

describe('retired factors at sign-in', () => {
  it('a user whose only factor is retired is sent to enroll a current one, with a notice', async () => {
    const u = await activateUser(s, 'only.sms@acme.example');
    await importSms(u.login);
    await removeTotp(u);

    const r = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    expect(r.body.status).toBe('MFA_ENROLL');
    const offered = field(r.body, '_embedded', 'factors');
    expect(Array.isArray(offered) ? offered.map((f) => field(f, 'factorType')) : []).not.toContain('sms');

    const b = createBrowser(s);
    await b.submit('/signin', '/signin', { username: u.login, password: u.password });
    const page = await b.get('/signin/next');
    expect(page.payload).toContain('<h1>Set up multifactor authentication</h1>');
    expect(textOf(page.payload, 'retired-notice')).toBe(
      'SMS authentication was retired on 2025-12-31, and it was your only sign-in method. Set up a current method now to continue.',
    );
    expect(page.payload).not.toMatch(/Set up SMS/);
    const refused = await b.post('/signin/enroll', {
      factorType: 'sms',
      provider: 'OKTA',
      _csrf: csrfFrom(page.payload),
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.payload).toContain('SMS authentication was retired on 2025-12-31 and can no longer be enrolled.');
  });

  it('a user with a current factor and a retired one is offered only the current one', async () => {
    const u = await activateUser(s, 'both@acme.example');
    await importSms(u.login);
    const r = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    expect(r.body.status).toBe('MFA_REQUIRED');
    const listed = field(r.body, '_embedded', 'factors');
    expect(Array.isArray(listed) ? listed.map((f) => field(f, 'factorType')) : []).toEqual(['token:software:totp']);

    // Naming the retired factor directly does not work either.
    const [sms] = (await s.rt.store.repos.factors.listActiveFactors(u.user.id)).filter((f) => f.factor_type === 'sms');
    const stateToken = text(r.body, 'stateToken');
    for (const body of [{ stateToken }, { stateToken, passCode: '123456' }]) {
      const tried = await postJson(s, `/api/v1/authn/factors/${sms?.id}/verify`, body);
      expect(tried.status).toBe(403);
      expect(causes(tried.body)).toEqual([
        'SMS authentication was retired on 2025-12-31 and no longer works. Sign in again and set up a current method.',
      ]);
    }
  });

  it('the Authentication API refuses to enroll SMS or voice call, saying they were retired', async () => {
    const u = await activateUser(s, 'enroll.sms@acme.example');
    await removeTotp(u);
    const r = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    const stateToken = text(r.body, 'stateToken');
    for (const [factorType, name] of [
      ['sms', 'SMS'],
      ['call', 'Voice call'],
    ]) {
      const tried = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType, provider: 'OKTA' });
      expect(tried.status).toBe(400);
      expect(tried.body.errorCode).toBe('E0000001');
      expect(causes(tried.body)[0]).toBe(
        `${name} authentication was retired on 2025-12-31 and can no longer be enrolled. Choose Okta Verify, Google Authenticator or FastPass.`,
      );
    }
  });
});

describe('retired factors in the profile', () => {
  it('lists them marked "retired since 2025-12-31" with the number masked, and can remove them', async () => {
    const { user, b } = await signedInUser(s, 'profile.sms@acme.example');
    await importSms(user.login, '+442071234567', 'call');
    const home = await b.get('/');
    const [call] = (await s.rt.store.repos.factors.listActiveFactors(user.user.id)).filter(
      (f) => f.factor_type === 'call',
    );
    const row = rowOf(home.payload, call?.id ?? '');
    expect(row).toMatch(/^Voice call retired since 2025-12-31 Voice call \(\+4•••4567\) 2026-12-04 12:00 UTC/);
    expect(home.payload).not.toContain('+442071234567');
    // One method still works: the profile urges a second, not counting the retired one.
    expect(home.payload).toContain('You have one sign-in method.');

    const add = await b.get('/profile/factors/add');
    expect(add.payload).toContain('SMS and voice call authentication were retired on 2025-12-31 and cannot be added.');
    const refused = await b.post('/profile/factors/add', {
      provider: 'OKTA',
      factorType: 'sms',
      _csrf: csrfFrom(add.payload),
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.payload).toContain('SMS authentication was retired on 2025-12-31 and can no longer be enrolled.');

    const remove = await b.get(`/profile/factors/${call?.id}/remove`);
    expect(remove.statusCode).toBe(200);
    expect(remove.payload).toContain('This retired method no longer works');
    expect(remove.payload).not.toContain('This is your only security method');
    const removed = await b.post(`/profile/factors/${call?.id}/remove`, { _csrf: csrfFrom(remove.payload) });
    expect(removed.headers.location).toBe('/?done=factor-removed');
  });

  it('before the retirement date the mark says when it retires; sign-in still does not offer it', async () => {
    const later = await createTestStack({ overrides: { policy: { retiredFactorsDate: '2027-06-30' } } });
    try {
      const { user, b } = await signedInUser(later, 'early.sms@acme.example');
      await traqs(['factor', 'import', '--user', user.login, '--type', 'sms', '--phone', '+12125550100'], later);
      const [sms] = (await later.rt.store.repos.factors.listActiveFactors(user.user.id)).filter(
        (f) => f.factor_type === 'sms',
      );
      expect(rowOf((await b.get('/')).payload, sms?.id ?? '')).toMatch(/^SMS retires on 2027-06-30 SMS \(\+1•••0100\)/);
      const r = await postJson(later, '/api/v1/authn', { username: user.login, password: user.password });
      const listed = field(r.body, '_embedded', 'factors');
      expect(Array.isArray(listed) ? listed.map((f) => field(f, 'factorType')) : []).toEqual(['token:software:totp']);
    } finally {
      await later.close();
    }
  });
});
