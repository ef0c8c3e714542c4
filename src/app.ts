import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import fastifyMiddie from '@fastify/middie';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createAccountService } from './accounts/service.ts';
import { registerManagementApi } from './admin/api-routes.ts';
import { registerAdminConsoles } from './admin/console/routes.tsx';
import { createAdminServiceFor } from './admin/service.ts';
import { registerAuthnApi } from './authn/api-routes.ts';
import { createAttemptGuard } from './authn/attempts.ts';
import { createPasswordHasher } from './authn/factors/password/hashing.ts';
import { loadPasswordBlocklist } from './authn/factors/password/policy.ts';
import { createPushFactor } from './authn/factors/push/push.ts';
import { registerPushDeviceApi } from './authn/factors/push/routes.ts';
import { createInProcessSignals, createPostgresSignals, type PushSignals } from './authn/factors/push/signals.ts';
import { createSeedVault } from './authn/factors/totp/seed.ts';
import { createBrowserSessionStarter, registerSignInPages } from './authn/page-routes.tsx';
import { type AuthnDeps, createAuthnService } from './authn/service.ts';
import { createSessionManager } from './authn/sessions.ts';
import type { Config, EnvironmentConfig } from './config/schema.ts';
import { loadEnvironmentKeys } from './config/secrets.ts';
import { migrateToLatest, openDatabase, splitPostgresUrl, sqlitePathFor } from './db/database.ts';
import { createStore, type Store } from './db/store.ts';
import { registerFederationRoutes } from './federation/routes.tsx';
import { createFederationService } from './federation/service.ts';
import { createSecretBox } from './lib/secret-box.ts';
import { type Clock, type RandomBytes, systemClock, systemRandom } from './lib/tokens.ts';
import { registerDevMailbox } from './mail/dev-mailbox.tsx';
import { createNotifier } from './mail/notifications.ts';
import { createConsoleTransport, createSmtpTransport, type MailTransport } from './mail/transport.ts';
import { createMailWorker, type MailWorker } from './mail/worker.ts';
import { registerInteractions } from './oauth/interactions.tsx';
import { createOauthPages } from './oauth/pages.tsx';
import { createAuthorizationServer, OAUTH_MOUNT } from './oauth/provider.ts';
import { createRefreshTokenReminderJob } from './oauth/reminders.ts';
import { registerProfile } from './profile/routes.tsx';
import { createProfileService } from './profile/service.ts';
import { registerReportPages } from './reports/routes.tsx';
import { createReportService } from './reports/service.ts';
import { AccessLog } from './web/access-log.ts';
import type { PageContext } from './web/layout.tsx';
import { databaseRateLimitStore, RATE_LIMIT_WINDOW_MS } from './web/rate-limit.ts';
import { BODY_LIMIT, buildSecurityHeaders, setupWeb } from './web/setup.ts';

export interface RuntimeDeps {
  logger: Logger;
  clock?: Clock;
  random?: RandomBytes;
  /** An already-open store (tests); otherwise the environment's database is opened and migrated. */
  store?: Store;
  /** Overrides the mail transport (tests); otherwise SMTP when configured, else the console. */
  transport?: MailTransport;
  /** Cross-node push signals (tests); otherwise PostgreSQL LISTEN/NOTIFY on PostgreSQL, in process on SQLite. */
  signals?: PushSignals;
}

/** Everything one environment's services share: storage, keys and domain services. */
export async function openEnvironment(
  config: Readonly<Config>,
  environment: Readonly<EnvironmentConfig>,
  deps: RuntimeDeps,
) {
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? systemRandom;
  const logger = deps.logger.child({ environment: environment.id });
  let store = deps.store;
  let databaseLocation = 'provided';
  if (!store) {
    const db = openDatabase(environment.databaseUrl ?? sqlitePathFor(config.dataDir, environment.id));
    await migrateToLatest(db);
    store = createStore(db);
    databaseLocation = db.location;
  }
  const keys = loadEnvironmentKeys(config, environment);
  if (keys.source === 'generated-file') {
    logger.warn(
      `Using a generated key-encryption key in ${config.dataDir}: set TRAQS_${environment.id.toUpperCase()}_KEK before real use`,
    );
  }
  const passwords = createPasswordHasher(config.argon2);
  const emailContext = { environment, contacts: config.contacts };
  const reports = createReportService({ store, environment, clock, random });
  const notifier = createNotifier(emailContext, clock, reports.link);
  const secretBox = createSecretBox(keys.secretBoxKey);
  const seeds = createSeedVault(secretBox, {
    issuer: `TRAQS ${environment.label}`,
    stepSeconds: config.policy.totpStepSeconds,
    driftSteps: config.policy.totpDriftSteps,
  });
  const attempts = createAttemptGuard({ store, policy: config.policy, environment, clock, random, notifier });
  // DESIGN, "Storage and scale": a push answered on one node reaches a sign-in waiting on another.
  const databaseUrl = environment.databaseUrl;
  const postgres =
    !deps.store && databaseUrl && /^postgres(ql)?:\/\//.test(databaseUrl) ? splitPostgresUrl(databaseUrl) : undefined;
  const signals =
    deps.signals ??
    (postgres
      ? createPostgresSignals(postgres.url, {
          schema: postgres.schema,
          onError: (err) => logger.warn({ err }, 'Push signal connection failed'),
        })
      : createInProcessSignals());
  const push = createPushFactor({
    store,
    policy: config.policy,
    clock,
    random,
    secretBox,
    seeds,
    signals,
    attempts,
    notifier,
    idpUrl: environment.idp.publicUrl,
    reportLink: reports.link,
  });
  // Sign-in and the profile check and change the same credentials with the same services.
  const credentials: AuthnDeps = {
    store,
    policy: config.policy,
    clock,
    random,
    passwords,
    seeds,
    blocklist: loadPasswordBlocklist(),
    notifier,
    attempts,
    push,
  };
  const authn = createAuthnService(credentials);
  const sessions = createSessionManager(
    store,
    { idleMinutes: config.policy.sessionIdleMinutes, absoluteHours: config.policy.sessionAbsoluteHours },
    clock,
    random,
  );
  const accounts = createAccountService({ store, config, environment, clock, random, notifier });
  const federation = createFederationService({
    store,
    secretBox,
    clock,
    random,
    authn,
    publicUrl: environment.idp.publicUrl,
  });
  const profile = createProfileService(credentials);

  let transport = deps.transport;
  if (!transport && config.smtp.url) transport = createSmtpTransport(config.smtp.url);
  // Without SMTP a production environment keeps its mail in the outbox until a relay is configured.
  if (!transport && environment.kind === 'test') transport = createConsoleTransport(logger, environment);
  const mailWorker: MailWorker | undefined = transport
    ? createMailWorker({
        store,
        transport,
        clock,
        logger,
        from: config.smtp.from,
        // With a relay the bodies go; without one they stay for the development mailbox.
        redactDelivered: !!config.smtp.url,
      })
    : undefined;
  if (!transport) logger.warn('No SMTP relay configured (TRAQS_SMTP_URL): mail stays in the outbox');
  const refreshTokenReminders = createRefreshTokenReminderJob({
    store,
    notifier,
    clock,
    logger,
    reminderDays: config.policy.refreshTokenReminderDays,
    programmaticUrl: `${environment.portal.publicUrl}/api/programmatic`,
  });

  return {
    config,
    environment,
    logger,
    clock,
    random,
    store,
    databaseLocation,
    keys,
    passwords,
    notifier,
    reports,
    authn,
    sessions,
    accounts,
    federation,
    profile,
    push,
    mailWorker,
    refreshTokenReminders,
    /** Starts the background work of a serving node: mail delivery and refresh-token reminders. */
    startBackgroundJobs() {
      mailWorker?.start(1000);
      // Every node runs it; each reminder is claimed by exactly one (src/oauth/reminders.ts).
      refreshTokenReminders.start(15 * 60_000);
    },
    async close() {
      await refreshTokenReminders.stop();
      await mailWorker?.stop();
      await transport?.close();
      await signals.close();
      await store.close();
    },
  };
}
export type EnvironmentRuntime = Awaited<ReturnType<typeof openEnvironment>>;

/** Cookie names carry environment and service: browsers share cookies across ports of one host. */
export function cookiePrefix(environmentId: string, service: string): string {
  return `traqs_${environmentId.replace(/-/g, '_')}_${service}`;
}

/** The idp service (sign-in, enrollment, the MFA profile), built without listening. */
export async function buildIdp(rt: EnvironmentRuntime): Promise<FastifyInstance> {
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
    loggerInstance: rt.logger.child({ service: 'idp' }) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    logController: new AccessLog(),
    trustProxy: config.trustProxy,
  });
  const prefix = cookiePrefix(environment.id, 'idp');
  const secureCookies = environment.idp.publicUrl.startsWith('https://');
  const page = (): Omit<PageContext, 'csrfToken' | 'signedInAs'> => ({
    environment,
    contacts: config.contacts,
    serviceName: 'TRAQS MFA Profile',
  });
  const sidCookie = `${prefix}_sid`;
  // The sign-in form's redirects end at the OAuth clients' callbacks (CSP form-action).
  const formActionOrigins = [new URL(environment.portal.publicUrl).origin];

  // The authorization server answers everything under /oauth2/default before Fastify's own hooks
  // (body parsing, CSRF, the per-IP POST limit of the sign-in pages): it has its own protocol
  // protections, and programs call its token endpoint at a rate no person signs in at.
  const oauth = await createAuthorizationServer({
    config,
    environment,
    store: rt.store,
    clock: rt.clock,
    logger: rt.logger,
    keys: rt.keys,
    sessions: rt.sessions,
    notifier: rt.notifier,
    sidCookie,
    cookiePrefix: prefix,
    pages: createOauthPages({ page, securityHeaders: buildSecurityHeaders(secureCookies, formActionOrigins) }),
  });
  // For tests and tools that need the provider itself (key reloads).
  app.decorate('authorizationServer', oauth);
  await app.register(fastifyMiddie, { hook: 'onRequest' });
  app.use(OAUTH_MOUNT, (req: IncomingMessage, res: ServerResponse) => oauth.handle(req, res));
  // Firms' IdP metadata published at an https URL, fetched again once every 24 hours (a key
  // rollover at the IdP needs no one here). One run at a time on this node; across nodes the
  // service lets only the node that claims a configuration fetch it.
  let refreshingIdpMetadata = false;
  const refreshIdpMetadata = () => {
    if (refreshingIdpMetadata) return;
    refreshingIdpMetadata = true;
    void rt.federation
      .refreshDueMetadata(rt.logger)
      .catch((err) => rt.logger.error({ err }, 'Refreshing IdP metadata failed'))
      .finally(() => {
        refreshingIdpMetadata = false;
      });
  };
  // Another node or `traqs keys rotate` may change the signing keys; expired protocol rows go.
  const housekeeping = setInterval(() => {
    void oauth.reloadKeysIfChanged().catch((err) => rt.logger.error({ err }, 'Reloading signing keys failed'));
    void rt.store.repos.oauth
      .deleteExpiredOidcModels(rt.clock())
      .catch((err) => rt.logger.error({ err }, 'Deleting expired OAuth records failed'));
    // Every service of the environment counts in its database; the idp sweeps ended windows.
    void rt.store.repos.rateLimits
      .deleteStartedBefore(rt.clock() - RATE_LIMIT_WINDOW_MS)
      .catch((err) => rt.logger.error({ err }, 'Deleting ended rate-limit windows failed'));
    refreshIdpMetadata();
  }, 60_000);
  housekeeping.unref();
  app.addHook('onClose', async () => clearInterval(housekeeping));

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
    formActionOrigins,
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

  registerAuthnApi(app, rt.authn, environment.idp.publicUrl, config.policy.passwordMinLength);
  registerManagementApi(app, rt);
  registerPushDeviceApi(app, rt.push);
  const sessionSettings = {
    authn: rt.authn,
    sessions: rt.sessions,
    cookiePrefix: prefix,
    secureCookies,
    sessionAbsoluteHours: config.policy.sessionAbsoluteHours,
  };
  const federated = registerFederationRoutes(app, {
    federation: rt.federation,
    startSession: createBrowserSessionStarter(sessionSettings),
    cookiePrefix: prefix,
    secureCookies,
    page,
  });
  registerSignInPages(app, {
    ...sessionSettings,
    federatedSignIn: federated.sendToIdp,
    transactionMinutes: config.policy.transactionMinutes,
    passwordMinLength: config.policy.passwordMinLength,
    lockoutMinutes: config.policy.lockoutAutoUnlockMinutes,
    lockoutsBeforeSupportUnlock: config.policy.lockoutsBeforeSupportUnlock,
    page,
  });
  registerInteractions(app, {
    server: oauth,
    authn: rt.authn,
    sessions: rt.sessions,
    store: rt.store,
    clock: rt.clock,
    sidCookie,
    returnCookie: `${prefix}_return`,
    secureCookies,
    programmaticMaxAgeMinutes: config.policy.programmaticSignInMaxAgeMinutes,
    transactionMinutes: config.policy.transactionMinutes,
    page,
  });
  registerProfile(app, {
    profile: rt.profile,
    sessions: rt.sessions,
    sidCookie,
    passwordMinLength: config.policy.passwordMinLength,
    page,
  });
  registerReportPages(app, { reports: rt.reports, page });
  registerAdminConsoles(app, {
    admin: createAdminServiceFor(rt),
    profile: rt.profile,
    sessions: rt.sessions,
    sidCookie,
    page,
    firmIdentityProvider: async (firmId) => {
      const idp = await rt.store.repos.federation.findIdentityProviderOfFirm(firmId);
      return idp ? { id: idp.id, name: idp.name, protocol: idp.protocol } : undefined;
    },
  });
  // The development mailbox shows links that are bearer secrets: only for a test environment that
  // has no SMTP relay (the quick start), never where mail is really delivered (DESIGN, "Email").
  if (environment.kind === 'test' && !config.smtp.url) registerDevMailbox(app, { store: rt.store, page });
  return app;
}
