// Status facts that exist only in Kubernetes mode, folded into what
// translation computed: addresses come from the dataplane Service, and
// Programmed waits until the dataplanes acknowledged the version (and names a version they refused).
import type { V1Node } from '@kubernetes/client-node';
import type { ServiceObject } from '../sources/objects.ts';
import type { ListenerAck } from '../../ir/protocol.ts';
import { condition, type Condition, type ObjectStatus } from './conditions.ts';
import { socketFailure, type SocketFailure } from './dataplane-result.ts';

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
  /** The version it serves (null: nothing yet). */
  appliedVersion: string | null;
  /** Socket results of `appliedVersion`. */
  listeners?: ListenerAck[];
  /** Its latest ack, whatever it says (ok:false: the version was not applied; `error` says why). */
  lastAck?: { version: string; ok: boolean; error?: string } | null;
}

/** Where a version stands among the connected dataplanes: what Programmed is made of. */
export interface Rollout {
  /** Connected dataplanes. */
  dataplanes: number;
  /** Connected dataplanes serving the version. */
  applied: string[];
  /** Connected dataplanes not serving it (yet, or they rejected it: see `rejected`). */
  pending: string[];
  /** Connected dataplanes whose latest ack refused the version: why, and what they serve instead. */
  rejected: { name: string; error: string; serving: string | null }[];
  /** Sockets that failed on a dataplane serving the version; `error` names the dataplane. */
  socketFailures: SocketFailure[];
}

export function rollout(dataplanes: DataplaneAck[], version: string): Rollout {
  const connected = dataplanes.filter((d) => d.connected);
  const applied = connected.filter((d) => d.appliedVersion === version);
  return {
    dataplanes: connected.length,
    applied: applied.map((d) => d.name),
    pending: connected.filter((d) => d.appliedVersion !== version).map((d) => d.name),
    rejected: connected
      .filter((d) => d.appliedVersion !== version && d.lastAck?.version === version && !d.lastAck.ok)
      .map((d) => ({ name: d.name, error: d.lastAck?.error ?? 'rejected', serving: d.appliedVersion })),
    socketFailures: applied.flatMap((d) => (d.listeners ?? []).filter((l) => !l.ok).map((l) => socketFailure(l, d.name))),
  };
}

/**
 * Ack errors that refuse the configuration itself (ir/protocol.ts): a compile error, or a version
 * that ended the workers. Other failed acks (an apply still running late, a failed eBPF map write)
 * say nothing against the configuration: the Gateway stays Pending, naming them.
 */
const REFUSALS = ['SLU_VERSION_REJECTED', 'SLU_VERSION_CRASHED'];

/**
 * Programmed=True only once every connected dataplane (at least one) serves `version`. Until then
 * Gateways, ListenerSets and their programmed listeners say Pending, or Invalid (the spec's reason
 * for a configuration that cannot be programmed) when a dataplane refused the version; the message
 * names the dataplanes, their errors and the version they still serve.
 */
export function foldAcknowledgements(statuses: ObjectStatus[], version: string, dataplanes: DataplaneAck[]): ObjectStatus[] {
  const r = rollout(dataplanes, version);
  if (r.dataplanes > 0 && r.pending.length === 0) return statuses;
  const refused = r.rejected.filter((d) => REFUSALS.some((code) => d.error.startsWith(code)));
  const failed = r.rejected.map((d) => `dataplane ${d.name} did not apply version ${version} (${d.error}); it serves ${d.serving ?? 'nothing'}`);
  const rejectedNames = new Set(r.rejected.map((d) => d.name));
  const waiting = r.pending.filter((name) => !rejectedNames.has(name));
  const message = r.dataplanes === 0
    ? `waiting for a dataplane to apply version ${version}: none is connected`
    : [...failed, ...(waiting.length > 0 ? [`waiting for dataplanes to apply version ${version}: ${waiting.join(', ')}`] : [])].join('; ');
  const reason = refused.length > 0 ? 'Invalid' : 'Pending';
  const pending = (c: Condition): Condition =>
    c.type === 'Programmed' && c.status === 'True' ? condition('Programmed', false, reason, message, c.observedGeneration) : c;
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
