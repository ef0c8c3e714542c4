/**
 * A minimal browser over real HTTP (fetch): a cookie jar honouring cookie paths, manual redirects,
 * and form posts with the page's CSRF token. For flows that cross services and ports (the idp's
 * authorization server and its clients), where `app.inject` cannot follow.
 */
import { csrfFrom } from './browser.ts';

interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

export interface HttpAnswer {
  status: number;
  url: string;
  location: string | undefined;
  body: string;
  headers: Headers;
}

export function createHttpBrowser(userAgent = 'TraqsTest/1.0 (oauth suite)') {
  /** By host, then `name path`. Ports share cookies, as browsers do (RFC 6265 §8.5). */
  const jar = new Map<string, Map<string, StoredCookie>>();

  const cookiesFor = (url: URL) =>
    [...(jar.get(url.hostname)?.values() ?? [])]
      .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');

  const store = (url: URL, res: Response) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';').map((p) => p.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k = '', v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v || '/';
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const host = jar.get(url.hostname) ?? new Map<string, StoredCookie>();
      jar.set(url.hostname, host);
      if (expired) host.delete(`${name} ${path}`);
      else host.set(`${name} ${path}`, { name, value, path });
    }
  };

  async function request(method: 'GET' | 'POST', url: string, form?: Record<string, string>): Promise<HttpAnswer> {
    const u = new URL(url);
    const cookie = cookiesFor(u);
    const res = await fetch(u, {
      method,
      redirect: 'manual',
      headers: {
        'user-agent': userAgent,
        ...(cookie ? { cookie } : {}),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(form ? { body: new URLSearchParams(form).toString() } : {}),
    });
    store(u, res);
    const location = res.headers.get('location') ?? undefined;
    return {
      status: res.status,
      url: u.toString(),
      location: location ? new URL(location, u).toString() : undefined,
      body: await res.text(),
      headers: res.headers,
    };
  }

  return {
    jar,
    get: (url: string) => request('GET', url),
    post: (url: string, form: Record<string, string>) => request('POST', url, form),
    /** Follows redirects from `url` until an answer that is not a redirect, or one to `stopAt`. */
    async follow(url: string, stopAt?: string): Promise<{ answer: HttpAnswer; visited: string[] }> {
      const visited: string[] = [];
      let answer = await request('GET', url);
      visited.push(answer.url);
      for (let i = 0; i < 20 && answer.location && answer.status >= 300 && answer.status < 400; i++) {
        if (stopAt && answer.location.startsWith(stopAt)) break;
        answer = await request('GET', answer.location);
        visited.push(answer.url);
      }
      return { answer, visited };
    },
    /** GETs `pageUrl` and posts `form` to `action` with the page's CSRF token. */
    async submit(pageUrl: string, action: string, form: Record<string, string>): Promise<HttpAnswer> {
      const page = await request('GET', pageUrl);
      return request('POST', new URL(action, pageUrl).toString(), { ...form, _csrf: csrfFrom(page.body) });
    },
  };
}
export type HttpBrowser = ReturnType<typeof createHttpBrowser>;
