/**
 * The browser side of FastPass (bundled with @simplewebauthn/browser into
 * `src/web/assets/vendor/fastpass.js` by `npm run build:assets`; an external file, since the CSP
 * forbids inline scripts). A form marked `data-webauthn="register"` or `"authenticate"` carries the
 * options in `data-options`; its button runs the ceremony, puts the browser's JSON answer in the
 * hidden `response` field and submits the form. Without JavaScript the button stays hidden and the
 * page says FastPass needs it.
 */
import { browserSupportsWebAuthn, startAuthentication, startRegistration } from '@simplewebauthn/browser';

/** What the user is told when the browser or the authenticator says no. */
function explain(err: unknown): string {
  const name = err instanceof Error ? err.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'AbortError':
      return 'FastPass was cancelled or took too long. Try again, or choose another method.';
    case 'InvalidStateError':
      return 'This computer is already set up for FastPass on your account.';
    case 'SecurityError':
      return 'The browser refused FastPass because the sign-in URL is not secure. Open the sign-in page with https.';
    case 'NotSupportedError':
    case 'ConstraintError':
      return 'This computer has no FastPass authenticator that can check your PIN, face or fingerprint (such as Windows Hello). Choose another method.';
    default:
      return 'FastPass did not work. Try again, or choose another method.';
  }
}

function start(): void {
  const form = document.querySelector<HTMLFormElement>('form[data-webauthn]');
  if (!form) return;
  const button = form.querySelector<HTMLButtonElement>('button[data-webauthn-start]');
  const field = form.querySelector<HTMLInputElement>('input[name="response"]');
  const status = document.getElementById('fastpass-status');
  if (!button || !field) return;
  const say = (message: string) => {
    if (status) status.textContent = message;
  };
  if (!browserSupportsWebAuthn()) {
    say('This browser cannot use FastPass. Choose another method, or use a current version of your browser.');
    return;
  }
  button.hidden = false;
  button.addEventListener('click', async () => {
    button.disabled = true;
    say("Follow your computer's prompt: Windows Hello, Touch ID or your device PIN.");
    try {
      const optionsJSON = JSON.parse(form.dataset.options ?? '{}');
      const response =
        form.dataset.webauthn === 'register'
          ? await startRegistration({ optionsJSON })
          : await startAuthentication({ optionsJSON });
      field.value = JSON.stringify(response);
      form.submit();
    } catch (err) {
      say(explain(err));
      button.disabled = false;
    }
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
