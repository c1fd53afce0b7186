// L7 HTTP policy with real eBPF (root, network namespaces): `sluice run` in the client namespace
// with the BPF programs attached, backends in their own namespaces behind cluster IPs routed
// nowhere. The seed CiliumNetworkPolicy (GET /api/products, POST /api/orders,
// GET /api/users/[0-9]+) governs the api endpoint on 8080: the proxy enforces the HTTP rules, the
// kernel the L3/L4 part (port 9090 of the same endpoint stays refused at connect()). A second
// policy in audit mode forwards what it would deny. Flows of both kinds land in one stream.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Flow } from '../../ir/flow.ts';
import { ebpfSkipReason, ebpfTestsRequired } from './support/skip.ts';
import { makeTopology, type Topology } from './support/topology.ts';
import { describeIfPossible } from '../support/suite.ts';
import { SEED_HTTP_RULES, httpPolicyYaml } from '../support/http-policy-yaml.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SLUICE = join(ROOT, 'bin', 'sluice.js');
const REQUESTS = join(import.meta.dirname, 'support', 'http-requests.ts');
const HTTP_BODY = join(import.meta.dirname, 'support', 'http-body.ts');
const suite = describeIfPossible('eBPF L7 policy tests', ebpfSkipReason(), ebpfTestsRequired());

const service = (name: string, app: string, vip: string, port: number, address: string) => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { clusterIP: ${vip}, selector: { app: ${app} }, ports: [{ port: 80, targetPort: ${port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ port: ${port} }]
endpoints: [{ addresses: [${address}] }]
`;

const manifests = (topo: Topology) => `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: cilium
  listeners: [{ name: http, protocol: HTTP, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: routes, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /api } }]
    backendRefs: [{ name: api, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /admin } }]
    backendRefs: [{ name: api-admin, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /legacy } }]
    backendRefs: [{ name: legacy, port: 80 }]
---
${service('api', 'api', '10.96.0.60', 8080, topo.backendAddress(1))}
---
apiVersion: v1
kind: Pod
metadata: { name: api-0, namespace: default, labels: { app: api } }
status: { phase: Running, podIP: ${topo.backendAddress(1)} }
---
${service('api-admin', 'api', '10.96.0.61', 9090, topo.backendAddress(1))}
---
${service('legacy', 'legacy', '10.96.0.62', 8080, topo.backendAddress(2))}
---
${httpPolicyYaml({ name: 'api-l7', app: 'api', port: 8080, rules: SEED_HTTP_RULES })}---
${httpPolicyYaml({ name: 'legacy-l7', app: 'legacy', port: 8080, rules: ['{method: GET}'], audit: true })}`;

suite('L7 HTTP policy over eBPF (root, network namespaces)', () => {
  let topo: Topology;
  let dir: string;
  let child: ChildProcess;
  let logs = '';

  beforeAll(async () => {
    topo = makeTopology(2);
    await topo.startBackends([8080, 9090]);
    dir = mkdtempSync(join(tmpdir(), 'sluice-bpf-l7-'));
    writeFileSync(join(dir, 'app.yaml'), manifests(topo));
    child = topo.spawnClient(SLUICE, ['run', '--manifests', dir, '--admin-address', '127.0.0.1:9902', '--bpf', 'on', '--bpf-pin-dir', topo.pinDir, '--bpf-cgroup', topo.cgroupPath]);
    child.stdout!.on('data', (d) => (logs += d));
    child.stderr!.on('data', (d) => (logs += d));
    for (let i = 0; i < 100; i++) {
      const ready = await topo.runClient(HTTP_BODY, ['http://127.0.0.1:9902/readyz']).catch(() => '');
      if (ready.startsWith('ready')) return;
      if (child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`sluice did not become ready:\n${logs}`);
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const send = async (list: [string, string][]) => JSON.parse(await topo.runClient(REQUESTS, ['http://127.0.0.1', JSON.stringify(list)])) as ({ status: number; body: string } | { error: string })[];

  it('allows exactly the seed requests through the gateway and 403s the rest (enforce), kernel L3/L4 still in force', async () => {
    expect(logs).toContain('eBPF on');
    const allowed = await send([
      ['GET', '/api/products'],
      ['POST', '/api/orders'],
      ['GET', '/api/users/7'],
    ]);
    expect(allowed).toEqual([1, 2, 3].map(() => ({ status: 200, body: 'be1:8080' })));
    const denied = await send([
      ['GET', '/api/users/seven'],
      ['PUT', '/api/products'],
      ['GET', '/api/admin'],
    ]);
    expect(denied).toEqual([1, 2, 3].map(() => ({ status: 403, body: 'Access denied\r\n' })));
    // Port 9090 of the same endpoint: no rule allows it, the kernel refuses connect() (502).
    expect((await send([['GET', '/admin']])).map((r) => ('status' in r ? r.status : r.error))).toEqual([502]);
  });

  it('forwards in audit mode what it would deny', async () => {
    expect(await send([['GET', '/legacy'], ['DELETE', '/legacy']])).toEqual([
      { status: 200, body: 'be2:8080' },
      { status: 200, body: 'be2:8080' },
    ]);
  });

  it('keeps kernel and request flows in one stream: L7 drops and audits with their rule, the kernel drop of 9090', async () => {
    const flows = (await topo.runClient(HTTP_BODY, ['http://127.0.0.1:9902/api/flows']))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Flow);
    const l7 = flows.filter((f) => f.type === 'L7' && f.verdict !== 'FORWARDED').map((f) => `${f.verdict} ${f.l7!.method} ${f.l7!.path} ${f.rule?.name}`);
    expect(l7).toEqual([
      'DROPPED GET /api/users/seven ciliumnetworkpolicy/default/api-l7/ingress/0',
      'DROPPED PUT /api/products ciliumnetworkpolicy/default/api-l7/ingress/0',
      'DROPPED GET /api/admin ciliumnetworkpolicy/default/api-l7/ingress/0',
      'DROPPED GET /admin undefined', // refused at connect() by default deny: no rule
      'AUDIT DELETE /legacy ciliumnetworkpolicy/default/legacy-l7/ingress/0',
    ]);
    // The request whose connection the kernel refused says why, in its own record.
    expect(flows.find((f) => f.type === 'L7' && f.l7!.path === '/admin')).toMatchObject({ verdict: 'DROPPED', dropReason: 'DEFAULT_DENY', l7: { status: 502 }, destination: { port: 9090 } });
    const kernelDrop = flows.find((f) => f.type !== 'L7' && f.verdict === 'DROPPED');
    expect(kernelDrop).toMatchObject({ dropReason: 'DEFAULT_DENY', destination: { ip: topo.backendAddress(1), port: 9090 }, service: { name: 'api-admin' } });
    // Forwarded requests went to the endpoint itself (userspace picking for an L7-governed backend).
    expect(flows.find((f) => f.type === 'L7' && f.l7!.path === '/api/products')).toMatchObject({ verdict: 'FORWARDED', destination: { ip: topo.backendAddress(1), port: 8080 } });
  });

  it('names the Pod on kernel records too, so --to-pod finds them (hubble observe --to-pod)', async () => {
    const query = async (q: string) =>
      (await topo.runClient(HTTP_BODY, [`http://127.0.0.1:9902/api/flows?${q}`]))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Flow);
    const kernel = await query('type=l3/l4&to-pod=default/api-0');
    // The kernel's records of the gateway's connections to api-0: 8080 (allowed), 9090 (refused).
    expect(new Set(kernel.map((f) => `${f.verdict} ${f.destination.port} ${f.destination.pod}`))).toEqual(new Set(['FORWARDED 8080 default/api-0', 'DROPPED 9090 default/api-0']));
    expect((await query('type=l3/l4&to-pod=api-')).length).toBe(kernel.length);
    // legacy has no Pod object: its records name none, and no --to-pod filter finds them.
    expect((await query('type=l3/l4&to-pod=legacy')).length).toBe(0);
    expect((await query('type=l3/l4')).some((f) => f.destination.ip === topo.backendAddress(2) && f.destination.pod === undefined)).toBe(true);
  });
});
