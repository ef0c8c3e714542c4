import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { AppError } from './errors.ts';

/**
 * Parses a request body with a strict zod schema. Wrong types, missing fields, overlong strings
 * and unknown fields become one 400 naming every problem; nothing is changed before this passes.
 */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const causes = result.error.issues.map((i) => {
    const where = i.path.length ? `${i.path.join('.')}: ` : '';
    return `${where}${i.message}`;
  });
  throw new AppError('VALIDATION', causes, `Api validation failed: ${causes[0] ?? 'invalid request'}`);
}

/**
 * Where the first NUL character (U+0000) is in parsed input, as a dotted path (`username`,
 * `context.a`), or undefined if there is none. PostgreSQL `text` cannot hold U+0000 and refuses
 * the whole query, so such input is refused before it reaches a repository. Walks iteratively:
 * a deeply nested body must not overflow the stack.
 */
export function findNulCharacter(value: unknown): string | undefined {
  const pending: [unknown, string][] = [[value, '']];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [v, path] = next;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return path || 'value';
    } else if (typeof v === 'object' && v !== null) {
      for (const [key, child] of Object.entries(v)) {
        const name = key.replaceAll('\u0000', '\\0');
        const at = path ? `${path}.${name}` : name;
        if (key.includes('\u0000')) return at;
        pending.push([child, at]);
      }
    }
  }
  return undefined;
}

/**
 * JSON APIs accept only `application/json`: a cross-site HTML form cannot send it without a CORS
 * preflight, which is what keeps these endpoints safe from CSRF (OWASP CSRF Prevention Cheat Sheet).
 */
export async function requireJson(req: FastifyRequest): Promise<void> {
  if (req.method !== 'POST' && req.method !== 'PUT') return;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', ['Send the request body as application/json.']);
  }
}

/** Who is asking, for the audit log. */
export function requestContext(req: FastifyRequest): { ip: string | null; userAgent: string | null } {
  const ua = req.headers['user-agent'];
  return { ip: req.ip ?? null, userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null };
}
