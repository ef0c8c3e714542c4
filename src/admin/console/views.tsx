import type { ComponentChildren } from 'preact';
import type { AuditRow } from '../../audit/repository.ts';
import type { FactorRow } from '../../authn/factors/repository.ts';
import { FASTPASS_SCRIPT, FastPassReverifyForm } from '../../authn/factors/views.tsx';
import { formatTime } from '../../profile/describe.ts';
import { Csrf, Layout, type PageContext } from '../../web/layout.tsx';
import type { AdminUserView, FactorView, RefreshTokenView, ReportView, RequestView } from '../service.ts';

/** The result of the last action, as the service said it. */
export interface Notice {
  ok: boolean;
  text: string;
}

/** The consoles a principal's roles open (display only: the service decides every action). */
export interface ConsoleLinks {
  firm: boolean;
  operations: boolean;
  support: boolean;
  /** Firms' identity providers (issue #8). */
  sso: boolean;
  audit: boolean;
}

const when = (ms: number | null | undefined) => (ms ? formatTime(ms) : '—');

function NoticeBox({ notice, id }: { notice?: Notice | undefined; id?: string }) {
  if (!notice) return null;
  return notice.ok ? (
    <p class="notice" id={id} role="status">
      {notice.text}
    </p>
  ) : (
    <p class="alert" id={id} role="alert">
      {notice.text}
    </p>
  );
}

function Nav({ links }: { links: ConsoleLinks }) {
  return (
    <nav class="admin-nav" aria-label="Administration">
      <a href="/admin">Administration</a>
      {links.firm ? <a href="/admin/firm">Firm (SAA)</a> : null}
      {links.operations ? <a href="/admin/operations">Operations</a> : null}
      {links.support ? <a href="/admin/support">Support</a> : null}
      {links.sso ? <a href="/admin/sso">Firm single sign-on</a> : null}
      {links.audit ? <a href="/admin/audit">Audit log</a> : null}
    </nav>
  );
}

/** The frame of every console page: navigation, the last action's result, the content. */
export function ConsolePage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  title: string;
  notice?: Notice | undefined;
  children: ComponentChildren;
}) {
  return (
    <Layout ctx={props.ctx} title={props.title}>
      <div class="card admin">
        <Nav links={props.links} />
        <h1>{props.title}</h1>
        <NoticeBox notice={props.notice} />
        {props.children}
      </div>
    </Layout>
  );
}

/** A one-button POST form with its CSRF token and hidden fields. */
export function ActionForm(props: {
  ctx: PageContext;
  action: string;
  label: string;
  fields?: Record<string, string>;
  children?: ComponentChildren;
  danger?: boolean;
}) {
  return (
    <form method="post" action={props.action} class="inline">
      <Csrf ctx={props.ctx} />
      {Object.entries(props.fields ?? {}).map(([k, v]) => (
        <input key={k} type="hidden" name={k} value={v} />
      ))}
      {props.children}
      <button type="submit" class={props.danger ? 'danger' : undefined}>
        {props.label}
      </button>
    </form>
  );
}

export function ForbiddenPage({ ctx, message }: { ctx: PageContext; message: string }) {
  return (
    <Layout ctx={ctx} title="Not allowed">
      <div class="card">
        <h1>Not allowed</h1>
        <p class="alert" role="alert">
          {message}
        </p>
        <p class="links">
          <a href="/">Back to your profile</a>
        </p>
      </div>
    </Layout>
  );
}

export function LandingPage({ ctx, links }: { ctx: PageContext; links: ConsoleLinks }) {
  return (
    <ConsolePage ctx={ctx} links={links} title="Administration">
      <ul class="admin-consoles">
        {links.firm ? (
          <li>
            <a href="/admin/firm">Your firm's users and requests</a> — request usernames and deactivations.
          </li>
        ) : null}
        {links.operations ? (
          <li>
            <a href="/admin/operations">Operations</a> — request queue, users, suspicious-activity reports.
          </li>
        ) : null}
        {links.support ? (
          <li>
            <a href="/admin/support">Support</a> — lost devices, password-reset emails, federated sign-on, apps.
          </li>
        ) : null}
        {links.sso ? (
          <li>
            <a href="/admin/sso">Firm single sign-on</a> — firms' identity providers (SAML 2.0, OpenID Connect).
          </li>
        ) : null}
        {links.audit ? (
          <li>
            <a href="/admin/audit">Audit log</a> — every administrative action, exportable.
          </li>
        ) : null}
      </ul>
    </ConsolePage>
  );
}

function requestSubject(r: RequestView): string {
  const p = r.payload;
  if (r.kind === 'new_user')
    return `${String(p.firstName ?? '')} ${String(p.lastName ?? '')} <${String(p.email ?? '')}>`;
  return String(p.login ?? r.targetUserId ?? '');
}

function RequestTable(props: { ctx: PageContext; requests: RequestView[]; decide: boolean }) {
  if (!props.requests.length) return <p>No requests.</p>;
  return (
    <table class="compact">
      <thead>
        <tr>
          <th>Requested</th>
          <th>Kind</th>
          <th>Who</th>
          <th>Status</th>
          <th>{props.decide ? 'Decide' : 'Reason'}</th>
        </tr>
      </thead>
      <tbody>
        {props.requests.map((r) => (
          <tr key={r.id} data-request={r.id}>
            <td>{when(r.createdAt)}</td>
            <td>{r.kind === 'new_user' ? 'New username' : 'Deactivation'}</td>
            <td>{requestSubject(r)}</td>
            <td>{r.status}</td>
            <td>
              {props.decide && r.status === 'pending' ? (
                <>
                  <ActionForm ctx={props.ctx} action={`/admin/requests/${r.id}/approve`} label="Approve" />
                  <ActionForm ctx={props.ctx} action={`/admin/requests/${r.id}/reject`} label="Reject">
                    <label>
                      Reason <input type="text" name="reason" maxLength={1000} required />
                    </label>
                  </ActionForm>
                </>
              ) : (
                (r.reason ?? '')
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function UserTable(props: { users: AdminUserView[]; children?: (u: AdminUserView) => ComponentChildren }) {
  if (!props.users.length) return <p>No users.</p>;
  return (
    <table class="compact">
      <thead>
        <tr>
          <th>Username</th>
          <th>Name</th>
          <th>Status</th>
          <th>Methods</th>
          <th>Last sign-in</th>
          {props.children ? <th>Action</th> : null}
        </tr>
      </thead>
      <tbody>
        {props.users.map((u) => (
          <tr key={u.id} data-user={u.id}>
            <td>
              <a href={`/admin/users/${u.id}`}>{u.login}</a>
            </td>
            <td>
              {u.firstName} {u.lastName}
            </td>
            <td>{u.status}</td>
            <td>{u.methods.map((m) => m.label).join(', ') || 'none'}</td>
            <td>{when(u.lastLoginAt)}</td>
            {props.children ? <td>{props.children(u)}</td> : null}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export interface NewUserForm {
  firstName: string;
  lastName: string;
  email: string;
  apps: string[];
}

export function FirmPage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  users: AdminUserView[];
  requests: RequestView[];
  form?: NewUserForm | undefined;
  notice?: Notice | undefined;
}) {
  const f = props.form ?? { firstName: '', lastName: '', email: '', apps: ['portal'] };
  return (
    <ConsolePage ctx={props.ctx} links={props.links} title="Your firm" notice={props.notice}>
      <h2>Users</h2>
      <UserTable users={props.users}>
        {(u) =>
          u.status === 'DEPROVISIONED' ? null : (
            <ActionForm
              ctx={props.ctx}
              action={`/admin/users/${u.id}/deactivation-request`}
              label="Request deactivation"
              fields={{ from: 'firm' }}
            />
          )
        }
      </UserTable>
      <h2>Request a new username</h2>
      <form method="post" action="/admin/firm/requests" novalidate>
        <Csrf ctx={props.ctx} />
        <label for="f-firstName">First name</label>
        <input
          type="text"
          id="f-firstName"
          name="firstName"
          value={f.firstName}
          maxLength={100}
          autocomplete="off"
          required
        />
        <label for="f-lastName">Last name</label>
        <input
          type="text"
          id="f-lastName"
          name="lastName"
          value={f.lastName}
          maxLength={100}
          autocomplete="off"
          required
        />
        <label for="f-email">Email</label>
        <input id="f-email" name="email" type="email" value={f.email} maxLength={254} autocomplete="off" required />
        <fieldset>
          <legend>Apps</legend>
          <label>
            <input type="checkbox" name="apps" value="portal" checked={f.apps.includes('portal')} /> TRAQS website
          </label>
          <label>
            <input type="checkbox" name="apps" value="download" checked={f.apps.includes('download')} /> API Download
          </label>
        </fieldset>
        <button type="submit">Request username</button>
      </form>
      <h2>Your requests</h2>
      <RequestTable ctx={props.ctx} requests={props.requests} decide={false} />
    </ConsolePage>
  );
}

function SearchForm({ action, q }: { action: string; q: string }) {
  return (
    <form method="get" action={action} class="inline">
      <label for="f-q">Find a user (name or email starts with)</label>
      <input type="text" id="f-q" name="q" value={q} maxLength={100} />
      <button type="submit">Search</button>
    </form>
  );
}

export function OperationsPage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  requests: RequestView[];
  reports: ReportView[];
  q: string;
  found: AdminUserView[] | undefined;
  notice?: Notice | undefined;
}) {
  return (
    <ConsolePage ctx={props.ctx} links={props.links} title="Operations" notice={props.notice}>
      <h2>Request queue</h2>
      <RequestTable ctx={props.ctx} requests={props.requests} decide={true} />
      <h2>Users</h2>
      <SearchForm action="/admin/operations" q={props.q} />
      {props.found ? <UserTable users={props.found} /> : null}
      <h2>Suspicious-activity reports</h2>
      {props.reports.length ? (
        <ul>
          {props.reports.map((r) => (
            <li key={r.id}>
              <a href={`/admin/reports/${r.id}`}>
                {when(r.createdAt)} — {r.userLogin ?? r.userId}
              </a>{' '}
              ({r.status})
            </li>
          ))}
        </ul>
      ) : (
        <p>No open reports.</p>
      )}
    </ConsolePage>
  );
}

export function SupportPage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  q: string;
  found: AdminUserView[] | undefined;
}) {
  return (
    <ConsolePage ctx={props.ctx} links={props.links} title="Support">
      <p>Find the caller, then reset a lost device, send a password-reset email, unlock, or fix app access.</p>
      {props.links.sso ? (
        <p>
          Firms' identity providers for federated sign-in: <a href="/admin/sso">Firm single sign-on</a>.
        </p>
      ) : null}
      <SearchForm action="/admin/support" q={props.q} />
      {props.found ? <UserTable users={props.found} /> : null}
    </ConsolePage>
  );
}

export function ReportPage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  report: ReportView;
  notice?: Notice | undefined;
}) {
  const r = props.report;
  const base = `/admin/reports/${r.id}`;
  return (
    <ConsolePage ctx={props.ctx} links={props.links} title="Suspicious-activity report" notice={props.notice}>
      <dl>
        <dt>User</dt>
        <dd>
          <a href={`/admin/users/${r.userId}`}>{r.userLogin ?? r.userId}</a> {r.userName ?? ''}
        </dd>
        <dt>Reported</dt>
        <dd>{when(r.createdAt)}</dd>
        <dt>From the email</dt>
        <dd>{r.source}</dd>
        <dt>Address and browser</dt>
        <dd>
          {r.ip ?? '—'} {r.userAgent ?? ''}
        </dd>
        <dt>Status</dt>
        <dd>
          {r.status}
          {r.note ? ` — ${r.note}` : ''}
        </dd>
      </dl>
      {r.status === 'open' ? (
        <>
          <ActionForm ctx={props.ctx} action={`${base}/sign-out`} label="Sign the user out and revoke refresh tokens" />
          <ActionForm ctx={props.ctx} action={`${base}/suspend`} label="Suspend the user" danger />
          <ActionForm ctx={props.ctx} action={`${base}/close`} label="Close the report">
            <label>
              Note <input type="text" name="note" maxLength={1000} required />
            </label>
          </ActionForm>
        </>
      ) : null}
    </ConsolePage>
  );
}

/** What the user page offers, by the principal's roles (display only). */
export interface UserPageAbilities {
  operations: boolean;
  support: boolean;
  requestDeactivation: boolean;
}

/** A firm's identity provider as the Support console shows it (read-only; `traqs idp` manages it). */
export interface FirmIdentityProvider {
  id: string;
  name: string;
  protocol: string;
}

export function UserPage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  user: AdminUserView;
  factors: FactorView[] | undefined;
  tokens: RefreshTokenView[] | undefined;
  can: UserPageAbilities;
  notice?: Notice | undefined;
  /** Support only: the firm's identity provider, null when the firm has none. */
  firmIdp?: FirmIdentityProvider | null;
}) {
  const u = props.user;
  const base = `/admin/users/${u.id}`;
  const { ctx, can } = props;
  return (
    <ConsolePage ctx={ctx} links={props.links} title={u.login} notice={props.notice}>
      <dl>
        <dt>Name</dt>
        <dd>
          {u.firstName} {u.lastName}
        </dd>
        <dt>Firm</dt>
        <dd>{u.firmName ?? u.firmId}</dd>
        <dt>Status</dt>
        <dd data-status={u.status}>{u.status}</dd>
        <dt>Sign-in</dt>
        <dd>{u.authMode === 'federated' ? 'Federated (firm SSO)' : 'Local (password and MFA)'}</dd>
        {props.firmIdp !== undefined ? (
          <>
            <dt>Firm SSO</dt>
            <dd data-firm-idp="">
              {props.firmIdp
                ? `${props.firmIdp.name} (${props.firmIdp.protocol === 'saml' ? 'SAML 2.0' : 'OpenID Connect'}, ${props.firmIdp.id})`
                : 'none configured (npx traqs idp add)'}{' '}
              {props.links.sso ? <a href="/admin/sso">Manage firm single sign-on</a> : null}
            </dd>
          </>
        ) : null}
        <dt>Last sign-in</dt>
        <dd>{when(u.lastLoginAt)}</dd>
        <dt>Apps</dt>
        <dd>{u.apps.join(', ') || 'none'}</dd>
      </dl>
      {can.requestDeactivation && u.status !== 'DEPROVISIONED' ? (
        <ActionForm ctx={ctx} action={`${base}/deactivation-request`} label="Request deactivation" />
      ) : null}
      {can.operations ? (
        <section>
          <h2>Operations</h2>
          <ActionForm ctx={ctx} action={`${base}/resend-enrollment`} label="Resend enrollment email" />
          <ActionForm ctx={ctx} action={`${base}/unlock`} label="Unlock" />
          {u.status === 'SUSPENDED' ? (
            <ActionForm ctx={ctx} action={`${base}/unsuspend`} label="Unsuspend" />
          ) : (
            <ActionForm ctx={ctx} action={`${base}/suspend`} label="Suspend" danger />
          )}
          <ActionForm ctx={ctx} action={`${base}/deactivate`} label="Deactivate" danger />
          <h3>Personal information</h3>
          <form method="post" action={`${base}/personal-info`}>
            <Csrf ctx={ctx} />
            <label for="p-firstName">First name</label>
            <input type="text" id="p-firstName" name="firstName" value={u.firstName} maxLength={100} />
            <label for="p-lastName">Last name</label>
            <input type="text" id="p-lastName" name="lastName" value={u.lastName} maxLength={100} />
            <label for="p-email">Email</label>
            <input id="p-email" name="email" type="email" value={u.email} maxLength={254} />
            <label for="p-mobilePhone">Mobile phone</label>
            <input type="text" id="p-mobilePhone" name="mobilePhone" value={u.mobilePhone ?? ''} maxLength={40} />
            <label for="p-primaryPhone">Primary phone</label>
            <input type="text" id="p-primaryPhone" name="primaryPhone" value={u.primaryPhone ?? ''} maxLength={40} />
            <button type="submit">Save personal information</button>
          </form>
        </section>
      ) : null}
      {can.support ? (
        <section>
          <h2>Support</h2>
          <h3>Security methods</h3>
          {props.factors?.length ? (
            <ul>
              {props.factors.map((f) => (
                <li key={f.id}>
                  {f.name} ({f.status}, last used {when(f.lastUsedAt)}){' '}
                  <ActionForm
                    ctx={ctx}
                    action={`${base}/reset-factor`}
                    label="Reset"
                    fields={{ factorId: f.id }}
                    danger
                  />
                </li>
              ))}
            </ul>
          ) : (
            <p>No security methods.</p>
          )}
          <ActionForm ctx={ctx} action={`${base}/reset-factors`} label="Reset all methods (lost device)" danger />
          <ActionForm ctx={ctx} action={`${base}/password-reset`} label="Send password-reset email" />
          <ActionForm ctx={ctx} action={`${base}/unlock`} label="Unlock" />
          <ActionForm
            ctx={ctx}
            action={`${base}/auth-mode`}
            label={u.authMode === 'federated' ? 'Switch to local sign-in' : 'Switch to federated sign-in'}
            fields={{ mode: u.authMode === 'federated' ? 'local' : 'federated' }}
            danger
          />
          <h3>Apps</h3>
          {(['portal', 'download'] as const).map((app) =>
            u.apps.includes(app) ? (
              <ActionForm
                key={app}
                ctx={ctx}
                action={`${base}/unassign-app`}
                label={`Unassign ${app}`}
                fields={{ app }}
              />
            ) : (
              <ActionForm key={app} ctx={ctx} action={`${base}/assign-app`} label={`Assign ${app}`} fields={{ app }} />
            ),
          )}
          <h3>Refresh tokens</h3>
          {props.tokens?.length ? (
            <ul>
              {props.tokens.map((t) => (
                <li key={t.id}>
                  {t.label} ({t.clientId}), created {when(t.createdAt)}, last used {when(t.lastUsedAt)}
                  {t.revokedAt ? ` — revoked ${when(t.revokedAt)}` : ''}{' '}
                  {t.revokedAt ? null : (
                    <ActionForm
                      ctx={ctx}
                      action={`${base}/revoke-token`}
                      label="Revoke"
                      fields={{ tokenId: t.id }}
                      danger
                    />
                  )}
                </li>
              ))}
            </ul>
          ) : (
            <p>No refresh tokens.</p>
          )}
        </section>
      ) : null}
    </ConsolePage>
  );
}

export interface AuditFilterForm {
  actor: string;
  target: string;
  action: string;
  outcome: string;
  from: string;
  to: string;
}

function FilterField(props: { id: string; name: string; label: string; value: string }) {
  return (
    <div>
      <label for={props.id}>{props.label}</label>
      <input type="text" id={props.id} name={props.name} value={props.value} maxLength={100} />
    </div>
  );
}

export function AuditPage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  filter: AuditFilterForm;
  query: string;
  events: AuditRow[];
  limit: number;
  exportLimit: number;
  notice?: Notice | undefined;
}) {
  const f = props.filter;
  const qs = props.query ? `?${props.query}` : '';
  return (
    <ConsolePage ctx={props.ctx} links={props.links} title="Audit log" notice={props.notice}>
      <form method="get" action="/admin/audit" class="filters">
        <FilterField id="a-actor" name="actor" label="Actor id" value={f.actor} />
        <FilterField id="a-target" name="target" label="Target id" value={f.target} />
        <FilterField id="a-action" name="action" label="Action starts with" value={f.action} />
        <div>
          <label for="a-outcome">Outcome</label>
          <select id="a-outcome" name="outcome">
            {['', 'success', 'failure', 'denied'].map((o) => (
              <option key={o} value={o} selected={f.outcome === o}>
                {o || 'any'}
              </option>
            ))}
          </select>
        </div>
        <FilterField id="a-from" name="from" label="From (UTC, YYYY-MM-DD or ISO time)" value={f.from} />
        <FilterField id="a-to" name="to" label="Until (UTC)" value={f.to} />
        <button type="submit">Filter</button>
      </form>
      <p class="links">
        <a href={`/admin/audit.csv${qs}`}>Export CSV</a> · <a href={`/admin/audit.json${qs}`}>Export JSON</a>
      </p>
      <p class="hint">
        The newest {props.limit} matching events; the exports hold up to {props.exportLimit}.
      </p>
      <table class="compact">
        <thead>
          <tr>
            <th>Time</th>
            <th>Actor</th>
            <th>Action</th>
            <th>Target</th>
            <th>Outcome</th>
            <th>Address</th>
          </tr>
        </thead>
        <tbody>
          {props.events.map((e) => (
            <tr key={e.id}>
              <td>{when(e.at)}</td>
              <td>{e.actor_id ?? 'system'}</td>
              <td>{e.action}</td>
              <td>{e.target_id ?? ''}</td>
              <td>{e.outcome}</td>
              <td>{e.ip ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ConsolePage>
  );
}

/** "Verify it's you" for an administrator before a sensitive action (code factors). */
export function AdminVerifyPage(props: {
  ctx: PageContext;
  factors: FactorRow[];
  chosen: FactorRow | undefined;
  /** For a FastPass factor: the options for `navigator.credentials.get()`, if it can be used here. */
  fastPassOptions?: unknown;
  next: string;
  error?: string | undefined;
}) {
  const { chosen } = props;
  const fastPass = chosen?.factor_type === 'webauthn';
  return (
    <Layout ctx={props.ctx} title="Verify it's you" scripts={fastPass ? [FASTPASS_SCRIPT] : []}>
      <div class="card">
        <h1>Verify it's you</h1>
        {chosen && fastPass ? (
          <>
            <p>
              This administrative action needs your own second factor verified in the last 5 minutes. Confirm with{' '}
              <strong>{chosen.name}</strong>: choose the button, then use Windows Hello, Touch ID or your device PIN.
            </p>
            <FastPassReverifyForm
              ctx={props.ctx}
              action="/admin/verify"
              options={props.fastPassOptions}
              factorId={chosen.id}
              next={props.next}
              error={props.error}
            />
            <OtherVerifyMethods factors={props.factors} chosen={chosen} next={props.next} />
          </>
        ) : chosen ? (
          <>
            <p>
              This administrative action needs your own second factor verified in the last 5 minutes. Enter a current
              code from <strong>{chosen.name}</strong>, then repeat the action.
            </p>
            <form method="post" action="/admin/verify" novalidate>
              <Csrf ctx={props.ctx} />
              <input type="hidden" name="factorId" value={chosen.id} />
              <input type="hidden" name="next" value={props.next} />
              <label for="f-passCode">Code</label>
              <input
                id="f-passCode"
                name="passCode"
                inputMode="numeric"
                autocomplete="one-time-code"
                maxLength={20}
                aria-invalid={props.error ? 'true' : undefined}
              />
              {props.error ? (
                <p class="field-error" role="alert">
                  {props.error}
                </p>
              ) : null}
              <button type="submit">Verify</button>
            </form>
            <OtherVerifyMethods factors={props.factors} chosen={chosen} next={props.next} />
          </>
        ) : (
          <p class="alert" role="alert">
            You have no security method to verify with. Add one in your profile first.
          </p>
        )}
        <p class="links">
          <a href={props.next}>Cancel</a>
        </p>
      </div>
    </Layout>
  );
}

function OtherVerifyMethods(props: { factors: FactorRow[]; chosen: FactorRow; next: string }) {
  const others = props.factors.filter((f) => f.id !== props.chosen.id);
  if (others.length === 0) return null;
  return (
    <ul class="links">
      {others.map((f) => (
        <li key={f.id}>
          <a href={`/admin/verify?next=${encodeURIComponent(props.next)}&factor=${encodeURIComponent(f.id)}`}>
            Use {f.name} instead
          </a>
        </li>
      ))}
    </ul>
  );
}

/** The "Add" form of "Firm single sign-on" as last submitted (never the client secret). */
export interface IdentityProviderForm {
  firmId: string;
  name: string;
  protocol: string;
  metadataXml: string;
  userAttribute: string;
  issuer: string;
  clientId: string;
  userClaim: string;
}

export const EMPTY_IDP_FORM: IdentityProviderForm = {
  firmId: '',
  name: '',
  protocol: 'saml',
  metadataXml: '',
  userAttribute: '',
  issuer: '',
  clientId: '',
  userClaim: 'email',
};

/** Field limits, the same on the page and in the route's validation. */
export const IDP_FIELD_MAX = {
  firmId: 64,
  name: 200,
  protocol: 10,
  metadataXml: 256 * 1024,
  userAttribute: 256,
  issuer: 1024,
  clientId: 256,
  clientSecret: 1024,
  userClaim: 256,
} as const;

/** One row of "Firm single sign-on": what `traqs idp show` prints, without secrets. */
export interface IdentityProviderRowView {
  id: string;
  firmName: string;
  name: string;
  protocol: 'saml' | 'oidc';
  createdAt: number;
  /** SAML: our SP metadata and ACS URLs; OIDC: the redirect URI to register at the provider. */
  sp: { metadataUrl: string; acsUrl: string; redirectUri: string };
}

function IdpField(props: {
  id: string;
  name: keyof IdentityProviderForm;
  label: string;
  form: IdentityProviderForm;
  errors: Partial<Record<string, string>>;
  hint?: string;
  required?: boolean;
}) {
  const error = props.errors[props.name];
  const describedBy = [props.hint ? `${props.id}-hint` : '', error ? `${props.id}-error` : ''].filter(Boolean);
  return (
    <>
      <label for={props.id}>{props.label}</label>
      {props.hint ? (
        <p class="hint" id={`${props.id}-hint`}>
          {props.hint}
        </p>
      ) : null}
      <input
        type="text"
        id={props.id}
        name={props.name}
        value={props.form[props.name]}
        maxLength={IDP_FIELD_MAX[props.name]}
        autocomplete="off"
        required={props.required}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={describedBy.length ? describedBy.join(' ') : undefined}
      />
      <FieldError id={`${props.id}-error`} error={error} />
    </>
  );
}

/** The "Update metadata" form of one SAML configuration, sent back with its problem. */
export interface MetadataUpdateForm {
  id: string;
  metadataXml: string;
  error?: string;
}

/**
 * "Update metadata" for one SAML configuration: new metadata of the same IdP (entity id), pasted
 * like Add's. Closed unless it comes back with a problem.
 */
function MetadataUpdate(props: { ctx: PageContext; idp: IdentityProviderRowView; form?: MetadataUpdateForm }) {
  const { idp, form } = props;
  const mine = form?.id === idp.id ? form : undefined;
  const field = `u-${idp.id}-metadataXml`;
  return (
    <details open={mine ? true : undefined}>
      <summary>Update metadata</summary>
      <form method="post" action={`/admin/sso/${idp.id}/metadata`} novalidate data-idp-update={idp.id}>
        <Csrf ctx={props.ctx} />
        <label for={field}>New IdP metadata XML</label>
        <p class="hint" id={`${field}-hint`}>
          The same IdP's new metadata, e.g. at a signing-certificate rollover: the SSO URL and certificates are
          replaced, our SP metadata and ACS URLs stay. Up to 256 KiB, pasted.
        </p>
        <textarea
          id={field}
          name="metadataXml"
          rows={6}
          maxLength={IDP_FIELD_MAX.metadataXml}
          spellcheck={false}
          aria-invalid={mine?.error ? 'true' : undefined}
          aria-describedby={[`${field}-hint`, mine?.error ? `${field}-error` : ''].filter(Boolean).join(' ')}
        >
          {mine?.metadataXml ?? ''}
        </textarea>
        <FieldError id={`${field}-error`} error={mine?.error} />
        <button type="submit">Update metadata</button>
      </form>
    </details>
  );
}

function FieldError({ id, error }: { id: string; error: string | undefined }) {
  return error ? (
    <p class="field-error" id={id} role="alert">
      {error}
    </p>
  ) : null;
}

/**
 * "Firm single sign-on" (issue #8): every firm's identity provider with our side of it, a Remove
 * button each, and the Add form. SAML metadata is pasted, never fetched by URL from here (SSRF).
 */
export function IdentityProvidersPage(props: {
  ctx: PageContext;
  links: ConsoleLinks;
  providers: IdentityProviderRowView[];
  firms: { id: string; name: string }[];
  form: IdentityProviderForm;
  /** The Add form's problem: the service's message (`form`) or a field's. */
  errors: Partial<Record<keyof IdentityProviderForm | 'form', string>>;
  /** An "Update metadata" form that came back with a problem. */
  update?: MetadataUpdateForm | undefined;
  notice?: Notice | undefined;
}) {
  const { ctx, form: f, errors } = props;
  const oidc = f.protocol === 'oidc';
  return (
    <ConsolePage ctx={ctx} links={props.links} title="Firm single sign-on" notice={props.notice}>
      <p>
        A firm's identity provider signs in its users whose sign-in mode is federated (switched on the user page). One
        per firm. Give the firm our side: the SP metadata URL (SAML) or the redirect URI (OpenID Connect).
      </p>
      <h2>Identity providers</h2>
      {props.providers.length ? (
        <table class="compact">
          <thead>
            <tr>
              <th>Firm</th>
              <th>Name</th>
              <th>Protocol</th>
              <th>Created</th>
              <th>Our side</th>
              <th>Action</th>
            </tr>
          </thead>
          <tbody>
            {props.providers.map((v) => (
              <tr key={v.id} data-idp={v.id}>
                <td>{v.firmName}</td>
                <td>
                  {v.name} <span class="hint">({v.id})</span>
                </td>
                <td>{v.protocol === 'saml' ? 'SAML 2.0' : 'OpenID Connect'}</td>
                <td>{when(v.createdAt)}</td>
                <td>
                  {v.protocol === 'saml' ? (
                    <dl>
                      <dt>SP metadata URL</dt>
                      <dd>
                        <a href={v.sp.metadataUrl}>{v.sp.metadataUrl}</a>
                      </dd>
                      <dt>ACS URL (HTTP-POST)</dt>
                      <dd>{v.sp.acsUrl}</dd>
                    </dl>
                  ) : (
                    <dl>
                      <dt>Redirect URI</dt>
                      <dd>{v.sp.redirectUri}</dd>
                    </dl>
                  )}
                </td>
                <td>
                  <ActionForm ctx={ctx} action={`/admin/sso/${v.id}/remove`} label={`Remove ${v.name}`} danger />
                  {v.protocol === 'saml' ? <MetadataUpdate ctx={ctx} idp={v} form={props.update} /> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>No identity providers.</p>
      )}
      <h2>Add an identity provider</h2>
      <NoticeBox id="idp-add-error" notice={errors.form ? { ok: false, text: errors.form } : undefined} />
      <form
        method="post"
        action="/admin/sso"
        novalidate
        aria-describedby={errors.form ? 'idp-add-error' : undefined}
        data-idp-add=""
      >
        <Csrf ctx={ctx} />
        <label for="i-firmId">Firm</label>
        <select
          id="i-firmId"
          name="firmId"
          required
          aria-invalid={errors.firmId ? 'true' : undefined}
          aria-describedby={errors.firmId ? 'i-firmId-error' : undefined}
        >
          <option value="" selected={!f.firmId}>
            Choose a firm
          </option>
          {props.firms.map((firm) => (
            <option key={firm.id} value={firm.id} selected={f.firmId === firm.id}>
              {firm.name}
            </option>
          ))}
        </select>
        <FieldError id="i-firmId-error" error={errors.firmId} />
        <IdpField id="i-name" name="name" label="Display name" hint='e.g. "Acme Entra ID"' form={f} errors={errors} />
        <fieldset>
          <legend>Protocol</legend>
          <label>
            <input type="radio" name="protocol" value="saml" checked={!oidc} /> SAML 2.0
          </label>
          <label>
            <input type="radio" name="protocol" value="oidc" checked={oidc} /> OpenID Connect
          </label>
          <FieldError id="i-protocol-error" error={errors.protocol} />
        </fieldset>
        <fieldset>
          <legend>SAML 2.0</legend>
          <label for="i-metadataXml">IdP metadata XML</label>
          <p class="hint" id="i-metadataXml-hint">
            Paste the metadata XML the firm gives you (up to 256 KiB). The console does not fetch metadata by URL: a
            server fetching addresses typed into a page can be turned against internal systems (SSRF). To read it from a
            URL or a file, use <code>npx traqs idp add --metadata</code>.
          </p>
          <textarea
            id="i-metadataXml"
            name="metadataXml"
            rows={8}
            maxLength={IDP_FIELD_MAX.metadataXml}
            spellcheck={false}
            aria-invalid={errors.metadataXml ? 'true' : undefined}
            aria-describedby={['i-metadataXml-hint', errors.metadataXml ? 'i-metadataXml-error' : '']
              .filter(Boolean)
              .join(' ')}
          >
            {f.metadataXml}
          </textarea>
          <FieldError id="i-metadataXml-error" error={errors.metadataXml} />
          <IdpField
            id="i-userAttribute"
            name="userAttribute"
            label="User attribute (optional)"
            hint="The attribute holding the username; empty: the NameID (email address)."
            form={f}
            errors={errors}
          />
        </fieldset>
        <fieldset>
          <legend>OpenID Connect</legend>
          <IdpField
            id="i-issuer"
            name="issuer"
            label="Issuer URL"
            hint="https; discovery at {issuer}/.well-known/openid-configuration."
            form={f}
            errors={errors}
          />
          <IdpField id="i-clientId" name="clientId" label="Client id" form={f} errors={errors} />
          <label for="i-clientSecret">Client secret</label>
          <input
            type="password"
            id="i-clientSecret"
            name="clientSecret"
            maxLength={IDP_FIELD_MAX.clientSecret}
            autocomplete="off"
          />
          <IdpField id="i-userClaim" name="userClaim" label="User claim" form={f} errors={errors} />
        </fieldset>
        <button type="submit">Add identity provider</button>
      </form>
    </ConsolePage>
  );
}
