import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import type { UserRow } from '../../../accounts/repository.ts';
import type { Repositories } from '../../../db/store.ts';
import type { Clock, RandomBytes } from '../../../lib/tokens.ts';
import { createId } from '../../../lib/tokens.ts';
import type { FactorRow } from '../repository.ts';
import {
  type AssertionInput,
  authenticationOptions,
  challengeOf,
  createChallenge,
  type RegistrationInput,
  registrationOptions,
  verifyAssertion,
  verifyRegistration,
  WEBAUTHN_TIMEOUT_MS,
} from './ceremony.ts';
import type { RelyingParty, WebAuthnSupport } from './relying-party.ts';
import type { ChallengePurpose, WebAuthnCredentialRow } from './repository.ts';

/** FastPass is Okta's `webauthn` factor type with provider `FIDO`. */
export const WEBAUTHN = { factorType: 'webauthn', provider: 'FIDO' } as const;

/** A page rendered this close to its challenge's expiry gets a fresh challenge instead. */
const MIN_REMAINING_MS = 60_000;

// Order matters: Android and ChromeOS also say Linux.
const SYSTEMS: readonly [RegExp, string][] = [
  [/Windows/, 'Windows'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/CrOS/, 'ChromeOS'],
  [/Android/, 'Android'],
  [/iPhone|iPad/, 'iOS'],
  [/Linux/, 'Linux'],
];

/** The name a new FastPass factor gets: the computer's system, so two are told apart. */
export function fastPassName(userAgent: string | null): string {
  const system = SYSTEMS.find(([re]) => re.test(userAgent ?? ''))?.[1];
  return system ? `FastPass on ${system}` : 'FastPass';
}

export type FastPassCheck =
  | { ok: true; credential: WebAuthnCredentialRow; signCount: number }
  | { ok: false; reason: 'CHALLENGE' | 'INVALID' | 'NO_CREDENTIAL'; detail?: string }
  | { ok: false; reason: 'SIGN_COUNT_REGRESSED'; credential: WebAuthnCredentialRow; stored: number; reported: number };

export type FastPassRegistration =
  | { ok: true; credential: WebAuthnCredentialRow }
  | { ok: false; reason: 'CHALLENGE' | 'INVALID' | 'DUPLICATE'; detail?: string };

/**
 * FastPass for sign-in and the profile alike: challenges bound to what asked for them (a
 * transaction or a session), options for the browser, and the checks of what comes back. Saving
 * the credential or the new counter, and what a result means for the account, is the caller's.
 */
export function createFastPass(deps: { support: WebAuthnSupport; clock: Clock; random: RandomBytes }) {
  const { clock, random, support } = deps;
  const rp = (): RelyingParty | undefined => (support.available ? support.rp : undefined);

  async function liveChallenge(
    repos: Repositories,
    binding: string,
    purpose: ChallengePurpose,
    user: UserRow,
    factorId: string,
    fresh: boolean,
  ): Promise<string> {
    const now = clock();
    if (!fresh) {
      const live = await repos.factors.webauthn.findLiveChallenge(binding, purpose, factorId, now, MIN_REMAINING_MS);
      if (live) return live.challenge;
    }
    const challenge = createChallenge(random);
    await repos.factors.webauthn.issueChallenge({
      challenge,
      user_id: user.id,
      purpose,
      binding,
      factor_id: factorId,
      created_at: now,
      expires_at: now + WEBAUTHN_TIMEOUT_MS,
      consumed_at: null,
    });
    return challenge;
  }

  const descriptors = (rows: WebAuthnCredentialRow[]) =>
    rows.map((c) => ({ id: c.credential_id, transports: parseTransports(c.transports) }));

  /** Consumes the challenge a response answers; false if it is unknown, used, expired or not ours. */
  async function consume(
    repos: Repositories,
    clientDataJSON: string,
    binding: string,
    purpose: ChallengePurpose,
    factorId: string,
  ): Promise<string | undefined> {
    const challenge = challengeOf(clientDataJSON);
    if (!challenge) return undefined;
    const ok = await repos.factors.webauthn.consumeChallenge(challenge, binding, purpose, factorId, clock());
    return ok ? challenge : undefined;
  }

  return {
    support,

    /** A FastPass factor waiting for its registration. */
    pendingFactor(userId: string, name: string, now: number): FactorRow {
      return {
        id: createId('fwf', random),
        user_id: userId,
        factor_type: WEBAUTHN.factorType,
        provider: WEBAUTHN.provider,
        status: 'PENDING_ACTIVATION',
        name,
        secret_enc: null,
        last_used_step: null,
        created_at: now,
        activated_at: null,
        last_used_at: null,
      };
    },

    /**
     * Options for `navigator.credentials.create()` for a pending factor, with the live
     * registration challenge of `binding` (a new one if there is none with a minute left).
     */
    async registrationOptions(
      repos: Repositories,
      binding: string,
      user: UserRow,
      factor: FactorRow,
    ): Promise<PublicKeyCredentialCreationOptionsJSON | undefined> {
      const party = rp();
      if (!party) return undefined;
      const challenge = await liveChallenge(repos, binding, 'registration', user, factor.id, false);
      const existing = await repos.factors.webauthn.listCredentials(user.id);
      return registrationOptions({
        rp: party,
        user: { handle: user.id, login: user.login, displayName: `${user.first_name} ${user.last_name}`.trim() },
        challenge,
        exclude: descriptors(existing),
      });
    },

    /**
     * Options for `navigator.credentials.get()` for one factor. `fresh`: always a new challenge
     * (the API's explicit challenge request); otherwise the live one is reused (a page reload).
     */
    async authenticationOptions(
      repos: Repositories,
      binding: string,
      user: UserRow,
      factor: FactorRow,
      fresh: boolean,
    ): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
      const party = rp();
      const credential = await repos.factors.webauthn.findCredential(factor.id);
      if (!party || !credential) return undefined;
      const challenge = await liveChallenge(repos, binding, 'authentication', user, factor.id, fresh);
      return authenticationOptions({ rp: party, challenge, allow: descriptors([credential]) });
    },

    /** Checks a registration for a pending factor; the credential row to save if it holds. */
    async checkRegistration(
      repos: Repositories,
      binding: string,
      factor: FactorRow,
      input: RegistrationInput,
    ): Promise<FastPassRegistration> {
      const party = rp();
      if (!party) return { ok: false, reason: 'INVALID', detail: 'FastPass is not available' };
      const challenge = await consume(repos, input.clientDataJSON, binding, 'registration', factor.id);
      if (!challenge) return { ok: false, reason: 'CHALLENGE' };
      const result = await verifyRegistration({ rp: party, challenge, response: input });
      if (!result.ok) return { ok: false, reason: 'INVALID', detail: result.reason };
      const c = result.credential;
      if (await repos.factors.webauthn.credentialExists(c.id)) return { ok: false, reason: 'DUPLICATE' };
      return {
        ok: true,
        credential: {
          factor_id: factor.id,
          user_id: factor.user_id,
          credential_id: c.id,
          public_key: c.publicKey,
          sign_count: c.signCount,
          transports: JSON.stringify(c.transports),
          aaguid: c.aaguid,
          device_type: c.deviceType,
          backed_up: c.backedUp ? 1 : 0,
          created_at: clock(),
        },
      };
    },

    /**
     * Checks an assertion for an active factor: the challenge (single use, bound, unexpired), the
     * signature with user verification, then the counter. Recording the new counter is the caller's.
     */
    async checkAssertion(
      repos: Repositories,
      binding: string,
      factor: FactorRow,
      input: AssertionInput,
    ): Promise<FastPassCheck> {
      const party = rp();
      const credential = await repos.factors.webauthn.findCredential(factor.id);
      if (!party || !credential) return { ok: false, reason: 'NO_CREDENTIAL' };
      const challenge = await consume(repos, input.clientDataJSON, binding, 'authentication', factor.id);
      if (!challenge) return { ok: false, reason: 'CHALLENGE' };
      const result = await verifyAssertion({
        rp: party,
        challenge,
        credential: {
          id: credential.credential_id,
          publicKey: credential.public_key,
          signCount: credential.sign_count,
          transports: parseTransports(credential.transports),
        },
        response: input,
      });
      if (result.ok) return { ok: true, credential, signCount: result.signCount };
      if (result.reason === 'SIGN_COUNT_REGRESSED') {
        return { ok: false, reason: result.reason, credential, stored: result.stored, reported: result.reported };
      }
      return { ok: false, reason: 'INVALID', detail: result.detail };
    },
  };
}
export type FastPass = ReturnType<typeof createFastPass>;

function parseTransports(json: string): string[] {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

/** What a failed FastPass check tells the user. */
export function fastPassMessage(reason: 'CHALLENGE' | 'INVALID' | 'NO_CREDENTIAL' | 'DUPLICATE'): string {
  switch (reason) {
    case 'CHALLENGE':
      return 'This FastPass request expired or was already used. Try again.';
    case 'DUPLICATE':
      return 'This device is already registered for FastPass.';
    case 'NO_CREDENTIAL':
      return 'This FastPass method cannot be used here. Choose another method.';
    case 'INVALID':
      return 'FastPass could not confirm it is you. Try again, or choose another method.';
  }
}

/** What the user is told when a counter went backwards: refused, alerted, what to do. */
export const SIGN_COUNT_MESSAGE =
  'FastPass was refused: this device reported a use count lower than one already seen, which can mean the credential was copied. We emailed you about it. Sign in with another method, then remove this FastPass method and set it up again.';
