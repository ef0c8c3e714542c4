import type { FastifyInstance } from 'fastify';
import type { SessionManager } from '../authn/sessions.ts';
import type { Store } from '../db/store.ts';
import { Layout, type PageContext } from '../web/layout.tsx';
import { renderHtml } from '../web/render.ts';

const date = (ms: number | null) =>
  ms === null ? '—' : `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)} UTC`;

/** The signed-in home of the idp ("MFA profile"): who you are, your firm and your methods. */
export function registerHome(
  app: FastifyInstance,
  deps: {
    store: Store;
    sessions: SessionManager;
    sidCookie: string;
    page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
  },
): void {
  app.get('/', async (req, reply) => {
    const session = await deps.sessions.resume(req.cookies[deps.sidCookie]);
    const user = session ? await deps.store.repos.users.findUserById(session.user_id) : undefined;
    if (!session || !user || user.status === 'SUSPENDED' || user.status === 'DEPROVISIONED') {
      return reply.redirect('/signin', 303);
    }
    const repos = deps.store.repos;
    const [firm, factors, roles, apps] = await Promise.all([
      repos.firms.findFirmById(user.firm_id),
      repos.factors.listFactors(user.id),
      repos.users.listRoles(user.id),
      repos.users.listApps(user.id),
    ]);
    const active = factors.filter((f) => f.status === 'ACTIVE');
    const ctx: PageContext = { ...deps.page(), csrfToken: reply.generateCsrf(), signedInAs: user.login };
    return reply.type('text/html; charset=utf-8').send(
      renderHtml(
        <Layout ctx={ctx} title="Your profile">
          <div class="card">
            <h1>
              Welcome, {user.first_name} {user.last_name}
            </h1>
            <h2>Personal information</h2>
            <dl class="facts">
              <dt>Name</dt>
              <dd>
                {user.first_name} {user.last_name}
              </dd>
              <dt>Username</dt>
              <dd id="username">{user.login}</dd>
              <dt>Firm</dt>
              <dd id="firm">{firm?.name ?? '—'}</dd>
              <dt>Roles</dt>
              <dd>{roles.join(', ') || 'user'}</dd>
              <dt>Applications</dt>
              <dd>{apps.join(', ') || 'none assigned'}</dd>
            </dl>
            <p class="hint">
              Personal information cannot be edited here: your firm's Super Account Administrator asks{' '}
              {ctx.contacts.operationsName} ({ctx.contacts.operationsPhone}) to change it.
            </p>
          </div>
          <div class="card">
            <h2>Security methods</h2>
            {active.length === 1 ? (
              <p class="notice">
                You have one sign-in method. Enroll a second one on another device so that a lost phone does not lock
                you out.
              </p>
            ) : null}
            <table>
              <thead>
                <tr>
                  <th scope="col">Method</th>
                  <th scope="col">Enrolled</th>
                  <th scope="col">Last used</th>
                </tr>
              </thead>
              <tbody id="factors">
                {active.map((f) => (
                  <tr key={f.id}>
                    <td>{f.name}</td>
                    <td>{date(f.activated_at)}</td>
                    <td>{date(f.last_used_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p class="hint">Last sign-in: {date(user.last_login_at)}</p>
          </div>
        </Layout>,
      ),
    );
  });
}
