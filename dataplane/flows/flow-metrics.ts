// Metrics a Hubble user recognises, counted from the flows a node records (the kernel's connection
// records and the proxy's request records), named after Hubble's with the sluice_flow_ prefix:
// drops by reason, policy verdicts by direction and match type, HTTP requests and their latency by
// source and destination workload. Forwarded requests are counted as they are recorded (at
// --flow-sample-rate, as Hubble counts what it sees); drops and audits are always recorded.

import client, { type Registry } from 'prom-client';
import type { Flow } from '../../ir/flow.ts';

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class FlowMetrics {
  private readonly processed: client.Counter<'type' | 'verdict'>;
  private readonly drops: client.Counter<'reason' | 'protocol'>;
  private readonly verdicts: client.Counter<'direction' | 'match' | 'action'>;
  private readonly requests: client.Counter<'method' | 'status' | 'source_namespace' | 'destination_namespace' | 'destination_workload'>;
  private readonly duration: client.Histogram<'method' | 'destination_namespace' | 'destination_workload'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.processed = new client.Counter({ name: 'sluice_flow_processed_total', help: 'Flows recorded, by type (L3_L4, L7) and verdict (Hubble: hubble_flows_processed_total)', labelNames: ['type', 'verdict'] as const, registers });
    this.drops = new client.Counter({ name: 'sluice_flow_drops_total', help: 'Dropped flows by reason and protocol (Hubble: hubble_drop_total)', labelNames: ['reason', 'protocol'] as const, registers });
    this.verdicts = new client.Counter({
      name: 'sluice_flow_policy_verdicts_total',
      help: 'Network policy verdicts by direction, match type (l3-l4, l7/http) and action (forwarded, dropped, audit) (Hubble: hubble_policy_verdicts_total)',
      labelNames: ['direction', 'match', 'action'] as const,
      registers,
    });
    this.requests = new client.Counter({
      name: 'sluice_flow_http_requests_total',
      help: 'Proxied HTTP requests by method, status, source namespace and destination workload (Hubble: hubble_http_requests_total)',
      labelNames: ['method', 'status', 'source_namespace', 'destination_namespace', 'destination_workload'] as const,
      registers,
    });
    this.duration = new client.Histogram({
      name: 'sluice_flow_http_request_duration_seconds',
      help: 'Proxied HTTP request latency by method and destination workload (Hubble: hubble_http_request_duration_seconds)',
      labelNames: ['method', 'destination_namespace', 'destination_workload'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
  }

  record(flow: Flow): void {
    const type = flow.type ?? 'L3_L4';
    this.processed.inc({ type, verdict: flow.verdict });
    if (flow.dropReason && flow.verdict === 'DROPPED') this.drops.inc({ reason: flow.dropReason, protocol: flow.protocol });
    // A verdict of network policy: a rule decided, or default deny did.
    if (flow.rule || flow.dropReason === 'DEFAULT_DENY' || flow.dropReason === 'POLICY_L7') {
      this.verdicts.inc({ direction: flow.direction, match: type === 'L7' ? 'l7/http' : 'l3-l4', action: flow.verdict.toLowerCase() });
    }
    const l7 = flow.l7;
    if (type !== 'L7' || !l7) return;
    // Workload: the Service's name (bounded by the configuration), else the endpoint's app label.
    const workload = flow.service?.name ?? flow.destination.labels.find((l) => l.startsWith('k8s:app='))?.slice('k8s:app='.length) ?? '';
    const namespace = flow.service?.namespace ?? flow.destination.namespace ?? '';
    this.requests.inc({ method: l7.method, status: String(l7.status), source_namespace: flow.source.namespace ?? '', destination_namespace: namespace, destination_workload: workload });
    this.duration.observe({ method: l7.method, destination_namespace: namespace, destination_workload: workload }, l7.latencyMs / 1000);
  }
}
