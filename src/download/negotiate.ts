/**
 * The HTTP negotiation a file answer depends on, as pure functions of request headers: byte ranges
 * (RFC 9110 §14), conditional requests (RFC 9110 §13) and content coding (RFC 9110 §12.5.3).
 */

export type RangeRequest =
  /** No usable Range header: send the whole file. */
  | { kind: 'whole' }
  /** One satisfiable range, inclusive offsets, already clamped to the file. */
  | { kind: 'range'; start: number; end: number }
  /** RFC 9110 §15.5.17: 416 with `Content-Range: bytes *\/size`. */
  | { kind: 'unsatisfiable' };

const RANGE_SPEC = /^(\d*)-(\d*)$/;

/**
 * Parses a `Range` header for a file of `size` bytes. One range is served; RFC 9110 §14.2 lets a
 * server ignore a Range it will not honour, so several ranges, another unit or a syntax error get
 * the whole file rather than an error.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (!header) return { kind: 'whole' };
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m?.[1]) return { kind: 'whole' };
  const specs = m[1].split(',').map((s) => s.trim());
  if (specs.length !== 1) return { kind: 'whole' };
  const spec = RANGE_SPEC.exec(specs[0] ?? '');
  if (!spec) return { kind: 'whole' };
  const [, first = '', last = ''] = spec;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    // Suffix range: the last n bytes (RFC 9110 §14.1.1); n = 0 selects nothing.
    const n = Number(last);
    if (!Number.isSafeInteger(n)) return { kind: 'whole' };
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Number(last);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return { kind: 'whole' };
  // RFC 9110 §14.1.1: last-pos below first-pos makes the range invalid, so the header is ignored.
  if (last !== '' && end < start) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', start, end: Math.min(end, size - 1) };
}

function entityTags(header: string): string[] {
  return header
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

/** RFC 9110 §13.1.2: If-None-Match compares weakly, so `W/"x"` matches `"x"`; `*` matches any. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return true;
  const weak = (t: string) => (t.startsWith('W/') ? t.slice(2) : t);
  return !entityTags(header).some((t) => t === '*' || weak(t) === weak(etag));
}

/**
 * RFC 9110 §13.1.5: a range is served only if `If-Range` still names this representation, by a
 * strong comparison. A date there is not compared (our validator is the ETag): the whole file goes.
 */
export function rangeStillValid(header: string | undefined, etag: string): boolean {
  if (header === undefined) return true;
  const tag = header.trim();
  return !tag.startsWith('W/') && tag === etag;
}

/** Whether `Accept-Encoding` accepts gzip (RFC 9110 §12.5.3: q=0 refuses, `*` stands for others). */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const part of header.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split('=');
      if (k === 'q') q = Number(v);
    }
    if (!Number.isFinite(q)) q = 0;
    if (name === 'gzip' || name === 'x-gzip') gzip = Math.max(gzip ?? 0, q);
    else if (name === '*') star = q;
  }
  return (gzip ?? star ?? 0) > 0;
}

/** `YYYY-MM-DD` that names a real calendar day. */
export function isCalendarDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const d = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value;
}
