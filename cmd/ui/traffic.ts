// Live rates for the web view, read from the counters the dataplane already keeps (the request
// path pays nothing more): once per interval the differences of `sluice_http_requests_total`
// (by IR route and backend) and `sluice_ratelimit_decisions_total` become per-second rates on the
// graph's edges and nodes.
import type { Registry } from 'prom-client';
import { byCodePoint, type RouteIndex } from './graph.ts';
import type { UiRate, UiRateLimitRow, UiTraffic } from './view-types.ts';

interface Sample {
  labels: Record<string, string | number>;
  value: number;
}

/** One counter's values by label set, and the difference to the previous reading. */
class CounterReader {
  private previous = new Map<string, number>();
  private readonly registry: Registry;
  private readonly name: string;

  constructor(registry: Registry, name: string) {
    this.registry = registry;
    this.name = name;
  }

  /** Each label set with its total and its increase since the last read; empty when the process has no such counter. */
  async read(): Promise<{ labels: Record<string, string>; total: number; delta: number }[]> {
    const metric = this.registry.getSingleMetric(this.name);
    if (!metric) return [];
    // get() runs the metric's collect first (the rate limiter flushes its plain counts there).
    const values = (await metric.get()).values as Sample[];
    const next = new Map<string, number>();
    const out = values.map((v) => {
      const labels = Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)]));
      const key = JSON.stringify(labels);
      next.set(key, v.value);
      return { labels, total: v.value, delta: Math.max(0, v.value - (this.previous.get(key) ?? 0)) };
    });
    this.previous = next;
    return out;
  }
}

export class TrafficReader {
  private readonly requests: CounterReader;
  private readonly decisions: CounterReader;
  private lastAt = performance.now();

  constructor(registry: Registry) {
    this.requests = new CounterReader(registry, 'sluice_http_requests_total');
    this.decisions = new CounterReader(registry, 'sluice_ratelimit_decisions_total');
  }

  /** Rates since the previous call, placed on the graph through `index` (from the IR served now). */
  async read(index: RouteIndex): Promise<Omit<UiTraffic, 'flows' | 'drops'>> {
    const now = performance.now();
    const seconds = Math.max(0.001, (now - this.lastAt) / 1000);
    this.lastAt = now;
    const edges: Record<string, UiRate> = {};
    const nodes: Record<string, UiRate> = {};
    const noRoute = zeroRate();
    const bump = (rate: UiRate, delta: number, total: number, error: boolean) => {
      rate.rps += delta / seconds;
      rate.total += total;
      if (error) rate.errorRps += delta / seconds;
    };
    const add = (into: Record<string, UiRate>, key: string, delta: number, total: number, error: boolean) => bump((into[key] ??= zeroRate()), delta, total, error);
    for (const { labels, total, delta } of await this.requests.read()) {
      const error = Number(labels.code) >= 500;
      const routeId = index.routeNode.get(labels.route ?? '');
      if (!routeId) {
        // route '' is the gateway's own 404; a route no longer in the IR counts nowhere.
        if (!labels.route) bump(noRoute, delta, total, error);
        continue;
      }
      add(nodes, routeId, delta, total, error);
      if (labels.backend) {
        add(nodes, labels.backend, delta, total, error);
        add(edges, `${routeId}→${labels.backend}`, delta, total, error);
      }
      // The counters have no listener label: a listener edge gets the route's rate only when that listener alone serves it.
      const listeners = index.listeners.get(labels.route ?? '');
      if (listeners?.size === 1) add(edges, `${[...listeners][0]}→${routeId}`, delta, total, error);
    }
    return { at: new Date().toISOString(), edges, nodes, noRoute, rateLimits: await this.rateLimitRows(seconds) };
  }

  private async rateLimitRows(seconds: number): Promise<UiRateLimitRow[]> {
    const rows = new Map<string, UiRateLimitRow>();
    for (const { labels, total, delta } of await this.decisions.read()) {
      const key = `${labels.policy}\u0000${labels.rule}`;
      let row = rows.get(key);
      if (!row) rows.set(key, (row = { policy: labels.policy ?? '', rule: labels.rule ?? '', perSecond: {}, totals: {} }));
      const result = labels.result ?? '';
      row.perSecond[result] = (row.perSecond[result] ?? 0) + delta / seconds;
      row.totals[result] = (row.totals[result] ?? 0) + total;
    }
    return [...rows.values()].sort((a, b) => byCodePoint(a.policy, b.policy) || byCodePoint(a.rule, b.rule));
  }
}

function zeroRate(): UiRate {
  return { rps: 0, errorRps: 0, total: 0 };
}
