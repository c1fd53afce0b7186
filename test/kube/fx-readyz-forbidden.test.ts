// `sluice controller` (a real process) on the chart's RBAC with HTTPRoute, a kind it cannot serve
// without, left out of its ClusterRole: it is not ready, and /readyz says why (the 403, from
// SLU_SOURCE_READ) where it said only "no configuration applied yet"; granted, it becomes ready
// without a restart. (An optional kind left out: test/kube/kube-trouble-controller.test.ts.)
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { sluice, waitFor, type Proc } from './processes.ts';
import { chartRbacWithout, type TrimmedRbac } from './chart-rbac.ts';
import { freePorts } from '../support/ports.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const suite = describeIfPossible('Kubernetes-mode /readyz tests', binariesSkipReason(['kube-apiserver', 'etcd', 'helm']), kubeTestsRequired());
const NS = 'sluice-system';
const RELEASE = 'sluice';

suite('sluice controller that may not list HTTPRoutes', () => {
  let cluster: TestCluster;
  let controller: Proc;
  let adminPort: number;
  let rbac: TrimmedRbac;
  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    return { status: res.status, body: await res.text() };
  };

  beforeAll(async () => {
    cluster = await startTestCluster({ installSafeUpgradesPolicy: false });
    const c = cluster.client;
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    rbac = await chartRbacWithout(cluster, RELEASE, NS, 'httproutes');
    const [snapshotPort, admin] = await freePorts(2);
    adminPort = admin!;
    controller = sluice(['controller', '--kubeconfig', rbac.kubeconfig, '--snapshot-address', `127.0.0.1:${snapshotPort}`, '--admin-address', `127.0.0.1:${adminPort}`, '--name', 'controller-0']);
  }, 180_000);

  afterAll(async () => {
    await controller?.stop();
    await cluster?.stop();
  });

  it('not ready, /readyz names the refused kind; granted, ready', async () => {
    const refused = await waitFor('/readyz naming the refused kind', async () => {
      const r = await readyz().catch(() => undefined);
      return r?.status === 503 && r.body.includes('SLU_SOURCE_READ') ? r.body : undefined;
    }, 60_000);
    expect(refused).toMatch(/^not ready: no configuration applied yet, while:\nSLU_SOURCE_READ httproutes\.gateway\.networking\.k8s\.io: HTTPRoute: cannot list\/watch \(.*cannot list resource "httproutes".*\); nothing is translated until it has listed\n$/);
    await rbac.grant();
    // Within the backoff (<= 30 s), without a restart.
    await waitFor('ready', async () => (await readyz()).body === 'ready\n' || undefined, 45_000);
  }, 120_000);
});
