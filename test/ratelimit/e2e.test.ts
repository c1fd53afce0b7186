// Rate limiting end to end through a real `sluice run`: the examples/rate-limit tutorial case
// (10 per 60 s per x-client-id), the Ingress annotation, per-route vs shared buckets, a policy
// update and deletion (scenario 17), and FailClosed with Redis down (scenario 15: the upstream
// sees nothing).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startNamedBackend, serviceYaml, GATEWAY_YAML, type NamedBackend } from '../e2e/backends.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { freePortOffset } from '../support/ports.ts';
import { expectBucketAdmitted, parseSfList } from './support/policies.ts';
import { appWithGlobalPolicy } from './support/manifests.ts';
import { RedisServer, sleep } from './support/redis-server.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const EXAMPLE = join(ROOT, 'examples', 'rate-limit');


interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

async function get(port: number, path: string, headers: Record<string, string> | string[] = {}): Promise<Reply> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { headers });
  const body = await res.body.text();
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return { status: res.statusCode, headers: flat, body };
}

const statuses = (replies: Reply[]) => replies.map((r) => r.status);
const count = (replies: Reply[], status: number) => replies.filter((r) => r.status === status).length;

async function until<T>(probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value) || Date.now() > deadline) return value;
    await sleep(50);
  }
}

function policyStatus(objects: any[], name: string): any[] {
  return objects.find((o) => o.kind === 'RateLimitPolicy' && o.metadata.name === name)?.status?.ancestors ?? [];
}

describe('the rate-limit example, standalone', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-rate-limit-'));
    for (const f of readdirSync(EXAMPLE).filter((f) => f.endsWith('.yaml'))) cpSync(join(EXAMPLE, f), join(dir, f));
    // A route selected only by a repeated x-client-id (the joined value has a comma), under the same Gateway policy.
    writeFileSync(join(dir, 'joined-route.yaml'), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: joined, namespace: default}
spec:
  parentRefs: [{name: rate-limit}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /joined}, headers: [{name: x-client-id, type: RegularExpression, value: 'a,.*'}]}]
    filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-route, value: joined}]}}]
    backendRefs: [{name: echo, port: 80}]
`);
    port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--demo-backends', '--listener-port-offset', String(port - 8080)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('1: 20 concurrent requests from one client — exactly 10 × 200 and 10 × 429', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => get(port, '/', { 'x-client-id': 'tutorial' })));
    expect(count(replies, 200)).toBe(10);
    expect(count(replies, 429)).toBe(10);
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(['5', '6']).toContain(r.headers['retry-after']);
      expect(parseSfList(r.headers['ratelimit']!)).toEqual([{ value: 'per-client', params: { r: 0, t: expect.any(Number) } }]);
      expect(parseSfList(r.headers['ratelimit-policy']!)).toEqual([{ value: 'per-client', params: { q: 10, w: 60 } }]);
    }
    const remaining = replies.filter((x) => x.status === 200).map((x) => parseSfList(x.headers['ratelimit']!)[0]!.params.r);
    expect([...remaining].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('5: another client starts afresh; requests without x-client-id are not limited', async () => {
    expect(count(await Promise.all(Array.from({ length: 12 }, () => get(port, '/', { 'x-client-id': 'other' }))), 200)).toBe(10);
    const plain = await Promise.all(Array.from({ length: 30 }, () => get(port, '/')));
    expect(count(plain, 200)).toBe(30);
    expect(plain.every((r) => r.headers['ratelimit'] === undefined)).toBe(true);
  });

  it('a repeated header is one value, comma-joined, for the route match and the rate-limit key alike (RFC 9110 §5.3)', async () => {
    const twice = (second: string) => ['x-client-id', 'a', 'x-client-id', second];
    // The route matches only the joined value: one `a` alone goes to the example's catch-all route.
    expect((await get(port, '/joined', { 'x-client-id': 'a' })).headers['x-route']).toBeUndefined();
    const first = await Promise.all(Array.from({ length: 11 }, () => get(port, '/joined', twice('b'))));
    expect(first.every((r) => r.headers['x-route'] === 'joined')).toBe(true);
    expect(count(first, 200)).toBe(10);
    expect(count(first, 429)).toBe(1);
    // `a,c` is a key of its own: keyed on the first value only, it would share the exhausted bucket of `a,b`.
    expect(statuses(await Promise.all(Array.from({ length: 10 }, () => get(port, '/joined', twice('c')))))).toEqual(Array(10).fill(200));
  });

  it('reports the policy Accepted and Programmed, and the decisions in /metrics', async () => {
    const ancestors = policyStatus(await sluice.status(), 'per-client');
    expect(ancestors).toHaveLength(1);
    expect(ancestors[0].conditions).toEqual([
      expect.objectContaining({ type: 'Accepted', status: 'True' }),
      expect.objectContaining({ type: 'Programmed', status: 'True' }),
    ]);
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(metrics).toMatch(/sluice_ratelimit_decisions_total\{policy="default\/per-client",rule="per-client",scope="local",result="limited"\} \d+/);
  });

  it('17: a raised limit is programmed (within 5 s: debounce ≤ 1 s, plus slack for a loaded box) and starts afresh; a deleted policy limits nothing', async () => {
    const client = { 'x-client-id': 'update' };
    expect(count(await Promise.all(Array.from({ length: 12 }, () => get(port, '/', client))), 429)).toBe(2);
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, `apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: per-client, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: rate-limit}]
  local:
    rules:
    - clientSelectors: [{headers: [{name: x-client-id, type: Distinct}]}]
      limit: {requests: 20, unit: Minute}
`);
    const programmed = await until(
      async () => (await get(port, '/', { 'x-client-id': 'probe' })).headers['ratelimit-policy'],
      (value) => value === '"per-client";q=20;w=60',
      5000,
    );
    expect(programmed).toBe('"per-client";q=20;w=60');
    const ancestors = policyStatus(await sluice.status(), 'per-client');
    expect(ancestors[0].conditions).toContainEqual(expect.objectContaining({ type: 'Programmed', status: 'True', observedGeneration: 2 }));
    expect(statuses(await Promise.all(Array.from({ length: 20 }, () => get(port, '/', client))))).toEqual(Array(20).fill(200));

    rmSync(policy);
    const removed = await until(async () => (await get(port, '/', { 'x-client-id': 'probe' })).headers['ratelimit-policy'], (value) => value === undefined, 5000);
    expect(removed).toBeUndefined();
    expect(statuses(await Promise.all(Array.from({ length: 100 }, () => get(port, '/', client))))).toEqual(Array(100).fill(200));
  });
});

describe('per-route and shared buckets, the Ingress annotation, FailClosed', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let backend: NamedBackend;
  let offset: number;
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await RedisServer.start();
    backend = await startNamedBackend('app');
    dir = mkdtempSync(join(tmpdir(), 'sluice-rate-limit-'));
    // Ports 80 (Ingress) and 81 (Gateway) are both served: an offset under which both are free.
    offset = await freePortOffset([80, 81]);
    writeFileSync(
      join(dir, 'all.yaml'),
      // The Gateway on port 81: port 80 is the Ingress listener's.
      `${GATEWAY_YAML.replace('port: 80,', 'port: 81,')}---
${serviceYaml('app', backend)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /a}}], backendRefs: [{name: app, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /b}}], backendRefs: [{name: app, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: closed, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /closed}}], backendRefs: [{name: app, port: 80}]}]
---
apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: per-route, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  local:
    rules:
    - name: per-route
      clientSelectors: [{headers: [{name: x-mode, type: Exact, value: per-route}]}]
      limit: {requests: 10, unit: Minute}
    - name: shared
      clientSelectors: [{headers: [{name: x-mode, type: Exact, value: shared}]}]
      limit: {requests: 10, unit: Minute}
      shared: true
---
apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: closed, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: closed}]
  global:
    failureMode: FailClosed
    rules: [{limit: {requests: 1000, unit: Second}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: annotated
  namespace: default
  annotations: {sluice.dev/rate-limit: "5/minute"}
spec:
  ingressClassName: cilium
  rules:
  - host: ingress.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]
`,
    );
    // Redis is configured but stopped before the test: FailClosed must answer without it.
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--redis-url', redis.url, '--redis-timeout', '50']);
    await redis.stop();
  });

  afterAll(async () => {
    await sluice?.stop();
    await backend?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const send = (path: string, n: number, headers: Record<string, string> = {}, port = 81) => Promise.all(Array.from({ length: n }, () => get(offset + port, path, headers)));

  it('7: a Gateway policy gives each HTTPRoute its own bucket, unless shared', async () => {
    const mode = { 'x-mode': 'per-route' };
    expect(count(await send('/a', 15, mode), 200) + count(await send('/b', 15, mode), 200)).toBe(20);
    const shared = { 'x-mode': 'shared' };
    expect(count(await send('/a', 15, shared), 200) + count(await send('/b', 15, shared), 200)).toBe(10);
  });

  it('the Ingress annotation limits per client IP', async () => {
    const replies = await send('/', 8, { host: 'ingress.example.com' }, 80);
    expect(count(replies, 200)).toBe(5);
    expect(count(replies, 429)).toBe(3);
    expect(replies.find((r) => r.status === 429)!.headers['ratelimit-policy']).toBe('"annotated";q=5;w=60');
  });

  it('15: FailClosed with Redis down — 200 × 503 with Retry-After: 1, and the upstream sees none', async () => {
    const before = await backendHits();
    const replies = await send('/closed', 200);
    expect(replies.every((r) => r.status === 503 && r.headers['retry-after'] === '1')).toBe(true);
    expect((await backendHits()) - before).toBe(0);
  });

  /** Requests the backend answered, read from Sluice's own request metrics (per route and backend). */
  async function backendHits(): Promise<number> {
    const text = await (await fetch(`${sluice.admin}/metrics`)).text();
    let sum = 0;
    for (const m of text.matchAll(/^sluice_http_requests_total\{[^}]*route="httproute\/default\/closed[^"]*",backend="service\/default\/app[^"]*"[^}]*\} (\d+)/gm)) sum += Number(m[1]);
    return sum;
  }
});

describe('two sluice processes sharing Redis', () => {
  let dir: string;
  let redis: RedisServer;
  let backend: NamedBackend;
  const replicas: { sluice: SluiceProcess; offset: number }[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    backend = await startNamedBackend('app');
    dir = mkdtempSync(join(tmpdir(), 'sluice-rate-limit-'));
    writeFileSync(
      join(dir, 'all.yaml'),
      appWithGlobalPolicy(backend, `    - clientSelectors: [{headers: [{name: x-load, type: Exact, value: "yes"}]}]
      limit: {requests: 50, unit: Second}
`),
    );
    for (let i = 0; i < 2; i++) {
      const offset = (await freePort()) - 80;
      // Counting exactly: a decision slower than the default 50 ms on a loaded CI box fails open and
      // admits beyond the bucket (seen: 606 against at most 562), so this suite waits up to 1 s.
      replicas.push({ sluice: await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--redis-url', redis.url, '--redis-timeout', '1000']), offset });
    }
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.sluice.stop()));
    await backend?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('10: capacity 50, 50/s, each replica offered 50 rps for about 10 s — one bucket for both (≈ 550 in total)', async () => {
    // Both serve the policy and reach Redis (an ungoverned request answers, a config has it).
    for (const { sluice, offset } of replicas) {
      const config = await until(async () => (await (await fetch(`${sluice.admin}/api/config`)).json()) as any, (c) => c?.ir?.http?.rateLimits !== undefined, 5000);
      expect(Object.keys(config.ir.http.rateLimits)).toEqual(['ratelimitpolicy/default/shared']);
      expect((await get(offset + 80, '/')).status).toBe(200);
    }
    const started = performance.now();
    let lastSentMs = 0;
    const runs = replicas.map(async ({ offset }) => {
      const pending: Promise<Reply>[] = [];
      for (let i = 0; i < 500; i++) {
        const wait = started + i * 20 - performance.now();
        if (wait > 0) await sleep(wait);
        lastSentMs = Math.max(lastSentMs, performance.now() - started);
        pending.push(get(offset + 80, '/', { 'x-load': 'yes' }));
      }
      return count(await Promise.all(pending), 200);
    });
    const admitted = await Promise.all(runs);
    const window = { lastSentMs, answeredMs: performance.now() - started };
    const ratio = expectBucketAdmitted(admitted[0]! + admitted[1]!, { capacity: 50, perSecond: 50 }, window);
    process.stdout.write(`two sluice replicas admitted ${admitted.join(' + ')} = ${admitted[0]! + admitted[1]!} over ${window.lastSentMs.toFixed(0)} ms: ${ratio.toFixed(3)} × capacity + rate × window\n`);
  });
});
