import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestStack, type TestStack } from './helpers/stack.ts';

const dir = mkdtempSync(join(tmpdir(), 'traqs-tls-'));
let s: TestStack | undefined;
afterAll(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  it('serves HTTPS with the configured certificate and marks cookies Secure', async () => {
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'ignore' },
    );
    s = await createTestStack({
      env: { TRAQS_TLS_CERT_FILE: certFile, TRAQS_TLS_KEY_FILE: keyFile, TRAQS_NTF_IDP_URL: 'https://localhost:3101' },
    });
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = s.app.server.address() as AddressInfo;
    const res = await new Promise<{ status: number; cookies: string[]; hsts: string | undefined; cn: string }>(
      (resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/signin', rejectUnauthorized: false }, (r) => {
          const cert = (r.socket as import('node:tls').TLSSocket).getPeerCertificate();
          r.resume();
          resolve({
            status: r.statusCode ?? 0,
            cookies: r.headers['set-cookie'] ?? [],
            hsts: r.headers['strict-transport-security'] as string | undefined,
            cn: String(cert.subject?.CN ?? ''),
          });
        });
        req.on('error', reject);
        req.end();
      },
    );
    expect(res.status).toBe(200);
    expect(res.cn).toBe('localhost');
    expect(res.hsts).toMatch(/max-age=\d+/);
    expect(res.cookies.length).toBeGreaterThan(0);
    for (const c of res.cookies) expect(c).toMatch(/; Secure/);
  });
});
