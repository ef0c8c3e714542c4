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
