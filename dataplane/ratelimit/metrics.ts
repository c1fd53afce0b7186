// Rate-limit metrics, registered in the dataplane's registry (reused when already there).
//
//   sluice_ratelimit_decisions_total{policy, rule, scope, result}
//       scope: local | global | fallback (a global rule decided by its Local fallback bucket)
//       result: allowed | limited | shadow_limited | fail_open | fail_closed
//   sluice_ratelimit_backend_errors_total{reason}        timeout | unavailable | script
//   sluice_ratelimit_backend_duration_seconds            Redis round trips that answered
//   sluice_ratelimit_fallback_active{policy, mode}       1 while a policy's global rules run on its failure mode
//   sluice_ratelimit_tracked_keys{scope}                 local | fallback buckets in memory

import client, { type Registry } from 'prom-client';

export type DecisionResult = 'allowed' | 'limited' | 'shadow_limited' | 'fail_open' | 'fail_closed';
export type DecisionScope = 'local' | 'global' | 'fallback';
export type BackendErrorReason = 'timeout' | 'unavailable' | 'script';

const RESULTS: DecisionResult[] = ['allowed', 'limited', 'shadow_limited', 'fail_open', 'fail_closed'];

const SCOPES: DecisionScope[] = ['local', 'global', 'fallback'];
const SCOPE_INDEX: Record<DecisionScope, number> = { local: 0, global: 1, fallback: 2 };
const RESULT_INDEX: Record<DecisionResult, number> = { allowed: 0, limited: 1, shadow_limited: 2, fail_open: 3, fail_closed: 4 };

/**
 * Decision counts of one rule. Plain numbers on the request path; the Prometheus counter
 * catches up when scraped (collect), so a decision costs an array increment, not a label lookup.
 */
export class RuleCounters {
  readonly policy: string;
  readonly rule: string;
  readonly counts = new Array<number>(SCOPES.length * RESULTS.length).fill(0);
  readonly reported = new Array<number>(SCOPES.length * RESULTS.length).fill(0);

  constructor(policy: string, rule: string) {
    this.policy = policy;
    this.rule = rule;
  }

  inc(scope: DecisionScope, result: DecisionResult): void {
    this.counts[SCOPE_INDEX[scope] * RESULTS.length + RESULT_INDEX[result]] += 1;
  }

  /** Adds what was counted since the last scrape to the Prometheus counter. */
  flush(counter: client.Counter<'policy' | 'rule' | 'scope' | 'result'>): void {
    for (let i = 0; i < this.counts.length; i++) {
      const delta = this.counts[i] - this.reported[i];
      if (delta === 0) continue;
      counter.labels(this.policy, this.rule, SCOPES[Math.floor(i / RESULTS.length)], RESULTS[i % RESULTS.length]).inc(delta);
      this.reported[i] = this.counts[i];
    }
  }
}

const SERVICES = new WeakMap<Registry, Set<RateLimitMetrics>>();

export class RateLimitMetrics {
  private readonly decisions: client.Counter<'policy' | 'rule' | 'scope' | 'result'>;
  private readonly errors: client.Counter<'reason'>;
  readonly backendDuration: client.Histogram<never>;
  private readonly fallback: client.Gauge<'policy' | 'mode'>;
  readonly rules = new Map<string, RuleCounters>();
  /** Per policy whose global rules run on their failure mode now: that mode. */
  private readonly onFallback = new Map<string, string>();

  constructor(registry: Registry, trackedKeys: () => { local: number; fallback: number }) {
    // Several services may share a registry (tests, several dataplanes): the counter flushes all.
    let services = SERVICES.get(registry);
    if (services === undefined) {
      services = new Set();
      SERVICES.set(registry, services);
    }
    services.add(this);
    const all = services;
    this.decisions = metric(registry, 'sluice_ratelimit_decisions_total', (registers) =>
      new client.Counter({
        name: 'sluice_ratelimit_decisions_total',
        help: 'Rate-limit decisions by policy, rule, scope (local, global, fallback) and result',
        labelNames: ['policy', 'rule', 'scope', 'result'] as const,
        registers,
        collect() {
          for (const service of all) for (const counters of service.rules.values()) counters.flush(this);
        },
      }),
    );
    this.errors = metric(registry, 'sluice_ratelimit_backend_errors_total', (registers) =>
      new client.Counter({ name: 'sluice_ratelimit_backend_errors_total', help: 'Redis calls that failed, by reason (timeout, unavailable, script)', labelNames: ['reason'] as const, registers }),
    );
    this.backendDuration = metric(registry, 'sluice_ratelimit_backend_duration_seconds', (registers) =>
      new client.Histogram({
        name: 'sluice_ratelimit_backend_duration_seconds',
        help: 'Redis round trip of a global rate-limit decision',
        buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
        registers,
      }),
    );
    this.fallback = metric(registry, 'sluice_ratelimit_fallback_active', (registers) =>
      // Per policy, not per process: on a Redis Cluster each policy's buckets live on one master
      // (its hash tag) with a breaker of their own, so one master down puts only its policies on
      // their failure mode. A series appears with a policy's first decision without Redis.
      new client.Gauge({
        name: 'sluice_ratelimit_fallback_active',
        help: "Whether a policy's global rules run on its failure mode (1: Redis did not answer its last decision) or on Redis again (0), by policy and mode",
        labelNames: ['policy', 'mode'] as const,
        registers,
      }),
    );
    metric(registry, 'sluice_ratelimit_tracked_keys', (registers) =>
      new client.Gauge({
        name: 'sluice_ratelimit_tracked_keys',
        help: 'Token buckets held in memory, by scope (local, fallback)',
        labelNames: ['scope'] as const,
        registers,
        collect() {
          const sizes = trackedKeys();
          this.labels('local').set(sizes.local);
          this.labels('fallback').set(sizes.fallback);
        },
      }),
    );
  }

  rule(policy: string, rule: string): RuleCounters {
    const key = `${policy}\u0000${rule}`;
    let counters = this.rules.get(key);
    if (counters === undefined) {
      counters = new RuleCounters(policy, rule);
      this.rules.set(key, counters);
    }
    return counters;
  }

  backendError(reason: BackendErrorReason): void {
    this.errors.labels(reason).inc();
  }

  /** A decision of `policy`'s global rules was made by its failure mode `mode` (a Map lookup: the failure path only). */
  fallbackActive(policy: string, mode: string): void {
    if (this.onFallback.get(policy) === mode) return;
    this.onFallback.set(policy, mode);
    this.fallback.labels(policy, mode).set(1);
  }

  /** Redis decided for `policy` again (on every answered decision: nothing to do unless a policy is on its fallback). */
  onRedis(policy: string): void {
    if (this.onFallback.size === 0) return;
    const mode = this.onFallback.get(policy);
    if (mode === undefined) return;
    this.onFallback.delete(policy);
    this.fallback.labels(policy, mode).set(0);
  }
}

function metric<T extends client.Metric>(registry: Registry, name: string, create: (registers: Registry[]) => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create([registry]);
}
