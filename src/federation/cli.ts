import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { AUTH_MODES, type AuthMode } from '../accounts/model.ts';
import type { OpenEnvironment } from '../admin/cli.ts';
import { CLI_PRINCIPAL, createAdminServiceFor } from '../admin/service.ts';
import { readMetadata } from './metadata-source.ts';
import type { MetadataChange } from './model.ts';
import type { IdentityProviderView, MetadataRefresh } from './service.ts';

const envOption = () => new Option('--env <id>', 'environment: ntf or production').default('ntf');
const iso = (ms: number) => new Date(ms).toISOString();

/** A mistake of the person at the keyboard: said on stderr, exit code 2 (as the other commands). */
function usage(message: string): void {
  console.error(`traqs: ${message}`);
  process.exitCode = 2;
}

function describe(v: IdentityProviderView, firmName: string): string {
  const s = v.settings;
  const lines = [
    `${v.id}  ${v.name}  (${v.protocol === 'saml' ? 'SAML 2.0' : 'OpenID Connect'}, firm ${firmName})`,
    `  Created:          ${iso(v.createdAt)}`,
  ];
  if (s.protocol === 'saml') {
    lines.push(
      `  IdP entity id:    ${s.entityId}`,
      `  IdP SSO URL:      ${s.ssoUrl}`,
      `  IdP certificates: ${s.certificates.length}`,
      `  User from:        ${s.userAttribute ? `attribute ${s.userAttribute}` : 'NameID (email address)'}`,
      `  Metadata from:    ${s.metadataSource ?? '-'}${s.metadataCheckedAt ? ` (last checked ${iso(s.metadataCheckedAt)})` : ''}`,
      '  Give the firm our SP metadata:',
      `  SP metadata URL:  ${v.sp.metadataUrl}`,
      `  SP entity id:     ${v.sp.entityId}`,
      `  ACS URL:          ${v.sp.acsUrl} (HTTP-POST)`,
    );
  } else {
    lines.push(
      `  Issuer:           ${s.issuer}`,
      `  Client id:        ${s.clientId}`,
      `  User from claim:  ${s.userClaim}`,
      `  Redirect URI:     ${v.sp.redirectUri} (register it at the firm's OpenID provider)`,
    );
  }
  return lines.join('\n');
}

/** What `idp update|refresh` changed, one line each. */
function describeChange(change: MetadataChange): string {
  if (!change.changed) return '  Unchanged: the metadata says what the configuration already holds.';
  const lines: string[] = [];
  if (change.ssoUrl) lines.push(`  IdP SSO URL:      ${change.ssoUrl.before} -> ${change.ssoUrl.after}`);
  for (const f of change.certificatesAdded) lines.push(`  Certificate added:   SHA-256 ${f}`);
  for (const f of change.certificatesRemoved) lines.push(`  Certificate removed: SHA-256 ${f}`);
  if (change.metadataSource) {
    lines.push(`  Metadata from:    ${change.metadataSource.before ?? '-'} -> ${change.metadataSource.after ?? '-'}`);
  }
  return lines.join('\n');
}

function describeRefresh(r: MetadataRefresh): string {
  const head = `${r.id}  ${r.name}  ${r.outcome} (${r.source})`;
  if (r.outcome === 'failed') return `${head}\n  ${r.detail ?? ''}\n  The configuration is kept as it was.`;
  return r.change?.changed ? `${head}\n${describeChange(r.change)}` : head;
}

/**
 * `traqs idp add|list|show|update|refresh|remove` (a firm's identity provider) and `traqs user auth-mode`
 * (local ⇄ federated, through the same audited service as the Support console).
 */
export function registerFederationCommands(program: Command, open: OpenEnvironment): void {
  const idp = program
    .command('idp')
    .description("Firms' identity providers for federated single sign-on (SAML 2.0 or OpenID Connect)");

  idp
    .command('add')
    .description("Add a firm's identity provider; prints our SP metadata URL (SAML) or redirect URI (OIDC)")
    .addOption(envOption())
    .requiredOption('--firm <name>', 'the firm whose users this IdP signs in')
    .requiredOption('--name <name>', 'a display name, e.g. "Acme Entra ID"')
    .addOption(new Option('--protocol <protocol>', 'saml or oidc').choices(['saml', 'oidc']).makeOptionMandatory(true))
    .option('--metadata <url-or-file>', 'SAML: the IdP metadata XML, by https URL or file')
    .option('--user-attribute <name>', 'SAML: the attribute with the username (default: the NameID)')
    .option('--issuer <url>', 'OIDC: the issuer (discovery at {issuer}/.well-known/openid-configuration)')
    .option('--client-id <id>', "OIDC: our client id at the firm's provider")
    .option(
      '--client-secret-env <var>',
      'OIDC: the environment variable holding the client secret',
      'TRAQS_IDP_CLIENT_SECRET',
    )
    .option('--client-secret-file <path>', 'OIDC: a file holding the client secret (instead of the variable)')
    .option('--user-claim <claim>', 'OIDC: the ID token claim with the username', 'email')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        env: string;
        firm: string;
        name: string;
        protocol: 'saml' | 'oidc';
        metadata?: string;
        userAttribute?: string;
        issuer?: string;
        clientId?: string;
        clientSecretEnv: string;
        clientSecretFile?: string;
        userClaim: string;
        json?: boolean;
      }) => {
        await open(opts.env, async (rt) => {
          const firm = await rt.store.repos.firms.findFirmByName(opts.firm);
          if (!firm) return usage(`no firm "${opts.firm}"`);
          let r: Awaited<ReturnType<typeof rt.federation.add>>;
          if (opts.protocol === 'saml') {
            if (!opts.metadata) return usage('--metadata is required for SAML');
            let xml: string;
            try {
              xml = await readMetadata(opts.metadata);
            } catch (err) {
              return usage(`cannot read the metadata: ${(err as Error).message}`);
            }
            r = await rt.federation.add({
              protocol: 'saml',
              firmId: firm.id,
              name: opts.name,
              metadataXml: xml,
              metadataSource: opts.metadata,
              ...(opts.userAttribute ? { userAttribute: opts.userAttribute } : {}),
            });
          } else {
            // The secret comes from the environment, never the command line (visible in `ps`).
            const secret = opts.clientSecretFile
              ? (await readFile(opts.clientSecretFile, 'utf8').catch(() => '')).trim()
              : process.env[opts.clientSecretEnv];
            if (!opts.issuer || !opts.clientId) return usage('--issuer and --client-id are required for OIDC');
            if (!secret) return usage(`no client secret in ${opts.clientSecretFile ?? opts.clientSecretEnv}`);
            r = await rt.federation.add({
              protocol: 'oidc',
              firmId: firm.id,
              name: opts.name,
              issuer: opts.issuer,
              clientId: opts.clientId,
              clientSecret: secret,
              userClaim: opts.userClaim,
            });
          }
          if (!r.ok) return usage(r.detail);
          if (opts.json) console.log(JSON.stringify(r.value, null, 2));
          else console.log(`Added to ${rt.environment.label}:\n${describe(r.value, firm.name)}`);
        });
      },
    );

  idp
    .command('list')
    .description('List the identity providers')
    .addOption(envOption())
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      await open(opts.env, async (rt) => {
        const all = await rt.federation.list();
        if (opts.json) return console.log(JSON.stringify(all, null, 2));
        const firms = new Map((await rt.store.repos.firms.listFirms()).map((f) => [f.id, f.name]));
        console.log(
          all
            .map((v) => `${v.id}  ${v.protocol.padEnd(4)}  ${firms.get(v.firmId) ?? v.firmId}  ${v.name}`)
            .join('\n') || `No identity providers in ${rt.environment.label}.`,
        );
      });
    });

  idp
    .command('show')
    .description('Show one identity provider and our side of it (SP metadata URL, ACS, redirect URI)')
    .addOption(envOption())
    .argument('<id>', 'the identity provider id')
    .option('--json', 'print JSON')
    .option('--sp-metadata', 'SAML: print our SP metadata XML')
    .action(async (id: string, opts: { env: string; json?: boolean; spMetadata?: boolean }) => {
      await open(opts.env, async (rt) => {
        const v = await rt.federation.show(id);
        if (!v) return usage(`no identity provider "${id}"`);
        if (opts.spMetadata) {
          const xml = await rt.federation.metadata(id);
          if (!xml) return usage('SP metadata exists for SAML identity providers only');
          return console.log(xml);
        }
        const firm = await rt.store.repos.firms.findFirmById(v.firmId);
        console.log(opts.json ? JSON.stringify(v, null, 2) : describe(v, firm?.name ?? v.firmId));
      });
    });

  idp
    .command('update')
    .description(
      "Replace a SAML identity provider's metadata (SSO URL, signing certificates, e.g. at a key rollover); our SP side stays",
    )
    .addOption(envOption())
    .argument('<id>', 'the identity provider id')
    .requiredOption('--metadata <url-or-file>', 'the IdP metadata XML, by https URL or file')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { env: string; metadata: string; json?: boolean }) => {
      await open(opts.env, async (rt) => {
        let xml: string;
        try {
          xml = await readMetadata(opts.metadata);
        } catch (err) {
          return usage(`cannot read the metadata: ${(err as Error).message}`);
        }
        const r = await rt.federation.updateMetadata(id, { metadataXml: xml, metadataSource: opts.metadata });
        if (!r.ok) return usage(r.detail);
        if (opts.json) return console.log(JSON.stringify(r.value, null, 2));
        const { view, change } = r.value;
        console.log(
          `${change.changed ? 'Updated' : 'Unchanged'} ${view.id} ${view.name} in ${rt.environment.label}:\n${describeChange(change)}`,
        );
      });
    });

  idp
    .command('refresh')
    .description(
      'Fetch the metadata of SAML identity providers added from an https URL again and apply it (the idp does this daily)',
    )
    .addOption(envOption())
    .argument('[id]', 'one identity provider (default: every one with a metadata URL)')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, opts: { env: string; json?: boolean }) => {
      await open(opts.env, async (rt) => {
        const r = await rt.federation.refreshMetadata(id);
        if (!r.ok) return usage(r.detail);
        if (opts.json) console.log(JSON.stringify(r.value, null, 2));
        else {
          console.log(
            r.value.map(describeRefresh).join('\n') ||
              `No identity provider in ${rt.environment.label} has a metadata URL.`,
          );
        }
        // A failed fetch is not the operator's typing: exit code 1, as a failed command.
        if (r.value.some((x) => x.outcome === 'failed')) process.exitCode = 1;
      });
    });

  idp
    .command('remove')
    .description("Remove an identity provider: the firm's federated users cannot sign in until another is added")
    .addOption(envOption())
    .argument('<id>', 'the identity provider id')
    .action(async (id: string, opts: { env: string }) => {
      await open(opts.env, async (rt) => {
        if (!(await rt.federation.remove(id))) return usage(`no identity provider "${id}"`);
        console.log(`Removed identity provider ${id} from ${rt.environment.label}.`);
      });
    });

  const user = program.commands.find((c) => c.name() === 'user') ?? program.command('user');
  user
    .command('auth-mode')
    .description(
      'Switch how a user signs in: federated (password and factors removed, sessions ended) or local (enrollment email); audited and mailed',
    )
    .addOption(envOption())
    .requiredOption('--user <user>', 'username (email) or user id')
    .requiredOption('--mode <mode>', 'local or federated', (value: string): AuthMode => {
      if (!AUTH_MODES.includes(value as AuthMode)) throw new InvalidArgumentError('local or federated');
      return value as AuthMode;
    })
    .action(async (opts: { env: string; user: string; mode: AuthMode }) => {
      await open(opts.env, async (rt) => {
        const r = await createAdminServiceFor(rt).setAuthMode(CLI_PRINCIPAL, opts.user, opts.mode);
        if (!r.ok) return usage(r.message);
        console.log(`${r.value.login} now signs in ${opts.mode === 'local' ? 'locally' : 'through federation'}.`);
      });
    });
}
