// Hubble-style flow metrics (dataplane/flows/flow-metrics.ts): counted in plain maps per flow,
// read into prom-client at the scrape; bounded label combinations, the rest under `_overflow`.

import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { MAX_SERIES, FlowMetrics } from '../../dataplane/flows/flow-metrics.ts';
import type { Flow } from '../../ir/flow.ts';
import type { ForwardedRequest } from '../../dataplane/flows/flow-buffer.ts';

function l7Flow(method: string, status: number, service: string, verdict: Flow['verdict'] = 'FORWARDED'): Flow {
  return {
    time: '2026-01-01T00:00:00.000Z',
    type: 'L7',
    verdict,
    ...(verdict === 'DROPPED' ? { dropReason: 'POLICY_L7' as const } : {}),
    direction: 'ingress',
    protocol: 'TCP',
    source: { ip: '10.0.0.1', port: 40000, identity: 2, labels: ['reserved:world'] },
    destination: { ip: '10.0.1.1', port: 8080, identity: 300, labels: [], namespace: 'shop' },
    service: { namespace: 'shop', name: service, port: 80 },
    l7: { method, path: '/', host: 'x', protocol: 'HTTP/1.1', status, latencyMs: 1 },
  };
}

async function values(registry: Registry, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  return (await registry.getSingleMetric(name)!.get()).values as { labels: Record<string, string | number>; value: number }[];
}

describe('flow metrics', () => {
  it('counts flows by their labels, as often as recorded', async () => {
    const registry = new Registry();
    const metrics = new FlowMetrics(registry);
    for (let i = 0; i < 3; i++) metrics.record(l7Flow('GET', 200, 'cart'));
    metrics.record(l7Flow('POST', 200, 'cart'));
    metrics.record(l7Flow('GET', 403, 'cart', 'DROPPED'));
    expect(await values(registry, 'sluice_flow_http_requests_total')).toEqual(
      expect.arrayContaining([
        { labels: { method: 'GET', status: '200', source_namespace: '', destination_namespace: 'shop', destination_workload: 'cart' }, value: 3 },
        { labels: { method: 'POST', status: '200', source_namespace: '', destination_namespace: 'shop', destination_workload: 'cart' }, value: 1 },
        { labels: { method: 'GET', status: '403', source_namespace: '', destination_namespace: 'shop', destination_workload: 'cart' }, value: 1 },
      ]),
    );
    expect(await values(registry, 'sluice_flow_processed_total')).toEqual(
      expect.arrayContaining([
        { labels: { type: 'L7', verdict: 'FORWARDED' }, value: 4 },
        { labels: { type: 'L7', verdict: 'DROPPED' }, value: 1 },
      ]),
    );
    expect(await values(registry, 'sluice_flow_drops_total')).toEqual([{ labels: { reason: 'POLICY_L7', protocol: 'TCP' }, value: 1 }]);
    // Scraped twice: the same totals (read, not added again).
    expect((await values(registry, 'sluice_flow_processed_total')).find((v) => v.labels.verdict === 'FORWARDED')?.value).toBe(4);
  });

  it(`keeps at most ${MAX_SERIES} label combinations; later ones count under _overflow`, async () => {
    const registry = new Registry();
    const metrics = new FlowMetrics(registry);
    for (let i = 0; i < MAX_SERIES + 5; i++) metrics.record(l7Flow('GET', 200, `svc-${i}`));
    metrics.record(l7Flow('GET', 200, 'svc-0'));
    metrics.record(l7Flow('GET', 200, `svc-${MAX_SERIES + 1}`));
    const requests = await values(registry, 'sluice_flow_http_requests_total');
    expect(requests).toHaveLength(MAX_SERIES + 1);
    expect(requests.find((v) => v.labels.destination_workload === 'svc-0')?.value).toBe(2);
    expect(requests.find((v) => v.labels.destination_workload === '_overflow')).toEqual({
      labels: { method: '_overflow', status: '_overflow', source_namespace: '_overflow', destination_namespace: '_overflow', destination_workload: '_overflow' },
      value: 6,
    });
  });

  it('counts forwarded requests from one reused record, labels changing from request to request', async () => {
    const registry = new Registry();
    const metrics = new FlowMetrics(registry);
    // As the proxy does (RequestFlows.forwarded): one record, rewritten for every request.
    const r: ForwardedRequest = {
      wallClock: 0,
      clientIp: '10.0.0.1',
      clientPort: 40000,
      method: 'GET',
      path: '/',
      host: 'x',
      protocol: 'HTTP/1.1',
      status: 200,
      latencyMs: 1,
      direction: 'ingress',
      destination: { ip: '10.0.1.1', port: 8080, identity: 300, labels: [], namespace: 'shop' },
      service: { namespace: 'shop', name: 'cart', port: 80 },
      rule: undefined,
      route: undefined,
      gateway: undefined,
    };
    const sequence: [string, number, string][] = [['GET', 200, 'cart'], ['GET', 200, 'cart'], ['POST', 200, 'cart'], ['GET', 200, 'cart'], ['GET', 503, 'cart'], ['GET', 503, 'cart'], ['GET', 200, 'shop-front'], ['GET', 200, 'cart']];
    for (const [method, status, service] of sequence) {
      r.method = method;
      r.status = status;
      r.service = { namespace: 'shop', name: service, port: 80 };
      metrics.forwarded(r);
    }
    const requests = await values(registry, 'sluice_flow_http_requests_total');
    const count = (method: string, status: string, workload: string): number | undefined => requests.find((v) => v.labels.method === method && v.labels.status === status && v.labels.destination_workload === workload)?.value;
    expect(requests).toHaveLength(4);
    expect([count('GET', '200', 'cart'), count('POST', '200', 'cart'), count('GET', '503', 'cart'), count('GET', '200', 'shop-front')]).toEqual([4, 1, 2, 1]);
    expect((await values(registry, 'sluice_flow_processed_total')).find((v) => v.labels.verdict === 'FORWARDED')?.value).toBe(8);
  });

  it('past the bound, a label combination repeated request after request still counts under _overflow', async () => {
    const registry = new Registry();
    const metrics = new FlowMetrics(registry);
    for (let i = 0; i < MAX_SERIES; i++) metrics.record(l7Flow('GET', 200, `svc-${i}`));
    for (let i = 0; i < 3; i++) metrics.record(l7Flow('GET', 200, 'late'));
    metrics.record(l7Flow('GET', 200, 'svc-7'));
    const requests = await values(registry, 'sluice_flow_http_requests_total');
    expect(requests.find((v) => v.labels.destination_workload === 'late')).toBeUndefined();
    expect(requests.find((v) => v.labels.destination_workload === '_overflow')?.value).toBe(3);
    expect(requests.find((v) => v.labels.destination_workload === 'svc-7')?.value).toBe(2);
  });
});
