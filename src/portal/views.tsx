import type { ApiRefreshTokenRow } from '../oauth/refresh-token-repository.ts';
import { formatTime } from '../profile/describe.ts';
import { Csrf, Field, Layout, type PageContext } from '../web/layout.tsx';
import { LABEL_MAX_LENGTH } from './label.ts';
import type { PortalUser } from './service.ts';

/** What the Programmatic page says about tokens, from the environment's policy. */
export interface TokenFacts {
  /** `{download}/oauth2/token` */
  tokenUrl: string;
  refreshTokenMonths: number;
  accessTokenMinutes: number;
  reminderDays: number;
}

/** The API menu of the TRAQS website (FAQ: "The Refresh Token is located in the Programmatic window under the API menu"). */
function ApiMenu() {
  return (
    <nav class="card" aria-labelledby="api-menu">
      <h2 id="api-menu">API</h2>
      <ul>
        <li>
          <a href="/api/manual">Manual</a>: browse reference data files by facility, file and date, and download them
        </li>
        <li>
          <a href="/api/programmatic">Programmatic</a>: get a refresh token for programs that download reference data
          files
        </li>
      </ul>
    </nav>
  );
}

function Breadcrumb(props: { here: string }) {
  return (
    <p class="links">
      <a href="/">Home</a> › API › {props.here}
    </p>
  );
}

/** The signed-in home of the TRAQS website: who and which firm, and the API menu. */
export function PortalHome(props: { ctx: PageContext; who: PortalUser; idpUrl: string }) {
  const { user, firm } = props.who;
  return (
    <Layout ctx={props.ctx} title="Home">
      <section class="card" aria-labelledby="welcome">
        <h1 id="welcome">
          Welcome, {user.first_name} {user.last_name}
        </h1>
        <dl class="facts">
          <dt>Username</dt>
          <dd>{user.login}</dd>
          <dt>Firm</dt>
          <dd>{firm?.name ?? '—'}</dd>
        </dl>
        {user.auth_mode === 'federated' ? (
          <p class="hint">
            You sign in through your firm's single sign-on: your firm's identity team manages your password and second
            factor.
          </p>
        ) : (
          <p class="hint">
            To change your password or your security methods, open your <a href={`${props.idpUrl}/`}>MFA profile</a>.
          </p>
        )}
      </section>
      <ApiMenu />
    </Layout>
  );
}

function tokenStatus(t: ApiRefreshTokenRow, now: number): { text: string; live: boolean } {
  if (t.revoked_at !== null) return { text: `Revoked ${formatTime(t.revoked_at)}`, live: false };
  if (t.expires_at <= now) return { text: 'Expired', live: false };
  return { text: 'Active', live: true };
}

/** The user's refresh tokens, with a Revoke button for each live one. */
function TokenList(props: { ctx: PageContext; tokens: ApiRefreshTokenRow[]; now: number }) {
  if (props.tokens.length === 0) return <p>You have no refresh tokens.</p>;
  return (
    <table class="compact" id="tokens">
      <caption class="visually-hidden">Your refresh tokens</caption>
      <thead>
        <tr>
          <th scope="col">Label</th>
          <th scope="col">Created</th>
          <th scope="col">Expires</th>
          <th scope="col">Last used</th>
          <th scope="col">Last IP address</th>
          <th scope="col">Status</th>
          <th scope="col">
            <span class="visually-hidden">Action</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {props.tokens.map((t) => {
          const status = tokenStatus(t, props.now);
          return (
            <tr key={t.id_hash} class={status.live ? undefined : 'ended'}>
              <td>{t.label}</td>
              <td class="when">{formatTime(t.created_at)}</td>
              <td class="when">{formatTime(t.expires_at)}</td>
              <td class="when">{formatTime(t.last_used_at)}</td>
              <td>{t.last_used_ip ?? '—'}</td>
              <td>{status.text}</td>
              <td>
                {status.live ? (
                  <form method="post" action={`/api/programmatic/tokens/${t.id_hash}/revoke`}>
                    <Csrf ctx={props.ctx} />
                    <button type="submit" class="danger" aria-label={`Revoke ${t.label}`}>
                      Revoke
                    </button>
                  </form>
                ) : null}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** The `?done=` notices of the Programmatic page. */
export const PROGRAMMATIC_NOTICES = {
  revoked: 'The refresh token was revoked. Programs that use it can no longer get access tokens.',
} as const;
export type ProgrammaticNotice = keyof typeof PROGRAMMATIC_NOTICES;

export function parseProgrammaticNotice(value: unknown): ProgrammaticNotice | undefined {
  return typeof value === 'string' && Object.hasOwn(PROGRAMMATIC_NOTICES, value)
    ? (value as ProgrammaticNotice)
    : undefined;
}

/** What a refresh token is for, in the FAQ's words. */
function AboutRefreshTokens(props: { facts: TokenFacts }) {
  const f = props.facts;
  return (
    <>
      <p>
        A refresh token lets your programs download reference data files without anyone signing in. It remains valid for{' '}
        {f.refreshTokenMonths} months from the date of issue; we email you {f.reminderDays} days before it expires.
      </p>
      <p>
        Your program exchanges the refresh token for an access token at <code>{f.tokenUrl}</code>. The access token
        expires every {f.accessTokenMinutes} minutes: program your system to detect an expired access token and request
        a new one. The same refresh token may be used on more than one machine at a time.
      </p>
      <p>
        To get a refresh token you confirm your identity again with your password and your second authentication method.
        This cannot be automated: before a token expires, sign in and get a new one. Keep the token secret, like a
        password.
      </p>
    </>
  );
}

/** The command that exchanges a refresh token (from an environment variable) for an access token. */
export function curlCommand(tokenUrl: string): string {
  return [
    `curl -X POST '${tokenUrl}' \\`,
    '  -d grant_type=refresh_token \\',
    '  -d client_id=traqs-api \\',
    '  --data-urlencode "refresh_token=$TRAQS_REFRESH_TOKEN"',
  ].join('\n');
}

/**
 * The Programmatic page: what a refresh token is, the form that gets one (after a fresh sign-in
 * with the second factor), and the user's tokens with a Revoke button each.
 */
export function ProgrammaticPage(props: {
  ctx: PageContext;
  tokens: ApiRefreshTokenRow[];
  now: number;
  facts: TokenFacts;
  /** False when the user is not assigned to the download app: no form, the 403 explanation instead. */
  assigned: boolean;
  label?: string | undefined;
  labelError?: string | undefined;
  defaultLabel: string;
  notice?: ProgrammaticNotice | undefined;
}) {
  const c = props.ctx.contacts;
  return (
    <Layout ctx={props.ctx} title="Programmatic API access">
      <div class="dashboard">
        <Breadcrumb here="Programmatic" />
        {props.notice ? (
          <p class="success" role="status" id="notice">
            {PROGRAMMATIC_NOTICES[props.notice]}
          </p>
        ) : null}
        <section class="card" aria-labelledby="programmatic">
          <h1 id="programmatic">Programmatic API access</h1>
          <AboutRefreshTokens facts={props.facts} />
          {props.assigned ? (
            <form method="post" action="/api/programmatic/start" novalidate>
              <Csrf ctx={props.ctx} />
              <Field
                name="label"
                label="Label (optional)"
                autocomplete="off"
                value={props.label ?? ''}
                error={props.labelError}
                hint={`Helps you tell your tokens apart, for example the machine that uses it. At most ${LABEL_MAX_LENGTH} characters. If empty: "${props.defaultLabel}".`}
                required={false}
                maxLength={LABEL_MAX_LENGTH}
              />
              <button type="submit">Get a refresh token</button>
            </form>
          ) : (
            <p class="alert" role="alert" id="not-assigned">
              App not assigned: your account is not assigned to API Download; contact {c.techSupportName} at{' '}
              {c.techSupportPhone}.
            </p>
          )}
        </section>
        <section class="card" aria-labelledby="your-tokens">
          <h2 id="your-tokens">Your refresh tokens</h2>
          <TokenList ctx={props.ctx} tokens={props.tokens} now={props.now} />
          <p class="hint">Revoked and expired tokens are listed for 90 days.</p>
        </section>
      </div>
    </Layout>
  );
}

/**
 * The one time a refresh token is shown: the portal does not keep it, and the page is not cached.
 * The copy buttons need `/assets/copy.js`; without JavaScript the text can be selected.
 */
export function TokenIssuedPage(props: {
  ctx: PageContext;
  refreshToken: string;
  label: string;
  expiresAt: number;
  facts: TokenFacts;
}) {
  const command = curlCommand(props.facts.tokenUrl);
  return (
    <Layout ctx={props.ctx} title="Your refresh token" scripts={['copy.js']}>
      <div class="dashboard">
        <Breadcrumb here="Programmatic" />
        <section class="card" aria-labelledby="issued">
          <h1 id="issued">Your refresh token</h1>
          <p class="notice" role="status">
            Copy the token now: it is shown only once. If you lose it, revoke it and get a new one.
          </p>
          <dl class="facts">
            <dt>Label</dt>
            <dd>{props.label}</dd>
            <dt>Expires</dt>
            <dd id="token-expires">{formatTime(props.expiresAt)}</dd>
          </dl>
          <h2 id="token-heading">Refresh token</h2>
          <p>
            <code class="secret" id="refresh-token">
              {props.refreshToken}
            </code>
          </p>
          <button type="button" class="secondary" data-copy="refresh-token" hidden>
            Copy the refresh token
          </button>
          <h2 id="command-heading">Get an access token</h2>
          <p>
            Put the token in the environment variable <code>TRAQS_REFRESH_TOKEN</code> (so it stays out of your shell
            history), then run:
          </p>
          <pre class="command" id="curl-command">
            {command}
          </pre>
          <button type="button" class="secondary" data-copy="curl-command" hidden>
            Copy the command
          </button>
          <p>
            The answer is JSON with <code>access_token</code> (valid {props.facts.accessTokenMinutes} minutes) to send
            as <code>Authorization: Bearer …</code> when you request files.
          </p>
          <p class="visually-hidden" role="status" aria-live="polite" id="copy-status"></p>
          <p class="links">
            <a href="/api/programmatic">Done: back to your tokens</a>
          </p>
        </section>
      </div>
    </Layout>
  );
}

/** 403 "App not assigned" with whom to contact (FAQ, "403/404 Errors"). */
export function AppNotAssignedPage(props: {
  ctx: PageContext;
  login: string;
  appName: string;
  /** Where signing in as someone else starts (the idp's logout), if offered. */
  switchUserUrl?: string | undefined;
}) {
  const c = props.ctx.contacts;
  return (
    <Layout ctx={props.ctx} title="App not assigned">
      <div class="card">
        <h1>App not assigned</h1>
        <p class="alert" role="alert">
          Your account {props.login} is not assigned to {props.appName}.
        </p>
        <p>
          To get access, contact {c.techSupportName} at {c.techSupportPhone}.
        </p>
        {props.switchUserUrl ? (
          <p class="links">
            <a href={props.switchUserUrl}>Sign out and sign in as someone else</a>
          </p>
        ) : null}
      </div>
    </Layout>
  );
}

/** A sign-in or token request that did not complete: what happened, and a way to try again. */
export function FlowProblemPage(props: {
  ctx: PageContext;
  title: string;
  message: string;
  retryHref: string;
  retryLabel: string;
  /** A short machine code (the idp's `error`) to quote to support. */
  code?: string | undefined;
}) {
  const c = props.ctx.contacts;
  return (
    <Layout ctx={props.ctx} title={props.title}>
      <div class="card">
        <h1>{props.title}</h1>
        <p class="alert" role="alert">
          {props.message}
        </p>
        <p>
          <a class="button" href={props.retryHref} id="try-again">
            {props.retryLabel}
          </a>
        </p>
        <p>
          If this keeps happening, contact {c.techSupportName} at {c.techSupportPhone}
          {props.code ? (
            <>
              {' '}
              and quote <code>{props.code}</code>
            </>
          ) : null}
          .
        </p>
      </div>
    </Layout>
  );
}
