// The flow ring (dataplane/flows/flow-buffer.ts), hubble's filters (ir/flow.ts) and the Hubble
// JSON `sluice observe -o json` prints (cmd/observe.ts).
import { describe, expect, it } from '@jest/globals';
import { flowMatches, type Flow } from '../../ir/flow.ts';
import { pathPatternMatches } from '../../dataplane/flows/path-pattern.ts';
import { FlowBuffer, type ForwardedRequest } from '../../dataplane/flows/flow-buffer.ts';
import { FlowMetrics } from '../../dataplane/flows/flow-metrics.ts';
import { compactLine, hubbleJson } from '../../cmd/observe.ts';
import { flowFilterOf } from '../../cmd/admin.ts';
import { AccessLog } from '../../dataplane/flows/access-log.ts';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';

const flow = (over: Partial<Flow> & { path?: string; status?: number; method?: string }): Flow => ({
  time: '2026-12-04T22:00:00.000Z',
  type: 'L7',
  verdict: 'FORWARDED',
  direction: 'ingress',
  protocol: 'TCP',
  source: { ip: '10.1.0.9', port: 41000, identity: 2, labels: ['reserved:world'] },
  destination: { ip: '10.0.9.91', port: 8080, identity: 300, namespace: 'shop', labels: ['k8s:app=api'], pod: 'shop/api-7d9f-x2' },
  service: { namespace: 'shop', name: 'api', port: 80 },
  l7: { method: over.method ?? 'GET', path: over.path ?? '/api/products', host: 'shop.example', protocol: 'HTTP/1.1', status: over.status ?? 200, latencyMs: 1.5 },
  ...over,
});

describe('flow ring', () => {
  it('keeps the latest `size` flows, oldest first, and tells subscribers of each new one', () => {
    const ring = new FlowBuffer(3);
    const seen: string[] = [];
    const stop = ring.subscribeFlows((f) => seen.push(f.l7!.path));
    for (const p of ['/1', '/2', '/3', '/4', '/5']) ring.push(flow({ path: p }));
    stop();
    ring.push(flow({ path: '/6' }));
    expect(ring.flows().map((f) => f.l7!.path)).toEqual(['/4', '/5', '/6']);
    expect(ring.flows({}, 2).map((f) => f.l7!.path)).toEqual(['/5', '/6']);
    expect(seen).toEqual(['/1', '/2', '/3', '/4', '/5']);
    expect(ring.total).toBe(6);
  });

  it('keeps forwarded requests compact and reads them back as the flows they were, between flow objects', async () => {
    const ring = new FlowBuffer(3);
    const destination = flow({}).destination;
    const record: ForwardedRequest = {
      wallClock: Date.parse('2026-12-04T22:00:00.000Z'), clientIp: '10.1.0.9', clientPort: 41000, method: 'GET', path: '', host: 'shop.example',
      protocol: 'HTTP/1.1', status: 200, latencyMs: 1.5, direction: 'ingress', destination, service: { namespace: 'shop', name: 'api', port: 80 },
      rule: undefined, route: { name: 'r', source: 'shop/route' }, gateway: 'infra/gw',
    };
    const registry = new Registry();
    ring.subscribeRecorder(new FlowMetrics(registry));
    const objects: string[] = [];
    ring.subscribeFlows((f) => objects.push(`${f.verdict} ${f.l7!.path}`));
    ring.push(flow({ path: '/drop', verdict: 'DROPPED', dropReason: 'POLICY_L7' }));
    // One record reused in place, as RequestFlows does: the ring copies it.
    for (const [path, status] of [['/a', 200], ['/b', 503]] as const) {
      record.path = path;
      record.status = status;
      ring.pushForwarded(record);
    }
    // flow() leaves its shorthands (path, status) on the object too: the ring's flows have none.
    const plain = (f: Flow & { path?: string; status?: number }): Flow => {
      const { path: _path, status: _status, ...rest } = f;
      return rest;
    };
    expect(ring.flows()).toEqual([
      flow({ path: '/drop', verdict: 'DROPPED', dropReason: 'POLICY_L7' }),
      plain(flow({ path: '/a', route: { name: 'r', source: 'shop/route' }, gateway: 'infra/gw' })),
      plain(flow({ path: '/b', status: 503, route: { name: 'r', source: 'shop/route' }, gateway: 'infra/gw' })),
    ]);
    expect(objects).toEqual(['DROPPED /drop', 'FORWARDED /a', 'FORWARDED /b']);
    // A flow object over a compact slot (and the reverse) reads as itself.
    ring.push(flow({ path: '/c' }));
    record.path = '/d';
    ring.pushForwarded(record);
    expect(ring.flows().map((f) => `${f.verdict} ${f.l7!.path} ${f.l7!.status}`)).toEqual(['FORWARDED /b 503', 'FORWARDED /c 200', 'FORWARDED /d 503']);
    expect(ring.flows({ httpStatus: ['5+'] }).map((f) => f.l7!.path)).toEqual(['/b', '/d']);
    // The recorder counted forwarded requests from their records as it counts flow objects.
    const requests = (await registry.getSingleMetric('sluice_flow_http_requests_total')!.get()).values.map((v) => `${v.labels.method} ${v.labels.status} ${v.labels.destination_namespace} ${v.labels.destination_workload} ${v.value}`);
    // 200: /drop and /c (objects), /a (a record); 503: /b and /d (records).
    expect(requests.sort()).toEqual(['GET 200 shop api 3', 'GET 503 shop api 2']);
    const processed = (await registry.getSingleMetric('sluice_flow_processed_total')!.get()).values.map((v) => `${v.labels.verdict} ${v.value}`);
    expect(processed.sort()).toEqual(['DROPPED 1', 'FORWARDED 4']);
  });

  it('keeps a flow when a subscriber throws', () => {
    const ring = new FlowBuffer(2);
    ring.subscribeFlows(() => {
      throw new Error('subscriber bug');
    });
    ring.push(flow({}));
    expect(ring.flows()).toHaveLength(1);
  });
});

describe('http-path filters against hostile paths', () => {
  // Matched with RE2 (linear in the path): a client's crafted path cannot stall the process that
  // serves traffic while someone follows flows with a pattern a backtracking engine explodes on.
  const parsed = (q: Record<string, string>) => {
    const filter = flowFilterOf(q);
    if (typeof filter === 'string') throw new Error(filter);
    return filter;
  };

  it('match a path crafted against a nested quantifier without backtracking (V8 RegExp: minutes for this path)', () => {
    const ring = new FlowBuffer(10);
    // 40 characters: a backtracking engine tries 2^38 ways before saying no.
    ring.push(flow({ path: `/${'a'.repeat(38)}!` }));
    ring.push(flow({ path: '/aaaa' }));
    expect(ring.flows(parsed({ 'http-path': '^/(a+)+$' })).map((f) => f.l7!.path)).toEqual(['/aaaa']);
  });

  it("are RE2, as hubble's Go regexps: syntax RE2 lacks (backreferences, lookarounds) is refused, not run", () => {
    expect(flowFilterOf({ 'http-path': '^/(a)\\1$' })).toMatch(/http-path .*not a regular expression \(RE2 syntax/);
    expect(flowFilterOf({ 'http-path': '^/(?=api)' })).toMatch(/not a regular expression/);
    expect(parsed({ 'http-path': '^/api/(v1|v2)/' }).httpPath).toEqual(['^/api/(v1|v2)/']);
  });
});

describe("hubble's filters", () => {
  const denied = flow({ verdict: 'DROPPED', dropReason: 'POLICY_L7', method: 'DELETE', status: 403, path: '/api/products?x=1' });
  const kernel: Flow = { ...flow({}), type: undefined, l7: undefined } as Flow;
  it('select by verdict, type, pod, namespace, Service and HTTP fields', () => {
    const f = (q: Record<string, string>) => {
      const filter = flowFilterOf(q);
      if (typeof filter === 'string') throw new Error(filter);
      return [denied, kernel].filter((x) => flowMatches(x, filter, pathPatternMatches)).length;
    };
    expect(f({ verdict: 'DROPPED' })).toBe(1);
    expect(f({ verdict: 'DROPPED,FORWARDED' })).toBe(2);
    expect(f({ type: 'l7' })).toBe(1);
    expect(f({ type: 'l3/l4' })).toBe(1);
    expect(f({ 'to-pod': 'shop/api-' })).toBe(2);
    expect(f({ 'to-pod': 'api-7' })).toBe(2);
    expect(f({ 'to-pod': 'web' })).toBe(0);
    expect(f({ 'from-pod': 'api' })).toBe(0);
    expect(f({ 'to-namespace': 'shop', 'from-namespace': 'shop' })).toBe(0);
    expect(f({ namespace: 'shop' })).toBe(2);
    expect(f({ 'to-service': 'shop/api' })).toBe(2);
    expect(f({ 'http-status': '4+' })).toBe(1);
    expect(f({ 'http-status': '403' })).toBe(1);
    expect(f({ 'http-method': 'delete' })).toBe(1);
    expect(f({ 'http-path': '^/api/products$' })).toBe(1); // the query is left out
  });

  it('refuses what it cannot read', () => {
    expect(flowFilterOf({ verdict: 'LOST' })).toMatch(/verdict LOST/);
    expect(flowFilterOf({ type: 'dns' })).toMatch(/type dns/);
    expect(flowFilterOf({ 'http-path': '(' })).toMatch(/not a regular expression/);
    expect(flowFilterOf({ 'http-status': 'abc' })).toMatch(/http-status/);
  });
});

describe('Hubble flow JSON', () => {
  it('names the fields as hubble observe -o json does', () => {
    const out = hubbleJson(flow({ verdict: 'DROPPED', dropReason: 'POLICY_L7', status: 403, rule: { id: 1, name: 'ciliumnetworkpolicy/shop/api-l7/ingress/0' } }), 'node-1');
    expect(out).toEqual({
      flow: expect.objectContaining({
        verdict: 'DROPPED',
        drop_reason_desc: 'POLICY_DENIED',
        IP: { source: '10.1.0.9', destination: '10.0.9.91', ipVersion: 'IPv4' },
        l4: { TCP: { source_port: 41000, destination_port: 8080 } },
        destination: { identity: 300, namespace: 'shop', labels: ['k8s:app=api'], pod_name: 'api-7d9f-x2' },
        Type: 'L7',
        traffic_direction: 'INGRESS',
        ingress_denied_by: [{ name: 'ciliumnetworkpolicy/shop/api-l7/ingress/0' }],
        l7: { type: 'REQUEST', latency_ns: '1500000', http: { code: 403, method: 'GET', url: 'http://shop.example/api/products', protocol: 'HTTP/1.1' } },
        destination_service: { name: 'api', namespace: 'shop' },
      }),
      node_name: 'node-1',
      time: '2026-12-04T22:00:00.000Z',
    });
    expect(compactLine(flow({}))).toBe(
      '2026-12-04 22:00:00.000: 10.1.0.9:41000 (world) -> 10.0.9.91:8080 (shop/api-7d9f-x2) to-service shop/api (port 80) http-request FORWARDED (HTTP/1.1 GET http://shop.example/api/products => 200 (1.5 ms))',
    );
  });
});

describe('access log', () => {
  it('writes one JSON line per request flow with the chosen fields, and skips connection flows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-access-log-'));
    try {
      const log = new AccessLog(join(dir, 'a.log'), ['method', 'path', 'status', 'verdict'], new Registry(), () => undefined);
      log.write(flow({ method: 'POST', path: '/api/orders', status: 201 }));
      log.write({ ...flow({}), type: 'L3_L4', l7: undefined } as Flow);
      await log.close();
      expect(readFileSync(join(dir, 'a.log'), 'utf8')).toBe('{"method":"POST","path":"/api/orders","status":201,"verdict":"FORWARDED"}\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says once when it cannot write, then counts the lines it drops', async () => {
    const registry = new Registry();
    const errors: string[] = [];
    const log = new AccessLog('/nonexistent-sluice-dir/a.log', ['path'], registry, (e) => errors.push(e.message));
    await new Promise((r) => setTimeout(r, 50));
    log.write(flow({}));
    log.write(flow({}));
    expect(errors).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('sluice_access_log_dropped_total')).toMatch(/sluice_access_log_dropped_total 2/);
  });
});
