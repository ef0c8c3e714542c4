import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backoffDelay, createEventParser, type ServerEvent } from './events.ts';
import { parseActivation } from './main.ts';
import { loadEnrollment, openKey, protectKey, saveEnrollment } from './state.ts';

describe('server-sent events parser', () => {
  it('joins chunks into events, skips comments, reports retry', () => {
    const events: ServerEvent[] = [];
    let retry = 0;
    const feed = createEventParser(
      (e) => events.push(e),
      (ms) => {
        retry = ms;
      },
    );
    feed('retry: 2000\n\n: heartbeat\n\nid: pch1\nevent: pu');
    feed('sh\ndata: {"a":1}\r\n\r\ndata: x\ndata: y\n\n');
    expect(retry).toBe(2000);
    expect(events).toEqual([
      { event: 'push', data: '{"a":1}', id: 'pch1' },
      { event: 'message', data: 'x\ny', id: 'pch1' },
    ]);
  });

  it('backs off exponentially with full jitter, capped', () => {
    expect(backoffDelay(0, () => 0.999, 500, 30_000)).toBe(499);
    expect(backoffDelay(3, () => 0.5, 500, 30_000)).toBe(2000);
    expect(backoffDelay(20, () => 0.999, 500, 30_000)).toBe(29_970);
  });
});

describe('activation input', () => {
  it('takes the idp and the code from a link, or the code with --url', () => {
    const code = 'A'.repeat(43);
    expect(parseActivation(`https://mpp.example.org/verify/activate?code=${code}`, undefined, false)).toEqual({
      idpUrl: 'https://mpp.example.org',
      code,
    });
    expect(parseActivation(code, 'http://localhost:3101', false)).toEqual({ idpUrl: 'http://localhost:3101', code });
    expect(() => parseActivation(code, undefined, false)).toThrow(/--url/);
    expect(() => parseActivation(`http://mpp.example.org/verify/activate?code=${code}`, undefined, false)).toThrow(
      /plain HTTP/,
    );
    expect(() => parseActivation('https://mpp.example.org/verify/activate?code=x', undefined, false)).toThrow(
      /not an activation/,
    );
  });
});

describe('device key at rest', () => {
  it('seals the private key with a passphrase (scrypt + AES-256-GCM) in a 0600 file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'traqs-verify-unit-'));
    try {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const key = protectKey(privateKey, 'correct horse');
      expect(JSON.stringify(key)).not.toContain('PRIVATE KEY');
      const home = join(dir, 'home');
      saveEnrollment(home, {
        version: 1,
        idpUrl: 'http://localhost:3101',
        deviceId: 'pfdAAAAAAAAAAAAAAAAA',
        deviceToken: 'token',
        name: 'laptop',
        login: 'a@b.example',
        totp: { sharedSecret: 'JBSWY3DPEHPK3PXP', period: 30, digits: 6 },
        key,
      });
      expect(statSync(join(home, 'enrollment.json')).mode & 0o777).toBe(0o600);
      const loaded = loadEnrollment(home);
      if (!loaded) throw new Error('not saved');
      const opened = openKey(loaded.key, 'correct horse');
      expect(opened.export({ format: 'jwk' })).toEqual(privateKey.export({ format: 'jwk' }));
      expect(() => openKey(loaded.key, 'wrong')).toThrow(/Wrong passphrase/);
      expect(() => openKey(loaded.key, undefined)).toThrow(/protected by a passphrase/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
