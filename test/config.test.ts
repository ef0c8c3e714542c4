import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';

describe('configuration', () => {
  it('defaults to the DESIGN contract: production on 3000-3002, ntf on 3100-3102, localhost URLs', () => {
    const c = loadConfig({});
    expect(c.environments.map((e) => [e.id, e.kind, e.portal.port, e.idp.port, e.download.port])).toEqual([
      ['production', 'production', 3000, 3001, 3002],
      ['ntf', 'test', 3100, 3101, 3102],
    ]);
    expect(c.environments[1]?.idp.publicUrl).toBe('http://localhost:3101');
    expect(c.policy).toMatchObject({ passwordMinLength: 12, activationTtlDays: 30, maxFailedAttempts: 5 });
    expect(Object.isFrozen(c) && Object.isFrozen(c.environments[0]?.idp)).toBe(true);
  });

  it('reports every problem at once, not just the first', () => {
    let err: unknown;
    try {
      loadConfig({ TRAQS_NTF_IDP_PORT: '99999', TRAQS_LOG_LEVEL: 'loud', TRAQS_SMTP_URL: 'not a url' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/logLevel/);
    expect(problems).toMatch(/smtp\.url/);
    expect(problems).toMatch(/environments\.1\.idp\.port/);
  });

  it('trusts X-Forwarded-For only from named proxies: true means private addresses, never everyone', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRAQS_TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ TRAQS_TRUST_PROXY: 'true' }).trustProxy).toBe('loopback, linklocal, uniquelocal');
    expect(loadConfig({ TRAQS_TRUST_PROXY: '10.0.0.0/8, 192.0.2.7' }).trustProxy).toBe('10.0.0.0/8, 192.0.2.7');
    expect(() => loadConfig({ TRAQS_TRUST_PROXY: 'everyone' })).toThrow(/trustProxy: a comma-separated list/);
  });

  it('refuses development defaults in a production deployment', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      /https:\/\/ in production[\s\S]*kek: required in production/,
    );
  });

  it('refuses two services on one port and an unknown environment name', () => {
    expect(() => loadConfig({ TRAQS_NTF_IDP_PORT: '3001' })).toThrow(/3001 is already used/);
    expect(() => loadConfig({ TRAQS_ENVIRONMENTS: 'staging' })).toThrow(/unknown environment "staging"/);
  });

  it('takes per-environment database URLs and keys from the environment', () => {
    const kek = Buffer.alloc(32, 7).toString('base64');
    const c = loadConfig({
      DATABASE_URL: 'postgres://db/all',
      TRAQS_NTF_DATABASE_URL: 'postgres://db/ntf',
      TRAQS_NTF_KEK: kek,
    });
    expect(c.environments.find((e) => e.id === 'ntf')).toMatchObject({ databaseUrl: 'postgres://db/ntf', kek });
    expect(c.environments.find((e) => e.id === 'production')?.databaseUrl).toBe('postgres://db/all');
  });
});
