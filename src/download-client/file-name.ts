/**
 * The file name a `Content-Disposition` header proposes (RFC 6266: `filename*` wins over
 * `filename`), or undefined when there is none or it is not a plain name. The server does not get
 * to choose a directory: anything with a path separator, `..`, a leading dot or a control character
 * is ignored (RFC 6266 §4.3).
 */
export function fileNameFromContentDisposition(header: string | null): string | undefined {
  if (!header) return undefined;
  let name: string | undefined;
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;\s]+)/i.exec(header);
  if (extended?.[2] && /^utf-8$/i.test(extended[1] ?? '')) {
    try {
      name = decodeURIComponent(extended[2]);
    } catch {
      name = undefined;
    }
  }
  if (name === undefined) {
    const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
    const token = /filename\s*=\s*([^";\s]+)/i.exec(header);
    name = quoted?.[1]?.replace(/\\(.)/g, '$1') ?? token?.[1];
  }
  return name !== undefined && isSafeFileName(name) ? name : undefined;
}

export function isSafeFileName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    !name.startsWith('.') &&
    !/[/\\:]/.test(name) &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    !/[\u0000-\u001f\u007f]/.test(name)
  );
}

/** `{FACILITY}_{FILE}_{YYYYMMDD}.txt`, the name when the service proposes none. */
export function defaultFileName(facility: string, file: string, date: string): string {
  return `${facility}_${file}_${date.replaceAll('-', '')}.txt`;
}

/** `YYYY-MM-DD` and a real calendar date. */
export function isIsoDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const d = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value;
}

/**
 * The SHA-256 a strong ETag carries (the service's ETag is the quoted hex digest), or undefined for
 * a weak or other ETag.
 */
export function sha256FromEtag(etag: string | null | undefined): string | undefined {
  const m = etag ? /^"([0-9a-fA-F]{64})"$/.exec(etag.trim()) : null;
  return m?.[1]?.toLowerCase();
}

/** RFC 9110 §13.1.5: If-Range needs a strong validator. */
export function isStrongEtag(etag: string | null | undefined): etag is string {
  return typeof etag === 'string' && /^"[^"]*"$/.test(etag.trim());
}

/** `Content-Range: bytes 100-999/1000` → start 100, total 1000 (RFC 9110 §14.4). */
export function parseContentRange(header: string | null): { start: number; end: number; total?: number } | undefined {
  const m = header ? /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(header.trim()) : null;
  if (!m) return undefined;
  const total = m[3] === '*' ? undefined : Number(m[3]);
  return { start: Number(m[1]), end: Number(m[2]), total };
}
