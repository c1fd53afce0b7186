// Route precedence within one virtual host: the first route in this order
// that matches a request wins. (Ingress adds tiers before all of it: a host's
// own paths, then host-less rules, then the defaultBackend.)
//   1. path: Exact, then RegularExpression, then PathPrefix (longer value first)
//   2. a method match before none
//   3. more header matches first, then more query-param matches first
//   4. the older route first (creationTimestamp), then namespace/name alphabetically
//   5. rule order, then match order within the route
// GRPCRoute matches (the spec's order, after the hostname the virtual host settled): more characters
// in the matched service first, then in the method, then more header matches; then 4 and 5. Our
// choice where the spec counts characters of implementation-specific regexes too: RegularExpression
// method matches come after every Exact one (a regex never shadows an exact name) and before matches
// without a method (which have no characters to count: last, as the spec has them).
// HTTPRoutes and GRPCRoutes never share a virtual host (grpcroute.ts resolves cross-serving).
// Placing RegularExpression between Exact and PathPrefix is our choice where the
// spec leaves regex precedence to implementations (Envoy Gateway does the same).
import type { PathMatchType } from '../../ir/types.ts';
import type { Placement } from './httproute.ts';

const PATH_RANK: Record<PathMatchType, number> = { Exact: 0, RegularExpression: 1, PathPrefix: 2 };

export function comparePrecedence(a: Placement, b: Placement): number {
  const ma = a.route.match;
  const mb = b.route.match;
  const ga = a.order.grpc;
  const gb = b.order.grpc;
  if (ga && gb) return ga.tier - gb.tier || gb.service - ga.service || gb.method - ga.method || mb.headers.length - ma.headers.length || compareOrigins(a, b);
  return (
    a.order.tier - b.order.tier ||
    PATH_RANK[ma.path.type] - PATH_RANK[mb.path.type] ||
    mb.path.value.length - ma.path.value.length ||
    Number(mb.method !== undefined) - Number(ma.method !== undefined) ||
    mb.headers.length - ma.headers.length ||
    mb.queryParams.length - ma.queryParams.length ||
    compareOrigins(a, b)
  );
}

/** Ties: the older route, then namespace/name, then rule and match order. */
function compareOrigins(a: Placement, b: Placement): number {
  return (
    compareStrings(a.order.creationTimestamp, b.order.creationTimestamp) ||
    compareStrings(a.order.source, b.order.source) ||
    a.order.ruleIndex - b.order.ruleIndex ||
    a.order.matchIndex - b.order.matchIndex
  );
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
