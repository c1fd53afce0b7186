// Hubble-style flow metrics (dataplane/flows/flow-metrics.ts): counted in plain maps per flow,
// read into prom-client at the scrape; bounded label combinations, the rest under `_overflow`.

import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { MAX_SERIES, FlowMetrics } from '../../dataplane/flows/flow-metrics.ts';
import type { Flow } from '../../ir/flow.ts';

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
});
