import { readFileSync } from 'node:fs';
import { type Config, configSchema } from './schema.ts';

/** Thrown when configuration is invalid; `problems` lists every issue found, not just the first. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

/** The DESIGN contract: production on 3000-3002, ntf on 3100-3102, host `localhost`. */
export function defaultEnvironments(publicHost = 'localhost'): Json[] {
  const env = (id: string, label: string, kind: string, base: number): Json => ({
    id,
    label,
    kind,
    portal: { port: base, publicUrl: `http://${publicHost}:${base}` },
    idp: { port: base + 1, publicUrl: `http://${publicHost}:${base + 1}` },
    download: { port: base + 2, publicUrl: `http://${publicHost}:${base + 2}` },
  });
  return [env('production', 'Production', 'production', 3000), env('ntf', 'NTF', 'test', 3100)];
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const prev = out[k];
    out[k] = isObject(prev) && isObject(v) ? merge(prev, v) : v;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function envKey(id: string): string {
  return id.toUpperCase().replace(/-/g, '_');
}

/**
 * Reads environment variables over an optional JSON config file (`TRAQS_CONFIG`) over defaults,
 * validates the result once and returns it frozen. Every problem is reported together.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Json = {}): Readonly<Config> {
  const problems: string[] = [];
  let fromFile: Json = {};
  if (env.TRAQS_CONFIG) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(env.TRAQS_CONFIG, 'utf8'));
      if (!isObject(parsed)) problems.push(`${env.TRAQS_CONFIG}: the config file must hold a JSON object`);
      else fromFile = parsed;
    } catch (err) {
      problems.push(`${env.TRAQS_CONFIG}: ${(err as Error).message}`);
    }
  }

  const fromEnv: Json = {};
  if (env.TRAQS_DATA_DIR) fromEnv.dataDir = env.TRAQS_DATA_DIR;
  if (env.TRAQS_HOST) fromEnv.host = env.TRAQS_HOST;
  if (env.TRAQS_LOG_LEVEL) fromEnv.logLevel = env.TRAQS_LOG_LEVEL;
  if (env.TRAQS_DEPLOYMENT) fromEnv.deployment = env.TRAQS_DEPLOYMENT;
  else if (env.NODE_ENV === 'production') fromEnv.deployment = 'production';
  if (env.TRAQS_TRUST_PROXY) {
    const v = env.TRAQS_TRUST_PROXY;
    fromEnv.trustProxy = v === 'true' ? true : v === 'false' ? false : v;
  }
  if (env.TRAQS_TLS_CERT_FILE || env.TRAQS_TLS_KEY_FILE) {
    fromEnv.tls = { certFile: env.TRAQS_TLS_CERT_FILE, keyFile: env.TRAQS_TLS_KEY_FILE };
  }
  const smtp: Json = {};
  if (env.TRAQS_SMTP_URL) smtp.url = env.TRAQS_SMTP_URL;
  if (env.TRAQS_SMTP_FROM) smtp.from = env.TRAQS_SMTP_FROM;
  if (Object.keys(smtp).length) fromEnv.smtp = smtp;

  let merged = merge(merge({}, fromFile), fromEnv);
  merged = merge(merged, overrides);

  let environments = Array.isArray(merged.environments)
    ? (merged.environments as unknown[])
    : defaultEnvironments(env.TRAQS_PUBLIC_HOST || 'localhost');
  if (env.TRAQS_ENVIRONMENTS) {
    const wanted = env.TRAQS_ENVIRONMENTS.split(',').map((s) => s.trim());
    const known = environments.filter(isObject).map((e) => String(e.id));
    for (const w of wanted) if (!known.includes(w)) problems.push(`TRAQS_ENVIRONMENTS: unknown environment "${w}"`);
    environments = environments.filter((e) => isObject(e) && wanted.includes(String(e.id)));
  }
  merged.environments = environments.map((e) => {
    if (!isObject(e)) return e;
    const id = envKey(String(e.id));
    const out: Json = { ...e };
    const db = env[`TRAQS_${id}_DATABASE_URL`] ?? env.DATABASE_URL;
    if (db) out.databaseUrl = db;
    const kek = env[`TRAQS_${id}_KEK`];
    if (kek) out.kek = kek;
    for (const svc of ['idp', 'portal', 'download'] as const) {
      const port = env[`TRAQS_${id}_${svc.toUpperCase()}_PORT`];
      const url = env[`TRAQS_${id}_${svc.toUpperCase()}_URL`];
      if ((port || url) && isObject(out[svc])) {
        const s: Json = { ...(out[svc] as Json) };
        if (port) s.port = Number(port);
        if (url) s.publicUrl = url;
        out[svc] = s;
      }
    }
    return out;
  });

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(`${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    throw new ConfigError(problems);
  }
  const config = result.data;
  problems.push(...checkConsistency(config));
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(config);
}

function checkConsistency(config: Config): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  const ports = new Map<number, string>();
  for (const e of config.environments) {
    if (ids.has(e.id)) problems.push(`environments: "${e.id}" appears twice`);
    ids.add(e.id);
    for (const svc of ['idp', 'portal', 'download'] as const) {
      const { port, publicUrl } = e[svc];
      const where = `environments.${e.id}.${svc}`;
      if (port !== 0) {
        const other = ports.get(port);
        if (other) problems.push(`${where}.port: ${port} is already used by ${other}`);
        ports.set(port, where);
      }
      if (config.deployment === 'production') {
        // Secrets and cookies must never cross plain HTTP in a real deployment (OWASP ASVS 9.1.1).
        if (!publicUrl.startsWith('https://')) problems.push(`${where}.publicUrl: must be https:// in production`);
      }
    }
    if (e.kek !== undefined && Buffer.from(e.kek, 'base64').length !== 32) {
      problems.push(`environments.${e.id}.kek: must be 32 bytes, base64-encoded`);
    }
    if (config.deployment === 'production' && !e.kek) {
      problems.push(
        `environments.${e.id}.kek: required in production (set TRAQS_${envKey(e.id)}_KEK); generated keys are for development only`,
      );
    }
  }
  return problems;
}
