import type { LightMyRequestResponse as Response } from 'fastify';
import { cookiePrefix } from '../../src/app.ts';
import type { AuditRow } from '../../src/audit/repository.ts';
import { base32Decode, generateTotp } from '../../src/authn/factors/totp/totp.ts';
import { type Browser, createBrowser, csrfFrom, signInWithPages } from './browser.ts';
import type { TestStack } from './stack.ts';
import { type ActiveUser, activateUser, freshCode } from './users.ts';

/** The ntf idp's session cookie. */
export const SID = `${cookiePrefix('ntf', 'idp')}_sid`;
export const MINUTE = 60_000;

/** An activated user signed in through the pages, with the browser that holds the session. */
export async function signedInUser(
  s: TestStack,
  email: string,
): Promise<{ user: ActiveUser; b: Browser; sid: string }> {
  const user = await activateUser(s, email);
  const b = createBrowser(s);
  const { sid } = await signInWithPages(s, b, user, SID);
  return { user, b, sid };
}

/** Submits a profile form with a CSRF token taken from the profile home. */
export async function submit(b: Browser, action: string, form: Record<string, string>): Promise<Response> {
  const home = await b.get('/');
  if (home.statusCode !== 200) throw new Error(`profile home answered ${home.statusCode}`);
  return b.post(action, { ...form, _csrf: csrfFrom(home.payload) });
}

/** "Verify it's you" with a fresh code of `secret`; returns the answer (303 to `next` on success). */
export async function reverify(
  s: TestStack,
  b: Browser,
  factorId: string,
  secret: Buffer,
  next: string,
): Promise<Response> {
  return submit(b, '/profile/verify', { factorId, passCode: freshCode(s, secret), next });
}

/** Starts adding a TOTP method; returns the setup page's address, its setup key and the factor id. */
export async function startTotp(
  b: Browser,
  provider = 'GOOGLE',
): Promise<{ start: Response; page: Response; factorId: string; secret: Buffer; url: string }> {
  const start = await submit(b, '/profile/factors/add', { provider });
  const url = String(start.headers.location ?? '');
  const m = /^\/profile\/factors\/([A-Za-z0-9]+)\/activate$/.exec(url);
  if (start.statusCode !== 303 || !m?.[1]) throw new Error(`add method: ${start.statusCode} ${url}`);
  const page = await b.get(url);
  const key = /id="shared-secret" data-secret="([A-Z2-7]+)"/.exec(page.payload)?.[1];
  if (!key) throw new Error('no setup key on the page');
  return { start, page, factorId: m[1], secret: base32Decode(key), url };
}

/** Adds a TOTP method through the profile pages (the session must be recently verified). */
export async function addTotp(
  s: TestStack,
  b: Browser,
  provider = 'GOOGLE',
): Promise<{ factorId: string; secret: Buffer; done: Response }> {
  const { page, factorId, secret, url } = await startTotp(b, provider);
  const done = await b.post(url, { passCode: generateTotp({ secret, now: s.clock() }), _csrf: csrfFrom(page.payload) });
  return { factorId, secret, done };
}

/** A six-digit code that none of the steps around `now` accepts. */
export function wrongCode(secret: Buffer, now: number): string {
  const valid = [-2, -1, 0, 1, 2].map((d) => generateTotp({ secret, now: now + d * 30_000 }));
  return ['000000', '111111', '222222', '333333', '444444', '555555'].find((c) => !valid.includes(c)) ?? '999999';
}

/** Emails queued for `address` from one template, newest first. */
export async function mails(s: TestStack, address: string, template: string) {
  return (await s.rt.store.repos.outbox.listRecentMessages(1000, address)).filter((m) => m.template === template);
}

/** Audit events of one action about one user, newest first. */
export async function events(s: TestStack, action: string, userId: string): Promise<AuditRow[]> {
  return s.rt.store.repos.audit.listEvents({ action, targetId: userId, limit: 1000 });
}

export const details = (e: AuditRow | undefined): Record<string, unknown> =>
  e ? (JSON.parse(e.details) as Record<string, unknown>) : {};

/** The text of an element with an id, tags stripped (enough for the profile's plain cells). */
export function textOf(html: string, id: string): string {
  const m = new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</(?:dd|tbody|p|strong)>`).exec(html);
  return (m?.[1] ?? '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
