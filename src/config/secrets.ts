import { hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, EnvironmentConfig } from './schema.ts';

export interface EnvironmentKeys {
  /** Encrypts TOTP seeds (AES-256-GCM). */
  secretBoxKey: Buffer;
  /** Signs cookies (CSRF secret cookie). */
  cookieSecret: string;
  /** Signs oidc-provider's cookies (its `cookies.keys`). */
  oidcCookieKey: string;
  /**
   * The `portal` client's secret at the authorization server: idp and portal of one environment
   * derive the same value from the environment's key, so nothing extra has to be configured.
   */
  portalClientSecret: string;
  /** Signs the client address a front service forwards to the idp (`src/lib/forwarded.ts`). */
  forwardingKey: Buffer;
  /** Keys the per-address request counters (`src/web/rate-limit.ts`): no address can be read back. */
  rateLimitKey: Buffer;
  /** Where the key came from, for the start-up log. */
  source: 'config' | 'generated-file';
}

/**
 * The environment's key-encryption key, from config or (development only) from a 0600 file in the
 * data directory created on first start. Sub-keys are derived with HKDF (RFC 5869) so one secret
 * never serves two purposes.
 */
export function loadEnvironmentKeys(config: Readonly<Config>, env: Readonly<EnvironmentConfig>): EnvironmentKeys {
  let kek: Buffer;
  let source: EnvironmentKeys['source'];
  if (env.kek) {
    kek = Buffer.from(env.kek, 'base64');
    source = 'config';
  } else {
    if (config.deployment === 'production') throw new Error(`environments.${env.id}.kek is required in production`);
    const file = join(config.dataDir, `${env.id}.kek`);
    if (existsSync(file)) {
      kek = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    } else {
      mkdirSync(config.dataDir, { recursive: true });
      kek = randomBytes(32);
      writeFileSync(file, `${kek.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    }
    chmodSync(file, 0o600);
    source = 'generated-file';
  }
  const derive = (info: string) =>
    Buffer.from(hkdfSync('sha256', kek, Buffer.alloc(0), `traqs-mfa/${env.id}/${info}`, 32));
  return {
    secretBoxKey: derive('secret-box'),
    cookieSecret: derive('cookie').toString('base64url'),
    oidcCookieKey: derive('oidc-cookie').toString('base64url'),
    portalClientSecret: derive('portal-client-secret').toString('base64url'),
    forwardingKey: derive('forwarded-for'),
    rateLimitKey: derive('rate-limit'),
    source,
  };
}
