// Status facts that exist only in Kubernetes mode, folded into what
// translation computed: addresses come from the dataplane Service, and
// Programmed waits until the dataplanes acknowledged the version.
import type { V1Node } from '@kubernetes/client-node';
import type { ServiceObject } from '../sources/objects.ts';
import { condition, type Condition, type ObjectStatus } from './conditions.ts';

export interface GatewayAddress {
  type: 'IPAddress' | 'Hostname';
  value: string;
}

/**
 * Where clients reach the dataplane: the Service's load-balancer ingress (IPs and hostnames) and
 * its spec.externalIPs; for a NodePort Service, the addresses of the nodes (ExternalIP first, else
 * InternalIP). Empty while nothing is assigned.
 */
export function dataplaneAddresses(service: ServiceObject | undefined, nodes: V1Node[] = []): GatewayAddress[] {
  if (!service) return [];
  const out: GatewayAddress[] = [];
  for (const i of service.status?.loadBalancer?.ingress ?? []) {
    if (i.ip) out.push({ type: 'IPAddress', value: i.ip });
    else if (i.hostname) out.push({ type: 'Hostname', value: i.hostname });
  }
  for (const ip of service.spec?.externalIPs ?? []) out.push({ type: 'IPAddress', value: ip });
  if (out.length === 0 && service.spec?.type === 'NodePort') {
    for (const node of nodes) {
      const addresses = node.status?.addresses ?? [];
      const pick = addresses.find((a) => a.type === 'ExternalIP') ?? addresses.find((a) => a.type === 'InternalIP');
      if (pick) out.push({ type: 'IPAddress', value: pick.address });
    }
  }
  const seen = new Set<string>();
  return out.filter((a) => !seen.has(a.value) && seen.add(a.value));
}

/** Gateway status.addresses and Ingress status.loadBalancer from the dataplane Service. */
export function withDataplaneAddresses(statuses: ObjectStatus[], addresses: GatewayAddress[], serviceName: string): ObjectStatus[] {
  return statuses.map((s) => {
    if (s.kind === 'Ingress') {
      const ingress = addresses.map((a) => (a.type === 'IPAddress' ? { ip: a.value } : { hostname: a.value }));
      return { ...s, status: { ...s.status, loadBalancer: { ingress } } };
    }
    if (s.kind !== 'Gateway') return s;
    const { addresses: _bindAddress, ...rest } = s.status as { addresses?: unknown; conditions?: Condition[] };
    if (addresses.length > 0) return { ...s, status: { ...rest, addresses } };
    // No address yet: the Gateway is not reachable, whatever its listeners say.
    const conditions = (rest.conditions ?? []).map((c) =>
      c.type === 'Programmed' && c.status === 'True'
        ? condition('Programmed', false, 'AddressNotAssigned', `the dataplane Service ${serviceName} has no address yet`, c.observedGeneration)
        : c,
    );
    return { ...s, status: { ...rest, conditions } };
  });
}

export interface DataplaneAck {
  name: string;
  connected: boolean;
  appliedVersion: string | null;
}

/**
 * Programmed=True only once every connected dataplane (at least one) serves `version`; until then
 * Gateways, ListenerSets and their programmed listeners say Pending.
 */
export function foldAcknowledgements(statuses: ObjectStatus[], version: string, dataplanes: DataplaneAck[]): ObjectStatus[] {
  const connected = dataplanes.filter((d) => d.connected);
  const waiting = connected.length === 0 ? ['no dataplane is connected'] : connected.filter((d) => d.appliedVersion !== version).map((d) => d.name);
  if (waiting.length === 0) return statuses;
  const message = connected.length === 0
    ? `waiting for a dataplane to apply version ${version}: none is connected`
    : `waiting for dataplanes to apply version ${version}: ${waiting.join(', ')}`;
  const pending = (c: Condition): Condition =>
    c.type === 'Programmed' && c.status === 'True' ? condition('Programmed', false, 'Pending', message, c.observedGeneration) : c;
  return statuses.map((s) => {
    if (s.kind !== 'Gateway' && s.kind !== 'ListenerSet') return s;
    const status = s.status as { conditions?: Condition[]; listeners?: { conditions: Condition[] }[] };
    return {
      ...s,
      status: {
        ...status,
        conditions: (status.conditions ?? []).map(pending),
        ...(status.listeners ? { listeners: status.listeners.map((l) => ({ ...l, conditions: l.conditions.map(pending) })) } : {}),
      },
    };
  });
}
