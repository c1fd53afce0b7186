// Prometheus metrics. The request metrics are plain numbers held by what the compiled table
// points at (a RequestMetrics per (route, backend), a BackendSeries per (route, rule, backend)):
// a request costs a Map increment and a histogram bucket increment, no label lookup. prom-client's
// children hash their labels and validate them on every inc() and observe() (profiled under load:
// ~5 % of the proxy's CPU); here the numbers are read into samples only when scraped
// (ScrapedMetric). Series of routes the applied table no longer has are dropped at the apply.

import client from 'prom-client';
import type { Registry } from 'prom-client';
import type { Backend, Route } from '../ir/types.ts';

type RouteCounter = client.Counter<'route'>;

/** Status code recorded when the client went away before the response completed (nginx's 499). */
export const CLIENT_CLOSED_CODE = 499;

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Most (route, rule, backend) series the per-backend metrics keep: each is up to 6 code classes x
 * (a counter + 16 histogram series). Past it, new ones count under route/backend "_overflow".
 */
export const BACKEND_SERIES_LIMIT = 1000;
const OVERFLOW = '_overflow';

const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'];

/** Index in CODE_CLASSES: `2xx` and so on; anything outside 100..599 is `other`. */
function codeClassIndex(code: number): number {
  return code >= 100 && code <= 599 ? Math.floor(code / 100) - 1 : 5;
}

/** One sample as prom-client's Registry formats it (and its AggregatorRegistry sums across workers). */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** Durations of one series: per-bucket counts (not cumulative; the last slot is above every bound), sum, count. */
class Durations {
  /** Made at the first observation: most of 50 000 rules never see one (memory, the route-scale bench). */
  private counts: Float64Array | null = null;
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    (this.counts ??= new Float64Array(DURATION_BUCKETS.length + 1))[i]++;
    this.sum += seconds;
    this.count++;
  }

  /** The Prometheus histogram's samples, as prom-client's Histogram gives them (`le` first). */
  samples(name: string, labels: Record<string, string>, out: Sample[]): void {
    const bucket = `${name}_bucket`;
    let cumulative = 0;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      cumulative += this.counts?.[i] ?? 0;
      out.push({ metricName: bucket, labels: { le: DURATION_BUCKETS[i]!, ...labels }, value: cumulative });
    }
    out.push({ metricName: bucket, labels: { le: '+Inf', ...labels }, value: this.count });
    out.push({ metricName: `${name}_sum`, labels, value: this.sum });
    out.push({ metricName: `${name}_count`, labels, value: this.count });
  }
}

type SampleSource = (out: Sample[]) => void;

/**
 * A counter or histogram whose samples are read from plain numbers when scraped. prom-client's
 * Registry takes any metric object with get() (its AggregatorRegistry registers such objects
 * itself); each DataplaneMetrics sharing the registry adds its source, and equal label sets of
 * several sources are summed, as one prom-client metric shared by them counted them.
 */
class ScrapedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum';
  private readonly sources = new Set<SampleSource>();

  private constructor(name: string, help: string, type: 'counter' | 'histogram') {
    this.name = name;
    this.help = help;
    this.type = type;
  }

  /** The registry's metric of that name, registered now when it has none. */
  static in(registry: Registry, name: string, help: string, type: 'counter' | 'histogram'): ScrapedMetric {
    const existing: unknown = registry.getSingleMetric(name);
    if (existing instanceof ScrapedMetric) return existing;
    const created = new ScrapedMetric(name, help, type);
    registry.registerMetric(created as unknown as client.Metric);
    return created;
  }

  add(source: SampleSource): void {
    this.sources.add(source);
  }

  async get(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }> {
    let values: Sample[] = [];
    for (const source of this.sources) source(values);
    if (this.sources.size > 1) values = summed(values);
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Registry#resetMetrics: the numbers belong to the live tables; nothing to reset. */
  reset(): void {}
}

function summed(values: Sample[]): Sample[] {
  const byKey = new Map<string, Sample>();
  for (const v of values) {
    const key = `${v.metricName ?? ''}\u0000${JSON.stringify(v.labels)}`;
    const seen = byKey.get(key);
    if (seen === undefined) byKey.set(key, { ...v });
    else seen.value += v.value;
  }
  return [...byKey.values()];
}

/**
 * One (route, rule, backend) triple of the per-backend metrics, for canary analysis: a count and
 * durations per code class, from first use until no route of the live table uses the triple.
 */
class BackendSeries {
  readonly labels: { route: string; rule: string; backend: string };
  /** Its key in DataplaneMetrics.backendSeries. */
  readonly key: string;
  /** By code class index (CODE_CLASSES); the counter's value is the durations' count. */
  readonly byClass: (Durations | undefined)[] = new Array(CODE_CLASSES.length);
  /** Dropped at an apply: a request still in flight on the previous table brings it back. */
  retired = false;
  /** Compiled routes of the live table holding it (DataplaneMetrics.versionApplied). */
  uses = 0;
  private readonly owner: DataplaneMetrics;

  constructor(owner: DataplaneMetrics, labels: { route: string; rule: string; backend: string }, key: string) {
    this.owner = owner;
    this.key = key;
    this.labels = labels;
  }

  record(code: number, seconds: number): void {
    if (this.retired) this.owner.revive(this);
    const i = codeClassIndex(code);
    (this.byClass[i] ??= new Durations()).observe(seconds);
  }
}

/** What one (route, backend) pair answered; `backend` is '' for local answers. */
export class RequestMetrics {
  readonly route: string;
  readonly backend: string;
  /** Requests answered, by status code; made at the first (most of 50 000 rules never answer one: memory). */
  codes: Map<number, number> | null = null;
  /**
   * The route's durations, shared by every backend of the route: found or made at the first
   * request (DataplaneMetrics.durationsOf), not at the compile (most of 50 000 rules never answer one).
   */
  durations: Durations | null = null;
  /** The next target of the same route (DataplaneMetrics.targets: a chain per route, not a Map per route). */
  sibling: RequestMetrics | null = null;
  private readonly notReplayable: RouteCounter;
  private readonly owner: DataplaneMetrics;
  /** The per-backend series of a forward to a backend (re-resolved at every compile); null otherwise. */
  perBackend: BackendSeries | null = null;
  /** Dropped at an apply: a request still in flight on the previous table brings it back. */
  retired = false;
  /** Compiled routes of the live table holding it (DataplaneMetrics.versionApplied). */
  uses = 0;

  constructor(owner: DataplaneMetrics, notReplayable: RouteCounter, route: string, backend: string) {
    this.owner = owner;
    this.route = route;
    this.backend = backend;
    this.notReplayable = notReplayable;
  }

  /** A body too large to buffer on a route that retries or mirrors: sent once, neither retried nor mirrored. */
  recordBodyNotReplayable(): void {
    this.notReplayable.labels(this.route).inc();
  }

  /** A RequestMirror copy to `backend` dropped: its copies in flight were at their bound (upstream/mirror.ts). */
  recordMirrorDropped(backend: string): void {
    this.owner.mirrorCopyDropped(this.route, backend);
  }

  /** `startedAt` and `now` from performance.now() (`now`: the caller's, when it has read the clock already). */
  record(code: number, startedAt: number, now = performance.now()): void {
    if (this.retired) this.owner.revive(this);
    const codes = (this.codes ??= new Map());
    codes.set(code, (codes.get(code) ?? 0) + 1);
    const seconds = (now - startedAt) / 1000;
    (this.durations ??= this.owner.durationsOf(this.route)).observe(seconds);
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
  private readonly notReplayable: RouteCounter;
  /** RequestMirror copies dropped at their backend's in-flight bound, by route and mirror backend. */
  private readonly mirrorCopiesDropped: client.Counter<'route' | 'backend'>;
  /** Its (route, backend) series so far: past BACKEND_SERIES_LIMIT, new ones count under "_overflow". */
  private readonly mirrorDropSeries = new Set<string>();
  private readonly configVersion: client.Gauge<'version'>;
  private readonly configApplies: client.Counter<'result'>;
  private readonly listenerUp: client.Gauge<'listener'>;
  private readonly rejected: client.Counter<'listener' | 'reason'>;
  /**
   * Shared per (route, backend) across reloads, so counts carry on. By route, the first of a chain of
   * its targets by backend (RequestMetrics.sibling, in the order made; a route has a few backends):
   * no key string built per rule at each compile (50 000 rules made that a fifth of it), no Map per route.
   */
  private readonly targets = new Map<string, RequestMetrics>();
  /** Each route's durations (all its backends), from its first request while the route has targets. */
  private readonly routeDurations = new Map<string, Durations>();
  /** Per-backend series by `route\0rule\0backend`. */
  private readonly backendSeries = new Map<string, BackendSeries>();
  /**
   * Use counts change at the apply: the compile under way takes a use of what it compiles a route
   * with, and gives back those of the routes of the live table it drops (release). A target or
   * series at no use goes; one revived by a request in flight is checked again. Routes the compile
   * reuses keep theirs, so an apply costs what it changed, not the table's size.
   */
  private taken: (RequestMetrics | BackendSeries)[] = [];
  private released: (RequestMetrics | BackendSeries)[] = [];
  private revived: (RequestMetrics | BackendSeries)[] = [];

  constructor(registry: Registry) {
    ScrapedMetric.in(registry, 'sluice_http_requests_total', 'HTTP requests answered, by route, backend and status code', 'counter').add((out) => {
      for (const first of this.targets.values()) {
        for (let target: RequestMetrics | null = first; target !== null; target = target.sibling) {
          if (target.codes !== null) for (const [code, n] of target.codes) out.push({ labels: { route: target.route, backend: target.backend, code: String(code) }, value: n });
        }
      }
    });
    ScrapedMetric.in(registry, 'sluice_http_request_duration_seconds', 'Time from request arrival to the end of the response, by route', 'histogram').add((out) => {
      for (const [route, durations] of this.routeDurations) if (durations.count > 0) durations.samples('sluice_http_request_duration_seconds', { route }, out);
    });
    ScrapedMetric.in(
      registry,
      'sluice_backend_requests_total',
      'Requests routed to a backend, by HTTPRoute (namespace/name), rule, backend (namespace/Service:port) and response code class',
      'counter',
    ).add((out) => this.eachBackendClass((labels, durations) => out.push({ labels, value: durations.count })));
    ScrapedMetric.in(
      registry,
      'sluice_backend_request_duration_seconds',
      'Time from request arrival to the end of the response, for requests routed to a backend, by route, rule, backend and response code class',
      'histogram',
    ).add((out) => this.eachBackendClass((labels, durations) => durations.samples('sluice_backend_request_duration_seconds', labels, out)));
    this.notReplayable = metric(registry, 'sluice_http_request_body_not_replayable_total', (registers) =>
      new client.Counter({
        name: 'sluice_http_request_body_not_replayable_total',
        help: 'Requests on routes with a retry policy or mirror whose body exceeded the replay buffer (64 KiB): forwarded once, without retries or mirrors',
        labelNames: ['route'] as const,
        registers,
      }),
    );
    this.mirrorCopiesDropped = metric(registry, 'sluice_mirror_copies_dropped_total', (registers) =>
      new client.Counter({
        name: 'sluice_mirror_copies_dropped_total',
        help: 'RequestMirror copies not sent because 1024 copies to that mirror backend were in flight in this process, by route and mirror backend',
        labelNames: ['route', 'backend'] as const,
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

  /** Each per-backend series' code classes seen so far, with their labels. */
  private eachBackendClass(visit: (labels: Record<string, string>, durations: Durations) => void): void {
    for (const series of this.backendSeries.values()) {
      series.byClass.forEach((durations, i) => {
        if (durations !== undefined) visit({ ...series.labels, code_class: CODE_CLASSES[i]! }, durations);
      });
    }
  }

  downstreamRejections(listener: string): DownstreamRejections {
    return new DownstreamRejections(this.rejected, listener);
  }

  /**
   * The metrics of one (route, backend) pair; `forward` (a route forwarding to an IR backend) adds
   * the per-backend series.
   */
  requestMetrics(route: string, backend: string, forward?: { route: Route; backend: Backend }): RequestMetrics {
    let target = this.targetOf(route, backend);
    if (target === undefined) {
      target = new RequestMetrics(this, this.notReplayable, route, backend);
      this.addTarget(target);
    }
    // A listener's local answers (route '') are compiled with the listener, which an incremental
    // compile may keep without asking again: never counted, never dropped.
    if (route !== '') this.taken.push(target);
    target.perBackend = forward === undefined ? null : this.seriesFor(forward.route, forward.backend);
    return target;
  }

  private targetOf(route: string, backend: string): RequestMetrics | undefined {
    for (let target = this.targets.get(route); target !== undefined; target = target.sibling ?? undefined) if (target.backend === backend) return target;
    return undefined;
  }

  /** At the end of its route's chain (the order scraped stays the order made). */
  private addTarget(target: RequestMetrics): void {
    target.sibling = null;
    let last = this.targets.get(target.route);
    if (last === undefined) {
      this.targets.set(target.route, target);
      return;
    }
    while (last.sibling !== null) last = last.sibling;
    last.sibling = target;
  }

  /** One RequestMirror copy dropped (RequestMetrics.recordMirrorDropped), within the series bound. */
  mirrorCopyDropped(route: string, backend: string): void {
    const key = `${route}\u0000${backend}`;
    if (!this.mirrorDropSeries.has(key)) {
      if (this.mirrorDropSeries.size >= BACKEND_SERIES_LIMIT) route = backend = OVERFLOW;
      else this.mirrorDropSeries.add(key);
    }
    this.mirrorCopiesDropped.labels(route, backend).inc();
  }

  /** A route's durations, made at its first request (RequestMetrics.record). */
  durationsOf(route: string): Durations {
    let durations = this.routeDurations.get(route);
    if (durations === undefined) {
      durations = new Durations();
      this.routeDurations.set(route, durations);
    }
    return durations;
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
      series = new BackendSeries(this, labels, key);
      this.backendSeries.set(key, series);
    }
    this.taken.push(series);
    return series;
  }

  /**
   * A compiled route of the live table that the compile under way drops gives back the uses its
   * requestMetrics() took: its targets and the series each had then (dataplane/config/compile.ts).
   */
  release(target: RequestMetrics, series: BackendSeries | null): void {
    this.released.push(target);
    if (series !== null) this.released.push(series);
  }

  /** A retired target or series that recorded again (a request in flight on the previous table): counted again. */
  revive(retired: RequestMetrics | BackendSeries): void {
    retired.retired = false;
    this.revived.push(retired);
    if (retired instanceof BackendSeries) {
      if (!this.backendSeries.has(retired.key)) this.backendSeries.set(retired.key, retired);
      return;
    }
    if (this.targetOf(retired.route, retired.backend) === undefined) this.addTarget(retired);
    if (retired.durations !== null && !this.routeDurations.has(retired.route)) this.routeDurations.set(retired.route, retired.durations);
  }

  versionApplied(version: string): void {
    this.configVersion.reset();
    this.configVersion.labels(version).set(1);
    this.configApplies.labels('applied').inc();
    // Series of routes and backends the applied table no longer has go, so the count stays bounded.
    for (const taken of this.taken) taken.uses++;
    for (const released of this.released) if (--released.uses <= 0) this.drop(released);
    for (const revived of this.revived) if (revived.uses <= 0) this.drop(revived);
    this.taken = [];
    this.released = [];
    this.revived = [];
  }

  private drop(unused: RequestMetrics | BackendSeries): void {
    unused.retired = true;
    if (unused instanceof BackendSeries) {
      if (this.backendSeries.get(unused.key) === unused) this.backendSeries.delete(unused.key);
      return;
    }
    const first = this.targets.get(unused.route);
    if (first === unused) {
      if (unused.sibling !== null) {
        this.targets.set(unused.route, unused.sibling);
        return;
      }
      this.targets.delete(unused.route);
      this.routeDurations.delete(unused.route);
      return;
    }
    for (let before = first; before !== undefined && before.sibling !== null; before = before.sibling) {
      if (before.sibling === unused) {
        before.sibling = unused.sibling;
        return;
      }
    }
  }

  versionRejected(): void {
    this.configApplies.labels('rejected').inc();
    // The live table is the previous one: what the failed compile took counts for nothing.
    this.taken = [];
    this.released = [];
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
