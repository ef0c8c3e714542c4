import type { ComponentChildren } from 'preact';
import { Csrf, Field, type PageContext } from '../../web/layout.tsx';
import type { EnrollableFactor } from '../service.ts';
import type { FactorRow } from './repository.ts';

/**
 * The factor forms that sign-in (activation, enrollment, verification) and the MFA profile (adding
 * a method, "Verify it's you", password change) show alike.
 */

/** How a factor is named to its user. */
export const factorLabel = (f: Pick<FactorRow, 'factor_type' | 'provider' | 'name'>) => f.name;

/** The six-digit code input: `one-time-code` lets browsers and password managers fill it. */
export function PassCodeField({ error }: { error?: string | undefined }) {
  return (
    <Field
      name="passCode"
      label="Six-digit code"
      autocomplete="one-time-code"
      inputmode="numeric"
      maxLength={7}
      error={error}
    />
  );
}

/** A new password under the activation policy, for password managers to store. */
export function NewPasswordField(props: { minLength: number; error?: string | undefined }) {
  return (
    <Field
      name="newPassword"
      label="New password"
      type="password"
      autocomplete="new-password"
      hint={`At least ${props.minLength} characters. A long phrase is easier to remember and harder to guess. Common passwords and your username are refused.`}
      error={props.error}
      maxLength={1024}
    />
  );
}

const CHOICE_HINTS: Readonly<Record<string, string>> = {
  GOOGLE: 'Six-digit codes from Google Authenticator or any RFC 6238 authenticator app.',
  OKTA: 'Six-digit codes from the Okta Verify app.',
  FIDO: 'Okta Verify Desktop: sign in on this computer with Windows Hello, Touch ID or your device PIN. No phone needed.',
  push: 'Approve sign-ins with traqs-verify by picking the number shown on screen; it also gives six-digit codes.',
};

/** One form per method that can be enrolled, each posting its provider to `action`. */
export function FactorChoices(props: {
  ctx: PageContext;
  action: string;
  choices: readonly EnrollableFactor[];
  /** Sign-in's transaction takes the factor type with the provider (as the Okta API does). */
  withFactorType?: boolean;
  /** Why FastPass is not among the choices here (an insecure sign-in URL), if it is not. */
  fastPassUnavailable?: string | undefined;
}) {
  return (
    <div class="factor-choice">
      {props.choices.map((f) => (
        <form method="post" action={props.action} key={`${f.factorType}:${f.provider}`}>
          <Csrf ctx={props.ctx} />
          {/* Okta Verify's code and push share the provider: the type tells them apart. */}
          {props.withFactorType || f.factorType === 'push' ? (
            <input type="hidden" name="factorType" value={f.factorType} />
          ) : null}
          <input type="hidden" name="provider" value={f.provider} />
          <strong>{f.label}</strong>
          <p class="hint">{CHOICE_HINTS[f.factorType === 'push' ? 'push' : f.provider] ?? ''}</p>
          <button type="submit">Set up {f.label}</button>
        </form>
      ))}
      {props.fastPassUnavailable ? (
        <p class="notice" id="fastpass-unavailable">
          FastPass is not offered here. {props.fastPassUnavailable}
        </p>
      ) : null}
    </div>
  );
}

/**
 * The FastPass ceremony: a form whose button (shown by `/assets/vendor/fastpass.js`) asks the
 * browser to create (`register`) or use (`authenticate`) the credential, then posts the browser's
 * answer in `response` to `action`. The page must load that script (`Layout` `scripts`).
 */
export function FastPassForm(props: {
  ctx: PageContext;
  action: string;
  mode: 'register' | 'authenticate';
  /** The options for `navigator.credentials.create()` / `.get()`, as JSON-ready data. */
  options: unknown;
  buttonLabel: string;
  error?: string | undefined;
  /** Hidden inputs the form posts with the answer. */
  children?: ComponentChildren;
}) {
  return (
    <form
      method="post"
      action={props.action}
      data-webauthn={props.mode}
      data-options={JSON.stringify(props.options)}
      aria-describedby="fastpass-status"
    >
      <Csrf ctx={props.ctx} />
      {props.children}
      <input type="hidden" name="response" value="" />
      {props.error ? (
        <p class="alert" role="alert" id="fastpass-error">
          {props.error}
        </p>
      ) : null}
      <p class="hint" id="fastpass-status" role="status" aria-live="polite" />
      <button type="button" data-webauthn-start hidden>
        {props.buttonLabel}
      </button>
      <noscript>
        <p class="alert">FastPass needs JavaScript in this browser. Turn it on, or choose another method.</p>
      </noscript>
    </form>
  );
}

/**
 * "Verify it's you" with FastPass (profile and admin consoles): the ceremony form posting the
 * factor and where to continue, or why FastPass cannot be used here (no options: the idp's URL is
 * not a secure origin).
 */
export function FastPassReverifyForm(props: {
  ctx: PageContext;
  action: string;
  options: unknown;
  factorId: string;
  next: string;
  error?: string | undefined;
}) {
  if (props.options === undefined) {
    return (
      <p class="alert" role="alert">
        FastPass cannot be used here. Choose another method.
      </p>
    );
  }
  return (
    <FastPassForm
      ctx={props.ctx}
      action={props.action}
      mode="authenticate"
      options={props.options}
      buttonLabel="Verify with FastPass"
      error={props.error}
    >
      <input type="hidden" name="factorId" value={props.factorId} />
      <input type="hidden" name="next" value={props.next} />
    </FastPassForm>
  );
}

/** Where the FastPass page script is served (`Layout` `scripts`). */
export const FASTPASS_SCRIPT = 'vendor/fastpass.js';

/**
 * Setting up an authenticator app: the steps, the QR code, the setup key (`#shared-secret`, its
 * `data-secret` the key as one string) and the form that posts the first code to `action`.
 */
export function TotpSetup(props: {
  ctx: PageContext;
  sharedSecret: string;
  qrDataUrl: string;
  action: string;
  /** Said after "Enter the six-digit code the app shows." */
  codeStepNote?: string;
  error?: string | undefined;
  /** Hidden inputs the form posts with the code. */
  children?: ComponentChildren;
}) {
  const grouped = props.sharedSecret.replace(/(.{4})/g, '$1 ').trim();
  const codeStep = 'Enter the six-digit code the app shows.';
  return (
    <>
      <ol>
        <li>Open the app on your phone and add an account.</li>
        <li>Scan this QR code, or choose to enter a setup key and type the key below.</li>
        <li>{props.codeStepNote ? `${codeStep} ${props.codeStepNote}` : codeStep}</li>
      </ol>
      <img class="qr" src={props.qrDataUrl} alt="QR code for your authenticator app (the setup key is shown below)" />
      <p>
        Setup key (time-based):{' '}
        <code class="secret" id="shared-secret" data-secret={props.sharedSecret}>
          {grouped}
        </code>
      </p>
      <form method="post" action={props.action} novalidate>
        <Csrf ctx={props.ctx} />
        {props.children}
        <PassCodeField error={props.error} />
        <button type="submit">Verify</button>
      </form>
    </>
  );
}

/** "Use another method": links to the user's other factors, when there are any. */
export function OtherMethods(props: { factors: FactorRow[]; chosen: FactorRow; href: (f: FactorRow) => string }) {
  const others = props.factors.filter((f) => f.id !== props.chosen.id);
  return others.length ? (
    <>
      <h2>Use another method</h2>
      <ul>
        {others.map((f) => (
          <li key={f.id}>
            <a href={props.href(f)}>{factorLabel(f)}</a>
          </li>
        ))}
      </ul>
    </>
  ) : null;
}
