// Hostname rules of the Gateway API: a wildcard `*.example.com` matches any
// name with at least one more label (`a.example.com`, `a.b.example.com`),
// never `example.com` itself.

export function isWildcard(hostname: string): boolean {
  return hostname.startsWith('*.');
}

/** Does `pattern` (exact name or `*.` wildcard) match the concrete or wildcard `name`? */
export function hostnameMatches(pattern: string, name: string): boolean {
  if (!isWildcard(pattern)) return pattern === name;
  const suffix = pattern.slice(1); // ".example.com"
  return name.endsWith(suffix) && name.length > suffix.length;
}

/** Could some request host match both (exact names, `*.` wildcards, `*` for any)? */
export function hostnamesIntersect(a: string, b: string): boolean {
  return a === '*' || b === '*' || a === b || hostnameMatches(a, b) || hostnameMatches(b, a);
}

/**
 * Hostnames a route serves on a listener: the intersection of the route's
 * hostnames with the listener's hostname, taking the more specific name of
 * each matching pair. An empty route list means "all", a null listener
 * hostname means "any". Returns [] when nothing intersects, ['*'] for any.
 */
export function intersectHostnames(routeHostnames: string[], listenerHostname: string | null): string[] {
  if (routeHostnames.length === 0) return [listenerHostname ?? '*'];
  if (listenerHostname === null) return dedupe(routeHostnames);
  const out: string[] = [];
  for (const h of routeHostnames) {
    if (h === listenerHostname || hostnameMatches(listenerHostname, h)) out.push(h);
    else if (hostnameMatches(h, listenerHostname)) out.push(listenerHostname);
  }
  return dedupe(out);
}

/**
 * Specificity for choosing among hostnames that match a request: exact names
 * first, then wildcards by length, then `*`/null. Larger is more specific.
 */
export function hostnameSpecificity(hostname: string | null): number {
  if (hostname === null || hostname === '*') return 0;
  if (isWildcard(hostname)) return 1 + hostname.length;
  return 1_000_000 + hostname.length;
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}
