// Request metrics over real sockets: counted in plain numbers on the request path, read when
// scraped (dataplane/metrics.ts). What a scrape shows must be what prom-client's own counters and
// histograms showed: series per route, backend and code, cumulative buckets, sum and count; the
// series of a route the applied table no longer has disappear; dataplanes sharing a registry sum.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { HttpIR } from '../../ir/types.ts';
import { request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { Dataplane } from '../../dataplane/dataplane.ts';
import { DEFAULT_FRONT_DOOR_LIMITS } from '../../dataplane/front-door.ts';
import { capturingLogger, testDataplane, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';

/** `name{labels} value` lines of the exposition text, for one metric name (exact). */
function samples(text: string, name: string): { labels: string; value: number }[] {
  const out: { labels: string; value: number }[] = [];
  for (const m of text.matchAll(/^([a-z_]+)(\{[^}]*\})? (\S+)$/gm)) if (m[1] === name) out.push({ labels: m[2] ?? '', value: Number(m[3]) });
  return out;
}

describe('request metrics', () => {
  let echo: EchoServer;
  let port: number;
  let harness: TestDataplane;
  const both = (): HttpIR => singleHostIR(port, [route('kept', { path: prefix('/kept') }, forwardTo('svc/a')), route('gone', { path: prefix('/gone') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]);
  const keptOnly = (): HttpIR => singleHostIR(port, [route('kept', { path: prefix('/kept') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]);

  beforeAll(async () => {
    echo = await startEchoServer('a');
    port = await freePort();
    harness = testDataplane();
    await harness.dataplane.apply('v1', both());
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await echo.close();
  });

  it('counts by route, backend and code, with cumulative duration buckets, sum and count', async () => {
    for (let i = 0; i < 3; i++) expect((await request(port, '/kept/x')).status).toBe(200);
    expect((await request(port, '/nowhere')).status).toBe(404);
    const text = await harness.registry.metrics();
    const kept = 'route="httproute/default/kept/rule/0/match/0"';
    expect(samples(text, 'sluice_http_requests_total')).toEqual(
      expect.arrayContaining([
        { labels: `{${kept},backend="svc/a",code="200"}`, value: 3 },
        { labels: '{route="",backend="",code="404"}', value: 1 },
      ]),
    );
    const buckets = samples(text, 'sluice_http_request_duration_seconds_bucket').filter((s) => s.labels.includes(kept));
    expect(buckets.map((b) => /le="([^"]+)"/.exec(b.labels)![1])).toEqual(['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(buckets.at(-1)!.value).toBe(3);
    expect(samples(text, 'sluice_http_request_duration_seconds_count')).toContainEqual({ labels: `{${kept}}`, value: 3 });
    const sum = samples(text, 'sluice_http_request_duration_seconds_sum').find((s) => s.labels === `{${kept}}`)!;
    expect(sum.value).toBeGreaterThan(0);
    expect(sum.value).toBeLessThan(30);
  });

  it("drops a removed route's series at the next apply and keeps counting the others", async () => {
    expect((await request(port, '/gone/x')).status).toBe(200);
    const gone = 'route="httproute/default/gone/rule/0/match/0"';
    const before = await harness.registry.metrics();
    expect(before).toContain(`sluice_http_requests_total{${gone},backend="svc/a",code="200"} 1`);
    expect(before).toContain(`sluice_http_request_duration_seconds_count{${gone}} 1`);

    await harness.dataplane.apply('v2', keptOnly());
    expect((await request(port, '/kept/y')).status).toBe(200);
    const after = await harness.registry.metrics();
    expect(after).not.toContain(gone);
    // The kept route carried on: three from the first test, one now.
    expect(after).toContain('sluice_http_requests_total{route="httproute/default/kept/rule/0/match/0",backend="svc/a",code="200"} 4');
    expect(after).toContain('sluice_http_requests_total{route="",backend="",code="404"} 1');

    // Back in the table: counted from zero (a counter reset, as Prometheus reads a restart).
    await harness.dataplane.apply('v3', both());
    expect((await request(port, '/gone/z')).status).toBe(200);
    expect(await harness.registry.metrics()).toContain(`sluice_http_requests_total{${gone},backend="svc/a",code="200"} 1`);
  });

  it('sums the series of two dataplanes sharing one registry (one line per label set)', async () => {
    const otherPort = await freePort();
    const shared = new Dataplane({ portOffset: 0, redirectPortOffset: 0, logger: capturingLogger().logger, registry: harness.registry, frontDoor: DEFAULT_FRONT_DOOR_LIMITS });
    try {
      await shared.apply('v1', singleHostIR(otherPort, [route('kept', { path: prefix('/kept') }, forwardTo('svc/a'))], [backend('svc/a', [echo.endpoint])]));
      const count = async (): Promise<number> =>
        samples(await harness.registry.metrics(), 'sluice_http_requests_total').filter((s) => s.labels === '{route="httproute/default/kept/rule/0/match/0",backend="svc/a",code="200"}').reduce((n, s, _i, all) => (all.length === 1 ? s.value : Number.NaN), 0);
      const start = await count();
      expect((await request(port, '/kept/1')).status).toBe(200);
      expect((await request(otherPort, '/kept/2')).status).toBe(200);
      expect(await count()).toBe(start + 2);
    } finally {
      await shared.close();
    }
  });
});
