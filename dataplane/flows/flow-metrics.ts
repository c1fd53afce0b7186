// Metrics a Hubble user recognises, counted from the flows a node records (the kernel's connection
// records and the proxy's request records), named after Hubble's with the sluice_flow_ prefix:
// drops by reason, policy verdicts by direction and match type, HTTP requests by method, status,
// source namespace and destination workload. Forwarded requests are counted as they are recorded
// (at --flow-sample-rate, as Hubble counts what it sees); drops and audits are always recorded.
// Latency per workload is sluice_backend_request_duration_seconds (the Service is the backend).
//
// Counting is plain JavaScript (one map lookup and an increment per flow); prom-client reads the
// counts when scraped: its own label children hash their labels on every increment.

import client, { type Registry } from 'prom-client';
import type { Flow } from '../../ir/flow.ts';

/** Label combinations counted per metric; past it, new ones count under `_overflow`. */
const MAX_SERIES = 10_000;
const OVERFLOW = '_overflow';

/** A counter whose counts live in a map until a scrape copies them into prom-client. */
class CountedSeries<L extends string> {
  private readonly counts = new Map<string, { labels: Record<L, string>; n: number }>();
  private readonly labelNames: readonly L[];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly L[]) {
    this.labelNames = labelNames;
    const counts = this.counts;
    new client.Counter<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, n } of counts.values()) this.inc(labels as Partial<Record<L, string>>, n);
      },
    });
  }

  /** `values` in labelNames order. */
  inc(...values: string[]): void {
    const key = values.join('\u0000');
    let entry = this.counts.get(key);
    if (entry === undefined) {
      const overflow = this.counts.size >= MAX_SERIES;
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, overflow ? OVERFLOW : values[i]!])) as Record<L, string>;
      const k = overflow ? OVERFLOW : key;
      entry = this.counts.get(k) ?? { labels, n: 0 };
      this.counts.set(k, entry);
    }
    entry.n++;
  }
}

export class FlowMetrics {
  private readonly processed: CountedSeries<'type' | 'verdict'>;
  private readonly drops: CountedSeries<'reason' | 'protocol'>;
  private readonly verdicts: CountedSeries<'direction' | 'match' | 'action'>;
  private readonly requests: CountedSeries<'method' | 'status' | 'source_namespace' | 'destination_namespace' | 'destination_workload'>;

  constructor(registry: Registry) {
    this.processed = new CountedSeries(registry, 'sluice_flow_processed_total', 'Flows recorded, by type (L3_L4, L7) and verdict (Hubble: hubble_flows_processed_total)', ['type', 'verdict']);
    this.drops = new CountedSeries(registry, 'sluice_flow_drops_total', 'Dropped flows by reason and protocol (Hubble: hubble_drop_total)', ['reason', 'protocol']);
    this.verdicts = new CountedSeries(
      registry,
      'sluice_flow_policy_verdicts_total',
      'Network policy verdicts by direction, match type (l3-l4, l7/http) and action (forwarded, dropped, audit) (Hubble: hubble_policy_verdicts_total)',
      ['direction', 'match', 'action'],
    );
    this.requests = new CountedSeries(
      registry,
      'sluice_flow_http_requests_total',
      'Proxied HTTP requests by method, status, source namespace and destination workload (Hubble: hubble_http_requests_total)',
      ['method', 'status', 'source_namespace', 'destination_namespace', 'destination_workload'],
    );
  }

  record(flow: Flow): void {
    const type = flow.type ?? 'L3_L4';
    this.processed.inc(type, flow.verdict);
    if (flow.dropReason !== undefined && flow.verdict === 'DROPPED') this.drops.inc(flow.dropReason, flow.protocol);
    // A verdict of network policy: a rule decided, or default deny did.
    if (flow.rule !== undefined || flow.dropReason === 'DEFAULT_DENY' || flow.dropReason === 'POLICY_L7') {
      this.verdicts.inc(flow.direction, type === 'L7' ? 'l7/http' : 'l3-l4', flow.verdict.toLowerCase());
    }
    const l7 = flow.l7;
    if (type !== 'L7' || l7 === undefined) return;
    // Workload: the Service's name (bounded by the configuration), else the endpoint's app label.
    const workload = flow.service?.name ?? flow.destination.labels.find((l) => l.startsWith('k8s:app='))?.slice('k8s:app='.length) ?? '';
    this.requests.inc(l7.method, String(l7.status), flow.source.namespace ?? '', flow.service?.namespace ?? flow.destination.namespace ?? '', workload);
  }
}
