// Prometheus metrics. Label children are resolved at compile time per (route, backend), and per
// status code on first use, so a request costs two increments, not a label lookup per metric.

import client from 'prom-client';
import type { Registry } from 'prom-client';
import type { Backend, Route } from '../ir/types.ts';

type RequestCounter = client.Counter<'route' | 'backend' | 'code'>;
type DurationHistogram = client.Histogram<'route'>;
type RouteCounter = client.Counter<'route'>;
type BackendLabel = 'route' | 'rule' | 'backend' | 'code_class';

/** Status code recorded when the client went away before the response completed (nginx's 499). */
export const CLIENT_CLOSED_CODE = 499;

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Most (route, rule, backend) series the per-backend metrics keep: each is up to 6 code classes x
 * (a counter + 16 histogram series). Past it, new ones count under route/backend "_overflow".
 */
export const BACKEND_SERIES_LIMIT = 1000;
const OVERFLOW = '_overflow';

/** `2xx` and so on; anything outside 100..599 is `other` (six values at most). */
function codeClass(code: number): string {
  return code >= 100 && code <= 599 ? `${Math.floor(code / 100)}xx` : 'other';
}

/**
 * One (route, rule, backend) triple of the per-backend metrics, for canary analysis: the children
 * per code class are made on first use and removed when no route of the live table uses the triple.
 */
class BackendSeries {
  private readonly byClass = new Map<string, { count: client.Counter.Internal; duration: client.Histogram.Internal<BackendLabel> }>();

  private readonly counter: client.Counter<BackendLabel>;
  private readonly histogram: client.Histogram<BackendLabel>;
  private readonly labels: { route: string; rule: string; backend: string };
  /** Its key in DataplaneMetrics.backendSeries. */
  readonly key: string;

  constructor(counter: client.Counter<BackendLabel>, histogram: client.Histogram<BackendLabel>, labels: { route: string; rule: string; backend: string }, key: string) {
    this.key = key;
    this.counter = counter;
    this.histogram = histogram;
    this.labels = labels;
  }

  record(code: number, seconds: number): void {
    const code_class = codeClass(code);
    let child = this.byClass.get(code_class);
    if (child === undefined) {
      const labels = { ...this.labels, code_class };
      child = { count: this.counter.labels(labels), duration: this.histogram.labels(labels) };
      this.byClass.set(code_class, child);
    }
    child.count.inc();
    child.duration.observe(seconds);
  }

  remove(): void {
    for (const code_class of this.byClass.keys()) {
      this.counter.remove({ ...this.labels, code_class });
      this.histogram.remove({ ...this.labels, code_class });
    }
    this.byClass.clear();
  }
}

/** Counters for one (route, backend) pair; `backend` is '' for local answers. */
export class RequestMetrics {
  private readonly counter: RequestCounter;
  private readonly route: string;
  private readonly backend: string;
  private readonly byCode = new Map<number, client.Counter.Internal>();
  private readonly duration: client.Histogram.Internal<'route'>;
  private readonly notReplayable: RouteCounter;
  /** The per-backend series of a forward to a backend (re-resolved at every compile); null otherwise. */
  perBackend: BackendSeries | null = null;

  constructor(counter: RequestCounter, histogram: DurationHistogram, notReplayable: RouteCounter, route: string, backend: string) {
    this.counter = counter;
    this.route = route;
    this.backend = backend;
    this.duration = histogram.labels(route);
    this.notReplayable = notReplayable;
  }

  /** A body too large to buffer on a route that retries or mirrors: sent once, neither retried nor mirrored. */
  recordBodyNotReplayable(): void {
    this.notReplayable.labels(this.route).inc();
  }

  /** `startedAt` from performance.now(). */
  record(code: number, startedAt: number): void {
    let child = this.byCode.get(code);
    if (child === undefined) {
      child = this.counter.labels(this.route, this.backend, String(code));
      this.byCode.set(code, child);
    }
    child.inc();
    const seconds = (performance.now() - startedAt) / 1000;
    this.duration.observe(seconds);
    this.perBackend?.record(code, seconds);
  }
}

/**
 * Requests one listener refused before routing: malformed or ambiguous HTTP (Node's parser or the
 * front door's own checks). `reason` is a short stable label (see dataplane/http1-strict.ts).
 */
export class DownstreamRejections {
  private readonly counter: client.Counter<'listener' | 'reason'>;
  private readonly listener: string;

  constructor(counter: client.Counter<'listener' | 'reason'>, listener: string) {
    this.counter = counter;
    this.listener = listener;
  }

  record(reason: string): void {
    this.counter.labels(this.listener, reason).inc();
  }
}

export class DataplaneMetrics {
  private readonly requests: RequestCounter;
  private readonly duration: DurationHistogram;
  private readonly notReplayable: RouteCounter;
  private readonly configVersion: client.Gauge<'version'>;
  private readonly configApplies: client.Counter<'result'>;
  private readonly listenerUp: client.Gauge<'listener'>;
  private readonly rejected: client.Counter<'listener' | 'reason'>;
  private readonly backendRequests: client.Counter<BackendLabel>;
  private readonly backendDuration: client.Histogram<BackendLabel>;
  /**
   * Shared per (route, backend) across reloads so children are created once. By route, then
   * backend: no key string built per rule at each compile (50 000 rules made that a fifth of it).
   */
  private readonly targets = new Map<string, Map<string, RequestMetrics>>();
  /** Per-backend series by `route\0rule\0backend`, and those the compile under way uses. */
  private readonly backendSeries = new Map<string, BackendSeries>();
  private readonly backendSeriesInUse = new Set<string>();

  constructor(registry: Registry) {
    this.requests = metric(registry, 'sluice_http_requests_total', (registers) =>
      new client.Counter({ name: 'sluice_http_requests_total', help: 'HTTP requests answered, by route, backend and status code', labelNames: ['route', 'backend', 'code'] as const, registers }),
    );
    this.duration = metric(registry, 'sluice_http_request_duration_seconds', (registers) =>
      new client.Histogram({
        name: 'sluice_http_request_duration_seconds',
        help: 'Time from request arrival to the end of the response, by route',
        labelNames: ['route'] as const,
        buckets: DURATION_BUCKETS,
        registers,
      }),
    );
    this.backendRequests = metric(registry, 'sluice_backend_requests_total', (registers) =>
      new client.Counter({
        name: 'sluice_backend_requests_total',
        help: 'Requests routed to a backend, by HTTPRoute (namespace/name), rule, backend (namespace/Service:port) and response code class',
        labelNames: ['route', 'rule', 'backend', 'code_class'] as const,
        registers,
      }),
    );
    this.backendDuration = metric(registry, 'sluice_backend_request_duration_seconds', (registers) =>
      new client.Histogram({
        name: 'sluice_backend_request_duration_seconds',
        help: 'Time from request arrival to the end of the response, for requests routed to a backend, by route, rule, backend and response code class',
        labelNames: ['route', 'rule', 'backend', 'code_class'] as const,
        buckets: DURATION_BUCKETS,
        registers,
      }),
    );
    this.notReplayable = metric(registry, 'sluice_http_request_body_not_replayable_total', (registers) =>
      new client.Counter({
        name: 'sluice_http_request_body_not_replayable_total',
        help: 'Requests on routes with a retry policy or mirror whose body exceeded the replay buffer (64 KiB): forwarded once, without retries or mirrors',
        labelNames: ['route'] as const,
        registers,
      }),
    );
    this.configVersion = metric(registry, 'sluice_config_version_info', (registers) =>
      new client.Gauge({ name: 'sluice_config_version_info', help: 'The configuration version the dataplane serves (value 1)', labelNames: ['version'] as const, registers }),
    );
    this.configApplies = metric(registry, 'sluice_config_applies_total', (registers) =>
      new client.Counter({ name: 'sluice_config_applies_total', help: 'Configuration applies, by result (applied, rejected)', labelNames: ['result'] as const, registers }),
    );
    this.listenerUp = metric(registry, 'sluice_listener_up', (registers) =>
      new client.Gauge({ name: 'sluice_listener_up', help: 'Whether a listener socket is bound (1) or failed to bind (0)', labelNames: ['listener'] as const, registers }),
    );
    this.rejected = metric(registry, 'sluice_downstream_rejected_total', (registers) =>
      new client.Counter({
        name: 'sluice_downstream_rejected_total',
        help: 'Requests refused before routing (malformed or ambiguous HTTP, 400/408/413/431/501/505), by listener and reason',
        labelNames: ['listener', 'reason'] as const,
        registers,
      }),
    );
  }

  downstreamRejections(listener: string): DownstreamRejections {
    return new DownstreamRejections(this.rejected, listener);
  }

  /**
   * The metrics of one (route, backend) pair; `forward` (a route forwarding to an IR backend) adds
   * the per-backend series.
   */
  requestMetrics(route: string, backend: string, forward?: { route: Route; backend: Backend }): RequestMetrics {
    let byBackend = this.targets.get(route);
    if (byBackend === undefined) {
      byBackend = new Map();
      this.targets.set(route, byBackend);
    }
    let target = byBackend.get(backend);
    if (target === undefined) {
      target = new RequestMetrics(this.requests, this.duration, this.notReplayable, route, backend);
      byBackend.set(backend, target);
    }
    target.perBackend = forward === undefined ? null : this.seriesFor(forward.route, forward.backend);
    return target;
  }

  private seriesFor(route: Route, backend: Backend): BackendSeries {
    // A named rule by its name, else its index; Ingress rules have neither (nor has IR from a
    // controller older than origins).
    const origin: Partial<Route['origin']> = route.origin ?? {};
    const rule = origin.sectionName ?? (origin.ruleIndex !== undefined ? String(origin.ruleIndex) : '');
    let labels = { route: route.source, rule, backend: backend.source ?? backend.name };
    let key = `${labels.route}\u0000${rule}\u0000${labels.backend}`;
    if (!this.backendSeries.has(key) && this.backendSeries.size >= BACKEND_SERIES_LIMIT) {
      labels = { route: OVERFLOW, rule: '', backend: OVERFLOW };
      key = `${OVERFLOW}\u0000\u0000${OVERFLOW}`;
    }
    let series = this.backendSeries.get(key);
    if (series === undefined) {
      series = new BackendSeries(this.backendRequests, this.backendDuration, labels, key);
      this.backendSeries.set(key, series);
    }
    this.backendSeriesInUse.add(key);
    return series;
  }

  /**
   * A route reused as compiled from the live table (dataplane/config/compile.ts) calls this for each
   * RequestMetrics it holds instead of requestMetrics(): what the applied table uses must count as
   * in use for every pruning here.
   */
  keep(target: RequestMetrics): void {
    if (target.perBackend !== null) this.backendSeriesInUse.add(target.perBackend.key);
  }

  versionApplied(version: string): void {
    this.configVersion.reset();
    this.configVersion.labels(version).set(1);
    this.configApplies.labels('applied').inc();
    // Series of routes and backends the applied table no longer has go, so the count stays bounded.
    for (const [key, series] of this.backendSeries) {
      if (this.backendSeriesInUse.has(key)) continue;
      series.remove();
      this.backendSeries.delete(key);
    }
    this.backendSeriesInUse.clear();
  }

  versionRejected(): void {
    this.configApplies.labels('rejected').inc();
    // The live table is the previous one: what the failed compile marked proves nothing.
    this.backendSeriesInUse.clear();
  }

  listenerState(listener: string, up: boolean | null): void {
    if (up === null) this.listenerUp.remove(listener);
    else this.listenerUp.labels(listener).set(up ? 1 : 0);
  }
}

/** Reuses a metric already in the registry (several dataplanes may share one registry). */
export function metric<T extends client.Metric>(registry: Registry, name: string, create: (registers: Registry[]) => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create([registry]);
}
