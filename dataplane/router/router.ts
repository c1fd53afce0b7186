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
 * 421 Misdirected Request (RFC 9110 §15.5.20): the TLS connection's SNI selected a listener scope
 * that has a hostname, and the request's Host falls into another scope (or none). An HTTP/2
 * client that reused one connection for several hosts (connection coalescing, RFC 9113 §9.1.1)
 * then retries on a connection of its own, with the right certificate and client validation.
 * SNI that selects a scope without hostname never causes it: that scope accepts any host.
 * `hostScope` is what the Host selected.
 */
export function isMisdirected(table: ListenerTable, servername: string | false | null | undefined, hostScope: ScopeTable | undefined): boolean {
  if (!servername) return false;
  const sniScope = table.scopes.find(normalizeHost(servername));
  return sniScope !== undefined && sniScope.hostname !== null && sniScope !== hostScope;
}
