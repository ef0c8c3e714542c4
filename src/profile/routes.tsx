import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import { z } from 'zod';
import { PushSetupPage } from '../authn/factors/push/views.tsx';
import { parseAssertionJson, parseRegistrationJson, RESPONSE_FIELD_MAX } from '../authn/factors/webauthn/inputs.ts';
import type { SessionManager } from '../authn/sessions.ts';
import { SignInPage } from '../authn/views.tsx';
import { AppError } from '../web/errors.ts';
import type { PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';
import { requestContext } from '../web/validate.ts';
import { type ContactForm, type DoneCode, ProfileHome, parseDone } from './home.tsx';
import type { ProfileService, Who } from './service.ts';
import {
  AddMethodPage,
  ChangePasswordPage,
  ChangeQuestionPage,
  RemoveMethodPage,
  SetupFastPassPage,
  SetupMethodPage,
  VerifyItsYouPage,
} from './views.tsx';

/** What the profile pages need: the service, sessions and how pages are framed. */
export interface ProfileRouteDeps {
  profile: ProfileService;
  sessions: SessionManager;
  sidCookie: string;
  passwordMinLength: number;
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
}

const formString = (max: number) => z.string().max(max).default('');

/** Reads a form body leniently: a missing field is empty, an overlong or non-string one is refused. */
function form<T extends z.ZodRawShape>(shape: T, body: unknown) {
  const parsed = z.object(shape).safeParse(body ?? {});
  return parsed.success ? parsed.data : undefined;
}

const FACTOR_ID = /^[A-Za-z0-9]{1,40}$/;

/**
 * Where "Verify it's you" may continue to: only the pages that ask for it, so the parameter
 * cannot redirect anywhere else (OWASP Unvalidated Redirects Cheat Sheet).
 */
const NEXT = /^\/profile\/(?:factors\/add|factors\/[A-Za-z0-9]{1,40}\/remove|password|recovery-question)$/;

/** A validated `next` path, or undefined. */
function parseNext(value: unknown): string | undefined {
  return typeof value === 'string' && NEXT.test(value) ? value : undefined;
}

/** What the user is about to do at `next`, as the verify page says it. */
function purposeOf(next: string): string {
  if (next === '/') return 'continue';
  if (next === '/profile/factors/add') return 'add a security method';
  if (next.endsWith('/remove')) return 'remove a security method';
  if (next === '/profile/password') return 'change your password';
  return 'change your recovery question';
}

const verifyUrl = (next: string) => `/profile/verify?next=${encodeURIComponent(next)}`;

const FASTPASS_NO_ANSWER = 'FastPass did not answer. Choose the button and follow the prompt of your computer.';

/**
 * The MFA profile at `/` and its forms under `/profile/`. Every route needs a live session
 * (otherwise `/signin`); every form carries a CSRF token; adding or removing a method and changing
 * the password or recovery question need a factor verified in the last 5 minutes.
 */
export function registerProfile(app: FastifyInstance, deps: ProfileRouteDeps): void {
  const { profile } = deps;
  const signedIn = new WeakMap<FastifyRequest, Who>();

  const pageCtx = (reply: FastifyReply, who: Who): PageContext => ({
    ...deps.page(),
    csrfToken: reply.generateCsrf(),
    signedInAs: who.user.login,
  });

  /** preHandler: resumes the session; without one, the browser is sent to sign in. */
  async function requireSignIn(req: FastifyRequest, reply: FastifyReply) {
    const session = await deps.sessions.resume(req.cookies[deps.sidCookie]);
    const user = session ? await profile.findSignedInUser(session) : undefined;
    if (!session || !user) return reply.redirect('/signin', 303);
    signedIn.set(req, { user, session });
  }
  const who = (req: FastifyRequest): Who => {
    const w = signedIn.get(req);
    if (!w) throw new AppError('INTERNAL');
    return w;
  };
  const get = { preHandler: requireSignIn };
  // The CSRF check first, as on every form: a forged post is refused (403) before anything else;
  // a real form whose session ended meanwhile carries a valid token and is sent to sign in.
  const post = { preHandler: [app.csrfProtection, requireSignIn] };

  /** Sends the browser to "Verify it's you" unless the session verified a factor recently. */
  function needsVerification(reply: FastifyReply, w: Who, next: string): boolean {
    if (profile.isRecentlyVerified(w.session)) return false;
    reply.redirect(verifyUrl(next), 303);
    return true;
  }

  /** Too many failed attempts ended the session: say so on the sign-in page. */
  function signedOut(reply: FastifyReply) {
    reply.clearCookie(deps.sidCookie, { path: '/' });
    return sendPage(
      reply,
      <SignInPage
        ctx={{ ...deps.page(), csrfToken: reply.generateCsrf() }}
        error="You were signed out after too many failed attempts, and your account is locked. We emailed you a link to unlock it; it also unlocks by itself after a while."
      />,
      403,
    );
  }

  async function renderHome(
    req: FastifyRequest,
    reply: FastifyReply,
    options: { done?: DoneCode | undefined; contact?: ContactForm } = {},
    status = 200,
  ) {
    const w = who(req);
    const data = await profile.dashboard(w);
    return sendPage(
      reply,
      <ProfileHome
        ctx={pageCtx(reply, w)}
        user={w.user}
        data={data}
        currentSession={w.session.id_hash}
        done={options.done}
        contact={options.contact}
      />,
      status,
    );
  }

  app.get('/', get, async (req, reply) =>
    renderHome(req, reply, { done: parseDone((req.query as Record<string, unknown>)?.done) }),
  );

  app.post('/profile/contact', post, async (req, reply) => {
    const body = form({ mobilePhone: formString(1000), primaryPhone: formString(1000) }, req.body);
    if (!body) {
      const message = 'Enter one phone number of at most 40 characters.';
      return renderHome(
        req,
        reply,
        {
          contact: {
            values: { mobilePhone: '', primaryPhone: '' },
            errors: { mobilePhone: message, primaryPhone: message },
          },
        },
        400,
      );
    }
    const result = await profile.updateContactDetails(who(req), body, requestContext(req));
    if (result.kind === 'invalid') {
      return renderHome(req, reply, { contact: { values: body, errors: result.errors } }, 400);
    }
    return reply.redirect('/?done=contact', 303);
  });

  app.post('/profile/preferences', post, async (req, reply) => {
    const body = form({ autoPush: formString(10) }, req.body);
    await profile.setAutoPush(who(req), body?.autoPush === 'on', requestContext(req));
    return reply.redirect('/?done=preferences', 303);
  });

  app.post('/profile/sessions/sign-out-others', post, async (req, reply) => {
    await profile.signOutOtherSessions(who(req), requestContext(req));
    return reply.redirect('/?done=sessions', 303);
  });

  // "Verify it's you"
  async function renderVerify(
    req: FastifyRequest,
    reply: FastifyReply,
    next: string,
    options: { factorId?: string | undefined; error?: string | undefined } = {},
    status = 200,
  ) {
    const w = who(req);
    const factors = await profile.verificationFactors(w.user);
    const chosen = factors.find((f) => f.id === options.factorId) ?? factors[0];
    const fastPassOptions =
      chosen?.factor_type === 'webauthn' ? await profile.reverifyOptions(w, chosen.id) : undefined;
    return sendPage(
      reply,
      <VerifyItsYouPage
        ctx={pageCtx(reply, w)}
        user={w.user}
        factors={factors}
        chosen={chosen}
        fastPassOptions={fastPassOptions}
        next={next}
        purpose={purposeOf(next)}
        error={options.error}
      />,
      status,
    );
  }

  app.get('/profile/verify', get, async (req, reply) => {
    const query = (req.query ?? {}) as Record<string, unknown>;
    const next = parseNext(query.next);
    if (!next) return reply.redirect('/', 303);
    if (profile.isRecentlyVerified(who(req).session)) return reply.redirect(next, 303);
    return renderVerify(req, reply, next, { factorId: typeof query.factor === 'string' ? query.factor : undefined });
  });

  app.post('/profile/verify', post, async (req, reply) => {
    const body = form(
      {
        factorId: formString(40),
        passCode: formString(20),
        response: formString(RESPONSE_FIELD_MAX),
        next: formString(200),
      },
      req.body,
    );
    const next = parseNext(body?.next) ?? '/';
    // FastPass posts the browser's answer in `response`; a code factor posts `passCode`.
    const assertion = body?.response ? parseAssertionJson(body.response) : undefined;
    if (body?.response && !assertion) {
      return renderVerify(req, reply, next, { factorId: body.factorId, error: FASTPASS_NO_ANSWER }, 400);
    }
    const result = assertion
      ? await profile.reverifyWithFastPass(who(req), body?.factorId ?? '', assertion, requestContext(req))
      : await profile.reverify(who(req), body?.factorId ?? '', body?.passCode ?? '', requestContext(req));
    switch (result.kind) {
      case 'verified':
        return reply.redirect(next, 303);
      case 'signed-out':
        return signedOut(reply);
      case 'retry':
        return renderVerify(req, reply, next, { factorId: body?.factorId, error: result.error }, 403);
    }
  });

  // Adding a method: choose the app, scan, confirm with a code.
  app.get('/profile/factors/add', get, async (req, reply) => {
    const w = who(req);
    if (needsVerification(reply, w, '/profile/factors/add')) return reply;
    return sendPage(reply, addMethodPage(reply, w));
  });

  const addMethodPage = (reply: FastifyReply, w: Who, error?: string) => {
    const support = profile.webauthnSupport;
    return (
      <AddMethodPage
        ctx={pageCtx(reply, w)}
        choices={profile.enrollableFactors()}
        fastPassUnavailable={support.available ? undefined : support.reason}
        retiredSince={profile.retiredFactorsDate}
        error={error}
      />
    );
  };

  app.post('/profile/factors/add', post, async (req, reply) => {
    const w = who(req);
    if (needsVerification(reply, w, '/profile/factors/add')) return reply;
    const body = form({ provider: formString(40), factorType: formString(60) }, req.body);
    const result = await profile.startEnrollment(
      w,
      body?.provider ?? '',
      requestContext(req),
      body?.factorType || undefined,
    );
    if (result.kind === 'invalid') return sendPage(reply, addMethodPage(reply, w, result.error), 400);
    return reply.redirect(`/profile/factors/${result.factorId}/activate`, 303);
  });

  const factorIdOf = (req: FastifyRequest): string => {
    const id = (req.params as Record<string, unknown>).id;
    if (typeof id !== 'string' || !FACTOR_ID.test(id)) throw new AppError('NOT_FOUND', [], 'No such security method.');
    return id;
  };

  async function renderSetup(req: FastifyRequest, reply: FastifyReply, error?: string) {
    const w = who(req);
    const push = await profile.pushSetup(w, factorIdOf(req));
    if (push) {
      if (push.enrolled) return reply.redirect('/?done=factor-added', 303);
      const qr = push.activation ? await QRCode.toDataURL(push.activation.link, { margin: 1, width: 220 }) : undefined;
      return sendPage(
        reply,
        <PushSetupPage ctx={pageCtx(reply, w)} factorId={push.factor.id} activation={push.activation} qrDataUrl={qr} />,
      );
    }
    const fastPass = await profile.pendingFastPass(w, factorIdOf(req));
    if (fastPass) {
      return sendPage(
        reply,
        <SetupFastPassPage ctx={pageCtx(reply, w)} pending={fastPass} error={error} />,
        error ? 403 : 200,
      );
    }
    const enrollment = await profile.pendingEnrollment(w, factorIdOf(req));
    // Expired or already finished: start again from the choice.
    if (!enrollment) return reply.redirect('/profile/factors/add', 303);
    const qr = await QRCode.toDataURL(enrollment.otpauthUri, { margin: 1, width: 200 });
    return sendPage(
      reply,
      <SetupMethodPage ctx={pageCtx(reply, w)} enrollment={enrollment} qrDataUrl={qr} error={error} />,
      error ? 403 : 200,
    );
  }

  // Not behind the 5-minute window: the verified step that created the pending factor authorises
  // finishing it for as long as it lives (the transaction lifetime, as at sign-in).
  app.get('/profile/factors/:id/activate', get, async (req, reply) => renderSetup(req, reply));

  // What the push setup page's script polls: has the device enrolled yet?
  app.get('/profile/factors/:id/status', get, async (req, reply) => {
    const push = await profile.pushSetup(who(req), factorIdOf(req));
    const status = !push ? 'GONE' : push.enrolled ? 'APPROVED' : push.activation ? 'WAITING' : 'TIMEOUT';
    return reply.type('application/json').send({ status });
  });

  app.post('/profile/factors/:id/activate', post, async (req, reply) => {
    const body = form({ passCode: formString(20), response: formString(RESPONSE_FIELD_MAX) }, req.body);
    const factorId = factorIdOf(req);
    // Push: the device enrolls itself; this only continues once it has.
    if (await profile.pushSetup(who(req), factorId)) return renderSetup(req, reply);
    let result: Awaited<ReturnType<ProfileService['activateEnrollment']>>;
    if (await profile.isPendingFastPass(who(req), factorId)) {
      const registration = body?.response ? parseRegistrationJson(body.response) : undefined;
      result = registration
        ? await profile.activateFastPass(who(req), factorId, registration, requestContext(req))
        : { kind: 'retry', error: FASTPASS_NO_ANSWER };
    } else {
      result = await profile.activateEnrollment(who(req), factorId, body?.passCode ?? '', requestContext(req));
    }
    switch (result.kind) {
      case 'activated':
        return reply.redirect('/?done=factor-added', 303);
      case 'gone':
        return reply.redirect('/profile/factors/add', 303);
      case 'retry':
        return renderSetup(req, reply, result.error);
    }
  });

  // Removing a method (a lost device), with a confirmation page.
  async function removable(req: FastifyRequest) {
    const preview = await profile.removalPreview(who(req), factorIdOf(req));
    // Another user's factor id looks exactly like one that does not exist.
    if (!preview) throw new AppError('NOT_FOUND', [], 'No such security method.');
    return preview;
  }

  app.get('/profile/factors/:id/remove', get, async (req, reply) => {
    const w = who(req);
    const { factor, alsoRemoved, isLast } = await removable(req);
    if (needsVerification(reply, w, `/profile/factors/${factor.id}/remove`)) return reply;
    return sendPage(
      reply,
      <RemoveMethodPage ctx={pageCtx(reply, w)} factor={factor} alsoRemoved={alsoRemoved} isLast={isLast} />,
    );
  });

  app.post('/profile/factors/:id/remove', post, async (req, reply) => {
    const w = who(req);
    const { factor } = await removable(req);
    if (needsVerification(reply, w, `/profile/factors/${factor.id}/remove`)) return reply;
    const result = await profile.removeFactor(w, factor.id, requestContext(req));
    if (result.kind === 'not-found') throw new AppError('NOT_FOUND', [], 'No such security method.');
    return reply.redirect('/?done=factor-removed', 303);
  });

  // Password
  app.get('/profile/password', get, async (req, reply) => {
    const w = who(req);
    if (needsVerification(reply, w, '/profile/password')) return reply;
    return sendPage(
      reply,
      <ChangePasswordPage ctx={pageCtx(reply, w)} user={w.user} minLength={deps.passwordMinLength} />,
    );
  });

  app.post('/profile/password', post, async (req, reply) => {
    const w = who(req);
    if (needsVerification(reply, w, '/profile/password')) return reply;
    const body = form({ currentPassword: formString(1024), newPassword: formString(1024) }, req.body);
    const result = body
      ? await profile.changePassword(w, body, requestContext(req))
      : ({ kind: 'invalid', errors: { newPassword: 'Use at most 1024 characters.' } } as const);
    switch (result.kind) {
      case 'done':
        return reply.redirect('/?done=password', 303);
      case 'signed-out':
        return signedOut(reply);
      case 'invalid':
        return sendPage(
          reply,
          <ChangePasswordPage
            ctx={pageCtx(reply, w)}
            user={w.user}
            minLength={deps.passwordMinLength}
            errors={result.errors}
          />,
          400,
        );
    }
  });

  // Recovery question
  app.get('/profile/recovery-question', get, async (req, reply) => {
    const w = who(req);
    if (needsVerification(reply, w, '/profile/recovery-question')) return reply;
    return sendPage(reply, <ChangeQuestionPage ctx={pageCtx(reply, w)} user={w.user} question="" />);
  });

  app.post('/profile/recovery-question', post, async (req, reply) => {
    const w = who(req);
    if (needsVerification(reply, w, '/profile/recovery-question')) return reply;
    const body = form({ recoveryQuestion: formString(1000), recoveryAnswer: formString(1000) }, req.body);
    const result = await profile.changeRecoveryQuestion(
      w,
      { question: body?.recoveryQuestion ?? '', answer: body?.recoveryAnswer ?? '' },
      requestContext(req),
    );
    if (result.kind === 'done') return reply.redirect('/?done=question', 303);
    return sendPage(
      reply,
      <ChangeQuestionPage
        ctx={pageCtx(reply, w)}
        user={w.user}
        question={body?.recoveryQuestion ?? ''}
        errors={result.errors}
      />,
      400,
    );
  });
}
