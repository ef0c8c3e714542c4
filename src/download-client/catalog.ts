import type { ApiClient } from './api.ts';
import { ClientError } from './errors.ts';
import { formatBytes } from './progress.ts';

/** One published file, as `GET /v1/files` lists it. */
export interface CatalogEntry {
  facility: string;
  file: string;
  /** `YYYY-MM-DD`. */
  date: string;
  size: number;
  sha256: string;
  records: number;
  url: string;
}

function isEntry(v: unknown): v is CatalogEntry {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.facility === 'string' &&
    typeof o.file === 'string' &&
    typeof o.date === 'string' &&
    typeof o.size === 'number' &&
    typeof o.sha256 === 'string'
  );
}

/** Reads `{ files: [...] }`; entries missing a field the client relies on are skipped. */
export function parseCatalog(body: unknown): CatalogEntry[] {
  const files = typeof body === 'object' && body !== null ? (body as { files?: unknown }).files : undefined;
  if (!Array.isArray(files)) throw new ClientError('UNEXPECTED', 'the file catalog is not in the expected form');
  return files.filter(isEntry).map((f) => ({
    ...f,
    records: typeof f.records === 'number' ? f.records : 0,
    url: typeof f.url === 'string' ? f.url : '',
  }));
}

/** `GET /v1/files`, of one facility when given (the service then says if you are not entitled to it). */
export async function fetchCatalog(
  api: ApiClient,
  options: { facility?: string; signal?: AbortSignal } = {},
): Promise<CatalogEntry[]> {
  const query = options.facility ? `?facility=${encodeURIComponent(options.facility)}` : '';
  const res = await api.send(`/v1/files${query}`, {
    expect: [200],
    headers: { accept: 'application/json' },
    subject: options.facility ? { text: `the catalog of ${options.facility}`, kind: 'catalog' } : undefined,
    signal: options.signal,
  });
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new ClientError('UNEXPECTED', `the file catalog at ${api.baseUrl}/v1/files is not JSON: check --base-url`);
  }
  return parseCatalog(body);
}

/** The entries of one facility (case-insensitive), and only the newest date of each file if `latest`. */
export function filterCatalog(
  entries: readonly CatalogEntry[],
  filter: { facility?: string; latest?: boolean },
): CatalogEntry[] {
  let out = filter.facility
    ? entries.filter((e) => e.facility.toUpperCase() === filter.facility?.toUpperCase())
    : [...entries];
  if (filter.latest) {
    const newest = new Map<string, CatalogEntry>();
    for (const e of out) {
      const key = `${e.facility}\n${e.file}`;
      const seen = newest.get(key);
      if (!seen || e.date > seen.date) newest.set(key, e);
    }
    out = [...newest.values()];
  }
  return out.sort(
    (a, b) => a.facility.localeCompare(b.facility) || a.file.localeCompare(b.file) || b.date.localeCompare(a.date),
  );
}

/** The catalog as an aligned text table: FACILITY FILE DATE SIZE RECORDS. */
export function formatCatalogTable(entries: readonly CatalogEntry[]): string {
  if (entries.length === 0) return 'No files.';
  const rows = [
    ['FACILITY', 'FILE', 'DATE', 'SIZE', 'RECORDS'],
    ...entries.map((e) => [e.facility, e.file, e.date, formatBytes(e.size), e.records.toLocaleString('en-US')]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const rightAligned = new Set([3, 4]);
  return rows
    .map((r) =>
      r
        .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
