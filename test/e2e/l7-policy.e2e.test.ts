// L7 network policy through a real `sluice run`: a CiliumNetworkPolicy with the seed rules
// (GET /api/products, POST /api/orders, GET /api/users/[0-9]+) in front of a real backend, one
// in audit mode in front of another, and gRPC method paths. Denied requests get Cilium's 403
// `Access denied` and never reach the backend; each request leaves a flow record with its verdict
// and the rule that decided, served by /api/flows and `sluice observe`.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import type { Flow } from '../../ir/flow.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { GATEWAY_YAML } from './backends.ts';
import { SEED_HTTP_RULES, httpPolicyYaml } from '../support/http-policy-yaml.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** A backend on its own loopback address (its own identity) that remembers what reached it. */
interface Backend {
  address: string;
  port: number;
  seen: string[];
  close(): Promise<void>;
}

async function startBackend(address: string): Promise<Backend> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end(`hello from ${address}`));
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return {
    address,
    port: (server.address() as { port: number }).port,
    seen,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

const service = (name: string, app: string, b: Backend, vip: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  clusterIP: ${vip}
  selector: {app: ${app}}
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: default, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: http, port: ${b.port}}]
endpoints: [{addresses: [${b.address}]}]
`;

const route = (name: string, prefix: string, backend: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ${prefix}}}]
    backendRefs: [{name: ${backend}, port: 80}]
`;

const policies = (api: Backend, legacy: Backend, grpc: Backend) =>
  [
    httpPolicyYaml({ name: 'api-l7', app: 'api', port: api.port, rules: SEED_HTTP_RULES }),
    httpPolicyYaml({ name: 'legacy-l7', app: 'legacy', port: legacy.port, rules: ['{method: GET}'], audit: true }),
    httpPolicyYaml({ name: 'grpc-l7', app: 'grpc', port: grpc.port, rules: ['{method: POST, path: /shop.Catalog/GetProduct}'] }),
  ].join('---\n');

/** Requests with `x-mirror: yes` go to legacy, and a copy to api: the copy meets api's rules too. */
const MIRRORED = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirrored, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-mirror, value: "yes"}]}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: api, port: 80}}}]
    backendRefs: [{name: legacy, port: 80}]
`;

describe('L7 HTTP policy through sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let api: Backend;
  let legacy: Backend;
  let grpc: Backend;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-l7-'));
    [api, legacy, grpc] = await Promise.all([startBackend('127.0.0.2'), startBackend('127.0.0.3'), startBackend('127.0.0.4')]);
    writeFileSync(join(dir, 'gateway.yaml'), [GATEWAY_YAML, service('api', 'api', api, '10.96.0.10'), service('legacy', 'legacy', legacy, '10.96.0.11'), service('grpc', 'grpc', grpc, '10.96.0.12')].join('---\n'));
    writeFileSync(join(dir, 'routes.yaml'), [route('api', '/api', 'api'), route('legacy', '/legacy', 'legacy'), route('grpc', '/shop.Catalog', 'grpc'), MIRRORED].join('---\n'));
    writeFileSync(join(dir, 'policy.yaml'), policies(api, legacy, grpc));
    port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80), '--access-log', join(dir, 'access.log'), '--access-log-fields', 'method,path,status,verdict,rule']);
  });

  afterAll(async () => {
    await sluice?.stop();
    await Promise.all([api, legacy, grpc].filter(Boolean).map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const send = async (method: string, path: string) => {
    const res = await request(`http://127.0.0.1:${port}${path}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
    return { status: res.statusCode, body: await res.body.text() };
  };

  it('forwards exactly the requests the rules allow and answers the others 403 Access denied, unseen by the backend', async () => {
    for (const [method, path] of [
      ['GET', '/api/products'],
      ['POST', '/api/orders'],
      ['GET', '/api/users/42'],
    ] as const) {
      expect(await send(method, path)).toEqual({ status: 200, body: 'hello from 127.0.0.2' });
    }
    for (const [method, path] of [
      ['GET', '/api/users/abc'],
      ['DELETE', '/api/products'],
      ['POST', '/api/products'],
      ['GET', '/api/orders'],
      ['GET', '/api/products?page=2'],
    ] as const) {
      expect(await send(method, path)).toEqual({ status: 403, body: 'Access denied\r\n' });
    }
    expect(api.seen).toEqual(['GET /api/products', 'POST /api/orders', 'GET /api/users/42']);
  });

  it('forwards in audit mode what it would deny', async () => {
    expect((await send('GET', '/legacy/a')).status).toBe(200);
    expect((await send('POST', '/legacy/b')).status).toBe(200);
    expect(legacy.seen).toEqual(['GET /legacy/a', 'POST /legacy/b']);
  });

  it('reads gRPC methods as POST /package.Service/Method', async () => {
    expect((await send('POST', '/shop.Catalog/GetProduct')).status).toBe(200);
    expect(await send('POST', '/shop.Catalog/DeleteProduct')).toEqual({ status: 403, body: 'Access denied\r\n' });
    expect(grpc.seen).toEqual(['POST /shop.Catalog/GetProduct']);
  });

  it('records a flow per request: denied ones DROPPED (POLICY_L7) with their rule, audited ones AUDIT', async () => {
    const flows = async (query: string): Promise<Flow[]> =>
      (await (await fetch(`${sluice.admin}/api/flows?${query}`)).text())
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Flow);
    const dropped = await flows('verdict=DROPPED&type=l7');
    expect(dropped.map((f) => `${f.l7!.method} ${f.l7!.path} ${f.l7!.status} ${f.dropReason} ${f.rule?.name}`)).toEqual([
      'GET /api/users/abc 403 POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0',
      'DELETE /api/products 403 POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0',
      'POST /api/products 403 POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0',
      'GET /api/orders 403 POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0',
      'GET /api/products?page=2 403 POLICY_L7 ciliumnetworkpolicy/default/api-l7/ingress/0',
      'POST /shop.Catalog/DeleteProduct 403 POLICY_L7 ciliumnetworkpolicy/default/grpc-l7/ingress/0',
    ]);
    expect(dropped[0]).toMatchObject({
      type: 'L7',
      direction: 'ingress',
      destination: { ip: '127.0.0.2', port: api.port, namespace: 'default' },
      service: { namespace: 'default', name: 'api', port: 80 },
      route: { source: 'default/api' },
    });
    expect(dropped[0]!.destination.labels).toContain('k8s:app=api');
    const audited = await flows('verdict=AUDIT');
    expect(audited.map((f) => `${f.l7!.method} ${f.l7!.path} ${f.l7!.status} ${f.rule?.name}`)).toEqual(['POST /legacy/b 200 ciliumnetworkpolicy/default/legacy-l7/ingress/0']);
    const forwarded = await flows('verdict=FORWARDED&to-service=default/api');
    expect(forwarded.map((f) => `${f.l7!.method} ${f.l7!.path} ${f.l7!.status}`)).toEqual(['GET /api/products 200', 'POST /api/orders 200', 'GET /api/users/42 200']);
    expect((await flows('http-status=4%2B&http-method=delete')).map((f) => f.l7!.path)).toEqual(['/api/products']);
  });

  it('`sluice observe --verdict DROPPED --type l7 -o json` prints the denied requests in Hubble flow JSON, with their rule', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), 'observe', '--admin-address', sluice.admin.replace('http://', ''), '--verdict', 'DROPPED', '--type', 'l7', '-o', 'json']);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { flow: Record<string, any> });
    expect(lines).toHaveLength(6);
    const first = lines[0]!.flow;
    expect(first).toMatchObject({
      verdict: 'DROPPED',
      Type: 'L7',
      traffic_direction: 'INGRESS',
      l7: { type: 'REQUEST', http: { code: 403, method: 'GET', url: 'http://127.0.0.1/api/users/abc', protocol: 'HTTP/1.1' } },
      destination: { namespace: 'default', labels: expect.arrayContaining(['k8s:app=api']) },
      destination_service: { name: 'api', namespace: 'default' },
      ingress_denied_by: [{ name: 'ciliumnetworkpolicy/default/api-l7/ingress/0' }],
      drop_reason_desc: 'POLICY_DENIED',
      sluice: { drop_reason: 'POLICY_L7', route: { source: 'default/api' } },
    });
  });

  it('counts drops and policy verdicts as Hubble names them, and writes the access log', async () => {
    const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_flow_drops_total\{reason="POLICY_L7",protocol="TCP"\} 6$/m);
    expect(metrics).toMatch(/^sluice_flow_policy_verdicts_total\{direction="ingress",match="l7\/http",action="dropped"\} 6$/m);
    expect(metrics).toMatch(/^sluice_flow_policy_verdicts_total\{direction="ingress",match="l7\/http",action="audit"\} 1$/m);
    expect(metrics).toMatch(/^sluice_flow_http_requests_total\{method="GET",status="200",source_namespace="",destination_namespace="default",destination_workload="api"\} 2$/m);
    // Lines are written asynchronously: wait (2 s at most) for the 12 requests sent above.
    const read = () => readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    for (let i = 0; i < 40 && read().length < 12; i++) await new Promise((r) => setTimeout(r, 50));
    const lines = read();
    expect(lines).toContainEqual({ method: 'GET', path: '/api/users/abc', status: 403, verdict: 'DROPPED', rule: 'ciliumnetworkpolicy/default/api-l7/ingress/0' });
    expect(lines).toContainEqual({ method: 'GET', path: '/api/products', status: 200, verdict: 'FORWARDED', rule: 'ciliumnetworkpolicy/default/api-l7/ingress/0' });
    expect(lines).toHaveLength(12);
  });

  it('holds for mirrored copies too: a copy the rules deny never reaches the endpoint', async () => {
    const before = api.seen.length;
    for (const path of ['/api/orders', '/api/products']) {
      const res = await request(`http://127.0.0.1:${port}${path}`, { headers: { 'x-mirror': 'yes' } });
      expect(res.statusCode).toBe(200); // legacy answered (audit mode)
      await res.body.text();
    }
    // Copies are sent after the real request, fire and forget: wait (2 s at most) for the allowed one.
    for (let i = 0; i < 40 && api.seen.length === before; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200));
    expect(api.seen.slice(before)).toEqual(['GET /api/products']);
  });
});
