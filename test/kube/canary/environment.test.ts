// The canary tests' environment on its own: the real kube-controller-manager turns a Deployment
// into ReplicaSets, Pods and EndpointSlices; the test kubelet runs the pods; Sluice (Kubernetes
// mode) serves them. A rolling update under steady traffic loses no request.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Pool } from 'undici';
import { describeIfPossible } from '../../support/suite.ts';
import { binariesSkipReason, kubeTestsRequired } from '../cluster.ts';
import { netnsSkipReason } from '../netns-echo.ts';
import { waitFor } from '../processes.ts';
import { canaryBinariesSkipReason } from './controllers.ts';
import { NAMESPACE, startCanaryEnvironment, webApp, type CanaryEnvironment } from './environment.ts';

const suite = describeIfPossible(
  'the canary environment',
  binariesSkipReason() ?? canaryBinariesSkipReason(['kube-controller-manager']) ?? netnsSkipReason(),
  kubeTestsRequired(),
);

interface Answer {
  status: number;
  pod?: string;
  version?: string;
}

suite('kube-controller-manager + test kubelet + Sluice', () => {
  let env: CanaryEnvironment;
  let pool: Pool;
  const app = webApp('web', 2, { VERSION: 'v1' });
  const get = async (): Promise<Answer> => {
    try {
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: 'web.example.com' } });
      const text = await res.body.text();
      return res.statusCode === 200 ? { status: 200, ...(JSON.parse(text) as { pod: string; version: string }) } : { status: res.statusCode };
    } catch {
      return { status: 0 };
    }
  };

  beforeAll(async () => {
    env = await startCanaryEnvironment();
    pool = new Pool(`http://127.0.0.1:${env.port}`, { connections: 8 });
    await env.client.create(app.service as never);
    await env.client.create(app.deployment as never);
    await env.client.create({
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'web', namespace: NAMESPACE },
      spec: { parentRefs: [{ name: 'gw' }], hostnames: ['web.example.com'], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
    });
  }, 240_000);

  afterAll(async () => {
    await pool?.close();
    await env?.stop();
  });

  it('a Deployment gets Ready pods with IPs and EndpointSlices, and Sluice serves every pod', async () => {
    const deployment = await waitFor('2 available replicas', async () => {
      const d = await env.client.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NAMESPACE, name: 'web' });
      return d.status?.availableReplicas === 2 && d;
    }, 60_000).catch(async (error: Error) => {
      const pods = await env.client.list({ apiVersion: 'v1', kind: 'Pod', namespace: NAMESPACE });
      throw new Error(`${error.message}\npods: ${JSON.stringify(pods.items.map((p) => ({ name: p.metadata.name, node: p.spec.nodeName, status: p.status })))}\n${env.logs()}\n--- kube-controller-manager\n${env.controllerManager.logs().slice(-3000)}`);
    });
    expect(deployment.status.readyReplicas).toBe(2);
    const podIps = [...env.kubelet.pods()].filter(([k]) => k.startsWith(`${NAMESPACE}/web-`)).map(([, ip]) => ip);
    expect(podIps).toHaveLength(2);
    const slices = await waitFor('an EndpointSlice with both pods', async () => {
      const list = await env.client.list({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', namespace: NAMESPACE }, { labelSelector: 'kubernetes.io/service-name=web' });
      const addresses = list.items.flatMap((s) => (s.endpoints ?? []).filter((e: { conditions?: { ready?: boolean } }) => e.conditions?.ready).flatMap((e: { addresses: string[] }) => e.addresses));
      return addresses.length === 2 && list.items;
    }, 60_000);
    expect(slices.flatMap((s) => s.endpoints.flatMap((e: { addresses: string[] }) => e.addresses)).sort()).toEqual([...podIps].sort());
    expect(slices[0]!.ports).toEqual([expect.objectContaining({ name: 'http', port: 8080 })]);

    const pods = await waitFor('answers from both pods', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const a = await get();
        if (a.status === 200) seen.add(a.pod!);
      }
      return seen.size === 2 && seen;
    }, 60_000);
    expect([...pods].every((p) => p.startsWith('web-'))).toBe(true);
  }, 120_000);

  it('a rolling update under steady traffic: every request answered, then only the new version', async () => {
    const answers: Answer[] = [];
    let running = true;
    const traffic = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (running) answers.push(await get());
      }),
    );
    try {
      const v2 = webApp('web', 2, { VERSION: 'v2' }).deployment as { spec: { template: unknown } };
      await env.client.mergePatch({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NAMESPACE, name: 'web' }, { spec: { template: v2.spec.template } });
      await waitFor('the rollout to finish', async () => {
        const d = await env.client.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NAMESPACE, name: 'web' });
        return d.status?.observedGeneration === d.metadata.generation && d.status?.updatedReplicas === 2 && d.status?.replicas === 2 && d.status?.availableReplicas === 2;
      }, 120_000);
      // Until the old pods have finished stopping (preStop sleep, SIGTERM) and v1 is gone.
      await waitFor('only v2 answering', async () => {
        const last = await Promise.all(Array.from({ length: 20 }, () => get()));
        return last.every((a) => a.version === 'v2');
      }, 60_000);
    } finally {
      running = false;
      await traffic;
    }
    const failed = answers.filter((a) => a.status !== 200);
    expect({ failed: failed.length, statuses: [...new Set(failed.map((a) => a.status))] }).toEqual({ failed: 0, statuses: [] });
    expect(answers.filter((a) => a.version === 'v1').length).toBeGreaterThan(0);
    expect(answers.filter((a) => a.version === 'v2').length).toBeGreaterThan(0);
    console.log(`rolling update: ${answers.length} requests, all 200 (v1 ${answers.filter((a) => a.version === 'v1').length}, v2 ${answers.filter((a) => a.version === 'v2').length})`);
  }, 240_000);
});
