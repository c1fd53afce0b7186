// The request as the proxy sees it, read once: target split into path and query, the path
// normalised, headers lower-cased (HTTP/2 pseudo-headers turned into HTTP/1.1 ones), Host
// normalized. Shared by HTTP/1.1 and HTTP/2 requests and by upgrades.

import { Http2ServerRequest } from 'node:http2';
import type { ListenerTable } from './config/route-table.ts';
import { RequestFlow, type RequestFlows } from './flows/request-flows.ts';
import type { DownstreamRequest } from './downstream.ts';
import { appendHeader, removeHeader } from './filters/header-modifier.ts';
import { headerValue } from './header-fields.ts';
import { redirectLocation, type RedirectPlan } from './filters/redirect.ts';
import { rewritePath, type UrlRewritePlan } from './filters/rewrite.ts';
import { absoluteFormAuthority } from './http1-strict.ts';
import { normalizeHost } from './router/host.ts';
import type { MatchableRequest } from './router/match.ts';
import { normalizePath } from './router/path.ts';
import { readClientHeaders, readHttp2ClientHeaders } from './upstream/headers.ts';

/**
 * The request as matching and forwarding see it, and its flow record (a RequestFlow itself, which
 * records only when the table has flows on): one allocation per request.
 */
export class ProxyRequest extends RequestFlow implements MatchableRequest {
  /** Normalised (see normalizePath): what routes match and the upstream receives. */
  readonly path: string;
  readonly query: string;
  readonly hasQuery: boolean;
  /** Flat `[name, value, ...]`, names lower-case, every header in arrival order (see readClientHeaders). */
  readonly headers: string[];
  /** Whether a request body follows (Content-Length > 0 or Transfer-Encoding). */
  readonly hasBody: boolean;
  params: URLSearchParams | null = null;
  /** This request as a flow record when flows are on (dataplane/flows), else null. */
  readonly flow: RequestFlow | null;

  /** `flows`: the table's flow recorder, or null; `startedAt` from performance.now(). */
  constructor(req: DownstreamRequest, flows: RequestFlows | null, startedAt: number) {
    // By class, not httpVersionMajor: the HTTP/1.1 parser also accepts `GET / HTTP/2.0`, which has no stream.
    const client = req instanceof Http2ServerRequest ? readHttp2ClientHeaders(req.rawHeaders, req.stream.endAfterHeaders) : readClientHeaders(req.rawHeaders);
    const hasBody = client.hasBody;
    let headers = client.headers;
    let target = req.url ?? '/';
    let authority = client.host;
    if (target.charCodeAt(0) !== 0x2f /* / */ && target !== '*') {
      // absolute-form (`GET http://host/path`, HTTP/1.x): its authority replaces Host, for
      // routing and for the upstream alike (RFC 9112 §3.2.2). requestProblem() has refused
      // targets that are not http(s) URLs; anything else left as is matches no route.
      const absolute = absoluteFormAuthority(target);
      if (absolute !== null) {
        authority = absolute.host;
        target = absolute.pathAndQuery;
        removeHeader(headers, 'host');
        headers.unshift('host', authority);
      }
    }
    const queryStart = target.indexOf('?');
    const rawPath = queryStart < 0 ? target : target.slice(0, queryStart);
    const path = normalizePath(rawPath);
    if (path !== rawPath) target = queryStart < 0 ? path : path + target.slice(queryStart);
    const socket = flows === null ? undefined : req.socket;
    super(flows, socket?.remoteAddress ?? '', socket?.remotePort ?? 0, req.method ?? 'GET', target, normalizeHost(authority), req.httpVersion, startedAt);
    this.path = path;
    this.query = queryStart < 0 ? '' : target.slice(queryStart + 1);
    this.hasQuery = queryStart >= 0;
    this.headers = headers;
    this.hasBody = hasBody;
    this.flow = flows === null ? null : this;
  }
}

/** Path and query for the upstream; a URLRewrite hostname replaces the Host header in `headers`. */
export function upstreamTarget(request: ProxyRequest, rewrite: UrlRewritePlan | null, headers: string[]): string {
  if (rewrite === null) return request.target;
  if (rewrite.hostname !== null) {
    const original = headerValue(headers, 'host');
    removeHeader(headers, 'host');
    headers.push('host', rewrite.hostname);
    // The backend still learns the name the client asked for (absolute links, virtual hosting), as
    // Envoy Gateway (Envoy's append_x_forwarded_host) and nginx send it: appended to any it was sent.
    if (original !== undefined && original !== rewrite.hostname) appendHeader(headers, 'x-forwarded-host', original);
  }
  if (rewrite.path === null) return request.target;
  const path = rewritePath(rewrite.path, request.path);
  return request.hasQuery ? `${path}?${request.query}` : path;
}

/** The Location a redirect sends this request to. */
export function locationFor(plan: RedirectPlan, table: ListenerTable, request: ProxyRequest): string {
  return redirectLocation(plan, {
    scheme: table.scheme,
    host: request.host,
    listenerPort: table.port,
    portOffset: table.redirectPortOffset,
    path: request.path,
    query: request.query,
    hasQuery: request.hasQuery,
  });
}
