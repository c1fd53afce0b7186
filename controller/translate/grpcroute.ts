// GRPCRoute (Gateway API v1, GEP-1016): attachment, hostnames, ReferenceGrant and filters as for
// HTTPRoute (httproute.ts, attachment.ts); what differs is here:
// - a method match becomes a match on the HTTP/2 `:path` `/<service>/<method>` (an omitted service
//   or method matches any, as the spec says), header matches are HTTPRoute's;
// - backends speak HTTP/2 cleartext (h2c) unless the Service port names another protocol Sluice
//   cannot use for gRPC (kubernetes.io/ws) — then ResolvedRefs=False UnsupportedProtocol;
// - a rule without backendRefs answers UNIMPLEMENTED (HTTP 404 in gRPC form), an invalid backend
//   share UNAVAILABLE (the dataplane maps it, Route.grpc);
// - an HTTPRoute and a GRPCRoute on one listener with intersecting hostnames: only the older (then
//   alphabetically first) is served there (resolveCrossServing).
import type { Backend, Filter, HeaderMatch, PathMatch, RouteAction, WeightedBackend } from '../../ir/types.ts';
import type { GRPCRouteObject, HTTPRouteObject, KubeObject } from '../sources/objects.ts';
import { condition } from '../status/conditions.ts';
import type { BackendRef, GRPCRouteMatch } from '../schema/kinds.ts';
import { attachRoute, type Parents } from './attachment.ts';
import { resolveBackendRef, type BackendResolution } from './backends.ts';
import type { ListenerState } from './gateway.ts';
import { hostnamesIntersect } from './hostnames.ts';
import { attachCompiled, backendName, translateRoutes, checkRegex, compileMemoised, extensionRefProblem, NONE, routeOrder, startCompile, toFilter, translateHttpRoute, toHeaderMatches, type Compiled, type Placement, type RouteTranslation } from './httproute.ts';
import type { InputIndex } from './index-inputs.ts';
import type { Resolve } from './memo.ts';
import { toSessionPersistence, withCookiePath } from './session-persistence.ts';

const GRPC_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror']);

/** Any one path segment: what an omitted service or method stands for. */
const ANY_SEGMENT = '[^/]+';

/** Both kinds that share HTTP listeners, each in the order given, cross-serving resolved between them. */
export function translateHttpAndGrpcRoutes(httpRoutes: HTTPRouteObject[], grpcRoutes: GRPCRouteObject[], parents: Parents, index: InputIndex): RouteTranslation[] {
  // Only the two kinds together can cross-serve: one kind alone needs none of what follows.
  if (grpcRoutes.length === 0 || httpRoutes.length === 0) {
    const out = translateRoutes('HTTPRoute', httpRoutes, parents, index, resolveBackendRef, (r) => translateHttpRoute(r, parents, index));
    for (const t of translateRoutes('GRPCRoute', grpcRoutes, parents, index, resolveGrpcBackendRef, (r) => translateGrpcRoute(r, parents, index))) out.push(t);
    return out;
  }
  // (Route by route here: what translateRoutes kept is of no use to the next translation.)
  index.memo?.routeLoops.clear();
  const served: ServedRoute[] = [];
  const add = (kind: ServedRoute['kind'], route: KubeObject, translation: RouteTranslation | null) => {
    if (translation) served.push({ kind, namespace: route.metadata.namespace ?? '', creationTimestamp: route.metadata.creationTimestamp ?? '', translation });
  };
  for (const r of httpRoutes) add('HTTPRoute', r, translateHttpRoute(r, parents, index));
  for (const r of grpcRoutes) add('GRPCRoute', r, translateGrpcRoute(r, parents, index));
  resolveCrossServing(served, (scope) => {
    for (const parent of [...parents.gateways.values(), ...parents.listenerSets.values()]) for (const l of parent.listeners) if (l.scopeName === scope) return l;
    throw new Error(`no listener ${scope}`); // placements name listeners of these parents only
  });
  return served.map((s) => s.translation);
}

export function translateGrpcRoute(route: GRPCRouteObject, parents: Parents, index: InputIndex): RouteTranslation | null {
  const compiled = compileMemoised(route, 'GRPCRoute', index, resolveGrpcBackendRef, (resolve) => compileGrpcRules(route, resolve));
  return attachCompiled(route, 'GRPCRoute', compiled, parents, index);
}

/**
 * A GRPCRoute backendRef as HTTPRoute resolves it (kinds, ReferenceGrant from GRPCRoute, Service
 * port, BackendTLSPolicy), spoken to over HTTP/2: a port without appProtocol (or with a custom one
 * such as `grpc`) is h2c, under a name of its own so an HTTPRoute to the same port keeps HTTP/1.1.
 */
export function resolveGrpcBackendRef(ref: BackendRef | undefined, routeNamespace: string, index: InputIndex): BackendResolution {
  const resolved = resolveBackendRef(ref, routeNamespace, index, 'GRPCRoute');
  if ('problem' in resolved) return resolved;
  const backend: Backend = resolved.backend;
  if (backend.appProtocol === 'h2c') return resolved;
  if (backend.appProtocol === 'ws') {
    return { problem: { reason: 'UnsupportedProtocol', message: `backendRef ${backend.name}: appProtocol kubernetes.io/ws cannot carry gRPC` } };
  }
  return { backend: { ...backend, name: `${backend.name}/grpc`, appProtocol: 'h2c' } };
}

/** Reads nothing but the route and its references' resolutions (`resolve`): see compileMemoised. */
function compileGrpcRules(route: GRPCRouteObject, resolve: Resolve<BackendResolution>): Compiled {
  const ns = route.metadata.namespace!;
  const base = `grpcroute/${ns}/${route.metadata.name}`;
  const rules = route.spec?.rules ?? [];
  const { out, source, orderSource } = startCompile(route, rules);
  let n = 0;
  const unsupported = (msg: string) => {
    out.unsupported ??= msg;
  };
  const backendOf = (ref: BackendRef | undefined) => backendName(resolve(ref), out);
  rules.forEach((rule, ruleIndex) => {
    const where = `rule ${ruleIndex}`;
    const filters: Filter[] = [];
    // An ExtensionRef Sluice cannot resolve (it resolves none): the filter is not skipped, the
    // rule answers an error instead (the spec), the rest of the route is served.
    let unresolvedFilter: string | null = null;
    for (const f of rule?.filters ?? []) {
      if (f.type === 'ExtensionRef') unresolvedFilter ??= extensionRefProblem(f.extensionRef, where);
      else if (GRPC_FILTERS.has(f.type)) filters.push(toFilter(f, backendOf, where, unsupported));
      else unsupported(`${where}: filter ${f.type} is not supported`);
    }
    if (unresolvedFilter !== null) out.refProblem ??= { reason: 'InvalidKind', message: unresolvedFilter };
    // map: an array of the exact size (the IR keeps it).
    const backends: WeightedBackend[] = (rule?.backendRefs ?? []).map((ref) => {
      const resolved = resolve(ref);
      const refFilters: Filter[] = [];
      let unresolvedRefFilter: string | null = null;
      for (const f of ref?.filters ?? []) {
        if (f.type === 'ExtensionRef') unresolvedRefFilter ??= extensionRefProblem(f.extensionRef, `${where} backendRef ${ref?.name}`);
        else if (GRPC_FILTERS.has(f.type)) refFilters.push(toFilter(f, backendOf, `${where} backendRef ${ref?.name}`, unsupported));
        else unsupported(`${where}: backendRef filter ${f.type} is not supported`);
      }
      // Its share gets an error, as for an invalid backendRef.
      if (unresolvedRefFilter !== null) out.refProblem ??= { reason: 'InvalidKind', message: unresolvedRefFilter };
      return { backend: unresolvedRefFilter !== null ? null : backendName(resolved, out), weight: ref?.weight === undefined ? 1 : Number(ref.weight), filters: refFilters.length === 0 ? NONE : refFilters };
    });
    // No backendRefs: UNIMPLEMENTED (404 in gRPC form), as the spec says for a rule that forwards nowhere.
    const action: RouteAction =
      unresolvedFilter !== null
        ? { type: 'DirectResponse', status: 500 }
        : backends.length > 0
          ? { type: 'Forward', backends }
          : { type: 'DirectResponse', status: 404 };
    const session = toSessionPersistence(rule?.sessionPersistence, `${base}/rule/${ruleIndex}`, where, unsupported);
    const matches: GRPCRouteMatch[] = rule?.matches?.length ? rule.matches : [{}];
    matches.forEach((m, matchIndex) => {
      const matchWhere = `${where} match ${matchIndex}`;
      const method = toMethodMatch(m?.method, matchWhere, unsupported);
      const headers: HeaderMatch[] = toHeaderMatches(m?.headers, matchWhere, unsupported);
      out.routes[n] = {
        name: `${base}/rule/${ruleIndex}/match/${matchIndex}`,
        source,
        origin: { kind: 'GRPCRoute', namespace: ns, name: route.metadata.name, ruleIndex, ...(typeof rule?.name === 'string' && rule.name !== '' ? { sectionName: rule.name } : {}) },
        match: { path: method.path, headers, queryParams: NONE },
        filters: filters.length === 0 ? NONE : filters,
        action,
        grpc: true,
        ...(session ? { sessionPersistence: withCookiePath(session, method.path)! } : {}),
      };
      out.orders[n++] = routeOrder(route, orderSource, ruleIndex, matchIndex, { tier: method.tier, service: method.service, method: method.method });
    });
  });
  out.backends = out.backends.slice(); // kept by the memo: of the exact size
  return out;
}

/**
 * A GRPCMethodMatch as a match on `:path` (`/<service>/<method>`), with its precedence: the tier
 * (Exact, RegularExpression, no method match) and the characters of service and method. Exact (the CRD's CEL rules already refused `/` and other characters a
 * service or method cannot have): both → Exact; service only → the element-wise prefix
 * `/<service>/`; method only → any service. RegularExpression: each part anchored to its segment.
 */
export function toMethodMatch(
  spec: GRPCRouteMatch['method'] | undefined,
  where: string,
  unsupported: (msg: string) => void,
): { path: PathMatch; tier: number; service: number; method: number } {
  const service = spec?.service ?? '';
  const method = spec?.method ?? '';
  const regex = (spec?.type ?? 'Exact') === 'RegularExpression';
  const lengths = { tier: regex ? 1 : 0, service: service.length, method: method.length };
  if (service === '' && method === '') return { path: { type: 'PathPrefix', value: '/' }, ...lengths, tier: 2 };
  if (regex) {
    if (service !== '') checkRegex(service, `${where} method.service`, unsupported);
    if (method !== '') checkRegex(method, `${where} method.method`, unsupported);
    const part = (value: string) => (value === '' ? ANY_SEGMENT : `(?:${value})`);
    return { path: { type: 'RegularExpression', value: `/${part(service)}/${part(method)}` }, ...lengths };
  }
  if (method === '') return { path: { type: 'PathPrefix', value: `/${service}/` }, ...lengths };
  if (service === '') return { path: { type: 'RegularExpression', value: `/${ANY_SEGMENT}/${escapeRegex(method)}` }, ...lengths };
  return { path: { type: 'Exact', value: `/${service}/${method}` }, ...lengths };
}

function escapeRegex(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** What cross-serving needs of a translated route of either kind. */
export interface ServedRoute {
  kind: 'HTTPRoute' | 'GRPCRoute';
  /** The route's own namespace (parentRefs without one name it). */
  namespace: string;
  creationTimestamp: string;
  translation: RouteTranslation;
}

/**
 * The spec (GRPCRouteSpec.hostnames): an HTTPRoute and a GRPCRoute attached to one listener with
 * intersecting hostnames — only the older route (then the first by namespace/name) is served there;
 * the other loses that listener (attachedRoutes counts it no more), and a parent where it lost every
 * listener it had gets Accepted=False. Mutates the translations; returns nothing.
 */
export function resolveCrossServing(routes: ServedRoute[], listenerOf: (scope: string) => ListenerState): void {
  const sorted = [...routes].sort(
    (a, b) => compare(a.creationTimestamp, b.creationTimestamp) || compare(a.translation.status.namespace ?? '', b.translation.status.namespace ?? '') || compare(a.translation.status.name, b.translation.status.name),
  );
  // Per listener scope and kind: the hostnames that kind already serves there, and by which route
  // (only the other kind's are compared: kept apart, a listener with thousands of one kind costs nothing).
  const served = new Map<string, Record<ServedRoute['kind'], { hostnames: string[]; route: string }[]>>();
  for (const r of sorted) {
    const byListener = new Map<string, Placement[]>();
    for (const p of r.translation.placements) {
      const list = byListener.get(p.scope) ?? [];
      list.push(p);
      byListener.set(p.scope, list);
    }
    const lost = new Map<string, { placements: Placement[]; winner: string }>();
    for (const [scope, placements] of byListener) {
      const hostnames = [...new Set(placements.map((p) => p.hostname))];
      let byKind = served.get(scope);
      if (!byKind) served.set(scope, (byKind = { HTTPRoute: [], GRPCRoute: [] }));
      const winner = byKind[r.kind === 'HTTPRoute' ? 'GRPCRoute' : 'HTTPRoute'].find((o) => o.hostnames.some((h) => hostnames.some((mine) => hostnamesIntersect(h, mine))));
      if (winner) lost.set(scope, { placements, winner: winner.route });
      else byKind[r.kind].push({ hostnames, route: `${r.kind} ${r.translation.status.namespace}/${r.translation.status.name}` });
    }
    if (lost.size === 0) continue;
    const kept = r.translation.placements.filter((p) => !lost.has(p.scope));
    for (const scope of lost.keys()) listenerOf(scope).attachedRoutes -= 1;
    r.translation = { ...r.translation, placements: kept };
    rejectLostParents(r, lost, kept, listenerOf);
  }
}

/**
 * Accepted=False on each parent whose every listener the route lost to cross-serving. The status is
 * replaced, not written into: a Translator may hand the same status object to the next translation.
 */
function rejectLostParents(r: ServedRoute, lost: Map<string, { placements: Placement[]; winner: string }>, kept: readonly Placement[], listenerOf: (scope: string) => ListenerState): void {
  const parents = (r.translation.status.status.parents as StatusParent[]).map((parent) => {
    const owns = (p: Placement) => {
      const owner = listenerOf(p.scope).owner;
      return owner.kind === (parent.parentRef.kind ?? 'Gateway') && owner.key === `${parent.parentRef.namespace ?? r.namespace}/${parent.parentRef.name}`;
    };
    const lostHere = [...lost.values()].filter((l) => owns(l.placements[0]));
    if (lostHere.length === 0 || kept.some(owns)) return parent;
    const message = `hostnames already served on this listener by ${lostHere[0].winner}, which is older: HTTPRoutes and GRPCRoutes cannot share a hostname on a listener`;
    const conditions = parent.conditions.map((c) => (c.type === 'Accepted' ? condition('Accepted', false, 'NotAllowedByListeners', message, c.observedGeneration) : c));
    return { ...parent, conditions };
  });
  // (The translation is replaced too: a Translator hands an unchanged route's translation on as it is.)
  r.translation = { ...r.translation, status: { ...r.translation.status, status: { ...r.translation.status.status, parents } } };
}

interface StatusParent {
  parentRef: { kind?: string; namespace?: string; name: string };
  conditions: ReturnType<typeof condition>[];
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
