import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestStack, type TestStack } from './helpers/stack.ts';

let s: TestStack;
afterEach(async () => {
  await s?.close();
});

describe('access log', () => {
  it('writes one line per request with the path, never the query string that carries link secrets', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    s = await createTestStack({ logger: pino({ level: 'info' }, sink) });
    const made = await s.rt.accounts.provisionUser({
      email: 'log@acme.example',
      firstName: 'L',
      lastName: 'G',
      firmId: s.firm.id,
    });
    if (!made.ok) throw new Error(made.message);
    const token = new URL(made.activationUrl).searchParams.get('token') ?? '';
    const res = await s.app.inject({ method: 'GET', url: `/activate?token=${token}` });
    expect(res.statusCode).toBe(200);
    const requests = lines.filter((l) => l.msg === 'request');
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ method: 'GET', path: '/activate', status: 200 });
    expect(JSON.stringify(lines)).not.toContain(token);
  });
});
