// TLSRoute (TLS Passthrough): connections to a TLS listener are forwarded by
// their SNI server name to the route's backends, without decryption.
import type { Backend, PassthroughRoute, WeightedBackend } from '../../ir/types.ts';
import { namespacedName, type TLSRouteObject } from '../sources/objects.ts';
import type { ObjectStatus } from '../status/conditions.ts';
import { attachRoute, type Parents } from './attachment.ts';
import { resolveBackendRef, type RefProblem } from './backends.ts';
import type { ListenerState } from './gateway.ts';
import type { InputIndex } from './index-inputs.ts';

export interface PassthroughPlacement {
  listener: ListenerState;
  route: PassthroughRoute;
  /** Older routes win a hostname claimed twice. */
  creationTimestamp: string;
}

export interface TlsRouteTranslation {
  status: ObjectStatus;
  placements: PassthroughPlacement[];
  backends: Backend[];
}

export function translateTlsRoute(route: TLSRouteObject, parents: Parents, index: InputIndex): TlsRouteTranslation | null {
  const ns = route.metadata.namespace!;
  const hostnames: string[] = (route.spec?.hostnames ?? []).map((h: string) => String(h).toLowerCase());
  const backends: Backend[] = [];
  let refProblem: RefProblem | null = null;
  const weighted: WeightedBackend[] = [];
  for (const rule of route.spec?.rules ?? []) {
    for (const ref of rule?.backendRefs ?? []) {
      const resolved = resolveBackendRef(ref, ns, index, 'TLSRoute');
      if ('problem' in resolved) refProblem ??= resolved.problem;
      else backends.push(resolved.backend);
      weighted.push({ backend: 'backend' in resolved ? resolved.backend.name : null, weight: ref?.weight === undefined ? 1 : Number(ref.weight), filters: [] });
    }
  }
  const unsupported = hostnames.length === 0 ? 'a TLSRoute needs at least one hostname to match the SNI against' : null;
  const attachment = attachRoute(route, 'TLSRoute', hostnames, parents, { unsupported, refProblem }, index);
  if (attachment.parents.length === 0) return null;
  const placements = attachment.attached.flatMap(({ listener, hostnames: effective }) =>
    effective.map((hostname) => ({
      listener,
      route: { name: `tlsroute/${namespacedName(route)}/host/${hostname}`, origin: { kind: 'TLSRoute' as const, namespace: ns, name: route.metadata.name }, hostname, backends: weighted },
      creationTimestamp: route.metadata.creationTimestamp ?? '',
    })),
  );
  return {
    status: { apiVersion: route.apiVersion, kind: 'TLSRoute', namespace: ns, name: route.metadata.name, status: { parents: attachment.parents } },
    placements,
    backends,
  };
}
