import type { FastifyReply, FastifyRequest } from 'fastify';
import { FORWARDED_HEADER, signForwardedFor } from '../lib/forwarded.ts';
import type { Clock } from '../lib/tokens.ts';
import { errorBody } from './errors.ts';

export interface TokenProxyOptions {
  /** The idp's token endpoint (`{issuer}/v1/token`), or an internal URL of it. */
  tokenEndpoint: string;
  forwardingKey: Buffer;
  clock: Clock;
  timeoutMs: number;
}

/** Request headers the token endpoint needs (client authentication, body type, who asks). */
const PASSED_REQUEST_HEADERS = ['authorization', 'content-type', 'accept', 'user-agent'] as const;
/** Response headers that belong to the token answer (RFC 6749 §5.1 caching; §5.2 client auth challenge). */
const PASSED_RESPONSE_HEADERS = ['cache-control', 'pragma', 'www-authenticate', 'dpop-nonce'] as const;

/**
 * `POST {download}/oauth2/token`: the idp's token endpoint reached through the download API's base
 * URL, so a script needs one URL per environment (DESIGN "OAuth 2.0"). The body goes through as it
 * came; the caller's address goes along in a signed header so the idp records the real last-used
 * IP of a refresh token, which a plain `X-Forwarded-For` would let anyone forge.
 */
export function createTokenProxy(options: TokenProxyOptions) {
  return async function forwardTokenRequest(req: FastifyRequest, reply: FastifyReply) {
    const headers = new Headers();
    for (const name of PASSED_REQUEST_HEADERS) {
      const v = req.headers[name];
      if (typeof v === 'string') headers.set(name, v);
    }
    headers.set(FORWARDED_HEADER, signForwardedFor(options.forwardingKey, req.ip, options.clock()));
    // A copy the fetch types accept (an ArrayBuffer-backed view); bodies are at most a few KiB.
    const body = Uint8Array.from(Buffer.isBuffer(req.body) ? req.body : []);
    let upstream: Response;
    let text: string;
    try {
      upstream = await fetch(options.tokenEndpoint, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      text = await upstream.text();
    } catch (err) {
      req.log.error({ err }, 'The authorization server did not answer a forwarded token request');
      return reply
        .code(502)
        .header('cache-control', 'no-store')
        .send(errorBody('temporarily_unavailable', 'The authorization server cannot be reached; try again shortly'));
    }
    const type = upstream.headers.get('content-type') ?? '';
    if (!type.startsWith('application/json')) {
      req.log.error(
        { status: upstream.status, type },
        'The authorization server answered a token request without JSON',
      );
      return reply
        .code(502)
        .header('cache-control', 'no-store')
        .send(
          errorBody('temporarily_unavailable', 'The authorization server answered unexpectedly; try again shortly'),
        );
    }
    for (const name of PASSED_RESPONSE_HEADERS) {
      const v = upstream.headers.get(name);
      if (v !== null) reply.header(name, v);
    }
    return reply.code(upstream.status).type(type).send(text);
  };
}
