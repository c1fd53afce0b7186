// Metrics a Hubble user recognises, counted from the flows a node records (the kernel's connection
// records and the proxy's request records), named after Hubble's with the sluice_flow_ prefix:
// drops by reason, policy verdicts by direction and match type, HTTP requests by method, status,
// source namespace and destination workload. Forwarded requests are counted as they are recorded
// (at --flow-sample-rate, as Hubble counts what it sees); drops and audits are always recorded.
// Latency per workload is sluice_backend_request_duration_seconds (the Service is the backend).
//
// Counting is plain JavaScript (a map lookup per label and an increment per flow); prom-client reads the
// counts when scraped: its own label children hash their labels on every increment.

import client, { type Registry } from 'prom-client';
import type { Flow, FlowPeer } from '../../ir/flow.ts';
import type { FlowRecorder, ForwardedRequest } from './flow-buffer.ts';

/** Label combinations counted per metric; past it, new ones count under `_overflow`. */
export const MAX_SERIES = 10_000;
const OVERFLOW = '_overflow';

interface Counted<L extends string> {
  labels: Record<L, string>;
  n: number;
}

/**
 * A counter whose counts live in plain maps until a scrape copies them into prom-client: one Map
 * level per label, so a flow costs a lookup per label and an increment, no key string.
 */
class CountedSeries<L extends string> {
  private readonly root = new Map<string, unknown>();
  private readonly counted: Counted<L>[] = [];
  private overflow: Counted<L> | null = null;
  private readonly labelNames: readonly L[];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly L[]) {
    this.labelNames = labelNames;
    const counted = this.counted;
    const series = this;
    new client.Counter<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, n } of counted) this.inc(labels as Partial<Record<L, string>>, n);
        if (series.overflow !== null) this.inc(series.overflow.labels as Partial<Record<L, string>>, series.overflow.n);
      },
    });
  }

  /** `values` in labelNames order. */
  inc(...values: string[]): void {
    this.add(values);
  }

  /**
   * The label values counted last and their entry: steady traffic repeats them, and comparing them
   * (mostly the same string objects) costs less than a Map lookup per label (issue #14).
   */
  private readonly lastValues: string[] = [];
  private lastEntry: Counted<L> | null = null;

  /** inc with the values in an array the caller may reuse (read at once, never kept). */
  add(values: readonly string[]): void {
    const last = this.lastEntry;
    if (last !== null && sameValues(values, this.lastValues)) {
      last.n++;
      return;
    }
    const entry = this.lookup(values);
    if (entry === null) return this.countOverflow();
    entry.n++;
    this.lastEntry = entry;
    const kept = this.lastValues;
    kept.length = values.length;
    for (let i = 0; i < values.length; i++) kept[i] = values[i]!;
  }

  /** The entry counting `values`, made at the first; null past MAX_SERIES label combinations. */
  private lookup(values: readonly string[]): Counted<L> | null {
    let level = this.root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      let next = level.get(values[i]!) as Map<string, unknown> | undefined;
      if (next === undefined) {
        if (this.counted.length >= MAX_SERIES) return null;
        level.set(values[i]!, (next = new Map()));
      }
      level = next;
    }
    let entry = level.get(values[last]!) as Counted<L> | undefined;
    if (entry === undefined) {
      if (this.counted.length >= MAX_SERIES) return null;
      entry = { labels: Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!])) as Record<L, string>, n: 0 };
      level.set(values[last]!, entry);
      this.counted.push(entry);
    }
    return entry;
  }

  /** Past MAX_SERIES label combinations, new ones count together under `_overflow`. */
  private countOverflow(): void {
    this.overflow ??= { labels: Object.fromEntries(this.labelNames.map((name) => [name, OVERFLOW])) as Record<L, string>, n: 0 };
    this.overflow.n++;
  }
}

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const L7_FORWARDED: readonly string[] = ['L7', 'FORWARDED'];

/** Status codes as label values, made once each. */
const STATUS_TEXT: string[] = [];
const statusText = (status: number): string => (STATUS_TEXT[status] ??= String(status));

/** Workload: the Service's name (bounded by the configuration), else the endpoint's app label. */
function workloadOf(service: Flow['service'], destination: FlowPeer): string {
  return service?.name ?? destination.labels.find((l) => l.startsWith('k8s:app='))?.slice('k8s:app='.length) ?? '';
}

export class FlowMetrics implements FlowRecorder {
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
    this.requests.inc(l7.method, statusText(l7.status), flow.source.namespace ?? '', flow.service?.namespace ?? flow.destination.namespace ?? '', workloadOf(flow.service, flow.destination));
  }

  /** FlowRecorder: flows pushed as objects. */
  readonly flow = (flow: Flow): void => this.record(flow);

  /** Label values of forwarded requests, filled in place (no arguments array per request). */
  private readonly verdictValues = ['', 'l7/http', 'forwarded'];
  private readonly requestValues = ['', '', '', '', ''];

  /** FlowRecorder: a forwarded request, counted as `record` would count its flow (its client is the world: no namespace). */
  readonly forwarded = (r: ForwardedRequest): void => {
    this.processed.add(L7_FORWARDED);
    if (r.rule !== undefined) {
      this.verdictValues[0] = r.direction;
      this.verdicts.add(this.verdictValues);
    }
    const values = this.requestValues;
    values[0] = r.method;
    values[1] = statusText(r.status);
    values[3] = r.service?.namespace ?? r.destination.namespace ?? '';
    values[4] = workloadOf(r.service, r.destination);
    this.requests.add(values);
  };
}
