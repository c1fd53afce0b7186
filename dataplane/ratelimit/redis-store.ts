// Global buckets in Redis: one atomic Lua script decides every bucket of a request with
// Redis's own clock (no replica clock skew), taking a token from all of them or from none.
// Decisions are coalesced (redis-batcher.ts): one script call decides every request that queued
// while the previous call of its lane was in flight, each one still all-or-nothing.
//
// A decision never waits on Redis longer than the command timeout: ioredis runs with its
// offline queue off (a command on a connection that is not ready fails at once instead of
// queueing), no per-request retries, and each decision has its own deadline in the batcher. A
// circuit breaker stops paying even that: after 5 failures in a row (round trips, however many
// decisions each held) Redis is skipped for 1 s, then one probe decides whether to use it again
// (on a Cluster, per hash tag). (rate-limiter-flexible is not used: its Redis
// limiters are fixed windows; its insurance and timeout wrappers are what this file does, with a
// token bucket.)
//
// Redis Cluster (`cluster: true`, seed nodes in `url`): every key of one request carries its
// policy's hash tag, so one script call stays in one slot; batches are formed per tag.

import { createRequire } from 'node:module';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { backoffDelay, type Backoff } from '../../ir/backoff.ts';
import type { BackendErrorReason, RateLimitMetrics } from './metrics.ts';
import { RedisBatcher, type PendingDecision } from './redis-batcher.ts';

export { PendingDecision } from './redis-batcher.ts';

export interface RedisSettings {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS; with `cluster`, seed nodes separated by commas. */
  url: string;
  /** Redis Cluster: `url` lists seed nodes, the client follows the cluster's slot map. */
  cluster?: boolean;
  /** Most requests one script call decides (default 256); 1: one call per request, nothing coalesced. */
  batchLimit?: number;
  username?: string;
  password?: string;
  /** PEM CA bundle for `rediss://` (otherwise the system's). */
  tlsCA?: string;
  /** Skip certificate verification (tests, self-signed setups). */
  tlsInsecure?: boolean;
}

/**
 * Decides a batch of requests in turn, each all-or-nothing, with one Redis clock reading.
 * KEYS: every request's buckets, request after request. ARGV: one item per request, its spec:
 * per key `capacity:refill-per-µs:enforced` (1 enforced, 0 shadow), separated by spaces (a spec is
 * the same string for every request of a rule set: parsed once per call).
 * Returns one string of numbers separated by commas, per request: its verdict (1: the enforced
 * group admits, + 2: the shadow group would), then per key: whole tokens left, ms until one whole
 * token. (One bulk string, not nested arrays: the client decodes one value per call, not several
 * per request.) Enforced keys give a token only when the enforced group admits; shadow keys
 * when, in addition, the shadow group would. A later request of the batch sees what an earlier
 * one took. A key that was written expires once it would be full again (+1 s), so idle clients
 * leave nothing behind.
 */
export const BATCH_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local specs = {}
local out = {}
local k = 0
for r = 1, #ARGV do
  local spec = specs[ARGV[r]]
  if spec == nil then
    spec = {}
    for cap, rate, enforced in string.gmatch(ARGV[r], '([^: ]+):([^: ]+):([01])') do
      spec[#spec + 1] = {tonumber(cap), tonumber(rate), enforced == '1'}
    end
    specs[ARGV[r]] = spec
  end
  local n = #spec
  local tokens = {}
  local okEnforced, okShadow = true, true
  for i = 1, n do
    local cap, rate = spec[i][1], spec[i][2]
    local s = redis.call('HMGET', KEYS[k + i], 'tk', 'ts')
    local tk = tonumber(s[1])
    local ts = tonumber(s[2])
    if tk == nil or ts == nil then
      tk = cap
    elseif now > ts then
      tk = math.min(cap, tk + (now - ts) * rate)
    end
    tokens[i] = tk
    if tk < 1 - 1e-9 then
      if spec[i][3] then okEnforced = false else okShadow = false end
    end
  end
  out[#out + 1] = (okEnforced and 1 or 0) + (okShadow and 2 or 0)
  for i = 1, n do
    local cap, rate = spec[i][1], spec[i][2]
    local tk = tokens[i]
    if okEnforced and (spec[i][3] or okShadow) then
      tk = math.max(0, tk - 1)
      redis.call('HSET', KEYS[k + i], 'tk', string.format('%.17g', tk), 'ts', string.format('%d', now))
      redis.call('PEXPIRE', KEYS[k + i], string.format('%d', math.ceil((cap - tk) / rate / 1000) + 1000))
    end
    local whole = math.floor(tk + 1e-9)
    local wait = 0
    if whole < 1 then wait = math.max(1, math.ceil((1 - tk) / rate / 1000 - 1e-9)) end
    out[#out + 1] = string.format('%d', whole)
    out[#out + 1] = string.format('%d', wait)
  end
  k = k + n
end
return table.concat(out, ',')
`;

/** A circuit breaker: one for a single Redis; on a Cluster one per hash tag, so a failed master does not stop the others' slots. */
interface Breaker {
  state: 'closed' | 'open' | 'half-open';
  failures: number;
  openUntil: number;
  probing: boolean;
}
/** Breakers kept for a Cluster's tags; past it, closed ones are dropped (tags follow configurations). */
const MAX_BREAKERS = 4096;

const FAILURES_TO_OPEN = 5;
const OPEN_MS = 1000;
const LOG_EVERY_MS = 10_000;
/** Redis reconnects (ioredis's retryStrategy): from 50 ms, doubling, at most 500 ms apart. */
const REDIS_RECONNECT: Backoff = { initialMs: 50, maxMs: 500 };
/** Cluster: the slot map is re-read this often, and at most this often after a node failed. */
const SLOTS_REFRESH_MS = 1000;
const SLOTS_REFRESH_ON_FAILURE_MS = 100;

interface BatchClient {
  sluiceBatch(numberOfKeys: number, keysThenArgs: string[]): Promise<unknown>;
}
type Client = (Redis | Cluster) & BatchClient;

/**
 * ioredis (45 modules, a few MB of heap) is loaded when the first store is made: a dataplane
 * without global limits never needs it. Synchronous (it is CommonJS), so the store's constructor stays so.
 */
let ioredis: typeof import('ioredis') | null = null;
const loadIoredis = (): typeof import('ioredis') => (ioredis ??= createRequire(import.meta.url)('ioredis') as typeof import('ioredis'));

export class RedisStore {
  readonly timeoutMs: number;
  readonly cluster: boolean;
  private readonly client: Client;
  private readonly batcher: RedisBatcher;
  private readonly metrics: RateLimitMetrics;
  private readonly logger: Logger;
  private readonly breakers = new Map<string, Breaker>();
  private lastLog = -Infinity;
  private suppressed = 0;
  private lastSlotsRefresh = -Infinity;
  private closed = false;

  constructor(settings: RedisSettings, options: { timeoutMs: number; metrics: RateLimitMetrics; logger: Logger }) {
    this.timeoutMs = options.timeoutMs;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.cluster = settings.cluster === true;
    const redisOptions: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // A backstop: each decision has its own deadline in the batcher, which also gives up a
      // round trip none of whose decisions still waits.
      commandTimeout: options.timeoutMs,
      connectTimeout: 1000,
      // Reconnect quickly and forever: the breaker, not the client, decides when to use it.
      retryStrategy: (times) => backoffDelay(times, REDIS_RECONNECT),
      enableReadyCheck: true,
      // No auto-pipelining (measured: +0.5 ms p50, timeouts fired late); the batcher coalesces
      // decisions itself, into one script call per lane and event-loop turn or round trip.
      enableAutoPipelining: false,
      lazyConnect: false,
      ...(settings.username !== undefined ? { username: settings.username } : {}),
      ...(settings.password !== undefined ? { password: settings.password } : {}),
    };
    const tls = settings.url.startsWith('rediss://');
    if (tls) {
      redisOptions.tls = { ...(settings.tlsCA ? { ca: settings.tlsCA } : {}), ...(settings.tlsInsecure ? { rejectUnauthorized: false } : {}) };
    }
    const scripts = { sluiceBatch: { lua: BATCH_SCRIPT } };
    if (this.cluster) {
      // The cluster has its own offline queue and reconnect settings; its nodes take the rest.
      const nodeOptions: NonNullable<ClusterOptions['redisOptions']> & RedisOptions = { ...redisOptions };
      delete nodeOptions.retryStrategy;
      delete nodeOptions.enableOfflineQueue;
      const seeds = clusterSeeds(settings.url);
      if (settings.username === undefined && seeds.username !== undefined) nodeOptions.username = seeds.username;
      if (settings.password === undefined && seeds.password !== undefined) nodeOptions.password = seeds.password;
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue: false,
        enableReadyCheck: true,
        scaleReads: 'master',
        clusterRetryStrategy: (times) => backoffDelay(times, REDIS_RECONNECT),
        // Failover and redirections: no delayed retries (the decision's deadline is short), but
        // the slot map is re-read at once (refreshSlots) and every second.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        maxRedirections: 4,
        slotsRefreshTimeout: 1000,
        slotsRefreshInterval: SLOTS_REFRESH_MS,
        enableAutoPipelining: false,
        scripts,
        redisOptions: nodeOptions,
      };
      const cluster = new (loadIoredis().Cluster)(seeds.nodes, clusterOptions);
      this.client = cluster as Client;
      cluster.on('node error', (err: Error, key: string) => this.logRateLimited(`Redis Cluster node ${key}: ${err.message}`));
      // ioredis connects to a node on its first command, and (no offline queue) refuses the
      // commands sent while it connects: connect every node as soon as it is known instead.
      cluster.on('+node', (node: Redis) => connectNow(node));
      cluster.on('ready', () => cluster.nodes('all').forEach(connectNow));
    } else {
      this.client = new (loadIoredis().Redis)(settings.url, { ...redisOptions, scripts }) as Client;
    }
    this.client.on('error', (err: Error) => this.logRateLimited(`Redis connection: ${err.message}`));
    this.client.on('ready', () => this.logger.info({ redis: redact(settings.url), cluster: this.cluster }, 'rate limiting: Redis connected'));
    this.batcher = new RedisBatcher((numKeys, flat) => this.client.sluiceBatch(numKeys, flat), {
      timeoutMs: options.timeoutMs,
      ...(settings.batchLimit !== undefined ? { batchLimit: settings.batchLimit } : {}),
      events: {
        answered: (lane, ms) => {
          this.metrics.backendDuration.observe(ms / 1000);
          this.succeeded(lane);
        },
        failed: (lane, reason, message, decisions) => this.failed(lane, reason, message, decisions),
      },
    });
  }

  /** Whether to call Redis for a decision on buckets of hash tag `tag` (false: use the failure mode at once). */
  available(tag: string): boolean {
    if (this.closed) return false;
    const b = this.breakers.get(this.cluster ? tag : '');
    if (b === undefined) return true;
    if (b.state === 'open') {
      if (performance.now() < b.openUntil) return false;
      b.state = 'half-open';
    }
    if (b.state === 'half-open') {
      if (b.probing) return false;
      b.probing = true;
    }
    return true;
  }

  /** Connected and usable now (for tests and readiness); on a Cluster, to every master. */
  get ready(): boolean {
    if (this.client.status !== 'ready') return false;
    return !this.cluster || (this.client as Cluster).nodes('master').every((n) => n.status === 'ready');
  }

  /** Decisions queued or in flight (for tests). */
  get pending(): number {
    return this.batcher.pending;
  }

  /**
   * Queues one request's decision (its keys, all with the hash tag `tag`, and spec set); it is
   * told its answer, or its failure (reason: timeout, unavailable, script). Call only after
   * `available()` said yes.
   */
  take(tag: string, decision: PendingDecision): void {
    // One Redis: every request may share a script call. Cluster: only those of one slot may.
    const lane = this.cluster ? tag : '';
    if (this.client.status !== 'ready') {
      this.failed(lane, 'unavailable', `Redis is ${this.client.status}`);
      decision.failed('unavailable');
      return;
    }
    this.batcher.take(lane, decision);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.batcher.close();
    this.client.disconnect();
  }

  private succeeded(lane: string): void {
    const b = this.breakers.get(lane);
    if (b !== undefined) {
      // Only a breaker that failed is kept: the common path allocates nothing.
      this.breakers.delete(lane);
      if (b.state !== 'closed') this.logger.info({ ...(this.cluster ? { tag: lane } : {}) }, 'rate limiting: Redis answers again; global rules use it');
    }
  }

  /** One failure of Redis (a round trip, or a connection not ready) that failed `decisions` decisions. */
  private failed(lane: string, reason: BackendErrorReason, message: string, decisions = 1): void {
    for (let i = 0; i < decisions; i++) this.metrics.backendError(reason); // the metric counts decisions
    let b = this.breakers.get(lane);
    if (b === undefined) {
      if (this.breakers.size >= MAX_BREAKERS) for (const [k, v] of this.breakers) if (v.state === 'closed') this.breakers.delete(k);
      b = { state: 'closed', failures: 0, openUntil: 0, probing: false };
      this.breakers.set(lane, b);
    }
    b.failures += 1;
    b.probing = false;
    if (b.state === 'half-open' || b.failures >= FAILURES_TO_OPEN) {
      b.state = 'open';
      b.openUntil = performance.now() + OPEN_MS;
    }
    if (this.cluster && reason !== 'timeout') this.refreshSlots();
    this.logRateLimited(`Redis ${reason}: ${message}`);
  }

  /** After a node failed (a failover?): re-read the slot map now, not at the next interval. */
  private refreshSlots(): void {
    const now = performance.now();
    if (now - this.lastSlotsRefresh < SLOTS_REFRESH_ON_FAILURE_MS || this.closed) return;
    this.lastSlotsRefresh = now;
    (this.client as Cluster).refreshSlotsCache();
  }

  /** At most one line per 10 s, with how many were held back. */
  private logRateLimited(message: string): void {
    const now = performance.now();
    if (now - this.lastLog < LOG_EVERY_MS) {
      this.suppressed += 1;
      return;
    }
    this.logger.error({ suppressed: this.suppressed }, `rate limiting: ${message}; global rules use their failure mode`);
    this.lastLog = now;
    this.suppressed = 0;
  }
}

function connectNow(node: Redis): void {
  if (node.status === 'wait') node.connect().catch(() => undefined); // failures: the 'node error' event
}

/** Seed nodes of `redis://a:6379,redis://b:6379` (a bare `host:port` item takes the first's scheme); credentials of the first. */
export function clusterSeeds(url: string): { nodes: { host: string; port: number }[]; username?: string; password?: string } {
  const items = url.split(',').map((u) => u.trim()).filter((u) => u !== '');
  const scheme = /^rediss?:\/\//.exec(items[0] ?? '')?.[0] ?? 'redis://';
  let username: string | undefined;
  let password: string | undefined;
  const nodes = items.map((item, i) => {
    const parsed = new URL(/^rediss?:\/\//.test(item) ? item : `${scheme}${item}`);
    if (i === 0) {
      if (parsed.username !== '') username = decodeURIComponent(parsed.username);
      if (parsed.password !== '') password = decodeURIComponent(parsed.password);
    }
    return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: parsed.port === '' ? 6379 : Number(parsed.port) };
  });
  return { nodes, ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) };
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/g, '//***@'); // every seed node's credentials
}
