import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role, UserStatus } from '../src/accounts/model.ts';
import type { UserRow } from '../src/accounts/repository.ts';
import { CLI_PRINCIPAL } from '../src/admin/service.ts';
import { createId } from '../src/lib/tokens.ts';
import { type AdminStack, apiToken, createAdminStack, mailTo, seedUser } from './helpers/admin.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';

/**
 * The Okta-compatible management API over HTTP: `SSWS` authentication, the authorization matrix
 * per route and token role, Okta's JSON shapes and error objects, `Link` pagination and the
 * System Log's filters.
 */

interface Answer {
  status: number;
  body: unknown;
  headers: Record<string, unknown>;
}

async function call(
  s: AdminStack,
  token: string | null,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await s.app.inject({
    method,
    url,
    remoteAddress: '203.0.113.20',
    headers: {
      'user-agent': 'okta-sdk-nodejs/7 (test)',
      ...(token ? { authorization: `SSWS ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  let parsed: unknown = res.payload;
  try {
    parsed = res.payload ? JSON.parse(res.payload) : undefined;
  } catch {
    // Not JSON: kept as text.
  }
  return { status: res.statusCode, body: parsed, headers: res.headers };
}

const obj = (v: unknown) => v as Record<string, unknown>;
const list = (v: unknown) => v as Record<string, unknown>[];

/** The `rel="next"` URL of a `Link` header (one header or several), if any. */
function nextLink(headers: Record<string, unknown>): string | undefined {
  const raw = headers.link;
  const all = Array.isArray(raw) ? raw.join(', ') : String(raw ?? '');
  return /<([^>]+)>;\s*rel="next"/.exec(all)?.[1];
}

describe('management API: authentication', () => {
  let s: AdminStack;
  beforeAll(async () => {
    s = await createAdminStack();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('answers 401 E0000011 without a valid SSWS token, and for a revoked one', async () => {
    const token = await apiToken(s, 'admin');
    expect((await call(s, token, 'GET', '/api/v1/users')).status).toBe(200);
    const variants: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${token}` },
      { authorization: 'SSWS not-a-token' },
      { authorization: 'SSWS' },
    ];
    for (const headers of variants) {
      const r = await call(s, null, 'GET', '/api/v1/users', undefined, headers);
      expect(r.status).toBe(401);
      expect(r.body).toMatchObject({ errorCode: 'E0000011', errorSummary: 'Invalid token provided' });
    }
    const tokens = await s.admin.listApiTokens(CLI_PRINCIPAL);
    if (!tokens.ok) throw new Error(tokens.message);
    const id = tokens.value[0]?.id ?? '';
    expect((await s.admin.revokeApiToken(CLI_PRINCIPAL, id)).ok).toBe(true);
    expect((await call(s, token, 'GET', '/api/v1/users')).status).toBe(401);
    // The token itself is stored nowhere; its last use is.
    const row = await s.store.repos.managementTokens.findById(id);
    expect(JSON.stringify(row)).not.toContain(token);
    expect(row?.last_used_at).not.toBeNull();
  });
});

type Route = {
  name: string;
  allowed: readonly Role[];
  status?: UserStatus;
  request: (
    t: UserRow,
    s: AdminStack,
  ) => Promise<[method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown]>;
};

const OPS: Role[] = ['operations', 'admin'];
const SUPPORT: Role[] = ['support', 'admin'];
const ANY_STAFF: Role[] = ['saa', 'operations', 'support', 'admin'];

async function seedFactor(s: AdminStack, user: UserRow): Promise<string> {
  const id = createId('uft');
  await s.store.repos.factors.createFactor({
    id,
    user_id: user.id,
    factor_type: 'token:software:totp',
    provider: 'GOOGLE',
    status: 'ACTIVE',
    name: 'Google Authenticator',
    secret_enc: null,
    last_used_step: null,
    created_at: s.clock(),
    activated_at: s.clock(),
    last_used_at: null,
  });
  return id;
}

const ROUTES: Route[] = [
  { name: 'GET /users', allowed: ANY_STAFF, request: async () => ['GET', '/api/v1/users'] },
  {
    name: 'POST /users?activate=true',
    allowed: OPS,
    request: async (_t, s) => [
      'POST',
      '/api/v1/users?activate=true',
      {
        profile: {
          firstName: 'Api',
          lastName: 'Made',
          email: `${createId('a').toLowerCase()}@acme.example`,
          firmId: s.firmA.id,
        },
      },
    ],
  },
  { name: 'GET /users/{id}', allowed: ANY_STAFF, request: async (t) => ['GET', `/api/v1/users/${t.id}`] },
  {
    name: 'GET /users/{login}',
    allowed: ANY_STAFF,
    request: async (t) => ['GET', `/api/v1/users/${encodeURIComponent(t.login)}`],
  },
  {
    name: 'POST /users/{id}',
    allowed: OPS,
    request: async (t) => ['POST', `/api/v1/users/${t.id}`, { profile: { firstName: 'Ed' } }],
  },
  {
    name: 'lifecycle/activate',
    allowed: OPS,
    status: 'STAGED',
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/activate?sendEmail=true`],
  },
  {
    name: 'lifecycle/reactivate',
    allowed: OPS,
    status: 'PROVISIONED',
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/reactivate`],
  },
  {
    name: 'lifecycle/unlock',
    allowed: ['operations', 'support', 'admin'],
    status: 'LOCKED_OUT',
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/unlock`],
  },
  {
    name: 'lifecycle/suspend',
    allowed: OPS,
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/suspend`],
  },
  {
    name: 'lifecycle/unsuspend',
    allowed: OPS,
    status: 'SUSPENDED',
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/unsuspend`],
  },
  {
    name: 'lifecycle/deactivate',
    allowed: OPS,
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/deactivate`],
  },
  {
    name: 'lifecycle/reset_factors',
    allowed: SUPPORT,
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/reset_factors`],
  },
  {
    name: 'lifecycle/reset_password',
    allowed: SUPPORT,
    request: async (t) => ['POST', `/api/v1/users/${t.id}/lifecycle/reset_password?sendEmail=true`],
  },
  { name: 'DELETE /users/{id} (deactivates)', allowed: OPS, request: async (t) => ['DELETE', `/api/v1/users/${t.id}`] },
  {
    name: 'DELETE /users/{id} (deletes)',
    allowed: ['admin'],
    status: 'DEPROVISIONED',
    request: async (t) => ['DELETE', `/api/v1/users/${t.id}`],
  },
  {
    name: 'GET /users/{id}/factors',
    allowed: ['operations', 'support', 'admin'],
    request: async (t) => ['GET', `/api/v1/users/${t.id}/factors`],
  },
  {
    name: 'DELETE /users/{id}/factors/{id}',
    allowed: SUPPORT,
    request: async (t, s) => ['DELETE', `/api/v1/users/${t.id}/factors/${await seedFactor(s, t)}`],
  },
  {
    name: 'GET /apps/{app}/users',
    allowed: ['operations', 'support', 'admin'],
    request: async () => ['GET', '/api/v1/apps/portal/users'],
  },
  {
    name: 'GET /apps/{app}/users/{id}',
    allowed: ['operations', 'support', 'admin'],
    request: async (t) => ['GET', `/api/v1/apps/portal/users/${t.id}`],
  },
  {
    name: 'POST /apps/{app}/users',
    allowed: SUPPORT,
    request: async (t) => ['POST', '/api/v1/apps/download/users', { id: t.id, scope: 'USER' }],
  },
  {
    name: 'PUT /apps/{app}/users/{id}',
    allowed: SUPPORT,
    request: async (t) => ['PUT', `/api/v1/apps/download/users/${t.id}`],
  },
  {
    name: 'DELETE /apps/{app}/users/{id}',
    allowed: SUPPORT,
    request: async (t) => ['DELETE', `/api/v1/apps/portal/users/${t.id}`],
  },
  {
    name: 'GET /logs',
    allowed: ['operations', 'support', 'admin'],
    request: async () => ['GET', '/api/v1/logs?limit=5'],
  },
];

const TOKEN_ROLES = ['saa', 'operations', 'support', 'admin'] as const;

describe('management API: authorization matrix', () => {
  let s: AdminStack;
  const tokens = new Map<Role, string>();
  beforeAll(async () => {
    s = await createAdminStack();
    for (const role of TOKEN_ROLES) tokens.set(role, await apiToken(s, role, s.firmA));
  });
  afterAll(async () => {
    await s?.close();
  });

  for (const route of ROUTES) {
    it(`${route.name}: ${route.allowed.join(', ')}`, async () => {
      const allowed: Role[] = [];
      const odd: string[] = [];
      for (const role of TOKEN_ROLES) {
        const target = await seedUser(s, s.firmA, { status: route.status ?? 'ACTIVE' });
        const [method, url, body] = await route.request(target, s);
        const r = await call(s, tokens.get(role) ?? '', method, url, body);
        if (r.status >= 200 && r.status < 300) allowed.push(role);
        else if (r.status !== 403 || obj(r.body).errorCode !== 'E0000006')
          odd.push(`${role}: ${r.status} ${JSON.stringify(r.body)}`);
      }
      expect(odd).toEqual([]);
      expect(allowed).toEqual(TOKEN_ROLES.filter((r) => route.allowed.includes(r)));
    });
  }

  it('an saa token sees only its firm: another firm’s user is 403, whether by id or login', async () => {
    const token = tokens.get('saa') ?? '';
    const foreign = await seedUser(s, s.firmB);
    for (const url of [
      `/api/v1/users/${foreign.id}`,
      `/api/v1/users/${encodeURIComponent(foreign.login)}`,
      '/api/v1/users/00uNoSuchUser000000',
    ]) {
      const r = await call(s, token, 'GET', url);
      expect(r.status, url).toBe(403);
      expect(r.body).toMatchObject({ errorCode: 'E0000006' });
    }
    const users = await call(s, token, 'GET', '/api/v1/users?limit=200');
    expect(list(users.body).every((u) => obj(u.profile).firmId === s.firmA.id)).toBe(true);
    expect(list(users.body).some((u) => u.id === foreign.id)).toBe(false);
    const filtered = await call(s, token, 'GET', `/api/v1/users?filter=${encodeURIComponent(`id eq "${foreign.id}"`)}`);
    expect(filtered.body).toEqual([]);
  });
});

describeEachBackend(
  'management API: shapes, errors and pagination',
  (backend: BackendHandle) => {
    let s: AdminStack;
    let ops: string;
    beforeAll(async () => {
      s = await createAdminStack({ store: backend.store() });
      ops = await apiToken(s, 'operations');
    });
    afterAll(async () => {
      await s?.close();
    });

    it('creates a user with activation: Okta user JSON, the enrollment email, and Okta errors for bad input', async () => {
      const created = await call(s, ops, 'POST', '/api/v1/users?activate=true', {
        profile: {
          firstName: 'Ada',
          lastName: 'Lovelace',
          email: 'Ada@Acme.example',
          login: 'ada@acme.example',
          organization: 'acme securities',
        },
      });
      expect(created.status).toBe(200);
      const user = obj(created.body);
      expect(user).toMatchObject({
        id: expect.stringMatching(/^00u/),
        status: 'PROVISIONED',
        created: expect.stringMatching(/Z$/),
        profile: {
          firstName: 'Ada',
          lastName: 'Lovelace',
          login: 'ada@acme.example',
          email: 'ada@acme.example',
          firmId: s.firmA.id,
          organization: 'Acme Securities',
        },
        credentials: { provider: { type: 'OKTA', name: 'OKTA' } },
        _links: { self: { href: `${s.idpUrl}/api/v1/users/${String(user.id)}` }, reactivate: expect.any(Object) },
      });
      expect((await mailTo(s, 'ada@acme.example'))[0]?.template).toBe('enrollment');

      const again = await call(s, ops, 'POST', '/api/v1/users', {
        profile: { firstName: 'A', lastName: 'L', login: 'ada@acme.example', firmId: s.firmA.id },
      });
      expect(again.status).toBe(400);
      expect(again.body).toMatchObject({
        errorCode: 'E0000001',
        errorCauses: [{ errorSummary: 'login: An object with this field already exists in the current organization' }],
      });
      const withPassword = await call(s, ops, 'POST', '/api/v1/users', {
        profile: { firstName: 'P', lastName: 'W', login: 'pw@acme.example', firmId: s.firmA.id },
        credentials: { password: { value: 'chosen by an admin' } },
      });
      expect(withPassword.status).toBe(400);
      expect(await s.store.repos.users.findUserByLogin('pw@acme.example')).toBeUndefined();
      const staged = await call(s, ops, 'POST', '/api/v1/users?activate=false', {
        profile: { firstName: 'St', lastName: 'Aged', login: 'staged@acme.example', firmId: s.firmA.id },
      });
      expect(obj(staged.body).status).toBe('STAGED');
      expect(await mailTo(s, 'staged@acme.example')).toEqual([]);
      const noLink = await call(
        s,
        ops,
        'POST',
        `/api/v1/users/${String(obj(staged.body).id)}/lifecycle/activate?sendEmail=false`,
      );
      expect(noLink.status).toBe(400);
      // Okta's lifecycle calls carry no body; an empty JSON body is accepted as well.
      const activated = await call(
        s,
        ops,
        'POST',
        `/api/v1/users/${String(obj(staged.body).id)}/lifecycle/activate`,
        '',
      );
      expect(activated).toMatchObject({ status: 200, body: {} });
      expect((await mailTo(s, 'staged@acme.example'))[0]?.template).toBe('enrollment');

      const wrongState = await call(s, ops, 'POST', `/api/v1/users/${String(user.id)}/lifecycle/unsuspend`);
      expect(wrongState.status).toBe(403);
      expect(wrongState.body).toMatchObject({ errorCode: 'E0000038' });
      const missing = await call(s, ops, 'GET', '/api/v1/users/00uNoSuchUser000000');
      expect(missing.status).toBe(404);
      expect(missing.body).toMatchObject({ errorCode: 'E0000007' });
      expect((await call(s, ops, 'POST', `/api/v1/users/${String(user.id)}/lifecycle/explode`)).status).toBe(404);
      const text = await call(s, ops, 'POST', `/api/v1/users/${String(user.id)}`, 'profile=x', {
        'content-type': 'text/plain',
      });
      expect(text.status).toBe(415);
    });

    it('pages users with limit and Link rel="next" until the end, in a stable order', async () => {
      for (let i = 0; i < 5; i++) await seedUser(s, s.firmB, { login: `page${i}@birch.example` });
      const seen: string[] = [];
      let url: string | undefined =
        `/api/v1/users?limit=2&filter=${encodeURIComponent(`profile.firmId eq "${s.firmB.id}"`)}`;
      let pages = 0;
      while (url) {
        const r = await call(s, ops, 'GET', url.replace(s.idpUrl, ''));
        expect(r.status).toBe(200);
        expect(String(r.headers.link)).toContain('rel="self"');
        seen.push(...list(r.body).map((u) => String(u.id)));
        url = nextLink(r.headers);
        pages++;
      }
      expect(seen).toHaveLength(5);
      expect(new Set(seen).size).toBe(5);
      expect([...seen].sort()).toEqual(seen);
      expect(pages).toBe(3);
      const q = await call(s, ops, 'GET', '/api/v1/users?q=PAGE3');
      expect(list(q.body).map((u) => obj(u.profile).login)).toEqual(['page3@birch.example']);
      const byLogin = await call(
        s,
        ops,
        'GET',
        `/api/v1/users?filter=${encodeURIComponent('profile.login eq "PAGE1@birch.example" or profile.login eq "page2@birch.example"')}`,
      );
      expect(
        list(byLogin.body)
          .map((u) => obj(u.profile).login)
          .sort(),
      ).toEqual(['page1@birch.example', 'page2@birch.example']);
      const bad = await call(s, ops, 'GET', `/api/v1/users?filter=${encodeURIComponent('profile.city eq "x"')}`);
      expect(bad.status).toBe(400);
      // LIKE wildcards in q are literal.
      expect(list((await call(s, ops, 'GET', '/api/v1/users?q=%25')).body)).toEqual([]);
    });

    it('reads the System Log: Okta event shape, filters, bounded and polling pagination', async () => {
      const target = await seedUser(s, s.firmA);
      expect((await call(s, ops, 'POST', `/api/v1/users/${target.id}/lifecycle/suspend`)).status).toBe(200);
      const support = await apiToken(s, 'support');
      expect((await call(s, support, 'POST', `/api/v1/users/${target.id}/lifecycle/unsuspend`)).status).toBe(403);

      const suspended = await call(
        s,
        ops,
        'GET',
        `/api/v1/logs?filter=${encodeURIComponent('eventType eq "user.lifecycle.suspend"')}`,
      );
      expect(suspended.status).toBe(200);
      const [event] = list(suspended.body);
      expect(event).toMatchObject({
        uuid: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
        published: expect.stringMatching(/Z$/),
        eventType: 'user.lifecycle.suspend',
        displayMessage: 'Suspend Okta user',
        outcome: { result: 'SUCCESS' },
        actor: { type: 'ApiToken', displayName: 'operations token' },
        target: [{ id: target.id, type: 'User', alternateId: target.login, displayName: 'Grace Hopper' }],
        client: { ipAddress: '203.0.113.20', userAgent: { rawUserAgent: 'okta-sdk-nodejs/7 (test)' } },
      });
      const again = await call(
        s,
        ops,
        'GET',
        `/api/v1/logs?filter=${encodeURIComponent('eventType eq "user.lifecycle.suspend"')}`,
      );
      expect(list(again.body)[0]?.uuid).toBe(event?.uuid);

      const denied = await call(
        s,
        ops,
        'GET',
        `/api/v1/logs?filter=${encodeURIComponent(`outcome.result eq "DENY" and target.id eq "${target.id}"`)}`,
      );
      expect(list(denied.body).map((e) => e.eventType)).toEqual(['user.lifecycle.unsuspend']);
      const byQ = await call(s, ops, 'GET', `/api/v1/logs?q=${encodeURIComponent(target.id)}&sortOrder=DESCENDING`);
      expect(list(byQ.body).map((e) => e.eventType)).toEqual(['user.lifecycle.unsuspend', 'user.lifecycle.suspend']);

      // Bounded: pages end. Polling (no until): always a next link, to what comes later.
      const until = new Date(s.clock() + 1000).toISOString();
      const seen: unknown[] = [];
      let url: string | undefined =
        `/api/v1/logs?limit=3&since=2000-01-01T00:00:00Z&until=${encodeURIComponent(until)}`;
      while (url) {
        const r = await call(s, ops, 'GET', url.replace(s.idpUrl, ''));
        seen.push(...list(r.body).map((e) => e.uuid));
        url = nextLink(r.headers);
      }
      const all = await call(
        s,
        ops,
        'GET',
        `/api/v1/logs?limit=1000&since=2000-01-01T00:00:00Z&until=${encodeURIComponent(until)}`,
      );
      expect(seen).toEqual(list(all.body).map((e) => e.uuid));
      const poll = await call(s, ops, 'GET', '/api/v1/logs?limit=1000&since=2000-01-01T00:00:00Z');
      const next = nextLink(poll.headers);
      expect(next).toBeDefined();
      expect(list((await call(s, ops, 'GET', (next ?? '').replace(s.idpUrl, ''))).body)).toEqual([]);
      await seedUser(s, s.firmA).then((u) => s.admin.suspendUser(CLI_PRINCIPAL, u.id));
      const later = await call(s, ops, 'GET', (next ?? '').replace(s.idpUrl, ''));
      expect(list(later.body).map((e) => e.eventType)).toEqual(['user.lifecycle.suspend']);
      expect(list(later.body)[0]?.actor).toMatchObject({ type: 'SystemPrincipal' });
      expect((await call(s, ops, 'GET', '/api/v1/logs?since=yesterday')).status).toBe(400);
    });

    it('app assignments and factors in Okta shapes', async () => {
      const support = await apiToken(s, 'support');
      const user = await seedUser(s, s.firmA);
      const factorId = await seedFactor(s, user);
      const assigned = await call(s, support, 'PUT', `/api/v1/apps/download/users/${user.id}`);
      expect(assigned).toMatchObject({
        status: 200,
        body: {
          id: user.id,
          scope: 'USER',
          credentials: { userName: user.login },
          _links: { app: { href: `${s.idpUrl}/api/v1/apps/download` } },
        },
      });
      expect((await mailTo(s, user.email))[0]?.template).toBe('appAccessChanged');
      expect((await call(s, support, 'GET', `/api/v1/apps/nosuchapp/users`)).status).toBe(404);
      expect((await call(s, support, 'GET', `/api/v1/apps/download/users/${user.id}`)).status).toBe(200);
      expect((await call(s, support, 'DELETE', `/api/v1/apps/download/users/${user.id}`)).status).toBe(204);
      expect((await call(s, support, 'GET', `/api/v1/apps/download/users/${user.id}`)).status).toBe(404);
      const factors = await call(s, support, 'GET', `/api/v1/users/${user.id}/factors`);
      expect(factors.body).toEqual([
        expect.objectContaining({
          id: factorId,
          factorType: 'token:software:totp',
          provider: 'GOOGLE',
          status: 'ACTIVE',
          profile: { credentialId: user.login },
        }),
      ]);
      expect((await call(s, support, 'DELETE', `/api/v1/users/${user.id}/factors/${factorId}`)).status).toBe(204);
      expect((await call(s, support, 'DELETE', `/api/v1/users/${user.id}/factors/${factorId}`)).status).toBe(404);
    });
  },
  { fresh: 'suite' },
);
