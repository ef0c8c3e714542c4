import * as okta from '@okta/okta-sdk-nodejs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { base32Decode, generateTotp } from '../src/authn/factors/totp/totp.ts';
import { type AdminStack, apiToken, createAdminStack, linkIn, mailTo, seedUser, tokenOf } from './helpers/admin.ts';
import { type BackendHandle, describeEachBackend } from './helpers/databases.ts';
import { PASSWORD, RECOVERY } from './helpers/users.ts';

/**
 * Okta's own management SDK, unmodified, against a running idp (DESIGN "Okta-compatible
 * surfaces": `@okta/okta-sdk-nodejs`): Operations creates a user with activation, lists users
 * page by page, suspends and reads the System Log; Support unlocks and resets factors. The SDK
 * takes `orgUrl` and an `SSWS` token and talks plain HTTP to `http://localhost:{port}` as it does
 * HTTPS to an Okta org; it needs no option for that.
 */

/** What `UserApi` returns, as much of it as the test reads. */
interface SdkUser {
  id?: string;
  status?: string;
  profile?: { login?: string; email?: string; firmId?: string };
}

/** Every item of an SDK collection (it follows the `Link` headers). */
async function collect<T>(collection: AsyncIterable<unknown>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of collection) out.push(item as T);
  return out;
}

describeEachBackend(
  '@okta/okta-sdk-nodejs against the management API',
  (backend: BackendHandle) => {
    let s: AdminStack;
    let ops: okta.Client;
    let support: okta.Client;
    let saa: okta.Client;

    beforeAll(async () => {
      s = await createAdminStack({ store: backend.store(), listen: true });
      const client = async (role: 'operations' | 'support' | 'saa') =>
        new okta.Client({ orgUrl: s.idpUrl, token: await apiToken(s, role, s.firmA) });
      ops = await client('operations');
      support = await client('support');
      saa = await client('saa');
      // Others in the directory, so listing takes more than one page.
      for (let i = 0; i < 3; i++) await seedUser(s, s.firmA);
    });
    afterAll(async () => {
      await s?.close();
    });

    /** The user completes enrollment from the emailed link: password, question, a TOTP factor. */
    async function enroll(email: string): Promise<void> {
      const [mail] = await mailTo(s, email);
      const token = tokenOf(linkIn(mail, '/activate'));
      const post = async (url: string, payload: unknown) => {
        const res = await fetch(`${s.idpUrl}${url}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(payload),
        });
        return (await res.json()) as Record<string, unknown> & { _embedded?: Record<string, unknown> };
      };
      let r = await post('/api/v1/authn', { token });
      r = await post('/api/v1/authn/credentials/reset_password', {
        stateToken: r.stateToken,
        newPassword: PASSWORD,
        ...RECOVERY,
      });
      const stateToken = r.stateToken;
      r = await post('/api/v1/authn/factors', { stateToken, factorType: 'token:software:totp', provider: 'GOOGLE' });
      const factor = r._embedded?.factor as { id: string; _embedded: { activation: { sharedSecret: string } } };
      const secret = base32Decode(factor._embedded.activation.sharedSecret);
      r = await post(`/api/v1/authn/factors/${factor.id}/lifecycle/activate`, {
        stateToken,
        passCode: generateTotp({ secret, now: s.clock() }),
      });
      expect(r.status).toBe('SUCCESS');
    }

    it('creates a user with activation, lists, unlocks, resets factors, suspends and reads the log', async () => {
      const since = new Date(s.clock() - 1000).toISOString();
      const created = (await ops.userApi.createUser({
        activate: true,
        body: {
          profile: {
            firstName: 'Sdk',
            lastName: 'Created',
            email: 'sdk.created@acme.example',
            login: 'sdk.created@acme.example',
            firmId: s.firmA.id,
          } as never,
        },
      })) as SdkUser;
      expect(created).toMatchObject({
        status: 'PROVISIONED',
        profile: { login: 'sdk.created@acme.example', firmId: s.firmA.id },
      });
      const userId = created.id ?? '';
      const [enrollment] = await mailTo(s, 'sdk.created@acme.example');
      expect(enrollment?.template).toBe('enrollment');
      await enroll('sdk.created@acme.example');

      // Listing: the SDK follows Link rel="next" from page to page.
      const logins: string[] = [];
      for await (const u of await ops.userApi.listUsers({ limit: 2 })) logins.push((u as SdkUser).profile?.login ?? '');
      expect(logins).toContain('sdk.created@acme.example');
      expect(logins).toHaveLength(await s.store.repos.users.countUsers());
      const firmOnly: string[] = [];
      for await (const u of await saa.userApi.listUsers({})) firmOnly.push((u as SdkUser).profile?.firmId ?? '');
      expect(new Set(firmOnly)).toEqual(new Set([s.firmA.id]));

      // Support unlocks a locked account.
      await s.store.repos.users.lockUser(userId, s.clock());
      expect(((await support.userApi.getUser({ userId })) as SdkUser).status).toBe('LOCKED_OUT');
      await support.userApi.unlockUser({ userId });
      expect(((await support.userApi.getUser({ userId })) as SdkUser).status).toBe('ACTIVE');
      expect((await mailTo(s, 'sdk.created@acme.example'))[0]?.template).toBe('accountUnlockedByAdmin');

      // Support resets the factors of a lost device: the next sign-in asks to enroll again.
      const factors = await collect<{ factorType?: string }>(await support.userFactorApi.listFactors({ userId }));
      expect(factors.map((f) => f.factorType)).toEqual(['token:software:totp']);
      await support.userApi.resetFactors({ userId });
      expect(await collect(await support.userFactorApi.listFactors({ userId }))).toEqual([]);
      expect((await mailTo(s, 'sdk.created@acme.example'))[0]?.template).toBe('factorsReset');
      const signIn = await fetch(`${s.idpUrl}/api/v1/authn`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'sdk.created@acme.example', password: PASSWORD }),
      });
      expect(((await signIn.json()) as { status: string }).status).toBe('MFA_ENROLL');

      // Support may not suspend; Operations may. The SDK surfaces Okta's error object.
      await expect(support.userApi.suspendUser({ userId })).rejects.toMatchObject({
        name: 'OktaApiError',
        status: 403,
        errorCode: 'E0000006',
      });
      await ops.userApi.suspendUser({ userId });
      expect(((await ops.userApi.getUser({ userId })) as SdkUser).status).toBe('SUSPENDED');
      expect((await mailTo(s, 'sdk.created@acme.example'))[0]?.template).toBe('accountSuspended');

      // The System Log, bounded, filtered on the user, page by page.
      const until = new Date(s.clock() + 60_000).toISOString();
      const events: { eventType?: string; outcome?: { result?: string } }[] = [];
      for await (const e of await ops.systemLogApi.listLogEvents({
        since,
        until,
        limit: 2,
        filter: `target.id eq "${userId}"`,
      })) {
        events.push(e as (typeof events)[number]);
      }
      const types = events.map((e) => e.eventType);
      for (const t of [
        'user.lifecycle.create',
        'user.lifecycle.activate',
        'user.account.unlock_by_admin',
        'user.mfa.factor.reset_all',
        'user.lifecycle.suspend',
      ]) {
        expect(types).toContain(t);
      }
      expect(
        events.find((e) => e.eventType === 'user.lifecycle.suspend' && e.outcome?.result === 'DENY'),
      ).toBeDefined();
      await expect(saa.systemLogApi.listLogEvents({ since }).then((c) => c.next())).rejects.toMatchObject({
        status: 403,
      });
    });
  },
  { fresh: 'suite' },
);
