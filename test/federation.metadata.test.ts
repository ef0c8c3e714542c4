import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import type { EnvironmentRuntime } from '../src/app.ts';
import { registerFederationCommands } from '../src/federation/cli.ts';
import { METADATA_REFRESH_INTERVAL_MS } from '../src/federation/service.ts';
import { createBrowser } from './helpers/browser.ts';
import { runTraqs } from './helpers/cli.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import {
  createTestSamlIdp,
  type KeyAndCertificate,
  opensslKeyAndCertificate,
  provisionFederatedUser,
  samlRoundTrip,
  type TestSamlIdp,
} from './helpers/federation.ts';
import { createTestClock, createTestStack, type TestStack } from './helpers/stack.ts';

const ENTITY = 'https://idp.acme.example/saml';
const fingerprint = (k: KeyAndCertificate) => new X509Certificate(k.certificatePem).fingerprint256;

/**
 * A firm's IdP changes without a new configuration: `updateMetadata` (a signing-key rollover, a
 * new SSO URL), `traqs idp update|refresh`, and the idp's own daily refresh from the metadata URL.
 * Our SP side (id, key, ACS and metadata URLs) stays, so the firm reconfigures nothing.
 */
describeEachBackend(
  'IdP metadata updates and refresh',
  (backend: BackendHandle) => {
    let s: TestStack;
    let dir: string;
    let server: Server;
    let base = '';
    /** What the test IdP's metadata URL answers, and how often it was asked. */
    let served: { status: number; body: string; location?: string } = { status: 200, body: '' };
    let hits = 0;
    let n = 0;

    beforeAll(async () => {
      // node-saml checks assertion times against the real clock: the stack's clock starts at it.
      s = await createTestStack({ store: backend.store(), clock: createTestClock(Date.now()) });
      dir = mkdtempSync(join(tmpdir(), 'traqs-metadata-'));
      server = createServer((_req, res) => {
        hits += 1;
        res
          .writeHead(served.status, {
            'content-type': 'application/samlmetadata+xml',
            ...(served.location ? { location: served.location } : {}),
          })
          .end(served.body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }, 30_000);
    afterAll(async () => {
      await new Promise((resolve) => server?.close(resolve));
      await s?.close();
      rmSync(dir, { recursive: true, force: true });
    });
    afterEach(() => {
      vi.restoreAllMocks();
      process.exitCode = undefined;
    });

    async function firm(name: string) {
      const made = await s.rt.accounts.createFirm(name);
      if (!made.ok) throw new Error(made.message);
      return made.firm;
    }

    async function federatedUser(firmId: string) {
      n += 1;
      const login = `rollover${n}@acme.example`;
      await provisionFederatedUser(s.rt, { email: login, firmId });
      return login;
    }

    /** Signs `login` in through `idp`; the ACS answer's status (303: accepted). */
    async function signIn(idp: TestSamlIdp, id: string, login: string) {
      const spMetadata = (await s.app.inject({ url: `/sso/${id}/metadata` })).payload;
      const { acs, url } = await samlRoundTrip(createBrowser(s), idp, spMetadata, id, login);
      return { status: acs.statusCode, payload: acs.payload, url };
    }

    const updates = async (outcome: string) =>
      (await s.rt.store.repos.audit.listEvents({ action: 'system.idp.lifecycle.update', limit: 100 })).filter(
        (e) => e.outcome === outcome,
      );

    const traqs = (...args: string[]) => runTraqs(registerFederationCommands, () => s.rt as EnvironmentRuntime, args);

    /** `traqs idp add --protocol saml --metadata <source>` for firm `firmName`; the new id. */
    async function idpAdd(firmName: string, name: string, source: string): Promise<string> {
      const add = await traqs(
        'idp',
        'add',
        '--firm',
        firmName,
        '--name',
        name,
        '--protocol',
        'saml',
        '--metadata',
        source,
        '--json',
      );
      expect(add).toMatchObject({ code: 0, err: '' });
      return (JSON.parse(add.out) as { id: string }).id;
    }

    /**
     * A firm whose SAML IdP is added from its metadata with `oldKey` (`before`), the same IdP with
     * `newKey` and maybe another SSO URL (`after`), and a federated user of the firm.
     */
    async function samlFirm(name: string, entity: string, ssoUrl: string, newSsoUrl = ssoUrl) {
      const made = await firm(name);
      const oldKey = opensslKeyAndCertificate(`${name} old`);
      const newKey = opensslKeyAndCertificate(`${name} new`);
      const before = createTestSamlIdp(entity, ssoUrl, oldKey);
      const after = createTestSamlIdp(entity, newSsoUrl, newKey);
      const added = await s.rt.federation.add({
        protocol: 'saml',
        firmId: made.id,
        name,
        metadataXml: before.metadataXml,
      });
      if (!added.ok) throw new Error(added.detail);
      return { firm: made, oldKey, newKey, before, after, conf: added.value, login: await federatedUser(made.id) };
    }

    it('rolls the IdP signing key over in place: new key works, old key refused, our SP side unchanged', async () => {
      const {
        firm: acme,
        oldKey,
        newKey,
        before,
        after,
        conf,
        login,
      } = await samlFirm('Acme Rollover', ENTITY, 'https://idp.acme.example/sso', 'https://login.acme.example/sso');
      // The document's ID attribute is new each time it is served; the rest is our SP.
      const ourSp = async () =>
        (await s.app.inject({ url: `/sso/${conf.id}/metadata` })).payload.replace(/ ID="[^"]+"/, '');
      const spMetadata = await ourSp();
      expect((await signIn(before, conf.id, login)).status).toBe(303);

      const r = await s.rt.federation.updateMetadata(conf.id, { metadataXml: after.metadataXml });
      if (!r.ok) throw new Error(r.detail);
      expect(r.value.change).toEqual({
        changed: true,
        ssoUrl: { before: 'https://idp.acme.example/sso', after: 'https://login.acme.example/sso' },
        certificatesAdded: [fingerprint(newKey)],
        certificatesRemoved: [fingerprint(oldKey)],
      });
      expect(r.value.view.id).toBe(conf.id);
      expect(r.value.view.sp).toEqual(conf.sp);

      // The firm reconfigures nothing: the same SP metadata (entity id, ACS, our certificate).
      expect(await ourSp()).toBe(spMetadata);
      const signedNew = await signIn(after, conf.id, login);
      expect(signedNew.url.startsWith('https://login.acme.example/sso?SAMLRequest=')).toBe(true);
      expect(signedNew.status).toBe(303);
      const signedOld = await signIn(after.withKey(oldKey), conf.id, login);
      expect(signedOld.status).toBe(401);
      expect(signedOld.payload).toContain('data-reason="signature_invalid"');

      const [event] = await updates('success');
      expect(event).toMatchObject({ actor_id: null, target_id: acme.id });
      expect(JSON.parse(event?.details ?? '{}')).toEqual({
        idp: conf.id,
        via: 'cli',
        ssoUrl: { before: 'https://idp.acme.example/sso', after: 'https://login.acme.example/sso' },
        certificatesAdded: [fingerprint(newKey)],
        certificatesRemoved: [fingerprint(oldKey)],
      });

      // The same metadata again changes nothing and records nothing.
      const again = await s.rt.federation.updateMetadata(conf.id, { metadataXml: after.metadataXml });
      expect(again).toMatchObject({ ok: true, value: { change: { changed: false } } });
      expect(await updates('success')).toHaveLength(1);
    });

    it('during a rollover the IdP may publish both certificates: either key signs until the old one goes', async () => {
      const fox = await samlFirm('Fox Overlap', 'https://idp.fox.example/saml', 'https://idp.fox.example/sso');
      const { oldKey, newKey, before: oldIdp, after: newIdp, conf: added, login } = fox;
      // SAML Metadata §2.4.1.1: a role may carry several KeyDescriptor elements.
      const oldDescriptor = /<KeyDescriptor use="signing">.*?<\/KeyDescriptor>/.exec(oldIdp.metadataXml)?.[0] ?? '';
      const both = newIdp.metadataXml.replace('</KeyDescriptor>', `</KeyDescriptor>${oldDescriptor}`);
      const overlap = await s.rt.federation.updateMetadata(added.id, { metadataXml: both });
      expect(overlap).toMatchObject({
        ok: true,
        value: { change: { certificatesAdded: [fingerprint(newKey)], certificatesRemoved: [] } },
      });
      expect((await signIn(newIdp, added.id, login)).status).toBe(303);
      expect((await signIn(newIdp.withKey(oldKey), added.id, login)).status).toBe(303);
      const done = await s.rt.federation.updateMetadata(added.id, { metadataXml: newIdp.metadataXml });
      expect(done).toMatchObject({
        ok: true,
        value: { change: { certificatesAdded: [], certificatesRemoved: [fingerprint(oldKey)] } },
      });
      expect((await signIn(newIdp, added.id, login)).status).toBe(303);
      expect((await signIn(newIdp.withKey(oldKey), added.id, login)).status).toBe(401);
    });

    it('refuses another entity, an OpenID Connect configuration, garbage and an unknown id, changing nothing', async () => {
      const beta = await firm('Beta Refusals');
      const gamma = await firm('Gamma Refusals');
      const idp = createTestSamlIdp('https://idp.beta.example/saml', 'https://idp.beta.example/sso');
      const saml = await s.rt.federation.add({
        protocol: 'saml',
        firmId: beta.id,
        name: 'Beta',
        metadataXml: idp.metadataXml,
      });
      const oidc = await s.rt.federation.add({
        protocol: 'oidc',
        firmId: gamma.id,
        name: 'Gamma Okta',
        issuer: 'https://op.gamma.example',
        clientId: 'traqs',
        clientSecret: 'secret',
      });
      if (!saml.ok || !oidc.ok) throw new Error('adding failed');
      const all = await s.rt.federation.list();
      const recorded = (await updates('success')).length;

      const other = createTestSamlIdp('https://idp.other.example/saml', 'https://idp.other.example/sso');
      expect(await s.rt.federation.updateMetadata(saml.value.id, { metadataXml: other.metadataXml })).toEqual({
        ok: false,
        detail:
          'The metadata is for entity https://idp.other.example/saml; this configuration is for https://idp.beta.example/saml: remove it and add the new IdP instead.',
      });
      expect(await s.rt.federation.updateMetadata(oidc.value.id, { metadataXml: idp.metadataXml })).toEqual({
        ok: false,
        detail: 'Gamma Okta uses OpenID Connect: it has no SAML metadata to update.',
      });
      expect(await s.rt.federation.updateMetadata(saml.value.id, { metadataXml: '<html>no</html>' })).toEqual({
        ok: false,
        detail: 'The metadata has no EntityDescriptor with an IDPSSODescriptor.',
      });
      expect(await s.rt.federation.updateMetadata(saml.value.id, { metadataXml: '<EntityDescriptor' })).toMatchObject({
        ok: false,
        detail: expect.stringContaining('Not XML metadata'),
      });
      expect(await s.rt.federation.updateMetadata('0oaNOSUCH', { metadataXml: idp.metadataXml })).toEqual({
        ok: false,
        detail: 'No identity provider "0oaNOSUCH".',
      });
      expect(await s.rt.federation.list()).toEqual(all);
      expect(await updates('success')).toHaveLength(recorded);
    });

    it('`traqs idp update` from a file prints what changed (--json too); refusals exit 2', async () => {
      const delta = await firm('Delta Cli');
      const oldKey = opensslKeyAndCertificate('delta old');
      const newKey = opensslKeyAndCertificate('delta new');
      const entity = 'https://idp.delta.example/saml';
      const first = createTestSamlIdp(entity, 'https://idp.delta.example/sso', oldKey);
      const file = join(dir, 'delta.xml');
      writeFileSync(file, first.metadataXml);
      const id = await idpAdd('Delta Cli', 'Delta', file);
      expect((await s.rt.federation.show(id))?.firmId).toBe(delta.id);

      writeFileSync(file, createTestSamlIdp(entity, 'https://idp.delta.example/sso', newKey).metadataXml);
      const updated = await traqs('idp', 'update', id, '--metadata', file);
      expect(updated).toMatchObject({ code: 0, err: '' });
      expect(updated.out).toContain(`Updated ${id} Delta`);
      expect(updated.out).toContain(`Certificate added:   SHA-256 ${fingerprint(newKey)}`);
      expect(updated.out).toContain(`Certificate removed: SHA-256 ${fingerprint(oldKey)}`);
      expect(updated.out).not.toContain('SSO URL');

      const json = await traqs('idp', 'update', id, '--metadata', file, '--json');
      expect(json.code).toBe(0);
      expect(JSON.parse(json.out)).toMatchObject({ view: { id }, change: { changed: false } });

      writeFileSync(file, createTestSamlIdp('https://idp.elsewhere.example/saml', 'https://x.example/sso').metadataXml);
      const foreign = await traqs('idp', 'update', id, '--metadata', file);
      expect(foreign.code).toBe(2);
      expect(foreign.err).toContain('traqs: The metadata is for entity https://idp.elsewhere.example/saml');
      expect((await traqs('idp', 'update', id, '--metadata', join(dir, 'missing.xml'))).err).toContain(
        'traqs: cannot read the metadata',
      );
      expect((await traqs('idp', 'update', '0oaNOSUCH', '--metadata', file)).code).toBe(2);
      const insecure = await traqs('idp', 'update', id, '--metadata', 'http://idp.delta.example/metadata');
      expect(insecure).toMatchObject({
        code: 2,
        err: 'traqs: cannot read the metadata: metadata must be fetched over https',
      });
      expect((await s.rt.federation.show(id))?.settings).toMatchObject({
        certificates: [newKey.certificatePem],
        metadataSource: file,
      });
      // Added from a file: nothing to refresh from.
      const refresh = await traqs('idp', 'refresh', id);
      expect(refresh.code).toBe(2);
      expect(refresh.err).toContain('Delta has no metadata URL to refresh from: use idp update --metadata');
    });

    it('refreshes from the metadata URL: unchanged, updated, a failed fetch keeps it; daily, once across nodes', async () => {
      const echo = await firm('Echo Refresh');
      const oldKey = opensslKeyAndCertificate('echo old');
      const newKey = opensslKeyAndCertificate('echo new');
      const entity = 'https://idp.echo.example/saml';
      const oldIdp = createTestSamlIdp(entity, 'https://idp.echo.example/sso', oldKey);
      const newIdp = createTestSamlIdp(entity, 'https://idp.echo.example/sso', newKey);
      const url = `${base}/federationmetadata.xml`;
      served = { status: 200, body: oldIdp.metadataXml };
      const id = await idpAdd('Echo Refresh', 'Echo', url);
      const login = await federatedUser(echo.id);
      const recorded = (await updates('success')).length;

      const unchanged = await traqs('idp', 'refresh', id);
      expect(unchanged).toMatchObject({ code: 0, out: `${id}  Echo  unchanged (${url})` });
      expect(await updates('success')).toHaveLength(recorded);

      served = { status: 200, body: newIdp.metadataXml };
      const refreshed = await traqs('idp', 'refresh', '--json');
      expect(refreshed.code).toBe(0);
      expect(JSON.parse(refreshed.out)).toEqual([
        {
          id,
          name: 'Echo',
          source: url,
          outcome: 'updated',
          change: {
            changed: true,
            certificatesAdded: [fingerprint(newKey)],
            certificatesRemoved: [fingerprint(oldKey)],
          },
        },
      ]);
      expect(await updates('success')).toHaveLength(recorded + 1);
      expect((await signIn(newIdp, id, login)).status).toBe(303);

      // A failed fetch or refused metadata keeps the configuration, recorded as a failed update.
      served = { status: 503, body: 'maintenance' };
      const down = await traqs('idp', 'refresh', id);
      expect(down.code).toBe(1);
      expect(down.out).toContain(`cannot fetch the metadata: ${url} answered 503`);
      served = { status: 200, body: '<html>login page</html>' };
      expect((await traqs('idp', 'refresh', id)).out).toContain('The metadata has no EntityDescriptor');
      // OWASP SSRF Prevention: a redirect is not followed (it could lead to an internal address).
      served = { status: 302, body: '', location: 'http://169.254.169.254/latest/meta-data/' };
      expect((await traqs('idp', 'refresh', id)).out).toContain(
        `cannot fetch the metadata: ${url}: unexpected redirect`,
      );
      const failures = await updates('failure');
      expect(failures).toHaveLength(3);
      expect(JSON.parse(failures[2]?.details ?? '{}')).toMatchObject({ idp: id, via: 'cli', source: url });
      expect((await s.rt.federation.show(id))?.settings).toMatchObject({ certificates: [newKey.certificatePem] });
      expect((await signIn(newIdp, id, login)).status).toBe(303);

      // The idp's housekeeping: not due before 24 hours; then two nodes at once fetch once.
      served = { status: 200, body: oldIdp.metadataXml };
      hits = 0;
      expect(await s.rt.federation.refreshDueMetadata()).toEqual([]);
      expect(hits).toBe(0);
      s.clock.advance(METADATA_REFRESH_INTERVAL_MS);
      const [a, b] = await Promise.all([s.rt.federation.refreshDueMetadata(), s.rt.federation.refreshDueMetadata()]);
      expect([...(a ?? []), ...(b ?? [])]).toMatchObject([
        { id, outcome: 'updated', change: { certificatesAdded: [fingerprint(oldKey)] } },
      ]);
      expect(hits).toBe(1);
      const [scheduled] = await updates('success');
      expect(JSON.parse(scheduled?.details ?? '{}')).toMatchObject({ idp: id, via: 'schedule' });
      expect(await s.rt.federation.refreshDueMetadata()).toEqual([]);

      served = { status: 500, body: '' };
      s.clock.advance(METADATA_REFRESH_INTERVAL_MS);
      const logged: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
      expect(await s.rt.federation.refreshDueMetadata(logger)).toMatchObject([{ id, outcome: 'failed' }]);
      expect(logged.map((l) => JSON.parse(l))).toMatchObject([
        { level: 40, idp: id, source: url, msg: 'IdP metadata refresh failed; configuration kept' },
      ]);
      expect((await s.rt.federation.show(id))?.settings).toMatchObject({ certificates: [oldKey.certificatePem] });
      const [failed] = await updates('failure');
      expect(JSON.parse(failed?.details ?? '{}')).toMatchObject({ idp: id, via: 'schedule', source: url });
    });
  },
  { fresh: 'suite' },
);
