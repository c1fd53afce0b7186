// With the BPF agent active the kernel picks the endpoint at connect(): the
// proxy connects to the Service VIP and keeps one pool per VIP. Backends whose
// Service has no VIP in ir.l4 (ExternalName, headless) keep userspace picking,
// and so do backends with an endpoint L7 policy governs, and backends of a
// route with session persistence (its token names an endpoint): the proxy must
// know the endpoint before it sends the request (the kernel still enforces
// L3/L4 on the connection to it).
import type { Backend, HttpIR, L4IR, VirtualHost } from '../../ir/types.ts';
import { HttpPolicyIndex } from '../policy/http-policy.ts';

export function viaServiceVips(http: HttpIR, l4: L4IR): HttpIR {
  const vips = new Map(l4.services.filter((s) => s.protocol === 'TCP' && s.endpoints.length > 0).map((s) => [s.name, s]));
  const l7 = HttpPolicyIndex.build(l4.policy);
  const sticky = stickyBackends(http);
  const backends = Object.fromEntries(Object.entries(http.backends).map(([name, backend]) => {
    const service = vips.get(name);
    // No ready endpoints: keep the empty list so the proxy answers 503 at once instead of connecting.
    if (!service || backend.endpoints.length === 0) return [name, backend];
    if (sticky.has(name)) return [name, backend];
    if (l7 !== null && backend.endpoints.some((e) => l7.forEndpoint(e.address, e.port) !== null)) return [name, backend];
    return [name, viaVip(backend, service.vip, service.port)];
  }));
  return { ...http, backends };
}

/**
 * The backend rewritten to its VIP, the same object while the backend and the VIP are: the
 * dataplane's compile and the workers' deltas reuse what keeps its identity.
 */
function viaVip(backend: Backend, vip: string, port: number): Backend {
  const known = rewritten.get(backend);
  if (known !== undefined && known.endpoints[0]!.address === vip && known.endpoints[0]!.port === port) return known;
  const result = { ...backend, endpoints: [{ address: vip, port }] };
  rewritten.set(backend, result);
  return result;
}
const rewritten = new WeakMap<Backend, Backend>();

/** Backends some route with session persistence forwards to. */
function stickyBackends(http: HttpIR): Set<string> {
  const out = new Set<string>();
  for (const listener of http.listeners) {
    for (const scope of listener.scopes) {
      for (const host of scope.virtualHosts) for (const name of stickyOf(host)) out.add(name);
    }
  }
  return out;
}

/** One virtual host's, remembered by its object (a walk of every rule per version was 50 000 at scale). */
function stickyOf(host: VirtualHost): readonly string[] {
  let names = sticky.get(host);
  if (names === undefined) {
    const found = new Set<string>();
    for (const route of host.routes) {
      if (route.sessionPersistence === undefined || route.action.type !== 'Forward') continue;
      for (const b of route.action.backends) if (b.backend !== null) found.add(b.backend);
    }
    names = [...found];
    sticky.set(host, names);
  }
  return names;
}
const sticky = new WeakMap<VirtualHost, readonly string[]>();
