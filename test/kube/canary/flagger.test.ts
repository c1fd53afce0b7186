// Flagger (meshProvider gatewayapi:v1, the real controller built from the module proxy) drives
// Sluice through the real API server: it writes the HTTPRoute, shifts weights step by step and
// analyses with the MetricTemplates of examples/canary/ on a real Prometheus scraping the
// dataplane. A good canary is promoted (each step's split measured on the wire, no failed request);
// a canary answering 500 to every other request is rolled back, the primary failing nothing.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { freePort } from '../../support/ports.ts';
import { describeIfPossible } from '../../support/suite.ts';
import { binariesSkipReason, kubeBinDir, kubeTestsRequired, type KubeObject } from '../cluster.ts';
import { netnsSkipReason } from '../netns-echo.ts';
import { waitFor } from '../processes.ts';
import { waitFor as waitUntil } from '../../support/wait.ts';
import { canaryBinariesSkipReason, startFlagger, type ControllerProcess } from './controllers.ts';
import { NAMESPACE, startCanaryEnvironment, webApp, type CanaryEnvironment } from './environment.ts';
import { prometheusSkipReason, startPrometheus, type Prometheus } from './prometheus.ts';
import { appliedTimes, percentile, splitPerStep, startTraffic, watchWeights, type Traffic } from './traffic.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const HOST = 'podinfo.example.com';

const suite = describeIfPossible(
  'Flagger canaries through Sluice',
  binariesSkipReason() ?? canaryBinariesSkipReason(['kube-controller-manager', 'flagger']) ?? netnsSkipReason() ?? prometheusSkipReason(),
  kubeTestsRequired(),
);

/** Flagger's CRDs, from the module source build-binaries.sh built it from. */
function flaggerCrds(): KubeObject[] {
  const version = /^FLAGGER_VERSION=(\S+)$/m.exec(readFileSync(join(ROOT, 'test', 'kube', 'build-binaries.sh'), 'utf8'))![1];
  const file = join(kubeBinDir(), '..', 'src', `flagger-${version}`, 'artifacts', 'flagger', 'crd.yaml');
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as KubeObject).filter((o) => o?.kind === 'CustomResourceDefinition');
}

suite('Flagger (gatewayapi:v1) with Sluice', () => {
  let env: CanaryEnvironment;
  let prometheus: Prometheus;
  let flagger: ControllerProcess;
  const canaryRef = { apiVersion: 'flagger.app/v1beta1', kind: 'Canary', namespace: NAMESPACE, name: 'podinfo' };
  const deploymentRef = { apiVersion: 'apps/v1', kind: 'Deployment', namespace: NAMESPACE, name: 'podinfo' };
  const phase = async () => (await env.client.get(canaryRef)).status?.phase as string | undefined;
  const diagnostics = async () => `canary: ${JSON.stringify((await env.client.get(canaryRef)).status)}\n--- flagger\n${flagger.logs().slice(-6000)}\n${env.logs()}`;

  beforeAll(async () => {
    env = await startCanaryEnvironment();
    for (const crd of flaggerCrds()) await env.client.create(crd);
    await waitFor('the Flagger CRDs served', async () => (await env.client.request('GET', `/apis/flagger.app/v1beta1/namespaces/${NAMESPACE}/canaries`)).status === 200, 60_000);
    prometheus = await startPrometheus([new URL(env.dataplaneAdmin).host]);
    // The MetricTemplates as shipped, pointed at this Prometheus.
    await env.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'flagger-system' } });
    for (const doc of parseAllDocuments(readFileSync(join(ROOT, 'examples', 'canary', 'flagger-metrictemplates.yaml'), 'utf8'))) {
      const template = doc.toJS() as KubeObject;
      template.spec.provider.address = prometheus.url;
      await env.client.create(template);
    }
    // All namespaces: the MetricTemplates live in flagger-system, as examples/canary/ has them.
    flagger = startFlagger(env.cluster, prometheus.url, [`-port=${await freePort()}`]);

    await env.client.create(webApp('podinfo', 2, { VERSION: 'v1' }).deployment as KubeObject);
    await env.client.create({
      ...canaryRef, metadata: { name: 'podinfo', namespace: NAMESPACE },
      spec: {
        targetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'podinfo' },
        progressDeadlineSeconds: 120,
        service: { port: 80, targetPort: 8080, hosts: [HOST], gatewayRefs: [{ name: 'gw', namespace: NAMESPACE }] },
        analysis: {
          interval: '10s',
          threshold: 2,
          stepWeights: [10, 30, 50],
          metrics: [{ name: 'success-rate', templateRef: { name: 'sluice-success-rate', namespace: 'flagger-system' }, thresholdRange: { min: 99 }, interval: '30s' }],
        },
      },
    });
    await waitFor('the canary Initialized', async () => (await phase()) === 'Initialized', 180_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await diagnostics()}`);
    });
    // Flagger says Initialized as soon as it wrote the HTTPRoute; the scenarios start once it is served.
    await waitFor('the HTTPRoute served', async () => {
      const probe = startTraffic(env.port, HOST, 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await probe.stop();
      return probe.samples.length > 0 && probe.samples.every((s) => s.status === 200);
    }, 60_000);
  }, 420_000);

  afterAll(async () => {
    await flagger?.stop();
    await prometheus?.stop();
    await env?.stop();
  });

  /** Sets the Deployment's pod environment (a new revision for Flagger to analyse). */
  const release = (vars: Record<string, string>) => {
    const template = (webApp('podinfo', 2, vars).deployment as { spec: { template: unknown } }).spec.template;
    return env.client.mergePatch(deploymentRef, { spec: { template } });
  };

  /** Runs one release under traffic until the canary reaches `final`; what was measured. */
  const rollout = async (vars: Record<string, string>, final: 'Succeeded' | 'Failed') => {
    const traffic: Traffic = startTraffic(env.port, HOST);
    const weights = watchWeights(env.cluster, NAMESPACE, 'podinfo', 'podinfo-canary');
    const started = Date.now();
    try {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await release(vars);
      const other = final === 'Succeeded' ? 'Failed' : 'Succeeded';
      await waitFor('the analysis to start', async () => (await phase()) === 'Progressing', 120_000).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await diagnostics()}`);
      });
      // support/wait.ts's waitFor: a throw ends the wait (the other outcome is final too).
      await waitUntil(`the canary ${final}`, async () => {
        const p = await phase();
        if (p === other) throw new Error(`the canary ended ${other}`);
        return p === final || undefined;
      }, 420_000).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await diagnostics()}`);
      });
      // Traffic a little longer: what the route serves after the last change.
      await new Promise((resolve) => setTimeout(resolve, 3000));
    } finally {
      await traffic.stop();
      await weights.stop();
    }
    return { samples: traffic.samples, changes: weights.changes, seconds: (Date.now() - started) / 1000, started };
  };

  /** Milliseconds from each weight change's watch event (after the first) to the dataplane's next apply. */
  const patchToServed = (changes: { at: number }[]) => {
    const applied = appliedTimes(env.dataplaneLogs());
    return changes.slice(1).map((c) => (applied.find((a) => a >= c.at) ?? NaN) - c.at).filter((ms) => Number.isFinite(ms));
  };

  it('promotes a good canary step by step: each step split as weighted (±3 %), no failed request', async () => {
    const run = await rollout({ VERSION: 'v2' }, 'Succeeded');
    const failed = run.samples.filter((s) => s.status !== 200);
    // Whose answer: the canary Deployment's pods (podinfo-<hash>-<id>) or the primary's (podinfo-primary-...).
    // Not by version: at promotion the primary is rolled to v2 while the route still splits.
    const steps = splitPerStep(run.samples, run.changes, (s) => s.pod !== null && !s.pod.startsWith('podinfo-primary-'));
    const latency = patchToServed(run.changes);
    console.log(
      `Flagger promotion: ${run.seconds.toFixed(0)} s, ${run.samples.length} requests, ${failed.length} failed; weights ${run.changes.map((c) => `${c.canary}/${c.total}`).join(' → ')}\n` +
        steps.map((s) => `  canary weight ${s.canaryWeight}/${s.total}: ${(s.canaryShare * 100).toFixed(1)} % of ${s.requests}`).join('\n') +
        `\n  weight change (API server watch event) → dataplane applied: ${latency.join(', ')} ms; p50 ${percentile(latency, 50)} ms, p99 ${percentile(latency, 99)} ms`,
    );
    expect(failed).toEqual([]);
    const shifted = steps.filter((s) => s.canaryWeight > 0 && s.canaryWeight < s.total);
    expect(shifted.map((s) => s.canaryWeight)).toEqual([10, 30, 50]);
    for (const s of shifted) {
      expect(s.requests).toBeGreaterThanOrEqual(500);
      expect(Math.abs(s.canaryShare - s.canaryWeight / s.total)).toBeLessThanOrEqual(0.03);
    }
    // Promoted: the primary runs v2 and takes everything.
    const tail = run.samples.slice(-200);
    expect(tail.every((s) => s.status === 200 && s.version === 'v2')).toBe(true);
    expect(run.changes.at(-1)).toMatchObject({ canary: 0 });
  }, 480_000);

  it('A/B: requests with the header reach the canary, the others the primary, until promotion; nothing fails', async () => {
    await env.client.mergePatch(canaryRef, {
      spec: {
        analysis: {
          stepWeights: null,
          iterations: 2,
          match: [{ headers: { 'x-canary': { exact: 'insider' } } }],
        },
      },
    });
    const insiders = startTraffic(env.port, HOST, 2, 5, { 'x-canary': 'insider' });
    let run;
    try {
      run = await rollout({ VERSION: 'v4' }, 'Succeeded');
    } finally {
      await insiders.stop();
    }
    const isCanary = (s: { pod: string | null }) => s.pod !== null && !s.pod.startsWith('podinfo-primary-');
    const insiderCanary = insiders.samples.filter(isCanary);
    const othersCanary = run.samples.filter(isCanary);
    console.log(
      `Flagger A/B: ${run.seconds.toFixed(0)} s; with x-canary: insider ${insiderCanary.length} of ${insiders.samples.length} answered by the canary, without it ${othersCanary.length} of ${run.samples.length}`,
    );
    expect([...run.samples, ...insiders.samples].filter((s) => s.status !== 200)).toEqual([]);
    // The header rule sent insiders to the canary (v4 before promotion) while nobody else got there.
    expect(insiderCanary.length).toBeGreaterThan(100);
    expect(insiderCanary.every((s) => s.version === 'v4')).toBe(true);
    expect(othersCanary).toEqual([]);
    expect(run.samples.slice(-200).every((s) => s.version === 'v4')).toBe(true);
  }, 480_000);
  it('rolls back a canary answering 500 to half its requests: traffic returns to the primary, which fails nothing', async () => {
    // Progressive again (the A/B test left header matching and iterations).
    await env.client.mergePatch(canaryRef, { spec: { analysis: { stepWeights: [10, 30, 50], iterations: null, match: null } } });
    const run = await rollout({ VERSION: 'v3', FAIL_EVERY: '2' }, 'Failed');
    const primaryFailures = run.samples.filter((s) => s.version !== 'v3' && s.status !== 200);
    const canaryAnswers = run.samples.filter((s) => s.version === 'v3');
    console.log(
      `Flagger rollback: ${run.seconds.toFixed(0)} s, ${run.samples.length} requests; canary answered ${canaryAnswers.length} (${canaryAnswers.filter((s) => s.status === 500).length} × 500); weights ${run.changes.map((c) => `${c.canary}/${c.total}`).join(' → ')}`,
    );
    expect(canaryAnswers.filter((s) => s.status === 500).length).toBeGreaterThan(0);
    expect(primaryFailures).toEqual([]);
    expect(run.changes.at(-1)).toMatchObject({ canary: 0 });
    const tail = run.samples.slice(-200);
    expect(tail.every((s) => s.status === 200 && s.pod?.startsWith('podinfo-primary-'))).toBe(true);
  }, 480_000);

});
