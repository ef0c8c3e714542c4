import { Layout, type PageContext } from '../web/layout.tsx';
import type { FederationFailure } from './verify.ts';

/** Who can help: the firm's identity team for its IdP, our support for the account itself (FAQ). */
type Helper = 'identity-team' | 'support' | 'operations';

interface FailureText {
  status: number;
  title: string;
  what: string;
  helper: Helper;
}

/**
 * Every failure a user can meet on the way back from the firm's IdP (issue #8 item 4), with an
 * HTTP status (4xx; 502 when the IdP cannot be reached) and whom to contact, as the FAQ says:
 * "Having issues with Federated SSO? Please contact your firm's Identity and Access Management team."
 */
export const FAILURES: Record<FederationFailure, FailureText> = {
  idp_unreachable: {
    status: 502,
    title: "Your firm's sign-in service cannot be reached",
    what: "We could not reach your firm's identity provider to sign you in. It may be down or unreachable from here.",
    helper: 'identity-team',
  },
  idp_error: {
    status: 401,
    title: "Your firm's sign-in did not complete",
    what: "Your firm's identity provider reported that the sign-in did not succeed.",
    helper: 'identity-team',
  },
  invalid_response: {
    status: 400,
    title: 'The sign-in answer could not be read',
    what: "The answer from your firm's identity provider was incomplete or not valid.",
    helper: 'identity-team',
  },
  signature_invalid: {
    status: 401,
    title: 'The sign-in answer was not signed correctly',
    what: "The answer from your firm's identity provider does not carry a valid signature from the certificate we have on file for your firm.",
    helper: 'identity-team',
  },
  audience_mismatch: {
    status: 401,
    title: 'The sign-in answer was meant for another service',
    what: "Your firm's identity provider issued the sign-in for a different service than this one.",
    helper: 'identity-team',
  },
  expired: {
    status: 401,
    title: 'The sign-in answer has expired',
    what: "The answer from your firm's identity provider is outside its validity period. Clocks may differ, or the page was left open too long.",
    helper: 'identity-team',
  },
  replayed: {
    status: 401,
    title: 'This sign-in was already used',
    what: 'Each sign-in from your firm can be used once. This one was used before, for example by going back in the browser.',
    helper: 'identity-team',
  },
  request_mismatch: {
    status: 400,
    title: 'This sign-in was not started here',
    what: 'The answer does not match a sign-in started in this browser, or that sign-in expired. Start again from the sign-in page.',
    helper: 'identity-team',
  },
  no_identity: {
    status: 403,
    title: 'Your firm did not say who you are',
    what: "Your firm's identity provider did not send the username (email address) we need to find your account.",
    helper: 'identity-team',
  },
  user_not_provisioned: {
    status: 403,
    title: 'No TRAQS account for this user',
    what: 'Your firm signed you in, but there is no active TRAQS account for this user. Accounts are not created at sign-in: your firm requests them.',
    helper: 'operations',
  },
  wrong_firm: {
    status: 403,
    title: 'Your account belongs to another firm',
    what: 'This identity provider may sign in users of its own firm only, and your TRAQS account belongs to a different firm.',
    helper: 'support',
  },
  not_federated: {
    status: 403,
    title: 'Your account does not use single sign-on',
    what: 'Your TRAQS account signs in with a password and a second factor here, not through your firm.',
    helper: 'support',
  },
  suspended: {
    status: 403,
    title: 'Your account is not active',
    what: 'Your TRAQS account is suspended or otherwise not active, so it cannot sign in.',
    helper: 'operations',
  },
  no_idp: {
    status: 404,
    title: 'No single sign-on configured',
    what: 'Your account signs in through your firm, but no identity provider is configured for your firm, or it was removed.',
    helper: 'support',
  },
};

export function FederationFailurePage(props: { ctx: PageContext; reason: FederationFailure }) {
  const f = FAILURES[props.reason];
  const c = props.ctx.contacts;
  return (
    <Layout ctx={props.ctx} title={f.title}>
      <div class="card">
        <h1>{f.title}</h1>
        <p class="alert" role="alert" data-reason={props.reason}>
          {f.what}
        </p>
        {f.helper === 'identity-team' ? (
          <p>
            Please contact your firm's Identity and Access Management team: they run your firm's sign-in service. If
            they find nothing wrong on their side, contact {c.techSupportName} at {c.techSupportPhone}.
          </p>
        ) : f.helper === 'support' ? (
          <p>
            Please contact {c.techSupportName} at {c.techSupportPhone}: they set up federated single sign-on for your
            account.
          </p>
        ) : (
          <p>
            Please contact {c.operationsName} at {c.operationsPhone} or{' '}
            <a href={`mailto:${c.operationsEmail}`}>{c.operationsEmail}</a>, or ask your firm's Super Account
            Administrator.
          </p>
        )}
        <p>
          <a href="/signin">Back to the sign-in page</a>
        </p>
      </div>
    </Layout>
  );
}

/** The step between our sign-in form and the firm's IdP: a link (followed at once with JavaScript). */
export function ContinueToIdpPage(props: { ctx: PageContext; url: string; idpName: string }) {
  return (
    <Layout ctx={props.ctx} title="Continue to your firm's sign-in" scripts={['follow-link.js']}>
      <div class="card">
        <h1>Continue to your firm's sign-in</h1>
        <p>Your account signs in through your firm's single sign-on ({props.idpName}). No password is needed here.</p>
        <p>
          <a class="button" href={props.url} data-auto-follow="">
            Continue to {props.idpName}
          </a>
        </p>
      </div>
    </Layout>
  );
}
