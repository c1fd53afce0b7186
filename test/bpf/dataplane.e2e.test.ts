// The dataplane with and without the BPF agent, on the real kernel. A `sluice
// run` in the client namespace routes HTTP to Services whose cluster IPs are
// routed nowhere: with eBPF on they only work because connect() to the VIP is
// translated in the kernel; with eBPF off the proxy picks endpoints itself.
// A CiliumNetworkPolicy allows the gateway to one port of one app only.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ebpfSkipReason, ebpfTestsRequired } from './support/skip.ts';
import { makeTopology, type Topology } from './support/topology.ts';
import { describeIfPossible } from '../support/suite.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SLUICE = join(ROOT, 'bin', 'sluice.js');
const HTTP_GET = join(import.meta.dirname, 'support', 'http-get.ts');
const suite = describeIfPossible('eBPF dataplane tests', ebpfSkipReason(), ebpfTestsRequired());

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
  - matches: [{ path: { type: PathPrefix, value: /web } }]
    backendRefs: [{ name: web, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /locked } }]
    backendRefs: [{ name: locked, port: 80 }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { clusterIP: 10.96.0.50, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ port: 8080 }]
endpoints:
- addresses: [${topo.backendAddress(1)}]
- addresses: [${topo.backendAddress(2)}]
---
apiVersion: v1
kind: Service
metadata: { name: locked, namespace: default }
spec: { clusterIP: 10.96.0.51, selector: { app: locked }, ports: [{ port: 80, targetPort: 9090 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: locked-1, namespace: default, labels: { kubernetes.io/service-name: locked } }
addressType: IPv4
ports: [{ port: 9090 }]
endpoints:
- addresses: [${topo.backendAddress(3)}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: locked-only-8080, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: locked } }
  ingress:
  - fromEntities: [ingress]
    toPorts: [{ ports: [{ port: "8080", protocol: TCP }] }]
`;

suite('dataplane over eBPF (root, network namespaces)', () => {
  let topo: Topology;
  let dir: string;

  beforeAll(async () => {
    topo = makeTopology(3);
    await topo.startBackends([8080, 9090]);
    dir = mkdtempSync(join(tmpdir(), 'sluice-bpf-'));
    writeFileSync(join(dir, 'app.yaml'), manifests(topo));
  });

  afterAll(() => {
    topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = async (path: string, count: number) =>
    JSON.parse(await topo.runClient(HTTP_GET, [`http://127.0.0.1${path}`, String(count)])) as {
      statuses: Record<string, number>;
      bodies: Record<string, number>;
      errors: Record<string, number>;
    };

  const runSluice = async (bpf: 'on' | 'off'): Promise<{ child: ChildProcess; logs: () => string }> => {
    const child = topo.spawnClient(SLUICE, [
      'run', '--manifests', dir, '--admin-address', '127.0.0.1:9901',
      '--bpf', bpf, '--bpf-pin-dir', topo.pinDir, '--bpf-cgroup', topo.cgroupPath,
    ]);
    let logs = '';
    child.stdout!.on('data', (d) => (logs += d));
    child.stderr!.on('data', (d) => (logs += d));
    for (let i = 0; i < 100; i++) {
      const r = await get(':9901/readyz', 1);
      if (r.statuses['200']) return { child, logs: () => logs };
      if (child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`sluice did not become ready:\n${logs}`);
  };
  const stop = async (child: ChildProcess) => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };

  it('with eBPF on: the kernel picks endpoints behind the VIP and the policy refuses the denied port (502)', async () => {
    const { child, logs } = await runSluice('on');
    try {
      expect(logs()).toContain('eBPF on');
      const web = await get('/web', 40);
      expect(web.statuses).toEqual({ 200: 40 });
      expect(Object.keys(web.bodies).sort()).toEqual(['be1:8080', 'be2:8080']);
      const locked = await get('/locked', 3);
      // connect() refused by the kernel: 502, as for any endpoint that refuses (503 once retries are configured).
      expect(locked.statuses).toEqual({ 502: 3 });

      const observed = await topo.runClient(SLUICE, ['observe', '--admin-address', '127.0.0.1:9901', '--verdict', 'DROPPED', '--type', 'l3/l4', '--to-service', 'default/locked', '-o', 'json']);
      // Hubble's flow JSON (cmd/observe.ts), Sluice's own names under `sluice`.
      const flows = observed.trim().split('\n').map((l) => JSON.parse(l).flow);
      expect(flows.length).toBeGreaterThanOrEqual(3);
      expect(flows[0]).toMatchObject({
        verdict: 'DROPPED',
        drop_reason_desc: 'POLICY_DENIED',
        Type: 'L3_L4',
        IP: { destination: topo.backendAddress(3) },
        l4: { TCP: { destination_port: 9090 } },
        destination_service: { namespace: 'default', name: 'locked' },
        sluice: { drop_reason: 'DEFAULT_DENY', vip: '10.96.0.51', service_port: 80 },
      });
      const text = await topo.runClient(SLUICE, ['observe', '--admin-address', '127.0.0.1:9901', '--verdict', 'FORWARDED', '--namespace', 'default']);
      expect(text).toMatch(/-> 10\.201\.[12]\.2:8080 \(default\) to-service default\/web \(10\.96\.0\.50:80\) ingress TCP FORWARDED/);

      // --follow streams flows as they happen.
      const follower = topo.spawnClient(SLUICE, ['observe', '--admin-address', '127.0.0.1:9901', '--follow', '--to-service', 'default/locked', '-o', 'json']);
      let followed = '';
      follower.stdout!.on('data', (d) => (followed += d));
      const before = followed.split('\n').filter(Boolean).length;
      await new Promise((resolve) => setTimeout(resolve, 300));
      const already = followed.split('\n').filter(Boolean).length;
      await get('/locked', 1);
      for (let i = 0; i < 50 && followed.split('\n').filter(Boolean).length <= already; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      follower.kill('SIGTERM');
      expect(before).toBeLessThanOrEqual(already);
      expect(followed.split('\n').filter(Boolean).length).toBeGreaterThan(already);

      const metrics = await topo.runClient(join(import.meta.dirname, 'support', 'http-body.ts'), ['http://127.0.0.1:9901/metrics']);
      expect(metrics).toMatch(/sluice_drops_total\{reason="DEFAULT_DENY"\} [1-9]/);
      expect(metrics).toMatch(/sluice_policy_verdict_total\{verdict="DROPPED",direction="ingress",namespace="default"\} [1-9]/);
    } finally {
      await stop(child);
    }
  });

  it('with eBPF off: the proxy picks endpoints itself and says why eBPF is off', async () => {
    // The pinned programs of the previous test would still translate; start from a clean slate.
    rmSync(topo.pinDir, { recursive: true, force: true });
    const { child, logs } = await runSluice('off');
    try {
      const web = await get('/web', 20);
      expect(web.statuses).toEqual({ 200: 20 });
      expect(Object.keys(web.bodies).sort()).toEqual(['be1:8080', 'be2:8080']);
      // No enforcement without the kernel side: the port the policy denies answers.
      expect((await get('/locked', 1)).statuses).toEqual({ 200: 1 });
      expect(logs()).not.toContain('eBPF on');
    } finally {
      await stop(child);
    }
  });
});
