// Coalesced global decisions against a real redis-server: many requests share one script call,
// each still decided on its own (exact admissions, all-or-nothing per request), and a Redis that
// stalls (DEBUG SLEEP) with a batch in flight and more queued behind it still answers every
// request within its own timeout, by its policy's failure mode.
import { describe, expect, it } from '@jest/globals';
import type { Registry } from 'prom-client';
import type { RateLimitPolicy } from '../../ir/types.ts';
import type { RateLimitDecision, RouteLimiter } from '../../dataplane/ratelimit/limiter.ts';
import { MAX_QUEUED } from '../../dataplane/ratelimit/redis-batcher.ts';
import { header, metricValue, parseSfList, policy, req, service } from './support/policies.ts';
import { redisConnected, redisForSuite, sleep } from './support/redis-server.ts';

const TIMEOUT_MS = 50;
const client = (id = 'a') => req({ 'x-client-id': id });
const count = (list: RateLimitDecision[], status: number) => list.filter((d) => d.status === status).length;
const perClient = (requests: number, failureMode = 'FailOpen') =>
  policy(`batch-${failureMode.toLowerCase()}`, {
    global: { failureMode, rules: [{ clientSelectors: [{ headers: [{ name: 'x-client-id', type: 'Distinct' }] }], limit: { requests, unit: 'Hour' } }] },
  });

const suite = redisForSuite();
const services = suite.services;

/** Counting tests use the longest timeout: on a loaded box a 50 ms one may fail a few open. */
const COUNTING_TIMEOUT_MS = 1000;

async function globalLimiter(p: RateLimitPolicy, options: { batchLimit?: number; timeoutMs?: number } = {}) {
  const batch = options.batchLimit !== undefined ? { batchLimit: options.batchLimit } : {};
  const s = service({ redis: { url: suite.server().url, ...batch }, redisTimeoutMs: options.timeoutMs ?? COUNTING_TIMEOUT_MS });
  services.push(s.service);
  await redisConnected(s.service);
  return { ...s, limiter: s.service.compile({ [p.name]: p }).limiter(p.name, 'default/route')! };
}

/** Round trips made: observations of the round-trip histogram. */
async function roundTrips(registry: Registry): Promise<number> {
  const metric = registry.getSingleMetric('sluice_ratelimit_backend_duration_seconds');
  const { values } = await metric!.get();
  return values.filter((v) => (v as { metricName?: string }).metricName === 'sluice_ratelimit_backend_duration_seconds_count').reduce((sum, v) => sum + v.value, 0);
}

/** `n` decisions of one client at once: their answers, the longest wait, and how long the last finished after a timer of the command timeout started with them fired (0 if before). */
async function timedBurst(limiter: RouteLimiter, n: number): Promise<{ answers: RateLimitDecision[]; ms: number; late: number }> {
  const started = performance.now();
  let sentinel = Number.POSITIVE_INFINITY;
  const timer = setTimeout(() => (sentinel = performance.now()), TIMEOUT_MS);
  const answers = await Promise.all(Array.from({ length: n }, () => limiter.check(client('stalled'), '127.0.0.1')));
  const ended = performance.now();
  clearTimeout(timer);
  return { answers, ms: ended - started, late: Math.max(0, ended - sentinel) };
}

describe('coalesced global decisions', () => {
  it('150 concurrent requests against a limit of 100: exactly 100 admitted, in far fewer round trips than requests', async () => {
    const { limiter, registry } = await globalLimiter(perClient(100));
    const answers = await Promise.all(Array.from({ length: 150 }, () => limiter.check(client(), '127.0.0.1')));
    expect([count(answers, 200), count(answers, 429)]).toEqual([100, 50]);
    // Each admitted request saw its own bucket state: remaining 99 … 0, once each.
    const remaining = answers.filter((d) => d.allowed).map((d) => parseSfList(header(d, 'ratelimit')!)[0]!.params.r as number);
    expect(remaining.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // Asked in one event-loop turn, they go together (at most a few calls on a loaded box).
    const trips = await roundTrips(registry);
    expect(trips).toBeGreaterThanOrEqual(1);
    expect(trips).toBeLessThanOrEqual(10);
  });

  it('--redis-batch-limit 1: one round trip per request, the same exact answers', async () => {
    const { limiter, registry } = await globalLimiter(perClient(100), { batchLimit: 1 });
    const answers = await Promise.all(Array.from({ length: 150 }, () => limiter.check(client(), '127.0.0.1')));
    expect([count(answers, 200), count(answers, 429)]).toEqual([100, 50]);
    expect(await roundTrips(registry)).toBe(150);
  });

  it('a batch of requests from many clients over two rules: each request all-or-nothing', async () => {
    const p = policy('two', {
      global: {
        rules: [
          { name: 'per-client', clientSelectors: [{ headers: [{ name: 'x-client-id', type: 'Distinct' }] }], limit: { requests: 5, unit: 'Hour' } },
          { name: 'route', limit: { requests: 100, unit: 'Hour' } },
        ],
      },
    });
    const { limiter, registry } = await globalLimiter(p);
    // 8 clients × 10 requests, interleaved: 5 admitted per client, the route bucket pays 40 only.
    const answers = await Promise.all(Array.from({ length: 80 }, async (_, i) => ({ id: i % 8, d: await limiter.check(client(`c${i % 8}`), '127.0.0.1') })));
    for (let c = 0; c < 8; c++) expect(answers.filter((a) => a.id === c && a.d.allowed)).toHaveLength(5);
    expect(await roundTrips(registry)).toBeLessThan(80);
    const next = await limiter.check(client('fresh'), '127.0.0.1');
    expect(parseSfList(header(next, 'ratelimit')!)).toEqual([
      { value: 'per-client', params: { r: 4, t: 0 } },
      { value: 'route', params: { r: 100 - 40 - 1, t: 0 } },
    ]);
  });

  it(`a lane holds at most ${MAX_QUEUED} waiting decisions: beyond, a decision gets its failure mode at once`, async () => {
    const { limiter, registry } = await globalLimiter(perClient(100, 'FailClosed'), { timeoutMs: TIMEOUT_MS });
    const stall = suite.server().command('DEBUG', 'SLEEP', '0.3');
    await sleep(20);
    const n = MAX_QUEUED + 500;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => limiter.check(client(`c${i}`), '127.0.0.1')));
    expect(count(answers, 503)).toBe(n);
    // The first few past the bound fail at once and open the breaker; the rest skip Redis.
    expect(await metricValue(registry, 'sluice_ratelimit_backend_errors_total', { reason: 'unavailable' })).toBeGreaterThanOrEqual(1);
    expect(await metricValue(registry, 'sluice_ratelimit_backend_errors_total', { reason: 'timeout' })).toBe(MAX_QUEUED);
    await stall;
  });

  for (const mode of ['FailOpen', 'FailClosed', 'Local'] as const) {
    it(`Redis stalls (DEBUG SLEEP) with 100 decisions in flight and 100 queued behind them (${mode}): every request answered by its mode within its timeout, exact again after`, async () => {
      const { service: svc, limiter, registry } = await globalLimiter(perClient(100, mode), { timeoutMs: TIMEOUT_MS });
      const stall = suite.server().command('DEBUG', 'SLEEP', '0.5');
      await sleep(20); // Redis is asleep now
      // 100 in one turn (one call, in flight), then 100 more 5 ms later (queued behind it).
      const first = timedBurst(limiter, 100);
      await sleep(5);
      const second = timedBurst(limiter, 100);
      const bursts = [await first, await second];
      const answers = bursts.flatMap((b) => b.answers);
      // None waited past its timeout (measured against a timer of the same length started with
      // them on the same event loop, so a loaded machine cannot fail this).
      for (const b of bursts) {
        expect(b.late).toBeLessThan(10);
        expect(b.ms).toBeLessThan(1000);
      }
      if (mode === 'FailOpen') expect(count(answers, 200)).toBe(200);
      if (mode === 'FailClosed') {
        expect(count(answers, 503)).toBe(200);
        expect(answers.every((d) => header(d, 'retry-after') === '1')).toBe(true);
      }
      if (mode === 'Local') {
        // The fallback bucket of the one replica: exactly the limit, decided in process.
        expect([count(answers, 200), count(answers, 429)]).toEqual([100, 100]);
        expect(await metricValue(registry, 'sluice_ratelimit_decisions_total', { scope: 'fallback', result: 'allowed' })).toBe(100);
      }
      expect(await metricValue(registry, 'sluice_ratelimit_backend_errors_total', { reason: 'timeout' })).toBeGreaterThanOrEqual(1);
      await stall;
      await sleep(1100); // the breaker lets a probe through after 1 s
      await limiter.check(client('probe'), '127.0.0.1');
      expect(svc.redis!.pending).toBe(0);
      // Redis counts exactly again (through a client with the counting timeout: the same buckets).
      const counting = (await globalLimiter(perClient(100, mode))).limiter;
      const after = await Promise.all(Array.from({ length: 150 }, () => counting.check(client('after'), '127.0.0.1')));
      expect([count(after, 200), count(after, 429)]).toEqual([100, 50]);
    });
  }
});
