import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

/**
 * One log line per request, written when it completes, with the path but never the query string:
 * emailed links carry bearer secrets in it (`/activate?token=…`), and logs must not hold them
 * (OWASP ASVS 7.1.1). Fastify's default writes two lines per request with the full URL.
 */
export class AccessLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      // The URL as received: a middleware mount (the authorization server) strips its prefix from url.
      path: (request.originalUrl ?? request.url).split('?')[0],
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ip: request.ip,
    };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request');
  }
}
