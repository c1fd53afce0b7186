// Service fields that shape how kube-proxy (and Sluice's eBPF load balancing) spread traffic to a
// ClusterIP, which routed requests do not follow: a route picks among the Service's ready endpoints
// itself, as Envoy Gateway and Cilium's Envoy do. And a port's appProtocol Sluice does not speak,
// which routes treat as HTTP/1.1. Said once per Service that routes forward to, so whoever counts
// on such a field learns why it has no effect on routed requests; Services no route uses say nothing.
import type { Backend } from '../../ir/types.ts';
import type { Problem } from '../problems.ts';
import { namespacedName } from '../sources/objects.ts';
import { serviceBackendName, toAppProtocol } from './backends.ts';
import type { InputIndex } from './index-inputs.ts';
import { foreignAnnotationsText } from '../sources/ignored-kinds.ts';

/** appProtocol values routes speak as written (toAppProtocol): the rest of those it takes become HTTP/1.1. */
const SPOKEN = new Set(['', 'http', 'kubernetes.io/http', 'kubernetes.io/h2c', 'kubernetes.io/ws']);

export function serviceFieldProblems(backends: ReadonlyMap<string, Backend>, index: InputIndex): Problem[] {
  const out: Problem[] = [];
  for (const service of index.snapshot.services) {
    const spec = service.spec;
    if (spec === undefined) continue;
    const fields: string[] = [];
    if (spec.sessionAffinity === 'ClientIP') fields.push('spec.sessionAffinity ClientIP holds for its ClusterIP only; routed requests are spread per request (a route\'s sessionPersistence makes them sticky)');
    if (spec.trafficDistribution) fields.push(`spec.trafficDistribution ${spec.trafficDistribution} is not applied: routed requests go to every ready endpoint, whatever its zone`);
    // Topology-aware routing's older switch (the EndpointSlice hints it has written are not read either).
    for (const key of ['service.kubernetes.io/topology-mode', 'service.kubernetes.io/topology-aware-hints']) {
      const value = service.metadata.annotations?.[key];
      if (value !== undefined && value !== 'Disabled' && value !== 'disabled') fields.push(`annotation ${key}: ${value} is not applied: routed requests go to every ready endpoint, whatever its zone`);
    }
    // Another implementation's settings for its upstream (Kong's konghq.com/protocol, Contour's projectcontour.io/upstream-protocol.tls).
    const foreign = foreignAnnotationsText(service.metadata.annotations);
    if (foreign !== null) fields.push(foreign);
    if (spec.internalTrafficPolicy === 'Local') fields.push('spec.internalTrafficPolicy Local is not applied: routed requests go to ready endpoints on every node');
    const ports = spec.ports ?? [];
    // Only a port some route forwards to over HTTP/1.1 (gRPC routes speak HTTP/2 to any port without a kubernetes.io/ value).
    ports.forEach((p, i) => {
      const value = p?.appProtocol;
      if (value === undefined || SPOKEN.has(value) || toAppProtocol(value) !== 'http') return;
      const backend = backends.get(serviceBackendName(service.metadata.namespace!, service.metadata.name, Number(p.port)));
      if (backend === undefined || (backend.tls !== undefined && value === 'https')) return;
      fields.push(`spec.ports[${i}].appProtocol ${value} is not one Sluice speaks: HTTP routes speak HTTP/1.1 to port ${p.port} (kubernetes.io/h2c: HTTP/2 cleartext; kubernetes.io/ws: WebSocket; TLS: a BackendTLSPolicy)`);
    });
    if (fields.length === 0) continue;
    const ns = service.metadata.namespace!;
    const routed = ports.some((p) => {
      const name = serviceBackendName(ns, service.metadata.name, Number(p?.port));
      return backends.has(name) || backends.has(`${name}/grpc`);
    });
    if (!routed) continue;
    const object = `Service ${namespacedName(service)}`;
    out.push({ code: 'SLU_TRANSLATION', object, message: `${object}: ${fields.join('; ')}` });
  }
  return out;
}
