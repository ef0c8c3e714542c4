import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import { z } from 'zod';
import { createBearerSecret } from '../lib/tokens.ts';
import { readReturnCookie } from '../oauth/interactions.tsx';
import type { PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';
import { requestContext } from '../web/validate.ts';
import { EnrollPushPage, PushWaitPage } from './factors/push/views.tsx';
import { retiredOnlyNotice } from './factors/retired.ts';
import { OtherMethods } from './factors/views.tsx';
import { parseAssertionJson, parseRegistrationJson, RESPONSE_FIELD_MAX } from './factors/webauthn/inputs.ts';
import type { AuthnResult, AuthnService } from './service.ts';
import type { SessionManager } from './sessions.ts';
import {
  ActivatePage,
  CancelForm,
  EnrollActivatePage,
  EnrollChoicePage,
  EnrollFastPassPage,
  LinkInvalidPage,
  LockedPage,
  PasswordSetupPage,
  RecoverPage,
  RecoveryQuestionPage,
  RecoveryRequestPage,
  SignInPage,
  UnlockedPage,
  VerifyPage,
} from './views.tsx';

export interface PageRouteDeps {
  authn: AuthnService;
  sessions: SessionManager;
  cookiePrefix: string;
  secureCookies: boolean;
  transactionMinutes: number;
  sessionAbsoluteHours: number;
  passwordMinLength: number;
  lockoutMinutes: number;
  /** After this many lockouts in a row the page sends the user to support instead. */
  lockoutsBeforeSupportUnlock: number;
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
  /**
   * Federated sign-in (src/federation): for a username of a federated user, answers the sign-in
   * form itself (sends the browser to the firm's IdP) and returns true; for anyone else returns
   * false and the form goes on as before.
   */
  federatedSignIn?: (req: FastifyRequest, reply: FastifyReply, username: string) => Promise<boolean>;
}

/** What turns a one-time session token into the browser's idp session (local and federated sign-in). */
export type BrowserSessionStarter = (
  req: FastifyRequest,
  reply: FastifyReply,
  sessionToken: string,
) => Promise<boolean>;

/**
 * Redeems a one-time session token for an idp session cookie and sends the browser back to the
 * authorization request that asked for the sign-in (the signed return cookie), else home.
 * False, with nothing sent, if the token was spent or expired.
 */
export function createBrowserSessionStarter(
  deps: Pick<PageRouteDeps, 'authn' | 'sessions' | 'cookiePrefix' | 'secureCookies' | 'sessionAbsoluteHours'>,
): BrowserSessionStarter {
  const sidCookie = `${deps.cookiePrefix}_sid`;
  const returnCookie = `${deps.cookiePrefix}_return`;
  return async (req, reply, sessionToken) => {
    const redeemed = await deps.authn.redeemSessionToken(sessionToken);
    if (!redeemed) return false;
    // A fresh session id at every sign-in (OWASP ASVS 3.2.1): the old one, if any, ends.
    await deps.sessions.end(req.cookies[sidCookie]);
    const { id } = await deps.sessions.create(redeemed.userId, redeemed.amr, requestContext(req));
    reply.clearCookie(`${deps.cookiePrefix}_txn`, { path: '/' });
    reply.setCookie(sidCookie, id, {
      path: '/',
      httpOnly: true,
      secure: deps.secureCookies,
      sameSite: 'lax',
      maxAge: deps.sessionAbsoluteHours * 3600,
    });
    // Back to the authorization request that sent the user here, if any (only that path shape:
    // never an open redirect).
    // The cookie stays until the interaction has used it: it also dates this sign-in.
    const back = readReturnCookie(req, req.cookies[returnCookie]);
    reply.redirect(back ? back.path : '/', 303);
    return true;
  };
}

const formString = (max: number) => z.string().max(max).default('');

/** Reads a form body leniently: a missing field is empty, an overlong or non-string one is refused. */
function form<T extends z.ZodRawShape>(shape: T, body: unknown) {
  const parsed = z.object(shape).safeParse(body ?? {});
  return parsed.success ? parsed.data : undefined;
}

/**
 * The HTML sign-in flow: the same state machine as the Authentication API, with the stateToken
 * kept in an HttpOnly cookie instead of in the page.
 */
export function registerSignInPages(app: FastifyInstance, deps: PageRouteDeps): void {
  const { authn, sessions } = deps;
  const startSession = createBrowserSessionStarter(deps);
  const txnCookie = `${deps.cookiePrefix}_txn`;
  const sidCookie = `${deps.cookiePrefix}_sid`;
  const cookieBase = { path: '/', httpOnly: true, secure: deps.secureCookies } as const;

  const deviceCookie = `${deps.cookiePrefix}_device`;
  /**
   * The request context with this browser's device id: a random id in a long-lived cookie, so a
   * sign-in from a browser the user has not used before can be told apart (and notified).
   */
  const deviceContext = (req: FastifyRequest, reply: FastifyReply) => {
    let deviceId = req.cookies[deviceCookie];
    if (!deviceId || !/^[A-Za-z0-9_-]{43}$/.test(deviceId)) {
      deviceId = createBearerSecret();
      // 400 days: the longest lifetime browsers keep a cookie (RFC 6265bis).
      reply.setCookie(deviceCookie, deviceId, { ...cookieBase, sameSite: 'lax', maxAge: 400 * 86_400 });
    }
    return { ...requestContext(req), deviceId };
  };

  const pageCtx = (reply: FastifyReply): PageContext => ({ ...deps.page(), csrfToken: reply.generateCsrf() });

  const setTxn = (reply: FastifyReply, token: string) =>
    reply.setCookie(txnCookie, token, { ...cookieBase, sameSite: 'strict', maxAge: deps.transactionMinutes * 60 });
  const clearTxn = (reply: FastifyReply) => reply.clearCookie(txnCookie, { path: '/' });

  /** Turns a state-machine result into the next page: a redirect, a session, or an error page. */
  async function proceed(
    req: FastifyRequest,
    reply: FastifyReply,
    result: AuthnResult,
    onError: (msg: string) => unknown,
  ) {
    switch (result.kind) {
      case 'transaction':
        setTxn(reply, result.txn.stateToken);
        return reply.redirect('/signin/next', 303);
      case 'success':
        if (!(await startSession(req, reply, result.sessionToken))) {
          return onError('Your sign-in expired. Please sign in again.');
        }
        return reply;
      case 'unlocked':
        clearTxn(reply);
        return sendPage(reply, <UnlockedPage ctx={pageCtx(reply)} user={result.user} />);
      case 'locked':
        clearTxn(reply);
        return sendPage(
          reply,
          <LockedPage
            ctx={pageCtx(reply)}
            minutes={deps.lockoutMinutes}
            supportOnly={(result.user?.lockout_count ?? 0) >= deps.lockoutsBeforeSupportUnlock}
          />,
          403,
        );
      case 'error':
        if (result.error === 'INVALID_TOKEN') {
          clearTxn(reply);
          return sendPage(
            reply,
            <SignInPage ctx={pageCtx(reply)} error="Your sign-in expired or was cancelled. Please sign in again." />,
            401,
          );
        }
        return onError(result.causes?.join(' ') || result.summary || 'That did not work. Please try again.');
    }
  }

  /** Renders the page for the transaction in the cookie. */
  async function renderTransaction(
    req: FastifyRequest,
    reply: FastifyReply,
    errors: { text?: string; chosen?: string } = {},
    status = 200,
  ) {
    const token = req.cookies[txnCookie];
    const result = token ? await authn.getTransaction(token) : undefined;
    if (result?.kind !== 'transaction') {
      clearTxn(reply);
      return reply.redirect('/signin', 303);
    }
    const t = result.txn;
    const ctx = pageCtx(reply);
    switch (t.status) {
      case 'PASSWORD_RESET':
        return sendPage(
          reply,
          <PasswordSetupPage
            ctx={ctx}
            user={t.user}
            minLength={deps.passwordMinLength}
            mode={t.flow === 'activation' ? 'activation' : 'recovery'}
            errors={errors.text ? { form: errors.text } : {}}
          />,
          status,
        );
      case 'RECOVERY':
        return sendPage(
          reply,
          <RecoveryQuestionPage
            ctx={ctx}
            user={t.user}
            question={t.recoveryQuestion ?? ''}
            kind={t.flow === 'recovery_unlock' ? 'unlock' : 'password'}
            error={errors.text}
          />,
          status,
        );
      case 'MFA_ENROLL': {
        const support = authn.webauthnSupport;
        const retiredSince = { retiredFactorsDate: authn.retiredFactorsDate };
        return sendPage(
          reply,
          <EnrollChoicePage
            ctx={ctx}
            user={t.user}
            choices={authn.enrollableFactors()}
            fastPassUnavailable={support.available ? undefined : support.reason}
            notice={t.retiredFactors ? retiredOnlyNotice(t.retiredFactors, retiredSince) : undefined}
            retiredSince={authn.retiredFactorsDate}
            error={errors.text}
          />,
          status,
        );
      }
      case 'MFA_ENROLL_ACTIVATE': {
        const p = t.pushEnrollment;
        if (p) {
          const qr = p.activation ? await QRCode.toDataURL(p.activation.link, { margin: 1, width: 220 }) : undefined;
          return sendPage(
            reply,
            <EnrollPushPage
              ctx={ctx}
              factorId={p.factor.id}
              activation={p.activation}
              qrDataUrl={qr}
              enrolled={p.factor.status === 'ACTIVE'}
              error={errors.text}
            />,
            status,
          );
        }
        const w = t.webauthnEnrollment;
        if (w) {
          return sendPage(
            reply,
            <EnrollFastPassPage ctx={ctx} factor={w.factor} options={w.options} error={errors.text} />,
            status,
          );
        }
        const e = t.enrollment;
        if (!e) return reply.redirect('/signin', 303);
        const qr = await QRCode.toDataURL(e.otpauthUri, { margin: 1, width: 200 });
        return sendPage(
          reply,
          <EnrollActivatePage
            ctx={ctx}
            factorId={e.factor.id}
            label={e.factor.name}
            sharedSecret={e.sharedSecret}
            qrDataUrl={qr}
            error={errors.text}
          />,
          status,
        );
      }
      case 'MFA_REQUIRED':
      case 'MFA_CHALLENGE': {
        const wanted =
          errors.chosen ??
          (typeof (req.query as Record<string, unknown>)?.factor === 'string'
            ? String((req.query as Record<string, string>).factor)
            : (t.challenge?.factor.id ?? t.push?.factor.id ?? undefined));
        const chosen = t.factors.find((f) => f.id === wanted) ?? t.factors[0];
        if (!chosen) return reply.redirect('/signin', 303);
        if (chosen.factor_type === 'push') {
          return sendPage(
            reply,
            <PushWaitPage
              ctx={ctx}
              user={t.user}
              factor={chosen}
              challenge={t.push?.factor.id === chosen.id ? t.push.challenge : undefined}
              error={errors.text}
            >
              <OtherMethods
                factors={t.factors}
                chosen={chosen}
                href={(f) => `/signin/next?factor=${encodeURIComponent(f.id)}`}
              />
              <CancelForm ctx={ctx} />
            </PushWaitPage>,
            status,
          );
        }
        let fastPassOptions: unknown;
        if (chosen.factor_type === 'webauthn') {
          // The live challenge of this transaction for the factor, or a new one.
          const challenged =
            t.challenge?.factor.id === chosen.id ? result : await authn.challengeWebAuthn(t.stateToken, chosen.id);
          if (challenged.kind !== 'transaction' || !challenged.txn.challenge) {
            const why = challenged.kind === 'error' ? challenged.causes?.join(' ') : undefined;
            return sendPage(
              reply,
              <VerifyPage
                ctx={ctx}
                user={t.user}
                factors={t.factors}
                chosen={chosen}
                error={why || 'FastPass cannot be used here. Choose another method.'}
              />,
              403,
            );
          }
          fastPassOptions = challenged.txn.challenge.options;
        }
        return sendPage(
          reply,
          <VerifyPage
            ctx={ctx}
            user={t.user}
            factors={t.factors}
            chosen={chosen}
            fastPassOptions={fastPassOptions}
            error={errors.text}
          />,
          status,
        );
      }
    }
  }

  app.get('/signin', async (req, reply) => {
    const purpose = (req.query as Record<string, unknown> | undefined)?.for;
    const notice =
      purpose === 'programmatic'
        ? 'To get a refresh token, confirm it is you: sign in again with your password and second factor.'
        : purpose === 'portal'
          ? 'Sign in to continue to the TRAQS website.'
          : undefined;
    return sendPage(reply, <SignInPage ctx={pageCtx(reply)} {...(notice ? { notice } : {})} />);
  });

  app.post('/signin', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = form({ username: formString(254), password: formString(1024) }, req.body);
    const username = body?.username.trim() ?? '';
    // A federated user goes to the firm's IdP whatever was typed as password: it is never checked
    // (issue #8). Unknown and local usernames go on exactly as before (no new enumeration).
    if (body && username && deps.federatedSignIn) {
      if (await deps.federatedSignIn(req, reply, username)) return reply;
    }
    if (!body || !username || !body.password) {
      return sendPage(
        reply,
        <SignInPage ctx={pageCtx(reply)} username={username} error="Enter your username and password." />,
        400,
      );
    }
    const result = await authn.primaryAuth(username, body.password, deviceContext(req, reply));
    return proceed(req, reply, result, () =>
      // One message for unknown user and wrong password (no user enumeration).
      sendPage(
        reply,
        <SignInPage
          ctx={pageCtx(reply)}
          username={username}
          error="Sign-in failed. Check your username and password."
        />,
        401,
      ),
    );
  });

  app.get('/signin/next', async (req, reply) => renderTransaction(req, reply));

  app.post('/signin/password', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = form(
      { newPassword: formString(1024), recoveryQuestion: formString(200), recoveryAnswer: formString(200) },
      req.body,
    );
    const token = req.cookies[txnCookie] ?? '';
    if (!body) return renderTransaction(req, reply, {}, 400);
    const result = await authn.resetPassword(
      token,
      { newPassword: body.newPassword, recoveryQuestion: body.recoveryQuestion, recoveryAnswer: body.recoveryAnswer },
      requestContext(req),
    );
    if (result.kind === 'error' && (result.error === 'PASSWORD_POLICY' || result.error === 'VALIDATION')) {
      const txn = await authn.getTransaction(token);
      if (txn.kind !== 'transaction') return reply.redirect('/signin', 303);
      const causes = result.causes ?? [];
      const errors =
        result.error === 'PASSWORD_POLICY'
          ? { password: causes.join(' ') }
          : {
              question: causes.filter((c) => /question/i.test(c)).join(' ') || undefined,
              answer: causes.filter((c) => !/question/i.test(c)).join(' ') || undefined,
            };
      return sendPage(
        reply,
        <PasswordSetupPage
          ctx={pageCtx(reply)}
          user={txn.txn.user}
          minLength={deps.passwordMinLength}
          mode={txn.txn.flow === 'activation' ? 'activation' : 'recovery'}
          errors={errors}
          question={body.recoveryQuestion}
        />,
        400,
      );
    }
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg }, 400));
  });

  app.post('/signin/enroll', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = form({ factorType: formString(60), provider: formString(40) }, req.body);
    const result = await authn.enrollFactor(
      req.cookies[txnCookie] ?? '',
      body?.factorType ?? '',
      body?.provider ?? '',
      requestContext(req),
    );
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg }, 400));
  });

  app.post('/signin/enroll/back', { preHandler: app.csrfProtection }, async (req, reply) => {
    const result = await authn.previous(req.cookies[txnCookie] ?? '');
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg }, 400));
  });

  const passCodeForm = (req: FastifyRequest) => form({ factorId: formString(40), passCode: formString(20) }, req.body);

  app.post('/signin/enroll/activate', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = passCodeForm(req);
    const result = await authn.verifyPasscode(
      req.cookies[txnCookie] ?? '',
      body?.factorId ?? '',
      body?.passCode ?? '',
      'activate',
      deviceContext(req, reply),
    );
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg }, 403));
  });

  app.post('/signin/verify', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = passCodeForm(req);
    const result = await authn.verifyPasscode(
      req.cookies[txnCookie] ?? '',
      body?.factorId ?? '',
      body?.passCode ?? '',
      'verify',
      deviceContext(req, reply),
    );
    return proceed(req, reply, result, (msg) =>
      renderTransaction(req, reply, { text: msg, ...(body?.factorId ? { chosen: body.factorId } : {}) }, 403),
    );
  });

  // Push: send, resend, and "I approved — continue" (also what the waiting script submits).
  const factorForm = (req: FastifyRequest) => form({ factorId: formString(40) }, req.body);
  for (const [path, mode] of [
    ['/signin/verify/push', 'verify'],
    ['/signin/verify/push/resend', 'resend'],
    ['/signin/verify/push/check', 'check'],
  ] as const) {
    app.post(path, { preHandler: app.csrfProtection }, async (req, reply) => {
      const body = factorForm(req);
      const result = await authn.verifyPush(
        req.cookies[txnCookie] ?? '',
        body?.factorId ?? '',
        deviceContext(req, reply),
        mode,
      );
      return proceed(req, reply, result, (msg) =>
        renderTransaction(req, reply, { text: msg, ...(body?.factorId ? { chosen: body.factorId } : {}) }, 429),
      );
    });
  }

  app.post('/signin/enroll/push/check', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = factorForm(req);
    const result = await authn.pollPushActivation(
      req.cookies[txnCookie] ?? '',
      body?.factorId ?? '',
      deviceContext(req, reply),
    );
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg }, 403));
  });

  // What the waiting script polls: the state of this browser's push or push enrollment, nothing more.
  app.get('/signin/push/status', async (req, reply) => {
    const token = req.cookies[txnCookie];
    const result = token ? await authn.getTransaction(token) : undefined;
    const t = result?.kind === 'transaction' ? result.txn : undefined;
    let state = result?.kind === 'locked' ? 'LOCKED_OUT' : 'GONE';
    if (t?.push) state = t.push.challenge?.status ?? 'GONE';
    else if (t?.pushEnrollment) {
      state =
        t.pushEnrollment.factor.status === 'ACTIVE' ? 'APPROVED' : t.pushEnrollment.activation ? 'WAITING' : 'TIMEOUT';
    }
    return reply.type('application/json').send({ status: state });
  });

  // FastPass: the browser's answer to the options on the page, as JSON in `response`.
  const fastPassForm = (req: FastifyRequest) =>
    form({ factorId: formString(40), response: formString(RESPONSE_FIELD_MAX) }, req.body);
  const noAnswer = 'FastPass did not answer. Choose the button and follow the prompt of your computer.';

  app.post('/signin/enroll/webauthn', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = fastPassForm(req);
    const registration = body ? parseRegistrationJson(body.response) : undefined;
    if (!body || !registration) return renderTransaction(req, reply, { text: noAnswer }, 400);
    const result = await authn.activateWebAuthn(
      req.cookies[txnCookie] ?? '',
      body.factorId,
      registration,
      deviceContext(req, reply),
    );
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg }, 403));
  });

  app.post('/signin/verify/webauthn', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = fastPassForm(req);
    const assertion = body ? parseAssertionJson(body.response) : undefined;
    const chosen = body?.factorId ? { chosen: body.factorId } : {};
    if (!body || !assertion) return renderTransaction(req, reply, { text: noAnswer, ...chosen }, 400);
    const result = await authn.verifyWebAuthn(
      req.cookies[txnCookie] ?? '',
      body.factorId,
      assertion,
      deviceContext(req, reply),
    );
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg, ...chosen }, 403));
  });

  app.post('/signin/cancel', { preHandler: app.csrfProtection }, async (req, reply) => {
    const token = req.cookies[txnCookie];
    if (token) await authn.cancel(token, requestContext(req));
    clearTxn(reply);
    return reply.redirect('/signin', 303);
  });

  // Opening the emailed link only shows a page (mail scanners follow links); the POST uses it.
  app.get('/activate', async (req, reply) => {
    const token = (req.query as Record<string, unknown>)?.token;
    if (typeof token !== 'string' || token.length > 200 || !token) {
      return sendPage(reply, <LinkInvalidPage ctx={pageCtx(reply)} reason="unknown" />, 404);
    }
    const state = await authn.inspectActivationToken(token);
    if (state !== 'valid') return sendPage(reply, <LinkInvalidPage ctx={pageCtx(reply)} reason={state} />, 410);
    return sendPage(reply, <ActivatePage ctx={pageCtx(reply)} token={token} />);
  });

  app.post('/activate', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = form({ token: formString(200) }, req.body);
    const token = body?.token ?? '';
    const state = token ? await authn.inspectActivationToken(token) : 'unknown';
    if (state !== 'valid') return sendPage(reply, <LinkInvalidPage ctx={pageCtx(reply)} reason={state} />, 410);
    const result = await authn.startActivation(token, requestContext(req));
    return proceed(req, reply, result, () =>
      sendPage(reply, <LinkInvalidPage ctx={pageCtx(reply)} reason="unknown" />, 410),
    );
  });

  for (const kind of ['password', 'unlock'] as const) {
    const path = kind === 'password' ? '/signin/forgot-password' : '/signin/unlock';
    app.get(path, async (_req, reply) => sendPage(reply, <RecoveryRequestPage ctx={pageCtx(reply)} kind={kind} />));
    app.post(path, { preHandler: app.csrfProtection }, async (req, reply) => {
      const body = form({ username: formString(254) }, req.body);
      const username = body?.username.trim() ?? '';
      if (!username) {
        return sendPage(
          reply,
          <RecoveryRequestPage ctx={pageCtx(reply)} kind={kind} error="Enter your username." />,
          400,
        );
      }
      // Same page whether or not the account exists (no enumeration); the email follows.
      const { settled } = authn.requestRecovery(username, kind, requestContext(req));
      settled.catch((err: unknown) => req.log.error({ err }, 'recovery request failed'));
      return sendPage(reply, <RecoveryRequestPage ctx={pageCtx(reply)} kind={kind} sent />);
    });
  }

  app.get('/recover', async (req, reply) => {
    const token = (req.query as Record<string, unknown>)?.token;
    if (typeof token !== 'string' || !token || token.length > 200) {
      return sendPage(reply, <LinkInvalidPage ctx={pageCtx(reply)} reason="unknown" kind="recovery" />, 404);
    }
    const { state, kind } = await authn.inspectRecoveryToken(token);
    if (state !== 'valid' || !kind) {
      return sendPage(
        reply,
        <LinkInvalidPage ctx={pageCtx(reply)} reason={state === 'valid' ? 'unknown' : state} kind="recovery" />,
        410,
      );
    }
    return sendPage(reply, <RecoverPage ctx={pageCtx(reply)} token={token} kind={kind} />);
  });

  app.post('/recover', { preHandler: app.csrfProtection }, async (req, reply) => {
    const token = form({ token: formString(200) }, req.body)?.token ?? '';
    const result = token ? await authn.startRecovery(token, requestContext(req)) : undefined;
    if (!result || (result.kind === 'error' && result.error === 'INVALID_TOKEN')) {
      return sendPage(reply, <LinkInvalidPage ctx={pageCtx(reply)} reason="unknown" kind="recovery" />, 410);
    }
    return proceed(req, reply, result, (msg) =>
      sendPage(reply, <RecoveryRequestPage ctx={pageCtx(reply)} kind="password" error={msg} />, 403),
    );
  });

  app.post('/signin/recovery-answer', { preHandler: app.csrfProtection }, async (req, reply) => {
    const answer = form({ answer: formString(200) }, req.body)?.answer ?? '';
    const result = await authn.answerRecovery(req.cookies[txnCookie] ?? '', answer, requestContext(req));
    if (result.kind === 'error' && result.error === 'INVALID_TOKEN' && result.summary) {
      clearTxn(reply);
      return sendPage(reply, <LinkInvalidPage ctx={pageCtx(reply)} reason="used" kind="recovery" />, 410);
    }
    return proceed(req, reply, result, (msg) => renderTransaction(req, reply, { text: msg }, 403));
  });

  app.post('/signout', { preHandler: app.csrfProtection }, async (req, reply) => {
    await sessions.end(req.cookies[sidCookie]);
    reply.clearCookie(sidCookie, { path: '/' });
    clearTxn(reply);
    return sendPage(reply, <SignInPage ctx={pageCtx(reply)} notice="You have signed out." />);
  });
}
