import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPasswordHasher } from '../src/authn/factors/password/hashing.ts';
import { normalizeRecoveryAnswer } from '../src/authn/factors/password/policy.ts';
import { generateTotp } from '../src/authn/factors/totp/totp.ts';
import type { Browser } from './helpers/browser.ts';
import { createBrowser, signInWithPages } from './helpers/browser.ts';
import {
  addTotp,
  details,
  events,
  MINUTE,
  mails,
  SID,
  signedInUser,
  startTotp,
  submit,
  textOf,
  wrongCode,
} from './helpers/profile.ts';
import { addPushDevice, endsWithin, openEventStream } from './helpers/push.ts';
import { createTestStack, type TestStack } from './helpers/stack.ts';
import { type ActiveUser, CLIENT, postJson } from './helpers/users.ts';

/**
 * Issue #3, the MFA profile: each change from the dashboard succeeds, is audited with the user as
 * actor (IP and user agent), and security changes send the account-activity email.
 */

let s: TestStack;
let alice: ActiveUser;
let b: Browser;
beforeEach(async () => {
  s = await createTestStack();
  ({ user: alice, b } = await signedInUser(s, 'alice@acme.example'));
});
afterEach(async () => {
  await s.close();
});

const freshAlice = async () => {
  const u = await s.rt.store.repos.users.findUserById(alice.user.id);
  if (!u) throw new Error('alice is gone');
  return u;
};
const factorsOf = async (userId: string) => s.rt.store.repos.factors.listFactors(userId);

/** Who did it from where: the user, from the test client. */
function expectByUser(e: { actor_id: string | null; ip: string | null; user_agent: string | null } | undefined) {
  expect(e).toBeDefined();
  expect(e?.actor_id).toBe(alice.user.id);
  expect(e?.ip).toBe(CLIENT.ip);
  expect(e?.user_agent).toBe(CLIENT.userAgent);
}

describe('the dashboard at /', () => {
  it('shows personal information, contact details, methods, activity, sessions and the push preference', async () => {
    const home = await b.get('/');
    expect(home.statusCode).toBe(200);
    const html = home.payload;
    expect(textOf(html, 'username')).toBe('alice@acme.example');
    expect(textOf(html, 'firm')).toBe('Acme Securities');
    // Personal information is read-only, and the page says who changes it.
    expect(html).toContain('Super Account Administrator');
    expect(html).toContain(s.config.contacts.operationsPhone);
    expect(html).not.toMatch(/name="(?:firstName|lastName|email|login)"/);
    // Contact details: real labels, tel autocomplete, optional.
    expect(html).toMatch(/<label for="f-mobilePhone">Mobile phone<\/label>/);
    expect(html).toMatch(/<input id="f-mobilePhone" name="mobilePhone" type="tel" autocomplete="tel"/);
    expect(html).toMatch(/<input id="f-primaryPhone" name="primaryPhone" type="tel" autocomplete="tel"/);
    // The one enrolled method, with type, name and dates.
    const factors = textOf(html, 'factors');
    expect(factors).toContain('Authenticator app (TOTP)');
    expect(factors).toContain('Google Authenticator');
    expect(factors).toContain('2026-12-04');
    expect(html).toContain(`/profile/factors/${alice.factorId}/remove`);
    expect(html).toContain('You have one sign-in method');
    // Recent activity: the sign-in, from this client.
    const activity = textOf(html, 'activity');
    expect(activity).toContain('Signed in');
    expect(activity).toContain(CLIENT.ip);
    expect(activity).toContain('Google Authenticator');
    // Sessions: this one, marked.
    expect(textOf(html, 'sessions')).toContain('This session');
    expect(html).toContain('You are not signed in anywhere else.');
    // The preference, off by default, with its note about push.
    expect(html).toMatch(/<input type="checkbox" id="f-autoPush" name="autoPush" value="on" aria-describedby/);
    expect(html).toContain('Applies once you have enrolled Okta Verify with push');
  });

  it('shows a success notice only for a known done code', async () => {
    expect((await b.get('/?done=password')).payload).toContain('Your password was changed');
    const bogus = await b.get('/?done=%3Cscript%3E');
    expect(bogus.statusCode).toBe(200);
    expect(bogus.payload).not.toContain('id="notice"');
  });
});

describe('contact details', () => {
  it('saves the phones, audits the change and shows a notice (no re-verification)', async () => {
    // Long after sign-in: contact details do not need a recent verification.
    s.clock.advance(30 * MINUTE);
    const res = await submit(b, '/profile/contact', {
      mobilePhone: ' +1 (212) 555-0100 ',
      primaryPhone: '212 555 0199 x12',
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/?done=contact');
    const user = await freshAlice();
    expect(user.mobile_phone).toBe('+1 (212) 555-0100');
    expect(user.primary_phone).toBe('212 555 0199 x12');
    const [event] = await events(s, 'user.account.update_profile', alice.user.id);
    expectByUser(event);
    expect(details(event)).toEqual({ changed: ['mobilePhone', 'primaryPhone'] });
    const home = await b.get(String(res.headers.location));
    expect(home.payload).toContain('Your contact details were saved.');
    expect(home.payload).toContain('value="+1 (212) 555-0100"');

    // Clearing a number stores none.
    await submit(b, '/profile/contact', { mobilePhone: '', primaryPhone: '212 555 0199 x12' });
    expect((await freshAlice()).mobile_phone).toBeNull();
  });

  it('refuses letters and overlong numbers with an error tied to the field, changing nothing', async () => {
    await submit(b, '/profile/contact', { mobilePhone: '+1 212 555 0100', primaryPhone: '' });
    const eventsBefore = (await events(s, 'user.account.update_profile', alice.user.id)).length;
    const res = await submit(b, '/profile/contact', {
      mobilePhone: 'call me maybe',
      primaryPhone: `+${'1'.repeat(40)}`,
    });
    expect(res.statusCode).toBe(400);
    for (const field of ['mobilePhone', 'primaryPhone']) {
      expect(res.payload).toMatch(
        new RegExp(`id="f-${field}"[^>]*aria-invalid="true" aria-describedby="f-${field}-hint f-${field}-error"`),
      );
      expect(res.payload).toContain(`<p class="field-error" id="f-${field}-error">`);
    }
    expect(res.payload).toContain('Use digits, spaces, + - ( ) and x before an extension');
    expect(res.payload).toContain('Use at most 40 characters.');
    // What was typed stays in the form.
    expect(res.payload).toContain('value="call me maybe"');
    const user = await freshAlice();
    expect(user.mobile_phone).toBe('+1 212 555 0100');
    expect(user.primary_phone).toBeNull();
    expect(await events(s, 'user.account.update_profile', alice.user.id)).toHaveLength(eventsBefore);
  });
});

describe('the "send push automatically" preference', () => {
  it('is stored as autoPush in the preferences JSON, keeping other preferences', async () => {
    await s.rt.store.repos.users.setPreferences(alice.user.id, { language: 'en' });
    const on = await submit(b, '/profile/preferences', { autoPush: 'on' });
    expect(on.headers.location).toBe('/?done=preferences');
    expect(JSON.parse((await freshAlice()).preferences)).toEqual({ language: 'en', autoPush: true });
    expect((await b.get('/')).payload).toMatch(/name="autoPush" value="on" checked/);

    await submit(b, '/profile/preferences', {});
    expect(JSON.parse((await freshAlice()).preferences)).toEqual({ language: 'en', autoPush: false });
    const audited = await events(s, 'user.account.update_preferences', alice.user.id);
    expect(audited.map((e) => details(e).autoPush)).toEqual([false, true]);
    expectByUser(audited[0]);
  });
});

describe('adding a security method', () => {
  it('shows a QR code and the setup key, and activates only with a correct code', async () => {
    const choice = await b.get('/profile/factors/add');
    expect(choice.statusCode).toBe(200);
    expect(choice.payload).toContain('Set up Google Authenticator');
    expect(choice.payload).toContain('Set up Okta Verify (code)');

    const enrolledBefore = (await mails(s, alice.login, 'factorEnrolled')).length;
    const { page, factorId, secret, url } = await startTotp(b);
    expect(page.statusCode).toBe(200);
    expect(page.payload).toMatch(/<img class="qr" src="data:image\/png;base64,/);
    expect(page.payload).toMatch(/autocomplete="one-time-code"/);
    // A second app of the same kind gets a name that tells them apart.
    expect(page.payload).toContain('Set up Google Authenticator 2');
    let pending = (await factorsOf(alice.user.id)).find((f) => f.id === factorId);
    expect(pending?.status).toBe('PENDING_ACTIVATION');
    // Not listed as a method before it is confirmed.
    expect((await b.get('/')).payload).not.toContain(`data-factor-id="${factorId}"`);

    const wrong = await submit(b, url, { passCode: wrongCode(secret, s.clock()) });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.payload).toContain('<p class="field-error" id="f-passCode-error">');
    pending = (await factorsOf(alice.user.id)).find((f) => f.id === factorId);
    expect(pending?.status).toBe('PENDING_ACTIVATION');

    const ok = await submit(b, url, { passCode: generateTotp({ secret, now: s.clock() }) });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe('/?done=factor-added');
    const active = (await factorsOf(alice.user.id)).find((f) => f.id === factorId);
    expect(active).toMatchObject({ status: 'ACTIVE', name: 'Google Authenticator 2', provider: 'GOOGLE' });

    const home = await b.get('/?done=factor-added');
    expect(home.payload).toContain('The new security method was added.');
    expect(home.payload).toContain(`data-factor-id="${factorId}"`);
    expect(textOf(home.payload, 'factors')).toContain('Google Authenticator 2 ');
    expect(textOf(home.payload, 'activity')).toContain('Security method added');

    const sent = await mails(s, alice.login, 'factorEnrolled');
    expect(sent).toHaveLength(enrolledBefore + 1);
    expect(sent[0]?.text_body).toContain('Google Authenticator 2');
    expect(sent[0]?.text_body).toContain(CLIENT.ip);
    // The "this wasn't me" link of every account-activity email.
    expect(sent[0]?.text_body).toMatch(/\/report\?token=/);
    const [event] = (await events(s, 'user.mfa.factor.activate', alice.user.id)).filter((e) => e.outcome === 'success');
    expectByUser(event);
    expect(details(event)).toMatchObject({ factorId, name: 'Google Authenticator 2', via: 'profile' });
    expect(await events(s, 'user.mfa.factor.enroll_started', alice.user.id)).toHaveLength(2);
  });

  it('the new method signs in, and its activation code cannot be replayed there', async () => {
    const { factorId, secret } = await addTotp(s, b, 'OKTA');
    const factor = (await factorsOf(alice.user.id)).find((f) => f.id === factorId);
    expect(factor).toMatchObject({ status: 'ACTIVE', name: 'Okta Verify (code)' });
    const used = generateTotp({ secret, now: s.clock() });
    const r = await postJson(s, '/api/v1/authn', { username: alice.login, password: alice.password });
    const stateToken = String(r.body.stateToken);
    const replay = await postJson(s, `/api/v1/authn/factors/${factorId}/verify`, { stateToken, passCode: used });
    expect(replay.status).toBe(403);
    s.clock.advance(30_000);
    const fresh = await postJson(s, `/api/v1/authn/factors/${factorId}/verify`, {
      stateToken,
      passCode: generateTotp({ secret, now: s.clock() }),
    });
    expect(fresh.body.status).toBe('SUCCESS');
  });

  it('refuses a provider that cannot be enrolled (SMS was retired)', async () => {
    const res = await submit(b, '/profile/factors/add', { provider: 'SMS' });
    expect(res.statusCode).toBe(400);
    expect(res.payload).toContain('Choose one of the methods below.');
    expect((await factorsOf(alice.user.id)).length).toBe(1);
  });

  it('a setup page left for longer than a sign-in transaction expires', async () => {
    const { url, secret } = await startTotp(b);
    s.clock.advance(s.config.policy.transactionMinutes * MINUTE + 1);
    const late = await submit(b, url, { passCode: generateTotp({ secret, now: s.clock() }) });
    expect(late.statusCode).toBe(303);
    expect(late.headers.location).toBe('/profile/factors/add');
    expect((await factorsOf(alice.user.id)).filter((f) => f.status === 'ACTIVE')).toHaveLength(1);
  });
});

describe('removing a security method', () => {
  it('asks for confirmation, removes the method, emails and audits', async () => {
    const second = await addTotp(s, b);
    const confirm = await b.get(`/profile/factors/${alice.factorId}/remove`);
    expect(confirm.statusCode).toBe(200);
    expect(confirm.payload).toContain('Remove Google Authenticator?');
    expect(confirm.payload).not.toContain('last-method-warning');

    const res = await submit(b, `/profile/factors/${alice.factorId}/remove`, {});
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/?done=factor-removed');
    const left = await factorsOf(alice.user.id);
    expect(left.map((f) => f.id)).toEqual([second.factorId]);

    const [mail] = await mails(s, alice.login, 'factorRemoved');
    expect(mail?.subject).toContain('A sign-in method was removed');
    expect(mail?.text_body).toContain('Google Authenticator');
    expect(mail?.text_body).toMatch(/\/report\?token=/);
    const [event] = await events(s, 'user.mfa.factor.deactivate', alice.user.id);
    expectByUser(event);
    expect(details(event)).toMatchObject({ factorId: alice.factorId, remaining: 1 });

    const home = await b.get('/?done=factor-removed');
    expect(home.payload).toContain('The security method was removed.');
    expect(textOf(home.payload, 'activity')).toContain('Security method removed');
  });

  it('removing Okta Verify push also removes its code factor: one email, one event, the stream ends', async () => {
    const ov = await addPushDevice(s, alice.user.id, 'Work phone');
    const stream = await openEventStream(s, ov.device);
    const confirm = await b.get(`/profile/factors/${ov.pushFactorId}/remove`);
    expect(confirm.statusCode).toBe(200);
    expect(textOf(confirm.payload, 'also-removed')).toContain('Okta Verify (code) on Work phone');
    expect(confirm.payload).not.toContain('last-method-warning');

    const res = await submit(b, `/profile/factors/${ov.pushFactorId}/remove`, {});
    expect(res.headers.location).toBe('/?done=factor-removed');
    // Okta Verify is one authenticator: neither half outlives the other.
    expect((await factorsOf(alice.user.id)).map((f) => f.id)).toEqual([alice.factorId]);
    const sent = await mails(s, alice.login, 'factorRemoved');
    expect(sent).toHaveLength(1);
    expect(sent[0]?.text_body).toContain('Okta Verify (code) on Work phone');
    const [event, ...more] = await events(s, 'user.mfa.factor.deactivate', alice.user.id);
    expect(more).toEqual([]);
    expectByUser(event);
    expect(details(event)).toMatchObject({
      factorId: ov.pushFactorId,
      remaining: 1,
      alsoRemoved: [{ factorId: ov.totpFactorId, name: 'Okta Verify (code) on Work phone' }],
    });
    // The device's event stream ends at once (signalled), not at its next periodic re-read.
    expect(await endsWithin(stream.ended, 3_000)).toBe(true);
    expect(await s.rt.push.authenticateDevice(ov.device.id, ov.device.token)).toBeUndefined();
  });

  it('removing the Okta Verify code removes its push too, and counts both for the last-method warning', async () => {
    const ov = await addPushDevice(s, alice.user.id, 'Work phone');
    await submit(b, `/profile/factors/${alice.factorId}/remove`, {});
    // Only Okta Verify is left: removing either half leaves nothing (NIST 800-63B §6.1.2.3: the
    // user then binds a new authenticator at the next sign-in).
    const confirm = await b.get(`/profile/factors/${ov.totpFactorId}/remove`);
    expect(confirm.payload).toContain('id="last-method-warning"');
    const res = await submit(b, `/profile/factors/${ov.totpFactorId}/remove`, {});
    expect(res.headers.location).toBe('/?done=factor-removed');
    expect(await factorsOf(alice.user.id)).toEqual([]);
    const [event] = await events(s, 'user.mfa.factor.deactivate', alice.user.id);
    expect(details(event)).toMatchObject({
      factorId: ov.totpFactorId,
      remaining: 0,
      alsoRemoved: [{ factorId: ov.pushFactorId }],
    });
  });

  it('warns clearly before the last method goes, and allows it', async () => {
    const confirm = await b.get(`/profile/factors/${alice.factorId}/remove`);
    expect(confirm.payload).toContain('id="last-method-warning"');
    expect(confirm.payload).toContain('This is your only security method');
    const res = await submit(b, `/profile/factors/${alice.factorId}/remove`, {});
    expect(res.headers.location).toBe('/?done=factor-removed');
    expect(await factorsOf(alice.user.id)).toEqual([]);
    const home = await b.get('/');
    expect(home.payload).toContain('You have no security method.');
  });
});

describe('changing the password', () => {
  it('refuses a wrong current password, counting it and changing nothing', async () => {
    const before = (await freshAlice()).password_hash;
    const res = await submit(b, '/profile/password', {
      currentPassword: 'not my password at all',
      newPassword: 'quiet lantern meadow 77',
    });
    expect(res.statusCode).toBe(400);
    expect(res.payload).toMatch(/id="f-currentPassword"[^>]*aria-invalid="true"/);
    expect(res.payload).toContain('Your current password is not correct.');
    const user = await freshAlice();
    expect(user.password_hash).toBe(before);
    expect(user.failed_attempts).toBe(1);
    expect(await mails(s, alice.login, 'passwordChanged')).toEqual([]);
    const [event] = await events(s, 'user.account.update_password', alice.user.id);
    expect(event?.outcome).toBe('failure');
    expectByUser(event);
  });

  it('applies the activation policy, with the problems tied to the new password field', async () => {
    const before = (await freshAlice()).password_hash;
    for (const newPassword of ['short', 'password123', 'aaaaaaaaaaaaaaaa', 'alice@acme.example', '']) {
      const res = await submit(b, '/profile/password', { currentPassword: alice.password, newPassword });
      expect(res.statusCode, newPassword).toBe(400);
      expect(res.payload, newPassword).toMatch(/id="f-newPassword"[^>]*aria-invalid="true"/);
      expect(res.payload, newPassword).toContain('<p class="field-error" id="f-newPassword-error">');
    }
    const same = await submit(b, '/profile/password', { currentPassword: alice.password, newPassword: alice.password });
    expect(same.statusCode).toBe(400);
    expect(same.payload).toContain('Choose a password different from your current one.');
    const user = await freshAlice();
    expect(user.password_hash).toBe(before);
    expect(user.failed_attempts).toBe(0);
    expect(await mails(s, alice.login, 'passwordChanged')).toEqual([]);
  });

  it('changes it, signs out the other sessions but not this one, emails and audits', async () => {
    const other = createBrowser(s);
    const { sid: otherSid } = await signInWithPages(s, other, alice, SID);
    expect(otherSid).not.toBe(b.jar.get(SID));
    const newPassword = 'quiet lantern meadow 77';
    const res = await submit(b, '/profile/password', { currentPassword: alice.password, newPassword });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/?done=password');

    expect((await b.get('/')).statusCode).toBe(200);
    const dead = await other.get('/');
    expect(dead.statusCode).toBe(303);
    expect(dead.headers.location).toBe('/signin');

    const user = await freshAlice();
    expect((await createPasswordHasher().verify(user.password_hash ?? '', newPassword)).ok).toBe(true);
    expect((await postJson(s, '/api/v1/authn', { username: alice.login, password: newPassword })).body.status).toBe(
      'MFA_REQUIRED',
    );
    expect((await postJson(s, '/api/v1/authn', { username: alice.login, password: alice.password })).status).toBe(401);

    const [mail] = await mails(s, alice.login, 'passwordChanged');
    expect(mail?.subject).toContain('password was changed');
    const [event] = (await events(s, 'user.account.update_password', alice.user.id)).filter(
      (e) => details(e).via === 'profile',
    );
    expect(event?.outcome).toBe('success');
    expectByUser(event);
    expect(details(event)).toMatchObject({ otherSessionsEnded: 1 });
    expect(textOf((await b.get('/')).payload, 'activity')).toContain('Password changed');
  });
});

describe('changing the recovery question', () => {
  it('applies the activation rules with errors tied to the fields, changing nothing', async () => {
    const before = await freshAlice();
    const res = await submit(b, '/profile/recovery-question', { recoveryQuestion: 'Pet?', recoveryAnswer: 'x' });
    expect(res.statusCode).toBe(400);
    expect(res.payload).toMatch(/id="f-recoveryQuestion"[^>]*aria-invalid="true"/);
    expect(res.payload).toMatch(/id="f-recoveryAnswer"[^>]*aria-invalid="true"/);
    expect(res.payload).toContain('at least 5 characters');
    expect(res.payload).toContain('Your answer must be at least 4 characters.');
    const after = await freshAlice();
    expect(after.recovery_question).toBe(before.recovery_question);
    expect(after.recovery_answer_hash).toBe(before.recovery_answer_hash);
    expect(await mails(s, alice.login, 'recoveryQuestionChanged')).toEqual([]);
  });

  it('changes question and answer, emails and audits', async () => {
    const page = await b.get('/profile/recovery-question');
    expect(page.statusCode).toBe(200);
    expect(page.payload).toContain('Name of the street you grew up on?');
    const res = await submit(b, '/profile/recovery-question', {
      recoveryQuestion: 'Which harbour did we sail from?',
      recoveryAnswer: '  Port  Isaac ',
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/?done=question');
    const user = await freshAlice();
    expect(user.recovery_question).toBe('Which harbour did we sail from?');
    const hasher = createPasswordHasher();
    expect((await hasher.verify(user.recovery_answer_hash ?? '', normalizeRecoveryAnswer('port isaac'))).ok).toBe(true);
    const [mail] = await mails(s, alice.login, 'recoveryQuestionChanged');
    expect(mail?.subject).toContain('recovery question was changed');
    const [event] = await events(s, 'user.account.update_recovery_question', alice.user.id);
    expectByUser(event);
    expect((await b.get('/')).payload).toContain('Which harbour did we sail from?');
  });
});

describe('sessions', () => {
  it('lists the active sessions and signs out all others: the current one keeps working', async () => {
    const other = createBrowser(s);
    await signInWithPages(s, other, alice, SID);
    const third = createBrowser(s);
    await signInWithPages(s, third, alice, SID);
    const home = await b.get('/');
    const rows = textOf(home.payload, 'sessions');
    expect(rows.match(/TraqsTest\/1\.0/g)).toHaveLength(3);
    expect(rows.match(/This session/g)).toHaveLength(1);

    const res = await submit(b, '/profile/sessions/sign-out-others', {});
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/?done=sessions');
    for (const gone of [other, third]) {
      const r = await gone.get('/');
      expect(r.statusCode).toBe(303);
      expect(r.headers.location).toBe('/signin');
    }
    const after = await b.get('/?done=sessions');
    expect(after.statusCode).toBe(200);
    expect(after.payload).toContain('Your other sessions were signed out.');
    expect(textOf(after.payload, 'sessions').match(/TraqsTest/g)).toHaveLength(1);
    const [event] = await events(s, 'user.session.clear', alice.user.id);
    expectByUser(event);
    expect(details(event)).toEqual({ sessionsEnded: 2 });
  });
});

describe('recent activity', () => {
  it('lists sign-ins (with failures) and security changes, newest first, in words', async () => {
    await postJson(s, '/api/v1/authn', { username: alice.login, password: 'a wrong password here' });
    s.clock.advance(1000);
    await addTotp(s, b);
    s.clock.advance(1000);
    await submit(b, `/profile/factors/${alice.factorId}/remove`, {});
    const html = (await b.get('/')).payload;
    const rows = [...textOf(html, 'activity').matchAll(/UTC (.+?) (Succeeded|Failed|Refused)/g)].map(
      (m) => `${m[1]}: ${m[2]}`,
    );
    expect(rows.slice(0, 4)).toEqual([
      'Security method removed: Succeeded',
      'Security method added: Succeeded',
      'Sign-in failed: wrong password: Failed',
      'Signed in: Succeeded',
    ]);
    expect(rows).toContain('Account activated: Succeeded');
    // Internal steps (enrollment started, the password step alone) are not listed.
    expect(html).not.toContain('enroll_started');
    expect(html).toMatch(/<tr class="failed">/);
  });
});
