import { randomUUID } from 'node:crypto';
import type { KoaContext } from 'oidc-provider';
import { ErrorPage } from '../web/error-page.tsx';
import { Layout, type PageContext } from '../web/layout.tsx';
import { renderHtml } from '../web/render.ts';

/** The HTML pages oidc-provider renders itself (logout, signed out, protocol errors), in our look. */
export interface OauthPages {
  logout(ctx: KoaContext, form: string): void;
  signedOut(ctx: KoaContext): void;
  error(ctx: KoaContext, out: Record<string, string>, error: Error): void;
}

/**
 * What a person should read for each OAuth error oidc-provider can show in the browser (the
 * protocol's `error` names are for programs).
 */
const ERROR_SUMMARIES: Record<string, string> = {
  invalid_request: 'The sign-in request from the application was incomplete or malformed.',
  invalid_client: 'The application that sent you here is not registered with TRAQS.',
  invalid_redirect_uri: 'The application asked to return to an address that is not registered for it.',
  unauthorized_client: 'The application is not allowed to make this request.',
  access_denied: 'The request was refused.',
  login_required: 'You need to sign in again.',
  invalid_target: 'The application asked for access to an API it may not use.',
  invalid_scope: 'The application asked for permissions it may not have.',
  session_not_found: 'Your sign-in request expired or was opened in another browser. Go back and start again.',
  server_error: 'Something went wrong on our side.',
};

export function createOauthPages(opts: {
  page: () => Omit<PageContext, 'csrfToken' | 'signedInAs'>;
  /** The idp's security headers (CSP and the rest): oidc-provider's answers bypass Fastify's hooks. */
  securityHeaders: Record<string, string>;
}): OauthPages {
  const send = (ctx: KoaContext, html: string) => {
    for (const [name, value] of Object.entries(opts.securityHeaders)) ctx.set(name, value);
    ctx.set('cache-control', 'no-store');
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = html;
  };
  return {
    logout(ctx, form) {
      // Submitted at once when a registered application asked for the sign-out; for anyone else's
      // link the user clicks (logout CSRF: a stranger's page cannot end the session unnoticed).
      const known = !!ctx.oidc.client;
      send(
        ctx,
        renderHtml(
          <Layout ctx={opts.page()} title="Sign out" scripts={known ? ['auto-submit.js'] : []}>
            <div class="card">
              <h1>Sign out of TRAQS</h1>
              <p>This signs you out of the TRAQS website and of the MFA profile in this browser.</p>
              {/* oidc-provider's form: a hidden anti-forgery field, built with its own escaping. */}
              <div dangerouslySetInnerHTML={{ __html: form }} />
              <button
                type="submit"
                form="op.logoutForm"
                name="logout"
                value="yes"
                {...(known ? { 'data-auto-submit': '' } : {})}
              >
                Sign out
              </button>
            </div>
          </Layout>,
        ),
      );
    },
    signedOut(ctx) {
      send(
        ctx,
        renderHtml(
          <Layout ctx={opts.page()} title="Signed out">
            <div class="card">
              <h1>You are signed out</h1>
              <p>
                <a href="/signin">Sign in again</a>
              </p>
            </div>
          </Layout>,
        ),
      );
    },
    error(ctx, out, _error) {
      const name = out.error ?? 'server_error';
      const status = Math.max(ctx.status, 400);
      const summary =
        ERROR_SUMMARIES[name] ??
        (status >= 500 ? 'Something went wrong on our side.' : 'The request could not be completed.');
      // A 5xx detail stays in the log; a 4xx description helps whoever integrates a client.
      const causes = status < 500 && out.error_description ? [`${name}: ${out.error_description}`] : [];
      ctx.status = status;
      send(
        ctx,
        renderHtml(
          <ErrorPage
            ctx={opts.page()}
            status={status}
            summary={summary}
            causes={causes}
            errorId={`oae${randomUUID().replace(/-/g, '').slice(0, 20)}`}
          />,
        ),
      );
    },
  };
}
