// Two `sluice controller` replicas with leader election, running with a real
// ServiceAccount token bound to the RBAC the Helm chart renders (so the chart's
// ClusterRole and Role are proven sufficient), and one dataplane. Killing the
// leader hands over within 15 s: the follower takes the Lease, writes status
// and serves the dataplane, which keeps serving throughout.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { ROUTE, createWebApp, getWithHost, sluice, waitFor, type Proc } from './processes.ts';
import { renderChart } from '../chart/render.ts';
import { freePort, freePorts } from '../support/ports.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { netnsSkipReason, startNetnsEcho, type NetnsEcho } from './netns-echo.ts';
import { describeIfPossible } from '../support/suite.ts';

const suite = describeIfPossible('Kubernetes HA tests', binariesSkipReason(['kube-apiserver', 'etcd', 'helm']) ?? netnsSkipReason(), kubeTestsRequired());
const NS = 'sluice-system';
const RELEASE = 'sluice';

suite('controller replicas with leader election, on the chart RBAC', () => {
  let cluster: TestCluster;
  let echo: NetnsEcho;
  const controllers: Proc[] = [];
  let dataplane: Proc;
  let snapshotPorts: number[];
  let offset: number;
  const route = ROUTE;
  const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: NS, name: 'sluice-controller' };

  const get = async (path: string) => (await getWithHost(80 + offset, path, 'web.example.com')).status;

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
    // The chart's ServiceAccount, ClusterRole(Binding) and Role(Binding), exactly as rendered.
    const rbacKinds = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
    const rendered = renderChart({}, RELEASE, NS).filter((o) => rbacKinds.has(o.kind));
    for (const obj of rendered) await c.create({ ...obj, metadata: { ...obj.metadata, namespace: obj.kind.startsWith('Cluster') ? undefined : NS } });
    const account = rendered.find((o) => o.kind === 'ServiceAccount' && /controller/.test(o.metadata.name));
    const token = await cluster.serviceAccountToken(NS, account!.metadata.name);
    const kubeconfig = cluster.writeKubeconfig(join(cluster.dir, 'controller.kubeconfig'), { token });
    await createWebApp(c, echo, { namespace: NS, name: `${RELEASE}-dataplane` });
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
