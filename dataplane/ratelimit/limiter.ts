// The rate limiter the request path calls. One RateLimitService per dataplane process holds the
// buckets (local LRU, Local-fallback LRU, Redis), so buckets survive configuration reloads: a
// bucket's key carries the rule's content hash, so only a changed rule starts afresh.
//
//   const table = service.compile(http.rateLimits, problems);     // per configuration version
//   const limiter = table.forRoute(route);                        // per route, null = no limit
//   const decision = limiter.check(request, socket.remoteAddress);
//   // a RateLimitDecision when only local buckets were involved, a Promise when Redis was asked
//
// A decision: local rules first (synchronous; a local rejection never reaches Redis), then the
// global rules in one Redis script (coalesced with other requests' while Redis is busy: one
// round trip decides many, each all-or-nothing; see redis-batcher.ts). Everything a request touches is taken together or not at
// all: local tokens taken are given back when the global part says no.

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { RateLimitFailureMode, RateLimitPolicy, RateLimitRule, Route } from '../../ir/types.ts';
import { RateLimitMetrics, type BackendErrorReason, type DecisionScope, type RuleCounters } from './metrics.ts';
import { PendingDecision, RedisStore, type RedisSettings } from './redis-store.ts';
import { compileSelectors, type ClientContext, type CompiledSelectors, type RateLimitRequest } from './selectors.ts';
import { LocalBuckets, report, type BucketItem, type Buckets, type BucketSpec } from './token-bucket.ts';

export type { RateLimitRequest } from './selectors.ts';
export type { RedisSettings } from './redis-store.ts';

export interface RateLimitDecision {
  /** True: serve the request, adding `headers` to its response. False: answer `status` with `headers` and `body`; the upstream is not called. */
  allowed: boolean;
  /** 200 when allowed; 429 (over the limit) or 503 (FailClosed without Redis) otherwise. */
  status: number;
  /** Flat `[name, value, ...]`, lower-case names. */
  headers: readonly string[];
  body: string | null;
}

export interface RateLimitServiceOptions {
  registry: Registry;
  logger: Logger;
  /** Where global buckets live; absent: global rules always run on their failure mode. */
  redis?: RedisSettings | null;
  /** Redis command timeout, ms (default 50): the longest a decision waits for Redis. */
  redisTimeoutMs?: number;
  /** Dataplane replicas: a Local fallback gives each 1/N of a global limit (default 1). */
  replicas?: number;
  /** Local (and, separately, Local-fallback) buckets kept in memory (default 10 000). */
  maxLocalKeys?: number;
  /** Milliseconds, monotonic; tests pass a fake clock. With `buckets` shared across threads: one base for all (sharedClock). */
  now?: () => number;
  /** Bucket stores (worker threads share theirs: SharedBuckets); absent: in-process LRU maps of maxLocalKeys. */
  buckets?: { local: Buckets; fallback: Buckets };
}

export interface RateLimitProblem {
  subject: string;
  message: string;
}

export const DEFAULT_REDIS_TIMEOUT_MS = 50;
export const DEFAULT_MAX_LOCAL_KEYS = 10_000;

const ALLOWED: RateLimitDecision = Object.freeze({ allowed: true, status: 200, headers: Object.freeze([]) as readonly string[], body: null });
const TOO_MANY = 'Too Many Requests\n';
const UNAVAILABLE = 'Service Unavailable\n';

export class RateLimitService {
  readonly local: Buckets;
  readonly fallback: Buckets;
  readonly metrics: RateLimitMetrics;
  readonly logger: Logger;
  readonly now: () => number;
  readonly redisTimeoutMs: number;
  replicas: number;
  private store: RedisStore | null = null;
  private storeSettings: string | null = null;

  constructor(options: RateLimitServiceOptions) {
    this.logger = options.logger;
    this.now = options.now ?? (() => performance.now());
    this.redisTimeoutMs = options.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
    this.replicas = Math.max(1, Math.floor(options.replicas ?? 1));
    const maxKeys = options.maxLocalKeys ?? DEFAULT_MAX_LOCAL_KEYS;
    this.local = options.buckets?.local ?? new LocalBuckets(maxKeys);
    this.fallback = options.buckets?.fallback ?? new LocalBuckets(maxKeys);
    this.metrics = new RateLimitMetrics(options.registry, () => ({ local: this.local.size, fallback: this.fallback.size }));
    this.setRedis(options.redis ?? null);
  }

  get redis(): RedisStore | null {
    return this.store;
  }

  /** Connects to (another) Redis, or none; unchanged settings keep the connection. */
  setRedis(settings: RedisSettings | null): void {
    const key = settings === null ? null : JSON.stringify(settings);
    if (key === this.storeSettings) return;
    const old = this.store;
    this.store = settings === null ? null : new RedisStore(settings, { timeoutMs: this.redisTimeoutMs, metrics: this.metrics, logger: this.logger });
    this.storeSettings = key;
    void old?.close();
  }

  /** Compiles a configuration's policies. A policy that cannot be compiled is reported and not enforced. */
  compile(policies: Record<string, RateLimitPolicy> | undefined, problems: RateLimitProblem[] = []): RateLimitTable {
    const compiled = new Map<string, CompiledPolicy>();
    for (const [name, policy] of Object.entries(policies ?? {})) {
      try {
        const c = compileRules(policy, this.metrics);
        compiled.set(name, c);
        if (c.hasGlobal && this.store === null) {
          problems.push({ subject: name, message: `global rules but no Redis configured (--redis-url): failure mode ${policy.failureMode} applies to every request` });
        }
      } catch (err) {
        problems.push({ subject: name, message: `rate-limit policy not enforced: ${(err as Error).message}` });
      }
    }
    return new RateLimitTable(this, compiled);
  }

  async close(): Promise<void> {
    const store = this.store;
    this.store = null;
    this.storeSettings = null;
    await store?.close();
  }
}

export class RateLimitTable {
  private readonly service: RateLimitService;
  private readonly policies: ReadonlyMap<string, CompiledPolicy>;
  private readonly limiters = new Map<string, RouteLimiter>();

  constructor(service: RateLimitService, policies: ReadonlyMap<string, CompiledPolicy>) {
    this.service = service;
    this.policies = policies;
  }

  get size(): number {
    return this.policies.size;
  }

  /** The limiter for a route, or null when no (usable) policy governs it. */
  forRoute(route: Pick<Route, 'rateLimit'>): RouteLimiter | null {
    const ref = route.rateLimit;
    if (ref === undefined) return null;
    return this.limiter(ref.policy, ref.partition);
  }

  limiter(policyName: string, partition: string): RouteLimiter | null {
    const policy = this.policies.get(policyName);
    if (policy === undefined) return null;
    const key = `${policyName}\n${partition}`;
    let limiter = this.limiters.get(key);
    if (limiter === undefined) {
      limiter = new RouteLimiter(this.service, policy, partition);
      this.limiters.set(key, limiter);
    }
    return limiter;
  }
}

interface CompiledRule {
  ir: RateLimitRule;
  global: boolean;
  enforced: boolean;
  selectors: CompiledSelectors;
  spec: BucketSpec;
  /** Local bucket key prefix: policy, rule hash. */
  localPrefix: string;
  /** Redis key prefix, hash-tagged by policy: all buckets of one request share a cluster slot. */
  redisPrefix: string;
  /** That hash tag: requests of one tag may share a script call on Redis Cluster. */
  redisTag: string;
  /** Its item of the script's spec: `capacity:refill-per-µs:enforced` (BATCH_SCRIPT). */
  redisSpec: string;
  /** `"name"` as an RFC 9651 String. */
  quota: string;
  /** Its RateLimit-Policy item, `"name";q=…;w=…`. */
  policyItem: string;
  counters: RuleCounters;
}

interface CompiledPolicy {
  ir: RateLimitPolicy;
  rules: CompiledRule[];
  hasGlobal: boolean;
  /** Global rules, and the script spec of a request they all apply to (the common case: made once). */
  globalRules: number;
  globalSpec: string;
  failureMode: RateLimitFailureMode;
}

// The IR's bounds (requests, burst ≥ 1; a known unit, scope and failure mode) are the schema's and
// the translator's to enforce; the dataplane trusts the IR's types and does not check them again.
function compileRules(policy: RateLimitPolicy, metrics: RateLimitMetrics): CompiledPolicy {
  const rules = policy.rules.map((rule): CompiledRule => {
    const ratePerMs = rule.requests / (rule.unitSeconds * 1000);
    return {
      ir: rule,
      global: rule.scope === 'Global',
      enforced: !rule.shadowMode,
      selectors: compileSelectors(rule.selectors, policy.clientIP),
      spec: { capacity: rule.burst, ratePerMs },
      localPrefix: `${policy.name}\n${rule.hash}\n`,
      redisPrefix: `sluice:rl:{${policy.name}}:${rule.hash}:`,
      redisTag: policy.name,
      redisSpec: `${rule.burst}:${ratePerMs / 1000}:${rule.shadowMode ? 0 : 1}`,
      quota: sfString(rule.name),
      policyItem: policyItem(sfString(rule.name), { capacity: rule.burst, ratePerMs }),
      counters: metrics.rule(policy.source, rule.name),
    };
  });
  const global = rules.filter((r) => r.global);
  return { ir: policy, rules, hasGlobal: global.length > 0, globalRules: global.length, globalSpec: global.map((r) => r.redisSpec).join(' '), failureMode: policy.failureMode };
}

/** One rule that applies to a request: its bucket and, once decided, its report. */
interface Applied extends BucketItem {
  rule: CompiledRule;
  scope: DecisionScope;
}

/** A distinct value's bucket key (a global rule's: its Redis key), and that key alone as a request's key list. */
interface MemoKey {
  key: string;
  alone: readonly string[];
}

/** Distinct values seen per rule are memoised into their full bucket keys (bounded). */
const MAX_MEMO_KEYS = 4096;

/** A request's global rules on their way to Redis: told the answer by the batcher, it settles the request's promise. */
class GlobalCheck extends PendingDecision {
  readonly limiter: RouteLimiter;
  readonly local: Applied[] | null;
  readonly global: Applied[];
  resolve: (decision: RateLimitDecision) => void = noResolve;

  constructor(limiter: RouteLimiter, local: Applied[] | null, global: Applied[], keys: readonly string[], spec: string) {
    super();
    this.limiter = limiter;
    this.local = local;
    this.global = global;
    this.keys = keys;
    this.spec = spec;
  }

  decided(reply: readonly number[], offset: number): void {
    this.resolve(this.limiter.redisAnswered(this.local, this.global, reply, offset));
  }

  failed(_reason: BackendErrorReason): void {
    this.resolve(this.limiter.failureMode(this.local, this.global, this.limiter.now()));
  }
}
const noResolve = (): void => undefined;

export class RouteLimiter {
  private readonly service: RateLimitService;
  private readonly policy: CompiledPolicy;
  private readonly partition: string;
  /** Per rule: distinct value → bucket key. A reused key string keeps its hash: cheaper Map lookups. */
  private readonly keys: Map<string, MemoKey>[];

  constructor(service: RateLimitService, policy: CompiledPolicy, partition: string) {
    this.service = service;
    this.policy = policy;
    this.partition = partition;
    this.keys = policy.rules.map(() => new Map());
  }

  now(): number {
    return this.service.now();
  }

  /** Synchronous unless a global rule applies and Redis is asked. Never rejects. */
  check(request: RateLimitRequest, remoteAddress: string | undefined): RateLimitDecision | Promise<RateLimitDecision> {
    const ctx: ClientContext = { request, remoteAddress, address: undefined };
    let local: Applied[] | null = null;
    let global: Applied[] | null = null;
    let memoKey: MemoKey | null = null;
    const rules = this.policy.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      const part = rule.selectors.keyFor(ctx);
      if (part === null) continue;
      const memo = this.keys[i];
      let entry = memo.get(part);
      if (entry === undefined) {
        if (memo.size >= MAX_MEMO_KEYS) memo.clear();
        const key = `${rule.global ? rule.redisPrefix : rule.localPrefix}${rule.ir.shared ? '' : this.partition}\n${part}`;
        entry = { key, alone: [key] };
        memo.set(part, entry);
      }
      const applied: Applied = { rule, key: entry.key, spec: rule.spec, enforced: rule.enforced, scope: rule.global ? 'global' : 'local', report: null, taken: false, lacked: false };
      if (rule.global) {
        (global ??= []).push(applied);
        memoKey = entry;
      } else (local ??= []).push(applied);
    }
    if (local === null && global === null) return ALLOWED;
    if (local !== null && !this.service.local.takeAll(local, this.service.now())) {
      return this.finish(local, null, false, null); // Redis is not asked when a local rule says no
    }
    if (global === null) return this.finish(local, null, true, null);
    const store = this.service.redis;
    const tag = global[0]!.rule.redisTag;
    if (store === null || !store.available(tag)) return this.failureMode(local, global, this.service.now());
    let keys: readonly string[];
    let spec: string;
    if (global.length === 1) {
      keys = memoKey!.alone;
      spec = global[0]!.rule.redisSpec;
    } else {
      keys = global.map((g) => g.key);
      spec = global.length === this.policy.globalRules ? this.policy.globalSpec : global.map((g) => g.rule.redisSpec).join(' ');
    }
    const pending = new GlobalCheck(this, local, global, keys, spec);
    const decision = new Promise<RateLimitDecision>((resolve) => (pending.resolve = resolve));
    store.take(tag, pending);
    return decision;
  }

  /** Redis's answer for a request's global rules (`reply` from `offset`: verdict, then per key tokens left and ms to one). */
  redisAnswered(local: Applied[] | null, global: Applied[], reply: readonly number[], offset: number): RateLimitDecision {
    const verdict = reply[offset]!;
    const allowed = (verdict & 1) === 1;
    const shadowAllowed = (verdict & 2) === 2;
    for (let i = 0; i < global.length; i++) {
      const g = global[i];
      g.taken = allowed && (g.rule.enforced || shadowAllowed);
      g.report = { remaining: reply[offset + 1 + 2 * i]!, resetMs: reply[offset + 2 + 2 * i]! };
      g.lacked = !g.taken && g.report.remaining < 1;
    }
    if (!allowed && local !== null) this.refund(this.service.local, local);
    this.service.metrics.onRedis(this.policy.ir.source);
    return this.finish(local, global, allowed, null);
  }

  /** Global rules without Redis: the policy's failure mode decides. */
  failureMode(local: Applied[] | null, global: Applied[], now: number): RateLimitDecision {
    switch (this.policy.failureMode) {
      case 'FailClosed':
        this.service.metrics.fallbackActive(this.policy.ir.source, 'FailClosed');
        if (local !== null) this.refund(this.service.local, local);
        return this.finish(local, global, false, 'fail_closed');
      case 'Local': {
        this.service.metrics.fallbackActive(this.policy.ir.source, 'Local');
        const replicas = this.service.replicas;
        for (const g of global) {
          g.scope = 'fallback';
          // The same bucket as a local rule's key names it (the Redis key carries the rule's prefix for Redis).
          g.key = `fallback:${replicas}\n${g.rule.localPrefix}${g.key.slice(g.rule.redisPrefix.length)}`;
          if (replicas > 1) g.spec = { capacity: Math.max(1, g.rule.spec.capacity / replicas), ratePerMs: g.rule.spec.ratePerMs / replicas };
        }
        const allowed = this.service.fallback.takeAll(global, now);
        if (!allowed && local !== null) this.refund(this.service.local, local);
        return this.finish(local, global, allowed, null);
      }
      default:
        this.service.metrics.fallbackActive(this.policy.ir.source, 'FailOpen');
        return this.finish(local, global, true, 'fail_open');
    }
  }

  private refund(buckets: Buckets, applied: Applied[]): void {
    const now = this.service.now();
    for (const a of applied) {
      if (!a.taken) continue;
      buckets.refund(a.key, a.spec, now);
      a.taken = false;
      a.report = report(buckets.peek(a.key, a.spec, now), a.spec);
    }
  }

  /** Metrics, headers and the answer. `failure`: how global rules were decided without Redis. */
  private finish(local: Applied[] | null, global: Applied[] | null, allowed: boolean, failure: 'fail_open' | 'fail_closed' | null): RateLimitDecision {
    const policy = this.policy.ir;
    let policyHeader = '';
    let stateHeader = '';
    let retryAfterMs = 0;
    let tightest: Applied | null = null;
    for (let g = 0; g < 2; g++) {
      const group = g === 0 ? local : global;
      if (group === null) continue;
      for (let i = 0; i < group.length; i++) {
        const a = group[i];
        const rule = a.rule;
        const r = a.report;
        if (r === null) {
          // Decided by FailOpen / FailClosed: nothing known about the bucket.
          rule.counters.inc(a.scope, failure!);
          continue;
        }
        if (a.lacked) rule.counters.inc(a.scope, rule.enforced ? 'limited' : 'shadow_limited');
        else if (allowed) rule.counters.inc(a.scope, 'allowed');
        if (!rule.enforced) continue; // shadow rules show in metrics only
        if (a.lacked && r.resetMs > retryAfterMs) retryAfterMs = r.resetMs;
        if (policy.responseHeaders.draft10) {
          const item = a.spec === rule.spec ? rule.policyItem : policyItem(rule.quota, a.spec);
          policyHeader = policyHeader === '' ? item : `${policyHeader}, ${item}`;
          const state = `${rule.quota};r=${r.remaining};t=${Math.ceil(r.resetMs / 1000)}`;
          stateHeader = stateHeader === '' ? state : `${stateHeader}, ${state}`;
        }
        if (tightest === null || r.remaining < tightest.report!.remaining) tightest = a;
      }
    }
    if (allowed && policyHeader === '' && tightest === null) return ALLOWED;
    const headers: string[] = [];
    if (policyHeader !== '') headers.push('ratelimit-policy', policyHeader, 'ratelimit', stateHeader);
    if (policy.responseHeaders.legacy && tightest !== null) {
      const spec = tightest.spec;
      const r = tightest.report!;
      const window = windowSeconds(spec);
      headers.push('x-ratelimit-limit', `${Math.floor(spec.capacity)}, ${Math.floor(spec.capacity)};w=${window}`, 'x-ratelimit-remaining', String(r.remaining), 'x-ratelimit-reset', String(Math.ceil(r.resetMs / 1000)));
    }
    if (allowed) return { allowed: true, status: 200, headers, body: null };
    if (failure === 'fail_closed') {
      headers.push('retry-after', '1');
      return { allowed: false, status: 503, headers, body: UNAVAILABLE };
    }
    headers.push('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    return { allowed: false, status: 429, headers, body: TOO_MANY };
  }
}

/** `w`: seconds for an empty bucket to fill (10 per minute: 60). */
function windowSeconds(spec: BucketSpec): number {
  return Math.max(1, Math.ceil(spec.capacity / (spec.ratePerMs * 1000) - 1e-9));
}

function policyItem(quota: string, spec: BucketSpec): string {
  return `${quota};q=${Math.floor(spec.capacity)};w=${windowSeconds(spec)}`;
}

/** An RFC 9651 String: quoted, `"` and `\` escaped (names are printable ASCII by validation). */
function sfString(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, '?')}"`;
}
