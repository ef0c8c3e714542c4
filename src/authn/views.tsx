import type { UserRow } from '../accounts/repository.ts';
import { Csrf, Field, Layout, type PageContext } from '../web/layout.tsx';
import type { FactorRow } from './factors/repository.ts';
import {
  FASTPASS_SCRIPT,
  FactorChoices,
  FastPassForm,
  factorLabel,
  NewPasswordField,
  OtherMethods,
  PassCodeField,
  TotpSetup,
} from './factors/views.tsx';
import type { EnrollableFactor } from './service.ts';

export function SignInPage(props: { ctx: PageContext; username?: string; error?: string; notice?: string }) {
  return (
    <Layout ctx={props.ctx} title="Sign in">
      <div class="card">
        <h1>Sign in</h1>
        {props.notice ? <p class="notice">{props.notice}</p> : null}
        {props.error ? (
          <p class="alert" role="alert" id="signin-error">
            {props.error}
          </p>
        ) : null}
        <form method="post" action="/signin" novalidate>
          <Csrf ctx={props.ctx} />
          <Field
            name="username"
            label="Username (your email address)"
            type="email"
            autocomplete="username"
            value={props.username ?? ''}
            maxLength={254}
          />
          <Field name="password" label="Password" type="password" autocomplete="current-password" maxLength={1024} />
          <button type="submit">Sign in</button>
        </form>
        <p class="hint">
          Does your firm sign you in with its own single sign-on? Enter your username and choose Sign in: you will be
          sent to your firm's sign-in page, no password needed here.
        </p>
        <p class="links">
          <a href="/signin/forgot-password">Forgot password?</a> · <a href="/signin/unlock">Unlock account?</a>
        </p>
      </div>
    </Layout>
  );
}

export function ActivatePage(props: { ctx: PageContext; token: string }) {
  return (
    <Layout ctx={props.ctx} title="Activate your account">
      <div class="card">
        <h1>Activate your account</h1>
        <p>
          Welcome. You will choose a password and a recovery question, then set up a second sign-in factor (an
          authenticator app on your phone). It takes about five minutes.
        </p>
        <form method="post" action="/activate">
          <Csrf ctx={props.ctx} />
          <input type="hidden" name="token" value={props.token} />
          <button type="submit">Start activation</button>
        </form>
      </div>
    </Layout>
  );
}

export function LinkInvalidPage(props: {
  ctx: PageContext;
  reason: 'expired' | 'used' | 'unknown';
  kind?: 'activation' | 'recovery';
}) {
  const c = props.ctx.contacts;
  if (props.kind === 'recovery') {
    return (
      <Layout ctx={props.ctx} title="Link no longer valid">
        <div class="card">
          <h1>This link is no longer valid</h1>
          <p class="alert" role="alert">
            {props.reason === 'expired'
              ? 'Unlock and password-reset links expire 8 hours after they are sent.'
              : props.reason === 'used'
                ? 'This link has already been used.'
                : 'This link is not valid.'}
          </p>
          <p>
            Request a new one: <a href="/signin/forgot-password">Forgot password?</a> or{' '}
            <a href="/signin/unlock">Unlock account?</a> A locked account also unlocks by itself after 15 minutes. If
            you do not know your recovery answer, call {c.techSupportName} at {c.techSupportPhone}.
          </p>
        </div>
      </Layout>
    );
  }
  return (
    <Layout ctx={props.ctx} title="Link no longer valid">
      <div class="card">
        <h1>This activation link is no longer valid</h1>
        <p class="alert" role="alert">
          {props.reason === 'expired'
            ? 'Your activation token is no longer valid: enrollment links expire 30 days after the email was sent.'
            : props.reason === 'used'
              ? 'Your activation token is no longer valid: this link has already been used.'
              : 'Your activation token is no longer valid.'}
        </p>
        <p>
          To receive a new enrollment email, contact {c.operationsName} at {c.operationsPhone} or{' '}
          <a href={`mailto:${c.operationsEmail}`}>{c.operationsEmail}</a>. If you already activated your account,{' '}
          <a href="/signin">sign in</a>.
        </p>
      </div>
    </Layout>
  );
}

export function PasswordSetupPage(props: {
  ctx: PageContext;
  user: UserRow;
  minLength: number;
  /** Activation asks for the recovery question too; password recovery does not. */
  mode?: 'activation' | 'recovery';
  errors?: { password?: string; question?: string; answer?: string; form?: string };
  question?: string;
}) {
  const e = props.errors ?? {};
  return (
    <Layout ctx={props.ctx} title="Set your password">
      <div class="card">
        <h1>{props.mode === 'recovery' ? 'Choose a new password' : 'Set your password'}</h1>
        <p>
          Account: <strong>{props.user.login}</strong>
        </p>
        {e.form ? (
          <p class="alert" role="alert">
            {e.form}
          </p>
        ) : null}
        <form method="post" action="/signin/password" novalidate>
          <Csrf ctx={props.ctx} />
          {/* Lets password managers store the new password under the right username. */}
          <input type="hidden" name="username" autocomplete="username" value={props.user.login} />
          <NewPasswordField minLength={props.minLength} error={e.password} />
          {props.mode === 'recovery' ? null : (
            <>
              <h2>Recovery question</h2>
              <p class="hint">Used to confirm it is you if you forget your password or your account is locked.</p>
              <Field
                name="recoveryQuestion"
                label="Question"
                autocomplete="off"
                value={props.question ?? ''}
                error={e.question}
                maxLength={200}
              />
              <Field
                name="recoveryAnswer"
                label="Answer"
                type="password"
                autocomplete="off"
                error={e.answer}
                maxLength={200}
              />
            </>
          )}
          <button type="submit">Continue</button>
        </form>
      </div>
    </Layout>
  );
}

export function EnrollChoicePage(props: {
  ctx: PageContext;
  user: UserRow;
  choices: readonly EnrollableFactor[];
  /** Why FastPass is not offered, when it is not. */
  fastPassUnavailable?: string | undefined;
  /** Why the user is here although they had a method (it was retired). */
  notice?: string | undefined;
  /** `policy.retiredFactorsDate`. */
  retiredSince: string;
  error?: string | undefined;
}) {
  return (
    <Layout ctx={props.ctx} title="Set up multifactor authentication">
      <div class="card">
        <h1>Set up multifactor authentication</h1>
        {props.notice ? (
          <p class="notice" id="retired-notice" role="status">
            {props.notice}
          </p>
        ) : null}
        <p>
          A second factor is required for every sign-in. Choose a method; you can add more later from your profile. We
          recommend enrolling more than one so a lost phone or computer does not lock you out.
        </p>
        {props.error ? (
          <p class="alert" role="alert">
            {props.error}
          </p>
        ) : null}
        <FactorChoices
          ctx={props.ctx}
          action="/signin/enroll"
          choices={props.choices}
          withFactorType
          fastPassUnavailable={props.fastPassUnavailable}
        />
        <p class="hint">
          SMS and voice call authentication were retired on {props.retiredSince} and cannot be enrolled.
        </p>
        <CancelForm ctx={props.ctx} />
      </div>
    </Layout>
  );
}

/** Setting up FastPass at sign-in: one button, then the computer's own prompt. */
export function EnrollFastPassPage(props: {
  ctx: PageContext;
  factor: FactorRow;
  options: unknown;
  error?: string | undefined;
}) {
  return (
    <Layout ctx={props.ctx} title="Set up FastPass" scripts={[FASTPASS_SCRIPT]}>
      <div class="card">
        <h1>Set up FastPass</h1>
        <ol>
          <li>Choose the button below.</li>
          <li>
            Your computer asks you to confirm it is you: Windows Hello (face, fingerprint or PIN), Touch ID, or your
            device PIN.
          </li>
          <li>From then on, sign in on this computer by confirming the same way. It works only on this computer.</li>
        </ol>
        <FastPassForm
          ctx={props.ctx}
          action="/signin/enroll/webauthn"
          mode="register"
          options={props.options}
          buttonLabel="Set up FastPass on this computer"
          error={props.error}
        >
          <input type="hidden" name="factorId" value={props.factor.id} />
        </FastPassForm>
        <ChooseAnotherMethodForm ctx={props.ctx} />
      </div>
    </Layout>
  );
}

export function EnrollActivatePage(props: {
  ctx: PageContext;
  factorId: string;
  label: string;
  sharedSecret: string;
  qrDataUrl: string;
  error?: string;
}) {
  return (
    <Layout ctx={props.ctx} title={`Set up ${props.label}`}>
      <div class="card">
        <h1>Set up {props.label}</h1>
        <TotpSetup
          ctx={props.ctx}
          sharedSecret={props.sharedSecret}
          qrDataUrl={props.qrDataUrl}
          action="/signin/enroll/activate"
          error={props.error}
        >
          <input type="hidden" name="factorId" value={props.factorId} />
        </TotpSetup>
        <ChooseAnotherMethodForm ctx={props.ctx} />
      </div>
    </Layout>
  );
}

export function VerifyPage(props: {
  ctx: PageContext;
  user: UserRow;
  factors: FactorRow[];
  chosen: FactorRow;
  /** For a FastPass factor: the options for `navigator.credentials.get()`. */
  fastPassOptions?: unknown;
  error?: string | undefined;
}) {
  const fastPass = props.fastPassOptions !== undefined;
  return (
    <Layout ctx={props.ctx} title="Verify it's you" scripts={fastPass ? [FASTPASS_SCRIPT] : []}>
      <div class="card">
        <h1>Verify it's you</h1>
        {fastPass ? (
          <>
            <p>
              Signing in as <strong>{props.user.login}</strong> with <strong>{factorLabel(props.chosen)}</strong>.
              Choose the button, then confirm with Windows Hello, Touch ID or your device PIN.
            </p>
            <FastPassForm
              ctx={props.ctx}
              action="/signin/verify/webauthn"
              mode="authenticate"
              options={props.fastPassOptions}
              buttonLabel="Sign in with FastPass"
              error={props.error}
            >
              <input type="hidden" name="factorId" value={props.chosen.id} />
            </FastPassForm>
          </>
        ) : (
          <>
            <p>
              Signing in as <strong>{props.user.login}</strong>. Enter the code from{' '}
              <strong>{factorLabel(props.chosen)}</strong>.
            </p>
            <form method="post" action="/signin/verify" novalidate>
              <Csrf ctx={props.ctx} />
              <input type="hidden" name="factorId" value={props.chosen.id} />
              <PassCodeField error={props.error} />
              <button type="submit">Verify</button>
            </form>
          </>
        )}
        <OtherMethods
          factors={props.factors}
          chosen={props.chosen}
          href={(f) => `/signin/next?factor=${encodeURIComponent(f.id)}`}
        />
        <CancelForm ctx={props.ctx} />
      </div>
    </Layout>
  );
}

export function LockedPage(props: { ctx: PageContext; minutes: number; supportOnly: boolean }) {
  const c = props.ctx.contacts;
  if (props.supportOnly) {
    return (
      <Layout ctx={props.ctx} title="Account locked">
        <div class="card">
          <h1>Your account is locked</h1>
          <p class="alert" role="alert">
            The account was locked many times in a row without a successful sign-in, so it no longer unlocks by itself.
          </p>
          <p>
            Call {c.techSupportName} at {c.techSupportPhone} to unlock it.
          </p>
          <p>
            <a href="/signin">Back to sign in</a>
          </p>
        </div>
      </Layout>
    );
  }
  return (
    <Layout ctx={props.ctx} title="Account locked">
      <div class="card">
        <h1>Your account is locked</h1>
        <p class="alert" role="alert">
          Too many sign-in attempts failed, so the account was locked to protect it.
        </p>
        <p>It unlocks by itself {props.minutes} minutes after it was locked. Then sign in again.</p>
        <p>
          To unlock it sooner, use the link in the email we sent you when it was locked (valid 8 hours), or request a
          new one with <a href="/signin/unlock">Unlock account?</a>
        </p>
        <p>
          Don't remember your password or recovery answer? Call {c.techSupportName} at {c.techSupportPhone}.
        </p>
        <p>
          <a href="/signin">Back to sign in</a>
        </p>
      </div>
    </Layout>
  );
}

/** Back from setting up one method to the choice of methods (`/api/v1/authn/previous`). */
export function ChooseAnotherMethodForm({ ctx }: { ctx: PageContext }) {
  return (
    <form method="post" action="/signin/enroll/back">
      <Csrf ctx={ctx} />
      <button type="submit" class="secondary">
        Choose another method
      </button>
    </form>
  );
}

export function CancelForm({ ctx }: { ctx: PageContext }) {
  return (
    <form method="post" action="/signin/cancel">
      <Csrf ctx={ctx} />
      <button type="submit" class="secondary">
        Cancel and sign out
      </button>
    </form>
  );
}

/** "Forgot password?" and "Unlock account?": the username, then the same answer for everyone. */
export function RecoveryRequestPage(props: {
  ctx: PageContext;
  kind: 'password' | 'unlock';
  sent?: boolean;
  error?: string;
}) {
  const title = props.kind === 'password' ? 'Reset your password' : 'Unlock your account';
  return (
    <Layout ctx={props.ctx} title={title}>
      <div class="card">
        <h1>{title}</h1>
        {props.sent ? (
          <>
            <p class="success" role="status">
              If an account with that username can be {props.kind === 'password' ? 'reset' : 'unlocked'}, we have sent
              it an email with a link. The link works once and is valid for 8 hours.
            </p>
            <p>
              Open the link, answer your recovery question, and{' '}
              {props.kind === 'password' ? 'choose a new password.' : 'your account is unlocked.'} Did not get the
              email? Check your spam folder, or call {props.ctx.contacts.techSupportName} at{' '}
              {props.ctx.contacts.techSupportPhone}.
            </p>
          </>
        ) : (
          <form
            method="post"
            action={props.kind === 'password' ? '/signin/forgot-password' : '/signin/unlock'}
            novalidate
          >
            <Csrf ctx={props.ctx} />
            <p>
              Enter your username. We will email you a link to{' '}
              {props.kind === 'password' ? 'reset your password' : 'unlock your account'}.
            </p>
            <Field
              name="username"
              label="Username (your email address)"
              type="email"
              autocomplete="username"
              maxLength={254}
              error={props.error}
            />
            <button type="submit">Send the email</button>
          </form>
        )}
        <p class="links">
          <a href="/signin">Back to sign in</a>
        </p>
      </div>
    </Layout>
  );
}

/** Opening an emailed recovery link: a button, so mail scanners that follow links cannot use it. */
export function RecoverPage(props: { ctx: PageContext; token: string; kind: 'password' | 'unlock' }) {
  const title = props.kind === 'password' ? 'Reset your password' : 'Unlock your account';
  return (
    <Layout ctx={props.ctx} title={title}>
      <div class="card">
        <h1>{title}</h1>
        <p>To continue, confirm it is you.</p>
        <form method="post" action="/recover">
          <Csrf ctx={props.ctx} />
          <input type="hidden" name="token" value={props.token} />
          <button type="submit">Continue</button>
        </form>
      </div>
    </Layout>
  );
}

export function RecoveryQuestionPage(props: {
  ctx: PageContext;
  user: UserRow;
  question: string;
  kind: 'password' | 'unlock';
  error?: string | undefined;
}) {
  return (
    <Layout ctx={props.ctx} title="Answer your recovery question">
      <div class="card">
        <h1>Answer your recovery question</h1>
        <p>
          Account: <strong>{props.user.login}</strong>
        </p>
        <form method="post" action="/signin/recovery-answer" novalidate>
          <Csrf ctx={props.ctx} />
          <p>
            <strong id="recovery-question">{props.question}</strong>
          </p>
          <Field
            name="answer"
            label="Your answer"
            type="password"
            autocomplete="off"
            maxLength={200}
            error={props.error}
          />
          <button type="submit">{props.kind === 'password' ? 'Continue' : 'Unlock account'}</button>
        </form>
        <CancelForm ctx={props.ctx} />
      </div>
    </Layout>
  );
}

export function UnlockedPage(props: { ctx: PageContext; user: UserRow }) {
  return (
    <Layout ctx={props.ctx} title="Account unlocked">
      <div class="card">
        <h1>Your account is unlocked</h1>
        <p class="success" role="status">
          {props.user.login} is unlocked. Sign in with your password and your second factor.
        </p>
        <p>
          <a class="button" href="/signin">
            Sign in
          </a>
        </p>
      </div>
    </Layout>
  );
}
