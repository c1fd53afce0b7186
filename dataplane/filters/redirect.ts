// RequestRedirect: the Location header, derived per the Gateway API spec
// (HTTPRequestRedirectFilter): absent fields keep the request's values, and the port follows
// the scheme or the Gateway listener port, plus the port offset clients see (standalone
// --listener-port-offset) when the port is derived rather than given.

import type { PathMatch, RedirectAction } from '../../ir/types.ts';
import { compilePathModifier, rewritePath, type PathRewritePlan } from './rewrite.ts';

export type Scheme = 'http' | 'https';

export interface RedirectPlan {
  statusCode: number;
  scheme: Scheme | null;
  hostname: string | null;
  port: number | null;
  path: PathRewritePlan | null;
}

/** What the redirect needs from the request. */
export interface RedirectRequest {
  scheme: Scheme;
  /** Normalized Host (no port). */
  host: string;
  /** The Gateway listener port the request arrived on (not the bound port). */
  listenerPort: number;
  /**
   * Between a Gateway port and the port clients connect to (0 when a Service or NAT maps them):
   * added to derived ports, so `https` from a listener served at 8080 for port 80 goes to 8443.
   */
  portOffset: number;
  path: string;
  /** Query string without `?`, `''` when none. */
  query: string;
  hasQuery: boolean;
}

const DEFAULT_PORT: Record<Scheme, number> = { http: 80, https: 443 };

export function compileRedirect(action: RedirectAction, match: PathMatch): RedirectPlan {
  return {
    statusCode: action.statusCode,
    scheme: action.scheme ?? null,
    hostname: action.hostname ?? null,
    port: action.port ?? null,
    path: compilePathModifier(action.path, match),
  };
}

export function redirectLocation(plan: RedirectPlan, request: RedirectRequest): string {
  const scheme = plan.scheme ?? request.scheme;
  const hostname = plan.hostname ?? request.host;
  // Spec: an explicit port wins (as written: it may name another host's port); else a redirect
  // that names a scheme goes to that scheme's well-known port; else the Gateway listener port.
  // A derived port is the Gateway's: clients reach it at the offset port.
  const port = plan.port ?? (plan.scheme !== null ? DEFAULT_PORT[plan.scheme] : request.listenerPort) + request.portOffset;
  const authority = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  const portPart = port === DEFAULT_PORT[scheme] ? '' : `:${port}`;
  const path = rewritePath(plan.path, request.path);
  const query = request.hasQuery ? `?${request.query}` : '';
  return `${scheme}://${authority}${portPart}${path}${query}`;
}
