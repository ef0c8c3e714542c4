import type { FastifyReply } from 'fastify';
import type { VNode } from 'preact';
import { renderToString } from 'preact-render-to-string';

/** Renders a page to HTML; preact escapes every interpolated value. */
export function renderHtml<P>(node: VNode<P>): string {
  return `<!doctype html>${renderToString(node as VNode)}`;
}

/** Sends a rendered page with its status; the one way routes answer with HTML. */
export function sendPage<P>(reply: FastifyReply, node: VNode<P>, status = 200): FastifyReply {
  return reply.status(status).type('text/html; charset=utf-8').send(renderHtml(node));
}
