// Incremental soundness in Kubernetes mode (issue #14): `sluice controller` translates with one
// Translator and streams IR deltas (`&delta=1`, ir/PROTOCOL.md) to a `sluice dataplane` that passes
// them on to two worker threads. Edits through the real API server that change what a route depends
// on (a ReferenceGrant, a Service port, the listener hostname) must leave the long-lived dataplane
// holding exactly the controller's IR (version and content), answering as the step expects, and a
// dataplane started fresh at the end (its first delta full) must hold and serve the same.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { freePort, freePorts } from '../support/ports.ts';
import { describeIfPossible } from '../support/suite.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { netnsSkipReason, startNetnsEcho, type NetnsEcho } from './netns-echo.ts';
import { createWebApp, GATEWAY, getWithHost, ROUTE, sluice, waitFor, type Proc } from './processes.ts';

const suite = describeIfPossible('Kubernetes-mode incremental delta tests', binariesSkipReason() ?? netnsSkipReason(), kubeTestsRequired());

const GW = 'gateway.networking.k8s.io';

suite('controller → dataplane deltas through edits of what a route depends on', () => {
  let cluster: TestCluster;
  let echo: NetnsEcho;
  let controller: Proc;
  let dataplane: Proc;
  let snapshotPort: number;
  let controllerAdmin: number;
  let dataplaneAdmin: number;
  let offset: number;

  const config = async (port: number) => (await (await fetch(`http://127.0.0.1:${port}/api/config`)).json()) as { version: string; ir: unknown };
  /** Until the dataplane serves the controller's newest version (and the controller stopped moving); returns both. */
  const settled = (dpAdmin: number, what: string) =>
    waitFor(`${what}: the dataplane at the controller's version`, async () => {
      const published = await config(controllerAdmin);
      const served = await config(dpAdmin).catch(() => null);
      if (!served || served.version !== published.version) return undefined;
      await new Promise((r) => setTimeout(r, 300));
      const again = await config(controllerAdmin);
      return again.version === published.version ? { published, served } : undefined;
    }, 30000);
  /** The status of each probe on the dataplane serving listener port 80 at `at` (its offset port). */
  const answers = async (at = 80 + offset) => {
    const out: Record<string, number> = {};
    for (const [name, [path, host]] of Object.entries({ root: ['/', 'web.example.com'], other: ['/other', 'web.example.com'], alt: ['/', 'alt.example.com'] })) {
      out[name] = (await getWithHost(at, path!, host!).catch(() => ({ status: 0 }))).status;
    }
    return out;
  };
  const startDataplane = (name: string, admin: number, portOffset: number, extra: string[] = []) =>
    sluice(['dataplane', '--controller', `http://127.0.0.1:${snapshotPort}`, '--name', name, '--admin-address', `127.0.0.1:${admin}`,
      '--listener-port-offset', String(portOffset), '--bpf', 'off', ...extra]);

  beforeAll(async () => {
    cluster = await startTestCluster();
    echo = await startNetnsEcho('web-1', 'app');
    [snapshotPort, controllerAdmin, dataplaneAdmin] = await freePorts(3);
    offset = (await freePort()) - 80;
    await createWebApp(cluster.client, echo, { namespace: 'sluice-system', name: 'sluice-dataplane' });
    const c = cluster.client;
    // A second Service in another namespace, for a cross-namespace backendRef.
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
    await c.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web2', namespace: 'other' }, spec: { ports: [{ name: 'http', port: 8080 }] } });
    await c.create({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'web2-1', namespace: 'other', labels: { 'kubernetes.io/service-name': 'web2' } },
      addressType: 'IPv4', ports: [{ name: 'http', port: echo.port }], endpoints: [{ addresses: [echo.address] }],
    });
    await c.mergePatch(ROUTE, {
      spec: {
        hostnames: ['web.example.com', 'alt.example.com'],
        rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }, { matches: [{ path: { type: 'PathPrefix', value: '/other' } }], backendRefs: [{ name: 'web2', namespace: 'other', port: 8080 }] }],
      },
    });
    controller = sluice(['controller', '--kubeconfig', cluster.kubeconfigPath, '--snapshot-address', `127.0.0.1:${snapshotPort}`,
      '--admin-address', `127.0.0.1:${controllerAdmin}`, '--dataplane-service', 'sluice-system/sluice-dataplane']);
    dataplane = startDataplane('dp-1', dataplaneAdmin, offset, ['--workers', '2']);
  }, 180000);

  afterAll(async () => {
    await dataplane?.stop();
    await controller?.stop();
    echo?.stop();
    await cluster?.stop();
  });

  it('holds the controller IR after every edit, and a fresh dataplane agrees', async () => {
    const c = cluster.client;
    const grant = { apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: { name: 'from-app', namespace: 'other' }, spec: { from: [{ group: GW, kind: 'HTTPRoute', namespace: 'app' }], to: [{ group: '', kind: 'Service' }] } };
    const grantRef = { apiVersion: grant.apiVersion, kind: grant.kind, namespace: 'other', name: 'from-app' };
    const service = { apiVersion: 'v1', kind: 'Service', namespace: 'app', name: 'web' };
    const listener = (hostname?: string) => ({ spec: { listeners: [{ name: 'http', protocol: 'HTTP', port: 80, ...(hostname ? { hostname } : {}) }] } });
    const steps: { what: string; edit: () => Promise<unknown>; expect: Record<string, number> }[] = [
      { what: 'start (cross-namespace ref not granted)', edit: async () => undefined, expect: { root: 200, other: 500, alt: 200 } },
      { what: 'ReferenceGrant created', edit: () => c.create(grant), expect: { root: 200, other: 200, alt: 200 } },
      { what: 'ReferenceGrant deleted', edit: () => c.delete(grantRef), expect: { root: 200, other: 500, alt: 200 } },
      { what: 'ReferenceGrant created again', edit: () => c.create(grant), expect: { root: 200, other: 200, alt: 200 } },
      { what: 'the Service port changes (the route names 8080)', edit: () => c.mergePatch(service, { spec: { ports: [{ port: 9090, targetPort: 8080 }] } }), expect: { root: 500, other: 200, alt: 500 } },
      { what: 'the Service port is back', edit: () => c.mergePatch(service, { spec: { ports: [{ port: 8080 }] } }), expect: { root: 200, other: 200, alt: 200 } },
      { what: 'listener hostname alt.example.com', edit: () => c.mergePatch(GATEWAY, listener('alt.example.com')), expect: { root: 404, other: 404, alt: 200 } },
      { what: 'listener hostname other.org', edit: () => c.mergePatch(GATEWAY, listener('other.org')), expect: { root: 404, other: 404, alt: 404 } },
      { what: 'no listener hostname', edit: () => c.mergePatch(GATEWAY, listener()), expect: { root: 200, other: 200, alt: 200 } },
    ];
    let last: { published: { version: string; ir: unknown }; served: { version: string; ir: unknown } } | undefined;
    for (const step of steps) {
      await step.edit();
      // The answers first (they wait for the edit to reach the dataplane), then the IRs once settled.
      await waitFor(`${step.what}: answers ${JSON.stringify(step.expect)}`, async () => JSON.stringify(await answers()) === JSON.stringify(step.expect), 30000).catch(() => undefined);
      last = await settled(dataplaneAdmin, step.what);
      expect({ step: step.what, answers: await answers() }).toEqual({ step: step.what, answers: step.expect });
      expect({ step: step.what, ir: last.served.ir }).toEqual({ step: step.what, ir: last.published.ir });
    }

    // The route deleted and created again as it was: a new object (new uid, no status) whose computed
    // status equals the old one's: it must still be written, and the IR served must not change.
    const before = await c.get(ROUTE);
    await c.delete(ROUTE);
    await waitFor('the route gone from the dataplane', async () => (await answers()).root === 404, 30000);
    await c.create({ apiVersion: before.apiVersion, kind: before.kind, metadata: { name: 'web', namespace: 'app' }, spec: before.spec });
    const recreated = await waitFor('the recreated route accepted in its status', async () => {
      const r = await c.get(ROUTE);
      return r.status?.parents?.[0]?.conditions?.find((x: any) => x.type === 'Accepted')?.status === 'True' && r;
    }, 30000);
    expect(recreated.metadata.uid).not.toBe(before.metadata.uid);
    const afterRecreate = await settled(dataplaneAdmin, 'route recreated');
    expect(afterRecreate.served).toEqual(last!.served);
    expect(await answers()).toEqual(steps.at(-1)!.expect);

    // A dataplane that starts now gets one full delta: it must hold what dp-1 built from many.
    const freshAdmin = await freePort();
    const freshOffset = (await freePort()) - 80;
    const fresh = startDataplane('dp-fresh', freshAdmin, freshOffset);
    try {
      const { served } = await settled(freshAdmin, 'fresh dataplane');
      // Version and IR only: dp-1 runs 2 workers and lists them (`workers`), the fresh one runs one.
      expect({ version: served.version, ir: served.ir }).toEqual({ version: last!.served.version, ir: last!.served.ir });
      expect(await answers(80 + freshOffset)).toEqual(await answers());
    } finally {
      await fresh.stop();
    }
  }, 240000);
});
