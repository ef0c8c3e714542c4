import type { UserRow } from '../accounts/repository.ts';
import type { FactorRow } from '../authn/factors/repository.ts';
import {
  FASTPASS_SCRIPT,
  FactorChoices,
  FastPassForm,
  FastPassReverifyForm,
  NewPasswordField,
  OtherMethods,
  PassCodeField,
  TotpSetup,
} from '../authn/factors/views.tsx';
import type { EnrollableFactor } from '../authn/service.ts';
import { Csrf, Field, Layout, type PageContext } from '../web/layout.tsx';
import { describeFactorType, formatTime } from './describe.ts';
import type { FieldErrors, PendingEnrollment, PendingFastPass } from './service.ts';

function BackLink() {
  return (
    <p class="links">
      <a href="/">Cancel and go back to your profile</a>
    </p>
  );
}

function FormError({ error }: { error?: string | undefined }) {
  return error ? (
    <p class="alert" role="alert">
      {error}
    </p>
  ) : null;
}

/** "Verify it's you" before a sensitive change: a current code of an enrolled method. */
export function VerifyItsYouPage(props: {
  ctx: PageContext;
  user: UserRow;
  factors: FactorRow[];
  chosen: FactorRow | undefined;
  /** For a FastPass factor: the options for `navigator.credentials.get()`. */
  fastPassOptions?: unknown;
  next: string;
  /** What the user is about to do, as a verb phrase ("change your password"). */
  purpose: string;
  error?: string | undefined;
}) {
  const { chosen } = props;
  const c = props.ctx.contacts;
  const fastPass = chosen?.factor_type === 'webauthn';
  return (
    <Layout ctx={props.ctx} title="Verify it's you" scripts={fastPass ? [FASTPASS_SCRIPT] : []}>
      <div class="card">
        <h1>Verify it's you</h1>
        {chosen && fastPass ? (
          <>
            <p>
              To {props.purpose}, confirm with <strong>{chosen.name}</strong>: choose the button, then use Windows
              Hello, Touch ID or your device PIN. We ask when you have not verified in the last 5 minutes.
            </p>
            <FastPassReverifyForm
              ctx={props.ctx}
              action="/profile/verify"
              options={props.fastPassOptions}
              factorId={chosen.id}
              next={props.next}
              error={props.error}
            />
            <OtherMethods
              factors={props.factors}
              chosen={chosen}
              href={(f) => `/profile/verify?next=${encodeURIComponent(props.next)}&factor=${encodeURIComponent(f.id)}`}
            />
          </>
        ) : chosen ? (
          <>
            <p>
              To {props.purpose}, enter a current code from <strong>{chosen.name}</strong>. We ask when you have not
              verified in the last 5 minutes.
            </p>
            <form method="post" action="/profile/verify" novalidate>
              <Csrf ctx={props.ctx} />
              <input type="hidden" name="factorId" value={chosen.id} />
              <input type="hidden" name="next" value={props.next} />
              <PassCodeField error={props.error} />
              <button type="submit">Verify</button>
            </form>
            <OtherMethods
              factors={props.factors}
              chosen={chosen}
              href={(f) => `/profile/verify?next=${encodeURIComponent(props.next)}&factor=${encodeURIComponent(f.id)}`}
            />
          </>
        ) : (
          <p class="alert" role="alert">
            You have no security method left to verify with, so you cannot {props.purpose} now. Sign out and sign in
            again: after your password, sign-in asks you to set up a new method. Need help? Call {c.techSupportName} at{' '}
            {c.techSupportPhone}.
          </p>
        )}
        <BackLink />
      </div>
    </Layout>
  );
}

/** Choosing the method to add (SMS and voice are retired). */
export function AddMethodPage(props: {
  ctx: PageContext;
  choices: readonly EnrollableFactor[];
  fastPassUnavailable?: string | undefined;
  /** `policy.retiredFactorsDate`. */
  retiredSince: string;
  error?: string | undefined;
}) {
  return (
    <Layout ctx={props.ctx} title="Add a security method">
      <div class="card">
        <h1>Add a security method</h1>
        <p>
          A second method on another device keeps you able to sign in if you lose your phone or computer. For an
          authenticator app, install the app first, then choose it here.
        </p>
        <FormError error={props.error} />
        <FactorChoices
          ctx={props.ctx}
          action="/profile/factors/add"
          choices={props.choices}
          fastPassUnavailable={props.fastPassUnavailable}
        />
        <p class="hint">SMS and voice call authentication were retired on {props.retiredSince} and cannot be added.</p>
        <BackLink />
      </div>
    </Layout>
  );
}

/** Registering a pending FastPass method on this computer. */
export function SetupFastPassPage(props: { ctx: PageContext; pending: PendingFastPass; error?: string | undefined }) {
  const { factor, options } = props.pending;
  return (
    <Layout ctx={props.ctx} title="Set up FastPass" scripts={[FASTPASS_SCRIPT]}>
      <div class="card">
        <h1>Set up FastPass</h1>
        <p>
          Choose the button, then confirm with Windows Hello, Touch ID or your device PIN. The method is added as{' '}
          <strong>{factor.name}</strong> and works only on this computer.
        </p>
        <FastPassForm
          ctx={props.ctx}
          action={`/profile/factors/${encodeURIComponent(factor.id)}/activate`}
          mode="register"
          options={options}
          buttonLabel="Set up FastPass on this computer"
          error={props.error}
        />
        <BackLink />
      </div>
    </Layout>
  );
}

/** The QR code and setup key of a pending method, and the code that activates it. */
export function SetupMethodPage(props: {
  ctx: PageContext;
  enrollment: PendingEnrollment;
  qrDataUrl: string;
  error?: string | undefined;
}) {
  const { factor, sharedSecret } = props.enrollment;
  return (
    <Layout ctx={props.ctx} title={`Set up ${factor.name}`}>
      <div class="card">
        <h1>Set up {factor.name}</h1>
        <TotpSetup
          ctx={props.ctx}
          sharedSecret={sharedSecret}
          qrDataUrl={props.qrDataUrl}
          action={`/profile/factors/${encodeURIComponent(factor.id)}/activate`}
          codeStepNote="The method is added only when the code is right."
          error={props.error}
        />
        <BackLink />
      </div>
    </Layout>
  );
}

/** Confirmation before removing a method, with a clear warning when it is the last one. */
export function RemoveMethodPage(props: {
  ctx: PageContext;
  factor: FactorRow;
  /** Removed with it: the other factor of the same Okta Verify device. */
  alsoRemoved: FactorRow[];
  isLast: boolean;
}) {
  const { factor } = props;
  return (
    <Layout ctx={props.ctx} title={`Remove ${factor.name}`}>
      <div class="card">
        <h1>Remove {factor.name}?</h1>
        <dl class="facts">
          <dt>Type</dt>
          <dd>{describeFactorType(factor.factor_type)}</dd>
          <dt>Enrolled</dt>
          <dd>{formatTime(factor.activated_at)}</dd>
          <dt>Last used</dt>
          <dd>{formatTime(factor.last_used_at)}</dd>
        </dl>
        {props.alsoRemoved.length ? (
          <p id="also-removed">
            {factor.name} is part of Okta Verify on one device: {props.alsoRemoved.map((f) => f.name).join(', ')} is
            removed with it.
          </p>
        ) : null}
        {props.isLast ? (
          <p class="alert" role="alert" id="last-method-warning">
            This is your only security method. After you remove it, your next sign-in asks for your password and then
            makes you set up a new method before you can continue. If you still have another device, add the new method
            first.
          </p>
        ) : (
          <p>
            {factor.factor_type === 'webauthn'
              ? 'FastPass on that computer will no longer be accepted.'
              : factor.factor_type === 'sms' || factor.factor_type === 'call'
                ? 'This retired method no longer works; removing it only tidies up your list.'
                : 'Codes from this app will no longer be accepted.'}{' '}
            Remove it if you lost the device or no longer use it.
          </p>
        )}
        <form method="post" action={`/profile/factors/${encodeURIComponent(factor.id)}/remove`}>
          <Csrf ctx={props.ctx} />
          <button type="submit" class="danger">
            Remove {factor.name}
          </button>
        </form>
        <BackLink />
      </div>
    </Layout>
  );
}

/** Current and new password; the new one under the activation policy. */
export function ChangePasswordPage(props: {
  ctx: PageContext;
  user: UserRow;
  minLength: number;
  errors?: FieldErrors<'currentPassword' | 'newPassword'>;
}) {
  const e = props.errors ?? {};
  return (
    <Layout ctx={props.ctx} title="Change your password">
      <div class="card">
        <h1>Change your password</h1>
        <p>When the password is changed, your other sessions are signed out. This one stays signed in.</p>
        <form method="post" action="/profile/password" novalidate>
          <Csrf ctx={props.ctx} />
          {/* Lets password managers store the new password under the right username. */}
          <input type="hidden" name="username" autocomplete="username" value={props.user.login} />
          <Field
            name="currentPassword"
            label="Current password"
            type="password"
            autocomplete="current-password"
            error={e.currentPassword}
            maxLength={1024}
          />
          <NewPasswordField minLength={props.minLength} error={e.newPassword} />
          <button type="submit">Change password</button>
        </form>
        <BackLink />
      </div>
    </Layout>
  );
}

/** A new recovery question and answer, under the activation rules. */
export function ChangeQuestionPage(props: {
  ctx: PageContext;
  user: UserRow;
  question: string;
  errors?: FieldErrors<'question' | 'answer'>;
}) {
  const e = props.errors ?? {};
  return (
    <Layout ctx={props.ctx} title="Change your recovery question">
      <div class="card">
        <h1>Change your recovery question</h1>
        <p>
          The question confirms it is you when you forget your password or unlock your account with an emailed link.
        </p>
        {props.user.recovery_question ? (
          <p>
            Current question: <strong>{props.user.recovery_question}</strong>
          </p>
        ) : null}
        <form method="post" action="/profile/recovery-question" novalidate>
          <Csrf ctx={props.ctx} />
          <Field
            name="recoveryQuestion"
            label="New question"
            autocomplete="off"
            value={props.question}
            error={e.question}
            hint="At least 5 characters. Choose something only you know and will remember."
            maxLength={200}
          />
          <Field
            name="recoveryAnswer"
            label="Answer"
            type="password"
            autocomplete="off"
            hint="4 to 100 characters. Capitals and extra spaces do not matter."
            error={e.answer}
            maxLength={200}
          />
          <button type="submit">Change recovery question</button>
        </form>
        <BackLink />
      </div>
    </Layout>
  );
}
