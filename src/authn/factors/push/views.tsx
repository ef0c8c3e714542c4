import type { ComponentChildren } from 'preact';
import type { UserRow } from '../../../accounts/repository.ts';
import { Csrf, Layout, type PageContext } from '../../../web/layout.tsx';
import { ChooseAnotherMethodForm } from '../../views.tsx';
import type { FactorRow } from '../repository.ts';
import type { PushChallengeRow } from './repository.ts';

/** The bundled (plain, CSP-safe) script that waits for the push on the page. */
export const PUSH_WAIT_SCRIPT = 'push-wait.js';

/** What the page says about the last push. */
function outcomeText(c: PushChallengeRow | undefined): string | undefined {
  if (!c || c.status === 'WAITING' || c.status === 'APPROVED') return undefined;
  if (c.status === 'TIMEOUT')
    return 'The push expired after 5 minutes without an answer. Send a new one or choose another method.';
  return c.reason === 'wrong_number'
    ? 'The number chosen on your device did not match, so this sign-in was refused. If that was not you, your device shows a link to report it.'
    : 'The push was denied on your device, so this sign-in was refused. If you did not deny it, report it with the link on your device.';
}

/**
 * Okta Verify's waiting screen: the number to pick on the device, a script that waits for the
 * answer (polling, no inline script), and without JavaScript the "I approved — continue" button
 * that checks once. "Resend push" respects the per-sign-in cap.
 */
export function PushWaitPage(props: {
  ctx: PageContext;
  user: UserRow;
  factor: FactorRow;
  challenge: PushChallengeRow | undefined;
  error?: string | undefined;
  /** Other methods and cancel. */
  children?: ComponentChildren;
}) {
  const c = props.challenge;
  const waiting = c?.status === 'WAITING';
  const outcome = outcomeText(c);
  return (
    <Layout ctx={props.ctx} title="Verify with your push" scripts={waiting ? [PUSH_WAIT_SCRIPT] : []}>
      <div class="card">
        <h1>Verify it's you</h1>
        {waiting && c ? (
          <>
            <p>
              We sent a push to <strong>{props.factor.name}</strong> for <strong>{props.user.login}</strong>. On your
              device, pick this number:
            </p>
            <p class="push-number" aria-live="polite">
              {c.correct_number}
            </p>
            <p id="push-status" role="status">
              Waiting for your answer… The push expires 5 minutes after it was sent.
            </p>
          </>
        ) : null}
        {outcome ? (
          <p class="alert" role="alert">
            {outcome}
          </p>
        ) : null}
        {props.error ? (
          <p class="alert" role="alert">
            {props.error}
          </p>
        ) : null}
        {waiting ? (
          <form method="post" action="/signin/verify/push/check" id="push-check">
            <Csrf ctx={props.ctx} />
            <input type="hidden" name="factorId" value={props.factor.id} />
            <button type="submit">I approved — continue</button>
          </form>
        ) : null}
        {c ? null : (
          <p>
            Signing in as <strong>{props.user.login}</strong>. We will send a push to{' '}
            <strong>{props.factor.name}</strong>; run <code>traqs-verify listen</code> there.
          </p>
        )}
        <form method="post" action={c ? '/signin/verify/push/resend' : '/signin/verify/push'}>
          <Csrf ctx={props.ctx} />
          <input type="hidden" name="factorId" value={props.factor.id} />
          <button type="submit" class={waiting ? 'secondary' : undefined}>
            {!c ? 'Send push' : waiting ? 'Resend push' : 'Send a new push'}
          </button>
        </form>
        {props.children}
      </div>
    </Layout>
  );
}

/** Push added from the profile: the same activation panel, waiting on the profile's status. */
export function PushSetupPage(props: {
  ctx: PageContext;
  factorId: string;
  activation: { link: string; code: string; expiresAt: number } | undefined;
  qrDataUrl: string | undefined;
}) {
  return (
    <Layout ctx={props.ctx} title="Add Okta Verify (push)" scripts={props.activation ? [PUSH_WAIT_SCRIPT] : []}>
      <div class="card">
        <h1>Add Okta Verify (push)</h1>
        <PushEnrollPanel
          ctx={props.ctx}
          activation={props.activation}
          qrDataUrl={props.qrDataUrl}
          checkAction={`/profile/factors/${props.factorId}/activate`}
          statusUrl={`/profile/factors/${props.factorId}/status`}
          factorId={props.factorId}
        />
        <p>
          <a href="/">Back to your profile</a>
        </p>
      </div>
    </Layout>
  );
}

/** Push enrollment at sign-in: the activation link and QR code, waiting for the device. */
export function EnrollPushPage(props: {
  ctx: PageContext;
  factorId: string;
  activation: { link: string; code: string; expiresAt: number } | undefined;
  qrDataUrl: string | undefined;
  enrolled: boolean;
  error?: string | undefined;
}) {
  const wait = props.activation && !props.enrolled;
  return (
    <Layout ctx={props.ctx} title="Set up Okta Verify (push)" scripts={wait ? [PUSH_WAIT_SCRIPT] : []}>
      <div class="card">
        <h1>Set up Okta Verify (push)</h1>
        {props.error ? (
          <p class="alert" role="alert">
            {props.error}
          </p>
        ) : null}
        <PushEnrollPanel
          ctx={props.ctx}
          activation={props.activation}
          qrDataUrl={props.qrDataUrl}
          checkAction="/signin/enroll/push/check"
          factorId={props.factorId}
          enrolled={props.enrolled}
        />
        <ChooseAnotherMethodForm ctx={props.ctx} />
      </div>
    </Layout>
  );
}

/**
 * Push enrollment: the activation link and its QR code for `traqs-verify enroll`, and a page that
 * waits (the same script) until the device has enrolled.
 */
export function PushEnrollPanel(props: {
  ctx: PageContext;
  activation: { link: string; code: string; expiresAt: number } | undefined;
  qrDataUrl: string | undefined;
  checkAction: string;
  factorId: string;
  /** The device has enrolled: only "continue" is left. */
  enrolled?: boolean;
  /** What the waiting script polls (default: the sign-in's). */
  statusUrl?: string;
}) {
  const a = props.activation;
  const cont = (label: string) => (
    <form method="post" action={props.checkAction} id="push-check" data-status={props.statusUrl}>
      <Csrf ctx={props.ctx} />
      <input type="hidden" name="factorId" value={props.factorId} />
      <button type="submit">{label}</button>
    </form>
  );
  if (props.enrolled) {
    return (
      <>
        <p role="status">Your device is enrolled.</p>
        {cont('Continue')}
      </>
    );
  }
  if (!a) {
    return (
      <p class="alert" role="alert">
        The activation code expired. Choose another method, then Okta Verify (push) again for a new one.
      </p>
    );
  }
  return (
    <>
      <p>On the computer or phone that will approve your sign-ins, run:</p>
      <pre class="command">traqs-verify enroll "{a.link}"</pre>
      {props.qrDataUrl ? (
        <img src={props.qrDataUrl} alt="QR code of the activation link" width={220} height={220} />
      ) : null}
      <p>
        The link works once, until {new Date(a.expiresAt).toISOString().slice(11, 16)} UTC. Activation code:{' '}
        <code>{a.code}</code>
      </p>
      <p id="push-status" role="status">
        Waiting for your device to enroll…
      </p>
      {cont('My device is enrolled — continue')}
    </>
  );
}
