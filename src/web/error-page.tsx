import { Layout, type PageContext } from './layout.tsx';

/** Every error a user can reach says what happened and whom to contact (DESIGN, "Help"). */
export function ErrorPage(props: {
  ctx: PageContext;
  status: number;
  summary: string;
  causes: string[];
  errorId: string;
}) {
  const title =
    props.status === 404 ? 'Page not found' : props.status >= 500 ? 'Something went wrong' : 'Request refused';
  return (
    <Layout ctx={props.ctx} title={title}>
      <div class="card">
        <h1>{title}</h1>
        <p class="alert" role="alert">
          {props.summary}
        </p>
        {props.causes.length ? (
          <ul>
            {props.causes.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
        ) : null}
        <p>
          If this keeps happening, contact {props.ctx.contacts.techSupportName} at {props.ctx.contacts.techSupportPhone}{' '}
          and quote reference <code>{props.errorId}</code>.
        </p>
        <p>
          <a href="/">Back to the start page</a>
        </p>
      </div>
    </Layout>
  );
}
