// TCPRoute and UDPRoute: a TCP or UDP listener forwards every connection (or UDP client session) to
// one backend of its route, picked by weight. The routes have no hostnames and no matches, so a
// listener serves one route: when several attach, all are Accepted (upstream
// TCPRouteMultipleRoutesAttachment / UDPRouteMultipleRoutesAttachment) and the oldest is served.
import type { Backend, ProxyRoute, WeightedBackend } from '../../ir/types.ts';
import { namespacedName, type TCPRouteObject, type UDPRouteObject } from '../sources/objects.ts';
import type { ObjectStatus } from '../status/conditions.ts';
import type { BackendRef } from '../schema/kinds.ts';
import { attachRoute, type Parents } from './attachment.ts';
import { resolveBackendRef, type RefProblem } from './backends.ts';
import type { ListenerState } from './gateway.ts';
import type { InputIndex } from './index-inputs.ts';

export type ProxyRouteKind = 'TCPRoute' | 'UDPRoute';

export interface ProxyPlacement {
  listener: ListenerState;
  route: ProxyRoute;
  /** The oldest route attached to a listener is the one served. */
  creationTimestamp: string;
}

export interface ProxyRouteTranslation {
  status: ObjectStatus;
  placements: ProxyPlacement[];
  backends: Backend[];
}

/** The weighted backends of a route's rules (TLSRoute, TCPRoute, UDPRoute), the first unresolved reference, and the resolved backends. */
export function weightedBackendRefs(
  rules: { backendRefs?: BackendRef[] }[] | undefined,
  namespace: string,
  routeKind: string,
  index: InputIndex,
): { weighted: WeightedBackend[]; backends: Backend[]; refProblem: RefProblem | null } {
  const backends: Backend[] = [];
  const weighted: WeightedBackend[] = [];
  let refProblem: RefProblem | null = null;
  for (const rule of rules ?? []) {
    for (const ref of rule?.backendRefs ?? []) {
      const resolved = resolveBackendRef(ref, namespace, index, routeKind);
      if ('problem' in resolved) refProblem ??= resolved.problem;
      else backends.push(resolved.backend);
      weighted.push({ backend: 'backend' in resolved ? resolved.backend.name : null, weight: ref?.weight ?? 1, filters: [] });
    }
  }
  return { weighted, backends, refProblem };
}

export function translateProxyRoute(route: TCPRouteObject | UDPRouteObject, kind: ProxyRouteKind, parents: Parents, index: InputIndex): ProxyRouteTranslation | null {
  const ns = route.metadata.namespace!;
  const rules = route.spec.rules ?? [];
  const { weighted, backends, refProblem } = weightedBackendRefs(rules, ns, kind, index);
  // v1 allows one rule; the experimental channel's v1alpha2 CRD up to 16, with nothing to choose among them by.
  const unsupported = rules.length > 1 ? `${kind} rules: Sluice serves one rule per route (this one has ${rules.length}); put the backendRefs in one rule` : null;
  const attachment = attachRoute(route, kind, [], parents, { unsupported, refProblem }, index);
  if (attachment.parents.length === 0) return null;
  const origin = { kind, namespace: ns, name: route.metadata.name };
  const served: ProxyRoute = { name: `${kind.toLowerCase()}/${namespacedName(route)}`, origin, backends: weighted };
  return {
    status: { apiVersion: route.apiVersion, kind, namespace: ns, name: route.metadata.name, status: { parents: attachment.parents } },
    placements: attachment.attached.map(({ listener }) => ({ listener, route: served, creationTimestamp: route.metadata.creationTimestamp ?? '' })),
    backends,
  };
}
