import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildPortal } from '../src/portal/app.ts';
import { csrfFrom } from './helpers/browser.ts';
import { createHttpBrowser, type HttpBrowser } from './helpers/http-browser.ts';
import { type OauthStack, signInOnPages, startOauthStack } from './helpers/oauth.ts';
import { type ActiveUser, activateUser } from './helpers/users.ts';

/**
 * Security regression: a refresh token must come from a sign-in made for it (FAQ: "confirm their
 * identity using their second authentication method"). The portal checks the ID token's
 * `auth_time` itself, besides the idp; a token that fails the check is revoked, never shown.
 * Here the portal's clock runs ten minutes ahead of the idp's, so every sign-in looks stale to it.
 */

let s: OauthStack;
let portal: FastifyInstance;
let alice: ActiveUser;

beforeAll(async () => {
  s = await startOauthStack();
  portal = await buildPortal({ ...s.rt, clock: () => s.clock() + 10 * 60_000 });
  await portal.listen({ port: s.rt.environment.portal.port, host: '127.0.0.1' });
  alice = await activateUser(s, 'alice@acme.example');
  await s.rt.store.repos.users.assignApp(alice.user.id, 'download', s.clock());
});
afterAll(async () => {
  await portal?.close();
  await s?.close();
});

async function throughSignIn(browser: HttpBrowser, url: string) {
  const { answer: signInPage } = await browser.follow(url);
  const done = await signInOnPages(s, browser, signInPage.url, alice);
  return browser.follow(done.location ?? '');
}

it('revokes, unseen, a refresh token whose sign-in is not fresh', async () => {
  const browser = createHttpBrowser();
  const { answer: home } = await throughSignIn(browser, `${s.portalUrl}/`);
  expect(home.status).toBe(200);
  const page = await browser.get(`${s.portalUrl}/api/programmatic`);
  const start = await browser.post(`${s.portalUrl}/api/programmatic/start`, {
    label: 'stale',
    _csrf: csrfFrom(page.body),
  });
  expect(start.status).toBe(303);
  const { answer } = await throughSignIn(browser, start.location ?? '');
  expect(answer.status).toBe(400);
  expect(answer.body).toContain('No refresh token was issued');
  expect(answer.body).not.toContain('id="refresh-token"');

  const tokens = await s.rt.store.repos.apiTokens.listForUser(alice.user.id, 0);
  expect(tokens).toHaveLength(1);
  expect(tokens[0]).toMatchObject({ revoked_reason: 'not-fresh', label: expect.stringMatching(/^Refresh token /) });
  const [event] = await s.rt.store.repos.audit.listEvents({ action: 'app.oauth2.as.token.revoke' });
  expect(event).toMatchObject({ actor_id: alice.user.id, outcome: 'success' });
});
