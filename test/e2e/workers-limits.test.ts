// `sluice run --workers 2 --max-connections-per-listener N`, a real process: the per-listener limit
// is one count for both worker threads (N + k connections to a listener, spread by the kernel over
// both: exactly k refused), and another listener keeps its own N.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GATEWAY_CLASS_YAML, serviceYaml, startNamedBackend, type NamedBackend } from './backends.ts';
import { holdConnection, type HeldConnection } from '../dataplane/support/held-connection.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';

const N = 8;

describe('sluice run --workers 2 --max-connections-per-listener', () => {
  let dir: string;
  let backend: NamedBackend;
  let sluice: SluiceProcess;
  let offset: number;
  const held: HeldConnection[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-workers-limits-'));
    backend = await startNamedBackend('app');
    writeFileSync(join(dir, 'gateway.yaml'), `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners: [{name: a, port: 80, protocol: HTTP}, {name: b, port: 8080, protocol: HTTP}]
`);
    writeFileSync(join(dir, 'service.yaml'), serviceYaml('app', backend));
    writeFileSync(join(dir, 'route.yaml'), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`);
    offset = await freePortOffset([80, 8080]);
    sluice = await startSluice(['--manifests', dir, '--workers', '2', '--max-connections-per-listener', String(N), '--listener-port-offset', String(offset)], 60_000);
  }, 90_000);

  afterAll(async () => {
    for (const c of held) c.socket.destroy();
    await sluice?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses exactly k of N + k connections to one listener across both workers; the other listener serves its own N', async () => {
    const first = await Promise.all(Array.from({ length: N + 3 }, () => holdConnection(80 + offset)));
    held.push(...first);
    await waitFor('3 refusals', () => (first.filter((c) => c.closed).length >= 3 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 300)); // no late refusal
    const refused = first.filter((c) => c.closed);
    expect(refused).toHaveLength(3);
    for (const c of refused) expect(c.received).toMatch(/^HTTP\/1\.1 503 /);
    expect(await Promise.all(first.filter((c) => !c.closed).map((c) => c.get('/a')))).toEqual(Array(N).fill(200));

    const other = await Promise.all(Array.from({ length: N }, () => holdConnection(8080 + offset)));
    held.push(...other);
    expect(await Promise.all(other.map((c) => c.get('/b')))).toEqual(Array(N).fill(200));

    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    // (Listeners are named by their Gateway port, not the offset one bound.)
    expect(metrics).toContain('sluice_connections_refused_total{listener="127.0.0.1:80",reason="listener_limit"} 3');
    expect(metrics).not.toContain('listener="127.0.0.1:8080",reason=');
    // Both workers admitted some of the first listener's (a worker's own limit of N would have refused none).
    const perWorker = [...metrics.matchAll(/^sluice_worker_http_requests_total\{worker="\d"\} (\d+)$/gm)].map((m) => Number(m[1]));
    expect(perWorker).toHaveLength(2);
    expect(Math.min(...perWorker)).toBeGreaterThan(0);
  }, 60_000);
});
