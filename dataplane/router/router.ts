// Host → listener scope → virtual host → first matching route. The controller has already
// sorted routes by Gateway API precedence; the router only walks them in order.

import type { CompiledRoute, ListenerTable } from '../config/route-table.ts';
import { matches, type MatchableRequest } from './match.ts';

/**
 * The route for a request, or null (404). `host` is normalized (see normalizeHost). Once a
 * scope or virtual host is chosen by hostname there is no fallback to a less specific one.
 */
export function findRoute(table: ListenerTable, host: string, request: MatchableRequest): CompiledRoute | null {
  const scope = table.scopes.find(host);
  if (scope === undefined) return null;
  const virtualHost = scope.virtualHosts.find(host);
  if (virtualHost === undefined) return null;
  const routes = virtualHost.routes;
  for (let i = 0; i < routes.length; i++) {
    if (matches(routes[i].match, request)) return routes[i];
  }
  return null;
}
