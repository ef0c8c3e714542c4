import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditEvent } from '../audit/repository.ts';
import type { ContactsConfig } from '../config/schema.ts';
import type { Clock } from '../lib/tokens.ts';
import { findFacility } from '../refdata/facilities.ts';
import type { RefdataRepository, ReferenceFileRow } from '../refdata/repository.ts';
import type { AccessGrant, AccessTokenVerifier } from './access-token.ts';
import type { AuditBatch } from './audit-batch.ts';
import type { Catalog } from './catalog.ts';
import { DownloadError, forbidden, invalidRequest, invalidToken, MissingTokenError, notFound } from './errors.ts';
import { FileUnavailableError, type OpenedFile, openCatalogFile, sendCatalogFile } from './file-answer.ts';
import type { SmallFileCache } from './file-cache.ts';
import {
  type FileRequest,
  parseAction,
  parseDateParam,
  parseFacilityParam,
  parseFileRequest,
  type RawParams,
  single,
} from './params.ts';
import type { RateLimiter } from './rate-limit.ts';

/** The scope of the download API's access tokens (src/oauth/provider.ts `DOWNLOAD_SCOPE`). */
export const DOWNLOAD_SCOPE = 'download';
/** The app a user must be assigned to (FAQ "403 App not assigned"). */
export const DOWNLOAD_APP = 'download';

export interface DownloadRouteDeps {
  publicUrl: string;
  contacts: ContactsConfig;
  clock: Clock;
  verifier: AccessTokenVerifier;
  limiter: RateLimiter;
  rateLimitPerMinute: number;
  catalog: Catalog;
  refdata: RefdataRepository;
  storeDir: string;
  /** Small files kept in memory for a short while (see `createSmallFileCache`). */
  fileCache: SmallFileCache;
  audit: AuditBatch;
  /** The grant of each request that got past token verification, for the error handler's audit. */
  grants: WeakMap<FastifyRequest, AccessGrant>;
}

const BEARER = /^Bearer[ \t]+(\S*)[ \t]*$/i;

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The audit event of a download request, with what the request asked for. */
export function downloadEvent(
  req: FastifyRequest,
  grant: AccessGrant,
  action: string,
  outcome: AuditEvent['outcome'],
  at: number,
  details: Record<string, unknown>,
): AuditEvent {
  return {
    at,
    actorId: grant.userId,
    action,
    targetId: grant.userId,
    outcome,
    ip: req.ip,
    userAgent: headerText(req.headers['user-agent']) ?? null,
    details: { client: grant.clientId, tokenId: grant.tokenId, path: req.url.split('?')[0], ...details },
  };
}

/**
 * The download API's reference-data routes: the catalog, the file by REST path, and the legacy
 * `DownloadHandler.ashx` that existing TRAQS scripts call (DESIGN "Reference data API").
 *
 * Every route authorises the same way, before anything is looked up: bearer token (401), the
 * user's request budget (429), the app assignment and scope (403); then the parameters (400), the
 * facility and its entitlement (404, 403) and the file (404).
 */
export function registerDownloadRoutes(app: FastifyInstance, deps: DownloadRouteDeps): void {
  const { contacts } = deps;

  async function authorize(req: FastifyRequest): Promise<AccessGrant> {
    const header = headerText(req.headers.authorization);
    const m = header ? BEARER.exec(header) : null;
    if (!m?.[1]) {
      throw new MissingTokenError('no access token: send it in an Authorization: Bearer header');
    }
    const check = await deps.verifier.verify(m[1]);
    if (!check.ok) throw invalidToken(check.description);
    const grant = check.grant;
    deps.grants.set(req, grant);
    const rate = deps.limiter.take(grant.userId);
    if (!rate.ok) {
      throw new DownloadError(
        429,
        'rate_limited',
        `too many requests: ${deps.rateLimitPerMinute} a minute per user are allowed; retry after ${rate.retryAfterSeconds} s`,
        { 'retry-after': String(rate.retryAfterSeconds) },
      );
    }
    if (!grant.apps.includes(DOWNLOAD_APP)) {
      throw forbidden(
        'app_not_assigned',
        `App not assigned: ${grant.username} is not assigned to API Download. Contact ${contacts.techSupportName} at ${contacts.techSupportPhone}.`,
      );
    }
    if (!grant.scopes.includes(DOWNLOAD_SCOPE)) {
      throw forbidden('insufficient_scope', `the access token lacks the ${DOWNLOAD_SCOPE} scope`);
    }
    return grant;
  }

  function assertEntitled(grant: AccessGrant, facility: string): void {
    if (!grant.entitlements.has(facility)) throw forbidden('not_entitled', `Not entitled to facility ${facility}`);
  }

  function knownFacility(code: string) {
    const facility = findFacility(code);
    if (!facility) throw notFound(`no such facility ${code}`);
    return facility;
  }

  function fileUrl(row: ReferenceFileRow): string {
    return `${deps.publicUrl}/v1/files/${encodeURIComponent(row.facility)}/${encodeURIComponent(row.file)}?date=${row.date}`;
  }

  /** Opens the file of a catalog entry; an entry whose file is gone is looked up once more (a replaced file). */
  async function openFile(req: FastifyRequest, request: FileRequest, row: ReferenceFileRow) {
    try {
      return { row, file: await openCatalogFile(deps.storeDir, row, deps.fileCache) };
    } catch (err) {
      if (!(err instanceof FileUnavailableError)) throw err;
      deps.catalog.invalidate();
      const fresh = await deps.refdata.findFile(row.facility, row.file, request.date);
      if (fresh && (fresh.path !== row.path || fresh.sha256 !== row.sha256 || fresh.size !== row.size)) {
        try {
          return { row: fresh, file: await openCatalogFile(deps.storeDir, fresh, deps.fileCache) };
        } catch (again) {
          if (!(again instanceof FileUnavailableError)) throw again;
        }
      }
      req.log.error(
        { err, facility: row.facility, file: row.file, date: row.date, path: err.path },
        'A catalogued reference file cannot be read',
      );
      throw new DownloadError(
        500,
        'server_error',
        `the ${row.facility} ${row.file} file of ${row.date} cannot be read at the moment; this is a fault on our side, please tell ${contacts.apiQuestionsEmail}`,
      );
    }
  }

  async function download(req: FastifyRequest, reply: FastifyReply, grant: AccessGrant, request: FileRequest) {
    const facility = knownFacility(request.facility);
    assertEntitled(grant, facility.code);
    const kind = facility.files.find((f) => f.code === request.file);
    if (!kind) {
      throw notFound(
        `facility ${facility.code} has no file ${request.file} (its files: ${facility.files.map((f) => f.code).join(', ')})`,
      );
    }
    const row = await deps.catalog.find(facility.code, kind.code, request.date);
    if (!row) {
      throw notFound(
        request.date
          ? `no ${kind.code} file of facility ${facility.code} for ${request.date}`
          : `no ${kind.code} file of facility ${facility.code} has been published yet`,
      );
    }
    const opened: { row: ReferenceFileRow; file: OpenedFile } = await openFile(req, request, row);
    const result = sendCatalogFile(req, reply, opened.row, opened.file);
    if (req.method !== 'HEAD') {
      deps.audit.record(
        downloadEvent(req, grant, 'download.file', 'success', deps.clock(), {
          facility: opened.row.facility,
          file: opened.row.file,
          date: opened.row.date,
          sha256: opened.row.sha256,
          status: result.status,
          encoding: result.encoding,
          ...(result.range ? { range: `${result.range.start}-${result.range.end}` } : {}),
        }),
      );
    }
    return reply;
  }

  app.get('/v1/files', async (req) => {
    const grant = await authorize(req);
    const query = req.query as RawParams;
    const facilityParam = single([query], 'facility');
    const since = parseDateParam('since', single([query], 'since'));
    let facilities = [...grant.entitlements];
    if (facilityParam !== undefined && facilityParam !== '') {
      const facility = knownFacility(parseFacilityParam(facilityParam));
      assertEntitled(grant, facility.code);
      facilities = [facility.code];
    }
    const rows = await deps.catalog.list({ facilities, since });
    return {
      files: rows.map((r) => ({
        facility: r.facility,
        file: r.file,
        date: r.date,
        size: Number(r.size),
        sha256: r.sha256,
        records: r.records,
        url: fileUrl(r),
      })),
    };
  });

  app.get('/v1/files/:facility/:file', async (req, reply) => {
    const grant = await authorize(req);
    const params = req.params as RawParams;
    const query = req.query as RawParams;
    const request = parseFileRequest([
      { facility: params.facility, file: params.file },
      { date: single([query], 'date') },
    ]);
    return download(req, reply, grant, request);
  });

  /**
   * The legacy path of TRAQS's API (ASP.NET): GET with query parameters, or POST with form fields
   * (or both), `username` being the signed-in user's login, compared case-insensitively as email
   * addresses are in practice.
   */
  const legacyHandler = async (req: FastifyRequest, reply: FastifyReply) => {
    const grant = await authorize(req);
    const sources: RawParams[] = [req.query as RawParams];
    if (req.method === 'POST') sources.push(parseForm(req));
    parseAction(sources);
    const request = parseFileRequest(sources);
    const username = single(sources, 'username');
    if (req.method === 'POST' && (username === undefined || username.trim() === '')) {
      throw invalidRequest('missing required parameter username');
    }
    if (username !== undefined && username.trim().toLowerCase() !== grant.username.toLowerCase()) {
      throw forbidden(
        'username_mismatch',
        `username ${username.slice(0, 100)} is not the user the access token was issued to; send the username you signed in to TRAQS with`,
      );
    }
    return download(req, reply, grant, request);
  };
  app.get('/DownloadHandler.ashx', legacyHandler);
  app.post('/DownloadHandler.ashx', legacyHandler);
}

/** The form of a legacy POST: URL-encoded fields, repeated names kept as lists. */
function parseForm(req: FastifyRequest): RawParams {
  if (!Buffer.isBuffer(req.body) || req.body.length === 0) return {};
  const type = (headerText(req.headers['content-type']) ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new DownloadError(
      415,
      'invalid_request',
      'send the form as application/x-www-form-urlencoded (or the parameters in the query string)',
    );
  }
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(req.body.toString('utf8'))) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
