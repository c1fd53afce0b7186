// Review (session 11): Gateway API durations reach 99999h (GEP-2257: up to five digits a unit), far
// past what a Node timer holds (2^31 - 1 ms, 24.8 days): setTimeout runs a longer one after 1 ms.
// Through a real `sluice run`, a route whose timeouts.request / backendRequest is 600h (2.16e9 ms)
// answers as a route without timeouts would, and a retry backoff of 600h is waited, not skipped.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../e2e/backends.ts';
import { runServing, type SluiceProcess } from '../support/sluice-process.ts';


describe('route durations past a Node timer (600h) through a real sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  let backend: http.Server;
  /** Requests the backend saw on /retry. */
  let retried = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-review-s11-long-'));
    backend = http.createServer((req, res) => {
      if (req.url?.startsWith('/retry')) {
        // 503 first (retryable), then 200: the second only after the backoff.
        res.statusCode = retried++ === 0 ? 503 : 200;
        res.end(`answer ${retried}`);
      } else setTimeout(() => res.end('slow but fine'), 300);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const routes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /request}}]
    timeouts: {request: 600h}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /backend}}]
    timeouts: {request: 601h, backendRequest: 600h}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /retry}}]
    timeouts: {request: 2s}
    retry: {codes: [503], attempts: 1, backoff: 600h}
    backendRefs: [{name: app, port: 80}]
  - backendRefs: [{name: app, port: 80}]
`;
    writeFileSync(join(dir, 'all.yaml'), [httpGatewayYaml(80), serviceYaml('app', { port: (backend.address() as net.AddressInfo).port }), routes].join('---\n'));
    ({ sluice, port } = await runServing(dir));
  }, 60_000);

  afterAll(async () => {
    await sluice?.stop();
    backend?.closeAllConnections();
    backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(['/request', '/backend'])('%s: a backend answering after 300 ms is relayed (not a 504 after 1 ms)', async (path) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`);
    expect(`${response.status} ${await response.text()}`).toBe('200 slow but fine');
  });

  it('a retry backoff of 600h is waited: the request timeout (2 s) ends the request, the backend sees one request', async () => {
    const start = performance.now();
    const response = await fetch(`http://127.0.0.1:${port}/retry`);
    expect(response.status).toBe(504);
    expect(performance.now() - start).toBeGreaterThanOrEqual(1_900);
    expect(retried).toBe(1);
  });
});
