// Global limits on a real Redis Cluster (3 masters, 3 replicas, created here): exact across
// policies whose keys live on all three masters, and a master killed under load — its replica
// takes over — with FailOpen and with Local: every request answered within its timeout by its
// mode, the other masters' policies still decided by Redis, exact counts again after. And two
// real `sluice run` processes configured with --redis-type cluster sharing one limit.
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startNamedBackend, type NamedBackend } from '../e2e/backends.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import type { RateLimitPolicy } from '../../ir/types.ts';
import type { RateLimitDecision, RateLimitService, RouteLimiter } from '../../dataplane/ratelimit/limiter.ts';
import { header, metricValue, policy, req, service } from './support/policies.ts';
import { appWithGlobalPolicy } from './support/manifests.ts';
import { CLUSTER_NODE_TIMEOUT_MS, RedisCluster } from './support/redis-cluster.ts';
import { redisConnected, sleep } from './support/redis-server.ts';

jest.setTimeout(120_000);

const TIMEOUT_MS = 50;
const LIMIT = 100;
const client = (id: string) => req({ 'x-client-id': id });
const count = (list: RateLimitDecision[], status: number) => list.filter((d) => d.status === status).length;
const perClient = (name: string, failureMode: string) =>
  policy(name, { global: { failureMode, rules: [{ clientSelectors: [{ headers: [{ name: 'x-client-id', type: 'Distinct' }] }], limit: { requests: LIMIT, unit: 'Hour' } }] } });
/** The hash tag of a policy's keys (as the limiter writes them). */
const tagOf = (p: RateLimitPolicy) => `{${p.name}}`;

let cluster: RedisCluster;
const services: RateLimitService[] = [];

beforeAll(async () => {
  cluster = await RedisCluster.start();
});

afterAll(async () => {
  await cluster?.stop();
});

afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.close()));
});

/** Counting tests use the longest timeout: on a loaded box a 50 ms one may fail a few open. */
const COUNTING_TIMEOUT_MS = 1000;

async function clusterService(redisTimeoutMs = TIMEOUT_MS) {
  const s = service({ redis: { url: cluster.url, cluster: true }, redisTimeoutMs });
  services.push(s.service);
  await redisConnected(s.service);
  return s;
}

/** One policy per live master, named `prefix-…` (a name's slot decides its master). */
async function policiesOnEveryMaster(prefix: string, failureMode: string): Promise<{ policy: RateLimitPolicy; master: number }[]> {
  const masters = (await cluster.nodes()).filter((n) => n.master && !n.failed).map((n) => n.port);
  const chosen = new Map<number, RateLimitPolicy>();
  for (let i = 0; chosen.size < masters.length && i < 200; i++) {
    const p = perClient(`${prefix}-${i}`, failureMode);
    const master = await cluster.masterOf(tagOf(p));
    if (!chosen.has(master)) chosen.set(master, p);
  }
  expect(chosen.size).toBe(3);
  return [...chosen].map(([master, p]) => ({ policy: p, master }));
}

/** `n` requests of one client at once: how many were admitted. */
async function burst(limiter: RouteLimiter, id: string, n: number): Promise<RateLimitDecision[]> {
  return Promise.all(Array.from({ length: n }, () => limiter.check(client(id), '127.0.0.1')));
}

describe('Redis Cluster', () => {
  it(`limits are exact on every master: 150 concurrent requests per policy and client against ${LIMIT} admit ${LIMIT}`, async () => {
    const { service: svc } = await clusterService(COUNTING_TIMEOUT_MS);
    const policies = [...(await policiesOnEveryMaster('exact-a', 'FailOpen')), ...(await policiesOnEveryMaster('exact-b', 'FailOpen'))];
    const table = svc.compile(Object.fromEntries(policies.map(({ policy: p }) => [p.name, p])));
    const limiters = policies.map(({ policy: p }) => table.limiter(p.name, 'default/route')!);
    // Every policy, several clients, all at once: batches per slot, on three masters.
    const results = await Promise.all(limiters.flatMap((l, i) => ['x', 'y', 'z'].map((c) => burst(l, `${c}${i}`, 150))));
    for (const answers of results) {
      expect([count(answers, 200), count(answers, 429)]).toEqual([LIMIT, 50]);
      expect(answers.every((d) => header(d, 'ratelimit') !== undefined)).toBe(true); // decided by Redis
    }
    // The buckets live on the three masters.
    for (const master of new Set(policies.map((p) => p.master))) expect(Number((await cluster.server(master).command('DBSIZE')).slice(1))).toBeGreaterThan(0);
    expect(new Set(policies.map((p) => p.master)).size).toBe(3);
  });

  for (const mode of ['FailOpen', 'Local'] as const) {
    it(`a master killed under load (${mode}): every request answered by the mode within its timeout, other masters unaffected, exact again after the failover`, async () => {
      const { service: svc, registry } = await clusterService();
      // A victim master that has a live replica to take over.
      const nodes = await cluster.nodes();
      const policies = await policiesOnEveryMaster(`failover-${mode.toLowerCase()}`, mode);
      const victim = policies.find(({ master }) => {
        const id = nodes.find((n) => n.port === master)!.id;
        return nodes.some((n) => n.masterId === id && !n.failed);
      })!;
      expect(victim).toBeDefined();
      const table = svc.compile(Object.fromEntries(policies.map(({ policy: p }) => [p.name, p])));
      const limiters = policies.map(({ policy: p }) => ({ limiter: table.limiter(p.name, 'default/route')!, victim: p === victim.policy }));

      // 100 rounds per second, one request per policy each (20 clients in turn: far below the
      // limit), while the victim master is killed 300 ms in; until its replica serves its slots.
      interface Answer {
        victim: boolean;
        decision: RateLimitDecision;
        late: number;
        at: number;
      }
      const answers: Promise<Answer>[] = [];
      const started = performance.now();
      let killedAt = Number.POSITIVE_INFINITY;
      let recoveredAt = Number.POSITIVE_INFINITY;
      let probes = 0;
      const victimGauge: number[] = [];
      const othersAtZero = new Set<string>();
      const recovery = (async () => {
        await sleep(300);
        killedAt = performance.now() - started;
        await cluster.server(victim.master).kill();
        // Within the outage (no replica takes over before the node timeout): the fallback gauge is
        // per policy — the victim's on, the other masters' policies on Redis (a sample at 0 each).
        await sleep(300);
        for (let i = 0; i < 5; i++) {
          for (const { policy: p } of policies) {
            const on = await metricValue(registry, 'sluice_ratelimit_fallback_active', { policy: p.source, mode });
            if (p === victim.policy) victimGauge.push(on);
            else if (on === 0) othersAtZero.add(p.source);
          }
          await sleep(20);
        }
        await cluster.waitHealthy();
        // The client re-reads the slot map (on failure, and every second): Redis decides again.
        const limiter = limiters.find((l) => l.victim)!.limiter;
        const deadline = Date.now() + 15_000;
        for (;;) {
          await sleep(100); // also lets the breaker's probe through
          const d = await limiter.check(client('probe'), '127.0.0.1');
          probes++;
          if (header(d, 'ratelimit') !== undefined) break;
          if (Date.now() > deadline) throw new Error('the victim policy is not decided by Redis after the failover');
        }
        recoveredAt = performance.now() - started;
      })();
      let round = 0;
      while (recoveredAt === Number.POSITIVE_INFINITY && performance.now() - started < 30_000) {
        const wait = started + round * 10 - performance.now();
        if (wait > 0) await sleep(wait);
        const at = performance.now() - started;
        for (const { limiter, victim: v } of limiters) {
          let sentinel = Number.POSITIVE_INFINITY;
          const timer = setTimeout(() => (sentinel = performance.now()), TIMEOUT_MS);
          answers.push(
            Promise.resolve(limiter.check(client(`load-${round % 20}`), '127.0.0.1')).then((decision) => {
              clearTimeout(timer);
              return { victim: v, decision, late: Math.max(0, performance.now() - sentinel), at };
            }),
          );
        }
        round++;
      }
      await recovery;
      const all = await Promise.all(answers);
      process.stdout.write(`${mode}: master killed at ${killedAt.toFixed(0)} ms, Redis decides the victim's slots again at ${recoveredAt.toFixed(0)} ms; ${all.length} decisions\n`);

      // Every request answered, none waited past its timeout, all admitted (far below the limit).
      expect(all.filter((a) => a.late >= 10)).toEqual([]);
      expect(all.every((a) => a.decision.status === 200)).toBe(true);
      // The victim's requests during the outage were decided by the failure mode, and only they:
      // the other masters' policies were decided by Redis throughout.
      const victims = all.filter((a) => a.victim);
      const byMode = mode === 'Local' ? await metricValue(registry, 'sluice_ratelimit_decisions_total', { scope: 'fallback' }) : await metricValue(registry, 'sluice_ratelimit_decisions_total', { result: 'fail_open' });
      expect(byMode).toBeGreaterThan(0);
      expect(byMode).toBeLessThanOrEqual(victims.length + probes);
      // No replica can take over before the node timeout: the first 900 ms after the kill are an outage.
      const outage = victims.filter((a) => a.at > killedAt + 100 && a.at < killedAt + CLUSTER_NODE_TIMEOUT_MS - 100);
      expect(outage.length).toBeGreaterThan(0);
      if (mode === 'FailOpen') expect(outage.filter((a) => header(a.decision, 'ratelimit') !== undefined)).toHaveLength(0);
      // (With one breaker for all, about half of them failed open.) A few may time out on a
      // loaded box: 50 ms is short.
      const others = all.filter((a) => !a.victim);
      expect(others.filter((a) => header(a.decision, 'ratelimit') === undefined).length).toBeLessThanOrEqual(others.length * 0.02);
      expect(victimGauge).toEqual([1, 1, 1, 1, 1]);
      expect([...othersAtZero].sort()).toEqual(policies.filter((p) => p !== victim).map((p) => p.policy.source).sort());
      // Once Redis answers the victim's policy again its gauge is back to 0 (decisions after every
      // earlier one settled: some timed out after the probe's answer; under Local a decision has
      // RateLimit headers either way, so the gauge is polled).
      const victimLimiter = limiters.find((l) => l.victim)!.limiter;
      let gauge = 1;
      for (let i = 0; i < 50 && gauge !== 0; i++) {
        await victimLimiter.check(client('probe'), '127.0.0.1');
        gauge = await metricValue(registry, 'sluice_ratelimit_fallback_active', { policy: victim.policy.source });
        if (gauge !== 0) await sleep(100);
      }
      expect(gauge).toBe(0);

      // Exact again after the failover, on every master (the promoted replica included): the
      // same buckets, counted through a second client with the counting timeout.
      const counting = (await clusterService(COUNTING_TIMEOUT_MS)).service.compile(Object.fromEntries(policies.map(({ policy: p }) => [p.name, p])));
      const after = await Promise.all(policies.map(({ policy: p }) => burst(counting.limiter(p.name, 'default/route')!, 'after', 150)));
      for (const list of after) {
        expect([count(list, 200), count(list, 429)]).toEqual([LIMIT, 50]);
        expect(list.every((d) => header(d, 'ratelimit') !== undefined)).toBe(true);
      }
    });
  }
});

describe('sluice run --redis-type cluster', () => {
  let dir: string;
  let backend: NamedBackend;
  const replicas: { sluice: SluiceProcess; port: number }[] = [];

  beforeAll(async () => {
    backend = await startNamedBackend('app');
    dir = mkdtempSync(join(tmpdir(), 'sluice-rate-limit-cluster-'));
    writeFileSync(
      join(dir, 'all.yaml'),
      appWithGlobalPolicy(backend, `    - clientSelectors: [{headers: [{name: x-client-id, type: Distinct}]}]
      limit: {requests: ${LIMIT}, unit: Hour}
`),
    );
    // Seeds: two of the six nodes (the client learns the rest from the slot map). The longest
    // timeout: this counts admissions on a loaded box, where a 50 ms one may fail open a few.
    const seeds = cluster.servers.slice(0, 2).map((s) => `redis://127.0.0.1:${s.port}`).join(',');
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      replicas.push({ sluice: await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80), '--redis-type', 'cluster', '--redis-url', seeds, '--redis-timeout', '1000']), port });
    }
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.sluice.stop()));
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`two replicas share one bucket per client on the cluster: 150 concurrent requests (75 each) admit exactly ${LIMIT}`, async () => {
    const get = async (port: number, id: string) => {
      const res = await request(`http://127.0.0.1:${port}/`, { headers: { 'x-client-id': id } });
      await res.body.dump();
      return { status: res.statusCode, state: res.headers['ratelimit'] };
    };
    // Both serve the policy from Redis (RateLimit header) before the count starts.
    for (const { port } of replicas) {
      const deadline = Date.now() + 10_000;
      while ((await get(port, `warm-${port}`)).state === undefined) {
        if (Date.now() > deadline) throw new Error('the policy is not served from the cluster');
        await sleep(100);
      }
    }
    for (const id of ['alice', 'bob', 'carol']) {
      const replies = await Promise.all(Array.from({ length: 150 }, (_, i) => get(replicas[i % 2]!.port, id)));
      expect([replies.filter((r) => r.status === 200).length, replies.filter((r) => r.status === 429).length]).toEqual([LIMIT, 50]);
    }
  });
});
