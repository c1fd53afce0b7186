// The Kubernetes source (controller/sources/kubernetes.ts) against a real kube-apiserver + etcd:
// the synced gate, the shape of what it hands translate(), which updates count as changes (a
// status-only write must not), an API server restart with a real 410 Gone (etcd compacted behind
// its back), an optional CRD installed later, and a required one missing. One cluster for the file.
// The table checks at the top run without the binaries.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';

import { KIND_APIS, SECRET_TYPES_KEPT, trimPod } from '../../controller/sources/kinds.ts';
import { KubernetesSource, jsonEqual, sameInput } from '../../controller/sources/kubernetes.ts';
import {
  CLUSTER_SCOPED_KINDS,
  SNAPSHOT_FIELD_BY_KIND,
  type GatewayClassObject,
  type GatewayObject,
  type KubeObject as SourceObject,
} from '../../controller/sources/objects.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type KubeObject, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const describeKube = describeIfPossible('real API server tests of the Kubernetes source', binariesSkipReason(), kubeTestsRequired());

const GW = 'gateway.networking.k8s.io/v1';
const NS = 'src';
/** Wire format of metadata.creationTimestamp (RFC 3339, seconds, UTC). */
const WIRE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

describe('kinds table', () => {
  test('lists every kind of SNAPSHOT_FIELD_BY_KIND once, with the scope objects.ts says', () => {
    expect(KIND_APIS.map((k) => k.kind)).toEqual(Object.keys(SNAPSHOT_FIELD_BY_KIND));
    for (const k of KIND_APIS) expect([k.kind, k.namespaced]).toEqual([k.kind, !CLUSTER_SCOPED_KINDS.has(k.kind)]);
    expect(KIND_APIS.filter((k) => !k.required).map((k) => k.kind).sort()).toEqual(
      ['BackendTLSPolicy', 'CiliumClusterwideNetworkPolicy', 'CiliumNetworkPolicy', 'GRPCRoute', 'ListenerSet', 'RateLimitPolicy', 'TCPRoute', 'TLSRoute', 'UDPRoute'],
    );
    expect([...SECRET_TYPES_KEPT].sort()).toEqual(['Opaque', 'kubernetes.io/tls']);
  });

  test('a Pod is trimmed to labels, hostNetwork, container ports, phase and IPs', () => {
    const pod: SourceObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'n', labels: { app: 'a' } },
      spec: { hostNetwork: false, nodeName: 'node', containers: [{ name: 'c', image: 'i', env: [{ name: 'X', value: 'y' }], ports: [{ name: 'http', containerPort: 80 }] }, { name: 'd', image: 'j' }] },
      status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }], conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [] },
    };
    trimPod(pod);
    expect(pod).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'n', labels: { app: 'a' } },
      spec: { hostNetwork: false, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }, { name: 'd' }] },
      status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }] },
    });
  });

  test('sameInput ignores resourceVersion and key order, nothing else', () => {
    const a: SourceObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', resourceVersion: '1', labels: { a: '1', b: '2' } }, data: { k: 'v' } };
    expect(sameInput(a, { ...a, metadata: { ...a.metadata, resourceVersion: '2', labels: { b: '2', a: '1' } } })).toBe(true);
    expect(sameInput(a, { ...a, data: { k: 'w' } })).toBe(false);
    expect(sameInput(a, { ...a, metadata: { ...a.metadata, generation: 2 } })).toBe(false);
    expect(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] })).toBe(true);
    expect(jsonEqual({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(jsonEqual({ a: undefined }, {})).toBe(true);
  });
});

describeKube('Kubernetes source against a real kube-apiserver', () => {
  let cluster: TestCluster;
  let kubeConfig: KubeConfig;
  const sources: KubernetesSource[] = [];
  const logs: { level: number; msg: string; kind?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  let source: KubernetesSource;
  let changes = 0;

  const newSource = (onChange: () => void = () => undefined, rediscoverMs = 300, config = kubeConfig) => {
    const s = new KubernetesSource({ kubeConfig: config, logger, onChange, backoff: { initialMs: 100, maxMs: 1000 }, rediscoverMs });
    sources.push(s);
    return s;
  };
  const c = () => cluster.client;
  const names = (objs: SourceObject[]) => objs.filter((o) => o.metadata.namespace === NS || !o.metadata.namespace).map((o) => o.metadata.name);

  beforeAll(async () => {
    cluster = await startTestCluster({ installSafeUpgradesPolicy: false, users: [{ name: 'nobody', groups: ['sluice:test'] }] });
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cluster.kubeconfigPath);
  }, 240_000);

  afterAll(async () => {
    if (process.env.SOURCE_TEST_LOGS) console.log(logs.map((l) => JSON.stringify(l)).join('\n'));
    await Promise.all(sources.map((s) => s.stop()));
    await cluster?.stop();
  }, 60_000);

  test('start() resolves once every kind listed; the snapshot has the objects made before, shaped like the manifest folder', async () => {
    const created = await createFixtures(cluster);
    // Status written before start: kept for get(), absent from the snapshot (not an input) ...
    const gwStatus = { conditions: [condition('Accepted', 1)] };
    await c().mergePatch({ apiVersion: GW, kind: 'Gateway', name: 'gw', namespace: NS }, { status: gwStatus }, 'status');
    // ... except for Pods and Services, whose status is input.
    await c().mergePatch({ apiVersion: 'v1', kind: 'Service', name: 'svc', namespace: NS }, { status: { loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } } }, 'status');
    await c().mergePatch(
      { apiVersion: 'v1', kind: 'Pod', name: 'echo', namespace: NS },
      { status: { phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }], conditions: [{ type: 'Ready', status: 'True' }] } },
      'status',
    );

    source = newSource(() => changes++);
    const t0 = Date.now();
    await source.start();
    console.log(`source.start() took ${Date.now() - t0} ms`);
    expect(source.synced).toBe(true);
    const stats = source.stats();
    for (const k of KIND_APIS) {
      const absent = k.group === 'cilium.io';
      expect([k.kind, stats[k.kind]!.state]).toEqual([k.kind, absent ? 'absent' : 'synced']);
      if (!absent) expect([k.kind, stats[k.kind]!.lists]).toEqual([k.kind, 1]);
    }
    expect(stats.Gateway!.apiVersion).toBe(GW);
    expect(stats.ReferenceGrant!.apiVersion).toBe(GW);
    expect(stats.ListenerSet!.apiVersion).toBe(GW);
    expect(stats.TLSRoute!.apiVersion).toBe(GW);
    expect(stats.RateLimitPolicy!.apiVersion).toBe('sluice.dev/v1alpha1');
    expect(changes).toBe(0);
    // Optional kinds missing: one log line, no error.
    const absentLines = logs.filter((l) => /treated as absent/.test(l.msg));
    expect(absentLines).toHaveLength(1);
    expect(absentLines[0]!.msg).toMatch(/CiliumNetworkPolicy \(cilium\.io\/v2\), CiliumClusterwideNetworkPolicy/);
    expect(logs.filter((l) => l.level >= 40)).toEqual([]);

    // The table's scope and plural agree with the API server's discovery.
    for (const k of KIND_APIS.filter((k) => stats[k.kind]!.apiVersion)) {
      const r = await c().resourceFor(stats[k.kind]!.apiVersion!, k.kind);
      expect([k.kind, r.name, r.namespaced]).toEqual([k.kind, k.plural, k.namespaced]);
    }

    const snap = source.snapshot();
    expect(names(snap.gatewayClasses)).toEqual(['sluice']);
    expect(names(snap.gateways)).toEqual(['gw']);
    expect(names(snap.listenerSets)).toEqual(['extra']);
    expect(names(snap.httpRoutes)).toEqual(['route']);
    expect(names(snap.tlsRoutes)).toEqual(['passthrough']);
    expect(names(snap.referenceGrants)).toEqual(['grant']);
    expect(names(snap.ingresses)).toEqual(['ing']);
    expect(names(snap.ingressClasses)).toEqual(['sluice']);
    expect(names(snap.services)).toEqual(['svc']);
    expect(names(snap.endpointSlices)).toEqual(['svc-1']);
    expect(names(snap.secrets)).toEqual(['cert', 'opaque']); // not: docker (excluded by the API server), custom (dropped here)
    expect(names(snap.configMaps)).toEqual(expect.arrayContaining(['ca']));
    expect(names(snap.rateLimitPolicies)).toEqual(['per-client']);
    expect(names(snap.pods)).toEqual(['echo']);
    expect(names(snap.networkPolicies)).toEqual(['deny']);
    expect(snap.namespaces.map((n) => n.metadata.name)).toEqual(expect.arrayContaining(['default', NS]));
    expect(snap.ciliumNetworkPolicies).toEqual([]);
    expect(snap.ciliumClusterwideNetworkPolicies).toEqual([]);

    // Shape: apiVersion/kind on every object (list items lack them), wire timestamps, no managedFields.
    for (const [kind, field] of Object.entries(SNAPSHOT_FIELD_BY_KIND)) {
      for (const obj of snap[field]) {
        expect([kind, obj.kind, obj.apiVersion]).toEqual([kind, kind, stats[kind]!.apiVersion]);
        expect(obj.metadata.creationTimestamp).toMatch(WIRE_TIME);
        expect(obj.metadata).not.toHaveProperty('managedFields');
        if (!['Pod', 'Service'].includes(kind)) expect(obj).not.toHaveProperty('status');
      }
    }
    const gw = snap.gateways[0]!;
    expect(gw.metadata.creationTimestamp).toBe(created.gateway.metadata.creationTimestamp);
    expect(gw.metadata.generation).toBe(1);
    expect(gw.metadata.annotations).toEqual({ team: 'edge' }); // last-applied-configuration dropped
    expect(gw.spec.listeners[0].name).toBe('http');
    expect(source.get('Gateway', NS, 'gw')!.status).toEqual(gwStatus);
    expect((source.get('GatewayClass', undefined, 'sluice') as GatewayClassObject).spec.controllerName).toBe('sluice.dev/gateway-controller');
    expect(one(snap.services, 'svc')!.status).toMatchObject({ loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } });
    const slice = one(snap.endpointSlices, 'svc-1')!;
    expect([slice.addressType, slice.endpoints, slice.ports]).toEqual([
      'IPv4',
      [{ addresses: ['10.1.0.5'], conditions: { ready: true } }],
      [{ name: 'http', port: 8080, protocol: 'TCP' }],
    ]);
    const pod = snap.pods[0]!;
    expect(pod.spec).toEqual({ containers: [{ name: 'echo', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] });
    expect(pod.status).toEqual({ phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }] });
    const cert = snap.secrets.find((s) => s.metadata.name === 'cert')!;
    expect([cert.type, Object.keys(cert.data!).sort()]).toEqual(['kubernetes.io/tls', ['tls.crt', 'tls.key']]);
    // Snapshots are fresh arrays over the same objects: equal when nothing changed.
    expect(source.snapshot()).toEqual(snap);
  });

  test('creates, updates and deletes after start call onChange and show in the snapshot', async () => {
    const before = changes;
    await c().create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'live', namespace: NS }, data: { a: '1' } });
    await waitFor(() => source.snapshot().configMaps.some((o) => o.metadata.name === 'live'));
    expect(changes).toBeGreaterThan(before);

    let n = changes;
    await c().mergePatch({ apiVersion: 'v1', kind: 'ConfigMap', name: 'live', namespace: NS }, { data: { a: '2' } });
    await waitFor(() => source.snapshot().configMaps.find((o) => o.metadata.name === 'live')?.data?.a === '2');
    expect(changes).toBeGreaterThan(n);

    n = changes;
    await c().mergePatch({ apiVersion: GW, kind: 'HTTPRoute', name: 'route', namespace: NS }, { spec: { hostnames: ['www.example.com'] } });
    await waitFor(() => source.snapshot().httpRoutes[0]?.spec.hostnames?.[0] === 'www.example.com');
    expect(source.snapshot().httpRoutes[0]!.metadata.generation).toBe(2);
    expect(changes).toBeGreaterThan(n);

    n = changes;
    await c().delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'live', namespace: NS });
    await waitFor(() => !source.snapshot().configMaps.some((o) => o.metadata.name === 'live'));
    expect(changes).toBeGreaterThan(n);
    expect(source.get('ConfigMap', NS, 'live')).toBeUndefined();
  });

  test('status-only updates of the kinds Sluice writes status on do not call onChange', async () => {
    const gwRef = { apiVersion: GW, kind: 'Gateway', name: 'gw', namespace: NS };
    const routeRef = { apiVersion: GW, kind: 'HTTPRoute', name: 'route', namespace: NS };
    const snapBefore = source.snapshot();
    const n = changes;
    const ignoredBefore = source.stats().Gateway!.ignored;
    const gw = await c().mergePatch(gwRef, { status: { conditions: [condition('Accepted', 1), condition('Programmed', 1)] } }, 'status');
    const route = await c().mergePatch(
      routeRef,
      { status: { parents: [{ parentRef: { name: 'gw' }, controllerName: 'sluice.dev/gateway-controller', conditions: [condition('Accepted', 2)] }] } },
      'status',
    );
    // A Pod's status beyond phase and IPs, and an annotation we drop, are no input either.
    const pod = await c().mergePatch({ apiVersion: 'v1', kind: 'Pod', name: 'echo', namespace: NS }, { status: { conditions: [{ type: 'Ready', status: 'False' }] } }, 'status');
    const cm = await c().mergePatch(
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'ca', namespace: NS },
      { metadata: { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"changed":true}' } } },
    );
    // Wait until the source has seen each of them (get() shows the new resourceVersion) ...
    await waitFor(
      () =>
        source.get('Gateway', NS, 'gw')?.metadata.resourceVersion === gw.metadata.resourceVersion &&
        source.get('HTTPRoute', NS, 'route')?.metadata.resourceVersion === route.metadata.resourceVersion &&
        source.get('Pod', NS, 'echo')?.metadata.resourceVersion === pod.metadata.resourceVersion &&
        source.get('ConfigMap', NS, 'ca')?.metadata.resourceVersion === cm.metadata.resourceVersion,
    );
    // ... and called nothing: the snapshot objects are the very same ones.
    expect(changes).toBe(n);
    expect(source.stats().Gateway!.ignored).toBe(ignoredBefore + 1);
    expect((source.get('Gateway', NS, 'gw') as GatewayObject).status?.conditions).toHaveLength(2);
    const snapAfter = source.snapshot();
    expect(snapAfter.gateways[0]).toBe(snapBefore.gateways[0]);
    expect(snapAfter.httpRoutes[0]).toBe(snapBefore.httpRoutes[0]);
    expect(snapAfter.pods[0]).toBe(snapBefore.pods[0]);

    // Status that is input does count: a Pod's IP, a Service's load-balancer address.
    await c().mergePatch({ apiVersion: 'v1', kind: 'Pod', name: 'echo', namespace: NS }, { status: { podIP: '10.1.0.6', podIPs: [{ ip: '10.1.0.6' }] } }, 'status');
    await waitFor(() => source.snapshot().pods[0]?.status?.podIP === '10.1.0.6');
    expect(changes).toBe(n + 1);
    await c().mergePatch({ apiVersion: 'v1', kind: 'Service', name: 'svc', namespace: NS }, { status: { loadBalancer: { ingress: [{ ip: '192.0.2.11' }] } } }, 'status');
    await waitFor(() => one(source.snapshot().services, 'svc')?.status?.loadBalancer?.ingress?.[0].ip === '192.0.2.11');
    expect(changes).toBe(n + 2);
    // And so does a label on a Gateway (no generation bump, still input).
    await c().mergePatch(gwRef, { metadata: { labels: { tier: 'edge' } } });
    await waitFor(() => source.snapshot().gateways[0]?.metadata.labels?.tier === 'edge');
    expect(changes).toBe(n + 3);
  });

  test('Secrets: only kubernetes.io/tls and Opaque are cached; others cost no onChange', async () => {
    const n = changes;
    const ignored = source.stats().Secret!.ignored;
    await c().create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'custom-2', namespace: NS }, type: 'example.com/custom', stringData: { x: 'y' } });
    await c().create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'docker-2', namespace: NS }, type: 'kubernetes.io/dockerconfigjson', stringData: { '.dockerconfigjson': '{"auths":{}}' } });
    await waitFor(() => source.stats().Secret!.ignored === ignored + 1); // the custom one arrived and was dropped
    await c().create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'opaque-2', namespace: NS }, type: 'Opaque', stringData: { url: 'redis://r:6379' } });
    await waitFor(() => source.snapshot().secrets.some((s) => s.metadata.name === 'opaque-2'));
    expect(changes).toBe(n + 1);
    expect(source.snapshot().secrets.find((s) => s.metadata.name === 'opaque-2')!.data).toEqual({ url: Buffer.from('redis://r:6379').toString('base64') });
    expect(source.stats().Secret!.ignored).toBe(ignored + 1); // docker-2 never reached us (field selector)
  });

  test('an optional CRD installed after start is found and watched', async () => {
    await c().create(ciliumCrd());
    await waitFor(() => source.stats().CiliumNetworkPolicy!.state === 'synced', 20_000);
    expect(source.stats().CiliumNetworkPolicy!.apiVersion).toBe('cilium.io/v2');
    const n = changes;
    await c().create({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'allow-gw', namespace: NS }, spec: { endpointSelector: {} } });
    await waitFor(() => source.snapshot().ciliumNetworkPolicies.some((p) => p.metadata.name === 'allow-gw'));
    expect(changes).toBeGreaterThan(n);
    expect(source.snapshot().ciliumNetworkPolicies[0]).toMatchObject({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', spec: { endpointSelector: {} } });
  }, 30_000);

  test('API server restart: the synced gate holds, a 410 Gone relists (a delete made behind its back disappears), watches resume', async () => {
    const cmRef = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: NS });
    await c().create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'doomed', namespace: NS }, data: { a: '1' } });
    const kept: KubeObject = await c().create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kept', namespace: NS }, data: { a: '1' } });
    await waitFor(() => ['doomed', 'kept'].every((name) => source.get('ConfigMap', NS, name)));
    const oldResourceVersion = kept.metadata.resourceVersion!;
    const listsBefore = source.stats().ConfigMap!.lists;

    let t = Date.now();
    await cluster.stopApiServer();
    const stoppedMs = Date.now() - t;
    // A second source starting while the API server is away: start() must wait.
    let secondSynced = false;
    const second = newSource();
    const secondStart = second.start().then(() => {
      secondSynced = true;
    });
    // Behind the API server's back: delete one object in etcd, then compact etcd's history, so
    // the resourceVersion the source's ConfigMap watch resumes from is gone for good.
    const del = await etcd(cluster, 'deleterange', { key: b64(`/registry/configmaps/${NS}/doomed`) });
    expect(del.deleted).toBe('1');
    await etcd(cluster, 'compaction', { revision: del.header.revision, physical: true });
    await sleep(500);
    expect(secondSynced).toBe(false);
    expect(source.snapshot().configMaps.some((o) => o.metadata.name === 'doomed')).toBe(true); // last known state kept

    t = Date.now();
    await cluster.startApiServer();
    const startedMs = Date.now() - t;
    // What a watch from the old resourceVersion gets now: 410 Gone (HTTP status, or an ERROR event).
    const gone = await c().request('GET', `/api/v1/namespaces/${NS}/configmaps`, { query: { watch: 1, resourceVersion: oldResourceVersion, timeoutSeconds: 1 } });
    expect(gone.status === 410 || /"code":410/.test(JSON.stringify(gone.body))).toBe(true);

    t = Date.now();
    await waitFor(() => !source.get('ConfigMap', NS, 'doomed'), 20_000);
    const relistMs = Date.now() - t;
    expect(source.stats().ConfigMap!.lists).toBeGreaterThan(listsBefore);
    expect(logs.some((l) => l.kind === 'ConfigMap' && /listing again/.test(l.msg))).toBe(true);
    expect(source.get('ConfigMap', NS, 'kept')).toBeDefined();
    await secondStart;
    expect(second.snapshot().configMaps.some((o) => o.metadata.name === 'kept')).toBe(true);

    // Watches work again, for every kind.
    const n = changes;
    await c().mergePatch(cmRef('kept'), { data: { a: '2' } });
    await c().mergePatch({ apiVersion: GW, kind: 'Gateway', name: 'gw', namespace: NS }, { spec: { listeners: [{ name: 'http', protocol: 'HTTP', port: 8080 }] } });
    await waitFor(() => source.get('ConfigMap', NS, 'kept')?.data?.a === '2' && source.snapshot().gateways[0]?.spec.listeners[0].port === 8080, 20_000);
    await waitFor(() => second.get('ConfigMap', NS, 'kept')?.data?.a === '2');
    expect(changes).toBeGreaterThanOrEqual(n + 2);
    expect(logs.some((l) => /restored after/.test(l.msg))).toBe(true);
    console.log(`API server stop ${stoppedMs} ms, start ${startedMs} ms; relist seen ${relistMs} ms after it was ready`);
  }, 60_000);

  test('without permission to list, the synced gate holds (403s retried with backoff) until stop() ends start()', async () => {
    const config = new KubeConfig();
    config.loadFromFile(cluster.writeKubeconfig(`${cluster.dir}/nobody.kubeconfig`, { token: cluster.tokens.nobody! }));
    const denied = newSource(() => undefined, 0, config);
    let outcome: unknown = 'pending';
    const started = denied.start().then(
      () => (outcome = 'resolved'),
      (err: Error) => (outcome = err),
    );
    await waitFor(() => Object.values(denied.stats()).filter((k) => k.errors >= 2).length >= 10);
    expect(outcome).toBe('pending');
    expect(denied.stats().Gateway!.state).toBe('syncing');
    const warning = logs.find((l) => l.level === 40 && l.kind === 'Gateway' && /403/.test(l.msg));
    expect(warning?.msg).toMatch(/gateways\.gateway\.networking\.k8s\.io is forbidden: User "nobody" cannot list/);
    await denied.stop();
    await started;
    expect(String(outcome)).toMatch(/stopped before every kind had synced/);

    // Stopped during discovery: start() rejects as well.
    const early = newSource();
    const earlyStart = early.start();
    void early.stop();
    await expect(earlyStart).rejects.toThrow(/stopped/);
  });

  test('a required kind not served makes start() fail with a clear error', async () => {
    await c().delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: 'httproutes.gateway.networking.k8s.io' });
    await waitFor(async () => {
      const r = await c().request('GET', '/apis/gateway.networking.k8s.io/v1');
      return !r.body.resources.some((x: any) => x.name === 'httproutes');
    }, 20_000);
    // The running source saw the HTTPRoutes go with their CRD.
    await waitFor(() => source.snapshot().httpRoutes.length === 0);
    const third = newSource();
    await expect(third.start()).rejects.toThrow(/does not serve HTTPRoute \(gateway\.networking\.k8s\.io\/v1 httproutes\).*Install the Gateway API CRDs/);
  }, 30_000);

  test('stop() ends everything (no watch outlives it)', async () => {
    await Promise.all(sources.map((s) => s.stop()));
    const n = changes;
    await c().create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-stop', namespace: NS }, data: {} });
    await sleep(300);
    expect(changes).toBe(n);
    expect(source.get('ConfigMap', NS, 'after-stop')).toBeUndefined();
  });
});

// ---- fixtures and helpers ------------------------------------------------------------------------

/** The object of that name in namespace NS (or cluster-scoped). */
function one<T extends SourceObject>(objs: T[], name: string): T | undefined {
  return objs.find((o) => o.metadata.name === name && (o.metadata.namespace ?? NS) === NS);
}

function condition(type: string, observedGeneration: number) {
  return { type, status: 'True', reason: type, message: 'test', observedGeneration, lastTransitionTime: '2026-01-01T00:00:00Z' };
}

async function createFixtures(cluster: TestCluster): Promise<{ gateway: KubeObject }> {
  const c = cluster.client;
  const create = (obj: KubeObject) => c.create(obj);
  const meta = (name: string) => ({ name, namespace: NS });
  await create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  // No kube-controller-manager here: the ServiceAccount admission of Pods needs `default` made by hand.
  await create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta('default') });
  await create({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } });
  const gateway = await create({
    apiVersion: GW,
    kind: 'Gateway',
    metadata: { ...meta('gw'), annotations: { team: 'edge', 'kubectl.kubernetes.io/last-applied-configuration': '{"kind":"Gateway"}' } },
    spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] },
  });
  await create({
    apiVersion: GW,
    kind: 'ListenerSet',
    metadata: meta('extra'),
    spec: { parentRef: { name: 'gw' }, listeners: [{ name: 'extra', protocol: 'HTTP', port: 8081 }] },
  });
  await create({ apiVersion: GW, kind: 'HTTPRoute', metadata: meta('route'), spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'svc', port: 80 }] }] } });
  await create({
    apiVersion: GW,
    kind: 'TLSRoute',
    metadata: meta('passthrough'),
    spec: { parentRefs: [{ name: 'gw' }], hostnames: ['tls.example.com'], rules: [{ backendRefs: [{ name: 'svc', port: 443 }] }] },
  });
  await create({
    apiVersion: GW,
    kind: 'ReferenceGrant',
    metadata: meta('grant'),
    spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'other' }], to: [{ group: '', kind: 'Service' }] },
  });
  await create({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'sluice' }, spec: { controller: 'sluice.dev/ingress-controller' } });
  await create({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: meta('ing'),
    spec: { ingressClassName: 'sluice', rules: [{ host: 'a.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'svc', port: { number: 80 } } } }] } }] },
  });
  await create({ apiVersion: 'v1', kind: 'Service', metadata: meta('svc'), spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
  await create({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { ...meta('svc-1'), labels: { 'kubernetes.io/service-name': 'svc' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true } }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  await create({ apiVersion: 'v1', kind: 'Secret', metadata: meta('cert'), type: 'kubernetes.io/tls', stringData: { 'tls.crt': 'CERT', 'tls.key': 'KEY' } });
  await create({ apiVersion: 'v1', kind: 'Secret', metadata: meta('opaque'), type: 'Opaque', stringData: { password: 'p' } });
  await create({ apiVersion: 'v1', kind: 'Secret', metadata: meta('docker'), type: 'kubernetes.io/dockerconfigjson', stringData: { '.dockerconfigjson': '{"auths":{}}' } });
  await create({ apiVersion: 'v1', kind: 'Secret', metadata: meta('custom'), type: 'example.com/custom', stringData: { a: 'b' } });
  await create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('ca'), data: { 'ca.crt': 'CA' } });
  await create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...meta('echo'), labels: { app: 'echo' } },
    spec: { automountServiceAccountToken: false, containers: [{ name: 'echo', image: 'registry.invalid/echo:1', env: [{ name: 'A', value: 'b' }], ports: [{ name: 'http', containerPort: 8080 }] }] },
  });
  await create({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('deny'), spec: { podSelector: {}, policyTypes: ['Ingress'] } });
  await create({
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: meta('per-client'),
    spec: {
      targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
      local: { rules: [{ clientSelectors: [{ headers: [{ name: 'x-client-id', type: 'Distinct' }] }], limit: { requests: 10, unit: 'Minute' } }] },
    },
  });
  return { gateway };
}

/** A stand-in for Cilium's CRD: same group, version, names and scope; any content. */
function ciliumCrd(): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'ciliumnetworkpolicies.cilium.io' },
    spec: {
      group: 'cilium.io',
      names: { kind: 'CiliumNetworkPolicy', listKind: 'CiliumNetworkPolicyList', plural: 'ciliumnetworkpolicies', singular: 'ciliumnetworkpolicy' },
      scope: 'Namespaced',
      versions: [{ name: 'v2', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}

/** etcd's v3 JSON gateway (keys and values base64). */
async function etcd(cluster: TestCluster, op: 'deleterange' | 'compaction', body: unknown): Promise<any> {
  const res = await fetch(`${cluster.etcdUrl}/v3/kv/${op}`, { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`etcd ${op}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${check.toString().slice(0, 300)}`);
    await sleep(25);
  }
}
