import { type Command, InvalidArgumentError, Option } from 'commander';
import { ADMIN_ROLES, type AdminRole, ROLES, type Role } from '../accounts/model.ts';
import type { EnvironmentRuntime } from '../app.ts';
import { type AdminResult, CLI_PRINCIPAL, createAdminServiceFor } from './service.ts';

/** How the CLI opens one environment for a command and closes it after (`withEnvironment`). */
export type OpenEnvironment = <T>(envId: string, work: (rt: EnvironmentRuntime) => Promise<T>) => Promise<T>;

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
const envOption = () => new Option('--env <id>', 'environment: ntf or production').default('ntf');

/** A mistake of the person at the keyboard: said on stderr, exit code 2 (as the other commands). */
function usage(message: string): void {
  console.error(`traqs: ${message}`);
  process.exitCode = 2;
}

function oneOf<T extends string>(allowed: readonly T[], what: string) {
  return (value: string): T => {
    if (!allowed.includes(value as T)) {
      throw new InvalidArgumentError(`unknown ${what} "${value}" (one of: ${allowed.join(', ')})`);
    }
    return value as T;
  };
}

/** The failure of a service call as one line, or undefined when it succeeded. */
function failureOf<T>(r: AdminResult<T>): string | undefined {
  if (r.ok) return undefined;
  return r.causes?.length ? `${r.message} (${r.causes.join('; ')})` : r.message;
}

/**
 * `traqs role grant|revoke` and `traqs api-token create|list|revoke`: the operator's commands for
 * who administers what. They act as the operator at the shell (`CLI_PRINCIPAL`: the audit log
 * records the system as the actor, with `via: cli`), through the same service as the consoles.
 */
export function registerAdminCommands(program: Command, open: OpenEnvironment): void {
  const role = program
    .command('role')
    .description(`Administrative roles of users (${ADMIN_ROLES.join(', ')}): grant or revoke`);
  for (const verb of ['grant', 'revoke'] as const) {
    role
      .command(verb)
      .description(verb === 'grant' ? 'Give a user a role' : 'Take a role from a user')
      .addOption(envOption())
      .requiredOption('--user <user>', 'username (email) or user id')
      .requiredOption('--role <role>', `one of ${ROLES.filter((r) => r !== 'user').join(', ')}`, oneOf(ROLES, 'role'))
      .action(async (opts: { env: string; user: string; role: Role }) => {
        await open(opts.env, async (rt) => {
          const admin = createAdminServiceFor(rt);
          const r =
            verb === 'grant'
              ? await admin.grantRole(CLI_PRINCIPAL, opts.user, opts.role)
              : await admin.revokeRole(CLI_PRINCIPAL, opts.user, opts.role);
          const failed = failureOf(r);
          if (failed !== undefined || !r.ok) return usage(failed ?? 'failed');
          const user =
            (await rt.store.repos.users.findUserById(opts.user)) ??
            (await rt.store.repos.users.findUserByLogin(opts.user));
          console.log(
            `${verb === 'grant' ? 'Granted' : 'Revoked'} ${opts.role} ${verb === 'grant' ? 'to' : 'from'} ${user?.login ?? opts.user} in ${rt.environment.label}. Roles now: ${r.value.join(', ')}.`,
          );
        });
      });
  }

  const token = program
    .command('api-token')
    .description('SSWS tokens of the Okta-compatible management API (/api/v1/users, /api/v1/logs…)');
  token
    .command('create')
    .description('Create a token bound to a role and print it once (only its SHA-256 is stored)')
    .addOption(envOption())
    .requiredOption('--name <name>', 'what the token is for, e.g. "provisioning script"')
    .addOption(
      new Option('--role <role>', `the role the token acts with (${ADMIN_ROLES.join(', ')})`)
        .argParser(oneOf(ADMIN_ROLES, 'role'))
        .default('admin'),
    )
    .option('--firm <firm>', 'for an saa token: the firm (name or id) whose users it may see')
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; name: string; role: AdminRole; firm?: string; json?: boolean }) => {
      await open(opts.env, async (rt) => {
        let firmId: string | null = null;
        if (opts.firm) {
          const firm =
            (await rt.store.repos.firms.findFirmById(opts.firm)) ??
            (await rt.store.repos.firms.findFirmByName(opts.firm));
          if (!firm) return usage(`No firm "${opts.firm}" in ${rt.environment.label} (see \`traqs firm list\`).`);
          firmId = firm.id;
        }
        const r = await createAdminServiceFor(rt).createApiToken(CLI_PRINCIPAL, {
          name: opts.name,
          role: opts.role,
          firmId,
        });
        if (!r.ok) return usage(failureOf(r) ?? 'failed');
        const { token: secret, view } = r.value;
        if (opts.json) {
          console.log(JSON.stringify({ ...view, createdAt: iso(view.createdAt), token: secret }, null, 2));
          return;
        }
        console.log(
          [
            `Created API token ${view.id} "${view.name}" (role ${view.role}${firmId ? `, firm ${firmId}` : ''}) in ${rt.environment.label}.`,
            'The token is shown this once; store it now:',
            '',
            `  ${secret}`,
            '',
            `Use it as: Authorization: SSWS ${secret.slice(0, 6)}…  against ${rt.environment.idp.publicUrl}/api/v1/`,
          ].join('\n'),
        );
      });
    });
  token
    .command('list')
    .description('List tokens (never the tokens themselves)')
    .addOption(envOption())
    .option('--all', 'include revoked tokens')
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; all?: boolean; json?: boolean }) => {
      await open(opts.env, async (rt) => {
        const r = await createAdminServiceFor(rt).listApiTokens(CLI_PRINCIPAL, !!opts.all);
        if (!r.ok) return usage(failureOf(r) ?? 'failed');
        const rows = r.value.map((t) => ({
          id: t.id,
          name: t.name,
          role: t.role,
          firmId: t.firmId,
          created: iso(t.createdAt),
          lastUsed: iso(t.lastUsedAt),
          revoked: iso(t.revokedAt),
        }));
        if (opts.json) return void console.log(JSON.stringify(rows, null, 2));
        console.log(
          rows
            .map(
              (t) =>
                `${t.id}  ${t.role.padEnd(10)} ${t.name}${t.firmId ? `  firm ${t.firmId}` : ''}  created ${t.created}  last used ${t.lastUsed}${t.revoked !== '-' ? `  REVOKED ${t.revoked}` : ''}`,
            )
            .join('\n') || 'No API tokens.',
        );
      });
    });
  token
    .command('revoke')
    .description('Revoke a token: it stops working at once')
    .addOption(envOption())
    .argument('<id>', 'the token id (00T…), from `traqs api-token list`')
    .action(async (id: string, opts: { env: string }) => {
      await open(opts.env, async (rt) => {
        const r = await createAdminServiceFor(rt).revokeApiToken(CLI_PRINCIPAL, id);
        if (!r.ok) return usage(failureOf(r) ?? 'failed');
        console.log(`Revoked API token ${r.value.id} "${r.value.name}" in ${rt.environment.label}.`);
      });
    });
}
