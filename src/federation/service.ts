import { generateKeyPairSync } from 'node:crypto';
import type { CacheProvider } from '@node-saml/node-saml';
import type { Logger } from 'pino';
import type { UserRow } from '../accounts/repository.ts';
import { createUserEventRecorder, type RequestOrigin } from '../audit/record.ts';
import type { AuthnResult, AuthnService, RequestContext } from '../authn/service.ts';
import type { Store } from '../db/store.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import {
  type Clock,
  constantTimeEqual,
  createBearerSecret,
  createId,
  hashBearerSecret,
  type RandomBytes,
} from '../lib/tokens.ts';
import { createSelfSignedCertificate } from './certificate.ts';
import { fetchMetadata, isMetadataUrl } from './metadata-source.ts';
import {
  diffIdpMetadata,
  type IdpSettings,
  idpSettingsSchema,
  type MetadataChange,
  MetadataError,
  type OidcSettings,
  parseIdpMetadata,
  type SamlSettings,
} from './model.ts';
import { createOidcRelyingParty, IdpUnreachableError, isLoopbackHttp } from './oidc.ts';
import type { FederationRequestRow, IdentityProviderRow } from './repository.ts';
import { type ServiceProvider, samlAuthorizeUrl, serviceProviderMetadata, verifySamlResponse } from './saml.ts';
import { classifySamlError, decideFederatedSignIn, type FederatedIdentity, type FederationFailure } from './verify.ts';

/** A sign-in sent to an IdP must come back within this time (the IdP's own sign-in included). */
export const FEDERATION_REQUEST_TTL_MS = 10 * 60_000;
/** Metadata published at an https URL is fetched again this often (the idp's housekeeping). */
export const METADATA_REFRESH_INTERVAL_MS = 24 * 60 * 60_000;

export interface FederationDeps {
  store: Store;
  secretBox: SecretBox;
  clock: Clock;
  random: RandomBytes;
  authn: AuthnService;
  /** The idp's public URL: our entity ids, ACS and redirect URIs are under it. */
  publicUrl: string;
}

/** An identity provider as `idp list|show` and the pages show it (never a secret). */
export interface IdentityProviderView {
  id: string;
  firmId: string;
  name: string;
  protocol: 'saml' | 'oidc';
  settings: IdpSettings;
  createdAt: number;
  /** Our side: SP entity id, ACS URL and metadata URL (SAML), or the redirect URI (OIDC). */
  sp: { entityId: string; acsUrl: string; metadataUrl: string; redirectUri: string; certificate: string };
}

export type AddIdentityProviderInput =
  | {
      protocol: 'saml';
      firmId: string;
      name: string;
      /** The IdP's metadata XML, already read from the file or URL named in `metadataSource`. */
      metadataXml: string;
      metadataSource?: string;
      userAttribute?: string;
    }
  | {
      protocol: 'oidc';
      firmId: string;
      name: string;
      issuer: string;
      clientId: string;
      clientSecret: string;
      userClaim?: string;
    };

/**
 * Who adds or removes a configuration, for the audit log: an administrator in the Support console
 * (actor id, address, browser) or the operator's shell (`traqs idp`, recorded as the system).
 */
export interface FederationActor {
  actorId: string | null;
  ip: string | null;
  userAgent: string | null;
  via: 'console' | 'api' | 'cli' | 'schedule';
}

const CLI_ACTOR: FederationActor = { actorId: null, ip: null, userAgent: null, via: 'cli' };
/** The idp's own daily metadata refresh, recorded as the system. */
const SCHEDULE_ACTOR: FederationActor = { actorId: null, ip: null, userAgent: null, via: 'schedule' };

/** New IdP metadata for a SAML configuration (`idp update`, the console, the refresh). */
export interface MetadataUpdateInput {
  metadataXml: string;
  /** Where it was read from; absent, the configuration no longer names a source (no refresh). */
  metadataSource?: string;
}

/** `idp update`: the configuration and what changed, or why nothing was (said to the operator). */
export type MetadataUpdateResult =
  | { ok: true; value: { view: IdentityProviderView; change: MetadataChange } }
  | { ok: false; detail: string };

/** One configuration's metadata fetched again from its URL. */
export interface MetadataRefresh {
  id: string;
  name: string;
  source: string;
  outcome: 'updated' | 'unchanged' | 'failed';
  change?: MetadataChange;
  detail?: string;
}

/** `idp add`: the new configuration, or why it was refused (said to the operator). */
export type AddResult = { ok: true; value: IdentityProviderView } | { ok: false; detail: string };

export type FederationOutcome<T> = { ok: true; value: T } | { ok: false; reason: FederationFailure; detail?: string };

const aad = {
  spKey: (id: string) => `federation:${id}:sp-key`,
  clientSecret: (id: string) => `federation:${id}:client-secret`,
  verifier: (id: string) => `federation:${id}:verifier`,
};

/** Federated single sign-on (issue #8): a firm's IdP over SAML 2.0 or OpenID Connect. */
export function createFederationService(deps: FederationDeps) {
  const { store, secretBox, clock, random } = deps;
  const audit = createUserEventRecorder(clock);
  const rp = createOidcRelyingParty(clock);

  function spOf(row: IdentityProviderRow): ServiceProvider {
    return {
      entityId: `${deps.publicUrl}/sso/${row.id}/metadata`,
      acsUrl: `${deps.publicUrl}/sso/saml/${row.id}/acs`,
      privateKeyPem: secretBox.open(row.sp_private_key_sealed, aad.spKey(row.id)).toString('utf8'),
      certificatePem: row.sp_certificate,
    };
  }
  const redirectUriOf = (id: string) => `${deps.publicUrl}/sso/oidc/${id}/callback`;
  const settingsOf = (row: IdentityProviderRow): IdpSettings => idpSettingsSchema.parse(JSON.parse(row.settings));
  const secretOf = (row: IdentityProviderRow) =>
    row.client_secret_sealed ? secretBox.open(row.client_secret_sealed, aad.clientSecret(row.id)).toString('utf8') : '';

  function viewOf(row: IdentityProviderRow): IdentityProviderView {
    const settings = settingsOf(row);
    return {
      id: row.id,
      firmId: row.firm_id,
      name: row.name,
      protocol: settings.protocol,
      settings,
      createdAt: row.created_at,
      sp: {
        entityId: `${deps.publicUrl}/sso/${row.id}/metadata`,
        acsUrl: `${deps.publicUrl}/sso/saml/${row.id}/acs`,
        metadataUrl: `${deps.publicUrl}/sso/${row.id}/metadata`,
        redirectUri: redirectUriOf(row.id),
        certificate: row.sp_certificate,
      },
    };
  }

  /**
   * The request store node-saml checks `InResponseTo` against (SAML Core §3.2.2), in the database.
   * `saveAsync` records a request sent by this browser; `getAsync` finds it only while open;
   * `removeAsync` does nothing: the request is closed atomically once the answer is verified.
   */
  function requestStore(
    idpId: string,
    binding?: { hash: string; loginHint: string | null },
    seen?: { answered: boolean },
  ): CacheProvider {
    return {
      async saveAsync(key, value) {
        if (!binding) throw new Error('no browser to bind the request to');
        const now = clock();
        await store.repos.federation.createRequest(newRequest(key, idpId, binding, now));
        return { value, createdAt: now };
      },
      async getAsync(key) {
        const row = await store.repos.federation.findOpenRequest(key, idpId, clock());
        if (!row && seen) seen.answered = (await store.repos.federation.findRequest(key))?.answered_at != null;
        // node-saml reads the value as a date (`new Date(value)`) to apply its own expiry too.
        return row ? new Date(row.created_at).toISOString() : null;
      },
      async removeAsync() {
        return null;
      },
    };
  }

  function newRequest(
    id: string,
    idpId: string,
    binding: { hash: string; loginHint: string | null },
    now: number,
  ): FederationRequestRow {
    return {
      id,
      idp_id: idpId,
      binding_hash: binding.hash,
      nonce: null,
      verifier_sealed: null,
      login_hint: binding.loginHint,
      created_at: now,
      expires_at: now + FEDERATION_REQUEST_TTL_MS,
      answered_at: null,
      user_id: null,
      amr: null,
      consumed_at: null,
    };
  }

  async function recordFailure(
    ctx: RequestOrigin,
    idpId: string,
    reason: FederationFailure,
    userId: string | null,
    detail?: string,
  ) {
    await audit(store.repos, ctx, 'user.authentication.sso', 'failure', userId, {
      idp: idpId,
      reason,
      ...(detail ? { detail: detail.slice(0, 300) } : {}),
    });
  }

  /** Maps a verified identity to our user and records the answer on its request. */
  async function accept(
    row: IdentityProviderRow,
    requestId: string,
    identity: FederatedIdentity,
    ctx: RequestOrigin,
  ): Promise<FederationOutcome<{ requestId: string }>> {
    const user: UserRow | undefined = identity.username
      ? await store.repos.users.findUserByLogin(identity.username)
      : undefined;
    const decision = decideFederatedSignIn({ idpFirmId: row.firm_id, identity, user });
    if (!decision.ok) {
      await recordFailure(ctx, row.id, decision.reason, user?.id ?? null, identity.username);
      return decision;
    }
    if (!(await store.repos.federation.answerRequest(requestId, decision.user.id, decision.amr, clock()))) {
      await recordFailure(ctx, row.id, 'replayed', decision.user.id, 'request already answered');
      return { ok: false, reason: 'replayed' };
    }
    return { ok: true, value: { requestId } };
  }

  /**
   * Replaces a SAML configuration's IdP side from new metadata, keeping ours (id, SP key and
   * certificate, ACS and metadata URLs) and the user attribute. The entity id must stay: another
   * entity is another IdP (SAML Metadata §2.3.2, `entityID` names the entity), not a rollover.
   */
  async function updateMetadata(
    id: string,
    input: MetadataUpdateInput,
    actor: FederationActor = CLI_ACTOR,
  ): Promise<MetadataUpdateResult> {
    let parsed: ReturnType<typeof parseIdpMetadata> | undefined;
    // A compare-and-set: a configuration changed meanwhile (another node's refresh) is read again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const row = await store.repos.federation.findIdentityProvider(id);
      if (!row) return { ok: false, detail: `No identity provider "${id}".` };
      const settings = settingsOf(row);
      if (settings.protocol !== 'saml') {
        return { ok: false, detail: `${row.name} uses OpenID Connect: it has no SAML metadata to update.` };
      }
      try {
        parsed ??= parseIdpMetadata(input.metadataXml);
      } catch (err) {
        return { ok: false, detail: err instanceof MetadataError ? err.message : 'The metadata is not valid.' };
      }
      if (parsed.entityId !== settings.entityId) {
        return {
          ok: false,
          detail: `The metadata is for entity ${parsed.entityId}; this configuration is for ${settings.entityId}: remove it and add the new IdP instead.`,
        };
      }
      const { metadataSource: _previous, ...kept } = settings;
      const next: SamlSettings = {
        ...kept,
        ssoUrl: parsed.ssoUrl,
        certificates: parsed.certificates,
        ...(input.metadataSource ? { metadataSource: input.metadataSource.slice(0, 1024) } : {}),
      };
      const change = diffIdpMetadata(settings, next);
      if (!change.changed) return { ok: true, value: { view: viewOf(row), change } };
      const json = JSON.stringify(next);
      const done = await store.transaction(async (repos) => {
        if (!(await repos.federation.replaceIdentityProviderSettings(id, row.settings, json))) return false;
        const { changed: _changed, ...what } = change;
        await repos.audit.recordEvent({
          at: clock(),
          actorId: actor.actorId,
          action: 'system.idp.lifecycle.update',
          targetId: row.firm_id,
          outcome: 'success',
          ip: actor.ip,
          userAgent: actor.userAgent,
          details: { idp: id, via: actor.via, ...what },
        });
        return true;
      });
      if (done) return { ok: true, value: { view: viewOf({ ...row, settings: json }), change } };
    }
    return { ok: false, detail: 'The configuration was changed meanwhile; try again.' };
  }

  /**
   * Fetches a configuration's metadata from its URL again and applies it. A fetch that fails or
   * metadata that is refused keeps the configuration as it is, recorded as a failed update.
   */
  async function refreshFrom(
    row: IdentityProviderRow,
    source: string,
    actor: FederationActor,
  ): Promise<MetadataRefresh> {
    const base = { id: row.id, name: row.name, source };
    let detail: string;
    try {
      const r = await updateMetadata(
        row.id,
        { metadataXml: await fetchMetadata(source), metadataSource: source },
        actor,
      );
      if (r.ok) return { ...base, outcome: r.value.change.changed ? 'updated' : 'unchanged', change: r.value.change };
      detail = r.detail;
    } catch (err) {
      detail = `cannot fetch the metadata: ${(err as Error).message}`;
    }
    await store.repos.audit.recordEvent({
      at: clock(),
      actorId: actor.actorId,
      action: 'system.idp.lifecycle.update',
      targetId: row.firm_id,
      outcome: 'failure',
      ip: actor.ip,
      userAgent: actor.userAgent,
      details: { idp: row.id, via: actor.via, source, detail: detail.slice(0, 300) },
    });
    return { ...base, outcome: 'failed', detail };
  }

  /** The metadata URL of a SAML configuration, if it came from one. */
  function metadataUrlOf(row: IdentityProviderRow): { settings: SamlSettings; url: string } | undefined {
    const settings = settingsOf(row);
    if (settings.protocol !== 'saml' || !isMetadataUrl(settings.metadataSource)) return undefined;
    return { settings, url: settings.metadataSource };
  }

  return {
    spOf,
    publicUrl: deps.publicUrl,
    updateMetadata,

    /**
     * `idp refresh [<id>]`: fetches the metadata of one configuration, or of every one that came
     * from a URL, again now and applies it.
     */
    async refreshMetadata(
      id?: string,
      actor: FederationActor = CLI_ACTOR,
    ): Promise<{ ok: true; value: MetadataRefresh[] } | { ok: false; detail: string }> {
      const rows = id
        ? [await store.repos.federation.findIdentityProvider(id)]
        : await store.repos.federation.listIdentityProviders();
      const [only] = rows;
      if (id && !only) return { ok: false, detail: `No identity provider "${id}".` };
      if (only && id && !metadataUrlOf(only)) {
        return {
          ok: false,
          detail: `${only.name} has no metadata URL to refresh from: use idp update --metadata <https-url-or-file>.`,
        };
      }
      const results: MetadataRefresh[] = [];
      for (const row of rows) {
        const from = row && metadataUrlOf(row);
        if (row && from) results.push(await refreshFrom(row, from.url, actor));
      }
      return { ok: true, value: results };
    },

    /**
     * The idp's housekeeping: refreshes each configuration whose metadata came from a URL and was
     * last fetched 24 hours ago or more. Each node runs it; a node claims a configuration by moving
     * its `metadataCheckedAt` on (compare-and-set), and only the node that claimed it fetches.
     * A failure is logged as a warning for the operator (the audit log has it too).
     */
    async refreshDueMetadata(logger?: Pick<Logger, 'warn' | 'info'>): Promise<MetadataRefresh[]> {
      const now = clock();
      const results: MetadataRefresh[] = [];
      for (const row of await store.repos.federation.listIdentityProviders()) {
        const from = metadataUrlOf(row);
        if (!from || (from.settings.metadataCheckedAt ?? row.created_at) > now - METADATA_REFRESH_INTERVAL_MS) continue;
        const claimed = JSON.stringify({ ...from.settings, metadataCheckedAt: now });
        if (!(await store.repos.federation.replaceIdentityProviderSettings(row.id, row.settings, claimed))) continue;
        const r = await refreshFrom({ ...row, settings: claimed }, from.url, SCHEDULE_ACTOR);
        if (r.outcome === 'failed') {
          logger?.warn(
            { idp: r.id, source: r.source, detail: r.detail },
            'IdP metadata refresh failed; configuration kept',
          );
        } else if (r.outcome === 'updated') {
          logger?.info({ idp: r.id, source: r.source, change: r.change }, 'IdP metadata refreshed');
        }
        results.push(r);
      }
      return results;
    },

    async add(input: AddIdentityProviderInput, actor: FederationActor = CLI_ACTOR): Promise<AddResult> {
      const firm = await store.repos.firms.findFirmById(input.firmId);
      if (!firm) return { ok: false, detail: 'No such firm.' };
      if (await store.repos.federation.findIdentityProviderOfFirm(firm.id)) {
        return { ok: false, detail: `${firm.name} already has an identity provider.` };
      }
      let settings: IdpSettings;
      try {
        if (input.protocol === 'saml') {
          settings = idpSettingsSchema.parse({
            protocol: 'saml',
            ...parseIdpMetadata(input.metadataXml),
            ...(input.metadataSource ? { metadataSource: input.metadataSource } : {}),
            ...(input.userAttribute ? { userAttribute: input.userAttribute } : {}),
          });
        } else {
          settings = idpSettingsSchema.parse({
            protocol: 'oidc',
            issuer: input.issuer,
            clientId: input.clientId,
            ...(input.userClaim ? { userClaim: input.userClaim } : {}),
          });
          if (
            settings.protocol === 'oidc' &&
            !settings.issuer.startsWith('https://') &&
            !isLoopbackHttp(settings.issuer)
          ) {
            return { ok: false, detail: 'The issuer must use https.' };
          }
          if (!input.clientSecret) return { ok: false, detail: 'A client secret is required.' };
        }
      } catch (err) {
        const detail =
          err instanceof MetadataError
            ? err.message
            : `Invalid configuration: ${(err as Error).message.replace(/\s+/g, ' ').slice(0, 300)}`;
        return { ok: false, detail };
      }
      const id = createId('0oa', random);
      const now = clock();
      // Our SP key: RSA 2048 with SHA-256 (NIST SP 800-131A), one per configuration, sealed at rest.
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const certificate = createSelfSignedCertificate({
        publicKey,
        privateKey,
        commonName: `${deps.publicUrl.replace(/^https?:\/\//, '')} SP ${id}`,
        notBefore: now - 60_000,
        validDays: 3650,
      });
      const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const row: IdentityProviderRow = {
        id,
        firm_id: firm.id,
        name: input.name.slice(0, 200),
        protocol: settings.protocol,
        settings: JSON.stringify(settings),
        client_secret_sealed:
          input.protocol === 'oidc'
            ? secretBox.seal(Buffer.from(input.clientSecret, 'utf8'), aad.clientSecret(id))
            : null,
        sp_private_key_sealed: secretBox.seal(Buffer.from(pem, 'utf8'), aad.spKey(id)),
        sp_certificate: certificate,
        created_at: now,
      };
      await store.transaction(async (repos) => {
        await repos.federation.createIdentityProvider(row);
        await repos.audit.recordEvent({
          at: now,
          actorId: actor.actorId,
          action: 'system.idp.lifecycle.create',
          targetId: firm.id,
          outcome: 'success',
          ip: actor.ip,
          userAgent: actor.userAgent,
          details: { idp: id, protocol: settings.protocol, via: actor.via },
        });
      });
      return { ok: true, value: viewOf(row) };
    },

    async list(): Promise<IdentityProviderView[]> {
      return (await store.repos.federation.listIdentityProviders()).map(viewOf);
    },

    async show(id: string): Promise<IdentityProviderView | undefined> {
      const row = await store.repos.federation.findIdentityProvider(id);
      return row ? viewOf(row) : undefined;
    },

    async remove(id: string, actor: FederationActor = CLI_ACTOR): Promise<boolean> {
      return store.transaction(async (repos) => {
        const row = await repos.federation.findIdentityProvider(id);
        if (!row || !(await repos.federation.deleteIdentityProvider(id))) return false;
        await repos.audit.recordEvent({
          at: clock(),
          actorId: actor.actorId,
          action: 'system.idp.lifecycle.delete',
          targetId: row.firm_id,
          outcome: 'success',
          ip: actor.ip,
          userAgent: actor.userAgent,
          details: { idp: id, via: actor.via },
        });
        return true;
      });
    },

    /** Our SP metadata XML for a SAML configuration; undefined for an unknown or OIDC one. */
    async metadata(id: string): Promise<string | undefined> {
      const row = await store.repos.federation.findIdentityProvider(id);
      if (row?.protocol !== 'saml') return undefined;
      return serviceProviderMetadata(spOf(row));
    },

    /**
     * Where the sign-in page sends this username: the firm's IdP when the user authenticates
     * through federation; undefined for unknown and local users, who see the page as before.
     */
    async routeFor(username: string): Promise<{ user: UserRow; idp: IdentityProviderRow | undefined } | undefined> {
      const user = await store.repos.users.findUserByLogin(username);
      if (user?.auth_mode !== 'federated') return undefined;
      return { user, idp: await store.repos.federation.findIdentityProviderOfFirm(user.firm_id) };
    },

    /**
     * Starts a sign-in at the IdP for the browser holding the binding cookie whose value hashes to
     * `bindingHash`; returns the URL to send the browser to.
     */
    async begin(
      idp: IdentityProviderRow,
      loginHint: string | null,
      bindingHash: string,
      ctx: RequestOrigin,
    ): Promise<FederationOutcome<string>> {
      const now = clock();
      await store.repos.federation.deleteExpired(now);
      const settings = settingsOf(idp);
      if (settings.protocol === 'saml') {
        const url = await samlAuthorizeUrl(
          settings,
          spOf(idp),
          requestStore(idp.id, { hash: bindingHash, loginHint }),
          FEDERATION_REQUEST_TTL_MS,
        );
        return { ok: true, value: url };
      }
      try {
        const started = await rp.begin(idp.id, settings, secretOf(idp), redirectUriOf(idp.id), loginHint ?? undefined);
        // The state is a bearer value in the URL: only its SHA-256 is stored (DESIGN, secrets at rest).
        const row = newRequest(hashBearerSecret(started.state), idp.id, { hash: bindingHash, loginHint }, now);
        row.nonce = started.nonce;
        row.verifier_sealed = secretBox.seal(Buffer.from(started.verifier, 'utf8'), aad.verifier(row.id));
        await store.repos.federation.createRequest(row);
        return { ok: true, value: started.url };
      } catch (err) {
        if (!(err instanceof IdpUnreachableError)) throw err;
        await recordFailure(ctx, idp.id, 'idp_unreachable', null, err.message);
        return { ok: false, reason: 'idp_unreachable' };
      }
    },

    /**
     * `POST /sso/saml/{id}/acs`: verifies the response (node-saml: signature, issuer, audience, time,
     * `InResponseTo`), accepts each assertion id once, maps the user. The browser binding is checked
     * at {@link finish}: this POST comes cross-site, without our SameSite cookies.
     */
    async acceptSamlResponse(
      idpId: string,
      samlResponse: string,
      ctx: RequestOrigin,
    ): Promise<FederationOutcome<{ requestId: string }>> {
      const idp = await store.repos.federation.findIdentityProvider(idpId);
      if (!idp) return { ok: false, reason: 'no_idp' };
      const settings = settingsOf(idp);
      if (settings.protocol !== 'saml') return { ok: false, reason: 'no_idp' };
      let verified: Awaited<ReturnType<typeof verifySamlResponse>>;
      const seen = { answered: false };
      try {
        verified = await verifySamlResponse(
          settings,
          spOf(idp),
          requestStore(idp.id, undefined, seen),
          FEDERATION_REQUEST_TTL_MS,
          samlResponse,
          clock(),
        );
      } catch (err) {
        // An answer to a request already answered is a replay, whatever the assertion id.
        const reason = seen.answered ? 'replayed' : classifySamlError((err as Error).message);
        await recordFailure(ctx, idp.id, reason, null, (err as Error).message);
        return { ok: false, reason };
      }
      // SAML Profiles §4.1.4.5: a bearer assertion is used once; its id is kept until it expires.
      if (!(await store.repos.federation.recordAssertionId(idp.id, verified.assertionId, verified.notOnOrAfter))) {
        await recordFailure(ctx, idp.id, 'replayed', null, `assertion ${verified.assertionId}`);
        return { ok: false, reason: 'replayed' };
      }
      return accept(idp, verified.requestId, verified.identity, ctx);
    },

    /**
     * `GET /sso/oidc/{id}/callback`: the state must be one this browser started (binding cookie),
     * then the code is exchanged and the ID token validated (openid-client), and the user mapped.
     */
    async acceptOidcCallback(
      idpId: string,
      callbackUrl: URL,
      bindingHash: string | undefined,
      ctx: RequestOrigin,
    ): Promise<FederationOutcome<{ requestId: string }>> {
      const idp = await store.repos.federation.findIdentityProvider(idpId);
      if (!idp) return { ok: false, reason: 'no_idp' };
      const settings = settingsOf(idp);
      if (settings.protocol !== 'oidc') return { ok: false, reason: 'no_idp' };
      const state = callbackUrl.searchParams.get('state') ?? '';
      const request =
        state && state.length <= 200
          ? await store.repos.federation.findOpenRequest(hashBearerSecret(state), idp.id, clock())
          : undefined;
      if (!request || !bindingHash || !constantTimeEqual(request.binding_hash, bindingHash)) {
        await recordFailure(ctx, idp.id, 'request_mismatch', null, 'unknown, answered or foreign state');
        return { ok: false, reason: 'request_mismatch' };
      }
      const idpError = callbackUrl.searchParams.get('error');
      if (idpError) {
        await recordFailure(ctx, idp.id, 'idp_error', null, idpError);
        return { ok: false, reason: 'idp_error', detail: idpError.slice(0, 100) };
      }
      let identity: FederatedIdentity;
      try {
        const verifier = secretBox.open(request.verifier_sealed ?? '', aad.verifier(request.id)).toString('utf8');
        ({ identity } = await rp.complete(idp.id, settings as OidcSettings, secretOf(idp), callbackUrl, {
          state,
          nonce: request.nonce ?? '',
          verifier,
        }));
      } catch (err) {
        // A network failure or timeout at the token endpoint is the IdP being unreachable, not a
        // bad answer (fetch rejects with TypeError / TimeoutError; openid-client keeps it as cause).
        const network = (e: unknown) =>
          e instanceof TypeError || (e instanceof Error && ['TimeoutError', 'AbortError'].includes(e.name));
        const unreachable = err instanceof IdpUnreachableError || network(err) || network((err as Error).cause);
        const reason: FederationFailure = unreachable ? 'idp_unreachable' : 'invalid_response';
        await recordFailure(ctx, idp.id, reason, null, (err as Error).message);
        return { ok: false, reason };
      }
      return accept(idp, request.id, identity, ctx);
    },

    /**
     * Ends a verified federated sign-in in the browser that started it: the binding cookie must
     * match (constant-time), the request is spent once, and the user signs in with `amr` `fed`
     * (+ `mfa`) through the same one-time session token as a local sign-in.
     */
    async finish(
      requestId: string,
      bindingHash: string | undefined,
      ctx: RequestContext,
    ): Promise<FederationOutcome<AuthnResult>> {
      const row = requestId.length <= 100 ? await store.repos.federation.findRequest(requestId) : undefined;
      if (!row || !bindingHash || !constantTimeEqual(row.binding_hash, bindingHash) || !row.user_id || !row.amr) {
        await recordFailure(
          ctx,
          row?.idp_id ?? '-',
          'request_mismatch',
          row?.user_id ?? null,
          'finish without a binding',
        );
        return { ok: false, reason: 'request_mismatch' };
      }
      if (!(await store.repos.federation.consumeRequest(row.id, clock()))) {
        await recordFailure(ctx, row.idp_id, 'replayed', row.user_id, 'request already used');
        return { ok: false, reason: 'replayed' };
      }
      const idp = await store.repos.federation.findIdentityProvider(row.idp_id);
      // Read again: the account may have been suspended or switched since the answer was checked.
      const user = await store.repos.users.findUserById(row.user_id);
      if (!idp) return { ok: false, reason: 'no_idp' };
      const amr = JSON.parse(row.amr) as string[];
      const decision = decideFederatedSignIn({
        idpFirmId: idp.firm_id,
        identity: { username: user?.login, mfa: amr.includes('mfa') },
        user,
      });
      if (!decision.ok) {
        await recordFailure(ctx, idp.id, decision.reason, user?.id ?? null);
        return decision;
      }
      const result = await deps.authn.signInFederated(
        decision.user,
        decision.amr,
        idp.protocol === 'oidc' ? 'oidc' : 'saml',
        ctx,
        {
          idp: idp.id,
        },
      );
      return { ok: true, value: result };
    },

    /** A fresh random value for the browser binding cookie and its hash. */
    newBinding(): { value: string; hash: string } {
      const value = createBearerSecret(random);
      return { value, hash: hashBearerSecret(value) };
    },
  };
}
export type FederationService = ReturnType<typeof createFederationService>;
