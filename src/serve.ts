import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { bootstrapEnvironment } from './accounts/bootstrap.ts';
import { buildIdp, type EnvironmentRuntime, openEnvironment } from './app.ts';
import { loadConfig } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { buildDownload } from './download/app.ts';
import { buildPortal } from './portal/app.ts';
import { ensureSampleData } from './refdata/sample-data.ts';

export interface Running {
  config: Readonly<Config>;
  runtimes: EnvironmentRuntime[];
  apps: FastifyInstance[];
  stop(): Promise<void>;
}

/**
 * Starts every configured environment in this process: opens and migrates its database, builds
 * and starts its services, starts its mail worker and, on first start, creates the demo firm and
 * the first administrator.
 */
export async function serve(
  env: NodeJS.ProcessEnv = process.env,
  out: (line: string) => void = console.log,
): Promise<Running> {
  const config = loadConfig(env);
  const logger = pino({ level: config.logLevel, base: { service: 'traqs-mfa' } });
  const runtimes: EnvironmentRuntime[] = [];
  const apps: FastifyInstance[] = [];
  const stop = async () => {
    // Graceful: listeners stop accepting, in-flight requests finish, then workers and databases close.
    await Promise.allSettled(apps.map((a) => a.close()));
    await Promise.allSettled(runtimes.map((r) => r.close()));
  };
  try {
    const adminEmail = env.TRAQS_ADMIN_EMAIL ?? 'admin@traqs.example';
    const lines: string[] = [];
    for (const environment of config.environments) {
      const rt = await openEnvironment(config, environment, { logger });
      runtimes.push(rt);
      const idp = await buildIdp(rt);
      apps.push(idp);
      await idp.listen({ port: environment.idp.port, host: config.host });
      // The portal discovers the idp at its first sign-in, so the order of the two does not matter.
      const portal = await buildPortal(rt);
      apps.push(portal);
      await portal.listen({ port: environment.portal.port, host: config.host });
      const download = await buildDownload(rt);
      apps.push(download);
      await download.listen({ port: environment.download.port, host: config.host });
      rt.startBackgroundJobs();
      // One node at a time: several starting at once on an empty database would each create the
      // first firm and administrator (and the sample files), and all but one would fail.
      const { boot, sample } = await rt.store.exclusive('first-start', async () => ({
        boot: await bootstrapEnvironment(rt, adminEmail),
        // The quick start has reference data to browse and download: a few business days of
        // synthetic files on first run (never in a production deployment).
        sample: config.deployment === 'development' ? await ensureSampleData(rt, { days: 5 }) : [],
      }));
      lines.push(
        '',
        `${environment.label} (${environment.kind} environment, database ${rt.databaseLocation})`,
        `  TRAQS website:         ${environment.portal.publicUrl}/`,
        `  MFA profile / sign-in: ${environment.idp.publicUrl}/signin`,
        `  API Download:          ${environment.download.publicUrl}/v1/files (token: POST ${environment.download.publicUrl}/oauth2/token)`,
      );
      if (sample.length > 0) lines.push(`  Generated ${sample.length} sample reference data files (5 business days).`);
      if (environment.kind === 'test') lines.push(`  Development mailbox:   ${environment.idp.publicUrl}/dev/mailbox`);
      if (boot.activationUrl) {
        lines.push(
          `  First administrator ${boot.adminEmail} (firm "${boot.firmName}") has not activated yet.`,
          `  Open this link to set the password and enroll an authenticator (valid ${config.policy.activationTtlDays} days, single use):`,
          `    ${boot.activationUrl}`,
        );
      } else {
        lines.push(`  Sign in as ${boot.adminEmail} with your password and authenticator code.`);
      }
    }
    out(['traqs-mfa is running.', ...lines, '', 'Stop with Ctrl+C.'].join('\n'));
  } catch (err) {
    await stop();
    throw err;
  }
  return { config, runtimes, apps, stop };
}
