// Global buckets in Redis: one atomic Lua script decides every bucket of a request with
// Redis's own clock (no replica clock skew), taking a token from all of them or from none.
//
// A decision never waits on Redis longer than the command timeout: ioredis runs with its
// offline queue off (a command on a connection that is not ready fails at once instead of
// queueing), no per-request retries, and `commandTimeout`. A circuit breaker stops paying even
// that: after 5 failures in a row Redis is skipped for 1 s, then one probe decides whether to
// use it again. (rate-limiter-flexible is not used: its Redis limiters are fixed windows; its
// insurance and timeout wrappers are what this file does, with a token bucket.)

import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { backoffDelay, type Backoff } from '../../ir/backoff.ts';
import type { BackendErrorReason, RateLimitMetrics } from './metrics.ts';

export interface RedisSettings {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. */
  url: string;
  username?: string;
  password?: string;
  /** PEM CA bundle for `rediss://` (otherwise the system's). */
  tlsCA?: string;
  /** Skip certificate verification (tests, self-signed setups). */
  tlsInsecure?: boolean;
}

/**
 * KEYS: the buckets. ARGV: per key, capacity, refill per microsecond, enforced (1) or shadow (0).
 * Returns {enforced group admits, shadow group would, then per key: whole tokens left, ms until
 * one whole token}. Enforced keys give a token only when the enforced group admits; shadow keys
 * when, in addition, the shadow group would. A key that was written expires once it would be
 * full again (+1 s), so idle clients leave nothing behind.
 */
export const TOKEN_BUCKET_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tokens = {}
local okEnforced, okShadow = true, true
for i = 1, n do
  local cap = tonumber(ARGV[3 * i - 2])
  local rate = tonumber(ARGV[3 * i - 1])
  local s = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tk = tonumber(s[1])
  local ts = tonumber(s[2])
  if tk == nil or ts == nil then
    tk = cap
  elseif now > ts then
    tk = math.min(cap, tk + (now - ts) * rate)
  end
  tokens[i] = tk
  if tk < 1 - 1e-9 then
    if ARGV[3 * i] == '1' then okEnforced = false else okShadow = false end
  end
end
local out = {okEnforced and 1 or 0, okShadow and 1 or 0}
for i = 1, n do
  local cap = tonumber(ARGV[3 * i - 2])
  local rate = tonumber(ARGV[3 * i - 1])
  local tk = tokens[i]
  if okEnforced and (ARGV[3 * i] == '1' or okShadow) then
    tk = math.max(0, tk - 1)
    redis.call('HSET', KEYS[i], 'tk', string.format('%.17g', tk), 'ts', string.format('%d', now))
    redis.call('PEXPIRE', KEYS[i], string.format('%d', math.ceil((cap - tk) / rate / 1000) + 1000))
  end
  local whole = math.floor(tk + 1e-9)
  local wait = 0
  if whole < 1 then wait = math.max(1, math.ceil((1 - tk) / rate / 1000 - 1e-9)) end
  out[#out + 1] = whole
  out[#out + 1] = wait
end
return out
`;

type Breaker = 'closed' | 'open' | 'half-open';

const FAILURES_TO_OPEN = 5;
const OPEN_MS = 1000;
const LOG_EVERY_MS = 10_000;
/** Redis reconnects (ioredis's retryStrategy): from 50 ms, doubling, at most 500 ms apart. */
const REDIS_RECONNECT: Backoff = { initialMs: 50, maxMs: 500 };

export class StoreUnavailable extends Error {
  readonly reason: BackendErrorReason;
  constructor(reason: BackendErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

interface TokenBucketClient extends Redis {
  sluiceTokenBucket(numberOfKeys: number, ...args: (string | number)[]): Promise<number[]>;
}

export class RedisStore {
  readonly timeoutMs: number;
  private readonly client: TokenBucketClient;
  private readonly metrics: RateLimitMetrics;
  private readonly logger: Logger;
  private breaker: Breaker = 'closed';
  private failures = 0;
  private openUntil = 0;
  private probing = false;
  private lastLog = -Infinity;
  private suppressed = 0;
  private closed = false;

  constructor(settings: RedisSettings, options: { timeoutMs: number; metrics: RateLimitMetrics; logger: Logger }) {
    this.timeoutMs = options.timeoutMs;
    this.metrics = options.metrics;
    this.logger = options.logger;
    const redisOptions: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: options.timeoutMs,
      connectTimeout: 1000,
      // Reconnect quickly and forever: the breaker, not the client, decides when to use it.
      retryStrategy: (times) => backoffDelay(times, REDIS_RECONNECT),
      enableReadyCheck: true,
      // No auto-pipelining: measured here, a pipelined command's timeout fired up to 50 ms late
      // while Redis stalled (the timeout would no longer bound a decision).
      enableAutoPipelining: false,
      lazyConnect: false,
      ...(settings.username !== undefined ? { username: settings.username } : {}),
      ...(settings.password !== undefined ? { password: settings.password } : {}),
    };
    if (settings.url.startsWith('rediss://')) {
      redisOptions.tls = { ...(settings.tlsCA ? { ca: settings.tlsCA } : {}), ...(settings.tlsInsecure ? { rejectUnauthorized: false } : {}) };
    }
    this.client = new Redis(settings.url, redisOptions) as TokenBucketClient;
    this.client.defineCommand('sluiceTokenBucket', { lua: TOKEN_BUCKET_SCRIPT });
    this.client.on('error', (err: Error) => this.logRateLimited(`Redis connection: ${err.message}`));
    this.client.on('ready', () => this.logger.info({ redis: redact(settings.url) }, 'rate limiting: Redis connected'));
  }

  /** Whether to call Redis for this decision (false: use the failure mode at once). */
  available(): boolean {
    if (this.closed) return false;
    if (this.breaker === 'open') {
      if (performance.now() < this.openUntil) return false;
      this.breaker = 'half-open';
    }
    if (this.breaker === 'half-open') {
      if (this.probing) return false;
      this.probing = true;
    }
    return true;
  }

  /** Connected and usable now (for tests and readiness). */
  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /** Runs the script; rejects with StoreUnavailable. Call only after `available()` said yes. */
  async take(keys: readonly string[], args: readonly (string | number)[]): Promise<number[]> {
    if (this.client.status !== 'ready') {
      this.failed('unavailable', `Redis is ${this.client.status}`);
      throw new StoreUnavailable('unavailable', `Redis is ${this.client.status}`);
    }
    const started = performance.now();
    try {
      const reply = await this.client.sluiceTokenBucket(keys.length, ...keys, ...args);
      this.metrics.backendDuration.observe((performance.now() - started) / 1000);
      this.succeeded();
      return reply;
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      const reason: BackendErrorReason = /timed out/i.test(message) ? 'timeout' : /ERR|script|NOSCRIPT|WRONGTYPE/.test(message) ? 'script' : 'unavailable';
      this.failed(reason, message);
      throw new StoreUnavailable(reason, message);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
  }

  private succeeded(): void {
    this.failures = 0;
    this.probing = false;
    if (this.breaker !== 'closed') {
      this.breaker = 'closed';
      this.logger.info('rate limiting: Redis answers again; global rules use it');
    }
    this.metrics.backendHealthy();
  }

  private failed(reason: BackendErrorReason, message: string): void {
    this.metrics.backendError(reason);
    this.failures += 1;
    this.probing = false;
    if (this.breaker === 'half-open' || this.failures >= FAILURES_TO_OPEN) {
      this.breaker = 'open';
      this.openUntil = performance.now() + OPEN_MS;
    }
    this.logRateLimited(`Redis ${reason}: ${message}`);
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

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
