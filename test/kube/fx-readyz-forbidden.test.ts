// `sluice controller` (a real process) on the chart's RBAC with HTTPRoute, a kind it cannot serve
// without, left out of its ClusterRole: it is not ready, and /readyz says why (the 403, from
// SLU_SOURCE_READ) where it said only "no configuration applied yet"; granted, it becomes ready
// without a restart. (An optional kind left out: test/kube/kube-trouble-controller.test.ts.)
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { waitFor } from './processes.ts';
import { startControllerWithout, type RestrictedController } from './chart-rbac.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const suite = describeIfPossible('Kubernetes-mode /readyz tests', binariesSkipReason(['kube-apiserver', 'etcd', 'helm']), kubeTestsRequired());

suite('sluice controller that may not list HTTPRoutes', () => {
  let cluster: TestCluster;
  let running: RestrictedController;

  beforeAll(async () => {
    cluster = await startTestCluster({ installSafeUpgradesPolicy: false });
    await cluster.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sluice-system' } });
    running = await startControllerWithout(cluster, 'sluice', 'sluice-system', 'httproutes');
  }, 180_000);

  afterAll(async () => {
    await running?.controller.stop();
    await cluster?.stop();
  });

  it('not ready, /readyz names the refused kind; granted, ready', async () => {
    const refused = await waitFor('/readyz naming the refused kind', async () => {
      const r = await running.readyz().catch(() => undefined);
      return r?.status === 503 && r.body.includes('SLU_SOURCE_READ') ? r.body : undefined;
    }, 60_000);
    expect(refused).toMatch(/^not ready: no configuration applied yet, while:\nSLU_SOURCE_READ httproutes\.gateway\.networking\.k8s\.io: HTTPRoute: cannot list\/watch \(.*cannot list resource "httproutes".*\); nothing is translated until it has listed\n$/);
    await running.grant();
    // Within the backoff (<= 30 s), without a restart.
    await waitFor('ready', async () => (await running.readyz()).body === 'ready\n' || undefined, 45_000);
  }, 120_000);
});
