import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { Csrf, Layout, type PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';
import { requestContext } from '../web/validate.ts';
import type { ReportService } from './service.ts';

const query = z.object({ token: z.string().max(200).default(''), about: z.string().max(60).default('') });

/** The "this wasn't me" link of account-activity emails: a confirmation page, then the report. */
export function registerReportPages(
  app: FastifyInstance,
  deps: { reports: ReportService; page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'> },
): void {
  const invalid = (ctx: PageContext, reason: string) => (
    <Layout ctx={ctx} title="Link no longer valid">
      <div class="card">
        <h1>This link is no longer valid</h1>
        <p class="alert" role="alert">
          {reason}
        </p>
        <p>
          To report activity you do not recognise, call {ctx.contacts.operationsName} at {ctx.contacts.operationsPhone}{' '}
          or write to <a href={`mailto:${ctx.contacts.operationsEmail}`}>{ctx.contacts.operationsEmail}</a>.
        </p>
      </div>
    </Layout>
  );

  // GET only shows the page: mail scanners that follow links must not file reports.
  app.get('/report', async (req, reply) => {
    const q = query.safeParse(req.query);
    const ctx = { ...deps.page(), csrfToken: reply.generateCsrf() };
    const state = q.success ? await deps.reports.inspect(q.data.token) : 'unknown';
    if (!q.success || state !== 'valid') {
      const reason =
        state === 'used'
          ? 'This report link has already been used: the report was filed.'
          : state === 'expired'
            ? 'Report links are valid for 7 days after the email was sent.'
            : 'This report link is not valid.';
      return sendPage(reply, invalid(ctx, reason), 410);
    }
    return sendPage(
      reply,
      <Layout ctx={ctx} title="Report suspicious activity">
        <div class="card">
          <h1>Report activity you do not recognise</h1>
          <p>When you report it, we:</p>
          <ul>
            <li>sign you out of every browser and device,</li>
            <li>end every sign-in in progress on your account,</li>
            <li>ask {ctx.contacts.operationsName} to look into it; they will contact you.</li>
          </ul>
          <form method="post" action="/report">
            <Csrf ctx={ctx} />
            <input type="hidden" name="token" value={q.data.token} />
            <input type="hidden" name="about" value={q.data.about} />
            <button type="submit">Report and sign me out everywhere</button>
          </form>
        </div>
      </Layout>,
    );
  });

  app.post('/report', { preHandler: app.csrfProtection }, async (req, reply) => {
    const body = query.safeParse(req.body ?? {});
    const ctx = { ...deps.page(), csrfToken: reply.generateCsrf() };
    const result = body.success
      ? await deps.reports.file(body.data.token, body.data.about, requestContext(req))
      : { ok: false };
    if (!result.ok) return sendPage(reply, invalid(ctx, 'This report link has already been used or has expired.'), 410);
    return sendPage(
      reply,
      <Layout ctx={ctx} title="Report received">
        <div class="card">
          <h1>Thank you — your report was received</h1>
          <p class="success" role="status">
            You have been signed out everywhere. {ctx.contacts.operationsName} will review the activity and contact you.
          </p>
          <h2>What you should do now</h2>
          <ol>
            <li>
              Change your password: use <a href="/signin/forgot-password">Forgot password?</a>.
            </li>
            <li>Check the security methods on your profile and remove any you do not recognise.</li>
            <li>
              Questions: {ctx.contacts.operationsName}, {ctx.contacts.operationsPhone},{' '}
              <a href={`mailto:${ctx.contacts.operationsEmail}`}>{ctx.contacts.operationsEmail}</a>.
            </li>
          </ol>
        </div>
      </Layout>,
    );
  });
}
