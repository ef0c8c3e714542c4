import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_PRINCIPAL, createAdminServiceFor } from '../src/admin/service.ts';
import { buildIdp, openEnvironment } from '../src/app.ts';
import { describeEachBackend } from './helpers/databases.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';

let s: TestStack;
afterEach(async () => {
  await s?.close();
});

/**
 * A wrong password at the Authentication API from `ip` (the connection's address), to this
 * stack's idp or to `options.app`, with `X-Forwarded-For` when given.
 */
const attempt = (ip: string, options: { app?: TestStack['app']; forwardedFor?: string } = {}) =>
  (options.app ?? s.app).inject({
    method: 'POST',
    url: '/api/v1/authn',
    remoteAddress: ip,
    ...(options.forwardedFor ? { headers: { 'x-forwarded-for': options.forwardedFor } } : {}),
    payload: { username: 'nobody@acme.example', password: 'guess guess guess' },
  });

describe('per-IP rate limit in front of sign-in', () => {
  it('answers 429 with Retry-After and an Okta error once an address exceeds the limit', async () => {
    s = await createTestStack({ overrides: { policy: { authRequestsPerMinutePerIp: 5 } } });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await attempt('198.51.100.9')).statusCode);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    const limited = await attempt('198.51.100.9');
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.json()).toMatchObject({ errorCode: 'E0000047' });
    // Another address is not affected, and pages (GET) are never limited.
    expect((await attempt('198.51.100.10')).statusCode).toBe(401);
    expect((await s.app.inject({ method: 'GET', url: '/signin', remoteAddress: '198.51.100.9' })).statusCode).toBe(200);
  });

  it('counts an IPv6 /64 as one address: rotating within it does not reset the count', async () => {
    s = await createTestStack({ overrides: { policy: { authRequestsPerMinutePerIp: 3 } } });
    const statuses = [];
    for (let i = 1; i <= 4; i++) statuses.push((await attempt(`2001:db8:1:2::${i}`)).statusCode);
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect((await attempt('2001:db8:1:3::1')).statusCode).toBe(401);
  });

  it("gives a second factor's verify (push polling) its own, larger budget, and keeps the password's", async () => {
    s = await createTestStack({ overrides: { policy: { authRequestsPerMinutePerIp: 3 } } });
    const ip = '198.51.100.20';
    const poll = () =>
      s.app.inject({
        method: 'POST',
        url: '/api/v1/authn/factors/opfunknown00000001/verify',
        remoteAddress: ip,
        payload: { stateToken: 'not-a-state-token' },
      });
    // Ten times the limit of polls from one address (a firm's users waiting for pushes) pass…
    const polls = [];
    for (let i = 0; i < 30; i++) polls.push((await poll()).statusCode);
    expect(polls.every((status) => status !== 429)).toBe(true);
    expect((await poll()).statusCode).toBe(429);
    // …and did not use up the password budget of that address, which still stops at 3.
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await attempt(ip)).statusCode);
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe('behind a reverse proxy (trustProxy)', () => {
  it('counts the address the proxy saw, whatever the client writes into X-Forwarded-For', async () => {
    s = await createTestStack({ overrides: { trustProxy: true, policy: { authRequestsPerMinutePerIp: 3 } } });
    // The proxy (on a private address) appends the client's address to what the client sent.
    const viaProxy = (spoofed: string) => attempt('10.0.0.2', { forwardedFor: `${spoofed}, 203.0.113.50` });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await viaProxy(`192.0.2.${i + 1}`)).statusCode);
    // A new made-up address on every request does not buy a new budget.
    expect(statuses).toEqual([401, 401, 401, 429]);
    // The audit log records the client's address, not the made-up one.
    const [event] = await s.rt.store.repos.audit.listEvents({ limit: 1 });
    expect(event?.ip).toBe('203.0.113.50');
    // The header from a client that is not a trusted proxy is ignored altogether.
    const direct = await attempt('198.51.100.77', { forwardedFor: '203.0.113.50' });
    expect(direct.statusCode).toBe(401);
  });
});

describe('the management API has a budget of its own', () => {
  it('counts its POST, PUT and DELETE in one budget of 600 a minute, apart from the sign-in forms', async () => {
    s = await createTestStack({ overrides: { policy: { authRequestsPerMinutePerIp: 3 } } });
    const ip = '198.51.100.30';
    const token = await createAdminServiceFor(s.rt).createApiToken(CLI_PRINCIPAL, {
      name: 'provisioning script',
      role: 'admin',
      firmId: null,
    });
    if (!token.ok) throw new Error(token.message);
    const headers = { authorization: `SSWS ${token.value.token}` };
    const calls = [
      { method: 'POST', url: '/api/v1/users' },
      { method: 'PUT', url: '/api/v1/users/00unknown0000000000' },
      { method: 'DELETE', url: '/api/v1/users/00unknown0000000000' },
    ] as const;
    const statuses = new Map<number, number>();
    for (let i = 0; i < 600; i++) {
      const call = calls[i % calls.length] ?? calls[0];
      const r = await s.app.inject({ ...call, headers, remoteAddress: ip, payload: {} });
      statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
    }
    // Refused as invalid or unknown, and every one counted, none over the limit yet.
    expect(statuses.get(429)).toBeUndefined();
    expect([...statuses.keys()].every((status) => status >= 400 && status < 500)).toBe(true);
    const over = await s.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/00unknown0000000000',
      headers,
      remoteAddress: ip,
    });
    expect(over.statusCode).toBe(429);
    // The sign-in budget of that address (3) is untouched by all of it.
    const signIns = [];
    for (let i = 0; i < 4; i++) signIns.push((await attempt(ip)).statusCode);
    expect(signIns).toEqual([401, 401, 401, 429]);
  });
});

describeEachBackend('per-IP rate limit across nodes', (backend) => {
  it('is one budget for every node on the database, and starts again when the window ends', async () => {
    s = await createTestStack({ store: backend.store(), overrides: { policy: { authRequestsPerMinutePerIp: 4 } } });
    // A second idp process on the same database, as behind a load balancer.
    const rt = await openEnvironment(s.config, s.rt.environment, {
      logger: pino({ level: 'silent' }),
      clock: s.clock,
      store: backend.connectAgain(),
    });
    const node2 = await buildIdp(rt);
    await node2.ready();
    try {
      const on = (app: typeof node2) => () => attempt('203.0.113.40', { app });
      const statuses = [];
      for (const send of [on(s.app), on(node2), on(s.app), on(node2), on(s.app), on(node2)]) {
        statuses.push((await send()).statusCode);
      }
      // Four attempts in all, whichever node took them; each node alone would have allowed four.
      expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
      const limited = await on(node2)();
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      s.clock.advance(61_000);
      expect((await on(node2)()).statusCode).toBe(401);
      expect((await on(s.app)()).statusCode).toBe(401);
    } finally {
      await node2.close();
      await rt.close();
    }
  });
});
