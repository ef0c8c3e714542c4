import type { LightMyRequestResponse as Response } from 'fastify';
import type { TestStack } from './stack.ts';
import { CLIENT, freshCode } from './users.ts';

/** The hidden `_csrf` value of the last form on a page. */
export function csrfFrom(html: string): string {
  const all = [...html.matchAll(/name="_csrf" value="([^"]*)"/g)];
  const token = all.at(-1)?.[1];
  if (!token) throw new Error('no CSRF token on the page');
  return token;
}

/** The value of a hidden input of a page. */
export function hiddenFrom(html: string, name: string): string {
  const m = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!m?.[1]) throw new Error(`no ${name} on the page`);
  return m[1];
}

/** The `Set-Cookie` headers of a response, as a list. */
export function setCookies(res: Response): string[] {
  const h = res.headers['set-cookie'];
  return h === undefined ? [] : Array.isArray(h) ? h : [String(h)];
}

/**
 * A minimal browser over `app.inject`: a cookie jar and form posts, so the HTML flow is driven the
 * way a user's browser drives it (cookies sent back, forms urlencoded with their CSRF token).
 */
export function createBrowser(s: TestStack) {
  const jar = new Map<string, string>();

  async function request(method: 'GET' | 'POST', url: string, form?: Record<string, string>): Promise<Response> {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await s.app.inject({
      method,
      url,
      remoteAddress: CLIENT.ip,
      headers: {
        'user-agent': CLIENT.userAgent,
        ...(cookie ? { cookie } : {}),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(form ? { payload: new URLSearchParams(form).toString() } : {}),
    });
    for (const c of res.cookies) {
      const expired = c.maxAge === 0 || (c.expires instanceof Date && c.expires.getTime() <= Date.now());
      if (expired || c.value === '') jar.delete(c.name);
      else jar.set(c.name, c.value);
    }
    return res;
  }

  return {
    jar,
    get: (url: string) => request('GET', url),
    post: (url: string, form: Record<string, string>) => request('POST', url, form),
    /** GETs `pageUrl` and submits `form` to `action` with the page's CSRF token. */
    async submit(pageUrl: string, action: string, form: Record<string, string>): Promise<Response> {
      const page = await request('GET', pageUrl);
      return request('POST', action, { ...form, _csrf: csrfFrom(page.payload) });
    },
  };
}
export type Browser = ReturnType<typeof createBrowser>;

/**
 * Signs in through the HTML pages (password, then a fresh TOTP code) and returns the session
 * cookie the browser now holds, with the answer that set it.
 */
export async function signInWithPages(
  s: TestStack,
  browser: Browser,
  user: { login: string; password: string; secret: Buffer },
  sidCookie: string,
): Promise<{ sid: string; res: Response }> {
  const first = await browser.submit('/signin', '/signin', { username: user.login, password: user.password });
  if (first.statusCode !== 303) throw new Error(`password step: ${first.statusCode}`);
  const verify = await browser.get('/signin/next');
  const done = await browser.post('/signin/verify', {
    factorId: hiddenFrom(verify.payload, 'factorId'),
    passCode: freshCode(s, user.secret),
    _csrf: csrfFrom(verify.payload),
  });
  if (done.statusCode !== 303 || done.headers.location !== '/') throw new Error(`verify step: ${done.statusCode}`);
  const sid = browser.jar.get(sidCookie);
  if (!sid) throw new Error('no session cookie');
  return { sid, res: done };
}
