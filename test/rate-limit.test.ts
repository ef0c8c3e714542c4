import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildIdp, openEnvironment } from '../src/app.ts';
import { describeEachBackend } from './helpers/databases.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';

let s: TestStack;
afterEach(async () => {
  await s?.close();
});

/** A wrong password at the Authentication API from `ip`. */
const attempt = (ip: string) =>
  s.app.inject({
    method: 'POST',
    url: '/api/v1/authn',
    remoteAddress: ip,
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
      const on = (node: typeof node2) => () =>
        node.inject({
          method: 'POST',
          url: '/api/v1/authn',
          remoteAddress: '203.0.113.40',
          payload: { username: 'nobody@acme.example', password: 'guess guess guess' },
        });
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
