import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Store } from '../db/store.ts';
import { AppError } from '../web/errors.ts';
import { Layout, type PageContext } from '../web/layout.tsx';
import { sendPage } from '../web/render.ts';

const LINK = /https?:\/\/[^\s<>"')\]]+/g;

/**
 * The development mailbox (test environments only, never registered for production): the outbox
 * as a developer or tester sees it when no SMTP relay is configured.
 */
export function registerDevMailbox(
  app: FastifyInstance,
  deps: { store: Store; page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'> },
): void {
  app.get('/dev/mailbox', async (req, reply) => {
    const q = z.object({ to: z.string().max(254).optional() }).safeParse(req.query);
    const messages = await deps.store.repos.outbox.listRecentMessages(100, q.success ? q.data.to : undefined);
    return sendPage(
      reply,
      <Layout ctx={deps.page()} title="Development mailbox">
        <div class="card">
          <h1>Development mailbox</h1>
          <p class="notice">
            Mail of this test environment, newest first. With <code>TRAQS_SMTP_URL</code> set, the same messages are
            also delivered over SMTP.
          </p>
          <table>
            <thead>
              <tr>
                <th scope="col">When (UTC)</th>
                <th scope="col">To</th>
                <th scope="col">Subject</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {messages.map((m) => (
                <tr key={m.id}>
                  <td>{new Date(m.created_at).toISOString().slice(0, 19).replace('T', ' ')}</td>
                  <td>{m.to_address}</td>
                  <td>
                    <a href={`/dev/mailbox/${m.id}`}>{m.subject}</a>
                  </td>
                  <td>{m.status}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Layout>,
    );
  });

  app.get('/dev/mailbox/:id', async (req, reply) => {
    const p = z.object({ id: z.coerce.number().int().positive() }).safeParse(req.params);
    const m = p.success ? await deps.store.repos.outbox.findMessage(p.data.id) : undefined;
    if (!m) throw new AppError('NOT_FOUND', [], 'No such message in the development mailbox.');
    const links = [...new Set(m.text_body.match(LINK) ?? [])];
    return sendPage(
      reply,
      <Layout ctx={deps.page()} title={m.subject}>
        <div class="card">
          <h1>{m.subject}</h1>
          <dl class="facts">
            <dt>To</dt>
            <dd>{m.to_address}</dd>
            <dt>Message-ID</dt>
            <dd>{m.message_id}</dd>
            <dt>Status</dt>
            <dd>{m.status}</dd>
          </dl>
          {links.length ? (
            <>
              <h2>Links</h2>
              <ul>
                {links.map((l) => (
                  <li key={l}>
                    <a href={l}>{l}</a>
                  </li>
                ))}
              </ul>
            </>
          ) : null}
          <h2>Text</h2>
          <div class="mail-body">{m.text_body}</div>
          <p>
            <a href="/dev/mailbox">Back to the mailbox</a>
          </p>
        </div>
      </Layout>,
    );
  });
}
