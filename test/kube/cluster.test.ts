// Smoke test of the real API server harness: etcd + kube-apiserver start, the Gateway API and
// Sluice CRDs are served, objects round-trip, the status subresource and optimistic concurrency
// behave as on a real cluster. Skips (saying why) when the binaries are not built; with
// SLUICE_KUBE_REQUIRED=1 a missing binary fails instead.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';

import { binariesSkipReason, KubeApiError, kubeTestsRequired, startTestCluster, type KubeObject, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const describeKube = describeIfPossible('real API server tests', binariesSkipReason(), kubeTestsRequired());

const GW = 'gateway.networking.k8s.io/v1';
const NS = 'smoke';

async function rejection(p: Promise<unknown>): Promise<KubeApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KubeApiError) return err;
    throw err;
  }
  throw new Error('expected the API server to refuse');
}

describeKube('real kube-apiserver + etcd (test/kube/cluster.ts)', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startTestCluster({ users: [{ name: 'nobody', groups: ['sluice:test'] }] });
  }, 240_000);

  afterAll(async () => {
    const dir = cluster?.dir;
    await cluster?.stop();
    if (dir) expect(existsSync(dir)).toBe(false);
  }, 60_000);

  test('serves the Gateway API v1.6.1 kinds and ours, and writes a kubeconfig', async () => {
    const gw = await cluster.client.call('GET', '/apis/gateway.networking.k8s.io/v1');
    const kinds = gw.resources.filter((r: any) => !r.name.includes('/')).map((r: any) => r.kind).sort();
    expect(kinds).toEqual(expect.arrayContaining(['GatewayClass', 'Gateway', 'HTTPRoute', 'GRPCRoute', 'ListenerSet', 'ReferenceGrant']));
    const sluice = await cluster.client.call('GET', '/apis/sluice.dev/v1alpha1');
    expect(sluice.resources.map((r: any) => r.kind)).toContain('RateLimitPolicy');
    const policy = await cluster.client.call('GET', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/safe-upgrades.gateway.networking.k8s.io');
    expect(policy.metadata.name).toBe('safe-upgrades.gateway.networking.k8s.io');

    const kubeconfig = parse(readFileSync(cluster.kubeconfigPath, 'utf8'));
    expect(kubeconfig.clusters[0].cluster.server).toBe(cluster.server);
    expect(kubeconfig.users[0].user.token).toBe(cluster.adminToken);
    const version = await cluster.client.call('GET', '/version');
    expect(version.gitVersion).toMatch(/^v1\.\d+\.\d+/);
  });

  test('creates and reads back a namespace, GatewayClass, Gateway and HTTPRoute', async () => {
    const c = cluster.client;
    await c.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    await c.create({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } });
    await c.create({
      apiVersion: GW,
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: NS },
      spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
    });
    await c.create({
      apiVersion: GW,
      kind: 'HTTPRoute',
      metadata: { name: 'route', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw' }],
        hostnames: ['example.com'],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'echo', port: 8080 }] }],
      },
    });

    const gc = await c.get({ apiVersion: GW, kind: 'GatewayClass', name: 'sluice' });
    expect(gc.spec.controllerName).toBe('sluice.dev/gateway-controller');
    const gw = await c.get({ apiVersion: GW, kind: 'Gateway', name: 'gw', namespace: NS });
    expect(gw.metadata.generation).toBe(1);
    expect(gw.spec.listeners[0]).toMatchObject({ name: 'http', protocol: 'HTTP', port: 80 });
    const route = await c.get({ apiVersion: GW, kind: 'HTTPRoute', name: 'route', namespace: NS });
    // Defaults from the CRD schema are applied by the API server.
    expect(route.spec.parentRefs[0]).toMatchObject({ name: 'gw', group: GW.split('/')[0], kind: 'Gateway' });
    expect(route.spec.rules[0].backendRefs[0]).toMatchObject({ name: 'echo', port: 8080, kind: 'Service', group: '', weight: 1 });
    const list = await c.list({ apiVersion: GW, kind: 'HTTPRoute', namespace: NS });
    expect(list.items.map((i) => i.metadata.name)).toEqual(['route']);
  });

  test('CRD validation (OpenAPI and CEL) rejects invalid objects with 422', async () => {
    const badClass = await rejection(
      cluster.client.create({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'bad' }, spec: { controllerName: 'no-domain' } }),
    );
    expect(badClass.status).toBe(422);
    expect(badClass.reason).toBe('Invalid');
    // CEL: an HTTP listener must not carry TLS settings.
    const badGateway = await rejection(
      cluster.client.create({
        apiVersion: GW,
        kind: 'Gateway',
        metadata: { name: 'bad', namespace: NS },
        spec: {
          gatewayClassName: 'sluice',
          listeners: [{ name: 'http', protocol: 'HTTP', port: 80, tls: { mode: 'Terminate', certificateRefs: [{ name: 'x' }] } }],
        },
      }),
    );
    expect(badGateway.status).toBe(422);
    expect(badGateway.message).toMatch(/tls/i);
  });

  test('status goes through the status subresource only', async () => {
    const c = cluster.client;
    const ref = { apiVersion: GW, kind: 'Gateway', name: 'gw', namespace: NS };
    const before = await c.get(ref);
    const condition = {
      type: 'Accepted',
      status: 'True',
      reason: 'Accepted',
      message: 'smoke test',
      observedGeneration: before.metadata.generation,
      lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    const patched = await c.mergePatch(ref, { status: { conditions: [condition] } }, 'status');
    expect(patched.status.conditions).toEqual([condition]);
    // A status write does not bump the generation (spec did not change).
    expect(patched.metadata.generation).toBe(before.metadata.generation);
    expect(Number(patched.metadata.resourceVersion)).toBeGreaterThan(Number(before.metadata.resourceVersion));

    // Status sent to the main resource is ignored, spec sent to /status is ignored.
    const viaMain = await c.mergePatch(ref, { status: { conditions: [] }, metadata: { labels: { touched: 'yes' } } });
    expect(viaMain.status.conditions).toEqual([condition]);
    expect(viaMain.metadata.labels).toEqual({ touched: 'yes' });
    const viaStatus = await c.mergePatch(ref, { spec: { gatewayClassName: 'other' } }, 'status');
    expect(viaStatus.spec.gatewayClassName).toBe('sluice');

    const read = await c.get(ref);
    expect(read.status.conditions).toEqual([condition]);
  });

  test('an update with a stale resourceVersion gets 409 Conflict', async () => {
    const c = cluster.client;
    const ref = { apiVersion: GW, kind: 'HTTPRoute', name: 'route', namespace: NS };
    const stale = await c.get(ref);
    const fresh = structuredClone(stale) as KubeObject;
    fresh.spec.hostnames = ['example.org'];
    const updated = await c.replace(fresh);
    expect(updated.metadata.generation).toBe(2);

    stale.spec.hostnames = ['example.net'];
    const conflict = await rejection(c.replace(stale));
    expect(conflict.status).toBe(409);
    expect(conflict.reason).toBe('Conflict');
    // The same on the status subresource.
    const statusConflict = await rejection(c.replace({ ...stale, status: { parents: [] } }, 'status'));
    expect(statusConflict.status).toBe(409);
    expect((await c.get(ref)).spec.hostnames).toEqual(['example.org']);
  });

  test('RBAC is enforced for static-token users and ServiceAccount tokens', async () => {
    const nobody = cluster.clientFor({ token: cluster.tokens.nobody });
    const forbidden = await rejection(nobody.list({ apiVersion: GW, kind: 'Gateway', namespace: NS }));
    expect(forbidden.status).toBe(403);

    const saToken = await cluster.serviceAccountToken('sluice-system', 'sluice-controller');
    const sa = cluster.clientFor({ token: saToken });
    const review = await sa.call('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    expect(review.status.userInfo.username).toBe('system:serviceaccount:sluice-system:sluice-controller');
    expect((await rejection(sa.list({ apiVersion: GW, kind: 'Gateway', namespace: NS }))).status).toBe(403);

    await cluster.client.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'smoke-gateway-reader' },
      rules: [{ apiGroups: ['gateway.networking.k8s.io'], resources: ['gateways'], verbs: ['get', 'list', 'watch'] }],
    });
    await cluster.client.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'smoke-gateway-reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'smoke-gateway-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'sluice-controller', namespace: 'sluice-system' }],
    });
    // The RBAC authorizer sees new bindings through an informer: allow it a moment.
    let names: string[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await sa.request('GET', `/apis/${GW}/namespaces/${NS}/gateways`);
      if (r.status === 200) {
        names = r.body.items.map((g: KubeObject) => g.metadata.name);
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(names).toEqual(['gw']);
    // Still no write access.
    expect((await rejection(sa.mergePatch({ apiVersion: GW, kind: 'Gateway', name: 'gw', namespace: NS }, { metadata: { labels: { a: 'b' } } }))).status).toBe(403);
  });
});
