import type { FastifyInstance, FastifyReply } from 'fastify';
import QRCode from 'qrcode';
import { z } from 'zod';
import type { UserRow } from '../accounts/repository.ts';
import { AppError } from '../web/errors.ts';
import { parseBody, requestContext, requireJson } from '../web/validate.ts';
import type { FactorRow } from './factors/repository.ts';
import {
  assertionFromOkta,
  oktaActivationFields,
  oktaAssertionFields,
  registrationFromOkta,
} from './factors/webauthn/inputs.ts';
import type { AuthnResult, AuthnService, TransactionView } from './service.ts';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const stateToken = z.string().min(1).max(200);
const passCode = z.string().min(1).max(20);

// Okta clients send these alongside credentials; accepted and ignored where they do not apply.
const oktaExtras = {
  relayState: z.string().max(2048).optional(),
  options: z.record(z.string(), z.unknown()).optional(),
  context: z.record(z.string(), z.unknown()).optional(),
  audience: z.string().max(2048).optional(),
};

const authnBody = z
  .object({
    username: z.string().min(1).max(254).optional(),
    password: z.string().min(1).max(1024).optional(),
    token: z.string().min(1).max(200).optional(),
    stateToken: stateToken.optional(),
    ...oktaExtras,
  })
  .strict();

// Built once: zod compiles a parser for each schema object on its first use, which costs more
// than the parse itself when a route builds its schema on every request (bench/signin.ts).
const resetPasswordBody = z
  .object({
    stateToken,
    newPassword: z.string().min(1).max(1024),
    // Required at activation (the service says so); not asked again in password recovery.
    recoveryQuestion: z.string().min(1).max(200).optional(),
    recoveryAnswer: z.string().min(1).max(200).optional(),
    ...oktaExtras,
  })
  .strict();
const recoveryRequestBody = z
  .object({
    username: z.string().min(1).max(254),
    // Okta lets the client pick the channel; email is the only recovery channel here.
    factorType: z.literal('EMAIL').optional(),
    ...oktaExtras,
  })
  .strict();
const recoveryTokenBody = z.object({ recoveryToken: z.string().min(1).max(200), ...oktaExtras }).strict();
const recoveryAnswerBody = z.object({ stateToken, answer: z.string().min(1).max(200), ...oktaExtras }).strict();
const enrollBody = z
  .object({
    stateToken,
    factorType: z.string().min(1).max(60),
    provider: z.string().min(1).max(40),
    profile: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
const factorParams = z.object({ factorId: z.string().min(1).max(40) });
// A TOTP code, or Okta's WebAuthn registration fields (FastPass).
const activateBody = z
  .object({
    stateToken,
    passCode: passCode.optional(),
    attestation: oktaActivationFields.attestation.optional(),
    clientData: oktaActivationFields.clientData.optional(),
    ...oktaExtras,
  })
  .strict();
// A TOTP code (or Okta's `answer`), Okta's WebAuthn assertion fields, or nothing: for FastPass,
// a request with the stateToken alone asks for a challenge (MFA_CHALLENGE).
const verifyBody = z
  .object({
    stateToken,
    passCode: passCode.optional(),
    answer: z.string().max(200).optional(),
    clientData: oktaAssertionFields.clientData.optional(),
    authenticatorData: oktaAssertionFields.authenticatorData.optional(),
    signatureData: oktaAssertionFields.signatureData.optional(),
    rememberDevice: z.boolean().optional(),
    ...oktaExtras,
  })
  .strict();
const previousBody = z.object({ stateToken }).strict();
// okta-auth-js puts these in the query of `verify` and of its polls (`?autoPush=true&rememberDevice=false`).
const verifyQuery = z.object({
  autoPush: z.enum(['true', 'false']).optional(),
  rememberDevice: z.enum(['true', 'false']).optional(),
});
const pushBody = z.object({ stateToken, ...oktaExtras }).strict();
const cancelBody = z.object({ stateToken, ...oktaExtras }).strict();

/**
 * The Okta classic Authentication API (`/api/v1/authn…`): same paths, JSON shapes, statuses and
 * error objects as Okta, so `@okta/okta-auth-js` works unchanged. One state machine
 * (`AuthnService`) serves this API and the HTML pages.
 */
export function registerAuthnApi(
  app: FastifyInstance,
  authn: AuthnService,
  baseUrl: string,
  passwordMinLength: number,
): void {
  const link = (path: string, extra: Record<string, unknown> = {}) => ({
    href: `${baseUrl}${path}`,
    hints: { allow: ['POST'] },
    ...extra,
  });

  const userJson = (u: UserRow) => ({
    id: u.id,
    passwordChanged: iso(u.password_changed_at),
    profile: {
      login: u.login,
      firstName: u.first_name,
      lastName: u.last_name,
      locale: 'en',
      timeZone: 'America/New_York',
    },
  });

  /** Okta's factor `profile`: the username for TOTP; the credential id and a name for WebAuthn. */
  const factorProfile = (f: FactorRow, t: Pick<TransactionView, 'user' | 'credentialIds'>) =>
    f.factor_type === 'webauthn'
      ? { credentialId: t.credentialIds?.get(f.id) ?? null, authenticatorName: f.name }
      : { credentialId: t.user.login };

  /** The fields every factor object of Okta's answers starts with. */
  const factorBase = (f: FactorRow) => ({
    id: f.id,
    factorType: f.factor_type,
    provider: f.provider,
    vendorName: f.provider,
  });

  const factorJson = (f: FactorRow, t: Pick<TransactionView, 'user' | 'credentialIds'>) => ({
    ...factorBase(f),
    profile: factorProfile(f, t),
    _links: { verify: link(`/api/v1/authn/factors/${f.id}/verify`) },
  });

  async function transactionJson(t: TransactionView) {
    const base = {
      stateToken: t.stateToken,
      expiresAt: iso(t.expiresAt),
      status: t.status,
    };
    const cancel = link('/api/v1/authn/cancel');
    const recoveryType =
      t.flow === 'recovery_password' ? 'PASSWORD' : t.flow === 'recovery_unlock' ? 'UNLOCK' : undefined;
    if (recoveryType) Object.assign(base, { recoveryType });
    switch (t.status) {
      case 'RECOVERY':
        return {
          ...base,
          _embedded: {
            user: { ...userJson(t.user), recovery_question: { question: t.recoveryQuestion ?? '' } },
          },
          _links: { next: link('/api/v1/authn/recovery/answer', { name: 'answer' }), cancel },
        };
      case 'PASSWORD_RESET':
        return {
          ...base,
          _embedded: { user: userJson(t.user), policy: { complexity: { minLength: passwordMinLength } } },
          _links: { next: link('/api/v1/authn/credentials/reset_password', { name: 'resetPassword' }), cancel },
        };
      case 'MFA_ENROLL':
        return {
          ...base,
          _embedded: {
            user: userJson(t.user),
            factors: authn.enrollableFactors().map((f) => ({
              factorType: f.factorType,
              provider: f.provider,
              vendorName: f.provider,
              enrollment: 'REQUIRED',
              status: 'NOT_SETUP',
              _links: { enroll: link('/api/v1/authn/factors') },
            })),
          },
          _links: { cancel },
        };
      case 'MFA_ENROLL_ACTIVATE': {
        const p = t.pushEnrollment;
        if (p) {
          // Okta: WAITING until the authenticator enrolled, polled at `next` (name `poll`); the
          // activation travels as a link and its QR code (ours a data: URL, as for TOTP).
          const a = p.activation;
          return {
            ...base,
            factorResult: a ? 'WAITING' : 'TIMEOUT',
            _embedded: {
              user: userJson(t.user),
              factor: {
                ...factorBase(p.factor),
                _embedded: {
                  activation: a
                    ? {
                        expiresAt: iso(a.expiresAt),
                        factorResult: 'WAITING',
                        activationCode: a.code,
                        activationLink: a.link,
                        _links: {
                          qrcode: {
                            href: await QRCode.toDataURL(a.link, { margin: 1, width: 220 }),
                            type: 'image/png',
                          },
                        },
                      }
                    : { factorResult: 'TIMEOUT' },
                },
              },
            },
            _links: {
              next: link(`/api/v1/authn/factors/${p.factor.id}/lifecycle/activate/poll`, { name: 'poll' }),
              prev: link('/api/v1/authn/previous', { name: 'prev' }),
              cancel,
            },
          };
        }
        const w = t.webauthnEnrollment;
        if (w) {
          // Okta: `_embedded.factor._embedded.activation` holds the credential creation options.
          return {
            ...base,
            _embedded: {
              user: userJson(t.user),
              factor: {
                ...factorBase(w.factor),
                _embedded: { activation: w.options },
              },
            },
            _links: {
              next: link(`/api/v1/authn/factors/${w.factor.id}/lifecycle/activate`, { name: 'activate' }),
              prev: link('/api/v1/authn/previous', { name: 'prev' }),
              cancel,
            },
          };
        }
        const e = t.enrollment;
        if (!e) throw new AppError('INVALID_TOKEN');
        return {
          ...base,
          factorResult: 'WAITING',
          _embedded: {
            user: userJson(t.user),
            factor: {
              ...factorBase(e.factor),
              profile: { credentialId: t.user.login },
              _embedded: {
                activation: {
                  timeStep: 30,
                  sharedSecret: e.sharedSecret,
                  encoding: 'base32',
                  keyLength: e.sharedSecret.length,
                  _links: {
                    qrcode: {
                      href: await QRCode.toDataURL(e.otpauthUri, { margin: 1, width: 200 }),
                      type: 'image/png',
                    },
                  },
                },
              },
            },
          },
          _links: {
            next: link(`/api/v1/authn/factors/${e.factor.id}/lifecycle/activate`, { name: 'activate' }),
            prev: link('/api/v1/authn/previous', { name: 'prev' }),
            cancel,
          },
        };
      }
      case 'MFA_REQUIRED':
        return {
          ...base,
          _embedded: { user: userJson(t.user), factors: t.factors.map((f) => factorJson(f, t)) },
          _links: { cancel },
        };
      case 'MFA_CHALLENGE': {
        const push = t.push;
        if (push) {
          // Okta's push challenge: `factorResult` WAITING (with the number the user picks on the
          // device in `correctAnswer`), then REJECTED or TIMEOUT; `next` is `poll` while waiting.
          const c = push.challenge;
          const result = !c || c.status === 'WAITING' ? 'WAITING' : c.status === 'TIMEOUT' ? 'TIMEOUT' : 'REJECTED';
          const verifyHref = `/api/v1/authn/factors/${push.factor.id}/verify`;
          return {
            ...base,
            factorResult: result,
            challengeType: 'FACTOR',
            _embedded: {
              user: userJson(t.user),
              factor: {
                ...factorBase(push.factor),
                profile: { credentialId: t.user.login, name: push.factor.name, platform: 'traqs-verify' },
                _embedded: result === 'WAITING' && c ? { challenge: { correctAnswer: c.correct_number } } : {},
              },
            },
            _links: {
              next: link(verifyHref, { name: result === 'WAITING' ? 'poll' : 'verify' }),
              resend: [link(`${verifyHref}/resend`, { name: 'push' })],
              prev: link('/api/v1/authn/previous', { name: 'prev' }),
              cancel,
            },
          };
        }
        const c = t.challenge;
        if (!c) {
          return {
            ...base,
            _embedded: { user: userJson(t.user), factors: t.factors.map((f) => factorJson(f, t)) },
            _links: { prev: link('/api/v1/authn/previous', { name: 'prev' }), cancel },
          };
        }
        // Okta: `_embedded.factor._embedded.challenge` holds the credential request options.
        return {
          ...base,
          factorResult: 'CHALLENGE',
          challengeType: 'FACTOR',
          _embedded: {
            user: userJson(t.user),
            factor: {
              ...factorBase(c.factor),
              profile: factorProfile(c.factor, t),
              _embedded: { challenge: c.options },
            },
          },
          _links: {
            next: link(`/api/v1/authn/factors/${c.factor.id}/verify`, { name: 'verify' }),
            prev: link('/api/v1/authn/previous', { name: 'prev' }),
            cancel,
          },
        };
      }
    }
  }

  async function reply(res: FastifyReply, result: AuthnResult) {
    switch (result.kind) {
      case 'transaction':
        return res.send(await transactionJson(result.txn));
      case 'success':
        return res.send({
          expiresAt: iso(result.expiresAt),
          status: 'SUCCESS',
          sessionToken: result.sessionToken,
          _embedded: { user: userJson(result.user) },
        });
      case 'unlocked':
        return res.send({ status: 'SUCCESS', recoveryType: 'UNLOCK', _embedded: { user: userJson(result.user) } });
      case 'locked':
        // Okta answers a locked account with a LOCKED_OUT transaction, not an error.
        return res.send({ status: 'LOCKED_OUT', _links: {} });
      case 'error':
        throw new AppError(result.error, result.causes ?? [], result.summary);
    }
  }

  app.register(async (api) => {
    api.addHook('preHandler', requireJson);

    api.post('/api/v1/authn', async (req, res) => {
      const body = parseBody(authnBody, req.body);
      const ctx = requestContext(req);
      if (body.stateToken) return reply(res, await authn.getTransaction(body.stateToken));
      if (body.token) return reply(res, await authn.startActivation(body.token, ctx));
      if (body.username !== undefined && body.password !== undefined) {
        // Okta clients identify the device with `context.deviceToken` (for new-sign-in notices).
        const deviceToken = body.context?.deviceToken;
        const withDevice =
          typeof deviceToken === 'string' && deviceToken.length > 0 && deviceToken.length <= 200
            ? { ...ctx, deviceId: deviceToken }
            : ctx;
        return reply(res, await authn.primaryAuth(body.username, body.password, withDevice));
      }
      throw new AppError('VALIDATION', ['Provide username and password, an activation token, or a stateToken.']);
    });

    api.post('/api/v1/authn/credentials/reset_password', async (req, res) => {
      const body = parseBody(resetPasswordBody, req.body);
      return reply(res, await authn.resetPassword(body.stateToken, body, requestContext(req)));
    });

    api.post('/api/v1/authn/factors', async (req, res) => {
      const body = parseBody(enrollBody, req.body);
      return reply(res, await authn.enrollFactor(body.stateToken, body.factorType, body.provider, requestContext(req)));
    });

    api.post('/api/v1/authn/factors/:factorId/lifecycle/activate', async (req, res) => {
      const { factorId } = parseBody(factorParams, req.params);
      const body = parseBody(activateBody, req.body);
      const ctx = requestContext(req);
      if (body.attestation !== undefined || body.clientData !== undefined) {
        if (body.attestation === undefined || body.clientData === undefined) {
          throw new AppError('VALIDATION', ['attestation and clientData: both are required for a webauthn factor']);
        }
        const registration = registrationFromOkta({ attestation: body.attestation, clientData: body.clientData });
        return reply(res, await authn.activateWebAuthn(body.stateToken, factorId, registration, ctx));
      }
      if (!body.passCode) throw new AppError('VALIDATION', ['passCode: Required']);
      return reply(res, await authn.verifyPasscode(body.stateToken, factorId, body.passCode, 'activate', ctx));
    });

    api.post('/api/v1/authn/factors/:factorId/verify', async (req, res) => {
      const { factorId } = parseBody(factorParams, req.params);
      const body = parseBody(verifyBody, req.body);
      const ctx = requestContext(req);
      const webauthn = [body.clientData, body.authenticatorData, body.signatureData];
      const code = body.passCode ?? body.answer;
      let result: AuthnResult;
      if (webauthn.some((v) => v !== undefined)) {
        const [clientData, authenticatorData, signatureData] = webauthn;
        if (clientData === undefined || authenticatorData === undefined || signatureData === undefined) {
          throw new AppError('VALIDATION', [
            'clientData, authenticatorData and signatureData: all are required to verify a webauthn factor',
          ]);
        }
        const assertion = assertionFromOkta({ clientData, authenticatorData, signatureData });
        result = await authn.verifyWebAuthn(body.stateToken, factorId, assertion, ctx);
      } else if (code) {
        result = await authn.verifyPasscode(body.stateToken, factorId, code, 'verify', ctx);
      } else {
        parseBody(verifyQuery, req.query);
        // Push and FastPass are verified in two steps (a push or a challenge first); for a code
        // factor, the code is missing.
        result = await authn.challengeFactor(body.stateToken, factorId, ctx);
        // A poll did not fail a credential: a lockout the device caused (a denial, a wrong number)
        // is the transaction's state, LOCKED_OUT, as Okta reports it and as after the password step.
        if (result.kind === 'locked') return reply(res, result);
      }
      // Mid-transaction lockout: Okta answers the factor verification itself with E0000069.
      if (result.kind === 'locked') throw new AppError('USER_LOCKED');
      return reply(res, result);
    });

    api.post('/api/v1/authn/factors/:factorId/verify/resend', async (req, res) => {
      const { factorId } = parseBody(factorParams, req.params);
      const body = parseBody(pushBody, req.body);
      const result = await authn.verifyPush(body.stateToken, factorId, requestContext(req), 'resend');
      if (result.kind === 'locked') throw new AppError('USER_LOCKED');
      return reply(res, result);
    });

    api.post('/api/v1/authn/factors/:factorId/lifecycle/activate/poll', async (req, res) => {
      const { factorId } = parseBody(factorParams, req.params);
      const body = parseBody(pushBody, req.body);
      return reply(res, await authn.pollPushActivation(body.stateToken, factorId, requestContext(req)));
    });

    api.post('/api/v1/authn/previous', async (req, res) => {
      const body = parseBody(previousBody, req.body);
      return reply(res, await authn.previous(body.stateToken));
    });

    for (const kind of ['password', 'unlock'] as const) {
      api.post(`/api/v1/authn/recovery/${kind}`, async (req, res) => {
        const body = parseBody(recoveryRequestBody, req.body);
        // Same answer whether or not the user exists; the email goes out after the response.
        const { settled } = authn.requestRecovery(body.username, kind, requestContext(req));
        settled.catch((err: unknown) => req.log.error({ err }, 'recovery request failed'));
        return res.send({
          status: 'RECOVERY_CHALLENGE',
          factorResult: 'WAITING',
          factorType: 'EMAIL',
          recoveryType: kind === 'password' ? 'PASSWORD' : 'UNLOCK',
          _links: {},
        });
      });
    }

    api.post('/api/v1/authn/recovery/token', async (req, res) => {
      const body = parseBody(recoveryTokenBody, req.body);
      return reply(res, await authn.startRecovery(body.recoveryToken, requestContext(req)));
    });

    api.post('/api/v1/authn/recovery/answer', async (req, res) => {
      const body = parseBody(recoveryAnswerBody, req.body);
      return reply(res, await authn.answerRecovery(body.stateToken, body.answer, requestContext(req)));
    });

    api.post('/api/v1/authn/cancel', async (req, res) => {
      const body = parseBody(cancelBody, req.body);
      if (!(await authn.cancel(body.stateToken, requestContext(req)))) throw new AppError('INVALID_TOKEN');
      return res.send({ status: 'UNAUTHENTICATED' });
    });
  });
}
