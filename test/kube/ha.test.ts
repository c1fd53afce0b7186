// Two `sluice controller` replicas with leader election, running with a real
// ServiceAccount token bound to the RBAC the Helm chart renders (so the chart's
// ClusterRole and Role are proven sufficient), and one dataplane. Killing the
// leader hands over within 15 s: the follower takes the Lease, writes status
// and serves the dataplane, which keeps serving throughout.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { renderChart } from '../chart/render.ts';
import { freePort, freePorts } from '../support/ports.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { netnsSkipReason, startNetnsEcho, type NetnsEcho } from './netns-echo.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const why = binariesSkipReason(['kube-apiserver', 'etcd', 'helm']) ?? netnsSkipReason();
if (why && !kubeTestsRequired()) console.log(`skipped: Kubernetes HA tests: ${why}`);
const suite = why && !kubeTestsRequired() ? describe.skip : describe;
const NS = 'sluice-system';
const RELEASE = 'sluice';

interface Proc {
  child: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function sluice(args: string[]): Proc {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout!.on('data', (d) => (logs += d));
  child.stderr!.on('data', (d) => (logs += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    logs: () => logs,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

suite('controller replicas with leader election, on the chart RBAC', () => {
  let cluster: TestCluster;
  let echo: NetnsEcho;
  const controllers: Proc[] = [];
  let dataplane: Proc;
  let snapshotPorts: number[];
  let offset: number;
  const route = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: 'app', name: 'web' };
  const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: NS, name: 'sluice-controller' };

  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: 80 + offset, path, headers: { host: 'web.example.com' }, timeout: 2000, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });

  const startController = (i: number, kubeconfig: string) =>
    sluice(['controller', '--kubeconfig', kubeconfig, '--snapshot-address', `127.0.0.1:${snapshotPorts[i]}`, '--admin-address', '127.0.0.1:0',
      '--dataplane-service', `${NS}/${RELEASE}-dataplane`, '--leader-election-namespace', NS, '--name', `controller-${i}`,
      '--leader-address', `http://127.0.0.1:${snapshotPorts[i]}`]);

  beforeAll(async () => {
    cluster = await startTestCluster();
    echo = await startNetnsEcho('web-1', 'app');
    snapshotPorts = await freePorts(2);
    offset = (await freePort()) - 80;
    const c = cluster.client;
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } });
    // The chart's ServiceAccount, ClusterRole(Binding) and Role(Binding), exactly as rendered.
    const rbacKinds = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
    const rendered = renderChart({}, RELEASE, NS).filter((o) => rbacKinds.has(o.kind));
    for (const obj of rendered) await c.create({ ...obj, metadata: { ...obj.metadata, namespace: obj.kind.startsWith('Cluster') ? undefined : NS } });
    const account = rendered.find((o) => o.kind === 'ServiceAccount' && /controller/.test(o.metadata.name));
    const token = await cluster.serviceAccountToken(NS, account!.metadata.name);
    const kubeconfig = cluster.writeKubeconfig(join(cluster.dir, 'controller.kubeconfig'), { token });
    await c.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: `${RELEASE}-dataplane`, namespace: NS }, spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80 }] } });
    await c.mergePatch({ apiVersion: 'v1', kind: 'Service', namespace: NS, name: `${RELEASE}-dataplane` }, { status: { loadBalancer: { ingress: [{ ip: '127.0.0.1' }] } } }, 'status');
    await c.create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'cilium' }, spec: { controllerName: 'sluice.dev/gateway-controller' } });
    await c.create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'app' }, spec: { gatewayClassName: 'cilium', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } });
    await c.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'app' }, spec: { ports: [{ port: 8080 }] } });
    await c.create({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'web-1', namespace: 'app', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4', ports: [{ port: echo.port }], endpoints: [{ addresses: [echo.address] }],
    });
    await c.create({
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'app' },
      spec: { parentRefs: [{ name: 'gw' }], hostnames: ['web.example.com'], rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }] },
    });
    controllers.push(startController(0, kubeconfig));
    controllers.push(startController(1, kubeconfig));
    // The dataplane knows only replica 0; when replica 1 leads it is redirected there.
    dataplane = sluice(['dataplane', '--controller', `http://127.0.0.1:${snapshotPorts[0]}`, '--name', 'dp-1', '--admin-address', '127.0.0.1:0',
      '--listener-port-offset', String(offset), '--bpf', 'off']);
  }, 180000);

  afterAll(async () => {
    await dataplane?.stop();
    for (const c of controllers) await c.stop();
    echo?.stop();
    await cluster?.stop();
  });

  it('one replica leads, writes status with the chart RBAC, and the dataplane serves', async () => {
    await waitFor('traffic', async () => (await get('/')) === 200, 40000);
    const holder = await waitFor('a leader', async () => (await cluster.client.get(lease)).spec?.holderIdentity as string | undefined);
    expect(['controller-0', 'controller-1']).toContain(holder);
    const r = await waitFor('route status', async () => {
      const obj = await cluster.client.get(route);
      return obj.status?.parents?.[0]?.conditions?.find((c: any) => c.type === 'Accepted')?.status === 'True' && obj;
    });
    expect(r.status.parents[0].controllerName).toBe('sluice.dev/gateway-controller');
    for (const c of controllers) expect(c.logs()).not.toMatch(/forbidden|\b403\b/i);
  });

  it('hands over within 15 s when the leader is killed, and traffic keeps flowing', async () => {
    const holder = (await cluster.client.get(lease)).spec.holderIdentity as string;
    const leader = controllers[Number(holder.split('-')[1])]!;
    let failed = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        try {
          if ((await get('/during-failover')) !== 200) failed++;
        } catch {
          failed++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const killedAt = Date.now();
    await leader.stop('SIGKILL');
    const next = await waitFor('a new leader', async () => {
      const h = (await cluster.client.get(lease)).spec?.holderIdentity as string | undefined;
      return h && h !== holder ? h : undefined;
    }, 20000);
    const handoverMs = Date.now() - killedAt;
    // The new leader writes status: a spec change gets its observedGeneration.
    const updated = await cluster.client.mergePatch<any>(route, { spec: { hostnames: ['web.example.com', 'other.example.com'] } });
    await waitFor('status from the new leader', async () => {
      const obj = await cluster.client.get(route);
      return obj.status?.parents?.[0]?.conditions?.find((c: any) => c.type === 'Accepted')?.observedGeneration === updated.metadata.generation;
    });
    running = false;
    await load;
    console.log(`leader ${holder} killed; ${next} leads after ${handoverMs} ms`);
    expect(handoverMs).toBeLessThan(15000);
    expect(failed).toBe(0);
  });
});
