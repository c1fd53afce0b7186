// Random IR edits made the way the translator makes them: a changed part is a new object along its
// path (listener → scope → virtual host → route), everything else keeps its identity. For the
// property tests of what relies on that identity (test/dataplane/incremental.test.ts, ir-delta.test.ts).

import fc from 'fast-check';
import type { Backend, Endpoint, HttpIR, ListenerScope, RateLimitPolicy, Route, TlsCertificate, VirtualHost } from '../../../ir/types.ts';
import { exact, forwardTo, listener, prefix, regex, requestHeaders, route, scope, vhost, weighted } from './ir.ts';

export const HOSTS = ['*', 'x.test', '*.x.test', 'y.test'];
export const BACKENDS = ['b0', 'b1', 'b2', 'b3', 'b4'];

export function endpoints(seed: number): Endpoint[] {
  const count = seed % 3; // 0, 1 or 2 endpoints: none ready is a case too
  return Array.from({ length: count }, (_, i) => ({ address: `10.0.${seed % 7}.${i + 1}`, port: 8000 + (seed % 5) }));
}

export function backendOf(name: string, seed: number): Backend {
  return { name, source: `default/${name}:80`, appProtocol: seed % 4 === 3 ? 'h2c' : 'http', endpoints: endpoints(seed) };
}

/** A rule from a number: its path match, backends and weights, filters, action kind all vary with it. */
export function routeOf(id: number, seed: number): Route {
  const paths = [prefix('/'), prefix('/a'), prefix('/a/b'), exact('/a'), exact('/b'), regex('/(a|b)/c'), prefix('/b')];
  const path = paths[seed % paths.length];
  const backend = (k: number): string | null => (k === 5 ? null : `b${k}`); // b5 is never in the IR, null is an invalid reference
  const headers = seed % 5 === 4 ? [{ type: 'Exact' as const, name: 'x-v', value: '1' }] : [];
  if (seed % 11 === 10) return route(`r${id}`, { path, headers }, { type: 'Redirect', statusCode: 301, hostname: 'moved.test' });
  const action =
    seed % 3 === 0
      ? forwardTo(weighted(backend(seed % 6), 1 + (seed % 3)), weighted(backend((seed >> 2) % 6), seed % 4))
      : forwardTo(weighted(backend(seed % 6), 1, seed % 7 === 1 ? [requestHeaders({ set: [{ name: 'x-b', value: String(seed) }] })] : []));
  const filters = seed % 13 === 12 ? [{ type: 'RequestMirror' as const, backend: backend((seed >> 3) % 6), percent: 100 }] : [];
  const rule = route(`r${id}`, { path, headers }, action, filters);
  if (seed % 9 === 8) return { ...rule, sessionPersistence: { type: 'Cookie', name: 's', scope: `r${id}` } };
  // Rate limited by the IR's policy (or by one it lacks: not enforced).
  if (seed % 8 === 7) return { ...rule, rateLimit: { policy: seed % 16 === 15 ? 'missing' : RATE_LIMIT_POLICY, partition: `default/r${id}` } };
  return rule;
}

export const RATE_LIMIT_POLICY = 'ratelimitpolicy/default/limit';

/** A RateLimitPolicy as the translator makes it; `requests` varies with the edits (a new object each time). */
export function rateLimitPolicy(requests: number): RateLimitPolicy {
  const rule = { name: 'r', scope: 'Local' as const, selectors: [], requests, unitSeconds: 60, burst: requests, shared: false, shadowMode: false, hash: String(requests) };
  return {
    name: RATE_LIMIT_POLICY,
    source: 'default/limit',
    origin: { kind: 'RateLimitPolicy', namespace: 'default', name: 'limit' },
    rules: [rule],
    failureMode: 'FailOpen',
    clientIP: { trustedHops: 0, trustedProxies: [] },
    responseHeaders: { draft10: false, legacy: false },
  };
}

let httpsCertificate: TlsCertificate | null = null;

/** With a certificate set, initialIR adds an HTTPS listener (its scopes may carry HSTS: edit 9). */
export function useHttpsCertificate(certificate: TlsCertificate): void {
  httpsCertificate = certificate;
}

export function initialIR(seed: number): HttpIR {
  let id = 0;
  const vhosts = (count: number): Array<[string, Route[]]> =>
    HOSTS.slice(0, count).map((host, h) => [host, Array.from({ length: (seed + h) % 4 }, () => routeOf(id++, seed + id * 7))]);
  return {
    listeners: [
      listener(80, [scope('http', null, vhosts(3)), scope('named', 'y.test', vhosts(2))]),
      listener(81, [scope('other', null, vhosts(4))]),
      ...(httpsCertificate === null
        ? []
        : [listener(443, [{ ...scope('https', null, vhosts(3)), ...(seed % 2 === 0 ? { hsts: 'max-age=60' } : {}) }], { protocol: 'HTTPS', tls: { certificates: [httpsCertificate] } })]),
    ],
    backends: Object.fromEntries(BACKENDS.slice(0, 4).map((name, i) => [name, backendOf(name, seed + i)])),
    rateLimits: { [RATE_LIMIT_POLICY]: rateLimitPolicy(10) },
  };
}

export type Edit = { kind: number; a: number; b: number; c: number };

/** Copy on write along listener → scope → virtual host: the rest of the IR keeps its objects. */
export function withVirtualHost(ir: HttpIR, a: number, b: number, change: (vh: VirtualHost, scope: ListenerScope) => VirtualHost | null): HttpIR {
  const l = a % ir.listeners.length;
  const target = ir.listeners[l];
  if (target.scopes.length === 0) return ir;
  const s = b % target.scopes.length;
  const sc = target.scopes[s];
  if (sc.virtualHosts.length === 0) return ir;
  const v = (a + b) % sc.virtualHosts.length;
  const changed = change(sc.virtualHosts[v], sc);
  const virtualHosts = changed === null ? sc.virtualHosts.filter((_, i) => i !== v) : sc.virtualHosts.map((vh, i) => (i === v ? changed : vh));
  const scopes = target.scopes.map((x, i) => (i === s ? { ...sc, virtualHosts } : x));
  return { ...ir, listeners: ir.listeners.map((x, i) => (i === l ? { ...target, scopes } : x)) };
}

let nextId = 1000;

export function edit(ir: HttpIR, e: Edit): HttpIR {
  switch (e.kind % 13) {
    case 0: // a rule added
      return withVirtualHost(ir, e.a, e.b, (vh) => {
        const routes = [...vh.routes];
        routes.splice(e.c % (routes.length + 1), 0, routeOf(nextId++, e.c));
        return { ...vh, routes };
      });
    case 1: // a rule removed
      return withVirtualHost(ir, e.a, e.b, (vh) => ({ ...vh, routes: vh.routes.filter((_, i) => i !== e.c % Math.max(1, vh.routes.length)) }));
    case 2: // a rule changed (same name, new object)
      return withVirtualHost(ir, e.a, e.b, (vh) => {
        if (vh.routes.length === 0) return vh;
        const i = e.c % vh.routes.length;
        const changed = routeOf(0, e.c + 1);
        return { ...vh, routes: vh.routes.map((r, k) => (k === i ? { ...changed, name: r.name, source: r.source, origin: r.origin } : r)) };
      });
    case 3: // endpoints of a backend changed: EndpointSlice churn
    case 4: {
      const names = Object.keys(ir.backends);
      if (names.length === 0) return ir;
      const name = names[e.a % names.length];
      const old = ir.backends[name];
      return { ...ir, backends: { ...ir.backends, [name]: { ...old, endpoints: endpoints(e.b) } } };
    }
    case 5: {
      // a backend added, removed or reshaped (appProtocol, metric label)
      const name = BACKENDS[e.a % BACKENDS.length];
      const backends = { ...ir.backends };
      if (e.b % 3 === 0) delete backends[name];
      else if (e.b % 3 === 1) backends[name] = backendOf(name, e.c);
      else if (backends[name] !== undefined) backends[name] = { ...backends[name], source: `default/${name}:${e.c % 3}` };
      return { ...ir, backends };
    }
    case 6: // a rule moved to another virtual host, the same object (an HTTPRoute's hostname edited)
    {
      let moved: Route | undefined;
      const without = withVirtualHost(ir, e.a, e.b, (vh) => {
        moved = vh.routes[e.c % Math.max(1, vh.routes.length)];
        return moved === undefined ? vh : { ...vh, routes: vh.routes.filter((r) => r !== moved) };
      });
      if (moved === undefined) return ir;
      const route = moved;
      return withVirtualHost(without, e.b, e.c, (vh) => (vh.routes.some((r) => r.name === route.name) ? vh : { ...vh, routes: [route, ...vh.routes] }));
    }
    case 7: // a virtual host removed
      return withVirtualHost(ir, e.a, e.b, () => null);
    case 8: {
      // a virtual host added to a scope
      const l = e.a % ir.listeners.length;
      const target = ir.listeners[l];
      const s = e.b % Math.max(1, target.scopes.length);
      const sc = target.scopes[s];
      if (sc === undefined) return ir;
      const host = HOSTS[e.c % HOSTS.length];
      if (sc.virtualHosts.some((vh) => vh.hostname === host)) return ir;
      const virtualHosts = [...sc.virtualHosts, vhost(sc.name, host, [routeOf(nextId++, e.c)])];
      return { ...ir, listeners: ir.listeners.map((x, i) => (i === l ? { ...target, scopes: target.scopes.map((y, k) => (k === s ? { ...sc, virtualHosts } : y)) } : x)) };
    }
    case 9: {
      // a listener's scope hostname changed (a new scope object, the same virtual hosts)
      const l = e.a % ir.listeners.length;
      const target = ir.listeners[l];
      const s = e.b % Math.max(1, target.scopes.length);
      if (target.scopes[s] === undefined) return ir;
      // or its HSTS (HTTPS listeners: every route of the scope answers with it)
      const hostname = [null, 'x.test', '*.x.test'][e.c % 3];
      const changed = (y: ListenerScope): ListenerScope => {
        if (e.b % 2 === 0) return { ...y, hostname };
        const { hsts: _, ...rest } = y;
        return e.c % 3 === 0 ? rest : { ...rest, hsts: `max-age=${e.c}` };
      };
      return { ...ir, listeners: ir.listeners.map((x, i) => (i === l ? { ...target, scopes: target.scopes.map((y, k) => (k === s ? changed(y) : y)) } : x)) };
    }
    case 10: // nothing changed but the rate-limit policy, now and then: a new version made of the same objects
      return e.a % 3 === 0 ? { ...ir, rateLimits: { [RATE_LIMIT_POLICY]: rateLimitPolicy(1 + e.b) } } : { ...ir };
    case 11: // many rules inserted at the front: every kept rule moves (a compile finds them by object, not position)
      return withVirtualHost(ir, e.a, e.b, (vh) => ({ ...vh, routes: [...Array.from({ length: 10 + (e.c % 5) }, (_, i) => routeOf(nextId++, e.c + i)), ...vh.routes] }));
    default: // every object new (a dataplane that received the IR as JSON): identity says nothing
      return structuredClone(ir);
  }
}

export const editArb: fc.Arbitrary<Edit> = fc.record({ kind: fc.nat(25), a: fc.nat(50), b: fc.nat(50), c: fc.nat(50) });
