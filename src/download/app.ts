import { readFileSync } from 'node:fs';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import type { EnvironmentRuntime } from '../app.ts';
import type { Config, EnvironmentConfig } from '../config/schema.ts';
import { fileStoreDirectory } from '../refdata/file-store.ts';
import { AccessLog } from '../web/access-log.ts';
import { buildSecurityHeaders } from '../web/setup.ts';
import { type AccessGrant, createAccessTokenVerifier, KeySetUnavailableError } from './access-token.ts';
import { createAuditBatch } from './audit-batch.ts';
import { createCatalog } from './catalog.ts';
import { bearerChallenge, DownloadError, errorBody, MissingTokenError } from './errors.ts';
import { createSmallFileCache } from './file-cache.ts';
import { createRateLimiter, DEFAULT_RATE_LIMIT, type RateLimitPolicy } from './rate-limit.ts';
import { DOWNLOAD_SCOPE, downloadEvent, registerDownloadRoutes } from './routes.ts';
import { createTokenProxy } from './token-proxy.ts';

/** Tuning of the download service; every field has a default fit for production. */
export interface DownloadOptions {
  /** Per-user token bucket (default 600 a minute, bursts of 100). */
  rateLimit?: Partial<RateLimitPolicy>;
  /** Where the catalog's relative paths point (default `{dataDir}/files/{environment id}`). */
  fileStoreDir?: string;
  /** The authorization server's key set (default `{issuer}/v1/keys`); an internal URL may be given. */
  jwksUrl?: string;
  /** The token endpoint `POST /oauth2/token` forwards to (default `{issuer}/v1/token`). */
  tokenEndpoint?: string;
  /** The key set as a function instead of a URL (tests, benchmarks). */
  keys?: JWTVerifyGetKey;
  /** An unknown `kid` fetches the key set again at most this often (jose's default 30 s). */
  jwksCooldownMs?: number;
  /** Verified access tokens remembered (default 10,000). */
  tokenCacheSize?: number;
  /** The in-memory catalog is read again after this long (default 5 s; 0 reads it per request). */
  catalogRefreshMs?: number;
  /** Audit events are written at least this often (default 100 ms)… */
  auditFlushMs?: number;
  /** …or as soon as this many wait (default 500), in one multi-row INSERT. */
  auditBatchSize?: number;
  /** Small files (≤ 64 KiB) kept in memory, in bytes (default 32 MiB; 0 reads every download from the disk). */
  smallFileCacheBytes?: number;
  /** A kept small file is read from the disk again after this long (default 60 s). */
  smallFileCacheMs?: number;
  /** How long a forwarded token request may take (default 10 s). */
  tokenTimeoutMs?: number;
}

/** The reference files' directory of an environment: `{dataDir}/files/{environment id}`. */
export function defaultFileStoreDir(config: Readonly<Config>, environment: Readonly<EnvironmentConfig>): string {
  return fileStoreDirectory(config.dataDir, environment.id);
}

const counters = new WeakMap<FastifyInstance, Readonly<{ verifications: number; cacheHits: number }>>();

/** Access-token signature verifications and cache hits of a built download app since it was built. */
export function tokenVerificationCounters(app: FastifyInstance): { verifications: number; cacheHits: number } {
  const c = counters.get(app);
  return { verifications: c?.verifications ?? 0, cacheHits: c?.cacheHits ?? 0 };
}

/** Request bodies are token requests and small forms (RFC 6749 §4.1.3, the legacy handler's fields). */
export const DOWNLOAD_BODY_LIMIT = 8 * 1024;

/**
 * The `download` service ("API Download"): reference-data files for programs, authorised by the
 * authorization server's JWT access tokens with no database round trip, plus the token endpoint
 * under the same base URL and RFC 9728 metadata. Built without listening (CONVENTIONS 10); closing
 * the app writes the audit events still buffered.
 */
export async function buildDownload(rt: EnvironmentRuntime, options: DownloadOptions = {}): Promise<FastifyInstance> {
  const { config, environment } = rt;
  const publicUrl = environment.download.publicUrl;
  const issuer = `${environment.idp.publicUrl}/oauth2/default`;
  const metadataUrl = `${publicUrl}/.well-known/oauth-protected-resource`;
  const realm = `TRAQS API Download (${environment.label})`;
  const logger = rt.logger.child({ service: 'download' });

  const app: FastifyInstance = Fastify({
    ...(config.tls
      ? {
          https: {
            cert: readFileSync(config.tls.certFile),
            key: readFileSync(config.tls.keyFile),
            minVersion: 'TLSv1.2' as const,
          },
        }
      : {}),
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: DOWNLOAD_BODY_LIMIT,
    logController: new AccessLog(),
    trustProxy: config.trustProxy,
    // The legacy handler's ASP.NET clients do not all agree on the spelling of its path.
    routerOptions: { caseSensitive: false },
  });

  const rateLimit: RateLimitPolicy = { ...DEFAULT_RATE_LIMIT, ...options.rateLimit };
  const keys =
    options.keys ??
    createRemoteJWKSet(new URL(options.jwksUrl ?? `${issuer}/v1/keys`), {
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: 10 * 60_000,
      timeoutDuration: 5_000,
    });
  const verifier = createAccessTokenVerifier({
    issuer,
    audience: publicUrl,
    keys,
    clock: rt.clock,
    cacheSize: options.tokenCacheSize ?? 10_000,
  });
  const audit = createAuditBatch({
    store: rt.store,
    logger,
    flushMs: options.auditFlushMs ?? 100,
    batchSize: options.auditBatchSize ?? 500,
  });
  const grants = new WeakMap<FastifyRequest, AccessGrant>();
  counters.set(app, verifier.counters);
  app.addHook('onClose', async () => audit.close());

  // Every body is read as bytes: the token endpoint passes it on untouched, the legacy handler
  // parses its form itself.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const securityHeaders = buildSecurityHeaders(publicUrl.startsWith('https://'));
  // Callback-style hooks: on the hot path an async hook costs a promise per request.
  app.addHook('onRequest', (_req, reply, done) => {
    reply.headers(securityHeaders);
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    // API answers carry per-user data: never cached unless a route says otherwise.
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    done(null, payload);
  });

  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    if (err instanceof DownloadError) {
      if (err.status === 401) {
        const challenge =
          err instanceof MissingTokenError
            ? bearerChallenge(realm, metadataUrl)
            : bearerChallenge(realm, metadataUrl, { code: err.code, description: err.description });
        reply.header('www-authenticate', challenge);
      } else if (err.code === 'insufficient_scope') {
        reply.header(
          'www-authenticate',
          `${bearerChallenge(realm, metadataUrl, { code: err.code, description: err.description })}, scope="${DOWNLOAD_SCOPE}"`,
        );
      }
      const grant = grants.get(req);
      if (grant && req.method !== 'HEAD') {
        audit.record(
          downloadEvent(req, grant, 'download.refused', err.status >= 500 ? 'failure' : 'denied', rt.clock(), {
            status: err.status,
            error: err.code,
            reason: err.description,
          }),
        );
      }
      return reply.code(err.status).headers(err.headers).send(errorBody(err.code, err.description));
    }
    if (err instanceof KeySetUnavailableError) {
      req.log.error({ err }, 'Access token not verified: the key set is unavailable');
      return reply
        .code(503)
        .header('retry-after', '5')
        .send(
          errorBody('temporarily_unavailable', 'access tokens cannot be verified at the moment; try again shortly'),
        );
    }
    const fastifyError = err as FastifyError;
    const status = fastifyError.statusCode ?? 500;
    if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply
        .code(413)
        .send(errorBody('invalid_request', `request bodies are limited to ${DOWNLOAD_BODY_LIMIT / 1024} KiB`));
    }
    if (status >= 400 && status < 500) {
      req.log.info({ code: fastifyError.code }, 'request refused');
      return reply.code(status).send(errorBody('invalid_request', fastifyError.message));
    }
    req.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('server_error', 'internal error; try again later'));
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send(errorBody('not_found', `no such path: ${req.method} ${req.url.split('?')[0]?.slice(0, 200) ?? ''}`)),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await rt.store.repos.settings.getSetting('ready-probe');
      return { status: 'ready' };
    } catch {
      return reply.code(503).send({ status: 'database unavailable' });
    }
  });

  // RFC 9728 §2–3: where this API's tokens come from and how to present them.
  app.get('/.well-known/oauth-protected-resource', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return {
      resource: publicUrl,
      authorization_servers: [issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: [DOWNLOAD_SCOPE],
      resource_name: realm,
    };
  });

  app.post(
    '/oauth2/token',
    createTokenProxy({
      tokenEndpoint: options.tokenEndpoint ?? `${issuer}/v1/token`,
      forwardingKey: rt.keys.forwardingKey,
      clock: rt.clock,
      timeoutMs: options.tokenTimeoutMs ?? 10_000,
    }),
  );

  registerDownloadRoutes(app, {
    publicUrl,
    contacts: config.contacts,
    clock: rt.clock,
    verifier,
    limiter: createRateLimiter(rateLimit, rt.clock),
    rateLimitPerMinute: rateLimit.perMinute,
    catalog: createCatalog({
      repo: rt.store.repos.refdata,
      clock: rt.clock,
      refreshMs: options.catalogRefreshMs ?? 5_000,
      logger,
    }),
    refdata: rt.store.repos.refdata,
    storeDir: options.fileStoreDir ?? defaultFileStoreDir(config, environment),
    fileCache: createSmallFileCache({
      maxBytes: options.smallFileCacheBytes ?? 32 * 2 ** 20,
      ttlMs: options.smallFileCacheMs ?? 60_000,
      clock: rt.clock,
    }),
    audit,
    grants,
  });
  return app;
}
