// One request through one listener's table: read the request once, find the route, act
// (forward, redirect, answer). Synchronous up to the dispatch: the table a request starts with
// is the one it finishes with, whatever reloads happen meanwhile.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CompiledRoute, ForwardPlan, ListenerTable } from './config/route-table.ts';
import { redirectLocation } from './filters/redirect.ts';
import { sendLocalReply } from './local-reply.ts';
import { normalizeHost } from './router/host.ts';
import type { MatchableRequest } from './router/match.ts';
import { findRoute } from './router/router.ts';
import { forward } from './upstream/forward.ts';
import { readClientHeaders, upstreamRequestHeaders, type ClientHeaders } from './upstream/headers.ts';

const NO_MODIFIERS: never[] = [];

/** The request as matching and forwarding see it; one allocation per request. */
class ProxyRequest implements MatchableRequest {
  readonly method: string;
  /** Path and query as they go upstream (origin-form). */
  readonly target: string;
  readonly path: string;
  readonly query: string;
  readonly hasQuery: boolean;
  readonly headers: string[];
  readonly host: string;
  readonly client: ClientHeaders;
  params: URLSearchParams | null = null;

  constructor(req: IncomingMessage) {
    const client = readClientHeaders(req.rawHeaders);
    let target = req.url ?? '/';
    let authority = client.host;
    if (target.charCodeAt(0) !== 0x2f /* / */ && target !== '*') {
      // absolute-form (`GET http://host/path`): its authority replaces Host (RFC 9112 §3.2.2).
      try {
        const url = new URL(target);
        authority = url.host;
        target = url.pathname + url.search;
      } catch {
        // Not a URL either: left as is; it matches no route.
      }
    }
    const queryStart = target.indexOf('?');
    this.method = req.method ?? 'GET';
    this.target = target;
    this.path = queryStart < 0 ? target : target.slice(0, queryStart);
    this.query = queryStart < 0 ? '' : target.slice(queryStart + 1);
    this.hasQuery = queryStart >= 0;
    this.headers = client.headers;
    this.host = normalizeHost(authority);
    this.client = client;
  }
}

export function handleRequest(table: ListenerTable, logger: Logger, req: IncomingMessage, res: ServerResponse): void {
  const startedAt = performance.now();
  const request = new ProxyRequest(req);
  const route = findRoute(table, request.host, request);
  if (route === null) {
    sendLocalReply(res, 404, 'Not Found\n', NO_MODIFIERS, table.notFound, startedAt);
    return;
  }
  const action = route.action;
  switch (action.type) {
    case 'Forward':
      forwardToBackend(table, logger, route, action, request, req, res, startedAt);
      return;
    case 'Redirect': {
      const location = redirectLocation(action.redirect, {
        scheme: table.scheme,
        host: request.host,
        listenerPort: table.port,
        path: request.path,
        query: request.query,
        hasQuery: request.hasQuery,
      });
      sendLocalReply(res, action.redirect.statusCode, null, action.responseModifiers, action.metrics, startedAt, location);
      return;
    }
    case 'DirectResponse':
      sendLocalReply(res, action.status, action.body, action.responseModifiers, action.metrics, startedAt);
      return;
  }
}

function forwardToBackend(
  table: ListenerTable,
  logger: Logger,
  route: CompiledRoute,
  action: ForwardPlan,
  request: ProxyRequest,
  req: IncomingMessage,
  res: ServerResponse,
  startedAt: number,
): void {
  const choice = action.picker === null ? action.noBackend : action.picker.pick() ?? action.noBackend;
  const backend = choice.backend;
  if (backend === null) {
    // All weights zero, or the picked share points at an invalid reference (Gateway API: 500).
    sendLocalReply(res, 500, 'Internal Server Error\n', choice.responseModifiers, choice.metrics, startedAt);
    return;
  }
  const endpoint = backend.nextEndpoint();
  if (endpoint === undefined) {
    sendLocalReply(res, 503, 'Service Unavailable\n', choice.responseModifiers, choice.metrics, startedAt);
    return;
  }
  const headers = upstreamRequestHeaders(request.client, req.socket.remoteAddress, table.scheme, choice.requestModifiers);
  forward(
    { method: request.method, target: request.target, headers, body: request.client.hasBody ? req : null },
    res,
    route.name,
    choice,
    endpoint,
    logger,
    startedAt,
  );
}
