import { readFile } from 'node:fs/promises';
import { isLoopbackHttp } from './oidc.ts';

/** Metadata is a few kilobytes; a megabyte is a wrong URL or file. */
export const METADATA_MAX_BYTES = 1 << 20;
/** How long one fetch of an IdP's metadata may take, answer included. */
const METADATA_FETCH_TIMEOUT_MS = 10_000;

/**
 * True when `source` is a URL the metadata may be fetched from again: https, or http to a loopback
 * test IdP. A file name or "pasted in the Support console" is not.
 */
export function isMetadataUrl(source: string | undefined): source is string {
  if (!source || !/^https?:\/\//.test(source)) return false;
  try {
    return new URL(source).protocol === 'https:' || isLoopbackHttp(source);
  } catch {
    return false;
  }
}

/**
 * Fetches IdP metadata from an https URL (http only for a loopback test IdP). The URL is one an
 * operator typed at the CLI, never one from a page; still, per the OWASP SSRF Prevention Cheat
 * Sheet, no redirect is followed (it could lead anywhere), the answer is bounded in time and size,
 * and reading stops at 1 MiB instead of buffering whatever the server sends.
 */
export async function fetchMetadata(source: string): Promise<string> {
  if (!isMetadataUrl(source)) throw new Error('metadata must be fetched over https');
  const res = await fetch(source, { signal: AbortSignal.timeout(METADATA_FETCH_TIMEOUT_MS), redirect: 'error' }).catch(
    (err: Error) => {
      // undici says "fetch failed" and keeps the reason (refused, DNS, TLS, a redirect) as the cause.
      const cause = err.cause instanceof Error ? err.cause.message : '';
      throw new Error(
        `${source}: ${err.name === 'TimeoutError' ? 'no answer within 10 seconds' : cause || err.message}`,
      );
    },
  );
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${source} answered ${res.status}`);
  }
  if (Number(res.headers.get('content-length') ?? 0) > METADATA_MAX_BYTES) {
    await res.body?.cancel();
    throw new Error('the metadata is larger than 1 MiB');
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  for (let read = await reader?.read(); reader && read && !read.done; read = await reader.read()) {
    size += read.value.byteLength;
    if (size > METADATA_MAX_BYTES) {
      await reader.cancel();
      throw new Error('the metadata is larger than 1 MiB');
    }
    chunks.push(read.value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads IdP metadata from an https URL (see {@link fetchMetadata}) or a file. */
export async function readMetadata(source: string): Promise<string> {
  if (/^https?:\/\//.test(source)) return fetchMetadata(source);
  const text = await readFile(source, 'utf8');
  if (text.length > METADATA_MAX_BYTES) throw new Error('the metadata is larger than 1 MiB');
  return text;
}
