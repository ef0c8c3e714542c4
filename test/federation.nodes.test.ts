import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { buildIdp, openEnvironment } from '../src/app.ts';
import { createBrowser } from './helpers/browser.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { addSamlIdp, createTestSamlIdp, provisionFederatedUser } from './helpers/federation.ts';
import { createTestClock, createTestStack, type TestStack } from './helpers/stack.ts';

/**
 * Issue #8 on several nodes: the SAML request store and the assertion ids live in the database,
 * so a sign-in started on one node is answered on another, and a replay to a third is refused.
 */
describeEachBackend('federated sign-in across nodes', (backend: BackendHandle) => {
  const kek = randomBytes(32).toString('base64');
  let node1: TestStack;
  let node2: Awaited<ReturnType<typeof buildIdp>>;
  let closeNode2: () => Promise<void>;

  beforeEach(async () => {
    const clock = createTestClock(Date.now());
    node1 = await createTestStack({ store: backend.store(), clock, env: { TRAQS_NTF_KEK: kek } });
    // A second process on the same database with the same configuration and keys.
    const rt = await openEnvironment(node1.config, node1.rt.environment, {
      logger: pino({ level: 'silent' }),
      clock,
      store: backend.connectAgain(),
    });
    node2 = await buildIdp(rt);
    await node2.ready();
    closeNode2 = async () => {
      await node2.close();
    };
  });
  afterEach(async () => {
    await closeNode2();
    await node1.close();
  });

  it('starts on node 1, is answered on node 2, and a replay on node 1 is refused', async () => {
    const idp = createTestSamlIdp('https://idp.acme.example/saml', 'https://idp.acme.example/sso');
    const added = { value: await addSamlIdp(node1.rt, node1.firm.id, idp) };
    await provisionFederatedUser(node1.rt, { email: 'nodes@acme.example', firmId: node1.firm.id });

    const onNode1 = createBrowser(node1);
    const page = await onNode1.submit('/signin', '/signin', { username: 'nodes@acme.example', password: '' });
    const href = /<a class="button" href="([^"]+)" data-auto-follow/.exec(page.payload)?.[1]?.replace(/&amp;/g, '&');
    const spMetadata = (await node2.inject({ url: `/sso/${added.value.id}/metadata` })).payload;
    const answer = await idp.respond(spMetadata, href ?? '', { nameId: 'nodes@acme.example' });
    const form = { SAMLResponse: answer.samlResponse };
    const acs = await node2.inject({
      method: 'POST',
      url: `/sso/saml/${added.value.id}/acs`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams(form).toString(),
    });
    expect(acs.statusCode).toBe(303);
    const replay = await onNode1.post(`/sso/saml/${added.value.id}/acs`, form);
    expect(replay.statusCode).toBe(401);
    expect(replay.payload).toContain('data-reason="replayed"');
    // The browser (cookie jar of node 1's domain) finishes on node 1.
    const done = await onNode1.get(String(acs.headers.location));
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe('/');
  });
});
