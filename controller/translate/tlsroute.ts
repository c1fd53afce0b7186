// TLSRoute: connections to a TLS listener are picked by their SNI server name. On a Passthrough
// listener they are forwarded to the route's backends without decryption; on a Terminate listener
// the gateway ends TLS with the listener's certificates and forwards the plaintext stream.
// Passthrough and Terminate listeners may share a port (TLSRouteModeMixed): SNI picks the route.
import type { Backend, PassthroughRoute } from '../../ir/types.ts';
import { namespacedName, type TLSRouteObject } from '../sources/objects.ts';
import type { ObjectStatus } from '../status/conditions.ts';
import { attachRoute, type Parents } from './attachment.ts';
import { tlsSettingsOf, type ListenerState } from './gateway.ts';
import type { InputIndex } from './index-inputs.ts';
import { weightedBackendRefs } from './proxyroute.ts';

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
  const { weighted, backends, refProblem } = weightedBackendRefs(route.spec?.rules, ns, 'TLSRoute', index);
  // No hostnames (v1alpha2 allows it; v1alpha3 and v1 require one): the listener's hostname, or any
  // SNI on a listener without one, as for an HTTPRoute (and as Envoy Gateway does). A ClientHello
  // without SNI still matches no route.
  const attachment = attachRoute(route, 'TLSRoute', hostnames, parents, { unsupported: null, refProblem }, index);
  if (attachment.parents.length === 0) return null;
  const placements = attachment.attached.flatMap(({ listener, hostnames: effective }) =>
    effective.map((hostname) => ({
      listener,
      route: {
        name: `tlsroute/${namespacedName(route)}/host/${hostname}`,
        origin: { kind: 'TLSRoute' as const, namespace: ns, name: route.metadata.name },
        hostname,
        backends: weighted,
        // A Terminate listener's certificates (all of them: the SNI picks among them), settings and
        // client-certificate validation (Gateway spec.tls.frontend).
        ...(listener.tlsMode === 'Terminate'
          ? { terminate: { certificates: listener.certificates, ...(listener.clientValidation ? { clientValidation: listener.clientValidation } : {}), settings: tlsSettingsOf(listener) } }
          : {}),
      },
      creationTimestamp: route.metadata.creationTimestamp ?? '',
    })),
  );
  return {
    status: { apiVersion: route.apiVersion, kind: 'TLSRoute', namespace: ns, name: route.metadata.name, status: { parents: attachment.parents } },
    placements,
    backends,
  };
}
