// HTTP upgrades (WebSocket): routed exactly like requests, then tunnelled to the chosen
// endpoint. Answers the gateway gives itself (404, 5xx, redirects, direct responses) are written
// straight to the socket, which is closed afterwards.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ListenerTable } from './config/route-table.ts';
import { applyHeaderModifiers, type HeaderModifierPlan } from './filters/header-modifier.ts';
import type { RedirectPlan } from './filters/redirect.ts';
import type { RequestMetrics } from './metrics.ts';
import { locationFor, ProxyRequest, upstreamTarget } from './proxy-request.ts';
import { findRouteInScope, isMisdirected } from './router/router.ts';
import { upstreamRequestHeaders } from './upstream/headers.ts';
import { openTunnel } from './upstream/tunnel.ts';

export function handleUpgrade(table: ListenerTable, logger: Logger, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const startedAt = performance.now();
  const request = new ProxyRequest(req);
  const scope = table.scopes.find(request.host);
  if (table.protocol === 'HTTPS' && isMisdirected(table, (req.socket as TLSSocket).servername, scope)) {
    rawReply(socket, 421, [], table.notFound, startedAt);
    return;
  }
  const route = scope === undefined ? null : findRouteInScope(scope, request.host, request);
  if (route === null) {
    rawReply(socket, 404, [], table.notFound, startedAt);
    return;
  }
  const action = route.action;
  if (action.type === 'Redirect') {
    rawReply(socket, action.redirect.statusCode, locationHeader(table, request, action.redirect, action.responseModifiers), action.metrics, startedAt);
    return;
  }
  if (action.type === 'DirectResponse') {
    rawReply(socket, action.status, [], action.metrics, startedAt);
    return;
  }

  const choice = action.picker === null ? action.noBackend : action.picker.pick() ?? action.noBackend;
  const filters = choice.filters;
  const backend = choice.backend;
  if (backend === null) {
    rawReply(socket, 500, [], choice.metrics, startedAt);
    return;
  }
  if (filters.redirect !== null) {
    rawReply(socket, filters.redirect.statusCode, locationHeader(table, request, filters.redirect, filters.responseModifiers), choice.metrics, startedAt);
    return;
  }
  const endpoint = backend.nextEndpoint();
  if (endpoint === undefined) {
    rawReply(socket, 503, [], choice.metrics, startedAt);
    return;
  }

  const headers = upstreamRequestHeaders(request.client, req.socket.remoteAddress, table.scheme);
  // Connection and Upgrade are hop-by-hop, but for an upgrade they are the point: restore them.
  headers.push('connection', 'upgrade', 'upgrade', req.headers.upgrade ?? 'websocket');
  if (filters.requestModifiers.length > 0) applyHeaderModifiers(headers, filters.requestModifiers);
  const target = upstreamTarget(request, filters.rewrite, headers);
  openTunnel(socket, { method: request.method, target, headers, head }, endpoint, route.name, choice.metrics, logger, startedAt);
}

function locationHeader(table: ListenerTable, request: ProxyRequest, plan: RedirectPlan, modifiers: readonly HeaderModifierPlan[]): string[] {
  const headers = ['location', locationFor(plan, table, request)];
  if (modifiers.length > 0) applyHeaderModifiers(headers, modifiers);
  return headers;
}

function rawReply(socket: Duplex, status: number, headers: string[], metrics: RequestMetrics, startedAt: number): void {
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Status'}\r\ncontent-length: 0\r\nconnection: close\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    // Written raw, so nothing validates it downstream: never let a value break the framing.
    if (!UNSAFE_HEADER_TEXT.test(headers[i]) && !UNSAFE_HEADER_TEXT.test(headers[i + 1])) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  }
  socket.end(head + '\r\n');
  metrics.record(status, startedAt);
}

const UNSAFE_HEADER_TEXT = /[\r\n\0]/;

const STATUS_TEXT: Record<number, string> = {
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  404: 'Not Found',
  421: 'Misdirected Request',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};
