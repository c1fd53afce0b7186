// Local token buckets, decided in process on a fake clock: the research note's scenarios 1–9,
// 17 and 18 (rate-limit-canary.md §12) with its numbers.
import { describe, expect, it } from '@jest/globals';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RateLimitDecision, RouteLimiter } from '../../dataplane/ratelimit/limiter.ts';
import { FakeClock, header, metricValue, parseSfList, policy, req, service, tutorialRule } from './support/policies.ts';

function decide(limiter: RouteLimiter, request = req({ 'x-client-id': 'a' }), address = '127.0.0.1'): RateLimitDecision {
  const d = limiter.check(request, address);
  if (d instanceof Promise) throw new Error('a local decision must be synchronous');
  return d;
}

function statuses(limiter: RouteLimiter, n: number, request = req({ 'x-client-id': 'a' }), address = '127.0.0.1'): number[] {
  return Array.from({ length: n }, () => decide(limiter, request, address).status);
}

const count = (list: number[], status: number) => list.filter((s) => s === status).length;

function tutorial(clock: FakeClock, extra: Record<string, unknown> = {}) {
  const s = service({ now: clock.now });
  const p = policy('tutorial', { local: { rules: [tutorialRule(extra)] } });
  const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'default/route')!;
  return { ...s, limiter, policy: p };
}

describe('local token bucket', () => {
  it('1: burst then reject — exactly 10 × 200 and 10 × 429, with the draft-10 headers', () => {
    const clock = new FakeClock();
    const { limiter } = tutorial(clock);
    const answers = Array.from({ length: 20 }, () => decide(limiter));
    expect(answers.map((d) => d.status)).toEqual([...Array(10).fill(200), ...Array(10).fill(429)]);
    // 200s count down r = 9 … 0 in order of admission.
    expect(answers.slice(0, 10).map((d) => parseSfList(header(d, 'ratelimit')!)[0]!.params.r)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    for (const d of answers.slice(10)) {
      expect(d.allowed).toBe(false);
      expect(header(d, 'retry-after')).toBe('6');
      expect(header(d, 'ratelimit')).toBe('"tutorial";r=0;t=6');
      expect(header(d, 'ratelimit-policy')).toBe('"tutorial";q=10;w=60');
      expect(parseSfList(header(d, 'ratelimit')!)).toEqual([{ value: 'tutorial', params: { r: 0, t: 6 } }]);
      expect(parseSfList(header(d, 'ratelimit-policy')!)).toEqual([{ value: 'tutorial', params: { q: 10, w: 60 } }]);
      expect(d.body).toBe('Too Many Requests\n');
    }
    expect(header(answers[0]!, 'retry-after')).toBeUndefined();
  });

  it('2: continuous refill — one token every 6 s, none before', () => {
    const clock = new FakeClock();
    const { limiter } = tutorial(clock);
    expect(count(statuses(limiter, 20), 200)).toBe(10);
    clock.advance(5999);
    expect(decide(limiter).status).toBe(429);
    clock.advance(1); // t = 6.000 s
    expect(statuses(limiter, 2)).toEqual([200, 429]);
    clock.advance(60_000); // t = 66 s, 60 s after that admission
    expect(statuses(limiter, 11)).toEqual([...Array(10).fill(200), 429]);
  });

  it('2b: Retry-After shrinks as the bucket refills (5 once a second has passed)', () => {
    const clock = new FakeClock();
    const { limiter } = tutorial(clock);
    statuses(limiter, 10);
    clock.advance(1000);
    expect(header(decide(limiter), 'retry-after')).toBe('5');
  });

  it('3: cap — after 10 idle minutes, 50 requests get exactly 10 × 200', () => {
    const clock = new FakeClock();
    const { limiter } = tutorial(clock);
    statuses(limiter, 3);
    clock.advance(10 * 60_000);
    expect(count(statuses(limiter, 50), 200)).toBe(10);
  });

  it('4: hammering does not starve — 100 rps for 20 s against 1/s, capacity 1, admits 20 ± 1', () => {
    const clock = new FakeClock();
    const s = service({ now: clock.now });
    const p = policy('slow', { local: { rules: [tutorialRule({ limit: { requests: 1, unit: 'Second' } })] } });
    const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'r')!;
    let admitted = 0;
    for (let i = 0; i < 2000; i++) {
      if (decide(limiter).allowed) admitted++;
      clock.advance(10);
    }
    expect(Math.abs(admitted - 20)).toBeLessThanOrEqual(1);
  });

  it('5: key isolation, and requests without the header are not governed', () => {
    const clock = new FakeClock();
    const { limiter } = tutorial(clock);
    expect(count(statuses(limiter, 15, req({ 'x-client-id': 'A' })), 429)).toBe(5);
    expect(count(statuses(limiter, 10, req({ 'x-client-id': 'B' })), 200)).toBe(10);
    const ungoverned = Array.from({ length: 30 }, () => decide(limiter, req()));
    expect(ungoverned.every((d) => d.status === 200 && d.headers.length === 0)).toBe(true);
  });

  it('a repeated header is keyed on its comma-joined value, as the router matches it', () => {
    const clock = new FakeClock();
    const { limiter } = tutorial(clock);
    const twice = (second: string) => ({ method: 'GET', path: '/', headers: ['x-client-id', 'a', 'x-client-id', second] });
    expect(count(statuses(limiter, 11, twice('b')), 429)).toBe(1);
    expect(count(statuses(limiter, 10, twice('c')), 200)).toBe(10);
    expect(count(statuses(limiter, 10, req({ 'x-client-id': 'a' })), 200)).toBe(10);
  });

  it('6: source IP Distinct inside a CIDR; a spoofed X-Forwarded-For from an untrusted peer changes nothing', () => {
    const clock = new FakeClock();
    const s = service({ now: clock.now });
    const p = policy('by-ip', {
      local: { rules: [{ clientSelectors: [{ sourceCIDR: { type: 'Distinct', value: '10.0.0.0/8' } }], limit: { requests: 5, unit: 'Second' } }] },
      clientIPDetection: { xForwardedFor: { numTrustedHops: 1, trustedCIDRs: ['127.0.0.1/32'] } },
    });
    const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'r')!;
    const one = statuses(limiter, 10, req(), '10.0.0.1');
    const two = statuses(limiter, 10, req(), '::ffff:10.0.0.2');
    const outside = statuses(limiter, 10, req(), '192.168.1.1');
    expect([count(one, 200), count(one, 429)]).toEqual([5, 5]);
    expect([count(two, 200), count(two, 429)]).toEqual([5, 5]);
    expect(count(outside, 200)).toBe(10);
    // 10.0.0.1 is exhausted; spoofing X-Forwarded-For from it (not a trusted proxy) does not help.
    expect(decide(limiter, req({ 'x-forwarded-for': '10.9.9.9' }), '10.0.0.1').status).toBe(429);
    // Through the trusted proxy, the forwarded address is the client: a fresh bucket.
    expect(count(statuses(limiter, 10, req({ 'x-forwarded-for': '1.1.1.1, 10.9.9.9' }), '127.0.0.1'), 200)).toBe(5);
    // Only one hop is trusted: the entry before it is not believed.
    expect(decide(limiter, req({ 'x-forwarded-for': '10.9.9.9, 192.168.0.1' }), '127.0.0.1').status).toBe(200);
  });

  it('7: a bucket per route, or one for all with shared: true', () => {
    for (const [shared, expected] of [[false, 20], [true, 10]] as const) {
      const clock = new FakeClock();
      const s = service({ now: clock.now });
      const p = policy('gw', { local: { rules: [{ clientSelectors: [], limit: { requests: 10, unit: 'Minute' }, shared }] } });
      const table = s.service.compile({ [p.name]: p });
      const a = statuses(table.limiter(p.name, 'default/a')!, 15);
      const b = statuses(table.limiter(p.name, 'default/b')!, 15);
      expect(count(a, 200) + count(b, 200)).toBe(expected);
    }
  });

  it('8: several rules, no partial consumption — the route-wide bucket keeps exactly 95', () => {
    const clock = new FakeClock();
    const s = service({ now: clock.now });
    const p = policy('two', {
      local: {
        rules: [
          { name: 'per-client', clientSelectors: [{ headers: [{ name: 'x-client-id', type: 'Distinct' }] }], limit: { requests: 5, unit: 'Minute' } },
          { name: 'route', limit: { requests: 100, unit: 'Minute' } },
        ],
      },
    });
    const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'r')!;
    const answers = Array.from({ length: 10 }, () => decide(limiter));
    expect(answers.map((d) => d.status)).toEqual([...Array(5).fill(200), ...Array(5).fill(429)]);
    const last = parseSfList(header(answers[9]!, 'ratelimit')!);
    expect(last).toEqual([
      { value: 'per-client', params: { r: 0, t: 12 } },
      { value: 'route', params: { r: 95, t: 0 } },
    ]);
    expect(header(answers[9]!, 'ratelimit-policy')).toBe('"per-client";q=5;w=60, "route";q=100;w=60');
    expect(header(answers[9]!, 'retry-after')).toBe('12');
  });

  it('9: shadow mode — 20 × 200, shadow_limited = 10, no Retry-After', async () => {
    const clock = new FakeClock();
    const { limiter, registry } = tutorial(clock, { shadowMode: true });
    const answers = Array.from({ length: 20 }, () => decide(limiter));
    expect(answers.every((d) => d.status === 200 && header(d, 'retry-after') === undefined)).toBe(true);
    expect(await metricValue(registry, 'sluice_ratelimit_decisions_total', { result: 'shadow_limited' })).toBe(10);
    expect(await metricValue(registry, 'sluice_ratelimit_decisions_total', { result: 'allowed', policy: 'default/tutorial', rule: 'tutorial', scope: 'local' })).toBe(10);
  });

  it('metrics: decisions by policy, rule, scope and result', async () => {
    const clock = new FakeClock();
    const { limiter, registry } = tutorial(clock);
    statuses(limiter, 12);
    expect(await metricValue(registry, 'sluice_ratelimit_decisions_total', { policy: 'default/tutorial', rule: 'tutorial', scope: 'local', result: 'allowed' })).toBe(10);
    expect(await metricValue(registry, 'sluice_ratelimit_decisions_total', { result: 'limited' })).toBe(2);
    expect(await metricValue(registry, 'sluice_ratelimit_tracked_keys', { scope: 'local' })).toBe(1);
  });

  it('selectors: header Exact/RegularExpression with invert, method and path all must hold', () => {
    const clock = new FakeClock();
    const s = service({ now: clock.now });
    const p = policy('sel', {
      local: {
        rules: [
          {
            clientSelectors: [
              { headers: [{ name: 'x-plan', type: 'Exact', value: 'free' }, { name: 'x-agent', type: 'RegularExpression', value: 'bot.*', invert: true }] },
              { methods: ['POST'], path: { type: 'PathPrefix', value: '/api/' } },
            ],
            limit: { requests: 1, unit: 'Hour' },
          },
        ],
      },
    });
    const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'r')!;
    const governed = req({ 'x-plan': 'free' }, 'POST', '/api/orders');
    expect(statuses(limiter, 2, governed)).toEqual([200, 429]);
    expect(decide(limiter, req({ 'x-plan': 'paid' }, 'POST', '/api/orders')).status).toBe(200);
    expect(decide(limiter, req({ 'x-plan': 'free', 'x-agent': 'botnet' }, 'POST', '/api/orders')).status).toBe(200);
    expect(decide(limiter, req({ 'x-plan': 'free' }, 'GET', '/api/orders')).status).toBe(200);
    expect(decide(limiter, req({ 'x-plan': 'free' }, 'POST', '/apix')).status).toBe(200);
    expect(decide(limiter, req({ 'x-plan': 'free' }, 'POST', '/api')).status).toBe(429);
  });

  it('legacy X-RateLimit headers when asked for', () => {
    const clock = new FakeClock();
    const s = service({ now: clock.now });
    const p = policy('legacy', { local: { rules: [tutorialRule()] }, responseHeaders: { draft: 'None', legacyXRateLimit: true } });
    const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'r')!;
    const first = decide(limiter);
    expect(first.headers).toEqual(['x-ratelimit-limit', '10, 10;w=60', 'x-ratelimit-remaining', '9', 'x-ratelimit-reset', '0']);
    statuses(limiter, 9);
    const denied = decide(limiter);
    expect(header(denied, 'x-ratelimit-reset')).toBe('6');
    expect(header(denied, 'ratelimit')).toBeUndefined();
  });

  it('17: a changed rule starts with full buckets; a deleted policy limits nothing', () => {
    const clock = new FakeClock();
    const s = service({ now: clock.now });
    const ten = policy('p', { local: { rules: [tutorialRule()] } });
    expect(count(statuses(s.service.compile({ [ten.name]: ten }).limiter(ten.name, 'r')!, 15), 200)).toBe(10);
    // Reloading the same rule keeps its (empty) bucket.
    expect(decide(s.service.compile({ [ten.name]: ten }).limiter(ten.name, 'r')!).status).toBe(429);
    const twenty = policy('p', { local: { rules: [tutorialRule({ limit: { requests: 20, unit: 'Minute' } })] } });
    expect(statuses(s.service.compile({ [twenty.name]: twenty }).limiter(twenty.name, 'r')!, 21)).toEqual([...Array(20).fill(200), 429]);
    expect(s.service.compile({}).forRoute({ rateLimit: { policy: twenty.name, partition: 'r' } })).toBeNull();
  });

  it('18: 100 000 distinct clients stay within the LRU bound, and a returning client is never denied wrongly', async () => {
    const clock = new FakeClock();
    const s = service({ now: clock.now, maxLocalKeys: 10_000 });
    const p = policy('many', { local: { rules: [tutorialRule()] } });
    const limiter = s.service.compile({ [p.name]: p }).limiter(p.name, 'r')!;
    decide(limiter, req({ 'x-client-id': 'returning' }));
    // A real collection before each reading, so the growth measured is live memory, not garbage.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    let denied = 0;
    for (let i = 0; i < 100_000; i++) {
      if (!decide(limiter, req({ 'x-client-id': `client-${i}` })).allowed) denied++;
      clock.advance(1);
    }
    expect(denied).toBe(0);
    expect(s.service.local.size).toBeLessThanOrEqual(10_000);
    expect(await metricValue(s.registry, 'sluice_ratelimit_tracked_keys', { scope: 'local' })).toBeLessThanOrEqual(10_000);
    gc();
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(20 * 1024 * 1024);
    // Evicted long ago (100 s idle ≥ capacity / rate = 60 s): its bucket would be full anyway.
    expect(count(statuses(limiter, 10, req({ 'x-client-id': 'returning' })), 200)).toBe(10);
  });

  it('a route without a policy, or a request no rule applies to, costs nothing', () => {
    const clock = new FakeClock();
    const { service: svc } = service({ now: clock.now });
    const table = svc.compile(undefined);
    expect(table.forRoute({})).toBeNull();
    expect(table.size).toBe(0);
  });
});
