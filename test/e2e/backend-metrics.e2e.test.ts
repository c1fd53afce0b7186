// Per-backend metrics for canary analysis, through a real `sluice run`: an 80/20 split between a
// stable backend and a canary that is slow (>= 300 ms) and answers 500 to every other request.
// sluice_backend_requests_total and sluice_backend_request_duration_seconds must count exactly
// what the client saw from each backend, by route, rule (name or index) and code class; the
// canary's latency must be told from the stable one's; a backend the route drops loses its series.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Pool } from 'undici';
import { waitFor } from '../support/wait.ts';
import { samples, startSplit, sumOf, type SplitFixture } from '../kube/canary/split.ts';

const CANARY_DELAY_MS = 300;

describe('per-backend metrics under a weighted split (sluice run)', () => {
  let split: SplitFixture;
  let pool: Pool;
  const metricsText = async () => (await fetch(`${split.sluice.admin}/metrics`)).text();

  beforeAll(async () => {
    split = await startSplit({ route: 'shop', stable: 'stable', canary: 'canary', canaryDelayMs: CANARY_DELAY_MS, canaryFails: true }, 80, 20);
    pool = new Pool(`http://127.0.0.1:${split.port}`, { connections: 20 });
  });

  afterAll(async () => {
    await pool?.close();
    await split?.stop();
  });

  it('counts each backend, rule and code class as the client saw them, and tells the slow canary apart', async () => {
    const seen = { stable: 0, canary200: 0, canary500: 0, direct: 0 };
    const send = async (path: string) => {
      const res = await pool.request({ path, method: 'GET' });
      const body = (await res.body.json()) as { backend: string };
      if (path === '/direct') {
        expect([res.statusCode, body.backend]).toEqual([200, 'stable']);
        seen.direct++;
      } else if (body.backend === 'stable') seen.stable++;
      else if (res.statusCode === 200) seen.canary200++;
      else seen.canary500++;
    };
    const paths = [...Array.from({ length: 500 }, () => '/'), ...Array.from({ length: 20 }, () => '/direct')];
    for (let i = 0; i < paths.length; i += 20) await Promise.all(paths.slice(i, i + 20).map(send));
    expect(seen.canary500).toBeGreaterThan(0);

    const text = await metricsText();
    const counts = samples(text, 'sluice_backend_requests_total');
    const rule = { route: 'default/shop', rule: 'split' };
    expect(sumOf(counts, { ...rule, backend: 'default/stable:80', code_class: '2xx' })).toBe(seen.stable);
    expect(sumOf(counts, { ...rule, backend: 'default/canary:80', code_class: '2xx' })).toBe(seen.canary200);
    expect(sumOf(counts, { ...rule, backend: 'default/canary:80', code_class: '5xx' })).toBe(seen.canary500);
    expect(sumOf(counts, { ...rule, backend: 'default/stable:80', code_class: '5xx' })).toBe(0);
    // The unnamed second rule is labelled by its index.
    expect(sumOf(counts, { route: 'default/shop', rule: '1', backend: 'default/stable:80', code_class: '2xx' })).toBe(seen.direct);
    expect(sumOf(counts, { rule: '1', backend: 'default/canary:80' })).toBe(0);

    const histogram = (suffix: string) => samples(text, `sluice_backend_request_duration_seconds${suffix}`);
    const canaryAnswers = seen.canary200 + seen.canary500;
    expect(sumOf(histogram('_count'), { ...rule, backend: 'default/canary:80' })).toBe(canaryAnswers);
    expect(sumOf(histogram('_count'), { ...rule, backend: 'default/stable:80' })).toBe(seen.stable);
    // Every canary answer took at least CANARY_DELAY_MS: none is in a bucket below it.
    expect(sumOf(histogram('_bucket'), { ...rule, backend: 'default/canary:80', le: '0.25' })).toBe(0);
    expect(sumOf(histogram('_bucket'), { ...rule, backend: 'default/canary:80', le: '+Inf' })).toBe(canaryAnswers);
    expect(sumOf(histogram('_sum'), { ...rule, backend: 'default/canary:80' })).toBeGreaterThanOrEqual((canaryAnswers * CANARY_DELAY_MS) / 1000);
  });

  it('drops the series of a backend the route no longer uses', async () => {
    split.setWeights(100, 0);
    await waitFor(
      'the canary series to go',
      async () => (samples(await metricsText(), 'sluice_backend_requests_total').some((r) => r.labels.backend === 'default/canary:80') ? undefined : true),
      15_000,
    );
    // The stable backend's series stay, with their counts.
    expect(sumOf(samples(await metricsText(), 'sluice_backend_requests_total'), { route: 'default/shop', rule: 'split', backend: 'default/stable:80' })).toBeGreaterThan(0);
  });
});
