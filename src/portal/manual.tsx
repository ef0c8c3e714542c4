import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FACILITIES } from '../refdata/facilities.ts';
import { Layout, type PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';
import type { PortalService, PortalUser } from './service.ts';

/**
 * The Manual page of the API menu (issue #5 item 3): browse the reference data the user is
 * entitled to by facility, file and date, and download it in the browser. The portal asks the
 * download API itself, as the user, with the access token it obtained at sign-in (RFC 8707
 * `resource` = the download API) — the same checks as for programs, no refresh token involved.
 */

export interface ManualDeps {
  service: PortalService;
  downloadUrl: string;
  /** preHandler that signs the user in (or redirects), and the signed-in user of a request. */
  requireSignIn: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  who: (req: FastifyRequest) => PortalUser;
  pageCtx: (reply: FastifyReply, who?: PortalUser) => PageContext;
}

interface CatalogEntry {
  facility: string;
  file: string;
  date: string;
  size: number;
  sha256: string;
  records: number;
}

const CODE = /^[A-Z0-9-]{1,20}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** What the download API answered, for a page: a 401 means the portal's token must be renewed. */
type ApiProblem = { status: number; message: string };

export function registerManual(api: FastifyInstance, deps: ManualDeps): void {
  const get = { preHandler: deps.requireSignIn };

  /** Back through the idp (single sign-on, no password) for a fresh download-API token. */
  const renewToken = (reply: FastifyReply) => reply.redirect('/login?next=%2Fapi%2Fmanual', 303);

  async function problemOf(res: Response): Promise<ApiProblem> {
    let message = `The download service answered ${res.status}.`;
    try {
      const body = (await res.json()) as { error_description?: unknown };
      if (typeof body.error_description === 'string') message = body.error_description;
    } catch {
      // Not JSON: keep the generic message.
    }
    return { status: res.status, message };
  }

  api.get('/api/manual', get, async (req, reply) => {
    const w = deps.who(req);
    if (!w.apps.includes('download')) {
      return sendPage(reply, <ManualPage ctx={deps.pageCtx(reply, w)} notAssigned />, 403);
    }
    const token = deps.service.downloadToken(w);
    if (!token) return renewToken(reply);
    let res: Response;
    try {
      res = await fetch(`${deps.downloadUrl}/v1/files`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal: AbortSignal.timeout(10_000),
      });
    } catch {
      return sendPage(
        reply,
        <ManualPage ctx={deps.pageCtx(reply, w)} problem="The download service cannot be reached right now." />,
        503,
      );
    }
    if (res.status === 401) return renewToken(reply);
    if (!res.ok) {
      const p = await problemOf(res);
      return sendPage(reply, <ManualPage ctx={deps.pageCtx(reply, w)} problem={p.message} />, p.status);
    }
    const body = (await res.json()) as { files?: CatalogEntry[] };
    const query = req.query as Record<string, unknown>;
    const facility = typeof query.facility === 'string' && CODE.test(query.facility) ? query.facility : undefined;
    return sendPage(reply, <ManualPage ctx={deps.pageCtx(reply, w)} files={body.files ?? []} facility={facility} />);
  });

  api.get('/api/manual/download', get, async (req, reply) => {
    const w = deps.who(req);
    const q = req.query as Record<string, unknown>;
    const facility = typeof q.facility === 'string' ? q.facility : '';
    const file = typeof q.file === 'string' ? q.file : '';
    const date = typeof q.date === 'string' ? q.date : '';
    if (!CODE.test(facility) || !CODE.test(file) || (date !== '' && !DATE.test(date))) {
      return sendPage(
        reply,
        <ManualPage ctx={deps.pageCtx(reply, w)} problem="That is not a file of the catalog." />,
        400,
      );
    }
    const token = deps.service.downloadToken(w);
    if (!token) return renewToken(reply);
    const url = `${deps.downloadUrl}/v1/files/${facility}/${file}${date ? `?date=${date}` : ''}`;
    let res: Response;
    try {
      res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
    } catch {
      return sendPage(
        reply,
        <ManualPage ctx={deps.pageCtx(reply, w)} problem="The download service cannot be reached right now." />,
        503,
      );
    }
    if (res.status === 401) return renewToken(reply);
    if (!res.ok || !res.body) {
      const p = await problemOf(res);
      return sendPage(reply, <ManualPage ctx={deps.pageCtx(reply, w)} problem={p.message} />, p.status);
    }
    // The file streams through: authorization and lookup happened at the download service.
    for (const name of ['content-type', 'content-length', 'content-disposition', 'etag', 'last-modified']) {
      const value = res.headers.get(name);
      if (value) reply.header(name, value);
    }
    reply.header('cache-control', 'private, no-store');
    return reply.send(Readable.fromWeb(res.body as unknown as WebReadableStream));
  });
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The catalog grouped by facility, then file, newest date first. */
function ManualPage(props: {
  ctx: PageContext;
  files?: CatalogEntry[];
  facility?: string | undefined;
  notAssigned?: boolean;
  problem?: string;
}) {
  const c = props.ctx.contacts;
  const files = props.files ?? [];
  const facilities = FACILITIES.filter((f) => files.some((x) => x.facility === f.code));
  const shown = props.facility ? facilities.filter((f) => f.code === props.facility) : facilities;
  return (
    <Layout ctx={props.ctx} title="Manual download">
      <p class="links">
        <a href="/">Home</a> › API › Manual
      </p>
      <section class="card" aria-labelledby="manual">
        <h1 id="manual">Manual download</h1>
        {props.notAssigned ? (
          <p class="alert" role="alert">
            App not assigned: your account is not assigned to API Download. Ask your firm's Super Account Administrator,
            or contact {c.techSupportName} at {c.techSupportPhone}.
          </p>
        ) : props.problem ? (
          <p class="alert" role="alert">
            {props.problem}
          </p>
        ) : files.length === 0 ? (
          <p>
            There are no files for the facilities you are entitled to. Questions about entitlements:{' '}
            <a href={`mailto:${c.apiQuestionsEmail}`}>{c.apiQuestionsEmail}</a>.
          </p>
        ) : (
          <>
            <p>
              Reference data files you are entitled to, newest first. Programs can fetch the same files with a refresh
              token: see <a href="/api/programmatic">Programmatic</a>.
            </p>
            {facilities.length > 1 ? (
              <p class="links">
                Facility: <a href="/api/manual">all</a>
                {facilities.map((f) => (
                  <span key={f.code}>
                    {' · '}
                    <a href={`/api/manual?facility=${f.code}`}>{f.title}</a>
                  </span>
                ))}
              </p>
            ) : null}
          </>
        )}
      </section>
      {shown.map((f) => (
        <section class="card" key={f.code} aria-labelledby={`fac-${f.code}`}>
          <h2 id={`fac-${f.code}`}>
            {f.title} <small>({f.code})</small>
          </h2>
          {f.files
            .filter((k) => files.some((x) => x.facility === f.code && x.file === k.code))
            .map((k) => (
              <table class="compact" key={k.code}>
                <caption>
                  {k.title} <code>{k.code}</code>
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Date</th>
                    <th scope="col">Size</th>
                    <th scope="col">Records</th>
                    <th scope="col">SHA-256</th>
                    <th scope="col">
                      <span class="visually-hidden">Download</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {files
                    .filter((x) => x.facility === f.code && x.file === k.code)
                    .sort((a, b) => b.date.localeCompare(a.date))
                    .map((x) => (
                      <tr key={x.date}>
                        <td>{x.date}</td>
                        <td>{formatSize(x.size)}</td>
                        <td>{x.records.toLocaleString('en-US')}</td>
                        <td>
                          <code title={x.sha256}>{x.sha256.slice(0, 12)}…</code>
                        </td>
                        <td>
                          <a
                            href={`/api/manual/download?facility=${x.facility}&file=${x.file}&date=${x.date}`}
                            download
                          >
                            Download
                          </a>
                        </td>
                      </tr>
                    ))}
                </tbody>
              </table>
            ))}
        </section>
      ))}
    </Layout>
  );
}
