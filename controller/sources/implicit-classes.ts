// Drop-in mode: Gateways that name a served class (`cilium` by default) work
// without a GatewayClass object in the manifest folder, as they do in a
// cluster where Cilium's Helm chart created the class.
import type { InputSnapshot } from './objects.ts';

export function withImplicitGatewayClasses(snapshot: InputSnapshot, names: string[], controllerName: string): InputSnapshot {
  const defined = new Set(snapshot.gatewayClasses.map((gc) => gc.metadata.name));
  const implicit = names
    .filter((name) => !defined.has(name))
    .map((name) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name, generation: 1, annotations: { 'sluice.dev/implicit': 'true' } },
      spec: { controllerName, description: 'Served by Sluice (implicit, --gateway-classes)' },
    }));
  return implicit.length ? { ...snapshot, gatewayClasses: [...snapshot.gatewayClasses, ...implicit] } : snapshot;
}
