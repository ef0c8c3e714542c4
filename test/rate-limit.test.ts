import { afterEach, describe, expect, it } from 'vitest';
import { createTestStack, type TestStack } from './helpers/stack.ts';

let s: TestStack;
afterEach(async () => {
  await s?.close();
});

describe('per-IP rate limit in front of sign-in', () => {
  it('answers 429 with Retry-After and an Okta error once an address exceeds the limit', async () => {
    s = await createTestStack({ overrides: { policy: { authRequestsPerMinutePerIp: 5 } } });
    const attempt = (ip: string) =>
      s.app.inject({
        method: 'POST',
        url: '/api/v1/authn',
        remoteAddress: ip,
        payload: { username: 'nobody@acme.example', password: 'guess guess guess' },
      });
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
});
