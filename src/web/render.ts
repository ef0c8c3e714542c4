import type { VNode } from 'preact';
import { renderToString } from 'preact-render-to-string';

/** Renders a page to HTML; preact escapes every interpolated value. */
export function renderHtml<P>(node: VNode<P>): string {
  return `<!doctype html>${renderToString(node as VNode)}`;
}
