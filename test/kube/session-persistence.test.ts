// Session persistence (GEP-1619) through a real kube-apiserver with the v1.6.1 experimental CRDs
// (as the conformance target installs them): the API server takes an HTTPRoute and a GRPCRoute
// with `rules[].sessionPersistence` and refuses what the CRD's CEL rules refuse; a `sluice
// controller` accepts the routes (no longer UnsupportedValue), refuses a sessionName no cookie can
// carry (Accepted=False UnsupportedValue naming it), and publishes the sessions in its IR.
// (Traffic and stickiness are shown on real sockets in test/dataplane/session-persistence.test.ts
// and through `sluice run` in test/e2e/session-persistence.test.ts; the dataplane is the same.)
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { freePorts } from '../support/ports.ts';
import { describeIfPossible } from '../support/suite.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { sluice, waitFor, type Proc } from './processes.ts';

const suite = describeIfPossible('Kubernetes-mode session persistence', binariesSkipReason(), kubeTestsRequired());

const CONTROLLER = 'sluice.dev/gateway-controller';
const GW = 'gateway.networking.k8s.io';
const NS = 'sticky';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

suite('Kubernetes mode: sessionPersistence', () => {
  let cluster: TestCluster;
  let controller: Proc;
  let adminPort: number;

  const route = (kind: 'HTTPRoute' | 'GRPCRoute', name: string, sessionPersistence: Record<string, unknown>) => ({
    apiVersion: `${GW}/v1`, kind, metadata: { name, namespace: NS },
    spec: { parentRefs: [{ name: 'gw' }], hostnames: [`${name}.example.com`], rules: [{ backendRefs: [{ name: 'web', port: 80 }], sessionPersistence }] },
  });
  const accepted = async (kind: string, name: string): Promise<Condition> =>
    waitFor(`${kind} ${name} status`, async () => {
      const r = await cluster.client.get({ apiVersion: `${GW}/v1`, kind, namespace: NS, name });
      const entry = (r.status?.parents ?? []).find((p: { controllerName: string }) => p.controllerName === CONTROLLER);
      return entry?.conditions.find((c: Condition) => c.type === 'Accepted');
    }, 30_000);

  beforeAll(async () => {
    cluster = await startTestCluster({ crdChannel: 'experimental' });
    const c = cluster.client;
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    await c.create({ apiVersion: `${GW}/v1`, kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: CONTROLLER } });
    await c.create({ apiVersion: `${GW}/v1`, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', protocol: 'HTTP', port: 8080 }] } });
    await c.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { ports: [{ name: 'http', port: 80 }] } });
    await c.create({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4', ports: [{ name: 'http', port: 80 }], endpoints: [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2'] }],
    });
    await c.create(route('HTTPRoute', 'cart', { sessionName: 'cart', absoluteTimeout: '1h', cookieConfig: { lifetimeType: 'Permanent' } }));
    await c.create(route('GRPCRoute', 'rpc', { type: 'Header', sessionName: 'x-session' }));
    await c.create(route('HTTPRoute', 'bad-name', { sessionName: 'two words' }));
    let snapshotPort: number;
    [snapshotPort, adminPort] = await freePorts(2);
    controller = sluice(['controller', '--kubeconfig', cluster.kubeconfigPath, '--snapshot-address', `127.0.0.1:${snapshotPort}`, '--admin-address', `127.0.0.1:${adminPort}`]);
  }, 180_000);

  afterAll(async () => {
    await controller?.stop();
    await cluster?.stop();
  });

  it('the API server refuses what the CRD\'s CEL rules refuse', async () => {
    await expect(cluster.client.create(route('HTTPRoute', 'permanent', { cookieConfig: { lifetimeType: 'Permanent' } }))).rejects.toThrow(/AbsoluteTimeout must be specified when cookie lifetimeType is Permanent/);
    await expect(cluster.client.create(route('HTTPRoute', 'header-cookie', { type: 'Header', cookieConfig: { lifetimeType: 'Session' } }))).rejects.toThrow(/cookieConfig can only be set with type Cookie/);
  });

  it('routes with sessionPersistence are accepted and their sessions published; an unusable sessionName is refused, named', async () => {
    expect(await accepted('HTTPRoute', 'cart')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(await accepted('GRPCRoute', 'rpc')).toMatchObject({ status: 'True', reason: 'Accepted' });
    const bad = await accepted('HTTPRoute', 'bad-name');
    expect(bad).toMatchObject({ status: 'False', reason: 'UnsupportedValue' });
    expect(bad.message).toContain('sessionPersistence.sessionName "two words" is not a valid cookie name');

    const config = await waitFor('the IR with both routes', async () => {
      const res = await fetch(`http://127.0.0.1:${adminPort}/api/config`);
      if (res.status !== 200) return undefined;
      const body = (await res.json()) as { ir: { http: { listeners: { scopes: { virtualHosts: { hostname: string; routes: { sessionPersistence?: unknown }[] }[] }[] }[] } } };
      const hosts = body.ir.http.listeners.flatMap((l) => l.scopes.flatMap((s) => s.virtualHosts));
      return hosts.length >= 2 ? hosts : undefined;
    }, 30_000);
    const sessionOf = (host: string) => config.find((h) => h.hostname === host)?.routes[0]?.sessionPersistence;
    expect(sessionOf('cart.example.com')).toEqual({ type: 'Cookie', name: 'cart', scope: `httproute/${NS}/cart/rule/0`, absoluteTimeoutMs: 3_600_000, cookieLifetime: 'Permanent', cookiePath: '/' });
    expect(sessionOf('rpc.example.com')).toEqual({ type: 'Header', name: 'x-session', scope: `grpcroute/${NS}/rpc/rule/0` });
  }, 60_000);
});
