import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  activateWithFastPass,
  challengeFastPass,
  type FastPassUser,
  ORIGIN,
  toEnrollment,
  verifyFastPass,
} from './helpers/fastpass.ts';
import { details, events, mails } from './helpers/profile.ts';
import { createSoftAuthenticator } from './helpers/soft-authenticator.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { causes, field, postJson, text } from './helpers/users.ts';

/**
 * FastPass (issue #6 item 4) through the Okta Authentication API: enrollment at first sign-in,
 * verification as a factor, and what an attacker would try (a replayed assertion, a challenge of
 * another sign-in, a cloned authenticator, no user verification, another origin).
 */

let s: TestStack;
beforeEach(async () => {
  s = await createTestStack();
});
afterEach(async () => {
  await s.close();
});

const amrOf = async (sessionToken: string) => (await s.rt.authn.redeemSessionToken(sessionToken))?.amr;

describe('FastPass enrollment through the Authentication API', () => {
  it('offers webauthn/FIDO at MFA_ENROLL and answers with the creation options in _embedded.activation', async () => {
    const { stateToken } = await toEnrollment(s, 'first.fastpass@acme.example');
    const offered = field((await postJson(s, '/api/v1/authn', { stateToken })).body, '_embedded', 'factors');
    expect(
      Array.isArray(offered) ? offered.map((f) => `${field(f, 'factorType')}/${field(f, 'provider')}`) : [],
    ).toEqual(['token:software:totp/GOOGLE', 'token:software:totp/OKTA', 'webauthn/FIDO', 'push/OKTA']);

    const r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'webauthn', provider: 'FIDO' });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('MFA_ENROLL_ACTIVATE');
    const factor = field(r.body, '_embedded', 'factor');
    expect(field(factor, 'factorType')).toBe('webauthn');
    expect(field(factor, 'provider')).toBe('FIDO');
    expect(field(factor, 'vendorName')).toBe('FIDO');
    const activation = field(factor, '_embedded', 'activation');
    // The relying party is the idp public URL's host; the user handle is not the email address.
    expect(field(activation, 'rp')).toEqual({ name: 'TRAQS NTF', id: 'localhost' });
    expect(field(activation, 'user', 'name')).toBe('first.fastpass@acme.example');
    expect(Buffer.from(text(activation, 'user', 'id'), 'base64url').toString()).not.toContain('@');
    expect(text(activation, 'challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(field(activation, 'authenticatorSelection')).toMatchObject({
      authenticatorAttachment: 'platform',
      userVerification: 'required',
    });
    expect(field(activation, 'attestation')).toBe('none');
    expect(field(activation, 'pubKeyCredParams')).toEqual(
      expect.arrayContaining([
        { type: 'public-key', alg: -7 },
        { type: 'public-key', alg: -257 },
      ]),
    );
    expect(text(r.body, '_links', 'next', 'href')).toBe(
      `${ORIGIN}/api/v1/authn/factors/${text(factor, 'id')}/lifecycle/activate`,
    );
    expect(field(r.body, '_links', 'next', 'name')).toBe('activate');
    // Asking again (a reload) shows the same live challenge, not a new one.
    const again = await postJson(s, '/api/v1/authn', { stateToken });
    expect(field(again.body, '_embedded', 'factor', '_embedded', 'activation', 'challenge')).toBe(
      text(activation, 'challenge'),
    );
  });

  it('activates with the attestation, emails "method added" and signs in with amr pwd + hwk + mfa', async () => {
    const u = await activateWithFastPass(s, 'jane.fastpass@acme.example');
    expect(await amrOf(text(u.activated.body, 'sessionToken'))).toEqual(['pwd', 'hwk', 'mfa']);
    const [factor] = await s.rt.store.repos.factors.listFactors(u.userId);
    expect(factor).toMatchObject({ factor_type: 'webauthn', provider: 'FIDO', status: 'ACTIVE' });
    // The test client's user agent names no system.
    expect(factor?.name).toBe('FastPass');
    const credential = await s.rt.store.repos.factors.webauthn.findCredential(u.factorId);
    expect(credential).toMatchObject({ user_id: u.userId, credential_id: u.authenticator.id, sign_count: 0 });
    expect(await mails(s, u.login, 'factorEnrolled')).toHaveLength(1);
    const user = await s.rt.store.repos.users.findUserById(u.userId);
    expect(user?.status).toBe('ACTIVE');
    expect(user?.last_factor_type).toBe('webauthn:FIDO');
  });

  it('refuses a registration without user verification, for another origin, or answering no challenge', async () => {
    const { stateToken } = await toEnrollment(s, 'careless@acme.example');
    const r = await postJson(s, '/api/v1/authn/factors', { stateToken, factorType: 'webauthn', provider: 'FIDO' });
    const factorId = text(r.body, '_embedded', 'factor', 'id');
    const activation = field(r.body, '_embedded', 'factor', '_embedded', 'activation') as {
      challenge: string;
      rp: { id: string };
    };
    const a = createSoftAuthenticator(ORIGIN);
    const activate = (reg: ReturnType<typeof a.register>) =>
      postJson(s, `/api/v1/authn/factors/${factorId}/lifecycle/activate`, {
        stateToken,
        attestation: reg.response.attestationObject,
        clientData: reg.response.clientDataJSON,
      });

    const noUv = await activate(a.register(activation, { uv: false }));
    expect(noUv.status).toBe(403);
    expect(noUv.body.errorCode).toBe('E0000068');
    // The challenge was used up by that attempt: the transaction now shows a new one.
    const fresh = field(
      (await postJson(s, '/api/v1/authn', { stateToken })).body,
      '_embedded',
      'factor',
      '_embedded',
      'activation',
    ) as { challenge: string; rp: { id: string } };
    expect(fresh.challenge).not.toBe(activation.challenge);
    const phishing = await activate(a.register(fresh, { origin: 'https://traqs-login.example' }));
    expect(phishing.status).toBe(403);
    const stale = await activate(a.register(activation));
    expect(stale.status).toBe(403);
    expect(causes(stale.body)).toEqual(['This FastPass request expired or was already used. Try again.']);
    expect(await s.rt.store.repos.factors.webauthn.listCredentials((await toUser('careless@acme.example')).id)).toEqual(
      [],
    );
  });
});

async function toUser(login: string) {
  const u = await s.rt.store.repos.users.findUserByLogin(login);
  if (!u) throw new Error(`no user ${login}`);
  return u;
}

describe('FastPass as the second factor', () => {
  let u: FastPassUser;
  beforeEach(async () => {
    u = await activateWithFastPass(s, 'pat.fastpass@acme.example');
  });

  it('lists the factor with its credential id, challenges it (MFA_CHALLENGE) and verifies the assertion', async () => {
    const first = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    expect(first.body.status).toBe('MFA_REQUIRED');
    const [listed] = field(first.body, '_embedded', 'factors') as unknown[];
    expect(listed).toMatchObject({
      id: u.factorId,
      factorType: 'webauthn',
      provider: 'FIDO',
      vendorName: 'FIDO',
      profile: { credentialId: u.authenticator.id, authenticatorName: 'FastPass' },
    });

    const stateToken = text(first.body, 'stateToken');
    const challenge = await postJson(s, `/api/v1/authn/factors/${u.factorId}/verify`, { stateToken });
    expect(challenge.body).toMatchObject({
      status: 'MFA_CHALLENGE',
      factorResult: 'CHALLENGE',
      _embedded: { factor: { id: u.factorId, factorType: 'webauthn', provider: 'FIDO' } },
      _links: { next: { name: 'verify', href: `${ORIGIN}/api/v1/authn/factors/${u.factorId}/verify` } },
    });
    const options = field(challenge.body, '_embedded', 'factor', '_embedded', 'challenge') as {
      challenge: string;
      rpId: string;
    };
    expect(options).toMatchObject({
      rpId: 'localhost',
      userVerification: 'required',
      // Okta's activate body carries no transports, so none are listed.
      allowCredentials: [{ id: u.authenticator.id, type: 'public-key' }],
    });

    const done = await verifyFastPass(s, u.factorId, stateToken, u.authenticator.assert(options));
    expect(done.status).toBe(200);
    expect(done.body.status).toBe('SUCCESS');
    expect(await amrOf(text(done.body, 'sessionToken'))).toEqual(['pwd', 'hwk', 'mfa']);
    expect((await s.rt.store.repos.factors.webauthn.findCredential(u.factorId))?.sign_count).toBe(1);
    const [signIn] = await events(s, 'user.authentication.sso', u.userId);
    expect(details(signIn)).toMatchObject({ factorType: 'webauthn:FIDO', factorId: u.factorId });
  });

  it('goes back from MFA_CHALLENGE to MFA_REQUIRED with prev', async () => {
    const { stateToken } = await challengeFastPass(s, u);
    const back = await postJson(s, '/api/v1/authn/previous', { stateToken });
    expect(back.body.status).toBe('MFA_REQUIRED');
  });

  it('refuses a replayed assertion: each challenge works once, for its own sign-in', async () => {
    const one = await challengeFastPass(s, u);
    const assertion = u.authenticator.assert(one.options);
    expect((await verifyFastPass(s, u.factorId, one.stateToken, assertion)).body.status).toBe('SUCCESS');

    // The same assertion on a new sign-in: its challenge belongs to the finished one.
    const two = await challengeFastPass(s, u);
    const replay = await verifyFastPass(s, u.factorId, two.stateToken, assertion);
    expect(replay.status).toBe(403);
    expect(replay.body.errorCode).toBe('E0000068');
    expect(causes(replay.body)).toEqual(['This FastPass request expired or was already used. Try again.']);

    // An assertion of the challenge shown to sign-in three, sent with sign-in two's stateToken.
    const three = await challengeFastPass(s, u);
    const elsewhere = await verifyFastPass(s, u.factorId, two.stateToken, u.authenticator.assert(three.options));
    expect(elsewhere.status).toBe(403);

    // Twice with the same challenge in one sign-in: the first wins, the second is refused.
    const four = await challengeFastPass(s, u);
    const signed = u.authenticator.assert(four.options);
    const [a, b] = await Promise.all([
      verifyFastPass(s, u.factorId, four.stateToken, signed),
      verifyFastPass(s, u.factorId, four.stateToken, signed),
    ]);
    expect([a.body.status, b.body.status].filter((st) => st === 'SUCCESS')).toHaveLength(1);
    const failures = await events(s, 'user.authentication.auth_via_mfa', u.userId);
    expect(failures.map((e) => details(e).reason)).toContain('CHALLENGE');
  });

  it('refuses an expired challenge (5 minutes) and a new challenge replaces the old one', async () => {
    const one = await challengeFastPass(s, u);
    s.clock.advance(5 * 60_000 + 1);
    const late = await verifyFastPass(s, u.factorId, one.stateToken, u.authenticator.assert(one.options));
    expect(late.status).toBe(403);

    const two = await challengeFastPass(s, u);
    const again = await postJson(s, `/api/v1/authn/factors/${u.factorId}/verify`, { stateToken: two.stateToken });
    const newer = field(again.body, '_embedded', 'factor', '_embedded', 'challenge', 'challenge');
    expect(newer).not.toBe(two.options.challenge);
    const superseded = await verifyFastPass(s, u.factorId, two.stateToken, u.authenticator.assert(two.options));
    expect(superseded.status).toBe(403);
  });

  it('refuses an assertion without user verification or from another origin', async () => {
    const one = await challengeFastPass(s, u);
    const noUv = await verifyFastPass(
      s,
      u.factorId,
      one.stateToken,
      u.authenticator.assert(one.options, { uv: false }),
    );
    expect(noUv.status).toBe(403);
    expect(causes(noUv.body)).toEqual(['FastPass could not confirm it is you. Try again, or choose another method.']);
    const two = await challengeFastPass(s, u);
    const phishing = await verifyFastPass(
      s,
      u.factorId,
      two.stateToken,
      u.authenticator.assert(two.options, { origin: 'https://traqs-login.example' }),
    );
    expect(phishing.status).toBe(403);
  });

  it('refuses a signature counter that goes backwards and alerts the user by email', async () => {
    const one = await challengeFastPass(s, u);
    const ok = await verifyFastPass(s, u.factorId, one.stateToken, u.authenticator.assert(one.options, { counter: 7 }));
    expect(ok.body.status).toBe('SUCCESS');

    // A copy of the credential, used elsewhere, still at counter 3.
    const two = await challengeFastPass(s, u);
    const clone = await verifyFastPass(
      s,
      u.factorId,
      two.stateToken,
      u.authenticator.assert(two.options, { counter: 3 }),
    );
    expect(clone.status).toBe(403);
    expect(clone.body.errorCode).toBe('E0000068');
    expect(causes(clone.body)[0]).toContain('FastPass was refused');
    expect((await s.rt.store.repos.factors.webauthn.findCredential(u.factorId))?.sign_count).toBe(7);

    const [alert] = await mails(s, u.login, 'signCounterRegressed');
    expect(alert?.subject).toContain('A TRAQS sign-in with FastPass was refused');
    expect(alert?.text_body).toContain('Method: FastPass');
    // The "this wasn't me" link, as every account-activity email has.
    expect(alert?.text_body).toMatch(/\/report\?token=[A-Za-z0-9_-]+&about=signCounterRegressed/);
    const [suspected] = await events(s, 'user.mfa.factor.suspected_clone', u.userId);
    expect(details(suspected)).toMatchObject({ stored: 7, reported: 3, factorId: u.factorId });

    // The same counter again is no better (WebAuthn §7.2: it must be greater).
    const three = await challengeFastPass(s, u);
    const same = await verifyFastPass(
      s,
      u.factorId,
      three.stateToken,
      u.authenticator.assert(three.options, { counter: 7 }),
    );
    expect(same.status).toBe(403);
    expect(await mails(s, u.login, 'signCounterRegressed')).toHaveLength(2);
  });

  it('sends no alert for a forged assertion with a low counter: the signature is checked first', async () => {
    const one = await challengeFastPass(s, u);
    expect(
      (await verifyFastPass(s, u.factorId, one.stateToken, u.authenticator.assert(one.options, { counter: 9 }))).body
        .status,
    ).toBe('SUCCESS');
    const two = await challengeFastPass(s, u);
    const forger = createSoftAuthenticator(ORIGIN);
    const forged = forger.assert(two.options, { counter: 1 });
    const r = await verifyFastPass(s, u.factorId, two.stateToken, forged);
    expect(r.status).toBe(403);
    expect(causes(r.body)).toEqual(['FastPass could not confirm it is you. Try again, or choose another method.']);
    expect(await mails(s, u.login, 'signCounterRegressed')).toHaveLength(0);
  });

  it('counts failed FastPass checks toward the lockout like wrong codes', async () => {
    let last: Awaited<ReturnType<typeof verifyFastPass>> | undefined;
    for (let i = 0; i < s.config.policy.maxFailedAttempts; i++) {
      const c = await challengeFastPass(s, u);
      last = await verifyFastPass(s, u.factorId, c.stateToken, u.authenticator.assert(c.options, { uv: false }));
    }
    expect(last?.body.errorCode).toBe('E0000069');
    expect((await toUser(u.login)).status).toBe('LOCKED_OUT');
  });

  it('answers a verify without a code for a TOTP factor with passCode: Required', async () => {
    const first = await postJson(s, '/api/v1/authn', { username: u.login, password: u.password });
    const stateToken = text(first.body, 'stateToken');
    const r = await postJson(s, '/api/v1/authn/factors/uftDoesNotExist00000/verify', { stateToken });
    expect(r.status).toBe(404);
    const partial = await postJson(s, `/api/v1/authn/factors/${u.factorId}/verify`, {
      stateToken,
      clientData: 'eyJ9',
    });
    expect(partial.status).toBe(400);
  });
});

describe('where WebAuthn cannot work', () => {
  it('an IP address or plain http on another host: FastPass is not offered, and enrolling it says why', async () => {
    for (const [url, why] of [
      ['http://127.0.0.1:3101', 'not an IP address'],
      ['http://idp.traqs.example', 'The sign-in URL is not secure'],
    ] as const) {
      const other = await createTestStack({ env: { TRAQS_NTF_IDP_URL: url } });
      try {
        const { stateToken } = await toEnrollment(other, 'insecure@acme.example');
        const offered = field((await postJson(other, '/api/v1/authn', { stateToken })).body, '_embedded', 'factors');
        expect(Array.isArray(offered) ? offered.map((f) => field(f, 'factorType')) : []).not.toContain('webauthn');
        const r = await postJson(other, '/api/v1/authn/factors', {
          stateToken,
          factorType: 'webauthn',
          provider: 'FIDO',
        });
        expect(r.status).toBe(400);
        expect(causes(r.body)[0]).toContain(why);
      } finally {
        await other.close();
      }
    }
  });
});
