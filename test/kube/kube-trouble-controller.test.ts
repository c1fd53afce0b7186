// `sluice controller` (a real process) on the chart's RBAC with TLSRoute left out of its ClusterRole
// (an older chart, or one trimmed by hand): it must still become ready, translate and write status
// for what it may read, say what it cannot read (/readyz, the log), and pick TLSRoute up once the
// ClusterRole grants it, without a restart. Before, it waited for TLSRoute's list forever: never
// ready, nothing translated, no status written.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { waitFor, type Proc } from './processes.ts';
import { startControllerWithout, type RestrictedController } from './chart-rbac.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const suite = describeIfPossible('Kubernetes-mode controller trouble tests', binariesSkipReason(['kube-apiserver', 'etcd', 'helm']), kubeTestsRequired());
const NS = 'sluice-system';
const RELEASE = 'sluice';
const GW = 'gateway.networking.k8s.io/v1';
const CONTROLLER = 'sluice.dev/gateway-controller';

suite('sluice controller on RBAC that leaves a kind out', () => {
  let cluster: TestCluster;
  let running: RestrictedController;
  let controller: Proc;
  const readyz = () => running.readyz();

  beforeAll(async () => {
    cluster = await startTestCluster({ installSafeUpgradesPolicy: false });
    const c = cluster.client;
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } });
    await c.create({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: CONTROLLER } });
    await c.create({ apiVersion: GW, kind: 'Gateway', metadata: { name: 'gw', namespace: 'app' }, spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }, { name: 'tls', protocol: 'TLS', port: 443, tls: { mode: 'Passthrough' } }] } });
    await c.create({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'app' }, spec: { parentRefs: [{ name: 'gw', sectionName: 'http' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } });
    await c.create({ apiVersion: GW, kind: 'TLSRoute', metadata: { name: 'db', namespace: 'app' }, spec: { parentRefs: [{ name: 'gw', sectionName: 'tls' }], hostnames: ['db.example.com'], rules: [{ backendRefs: [{ name: 'db', port: 5432 }] }] } });
    // The chart's RBAC as rendered, but tlsroutes (and its status) taken out of the ClusterRole.
    running = await startControllerWithout(cluster, RELEASE, NS, 'tlsroutes');
    controller = running.controller;
  }, 180_000);

  afterAll(async () => {
    await controller?.stop();
    await cluster?.stop();
  });

  it('becomes ready without TLSRoute, says so, writes the statuses it may; granted, serves TLSRoute too', async () => {
    const notReadable = await waitFor('ready', async () => {
      const r = await readyz().catch(() => undefined);
      return r?.status === 200 ? r.body : undefined;
    }, 60_000);
    expect(notReadable).toMatch(/SLU_SOURCE_READ tlsroutes\.gateway\.networking\.k8s\.io: TLSRoute: cannot list\/watch \(.*cannot list resource "tlsroutes".*\); served as if it had no objects/);
    expect(controller.logs()).toMatch(/serving without TLSRoute: this identity may not list and watch tlsroutes\.gateway\.networking\.k8s\.io \(403\)/);
    const parents = async (kind: string, name: string) =>
      ((await cluster.client.get({ apiVersion: GW, kind, name, namespace: 'app' })).status?.parents ?? []) as { controllerName: string; conditions: { type: string; status: string }[] }[];
    await waitFor('the HTTPRoute status', async () => (await parents('HTTPRoute', 'web')).some((p) => p.controllerName === CONTROLLER), 20_000);

    // Granted (the chart's ClusterRole as rendered): picked up without a restart, within the backoff (<= 30 s).
    await running.grant();
    await waitFor('readyz without problems', async () => (await readyz()).body === 'ready\n' || undefined, 45_000);
    await waitFor('the TLSRoute status', async () => (await parents('TLSRoute', 'db')).some((p) => p.controllerName === CONTROLLER && p.conditions.some((c) => c.type === 'Accepted')), 20_000);
    expect(controller.logs()).toMatch(/TLSRoute: may be listed now \(no longer forbidden\); serving its 1 object/);
  }, 120_000);

  it('the API server away for 30 s: said while it lasts, and after it returns the watches resume and a change is reconciled', async () => {
    await cluster.stopApiServer();
    const t = Date.now();
    // While away: still ready (the last translation stands), every unreadable kind named.
    const away = await waitFor('readyz naming the unreadable kinds', async () => {
      const r = await readyz();
      return r.status === 200 && /SLU_SOURCE_READ httproutes\.gateway\.networking\.k8s\.io: HTTPRoute: cannot list\/watch/.test(r.body) ? r.body : undefined;
    }, 30_000);
    expect(away).toMatch(/^ready, serving the last good configuration while:/);
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - t))));
    await cluster.startApiServer();
    const back = Date.now();
    await cluster.client.mergePatch({ apiVersion: GW, kind: 'HTTPRoute', name: 'web', namespace: 'app' }, { spec: { hostnames: ['web.example.com'] } });
    const generation = (await cluster.client.get({ apiVersion: GW, kind: 'HTTPRoute', name: 'web', namespace: 'app' })).metadata.generation;
    await waitFor('the changed HTTPRoute reconciled', async () => {
      const route = await cluster.client.get({ apiVersion: GW, kind: 'HTTPRoute', name: 'web', namespace: 'app' });
      return route.status?.parents?.some((p: { controllerName: string; conditions: { observedGeneration?: number }[] }) => p.controllerName === CONTROLLER && p.conditions.every((c) => c.observedGeneration === generation)) || undefined;
    }, 45_000);
    const convergedMs = Date.now() - back;
    await waitFor('readyz without problems', async () => (await readyz()).body === 'ready\n' || undefined, 45_000);
    console.log(`API server away ${Math.round((back - t) / 1000)} s; a change made once it was back reconciled ${convergedMs} ms later`);
  }, 150_000);
});
