// Host → listener scope → virtual host → first matching route. The controller has already
// sorted routes by Gateway API precedence; the router takes the first that matches in that order
// (through the virtual host's path index, route-index.ts).

import type { CompiledRoute, ListenerTable, ScopeTable } from '../config/route-table.ts';
import { normalizeHost } from './host.ts';
import type { MatchableRequest } from './match.ts';

/**
 * The route for a request, or null (404). `host` is normalized (see normalizeHost). Once a
 * scope or virtual host is chosen by hostname there is no fallback to a less specific one.
 */
export function findRoute(table: ListenerTable, host: string, request: MatchableRequest): CompiledRoute | null {
  const scope = table.scopes.find(host);
  return scope === undefined ? null : findRouteInScope(scope, host, request);
}

/** The second half of findRoute, for a scope already chosen by `host`. */
export function findRouteInScope(scope: ScopeTable, host: string, request: MatchableRequest): CompiledRoute | null {
  const virtualHost = scope.virtualHosts.find(host);
  return virtualHost === undefined ? null : virtualHost.index.find(request);
}

/**
 * 421 Misdirected Request (RFC 9110 §15.5.20; Listener.hostname in gateway_types.go): the TLS
 * connection's SNI selected one listener scope and the request's Host selects another on the same
 * port — also a more specific one than the hostname-less scope the SNI fell to, so a Host cannot
 * reach a listener's routes past its certificate and client validation. An HTTP/2 client that
 * reused one connection for several hosts (connection coalescing, RFC 9113 §9.1.1) then retries on
 * a connection of its own. A Host no scope takes is a 404 (the spec's MUST), as is a request
 * without SNI. `hostScope` is what the Host selected.
 */
export function isMisdirected(table: ListenerTable, servername: string | false | null | undefined, hostScope: ScopeTable | undefined): boolean {
  if (!servername || hostScope === undefined) return false;
  const sniScope = table.scopes.find(normalizeHost(servername));
  return sniScope !== undefined && sniScope !== hostScope;
}
