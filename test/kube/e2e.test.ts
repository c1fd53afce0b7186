// Kubernetes mode end to end against a real kube-apiserver: a `sluice
// controller` and a `sluice dataplane` process; objects applied through the
// API reach the dataplane (backends are EndpointSlices pointing at a loopback
// echo server) and traffic flows; statuses land on the real objects; the
// API server and the controller going away leave traffic flowing. (The API
// refuses loopback endpoints, so the echo backend lives in a network namespace.)
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createServer } from 'node:net';
import { GATEWAY, ROUTE, createWebApp, getWithHost, sluice, waitFor, type Proc } from './processes.ts';
import { freePort, freePorts } from '../support/ports.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { netnsSkipReason, startNetnsEcho, type NetnsEcho } from './netns-echo.ts';
import { describeIfPossible } from '../support/suite.ts';

const suite = describeIfPossible('Kubernetes-mode e2e tests', binariesSkipReason() ?? netnsSkipReason(), kubeTestsRequired());

const condition = (conditions: any[] | undefined, type: string) => conditions?.find((c) => c.type === type);

suite('Kubernetes mode against a real API server', () => {
  let cluster: TestCluster;
  let echo: NetnsEcho;
  let controller: Proc;
  let dataplane: Proc;
  let listenerPort: number;
  let offset: number;
  let snapshotPort: number;
  let adminPort: number;
  const metric = async (line: RegExp) => Number(line.exec(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text())?.[1] ?? 0);
  /** Translations run so far (sluice_controller_reconciles_total). */
  const reconciles = () => metric(/^sluice_controller_reconciles_total (\d+)/m);
  /** Until no translation ran for 1.5 s: what came before has settled. */
  const quietController = () =>
    waitFor('a quiet controller', async () => {
      const before = await reconciles();
      await new Promise((r) => setTimeout(r, 1500));
      return (await reconciles()) === before;
    });
  const gw = GATEWAY;
  const route = ROUTE;

  const get = (path: string, host = 'web.example.com') => getWithHost(listenerPort + offset, path, host);
  const startController = (extra: string[] = []) =>
    sluice(['controller', '--kubeconfig', cluster.kubeconfigPath, '--snapshot-address', `127.0.0.1:${snapshotPort}`,
      '--admin-address', `127.0.0.1:${adminPort}`, '--dataplane-service', 'sluice-system/sluice-dataplane', ...extra]);

  beforeAll(async () => {
    cluster = await startTestCluster();
    echo = await startNetnsEcho('web-1', 'app');
    [snapshotPort, adminPort] = await freePorts(2);
    listenerPort = 80;
    offset = (await freePort()) - 80;
    await createWebApp(cluster.client, echo, { namespace: 'sluice-system', name: 'sluice-dataplane' });
    controller = startController();
    dataplane = sluice(['dataplane', '--controller', `http://127.0.0.1:${snapshotPort}`, '--name', 'dp-1', '--admin-address', '127.0.0.1:0',
      '--listener-port-offset', String(offset), '--bpf', 'off']);
  }, 180000);

  afterAll(async () => {
    await dataplane?.stop();
    await controller?.stop();
    echo?.stop();
    await cluster?.stop();
  });

  it('serves an HTTPRoute applied through the API', async () => {
    const r = await waitFor('the route to answer', async () => {
      const res = await get('/hello');
      return res.status === 200 && res;
    });
    expect(JSON.parse(r.body)).toMatchObject({ pod: 'web-1', namespace: 'app', path: '/hello' });
  });

  it('writes the statuses to the real objects: addresses from the dataplane Service, Programmed after the ack', async () => {
    const gateway = await waitFor('Gateway Programmed', async () => {
      const g = await cluster.client.get(gw);
      return condition(g.status?.conditions, 'Programmed')?.status === 'True' && g;
    });
    expect(condition(gateway.status.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: gateway.metadata.generation });
    expect(gateway.status.addresses).toEqual([{ type: 'IPAddress', value: '127.0.0.1' }]);
    expect(gateway.status.listeners[0]).toMatchObject({ name: 'http', attachedRoutes: 1 });
    const r = await cluster.client.get(route);
    expect(r.status.parents).toHaveLength(1);
    expect(r.status.parents[0]).toMatchObject({ controllerName: 'sluice.dev/gateway-controller', parentRef: { name: 'gw' } });
    // As stored (group/kind defaulted, no namespace): Flagger finds its parent by deep equality.
    expect(r.status.parents[0].parentRef).toEqual(r.spec.parentRefs[0]);
    expect(condition(r.status.parents[0].conditions, 'Accepted')?.status).toBe('True');
    expect(condition(r.status.parents[0].conditions, 'ResolvedRefs')?.status).toBe('True');
    const cls = await cluster.client.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', name: 'cilium' });
    expect(condition(cls.status.conditions, 'Accepted')?.status).toBe('True');
  });

  it('keeps traffic flowing while the API server is away, and catches up when it returns', async () => {
    await cluster.stopApiServer();
    try {
      for (let i = 0; i < 20; i++) expect((await get('/while-away')).status).toBe(200);
    } finally {
      await cluster.startApiServer();
    }
    await cluster.client.mergePatch(route, { spec: { hostnames: ['web.example.com', 'new.example.com'] } });
    await waitFor('the new hostname', async () => (await get('/', 'new.example.com')).status === 200, 30000);
  });

  it('reports node addresses for a NodePort dataplane Service', async () => {
    const c = cluster.client;
    await c.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } });
    await c.mergePatch({ apiVersion: 'v1', kind: 'Node', name: 'node-a' }, { status: { addresses: [{ type: 'InternalIP', address: '192.0.2.10' }, { type: 'ExternalIP', address: '198.51.100.7' }] } }, 'status');
    const svc = { apiVersion: 'v1', kind: 'Service', namespace: 'sluice-system', name: 'sluice-dataplane' };
    await c.mergePatch(svc, { status: { loadBalancer: { ingress: null } } }, 'status');
    await c.mergePatch(svc, { spec: { type: 'NodePort' } });
    const gateway = await waitFor('node addresses on the Gateway', async () => {
      const g = await c.get(gw);
      return g.status?.addresses?.[0]?.value === '198.51.100.7' && g;
    }, 45000);
    expect(gateway.status.addresses).toEqual([{ type: 'IPAddress', value: '198.51.100.7' }]);
  });

  it('does not retranslate for Secrets and Pods nothing depends on, and does for what it reads', async () => {
    const c = cluster.client;
    await quietController();
    const before = await reconciles();
    await c.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'unrelated', namespace: 'app' }, type: 'Opaque', stringData: { a: 'b' } });
    // (No controller-manager here makes the namespace's default ServiceAccount, which Pod admission wants.)
    await c.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'app' } });
    await c.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unrelated', namespace: 'app' }, spec: { automountServiceAccountToken: false, containers: [{ name: 'c', image: 'x' }] } });
    await waitFor('both changes seen and dropped', async () =>
      (await metric(/^sluice_controller_ignored_changes_total\{kind="Secret"\} (\d+)/m)) >= 1 && (await metric(/^sluice_controller_ignored_changes_total\{kind="Pod"\} (\d+)/m)) >= 1);
    expect(await reconciles()).toBe(before);
    // A listener that references a Secret: the Gateway change translates, and so does the Secret's arrival.
    await c.mergePatch(gw, { spec: { listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }, { name: 'https', protocol: 'HTTPS', port: 443, tls: { certificateRefs: [{ name: 'gw-cert' }] } }] } });
    await waitFor('the listener without its certificate', async () => {
      const g = await c.get(gw);
      return g.status?.listeners?.find((l: any) => l.name === 'https')?.conditions?.find((x: any) => x.type === 'ResolvedRefs')?.status === 'False';
    });
    const afterGateway = await reconciles();
    await c.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gw-cert', namespace: 'app' }, type: 'Opaque', stringData: { nothing: 'here' } });
    await waitFor('a translation for the referenced Secret', async () => (await reconciles()) > afterGateway);
  });

  it('re-folds status on acks and disconnects without translating: a second dataplane that cannot bind, then leaves', async () => {
    const c = cluster.client;
    const httpProgrammed = async () => condition((await c.get(gw)).status?.listeners?.find((l: any) => l.name === 'http')?.conditions, 'Programmed');
    await quietController();
    const before = await reconciles();
    // dp-2 binds the Gateway's port 80 at an offset whose port the test holds.
    const held = await freePort();
    const blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker.listen(held, '127.0.0.1', resolve));
    const second = sluice(['dataplane', '--controller', `http://127.0.0.1:${snapshotPort}`, '--name', 'dp-2', '--admin-address', '127.0.0.1:0',
      '--listener-port-offset', String(held - 80), '--bpf', 'off']);
    try {
      const failed = await waitFor('dp-2 reporting the listener it cannot bind', async () => {
        const programmed = await httpProgrammed();
        return programmed?.status === 'False' && /dp-2: .*EADDRINUSE/.test(programmed.message) && programmed;
      }, 30000);
      expect(failed.reason).toBe('Invalid');
    } finally {
      await second.stop();
      await new Promise((resolve) => blocker.close(resolve));
    }
    await waitFor('the listener served again once dp-2 left', async () => (await httpProgrammed())?.status === 'True', 30000);
    expect(await reconciles()).toBe(before);
  });

  it('drops no request while the controller restarts', async () => {
    let failed = 0;
    let ok = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        try {
          if ((await get('/during-restart')).status === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    })();
    await controller.stop();
    controller = startController();
    await waitFor('the new controller to publish', async () => /sluice controller is running/.test(controller.logs()), 30000);
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await load;
    expect(failed).toBe(0);
    expect(ok).toBeGreaterThan(20);
  });

  it('removes its parents entry from a route that no longer attaches to its Gateways, keeping other controllers\' entries', async () => {
    const c = cluster.client;
    await c.create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'theirs', namespace: 'app' }, spec: { gatewayClassName: 'someone-else', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } });
    const theirEntry = { parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'theirs' }, controllerName: 'example.com/other', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: '', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 }] };
    const current = await c.get(route);
    await c.mergePatch(route, { status: { parents: [...current.status.parents, theirEntry] } }, 'status');
    await c.mergePatch(route, { spec: { parentRefs: [{ name: 'theirs' }] } });
    const detached = await waitFor('our entry removed', async () => {
      const r = await c.get(route);
      return !r.status.parents.some((p: any) => p.controllerName === 'sluice.dev/gateway-controller') && r;
    });
    expect(detached.status.parents).toEqual([expect.objectContaining({ controllerName: 'example.com/other' })]);
  });
});
