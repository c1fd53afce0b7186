// Services and EndpointSlices: backendRefs become IR backends with ready
// endpoints; every Service with a cluster IP becomes an l4 service for the BPF agent.
import type { AppProtocol, Backend, Endpoint, L4Service } from '../../ir/types.ts';
import { GATEWAY_GROUP, type ServiceObject } from '../sources/objects.ts';
import type { BackendRef, ServicePort } from '../schema/kinds.ts';
import type { InputIndex } from './index-inputs.ts';
import { isReferenceAllowed } from './referencegrant.ts';
import { backendTlsFor } from './backendtls.ts';
import { kindSlip } from '../sources/ignored-kinds.ts';

export interface RefProblem {
  reason: 'InvalidKind' | 'RefNotPermitted' | 'BackendNotFound' | 'UnsupportedProtocol';
  message: string;
}

export type BackendResolution = { backend: Backend } | { problem: RefProblem };

/** Resolves one backendRef of a route (HTTPRoute by default) in `routeNamespace`. */
export function resolveBackendRef(ref: BackendRef | undefined, routeNamespace: string, index: InputIndex, routeKind = 'HTTPRoute'): BackendResolution {
  const group = ref?.group ?? '';
  const kind = ref?.kind ?? 'Service';
  const namespace = ref?.namespace ?? routeNamespace;
  const name = String(ref?.name ?? '');
  const what = `backendRef ${kind} ${namespace}/${name}`;
  if ((group !== '' && group !== 'core') || kind !== 'Service') {
    return { problem: { reason: 'InvalidKind', message: `${what}: only core Services are supported${kindSlip(kind, ['Service'])}` } };
  }
  const allowed = isReferenceAllowed(
    index.snapshot.referenceGrants,
    { group: GATEWAY_GROUP, kind: routeKind, namespace: routeNamespace },
    { group: '', kind: 'Service', namespace, name },
  );
  if (!allowed) return { problem: { reason: 'RefNotPermitted', message: `${what}: no ReferenceGrant in ${namespace} allows it` } };
  const service = index.service(namespace, name);
  if (!service) return { problem: { reason: 'BackendNotFound', message: `${what}: Service not found` } };
  if (ref?.port === undefined) return { problem: { reason: 'BackendNotFound', message: `${what}: port is required` } };
  const port = Number(ref.port);
  // The port of the route's transport (Envoy Gateway's rule too: a UDPRoute to a TCP-only port is
  // not resolved); a port number may be listed for TCP and UDP both (DNS).
  const transport = routeKind === 'UDPRoute' ? 'UDP' : 'TCP';
  const ports = service.spec?.ports ?? [];
  // Omitted or "" is TCP: the API server defaults both.
  const servicePort = ports.find((p) => Number(p?.port) === port && (p.protocol || 'TCP') === transport);
  if (!servicePort) {
    const other = ports.find((p) => Number(p?.port) === port);
    const why = other ? `the Service has no ${transport} port ${port} (it is ${other.protocol || 'TCP'}): ${routeKind} traffic is ${transport}` : `the Service has no port ${port}`;
    return { problem: { reason: 'BackendNotFound', message: `${what}: ${why}` } };
  }
  const appProtocol = toAppProtocol(servicePort.appProtocol);
  if (!appProtocol) {
    return { problem: { reason: 'UnsupportedProtocol', message: `${what}: appProtocol ${servicePort.appProtocol} is not supported` } };
  }
  const tls = backendTlsFor(index, namespace, name, servicePort.name);
  return {
    backend: {
      name: serviceBackendName(namespace, name, port),
      source: `${namespace}/${name}:${port}`,
      appProtocol,
      endpoints: serviceEndpoints(service, servicePort, index),
      ...(tls ? { tls } : {}),
    },
  };
}

/** The IR name of a Service port's backend (and of its l4 service). */
export function serviceBackendName(namespace: string, name: string, port: number): string {
  return `service/${namespace}/${name}/port/${port}`;
}

export function toAppProtocol(value: unknown): AppProtocol | null {
  if (value === undefined || value === null || value === '' || value === 'http' || value === 'kubernetes.io/http') return 'http';
  if (value === 'kubernetes.io/h2c') return 'h2c';
  if (value === 'kubernetes.io/ws') return 'ws';
  // Other kubernetes.io/ protocols name something Sluice cannot speak; custom values are treated as HTTP.
  return String(value).startsWith('kubernetes.io/') ? null : 'http';
}

/**
 * Whether an EndpointSlice port carries a Service port's endpoints: the same name and the same
 * protocol (TCP where unset, as the API server defaults both), as kube-proxy (its ServicePortName)
 * and Envoy Gateway match them. By name alone, a UDP port's slice named like a TCP Service port (or
 * both unnamed) gave a TCP backend the UDP endpoints.
 */
export function slicePortServes(slicePort: { name?: string; protocol?: string } | undefined, servicePort: { name?: string; protocol?: string }): boolean {
  return (slicePort?.name ?? '') === (servicePort.name ?? '') && (slicePort?.protocol ?? 'TCP') === (servicePort.protocol ?? 'TCP');
}

/** Ready endpoints for one Service port, from its EndpointSlices (or the ExternalName). */
function serviceEndpoints(service: ServiceObject, servicePort: ServicePort, index: InputIndex): Endpoint[] {
  if (service.spec?.type === 'ExternalName' && service.spec?.externalName) {
    return [{ address: String(service.spec.externalName), port: Number(servicePort.port) }];
  }
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  for (const slice of index.endpointSlices(service.metadata.namespace!, service.metadata.name)) {
    const slicePort = slice.ports ?? [];
    const match = slicePort.find((p) => slicePortServes(p, servicePort));
    if (!match || match.port === undefined) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep?.conditions?.ready === false) continue;
      for (const address of ep?.addresses ?? []) {
        const key = `${address}:${match.port}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ address: String(address), port: Number(match.port) });
      }
    }
  }
  return out.sort((a, b) => `${a.address}:${a.port}`.localeCompare(`${b.address}:${b.port}`));
}

/** Every Service with a cluster IP, for socket-level load balancing. */
export function translateL4Services(index: InputIndex): L4Service[] {
  const out: L4Service[] = [];
  for (const service of index.snapshot.services) {
    const vip = service.spec?.clusterIP;
    if (!vip || vip === 'None') continue;
    for (const port of service.spec?.ports ?? []) {
      out.push({
        name: serviceBackendName(service.metadata.namespace ?? '', service.metadata.name, Number(port.port)),
        origin: { kind: 'Service', namespace: service.metadata.namespace ?? '', name: service.metadata.name },
        vip: String(vip),
        port: Number(port.port),
        protocol: port.protocol === 'UDP' ? 'UDP' : 'TCP',
        affinity: service.spec?.sessionAffinity === 'ClientIP' ? 'client' : 'random',
        endpoints: serviceEndpoints(service, port, index).map((e) => ({ ...e, weight: 1 })),
      });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
