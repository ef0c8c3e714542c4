import type { ComponentChildren } from 'preact';
import type { ContactsConfig, EnvironmentConfig } from '../config/schema.ts';

/** What every page needs to know about where it is served. */
export interface PageContext {
  environment: Pick<EnvironmentConfig, 'label' | 'kind'>;
  contacts: ContactsConfig;
  /** Token for forms on this page (OWASP CSRF Prevention: synchronizer token). */
  csrfToken?: string;
  /** Shown in the header with a sign-out button when present. */
  signedInAs?: string;
  serviceName: string;
}

/** The page frame: environment banner (test environments), header, content, contacts footer. */
export function Layout(props: {
  ctx: PageContext;
  title: string;
  children: ComponentChildren;
  /** Scripts under `/assets/` this page needs (CSP: no inline script; `defer` keeps pages usable without them). */
  scripts?: string[];
}) {
  const { ctx } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · ${ctx.serviceName}${ctx.environment.kind === 'test' ? ` · ${ctx.environment.label}` : ''}`}</title>
        <link rel="stylesheet" href="/assets/style.css" />
        {(props.scripts ?? []).map((name) => (
          <script key={name} src={`/assets/${name}`} defer />
        ))}
      </head>
      <body>
        {ctx.environment.kind === 'test' ? (
          <div class="env-banner" role="note">
            {ctx.environment.label} test environment — test accounts and data only
          </div>
        ) : null}
        <header class="site">
          <a class="brand" href="/">
            {ctx.serviceName}
          </a>
          {ctx.signedInAs && ctx.csrfToken ? (
            <form method="post" action="/signout">
              <input type="hidden" name="_csrf" value={ctx.csrfToken} />
              <span>{ctx.signedInAs} </span>
              <button type="submit">Sign out</button>
            </form>
          ) : null}
        </header>
        <main id="main">{props.children}</main>
        <footer class="site">
          <Contacts ctx={ctx} />
        </footer>
      </body>
    </html>
  );
}

/** The FAQ's contact table: who to call for what. */
export function Contacts({ ctx }: { ctx: PageContext }) {
  const c = ctx.contacts;
  return (
    <p class="contacts">
      Account access or enrollment email: {c.operationsName}, {c.operationsPhone},{' '}
      <a href={`mailto:${c.operationsEmail}`}>{c.operationsEmail}</a>. Lost MFA device or federated sign-on:{' '}
      {c.techSupportName}, {c.techSupportPhone}. API questions:{' '}
      <a href={`mailto:${c.apiQuestionsEmail}`}>{c.apiQuestionsEmail}</a>.
    </p>
  );
}

/** A form field with a real label, autocomplete and its error tied to it (WCAG 1.3.1, 3.3.1). */
export function Field(props: {
  name: string;
  label: string;
  type?: string;
  autocomplete: string;
  value?: string;
  error?: string | undefined;
  hint?: string;
  required?: boolean;
  inputmode?: 'numeric' | 'text' | 'email';
  maxLength?: number;
}) {
  const id = `f-${props.name}`;
  const describedBy = [props.hint ? `${id}-hint` : '', props.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <div>
      <label for={id}>{props.label}</label>
      {props.hint ? (
        <p class="hint" id={`${id}-hint`}>
          {props.hint}
        </p>
      ) : null}
      <input
        id={id}
        name={props.name}
        type={(props.type ?? 'text') as 'text'}
        autocomplete={props.autocomplete}
        value={props.value ?? ''}
        required={props.required ?? true}
        inputMode={props.inputmode}
        maxLength={props.maxLength}
        aria-invalid={props.error ? 'true' : undefined}
        aria-describedby={describedBy || undefined}
      />
      {props.error ? (
        <p class="field-error" id={`${id}-error`}>
          {props.error}
        </p>
      ) : null}
    </div>
  );
}

export function Csrf({ ctx }: { ctx: PageContext }) {
  return <input type="hidden" name="_csrf" value={ctx.csrfToken ?? ''} />;
}
