// RequestRedirect: the Location header, derived per the Gateway API spec
// (HTTPRequestRedirectFilter): absent fields keep the request's values, and the port follows
// the scheme or the Gateway listener port.

import type { PathMatch, RedirectAction } from '../../controller/ir/types.ts';
import { normalizePrefix } from '../router/match.ts';

export type Scheme = 'http' | 'https';

export interface RedirectPlan {
  statusCode: number;
  scheme: Scheme | null;
  hostname: string | null;
  port: number | null;
  path: RedirectPathPlan | null;
}

export type RedirectPathPlan =
  | { type: 'ReplaceFullPath'; value: string }
  /** `prefix` is the matched PathPrefix without trailing slash (`''` for `/`); same for `replacement`. */
  | { type: 'ReplacePrefixMatch'; prefix: string; replacement: string };

/** What the redirect needs from the request. */
export interface RedirectRequest {
  scheme: Scheme;
  /** Normalized Host (no port). */
  host: string;
  /** The Gateway listener port the request arrived on (not the bound port). */
  listenerPort: number;
  path: string;
  /** Query string without `?`, `''` when none. */
  query: string;
  hasQuery: boolean;
}

const DEFAULT_PORT: Record<Scheme, number> = { http: 80, https: 443 };

export function compileRedirect(action: RedirectAction, match: PathMatch): RedirectPlan {
  let path: RedirectPathPlan | null = null;
  if (action.path?.type === 'ReplaceFullPath') {
    path = { type: 'ReplaceFullPath', value: action.path.value };
  } else if (action.path?.type === 'ReplacePrefixMatch') {
    // Only meaningful for a PathPrefix match (the API rejects other combinations); anything
    // else replaces the whole path, which is what a prefix of the full path amounts to.
    path =
      match.type === 'PathPrefix'
        ? { type: 'ReplacePrefixMatch', prefix: normalizePrefix(match.value), replacement: normalizePrefix(action.path.value) }
        : { type: 'ReplaceFullPath', value: action.path.value };
  }
  return {
    statusCode: action.statusCode,
    scheme: action.scheme ?? null,
    hostname: action.hostname ?? null,
    port: action.port ?? null,
    path,
  };
}

export function redirectLocation(plan: RedirectPlan, request: RedirectRequest): string {
  const scheme = plan.scheme ?? request.scheme;
  const hostname = plan.hostname ?? request.host;
  // Spec: an explicit port wins; else a redirect that names a scheme goes to that scheme's
  // well-known port; else the Gateway listener port (what the client connected to, before any
  // dataplane port offset).
  const port = plan.port ?? (plan.scheme !== null ? DEFAULT_PORT[plan.scheme] : request.listenerPort);
  const authority = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  const portPart = port === DEFAULT_PORT[scheme] ? '' : `:${port}`;
  const path = rewritePath(plan.path, request.path);
  const query = request.hasQuery ? `?${request.query}` : '';
  return `${scheme}://${authority}${portPart}${path}${query}`;
}

export function rewritePath(plan: RedirectPathPlan | null, path: string): string {
  if (plan === null) return path;
  if (plan.type === 'ReplaceFullPath') return plan.value;
  // Element-wise: the matched prefix ends at a segment boundary, so the rest is '' or starts
  // with '/'; the replacement has no trailing slash, so no '//' can appear at the seam.
  const rest = path.slice(plan.prefix.length);
  const rewritten = plan.replacement + rest;
  return rewritten === '' ? '/' : rewritten;
}
