// Canary convergence: under a steady 200 requests/s, rewrite an HTTPRoute's
// weights 20 times. No request may fail, and each change must take effect
// (within 5 s of the file being written: the debounce waits at most 1 s, the rest is slack for a
// loaded machine). Prints p50/p99 convergence: how fast is a figure, not an assertion.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';

const CHANGES = 20;
const RATE_PER_SECOND = 200;

const routeYaml = (blue: number, green: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs:
    - {name: blue, port: 80, weight: ${blue}}
    - {name: green, port: 80, weight: ${green}}
`;

interface Sample {
  sentAt: number;
  /** When the answer came: a request answered before the next write was routed before it. */
  answeredAt: number;
  backend: string | null;
  status: number;
}

describe('weights rewritten under load', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let backends: NamedBackend[];
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-weights-'));
    backends = [await startNamedBackend('blue'), await startNamedBackend('green')];
    writeFileSync(join(dir, 'gateway.yaml'), GATEWAY_YAML + '---\n' + serviceYaml('blue', backends[0]!) + '---\n' + serviceYaml('green', backends[1]!));
    writeFileSync(join(dir, 'route.yaml'), routeYaml(100, 0));
    port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await Promise.all((backends ?? []).map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails no request and converges each time (within 5 s: debounce ≤ 1 s plus slack)', async () => {
    const agent = new Agent({ connections: 32 });
    const samples: Sample[] = [];
    const inFlight: Promise<void>[] = [];
    let running = true;
    const send = async () => {
      const sentAt = performance.now();
      try {
        const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent });
        const body = (await res.body.json()) as { backend?: string };
        samples.push({ sentAt, answeredAt: performance.now(), backend: body.backend ?? null, status: res.statusCode });
      } catch {
        samples.push({ sentAt, answeredAt: performance.now(), backend: null, status: 0 });
      }
    };
    const load = (async () => {
      const interval = 1000 / RATE_PER_SECOND;
      let next = performance.now();
      while (running) {
        inFlight.push(send());
        next += interval;
        await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
      }
    })();

    await new Promise((r) => setTimeout(r, 300));
    const changes: { at: number; expected: string }[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const toGreen = i % 2 === 0;
      const at = performance.now();
      const expected = toGreen ? 'green' : 'blue';
      writeFileSync(join(dir, 'route.yaml'), routeYaml(toGreen ? 0 : 100, toGreen ? 100 : 0));
      changes.push({ at, expected });
      // Until a request sent after the write reaches the new backend (at most 5 s), then 300 ms more
      // to see that it stays there.
      while (performance.now() < at + 5000 && !samples.some((s) => s.sentAt >= at && s.backend === expected)) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    running = false;
    await load;
    await Promise.all(inFlight);
    await agent.close();

    const failed = samples.filter((s) => s.status !== 200);
    expect(failed).toEqual([]);

    const convergence: number[] = [];
    changes.forEach((change, i) => {
      const end = changes[i + 1]?.at ?? Infinity;
      // A change is applied within milliseconds when the folder is idle: a request sent just before
      // the next write may arrive after it, so the window holds requests answered before that write.
      const window = samples.filter((s) => s.sentAt >= change.at && s.answeredAt < end).sort((a, b) => a.sentAt - b.sentAt);
      const lastOld = window.findLastIndex((s) => s.backend !== change.expected);
      const firstSettled = window[lastOld + 1];
      expect(firstSettled).toBeDefined();
      convergence.push(firstSettled!.sentAt - change.at);
    });
    const sorted = [...convergence].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
    console.log(
      `weights rewritten ${CHANGES} times under ${RATE_PER_SECOND} req/s: ${samples.length} requests, 0 failed; ` +
        `convergence p50 ${pct(50).toFixed(0)} ms, p99 ${pct(99).toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`,
    );
    for (const c of convergence) expect(c).toBeLessThan(5000);
  });
});
