// The route and policy kinds beyond HTTPRoute through a real kube-apiserver (experimental-channel
// CRDs, as the conformance target installs them): a GRPCRoute, a TCPRoute created at v1alpha2 (the
// version upstream's conformance manifests use), a UDPRoute and a BackendTLSPolicy whose CA is a
// ConfigMap. A `sluice controller` reads them through its informers and writes their statuses on the
// real objects (parents / ancestors with our controllerName); the Gateway counts the attached routes
// per listener; a change to the CA ConfigMap alone reaches the policy's status (ConfigMaps are watched).
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createCertificateAuthority } from '../support/demo/certs.ts';
import { freePorts } from '../support/ports.ts';
import { describeIfPossible } from '../support/suite.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { sluice, waitFor, type Proc } from './processes.ts';

const suite = describeIfPossible('Kubernetes-mode new kinds', binariesSkipReason(), kubeTestsRequired());

const CONTROLLER = 'sluice.dev/gateway-controller';
const GW = 'gateway.networking.k8s.io';
const NS = 'kinds';

interface Condition {
  type: string;
  status: string;
  reason: string;
  observedGeneration?: number;
}
interface StatusEntry {
  controllerName: string;
  parentRef?: { name: string; kind?: string; sectionName?: string };
  ancestorRef?: { name: string; kind?: string };
  conditions: Condition[];
}

const condition = (conditions: Condition[] | undefined, type: string) => conditions?.find((c) => c.type === type);

suite('Kubernetes mode: GRPCRoute, TCPRoute, UDPRoute and BackendTLSPolicy', () => {
  let cluster: TestCluster;
  let controller: Proc;

  const ref = (apiVersion: string, kind: string, name: string) => ({ apiVersion, kind, namespace: NS, name });
  const ours = (entries: StatusEntry[] | undefined) => (entries ?? []).filter((e) => e.controllerName === CONTROLLER);

  beforeAll(async () => {
    cluster = await startTestCluster({ crdChannel: 'experimental' });
    const c = cluster.client;
    const ca = await createCertificateAuthority({ commonName: 'Backend CA' });
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    await c.create({ apiVersion: `${GW}/v1`, kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: CONTROLLER } });
    await c.create({
      apiVersion: `${GW}/v1`, kind: 'Gateway', metadata: { name: 'gw', namespace: NS },
      spec: {
        gatewayClassName: 'sluice',
        listeners: [
          { name: 'http', protocol: 'HTTP', port: 8080 },
          { name: 'tcp', protocol: 'TCP', port: 9000 },
          { name: 'udp', protocol: 'UDP', port: 9001 },
        ],
      },
    });
    for (const [name, protocol, port] of [['grpc', 'TCP', 50051], ['tcp', 'TCP', 3000], ['udp', 'UDP', 8080]] as const) {
      await c.create({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { ports: [{ name, protocol, port }] } });
      await c.create({
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { name: `${name}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4', ports: [{ name, protocol, port }], endpoints: [{ addresses: ['10.0.0.1'] }],
      });
    }
    await c.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'backend-ca', namespace: NS }, data: { 'ca.crt': ca.certPem } });
    await c.create({
      apiVersion: `${GW}/v1`, kind: 'GRPCRoute', metadata: { name: 'grpc', namespace: NS },
      spec: { parentRefs: [{ name: 'gw', sectionName: 'http' }], rules: [{ matches: [{ method: { service: 'echo.Echo' } }], backendRefs: [{ name: 'grpc', port: 50051 }] }] },
    });
    await c.create({
      apiVersion: `${GW}/v1alpha2`, kind: 'TCPRoute', metadata: { name: 'tcp', namespace: NS },
      spec: { parentRefs: [{ name: 'gw', sectionName: 'tcp' }], rules: [{ backendRefs: [{ name: 'tcp', port: 3000 }] }] },
    });
    await c.create({
      apiVersion: `${GW}/v1`, kind: 'UDPRoute', metadata: { name: 'udp', namespace: NS },
      spec: { parentRefs: [{ name: 'gw', sectionName: 'udp' }], rules: [{ backendRefs: [{ name: 'udp', port: 8080 }] }] },
    });
    await c.create({
      apiVersion: `${GW}/v1`, kind: 'BackendTLSPolicy', metadata: { name: 'grpc-tls', namespace: NS },
      spec: {
        targetRefs: [{ group: '', kind: 'Service', name: 'grpc' }],
        validation: { caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'backend-ca' }], hostname: 'grpc.example.com' },
      },
    });
    // An experimental-channel field Sluice does not implement: the API server accepts it, Sluice says no.
    await c.create({
      apiVersion: `${GW}/v1`, kind: 'HTTPRoute', metadata: { name: 'sticky', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw', sectionName: 'http' }],
        useDefaultGateways: 'All',
        rules: [{ backendRefs: [{ name: 'grpc', port: 50051 }] }],
      },
    });
    const [snapshotPort, adminPort] = await freePorts(2);
    controller = sluice(['controller', '--kubeconfig', cluster.kubeconfigPath, '--snapshot-address', `127.0.0.1:${snapshotPort}`, '--admin-address', `127.0.0.1:${adminPort}`]);
  }, 180_000);

  afterAll(async () => {
    await controller?.stop();
    await cluster?.stop();
  });

  it.each([
    ['GRPCRoute', `${GW}/v1`, 'grpc', 'http'],
    ['TCPRoute', `${GW}/v1`, 'tcp', 'tcp'],
    ['UDPRoute', `${GW}/v1`, 'udp', 'udp'],
  ])('a %s gets its parents entry written, Accepted and ResolvedRefs', async (kind, apiVersion, name, section) => {
    const route = await waitFor(`${kind} status`, async () => {
      const r = await cluster.client.get(ref(apiVersion, kind, name));
      return ours(r.status?.parents).length > 0 && r;
    }, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${controller.logs().slice(-4000)}`);
    });
    const [entry] = ours(route.status.parents);
    expect(entry!.parentRef).toMatchObject({ name: 'gw', sectionName: section });
    expect(condition(entry!.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: route.metadata.generation });
    expect(condition(entry!.conditions, 'ResolvedRefs')).toMatchObject({ status: 'True', reason: 'ResolvedRefs' });
  });

  it('an HTTPRoute with an experimental field Sluice does not implement is not accepted, naming the field', async () => {
    const route = await waitFor('the sticky route status', async () => {
      const r = await cluster.client.get(ref(`${GW}/v1`, 'HTTPRoute', 'sticky'));
      return ours(r.status?.parents).length > 0 && r;
    }, 30_000);
    const accepted = condition(ours(route.status.parents)[0]!.conditions, 'Accepted') as Condition & { message: string };
    expect(accepted).toMatchObject({ status: 'False', reason: 'UnsupportedValue' });
    expect(accepted.message).toContain('spec.useDefaultGateways');
  });

  it('the Gateway counts each kind on its listener', async () => {
    const gateway = await waitFor('attached routes on every listener', async () => {
      const g = await cluster.client.get(ref(`${GW}/v1`, 'Gateway', 'gw'));
      const listeners: { name: string; attachedRoutes: number }[] = g.status?.listeners ?? [];
      return listeners.length === 3 && listeners.every((l) => l.attachedRoutes === 1) && g;
    }, 30_000);
    const kinds = Object.fromEntries((gateway.status.listeners as { name: string; supportedKinds: { kind: string }[] }[]).map((l) => [l.name, l.supportedKinds.map((k) => k.kind)]));
    expect(kinds.http).toContain('GRPCRoute');
    expect(kinds.tcp).toEqual(['TCPRoute']);
    expect(kinds.udp).toEqual(['UDPRoute']);
  });

  it('a BackendTLSPolicy gets its ancestor entry written; a broken CA ConfigMap alone turns it ResolvedRefs=False', async () => {
    const policyRef = ref(`${GW}/v1`, 'BackendTLSPolicy', 'grpc-tls');
    const policy = await waitFor('BackendTLSPolicy status', async () => {
      const p = await cluster.client.get(policyRef);
      return ours(p.status?.ancestors).length > 0 && p;
    }, 30_000).catch(async (err: Error) => {
      const p = await cluster.client.get(policyRef);
      throw new Error(`${err.message}\nstatus: ${JSON.stringify(p.status)}\n${controller.logs().slice(-4000)}`);
    });
    const [entry] = ours(policy.status.ancestors);
    expect(entry!.ancestorRef).toMatchObject({ kind: 'Gateway', name: 'gw' });
    expect(condition(entry!.conditions, 'Accepted')).toMatchObject({ status: 'True', observedGeneration: policy.metadata.generation });
    expect(condition(entry!.conditions, 'ResolvedRefs')).toMatchObject({ status: 'True' });

    await cluster.client.mergePatch({ apiVersion: 'v1', kind: 'ConfigMap', namespace: NS, name: 'backend-ca' }, { data: { 'ca.crt': 'not a certificate' } });
    const broken = await waitFor('the policy to see the broken CA', async () => {
      const p = await cluster.client.get(policyRef);
      const e = ours(p.status?.ancestors)[0];
      return condition(e?.conditions, 'ResolvedRefs')?.status === 'False' && e;
    }, 30_000);
    expect(condition(broken.conditions, 'ResolvedRefs')).toMatchObject({ reason: 'InvalidCACertificateRef' });
  }, 90_000);
});
