import { afterEach, beforeEach, expect, it } from 'vitest';
import { base32Decode, generateTotp } from '../src/authn/factors/totp/totp.ts';
import { createBrowser, csrfFrom, signInWithPages } from './helpers/browser.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import {
  activateUser,
  causes,
  field,
  freshCode,
  PASSWORD,
  postJson,
  provisionUser,
  RECOVERY,
  text,
} from './helpers/users.ts';

describeEachBackend('activation, enrollment and sign-in', (backend: BackendHandle) => {
  let s: TestStack;
  beforeEach(async () => {
    s = await createTestStack({ store: backend.store() });
  });
  afterEach(async () => {
    await s.close();
  });

  it('through the Authentication API: activate, enroll TOTP, sign in with password + code', async () => {
    const { user, token } = await provisionUser(s, 'Jane.Doe@Acme.example');
    expect(user.status).toBe('PROVISIONED');

    let r = await postJson(s, '/api/v1/authn', { token });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('PASSWORD_RESET');
    expect(text(r.body, '_embedded', 'user', 'profile', 'login')).toBe('jane.doe@acme.example');
    expect(field(r.body, '_embedded', 'policy', 'complexity', 'minLength')).toBe(12);

    r = await postJson(s, '/api/v1/authn/credentials/reset_password', {
      stateToken: r.body.stateToken,
      newPassword: PASSWORD,
      ...RECOVERY,
    });
    expect(r.body.status).toBe('MFA_ENROLL');
    const stateToken = text(r.body, 'stateToken');
    const offered = field(r.body, '_embedded', 'factors');
    expect(Array.isArray(offered) ? offered.map((f) => field(f, 'factorType')) : []).not.toContain('sms');

    // Choosing one authenticator, going back and choosing the other leaves one pending factor.
    r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'token:software:totp', provider: 'OKTA' });
    expect(r.body.status).toBe('MFA_ENROLL_ACTIVATE');
    r = await postJson(s, '/api/v1/authn/previous', { stateToken });
    expect(r.body.status).toBe('MFA_ENROLL');
    r = await postJson(s, '/api/v1/authn/factors', {
      stateToken,
      factorType: 'token:software:totp',
      provider: 'GOOGLE',
    });
    expect(r.body.status).toBe('MFA_ENROLL_ACTIVATE');
    const factorId = text(r.body, '_embedded', 'factor', 'id');
    const secret = base32Decode(text(r.body, '_embedded', 'factor', '_embedded', 'activation', 'sharedSecret'));
    expect(text(r.body, '_embedded', 'factor', '_embedded', 'activation', '_links', 'qrcode', 'href')).toMatch(
      /^data:image\/png;base64,/,
    );

    const wrongCode = String((Number(generateTotp({ secret, now: s.clock() })) + 1) % 1_000_000).padStart(6, '0');
    r = await postJson(s, `/api/v1/authn/factors/${factorId}/lifecycle/activate`, { stateToken, passCode: wrongCode });
    expect(r.status).toBe(403);
    expect(r.body.errorCode).toBe('E0000068');
    expect(causes(r.body).length).toBe(1);

    r = await postJson(s, `/api/v1/authn/factors/${factorId}/lifecycle/activate`, {
      stateToken,
      passCode: generateTotp({ secret, now: s.clock() }),
    });
    expect(r.body.status).toBe('SUCCESS');
    expect(text(r.body, 'sessionToken')).toMatch(/^[A-Za-z0-9_-]{40,}$/);

    const active = await s.rt.store.repos.users.findUserById(user.id);
    expect(active?.status).toBe('ACTIVE');
    const factors = await s.rt.store.repos.factors.listFactors(user.id);
    expect(factors.map((f) => [f.provider, f.status])).toEqual([['GOOGLE', 'ACTIVE']]);

    r = await postJson(s, '/api/v1/authn', { username: 'JANE.DOE@acme.example', password: PASSWORD });
    expect(r.body.status).toBe('MFA_REQUIRED');
    const factorsOffered = field(r.body, '_embedded', 'factors');
    expect(Array.isArray(factorsOffered) ? factorsOffered.map((f) => field(f, 'id')) : []).toEqual([factorId]);
    const signIn = text(r.body, 'stateToken');
    r = await postJson(s, `/api/v1/authn/factors/${factorId}/verify`, {
      stateToken: signIn,
      passCode: freshCode(s, secret),
    });
    expect(r.body.status).toBe('SUCCESS');
    expect(text(r.body, '_embedded', 'user', 'id')).toBe(user.id);
    // The transaction is over: its stateToken cannot be used again.
    expect((await postJson(s, '/api/v1/authn', { stateToken: signIn })).status).toBe(401);

    const signedIn = await s.rt.store.repos.users.findUserById(user.id);
    expect(signedIn?.last_login_at).toBe(s.clock());
    expect(signedIn?.last_factor_type).toBe('token:software:totp:GOOGLE');
  });

  it('a cancelled transaction cannot be resumed', async () => {
    const alice = await activateUser(s, 'alice@acme.example');
    const r = await postJson(s, '/api/v1/authn', { username: alice.login, password: alice.password });
    const stateToken = text(r.body, 'stateToken');
    expect((await postJson(s, '/api/v1/authn/cancel', { stateToken })).body.status).toBe('UNAUTHENTICATED');
    const late = await postJson(s, `/api/v1/authn/factors/${alice.factorId}/verify`, {
      stateToken,
      passCode: freshCode(s, alice.secret),
    });
    expect(late.status).toBe(401);
    expect(late.body.errorCode).toBe('E0000011');
  });

  it('through the HTML pages: activation link, password, enrollment, profile, sign-out, sign-in', async () => {
    const { token } = await provisionUser(s, 'bob@acme.example');
    const b = createBrowser(s);
    let res = await b.submit(`/activate?token=${encodeURIComponent(token)}`, '/activate', { token });
    expect(res.headers.location).toBe('/signin/next');
    res = await b.submit('/signin/next', '/signin/password', { newPassword: PASSWORD, ...RECOVERY });
    expect(res.headers.location).toBe('/signin/next');
    res = await b.submit('/signin/next', '/signin/enroll', { factorType: 'token:software:totp', provider: 'GOOGLE' });
    expect(res.headers.location).toBe('/signin/next');
    const page = await b.get('/signin/next');
    const secretText = /data-secret="([A-Z2-7]+)"/.exec(page.payload)?.[1] ?? '';
    const secret = base32Decode(secretText);
    const factorId = /name="factorId" value="([^"]+)"/.exec(page.payload)?.[1] ?? '';
    res = await b.post('/signin/enroll/activate', {
      factorId,
      passCode: generateTotp({ secret, now: s.clock() }),
      _csrf: csrfFrom(page.payload),
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/');
    const home = await b.get('/');
    expect(home.statusCode).toBe(200);
    expect(home.payload).toContain('bob@acme.example');
    expect(home.payload).toContain('Google Authenticator');

    await b.post('/signout', { _csrf: csrfFrom(home.payload) });
    expect((await b.get('/')).statusCode).toBe(303);
    await signInWithPages(s, b, { login: 'bob@acme.example', password: PASSWORD, secret }, 'traqs_ntf_idp_sid');
    expect((await b.get('/')).statusCode).toBe(200);
  });
});
