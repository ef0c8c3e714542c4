import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { AUTH_MODES, type AuthMode } from '../accounts/model.ts';
import type { OpenEnvironment } from '../admin/cli.ts';
import { CLI_PRINCIPAL, createAdminServiceFor } from '../admin/service.ts';
import { isLoopbackHttp } from './oidc.ts';
import type { IdentityProviderView } from './service.ts';

const envOption = () => new Option('--env <id>', 'environment: ntf or production').default('ntf');
const iso = (ms: number) => new Date(ms).toISOString();

/** A mistake of the person at the keyboard: said on stderr, exit code 2 (as the other commands). */
function usage(message: string): void {
  console.error(`traqs: ${message}`);
  process.exitCode = 2;
}

/** Metadata is a few kilobytes; a megabyte is a wrong URL or file. */
const METADATA_MAX_BYTES = 1 << 20;

/** Reads IdP metadata from an https URL (http only for a loopback test IdP) or a file. */
async function readMetadata(source: string): Promise<string> {
  if (/^https?:\/\//.test(source)) {
    const url = new URL(source);
    if (url.protocol === 'http:' && !isLoopbackHttp(source)) {
      throw new Error('metadata must be fetched over https');
    }
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: 'error' });
    if (!res.ok) throw new Error(`${source} answered ${res.status}`);
    const text = await res.text();
    if (text.length > METADATA_MAX_BYTES) throw new Error('the metadata is larger than 1 MiB');
    return text;
  }
  const text = await readFile(source, 'utf8');
  if (text.length > METADATA_MAX_BYTES) throw new Error('the metadata is larger than 1 MiB');
  return text;
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

/**
 * `traqs idp add|list|show|remove` (a firm's identity provider) and `traqs user auth-mode`
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
