// DataplaneMetrics' bookkeeping of (route, backend) targets across applies, on a real prom-client
// Registry: a route's targets (kept as a chain per route) scraped in the order made, shared by later
// compiles, dropped from the middle or the head of the chain, revived by a request in flight; a
// route's durations made at its first request (none for a route compiled but never requested) and
// shared by its backends. The same scrape as when each route had a Map and durations from the compile.

import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { DataplaneMetrics, type RequestMetrics } from '../../dataplane/metrics.ts';

/** `name{labels} value` lines of one metric (exact name), in scrape order. */
async function lines(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.metrics();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

const REQUESTS = 'sluice_http_requests_total';
const COUNT = 'sluice_http_request_duration_seconds_count';

describe('request metrics targets', () => {
  it('keeps targets per route and backend across applies, drops and revives them, and makes durations at the first request', async () => {
    const registry = new Registry();
    const metrics = new DataplaneMetrics(registry);
    const take = (backend: string): RequestMetrics => metrics.requestMetrics('r', backend);
    const release = (...targets: RequestMetrics[]): void => targets.forEach((t) => metrics.release(t, null));

    const [a, b, c] = [take('b1'), take('b2'), take('b3')];
    const idle = metrics.requestMetrics('idle', 'b1');
    metrics.versionApplied('v1');
    // Compiled, never requested: no series at all, not even an empty histogram.
    expect(await lines(registry, REQUESTS)).toEqual([]);
    expect(await lines(registry, COUNT)).toEqual([]);

    b.record(200, 0, 5);
    a.record(500, 0, 1);
    c.record(200, 0, 2);
    expect(await lines(registry, REQUESTS)).toEqual([
      'sluice_http_requests_total{route="r",backend="b1",code="500"} 1',
      'sluice_http_requests_total{route="r",backend="b2",code="200"} 1',
      'sluice_http_requests_total{route="r",backend="b3",code="200"} 1',
    ]);
    // One histogram per route, shared by its backends.
    expect(await lines(registry, COUNT)).toEqual(['sluice_http_request_duration_seconds_count{route="r"} 3']);

    // A later compile asking again gets the same targets (counts carry on); b2 is no longer used:
    // dropped from the middle of the route's targets.
    expect(take('b1')).toBe(a);
    expect(take('b3')).toBe(c);
    release(a, b, c, idle);
    metrics.versionApplied('v2');
    expect(await lines(registry, REQUESTS)).toEqual([
      'sluice_http_requests_total{route="r",backend="b1",code="500"} 1',
      'sluice_http_requests_total{route="r",backend="b3",code="200"} 1',
    ]);
    expect(await lines(registry, COUNT)).toEqual(['sluice_http_request_duration_seconds_count{route="r"} 3']);

    // A request in flight on the previous table brings b2 back (last), until the next apply.
    b.record(200, 0, 3);
    expect(await lines(registry, REQUESTS)).toEqual([
      'sluice_http_requests_total{route="r",backend="b1",code="500"} 1',
      'sluice_http_requests_total{route="r",backend="b3",code="200"} 1',
      'sluice_http_requests_total{route="r",backend="b2",code="200"} 2',
    ]);
    expect(await lines(registry, COUNT)).toEqual(['sluice_http_request_duration_seconds_count{route="r"} 4']);
    metrics.versionApplied('v3');
    expect((await lines(registry, REQUESTS)).map((l) => /backend="(\w+)"/.exec(l)![1])).toEqual(['b1', 'b3']);

    // The head dropped, then the last target: the route's series go, durations too.
    release(a);
    metrics.versionApplied('v4');
    expect(await lines(registry, REQUESTS)).toEqual(['sluice_http_requests_total{route="r",backend="b3",code="200"} 1']);
    expect(await lines(registry, COUNT)).toEqual(['sluice_http_request_duration_seconds_count{route="r"} 4']);
    release(c);
    metrics.versionApplied('v5');
    expect(await lines(registry, REQUESTS)).toEqual([]);
    expect(await lines(registry, COUNT)).toEqual([]);

    // Back in a table: counted from zero, a new target and a new histogram.
    const again = take('b1');
    expect(again).not.toBe(a);
    metrics.versionApplied('v6');
    again.record(204, 0, 1);
    expect(await lines(registry, REQUESTS)).toEqual(['sluice_http_requests_total{route="r",backend="b1",code="204"} 1']);
    expect(await lines(registry, COUNT)).toEqual(['sluice_http_request_duration_seconds_count{route="r"} 1']);
  });
});
