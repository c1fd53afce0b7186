// One request through one listener's table: read the request once, find the route, act
// (forward, redirect, answer). Synchronous up to the dispatch: the table a request starts with
// is the one it finishes with, whatever reloads happen meanwhile. HTTP/1.x and HTTP/2 requests
// take the same path (see downstream.ts).

import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { CompiledRoute, ForwardPlan, ListenerTable } from './config/route-table.ts';
import type { DownstreamRequest, DownstreamResponse } from './downstream.ts';
import { originAllowed, preflightHeaders, responseCorsHeaders } from './filters/cors.ts';
import { applyHeaderModifiers, type HeaderModifierPlan } from './filters/header-modifier.ts';
import { grpcTimeoutMs, isGrpcRequest } from './grpc/grpc.ts';
import { headerValue } from './header-fields.ts';
import type { RedirectPlan } from './filters/redirect.ts';
import { sendLocalReply } from './local-reply.ts';
import type { RequestMetrics } from './metrics.ts';
import type { RateLimitDecision } from './ratelimit/limiter.ts';
import { locationFor, ProxyRequest, upstreamTarget } from './proxy-request.ts';
import { findRouteInScope, isMisdirected } from './router/router.ts';
import { ProxyExchange } from './upstream/forward.ts';
import { upstreamRequestHeaders } from './upstream/headers.ts';
import { mirrorSampled, type MirrorCopy } from './upstream/mirror.ts';
import type { ClientUpgrade } from './upstream/tunnel.ts';

const NO_MODIFIERS: never[] = [];

/** `upgrade`: an HTTP/1.1 upgrade request the route may tunnel (see upgrade-handler.ts), else null. */
export function handleRequest(table: ListenerTable, logger: Logger, req: DownstreamRequest, res: DownstreamResponse, upgrade: ClientUpgrade | null = null): void {
  const startedAt = performance.now();
  const request = new ProxyRequest(req, table.flows, startedAt);
  const scope = table.scopes.find(request.host);
  if (table.protocol === 'HTTPS' && isMisdirected(table, (req.socket as TLSSocket).servername, scope)) {
    sendLocalReply(res, 421, 'Misdirected Request\n', scope?.replyModifiers ?? NO_MODIFIERS, table.notFound, startedAt);
    return;
  }
  const route = scope === undefined ? null : findRouteInScope(scope, request.host, request);
  if (request.flow !== null) request.flow.gateway = scope?.gateway ?? null;
  if (route === null) {
    request.flow?.finish(404, 'NO_ROUTE');
    sendLocalReply(res, 404, 'Not Found\n', scope?.replyModifiers ?? NO_MODIFIERS, table.notFound, startedAt);
    return;
  }
  if (request.flow !== null) request.flow.route = route;
  if (route.grpc && !isGrpcRequest(req, request.headers)) {
    // A GRPCRoute rule serves gRPC calls only (HTTP/2, application/grpc): anything else is told so
    // here rather than confusing a gRPC backend (HTTP/1.x, gRPC-Web, a browser).
    sendLocalReply(res, 415, 'Unsupported Media Type: this route serves gRPC only (HTTP/2, content-type application/grpc)\n', responseModifiersOf(route), metricsOf(route), startedAt);
    return;
  }

  let corsHeaders: string[] | null = null;
  if (route.cors !== null) {
    const origin = headerValue(request.headers, 'origin');
    if (origin !== undefined) {
      const allowed = originAllowed(route.cors, origin);
      const requestedMethod = request.method === 'OPTIONS' ? headerValue(request.headers, 'access-control-request-method') : undefined;
      if (requestedMethod !== undefined) {
        // A preflight: the gateway answers it; the backend never sees it.
        const headers = allowed ? preflightHeaders(route.cors, origin, requestedMethod, headerValue(request.headers, 'access-control-request-headers')) : null;
        sendLocalReply(res, allowed ? 204 : 403, null, NO_MODIFIERS, metricsOf(route), startedAt, headers);
        return;
      }
      if (allowed) corsHeaders = responseCorsHeaders(route.cors, origin);
    }
  }

  const limiter = route.rateLimit;
  const decision = limiter === null ? null : limiter.check(request, req.socket?.remoteAddress);
  if (decision instanceof Promise) {
    // A global rule asked Redis: at most its command timeout.
    decision.then((d) => act(table, logger, route, request, req, res, corsHeaders, startedAt, upgrade, d));
    return;
  }
  act(table, logger, route, request, req, res, corsHeaders, startedAt, upgrade, decision);
}

/**
 * The route's action. Over a rate limit: the limiter's answer (429, or 503 for FailClosed), nothing
 * sent upstream; within it, on with the limiter's headers.
 */
function act(
  table: ListenerTable,
  logger: Logger,
  route: CompiledRoute,
  request: ProxyRequest,
  req: DownstreamRequest,
  res: DownstreamResponse,
  routeHeaders: string[] | null,
  startedAt: number,
  upgrade: ClientUpgrade | null,
  decision: RateLimitDecision | null,
): void {
  let corsHeaders = routeHeaders;
  if (decision !== null) {
    if (decision.headers.length > 0) corsHeaders = corsHeaders === null ? (decision.headers as string[]) : [...corsHeaders, ...decision.headers];
    if (!decision.allowed) {
      request.flow?.finish(decision.status, 'RATE_LIMITED');
      sendLocalReply(res, decision.status, decision.body, responseModifiersOf(route), metricsOf(route), startedAt, corsHeaders);
      return;
    }
  }
  const action = route.action;
  switch (action.type) {
    case 'Forward':
      forwardToBackend(table, logger, route, action, request, req, res, corsHeaders, startedAt, upgrade);
      return;
    case 'Redirect':
      redirect(table, request, res, action.redirect, action.responseModifiers, action.metrics, corsHeaders, startedAt);
      return;
    case 'DirectResponse':
      sendLocalReply(res, action.status, action.body, action.responseModifiers, action.metrics, startedAt, corsHeaders);
      return;
  }
}

function forwardToBackend(
  table: ListenerTable,
  logger: Logger,
  route: CompiledRoute,
  action: ForwardPlan,
  request: ProxyRequest,
  req: DownstreamRequest,
  res: DownstreamResponse,
  corsHeaders: string[] | null,
  startedAt: number,
  upgrade: ClientUpgrade | null,
): void {
  // A valid session token beats the weights (GEP-1619); without one the request starts a session.
  const session = action.session === null ? null : action.session.bind(request.headers, Date.now());
  const pinned = session?.target ?? null;
  const choice = pinned !== null ? pinned.choice : action.picker === null ? action.noBackend : action.picker.pick() ?? action.noBackend;
  const filters = choice.filters;
  const backend = choice.backend;
  if (backend === null) {
    // All weights zero, or the picked share points at an invalid reference (Gateway API: 500; for a
    // GRPCRoute, UNAVAILABLE).
    if (route.grpc) sendLocalReply(res, 503, 'Service Unavailable: no valid backend\n', filters.responseModifiers, choice.metrics, startedAt, corsHeaders);
    else sendLocalReply(res, 500, 'Internal Server Error\n', filters.responseModifiers, choice.metrics, startedAt, corsHeaders);
    return;
  }
  if (filters.redirect !== null) {
    redirect(table, request, res, filters.redirect, filters.responseModifiers, choice.metrics, corsHeaders, startedAt);
    return;
  }
  if (request.flow !== null) request.flow.backend = backend.name;
  if (backend.endpoints.length === 0) {
    request.flow?.finish(503, 'NO_BACKEND');
    sendLocalReply(res, 503, 'Service Unavailable\n', filters.responseModifiers, choice.metrics, startedAt, corsHeaders);
    return;
  }

  // An upgrade the route does not allow goes upstream as a plain request (Upgrade is hop-by-hop).
  if (upgrade !== null && !route.upgradeTypes.has(upgrade.protocol)) upgrade = null;
  const headers = upstreamRequestHeaders(request.headers, req.socket.remoteAddress, table.scheme);
  let mirrors: MirrorCopy[] | null = null;
  // A mirror gets plain requests only: it must not open a second tunnel.
  for (let i = 0; upgrade === null && i < filters.mirrors.length; i++) {
    const mirror = filters.mirrors[i];
    if (!mirrorSampled(mirror)) continue;
    // The copy carries the header changes of the filters listed before the mirror.
    const copy = headers.slice();
    applyHeaderModifiers(copy, filters.requestModifiers.slice(0, mirror.modifiersBefore));
    (mirrors ??= []).push({ plan: mirror, target: upstreamTarget(request, mirror.rewrite, copy), headers: copy });
  }
  if (filters.requestModifiers.length > 0) applyHeaderModifiers(headers, filters.requestModifiers);
  const target = upstreamTarget(request, filters.rewrite, headers);
  const body = request.hasBody ? req : null;
  const deadlineMs = route.grpc ? grpcTimeoutMs(request.headers) : 0;
  new ProxyExchange(request.method, target, headers, body, mirrors, upgrade, deadlineMs, route.grpc, request.flow, session, res, route.name, action, choice, backend, corsHeaders, logger, startedAt).start();
}

function redirect(
  table: ListenerTable,
  request: ProxyRequest,
  res: DownstreamResponse,
  plan: RedirectPlan,
  modifiers: readonly HeaderModifierPlan[],
  metrics: RequestMetrics,
  corsHeaders: string[] | null,
  startedAt: number,
): void {
  const location = locationFor(plan, table, request);
  const headers = corsHeaders === null ? ['location', location] : ['location', location, ...corsHeaders];
  sendLocalReply(res, plan.statusCode, null, modifiers, metrics, startedAt, headers);
}

function responseModifiersOf(route: CompiledRoute): readonly HeaderModifierPlan[] {
  const action = route.action;
  return action.type === 'Forward' ? action.noBackend.filters.responseModifiers : action.responseModifiers;
}

function metricsOf(route: CompiledRoute): RequestMetrics {
  const action = route.action;
  return action.type === 'Forward' ? action.noBackend.metrics : action.metrics;
}
