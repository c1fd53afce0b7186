// Prometheus metrics. Label children are resolved at compile time per (route, backend), and per
// status code on first use, so a request costs two increments, not a label lookup per metric.

import client from 'prom-client';
import type { Registry } from 'prom-client';

type RequestCounter = client.Counter<'route' | 'backend' | 'code'>;
type DurationHistogram = client.Histogram<'route'>;
type RouteCounter = client.Counter<'route'>;

/** Status code recorded when the client went away before the response completed (nginx's 499). */
export const CLIENT_CLOSED_CODE = 499;

/** Counters for one (route, backend) pair; `backend` is '' for local answers. */
export class RequestMetrics {
  private readonly counter: RequestCounter;
  private readonly route: string;
  private readonly backend: string;
  private readonly byCode = new Map<number, client.Counter.Internal>();
  private readonly duration: client.Histogram.Internal<'route'>;
  private readonly notReplayable: RouteCounter;

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
    this.duration.observe((performance.now() - startedAt) / 1000);
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
  /** Shared per (route, backend) across reloads so children are created once. */
  private readonly targets = new Map<string, RequestMetrics>();

  constructor(registry: Registry) {
    this.requests = metric(registry, 'sluice_http_requests_total', (registers) =>
      new client.Counter({ name: 'sluice_http_requests_total', help: 'HTTP requests answered, by route, backend and status code', labelNames: ['route', 'backend', 'code'] as const, registers }),
    );
    this.duration = metric(registry, 'sluice_http_request_duration_seconds', (registers) =>
      new client.Histogram({
        name: 'sluice_http_request_duration_seconds',
        help: 'Time from request arrival to the end of the response, by route',
        labelNames: ['route'] as const,
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
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

  requestMetrics(route: string, backend: string): RequestMetrics {
    const key = `${route}\u0000${backend}`;
    let target = this.targets.get(key);
    if (target === undefined) {
      target = new RequestMetrics(this.requests, this.duration, this.notReplayable, route, backend);
      this.targets.set(key, target);
    }
    return target;
  }

  versionApplied(version: string): void {
    this.configVersion.reset();
    this.configVersion.labels(version).set(1);
    this.configApplies.labels('applied').inc();
  }

  versionRejected(): void {
    this.configApplies.labels('rejected').inc();
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
