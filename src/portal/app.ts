import { readFileSync } from 'node:fs';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { cookiePrefix, type EnvironmentRuntime } from '../app.ts';
import { createSecretBox } from '../lib/secret-box.ts';
import { AccessLog } from '../web/access-log.ts';
import type { PageContext } from '../web/layout.tsx';
import { databaseRateLimitStore } from '../web/rate-limit.ts';
import { BODY_LIMIT, setupWeb } from '../web/setup.ts';
import { createPortalOidc, type PortalOidc } from './oidc-client.ts';
import { registerPortalRoutes } from './routes.tsx';
import { createPortalService } from './service.ts';
import { createPortalSessionManager } from './sessions.ts';

export interface PortalDeps {
  /** Replaces the OpenID Connect client (page tests without an idp); otherwise the environment's idp. */
  oidc?: PortalOidc;
}

/** The authorization server of an environment: the idp's `default` server, Okta's name for it. */
export function issuerOf(idpPublicUrl: string): string {
  return `${idpPublicUrl}/oauth2/default`;
}

/**
 * The portal service (the "TRAQS website"), built without listening: an OpenID Connect client of
 * the environment's idp, with its own sessions, the API menu and the Programmatic page.
 */
export async function buildPortal(rt: EnvironmentRuntime, deps: PortalDeps = {}): Promise<FastifyInstance> {
  const { config, environment } = rt;
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
    loggerInstance: rt.logger.child({ service: 'portal' }) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    logController: new AccessLog(),
    trustProxy: config.trustProxy,
  });
  const prefix = cookiePrefix(environment.id, 'portal');
  const secureCookies = environment.portal.publicUrl.startsWith('https://');
  const page = (): Omit<PageContext, 'csrfToken' | 'signedInAs'> => ({
    environment,
    contacts: config.contacts,
    serviceName: 'TRAQS',
  });
  await setupWeb(app, {
    cookiePrefix: prefix,
    secureCookies,
    cookieSecret: rt.keys.cookieSecret,
    postsPerMinutePerIp: config.policy.authRequestsPerMinutePerIp,
    rateLimitStore: databaseRateLimitStore({
      repository: rt.store.repos.rateLimits,
      clock: rt.clock,
      service: prefix,
      key: rt.keys.rateLimitKey,
    }),
    // Signing out and asking for a refresh token are forms whose answer redirects to the idp
    // (browsers apply CSP form-action to those redirects too).
    formActionOrigins: [new URL(environment.idp.publicUrl).origin],
    page,
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await rt.store.repos.settings.getSetting('ready-probe');
      return { status: 'ready' };
    } catch {
      return reply.status(503).send({ status: 'database unavailable' });
    }
  });

  const log = app.log;
  const oidc =
    deps.oidc ??
    createPortalOidc({
      issuer: issuerOf(environment.idp.publicUrl),
      portalUrl: environment.portal.publicUrl,
      downloadUrl: environment.download.publicUrl,
      portalClientSecret: rt.keys.portalClientSecret,
      apiSignInMaxAgeSeconds: config.policy.programmaticSignInMaxAgeMinutes * 60,
      clock: rt.clock,
      log: (message, err) => log.warn({ err }, message),
    });
  const sessions = createPortalSessionManager(
    rt.store,
    { idleMinutes: config.policy.sessionIdleMinutes, absoluteHours: config.policy.sessionAbsoluteHours },
    rt.clock,
    rt.random,
  );
  const service = createPortalService({
    store: rt.store,
    sessions,
    clock: rt.clock,
    refreshTokenMonths: config.policy.refreshTokenMonths,
    secretBox: createSecretBox(rt.keys.secretBoxKey),
  });
  // Ended sessions are kept a day (the audit log keeps the sign-ins and sign-outs), then deleted.
  const housekeeping = setInterval(() => {
    void rt.store.repos.portalSessions
      .deleteEndedBefore(rt.clock() - 86_400_000)
      .catch((err) => log.error({ err }, 'Deleting ended portal sessions failed'));
  }, 600_000);
  housekeeping.unref();
  app.addHook('onClose', async () => clearInterval(housekeeping));

  registerPortalRoutes(app, {
    service,
    oidc,
    clock: rt.clock,
    cookiePrefix: prefix,
    secureCookies,
    portalUrl: environment.portal.publicUrl,
    idpUrl: environment.idp.publicUrl,
    // As long as a sign-in transaction at the idp may last: the redirect comes back within it.
    flowMinutes: config.policy.transactionMinutes,
    downloadUrl: environment.download.publicUrl,
    facts: {
      tokenUrl: `${environment.download.publicUrl}/oauth2/token`,
      refreshTokenMonths: config.policy.refreshTokenMonths,
      accessTokenMinutes: config.policy.accessTokenMinutes,
      reminderDays: config.policy.refreshTokenReminderDays,
    },
    page,
  });
  return app;
}
