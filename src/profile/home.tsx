import type { UserRow } from '../accounts/repository.ts';
import { isRetiredFactorType, maskPhone } from '../authn/factors/retired.ts';
import { Csrf, Field, Layout, type PageContext } from '../web/layout.tsx';
import { describeBrowser, describeFactorType, formatTime } from './describe.ts';
import { type Dashboard, type FieldErrors, PHONE_MAX_LENGTH } from './service.ts';

/** The `?done=` codes of Post/Redirect/Get and the notice each shows. */
export const DONE_NOTICES = {
  contact: 'Your contact details were saved.',
  preferences: 'Your preference was saved.',
  'factor-added': 'The new security method was added. We sent you an email about it.',
  'factor-removed': 'The security method was removed. We sent you an email about it.',
  password: 'Your password was changed and your other sessions were signed out. We sent you an email about it.',
  question: 'Your recovery question was changed. We sent you an email about it.',
  sessions: 'Your other sessions were signed out.',
} as const;
export type DoneCode = keyof typeof DONE_NOTICES;

/** A known `?done=` code, or undefined (anything else shows no notice). */
export function parseDone(value: unknown): DoneCode | undefined {
  return typeof value === 'string' && Object.hasOwn(DONE_NOTICES, value) ? (value as DoneCode) : undefined;
}

const RESULTS = { success: 'Succeeded', failure: 'Failed', denied: 'Refused' } as const;

/** The contact form as submitted, when it is shown again with its errors. */
export interface ContactForm {
  values: { mobilePhone: string; primaryPhone: string };
  errors: FieldErrors<'mobilePhone' | 'primaryPhone'>;
}

/** An optional phone number of the contact form, with what was submitted and its error. */
function PhoneField(props: { contact: ContactForm; name: keyof ContactForm['values']; label: string; hint: string }) {
  return (
    <Field
      name={props.name}
      label={props.label}
      type="tel"
      autocomplete="tel"
      value={props.contact.values[props.name]}
      error={props.contact.errors[props.name]}
      hint={props.hint}
      required={false}
      maxLength={PHONE_MAX_LENGTH}
    />
  );
}

/**
 * The signed-in home of the idp, the "MFA profile" (FAQ, "How can I edit my personal profile
 * data?"): personal information, contact details, security methods, recent activity, sessions and
 * the push preference.
 */
export function ProfileHome(props: {
  ctx: PageContext;
  user: UserRow;
  data: Dashboard;
  /** `id_hash` of the session viewing the page. */
  currentSession: string;
  done?: DoneCode | undefined;
  contact?: ContactForm | undefined;
}) {
  const { ctx, user, data } = props;
  const c = ctx.contacts;
  const contact = props.contact ?? {
    values: { mobilePhone: user.mobile_phone ?? '', primaryPhone: user.primary_phone ?? '' },
    errors: {},
  };
  const others = data.sessions.filter((s) => s.id_hash !== props.currentSession).length;
  return (
    <Layout ctx={ctx} title="Your profile">
      <div class="dashboard">
        {props.done ? (
          <p class="success" role="status" id="notice">
            {DONE_NOTICES[props.done]}
          </p>
        ) : null}

        <section class="card" aria-labelledby="personal-heading">
          <h1>
            Welcome, {user.first_name} {user.last_name}
          </h1>
          <h2 id="personal-heading">Personal information</h2>
          <dl class="facts">
            <dt>Name</dt>
            <dd>
              {user.first_name} {user.last_name}
            </dd>
            <dt>Username</dt>
            <dd id="username">{user.login}</dd>
            <dt>Email</dt>
            <dd>{user.email}</dd>
            <dt>Firm</dt>
            <dd id="firm">{data.firm?.name ?? '—'}</dd>
            <dt>Roles</dt>
            <dd>{data.roles.join(', ') || 'user'}</dd>
            <dt>Applications</dt>
            <dd>{data.apps.join(', ') || 'none assigned'}</dd>
          </dl>
          <p class="hint">
            Personal information cannot be edited here. To change it, your firm's Super Account Administrator (SAA) asks{' '}
            {c.operationsName} at {c.operationsPhone} or <a href={`mailto:${c.operationsEmail}`}>{c.operationsEmail}</a>
            .
          </p>
        </section>

        <section class="card" aria-labelledby="contact-heading">
          <h2 id="contact-heading">Contact details</h2>
          <form method="post" action="/profile/contact" novalidate>
            <Csrf ctx={ctx} />
            <PhoneField
              contact={contact}
              name="mobilePhone"
              label="Mobile phone"
              hint="Optional. Digits, spaces, + - ( ) and x before an extension."
            />
            <PhoneField
              contact={contact}
              name="primaryPhone"
              label="Primary phone"
              hint="Optional. A land line or another number than your mobile."
            />
            <button type="submit">Save contact details</button>
          </form>
        </section>

        {user.auth_mode === 'federated' ? (
          <section class="card" aria-labelledby="security-heading">
            <h2 id="security-heading">How you sign in</h2>
            <p>
              You sign in through your firm's single sign-on: your firm's identity provider checks your password and
              second factor, so there is no password or security method to manage here. For a sign-in problem, contact
              your firm's identity team; to sign in locally instead, call {c.techSupportName} at {c.techSupportPhone}.
            </p>
            <dl class="facts">
              <dt>Last sign-in</dt>
              <dd>{formatTime(user.last_login_at)}</dd>
            </dl>
          </section>
        ) : (
          <section class="card" aria-labelledby="security-heading">
            <h2 id="security-heading">Security methods</h2>
            {data.usableCount === 0 ? (
              <p class="alert" role="alert">
                {data.factors.length ? 'You have no security method that still works.' : 'You have no security method.'}{' '}
                Your next sign-in asks for your password and then for a new method.
              </p>
            ) : data.usableCount === 1 ? (
              <p class="notice">
                You have one sign-in method. Add a second one on another device so that a lost phone does not lock you
                out.
              </p>
            ) : null}
            <table>
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">Name</th>
                  <th scope="col">Enrolled</th>
                  <th scope="col">Last used</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody id="factors">
                {data.factors.map((f) => (
                  <tr
                    key={f.id}
                    data-factor-id={f.id}
                    class={isRetiredFactorType(f.factor_type) ? 'retired' : undefined}
                  >
                    <td>
                      {describeFactorType(f.factor_type)}
                      {isRetiredFactorType(f.factor_type) ? (
                        <>
                          {' '}
                          <strong class="retired-mark">{data.retirementLabel}</strong>
                        </>
                      ) : null}
                    </td>
                    <td>
                      {f.name}
                      {data.phoneNumbers.has(f.id) ? ` (${maskPhone(data.phoneNumbers.get(f.id) ?? '')})` : null}
                    </td>
                    <td class="when">{formatTime(f.activated_at)}</td>
                    <td class="when">{formatTime(f.last_used_at)}</td>
                    <td>
                      <a href={`/profile/factors/${encodeURIComponent(f.id)}/remove`} aria-label={`Remove ${f.name}`}>
                        Remove
                      </a>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p class="actions">
              <a class="button" href="/profile/factors/add">
                Add a security method
              </a>
              <a class="button secondary" href="/profile/password">
                Change password
              </a>
              <a class="button secondary" href="/profile/recovery-question">
                Change recovery question
              </a>
            </p>
            <dl class="facts">
              <dt>Password changed</dt>
              <dd>{formatTime(user.password_changed_at)}</dd>
              <dt>Recovery question</dt>
              <dd id="recovery-question">{user.recovery_question ?? 'none set'}</dd>
              <dt>Last sign-in</dt>
              <dd>{formatTime(user.last_login_at)}</dd>
            </dl>
            <p class="hint">
              Adding or removing a method and changing your password or recovery question ask you to verify it's you
              with a code or FastPass, unless you did so in the last 5 minutes. Lost the device of your only method?
              Remove it here, or call {c.techSupportName} at {c.techSupportPhone}.
            </p>
          </section>
        )}

        <section class="card" aria-labelledby="activity-heading">
          <h2 id="activity-heading">Recent activity</h2>
          <p class="hint">
            Sign-ins and security changes of your account, newest first. Something you do not recognise?{' '}
            {user.auth_mode === 'federated' ? "Tell your firm's identity team" : 'Change your password'} and call{' '}
            {c.operationsName} at {c.operationsPhone}.
          </p>
          {data.activity.length ? (
            <table class="compact">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Activity</th>
                  <th scope="col">Result</th>
                  <th scope="col">Method</th>
                  <th scope="col">IP address</th>
                  <th scope="col">Browser</th>
                </tr>
              </thead>
              <tbody id="activity">
                {data.activity.map((a, i) => (
                  <tr key={`${a.at}-${i}`} class={a.outcome === 'success' ? undefined : 'failed'}>
                    <td class="when">{formatTime(a.at)}</td>
                    <td>{a.what}</td>
                    <td>{RESULTS[a.outcome]}</td>
                    <td>{a.method ?? '—'}</td>
                    <td>{a.ip ?? '—'}</td>
                    <td>{a.browser}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p>No activity yet.</p>
          )}
        </section>

        <section class="card" aria-labelledby="sessions-heading">
          <h2 id="sessions-heading">Sessions</h2>
          <table class="compact">
            <thead>
              <tr>
                <th scope="col">Signed in</th>
                <th scope="col">Last seen</th>
                <th scope="col">IP address</th>
                <th scope="col">Browser</th>
                <th scope="col">
                  <span class="visually-hidden">Current</span>
                </th>
              </tr>
            </thead>
            <tbody id="sessions">
              {data.sessions.map((s) => (
                <tr key={s.id_hash} class={s.id_hash === props.currentSession ? 'current' : undefined}>
                  <td class="when">{formatTime(s.created_at)}</td>
                  <td class="when">{formatTime(s.last_seen_at)}</td>
                  <td>{s.ip ?? '—'}</td>
                  <td>{describeBrowser(s.user_agent)}</td>
                  <td>{s.id_hash === props.currentSession ? <strong>This session</strong> : null}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {others ? (
            <form method="post" action="/profile/sessions/sign-out-others">
              <Csrf ctx={ctx} />
              <button type="submit" class="secondary">
                Sign out all other sessions
              </button>
            </form>
          ) : (
            <p class="hint">You are not signed in anywhere else.</p>
          )}
        </section>

        <section class="card" aria-labelledby="preferences-heading">
          <h2 id="preferences-heading">Preferences</h2>
          <form method="post" action="/profile/preferences">
            <Csrf ctx={ctx} />
            <div class="check">
              <input
                type="checkbox"
                id="f-autoPush"
                name="autoPush"
                value="on"
                checked={data.preferences.autoPush}
                aria-describedby="f-autoPush-hint"
              />
              <label for="f-autoPush">Send push automatically</label>
            </div>
            <p class="hint" id="f-autoPush-hint">
              Applies once you have enrolled Okta Verify with push: sign-in then sends the push to your phone without
              waiting for you to ask. Turn on notifications for Okta Verify on your device.
            </p>
            <button type="submit">Save preference</button>
          </form>
        </section>
      </div>
    </Layout>
  );
}
