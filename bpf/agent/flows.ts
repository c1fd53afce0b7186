// Kernel flow events → flow records people read: who talked to whom, through
// which Service, what the policy said and which rule said it. The agent keeps
// the latest ones for `sluice observe` and streams new ones to followers.
import { podsByAddress, type FlowPeer } from '../../ir/flow.ts';
import type { L4IR } from '../../ir/types.ts';
import type { FlowEvent, Verdict } from './codec.ts';

/** One side of a kernel flow: the same shape as a request flow's peers (pod from the ipcache). */
export type FlowEndpoint = FlowPeer;

export interface FlowRecord {
  time: string;
  verdict: Verdict;
  /** Why it was dropped (or would have been, for AUDIT). */
  dropReason?: 'POLICY_DENY' | 'DEFAULT_DENY' | 'NO_BACKEND';
  hook: string;
  direction: 'ingress' | 'egress';
  protocol: string;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  /** The Service whose VIP the connection asked for. */
  service?: { namespace: string; name: string; vip: string; port: number };
  /** The rule that decided, when one did. */
  rule?: { id: number; name: string };
}

export interface FlowFilter {
  verdict?: Verdict;
  /** Source or destination namespace, or the Service's. */
  namespace?: string;
  /** `<ns>/<name>`. */
  toService?: string;
}

const PROTOCOLS: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

/** Names for the numbers in events, from the last applied ir.l4. */
export class FlowContext {
  private services = new Map<string, { namespace: string; name: string }>();
  private identities = new Map<number, { labels: string[]; namespace?: string }>();
  private rules = new Map<number, string>();
  /** Pod address → `<ns>/<name>`. */
  private pods = new Map<string, string>();

  update(l4: L4IR): void {
    this.pods = podsByAddress(l4.policy);
    this.services = new Map(l4.services.map((s) => [`${s.vip}:${s.port}/${s.protocol}`, { namespace: s.origin.namespace, name: s.origin.name }]));
    this.identities = new Map([
      [1, { labels: ['reserved:host'] }],
      [2, { labels: ['reserved:world'] }],
      [8, { labels: ['reserved:ingress'] }],
      ...(l4.policy?.identities ?? []).map((i) => [i.id, { labels: i.labels, ...(i.namespace ? { namespace: i.namespace } : {}) }] as const),
    ]);
    this.rules = new Map((l4.policy?.rules ?? []).map((r) => [r.id, r.name]));
  }

  record(e: FlowEvent, wallClockMs: number): FlowRecord {
    const protocol = PROTOCOLS[e.proto] ?? String(e.proto);
    const service = e.vip ? this.services.get(`${e.vip}:${e.vipPort}/${protocol}`) : undefined;
    const rule = e.ruleId ? { id: e.ruleId, name: this.rules.get(e.ruleId) ?? `rule ${e.ruleId}` } : undefined;
    return {
      time: new Date(wallClockMs).toISOString(),
      verdict: e.verdict,
      ...(e.reason !== 'NONE' ? { dropReason: e.reason } : {}),
      hook: e.hook,
      direction: e.direction,
      protocol,
      source: this.endpoint(e.srcIp, e.srcPort, e.srcId),
      destination: this.endpoint(e.dstIp, e.dstPort, e.dstId),
      ...(service && e.vip ? { service: { ...service, vip: e.vip, port: e.vipPort } } : {}),
      ...(rule ? { rule } : {}),
    };
  }

  private endpoint(ip: string, port: number, identity: number): FlowEndpoint {
    const known = this.identities.get(identity);
    const pod = this.pods.get(ip);
    return { ip, port, identity, ...(known?.namespace ? { namespace: known.namespace } : {}), labels: known?.labels ?? [], ...(pod !== undefined ? { pod } : {}) };
  }
}

export function flowMatches(flow: FlowRecord, filter: FlowFilter): boolean {
  if (filter.verdict && flow.verdict !== filter.verdict) return false;
  if (filter.namespace && ![flow.source.namespace, flow.destination.namespace, flow.service?.namespace].includes(filter.namespace)) return false;
  if (filter.toService && (!flow.service || `${flow.service.namespace}/${flow.service.name}` !== filter.toService)) return false;
  return true;
}
