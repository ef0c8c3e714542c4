import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { APPS, type App, ROLES, type Role, USER_STATUSES, type UserStatus } from '../accounts/model.ts';
import { registerAdminCommands } from '../admin/cli.ts';
import { type EnvironmentRuntime, openEnvironment } from '../app.ts';
import { registerFactorCommands } from '../authn/factors/cli.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { migrateToLatest, openDatabase, sqlitePathFor } from '../db/database.ts';
import { registerFederationCommands } from '../federation/cli.ts';
import { createSecretBox } from '../lib/secret-box.ts';
import { rotateSigningKeys } from '../oauth/keys.ts';
import { DEFAULT_SIGNED_TOKEN_LIFETIMES, type SignedTokenLifetimes } from '../oauth/lifetimes.ts';
import { registerDataCommands } from '../refdata/cli.ts';
import { serve } from '../serve.ts';

/** Thrown for a user mistake: printed without a stack, exit code 2. */
class UsageError extends Error {}

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());

function choice<T extends string>(allowed: readonly T[], what: string) {
  return (value: string, previous: T[] = []): T[] => {
    if (!allowed.includes(value as T)) {
      throw new InvalidArgumentError(`unknown ${what} "${value}" (one of: ${allowed.join(', ')})`);
    }
    return [...previous, value as T];
  };
}

/** Opens one environment (database migrated); the caller closes it. */
async function openEnvironmentById(envId: string): Promise<EnvironmentRuntime> {
  const config = loadConfig(process.env);
  const environment = config.environments.find((e) => e.id === envId);
  if (!environment) {
    throw new UsageError(
      `Unknown environment "${envId}" (configured: ${config.environments.map((e) => e.id).join(', ')})`,
    );
  }
  return openEnvironment(config, environment, { logger: pino({ level: 'error' }) });
}

/** Opens one environment (database migrated) for a command, and always closes it. */
async function withEnvironment<T>(envId: string, work: (rt: EnvironmentRuntime) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env);
  const environment = config.environments.find((e) => e.id === envId);
  if (!environment) {
    throw new UsageError(
      `Unknown environment "${envId}" (configured: ${config.environments.map((e) => e.id).join(', ')})`,
    );
  }
  const rt = await openEnvironment(config, environment, { logger: pino({ level: 'error' }) });
  try {
    return await work(rt);
  } finally {
    await rt.close();
  }
}

/** Where an email the command queued went, in words. */
function mailOutcome(rt: EnvironmentRuntime, round: { sent: number } | undefined): string {
  if (!rt.config.smtp.url) {
    return rt.environment.kind === 'test'
      ? `kept in the development mailbox (no TRAQS_SMTP_URL): ${rt.environment.idp.publicUrl}/dev/mailbox`
      : 'queued in the outbox until an SMTP relay is configured (TRAQS_SMTP_URL)';
  }
  return round && round.sent > 0 ? 'sent' : 'queued in the outbox (delivery will be retried)';
}

function print(json: boolean, value: unknown, text: () => string) {
  console.log(json ? JSON.stringify(value, null, 2) : text());
}

/**
 * What the environment's server signs and for how long: a retiring key must outlive the longest of
 * these (`retiringKeyWindowMs`). Access tokens follow the policy; ID tokens last an hour.
 */
function signedTokenLifetimes(rt: EnvironmentRuntime): SignedTokenLifetimes {
  return {
    ...DEFAULT_SIGNED_TOKEN_LIFETIMES,
    accessTokenSeconds: Math.round(rt.config.policy.accessTokenMinutes * 60),
  };
}

const envOption = () => new Option('--env <id>', 'environment: ntf or production').default('ntf');

export function buildCli(): Command {
  const program = new Command('traqs')
    .description('traqs-mfa: identity and MFA for the TRAQS portal. Each command acts on one environment (--env).')
    .showHelpAfterError();

  program
    .command('serve')
    .description('Run every configured environment (what `npm start` does)')
    .action(async () => {
      const running = await serve();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => void running.stop().then(() => process.exit(0)));
      }
    });

  program
    .command('migrate')
    .description('Apply pending database migrations')
    .addOption(envOption())
    .action(async (opts: { env: string }) => {
      const config = loadConfig(process.env);
      const environment = config.environments.find((e) => e.id === opts.env);
      if (!environment) throw new UsageError(`Unknown environment "${opts.env}"`);
      const db = openDatabase(environment.databaseUrl ?? sqlitePathFor(config.dataDir, environment.id));
      try {
        const applied = await migrateToLatest(db);
        console.log(applied.length ? `Applied: ${applied.join(', ')}` : `${db.location} is up to date.`);
      } finally {
        await db.destroy();
      }
    });

  const firm = program.command('firm').description('Firms (the organisations users belong to)');
  firm
    .command('create')
    .description('Create a firm')
    .addOption(envOption())
    .requiredOption('--name <name>', 'the firm name')
    .action(async (opts: { env: string; name: string }) => {
      await withEnvironment(opts.env, async (rt) => {
        const r = await rt.accounts.createFirm(opts.name);
        if (!r.ok) throw new UsageError(r.message);
        console.log(`Created firm "${r.firm.name}" (${r.firm.id}) in ${rt.environment.label}.`);
      });
    });
  firm
    .command('list')
    .description('List firms')
    .addOption(envOption())
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      await withEnvironment(opts.env, async (rt) => {
        const firms = await rt.store.repos.firms.listFirms();
        print(!!opts.json, firms, () => firms.map((f) => `${f.id}  ${f.name}`).join('\n') || 'No firms.');
      });
    });

  const user = program.command('user').description('User accounts (username = email address)');
  user
    .command('create')
    .description('Provision a user (status PROVISIONED) and send the enrollment email (link valid 30 days)')
    .addOption(envOption())
    .requiredOption('--email <email>', 'the username and email address')
    .requiredOption('--first <name>', 'first name')
    .requiredOption('--last <name>', 'last name')
    .requiredOption('--firm <name>', 'firm name (see `traqs firm list`)')
    .option('--role <role>', `role, repeatable (${ROLES.join(', ')})`, choice(ROLES, 'role'))
    .option('--app <app>', `app assignment, repeatable (${APPS.join(', ')}; default portal)`, choice(APPS, 'app'))
    .option('--create-firm', 'create the firm if it does not exist')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        env: string;
        email: string;
        first: string;
        last: string;
        firm: string;
        role?: Role[];
        app?: App[];
        createFirm?: boolean;
        json?: boolean;
      }) => {
        await withEnvironment(opts.env, async (rt) => {
          let f = await rt.store.repos.firms.findFirmByName(opts.firm);
          if (!f && opts.createFirm) {
            const made = await rt.accounts.createFirm(opts.firm);
            if (!made.ok) throw new UsageError(made.message);
            f = made.firm;
          }
          if (!f)
            throw new UsageError(
              `No firm named "${opts.firm}" in ${rt.environment.label} (add --create-firm to create it).`,
            );
          const r = await rt.accounts.provisionUser({
            email: opts.email,
            firstName: opts.first,
            lastName: opts.last,
            firmId: f.id,
            roles: opts.role ?? [],
            apps: opts.app ?? ['portal'],
          });
          if (!r.ok) throw new UsageError(r.message);
          // Deliver now rather than wait for a running server's worker; the lease keeps it single.
          const round = await rt.mailWorker?.runOnce();
          const mailed = mailOutcome(rt, round);
          print(
            !!opts.json,
            { id: r.user.id, login: r.user.login, status: r.user.status, firm: f.name, expiresAt: iso(r.expiresAt) },
            () =>
              [
                `Provisioned ${r.user.login} (${r.user.id}) in firm "${f.name}", ${rt.environment.label}.`,
                `Enrollment email ${mailed}; the link expires ${iso(r.expiresAt)}.`,
              ].join('\n'),
          );
        });
      },
    );
  user
    .command('list')
    .description('List users')
    .addOption(envOption())
    .option('--firm <name>', 'only this firm')
    .option('--status <status>', `only this status (${USER_STATUSES.join(', ')})`)
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; firm?: string; status?: string; json?: boolean }) => {
      if (opts.status && !USER_STATUSES.includes(opts.status as UserStatus)) {
        throw new UsageError(`Unknown status "${opts.status}" (one of: ${USER_STATUSES.join(', ')})`);
      }
      await withEnvironment(opts.env, async (rt) => {
        let firmId: string | undefined;
        if (opts.firm) {
          const f = await rt.store.repos.firms.findFirmByName(opts.firm);
          if (!f) throw new UsageError(`No firm named "${opts.firm}"`);
          firmId = f.id;
        }
        const users = await rt.store.repos.users.listUsers({
          ...(firmId ? { firmId } : {}),
          ...(opts.status ? { status: opts.status as UserStatus } : {}),
        });
        const rows = users.map((u) => ({
          id: u.id,
          login: u.login,
          name: `${u.first_name} ${u.last_name}`,
          status: u.status,
          authMode: u.auth_mode,
          lastLogin: iso(u.last_login_at),
        }));
        print(
          !!opts.json,
          rows,
          () => rows.map((r) => `${r.id}  ${r.status.padEnd(12)} ${r.login}  (${r.name})`).join('\n') || 'No users.',
        );
      });
    });
  user
    .command('show')
    .description('Show one user: status, firm, roles, apps, factors')
    .addOption(envOption())
    .argument('<user>', 'username (email) or user id')
    .option('--json', 'print JSON')
    .action(async (who: string, opts: { env: string; json?: boolean }) => {
      await withEnvironment(opts.env, async (rt) => {
        const repos = rt.store.repos;
        const u = (await repos.users.findUserById(who)) ?? (await repos.users.findUserByLogin(who));
        if (!u) throw new UsageError(`No user "${who}" in ${rt.environment.label}`);
        const [f, roles, apps, factors] = await Promise.all([
          repos.firms.findFirmById(u.firm_id),
          repos.users.listRoles(u.id),
          repos.users.listApps(u.id),
          repos.factors.listFactors(u.id),
        ]);
        const view = {
          id: u.id,
          login: u.login,
          name: `${u.first_name} ${u.last_name}`,
          firm: f?.name ?? null,
          status: u.status,
          authMode: u.auth_mode,
          roles,
          apps,
          created: iso(u.created_at),
          activated: iso(u.activated_at),
          lastLogin: iso(u.last_login_at),
          factors: factors.map((x) => ({
            id: x.id,
            type: x.factor_type,
            provider: x.provider,
            status: x.status,
            enrolled: iso(x.activated_at),
            lastUsed: iso(x.last_used_at),
          })),
        };
        print(!!opts.json, view, () =>
          [
            `${view.login}  (${view.id})`,
            `  Name:      ${view.name}`,
            `  Firm:      ${view.firm ?? '-'}`,
            `  Status:    ${view.status}   Authentication: ${view.authMode}`,
            `  Roles:     ${roles.join(', ')}`,
            `  Apps:      ${apps.join(', ') || '-'}`,
            `  Created:   ${view.created}   Activated: ${view.activated}   Last sign-in: ${view.lastLogin}`,
            `  Factors:   ${view.factors.map((x) => `${x.type}/${x.provider} ${x.status}`).join('; ') || 'none'}`,
          ].join('\n'),
        );
      });
    });
  const findUser = async (rt: EnvironmentRuntime, who: string) => {
    const u = (await rt.store.repos.users.findUserById(who)) ?? (await rt.store.repos.users.findUserByLogin(who));
    if (!u) throw new UsageError(`No user "${who}" in ${rt.environment.label}`);
    return u;
  };

  user
    .command('resend-enrollment')
    .description('Send a new enrollment email (30 days); the previous link stops working')
    .addOption(envOption())
    .argument('<user>', 'username (email) or user id')
    .action(async (who: string, opts: { env: string }) => {
      await withEnvironment(opts.env, async (rt) => {
        const u = await findUser(rt, who);
        if (u.status !== 'PROVISIONED') {
          throw new UsageError(`${u.login} is ${u.status}: only a user who has not activated gets an enrollment email`);
        }
        const link = await rt.accounts.resendEnrollment(u.id);
        const round = await rt.mailWorker?.runOnce();
        console.log(
          `New enrollment email for ${u.login} ${mailOutcome(rt, round)}; the link expires ${iso(link.expiresAt)}. The previous link no longer works.`,
        );
      });
    });

  user
    .command('unlock')
    .description('Unlock a locked account (also after 10 lockouts in a row, when only support can)')
    .addOption(envOption())
    .argument('<user>', 'username (email) or user id')
    .action(async (who: string, opts: { env: string }) => {
      await withEnvironment(opts.env, async (rt) => {
        const u = await findUser(rt, who);
        const r = await rt.accounts.unlockBySupport(u.id);
        if (r === 'not-locked') throw new UsageError(`${u.login} is not locked (status ${u.status})`);
        console.log(`Unlocked ${u.login}.`);
      });
    });

  const reports = program.command('reports').description('Suspicious-activity reports ("this wasn\'t me")');
  reports
    .command('list')
    .description('List reports for Operations to handle')
    .addOption(envOption())
    .addOption(new Option('--status <status>', 'open or closed').choices(['open', 'closed']).default('open'))
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; status: 'open' | 'closed'; json?: boolean }) => {
      await withEnvironment(opts.env, async (rt) => {
        const rows = await rt.store.repos.reports.listReports({ status: opts.status });
        const view = await Promise.all(
          rows.map(async (r) => ({
            id: r.id,
            user: (await rt.store.repos.users.findUserById(r.user_id))?.login ?? r.user_id,
            created: iso(r.created_at),
            about: r.source,
            ip: r.ip,
            status: r.status,
          })),
        );
        print(!!opts.json, view, () =>
          view.length
            ? view.map((r) => `${r.id}  ${r.created}  ${r.user}  about ${r.about}  from ${r.ip ?? '-'}`).join('\n')
            : `No ${opts.status} reports.`,
        );
      });
    });

  const keys = program
    .command('keys')
    .description('Signing keys of the OAuth 2.0 / OpenID Connect server (ID tokens, JWT access tokens)');
  keys
    .command('rotate')
    .description(
      'Add new active ES256 and RS256 signing keys; the previous ones keep verifying until their retire time',
    )
    .addOption(envOption())
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      await withEnvironment(opts.env, async (rt) => {
        const rotated = await rotateSigningKeys(
          rt.store,
          createSecretBox(rt.keys.secretBoxKey),
          rt.clock,
          signedTokenLifetimes(rt),
        );
        const view = rotated.map((r) => ({
          alg: r.alg,
          kid: r.kid,
          retiringKid: r.retiringKid ?? null,
          retireAfter: r.retiringKid ? iso(r.retireAfter) : null,
        }));
        print(!!opts.json, view, () =>
          [
            `Rotated the signing keys of ${rt.environment.label}:`,
            ...view.map((k) =>
              k.retiringKid
                ? `  ${k.alg}  new active key ${k.kid}\n         previous key ${k.retiringKid} keeps verifying until ${k.retireAfter}`
                : `  ${k.alg}  new active key ${k.kid} (there was no previous key)`,
            ),
            'Running servers sign with the new keys within a minute (they reload the key set every 60 s).',
          ].join('\n'),
        );
      });
    });
  keys
    .command('list')
    .description('List the signing keys in use: active (signing) and retiring (verifying only)')
    .addOption(envOption())
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      await withEnvironment(opts.env, async (rt) => {
        const rows = await rt.store.repos.oauth.listUsableSigningKeys(rt.clock());
        // As the JWKS lists them: by algorithm, the active key first, then newest first.
        rows.sort(
          (a, b) =>
            a.alg.localeCompare(b.alg) ||
            Number(b.status === 'active') - Number(a.status === 'active') ||
            b.created_at - a.created_at,
        );
        const view = rows.map((r) => ({
          kid: r.kid,
          alg: r.alg,
          status: r.status,
          created: iso(r.created_at),
          retireAfter: r.retire_after === null ? null : iso(r.retire_after),
        }));
        print(!!opts.json, view, () => {
          if (!view.length)
            return `No signing keys in ${rt.environment.label} yet: the idp creates them when it first starts.`;
          const header = { kid: 'KID', alg: 'ALG', status: 'STATUS', created: 'CREATED', retireAfter: 'RETIRE_AFTER' };
          const kidWidth = Math.max(...view.map((k) => k.kid.length));
          return [header, ...view]
            .map((k) =>
              [
                k.kid.padEnd(kidWidth),
                k.alg.padEnd(5),
                k.status.padEnd(8),
                k.created.padEnd(24),
                k.retireAfter ?? '-',
              ].join('  '),
            )
            .join('\n');
        });
      });
    });
  registerAdminCommands(program, withEnvironment);
  registerFactorCommands(program, { withEnvironment, usageError: (message) => new UsageError(message) });
  registerDataCommands(program, openEnvironmentById);
  registerFederationCommands(program, withEnvironment);
  return program;
}

try {
  await buildCli().parseAsync(process.argv);
} catch (err) {
  if (err instanceof UsageError) {
    console.error(`traqs: ${err.message}`);
    process.exit(2);
  }
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
}
