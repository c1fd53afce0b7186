// A real cluster's ordinary trouble, against a real kube-apiserver + etcd (one for the file):
// - RBAC that does not cover every kind Sluice reads: an optional kind answering 403 must not keep
//   the rest from being served; it is named, retried, and picked up once granted;
// - a CRD removed while watched (its objects go with it; the kind becomes absent and is looked for
//   again), installed again at another version, and a CRD upgrade that stops serving the version
//   in use (the informer moves to the version now served);
// - an older standard channel without our CRDs (named once, the rest served, a CRD installed later watched);
// - a status write the identity may not make (403): named, the others still written; leader
//   election without permission on the Lease: what RBAC refused, said once;
// - an API server gone silent (a network path black-holed: connections accepted or kept open, no
//   byte answered): every wait is bounded, the source converges once the path is back.
import { readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';

import { KIND_APIS } from '../../controller/sources/kinds.ts';
import { KubernetesSource } from '../../controller/sources/kubernetes.ts';
import { LeaderElector } from '../../controller/leader.ts';
import { StatusWriter } from '../../controller/status/writer.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, KubeApiError, type KubeObject, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';
import { waitFor } from '../support/wait.ts';

const describeKube = describeIfPossible('Kubernetes-mode trouble tests', binariesSkipReason(), kubeTestsRequired());

const GROUP = 'gateway.networking.k8s.io';
const GW = `${GROUP}/v1`;
const NS = 'trouble';
const CONTROLLER = 'sluice.dev/gateway-controller';

describeKube('Kubernetes mode under a real cluster\'s ordinary trouble', () => {
  let cluster: TestCluster;
  let restricted: KubeConfig;
  let admin: KubeConfig;
  const sources: KubernetesSource[] = [];
  const logs: { level: number; msg: string; kind?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const c = () => cluster.client;
  const newSource = (config: KubeConfig, onChange: () => void = () => undefined) => {
    const s = new KubernetesSource({ kubeConfig: config, logger, onChange, backoff: { initialMs: 100, maxMs: 500 }, rediscoverMs: 300 });
    sources.push(s);
    return s;
  };
  const clusterRole = (name: string, rules: unknown[]) =>
    c().create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules });
  const bindToRestricted = (name: string) =>
    c().create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'sluice:restricted' }],
    });

  const createCrd = async (crd: KubeObject): Promise<void> => {
    // The previous CRD of that name may still be finishing its deletion (its objects being removed).
    for (let i = 0; ; i++) {
      try {
        return void (await c().create(crd));
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 409) || i > 100) throw err;
        await sleep(200);
      }
    }
  };

  /** Admin credentials, connecting through a proxy. */
  const throughProxy = (port: number): KubeConfig => {
    const path = `${cluster.dir}/proxied-${port}.kubeconfig`;
    writeFileSync(path, readFileSync(cluster.kubeconfigPath, 'utf8').replaceAll(cluster.server, `https://127.0.0.1:${port}`));
    const config = new KubeConfig();
    config.loadFromFile(path);
    return config;
  };

  beforeAll(async () => {
    cluster = await startTestCluster({ installSafeUpgradesPolicy: false, users: [{ name: 'restricted', groups: ['sluice:restricted'] }, { name: 'list-only' }] });
    admin = new KubeConfig();
    admin.loadFromFile(cluster.kubeconfigPath);
    restricted = new KubeConfig();
    restricted.loadFromFile(cluster.writeKubeconfig(`${cluster.dir}/restricted.kubeconfig`, { token: cluster.tokens.restricted! }));
    await c().create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    // Read access to every kind Sluice watches but TLSRoute and GRPCRoute (an older chart, or a
    // ClusterRole trimmed by hand), and status writes on HTTPRoutes only.
    const readable = KIND_APIS.filter((k) => k.kind !== 'TLSRoute' && k.kind !== 'GRPCRoute');
    await clusterRole('trouble-reader', [
      ...readable.map((k) => ({ apiGroups: [k.group], resources: [k.plural], verbs: ['get', 'list', 'watch'] })),
      { apiGroups: [GROUP], resources: ['gateways/status', 'httproutes/status'], verbs: ['get'] },
      { apiGroups: [GROUP], resources: ['httproutes/status'], verbs: ['patch', 'update'] },
    ]);
    await bindToRestricted('trouble-reader');
    // The RBAC authorizer sees new bindings through an informer: wait until it applies this one.
    const asRestricted = cluster.clientFor({ token: cluster.tokens.restricted! });
    await until(async () => (await asRestricted.request('GET', `/apis/${GW}/tcproutes`)).status === 200, 20_000);
    await c().create({ apiVersion: GW, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } });
    await c().create({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'web', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } });
    await c().create({
      apiVersion: GW,
      kind: 'TLSRoute',
      metadata: { name: 'passthrough', namespace: NS },
      spec: { parentRefs: [{ name: 'gw' }], hostnames: ['db.example.com'], rules: [{ backendRefs: [{ name: 'db', port: 5432 }] }] },
    });
    await c().create({ apiVersion: GW, kind: 'TCPRoute', metadata: { name: 'tcp', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'tcp', port: 3000 }] }] } });
  }, 240_000);

  afterAll(async () => {
    if (process.env.TROUBLE_TEST_LOGS) console.log(logs.map((l) => JSON.stringify(l)).join('\n'));
    await Promise.all(sources.map((s) => s.stop()));
    await cluster?.stop();
  }, 60_000);

  test('an API server gone silent: a starting source and a running watch time out and retry, and converge once it answers again', async () => {
    const proxy = await startSilenceableProxy(new URL(cluster.server).port);
    try {
      const options = { kubeConfig: throughProxy(proxy.port), logger, onChange: () => undefined, backoff: { initialMs: 100, maxMs: 500 }, rediscoverMs: 0, requestTimeoutMs: 1_500 };
      const running = new KubernetesSource(options);
      sources.push(running);
      await running.start();

      proxy.silence();
      await c().create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'while-silent', namespace: NS }, data: { a: '1' } });
      // Started while nothing answers: before, discovery waited for undici's 300 s header timeout.
      const starting = new KubernetesSource(options);
      sources.push(starting);
      let synced = false;
      const started = starting.start().then(() => (synced = true));
      await sleep(3_000);
      expect(synced).toBe(false);
      expect(logs.some((l) => l.level === 40 && /API discovery failed/.test(l.msg) && /timeout/i.test(l.msg))).toBe(true);

      // New connections go through again; the silent ones stay silent (their peer is gone).
      proxy.restore();
      await started;
      expect(starting.get('ConfigMap', NS, 'while-silent')).toBeDefined();
      // The running source's ConfigMap watch sits on a silent connection: its inactivity timeout ends it.
      await until(() => running.get('ConfigMap', NS, 'while-silent') !== undefined, 15_000);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  test('a large kind lists in pages (limit/continue) with every object, huge annotations included, and is watched after', async () => {
    const ns = 'big';
    await c().create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const count = 1_000;
    // Near the API server's 256 KiB bound on all annotations of one object (kubectl's last-applied
    // copy of a big object looks like this): every tenth object carries one.
    const huge = 'x'.repeat(200 * 1024);
    const t = Date.now();
    for (let i = 0; i < count; i += 25) {
      await Promise.all(
        Array.from({ length: Math.min(25, count - i) }, (_, j) =>
          c().create({
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: `cm-${String(i + j).padStart(4, '0')}`, namespace: ns, ...((i + j) % 10 === 0 ? { annotations: { 'example.com/blob': huge } } : {}) },
            data: { n: String(i + j) },
          }),
        ),
      );
    }
    const createdMs = Date.now() - t;
    // Pages of 64 (the default is 500): the continue token is followed 16 times.
    const source = new KubernetesSource({ kubeConfig: admin, logger, onChange: () => undefined, rediscoverMs: 0, pageSize: 64 });
    sources.push(source);
    const started = Date.now();
    await source.start();
    const listedMs = Date.now() - started;
    const mine = source.snapshot().configMaps.filter((m) => m.metadata.namespace === ns);
    expect(mine).toHaveLength(count);
    expect(new Set(mine.map((m) => m.metadata.name)).size).toBe(count);
    expect(source.get('ConfigMap', ns, 'cm-0990')?.metadata.annotations?.['example.com/blob']).toHaveLength(huge.length);
    await c().mergePatch({ apiVersion: 'v1', kind: 'ConfigMap', name: 'cm-0999', namespace: ns }, { data: { n: 'changed' } });
    await until(() => source.get('ConfigMap', ns, 'cm-0999')?.data?.n === 'changed');
    console.log(`${count} ConfigMaps (${count / 10} with a 200 KiB annotation): created in ${createdMs} ms, listed in pages of 64 in ${listedMs} ms`);
  }, 120_000);

  test('an optional kind the identity may not list (403) is served as absent, named once, and picked up when granted', async () => {
    let changes = 0;
    const source = newSource(restricted, () => changes++);
    // Before: start() waited for TLSRoute's list forever, so nothing at all was served.
    await source.start();
    expect(source.snapshot().httpRoutes.map((r) => r.metadata.name)).toEqual(['web']);
    expect(source.snapshot().tcpRoutes.map((r) => r.metadata.name)).toEqual(['tcp']);
    expect(source.snapshot().tlsRoutes).toEqual([]);
    expect(source.stats().TLSRoute!.state).toBe('forbidden');
    expect(source.stats().GRPCRoute!.state).toBe('forbidden');
    const summary = logs.filter((l) => l.level === 40 && /^serving without/.test(l.msg));
    expect(summary).toHaveLength(1);
    expect(summary[0]!.msg).toMatch(/serving without TLSRoute, GRPCRoute: this identity may not list and watch tlsroutes\.gateway\.networking\.k8s\.io, grpcroutes\.gateway\.networking\.k8s\.io \(403\)/);
    expect(logs.some((l) => l.level === 40 && l.kind === 'TLSRoute' && /cannot list resource "tlsroutes"/.test(l.msg))).toBe(true);
    // Also a problem while it lasts (the admin API's /readyz and /api/status, `sluice status`).
    const problem = source.problems().find((p) => p.file === `tlsroutes.${GROUP}`);
    expect(problem?.code).toBe('SLU_SOURCE_READ');
    expect(problem?.message).toMatch(/^TLSRoute: cannot list\/watch \(.*cannot list resource "tlsroutes".*\); served as if it had no objects until this identity may list and watch it$/);

    // Retried: granting the permission brings the TLSRoute in, as a change, without a restart.
    const before = changes;
    await clusterRole('trouble-tlsroutes', [{ apiGroups: [GROUP], resources: ['tlsroutes'], verbs: ['get', 'list', 'watch'] }]);
    await bindToRestricted('trouble-tlsroutes');
    // (Its objects show as the list lands; synced once the watch is set up.)
    await until(() => source.stats().TLSRoute!.state === 'synced', 20_000);
    expect(source.snapshot().tlsRoutes.map((r) => r.metadata.name)).toEqual(['passthrough']);
    expect(changes).toBeGreaterThan(before);
    expect(logs.some((l) => l.kind === 'TLSRoute' && /no longer forbidden/.test(l.msg))).toBe(true);
    expect(source.problems().map((p) => p.file)).toEqual([`grpcroutes.${GROUP}`]);
    // And watched from then on.
    await c().mergePatch({ apiVersion: GW, kind: 'TLSRoute', name: 'passthrough', namespace: NS }, { spec: { hostnames: ['db2.example.com'] } });
    await until(() => source.get('TLSRoute', NS, 'passthrough')?.spec !== undefined && JSON.stringify(source.get('TLSRoute', NS, 'passthrough')!.spec).includes('db2.example.com'));
    expect(source.stats().GRPCRoute!.state).toBe('forbidden');
  }, 60_000);

  test('a kind the identity may list but not watch: served as listed, the missing verb named', async () => {
    await clusterRole('trouble-list-only', KIND_APIS.map((k) => ({ apiGroups: [k.group], resources: [k.plural], verbs: k.kind === 'UDPRoute' ? ['list'] : ['list', 'watch'] })));
    await c().create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'trouble-list-only' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'trouble-list-only' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'list-only' }],
    });
    await c().create({ apiVersion: GW, kind: 'UDPRoute', metadata: { name: 'dns', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'dns', port: 53 }] }] } });
    const listOnly = new KubeConfig();
    listOnly.loadFromFile(cluster.writeKubeconfig(`${cluster.dir}/list-only.kubeconfig`, { token: cluster.tokens['list-only']! }));
    const asListOnly = cluster.clientFor({ token: cluster.tokens['list-only']! });
    await until(async () => (await asListOnly.request('GET', `/apis/${GW}/udproutes`)).status === 200, 20_000);
    const source = newSource(listOnly);
    const from = logs.length;
    const warning = () => logs.slice(from).find((l) => l.kind === 'UDPRoute' && l.level === 40);
    await source.start();
    expect(source.snapshot().udpRoutes.map((r) => r.metadata.name)).toEqual(['dns']);
    await until(() => warning() !== undefined);
    // Before: "UDPRoute: list/watch failed (HTTP 403 Forbidden)", which verb left to guess.
    expect(warning()!.msg).toMatch(
      /UDPRoute: list\/watch failed \(403 Forbidden to watch udproutes\.gateway\.networking\.k8s\.io: this identity may list it but not watch it \(RBAC verb "watch"\)/,
    );
    await source.stop();
  }, 60_000);

  test('a required kind the identity may not list still holds the synced gate: nothing is published from a partial view', async () => {
    const secretless = new KubeConfig();
    await c().create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'no-secrets', namespace: NS } });
    const token = await cluster.serviceAccountToken(NS, 'no-secrets');
    secretless.loadFromFile(cluster.writeKubeconfig(`${cluster.dir}/no-secrets.kubeconfig`, { token }));
    await clusterRole('trouble-no-secrets', KIND_APIS.filter((k) => k.kind !== 'Secret').map((k) => ({ apiGroups: [k.group], resources: [k.plural], verbs: ['list', 'watch'] })));
    await c().create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'trouble-no-secrets' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'trouble-no-secrets' },
      subjects: [{ kind: 'ServiceAccount', name: 'no-secrets', namespace: NS }],
    });
    const source = newSource(secretless);
    let synced = false;
    const started = source.start().then(
      () => (synced = true),
      () => undefined,
    );
    await until(() => source.stats().Secret!.errors >= 2 && source.stats().Gateway!.state === 'synced', 20_000);
    expect(synced).toBe(false);
    expect(source.stats().Secret!.state).toBe('syncing');
    expect(source.problems().find((p) => p.file === 'secrets')?.message).toMatch(/^Secret: cannot list\/watch \(.*secrets is forbidden.*\); nothing is translated until it has listed$/);
    expect(logs.some((l) => l.level === 40 && l.kind === 'Secret' && /secrets is forbidden: User "system:serviceaccount:trouble:no-secrets" cannot list/.test(l.msg))).toBe(true);
    await source.stop();
    await started;
  }, 60_000);

  test('a CRD removed while watched: its objects go, the kind becomes absent; installed again at another version, it is found there', async () => {
    const source = newSource(admin);
    await source.start();
    await until(() => source.snapshot().tcpRoutes.length === 1);
    expect(source.stats().TCPRoute!.apiVersion).toBe(`${GROUP}/v1`);

    await c().delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: `tcproutes.${GROUP}` });
    // Before: the informer listed the gone version again and again (404), the kind stayed "synced".
    await until(() => source.stats().TCPRoute!.state === 'absent', 30_000);
    expect(source.snapshot().tcpRoutes).toEqual([]);
    expect(source.snapshot().httpRoutes.map((r) => r.metadata.name)).toEqual(['web']);
    const gone = logs.find((l) => l.kind === 'TCPRoute' && /is no longer served/.test(l.msg));
    expect(gone?.msg).toMatch(/gateway\.networking\.k8s\.io\/v1 tcproutes is no longer served \(its CRD was removed\?\); treated as absent/);
    expect(gone?.level).toBe(40);

    // An older release's CRD: v1alpha2 only.
    await createCrd(tcpRouteCrd([{ name: 'v1alpha2', served: true, storage: true }, { name: 'v1', served: false, storage: false }]));
    await until(() => source.stats().TCPRoute!.state === 'synced', 20_000);
    expect(source.stats().TCPRoute!.apiVersion).toBe(`${GROUP}/v1alpha2`);
    for (const name of ['old', 'gone-meanwhile']) {
      await c().create({ apiVersion: `${GROUP}/v1alpha2`, kind: 'TCPRoute', metadata: { name, namespace: NS }, spec: { parentRefs: [{ name: 'gw' }] } });
    }
    await until(() => source.snapshot().tcpRoutes.length === 2);
    // A second source whose connection goes silent while the CRD changes: no watch of it sees what
    // happens meanwhile.
    const proxy = await startSilenceableProxy(new URL(cluster.server).port);
    const moving = new KubernetesSource({ kubeConfig: throughProxy(proxy.port), logger, onChange: () => undefined, backoff: { initialMs: 100, maxMs: 500 }, rediscoverMs: 300, requestTimeoutMs: 1_500 });
    sources.push(moving);
    try {
      await moving.start();
      expect(moving.snapshot().tcpRoutes).toHaveLength(2);
      proxy.silence();

      // Upgraded in place: v1 served, v1alpha2 no longer. The watch on v1alpha2 ends; the kind moves
      // to v1. An object deleted while it moves must not stay in the cache (before: the new
      // informer's list only added, and nothing ever said it was gone).
      const crd = await c().get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: `tcproutes.${GROUP}` });
      crd.spec.versions = tcpRouteCrd([{ name: 'v1alpha2', served: false, storage: true }, { name: 'v1', served: true, storage: false }]).spec.versions;
      await c().replace(crd);
      await until(async () => (await c().request('DELETE', `/apis/${GW}/namespaces/${NS}/tcproutes/gone-meanwhile`)).status === 200, 10_000);
      proxy.restore();
      for (const s of [source, moving]) {
        await until(() => s.stats().TCPRoute!.apiVersion === `${GROUP}/v1` && s.stats().TCPRoute!.state === 'synced', 30_000);
        expect(s.snapshot().tcpRoutes.map((r) => [r.apiVersion, r.metadata.name])).toEqual([[`${GROUP}/v1`, 'old']]);
      }
    } finally {
      await proxy.close();
    }
    expect(logs.some((l) => l.kind === 'TCPRoute' && /v1alpha2 is no longer served; watching gateway\.networking\.k8s\.io\/v1/.test(l.msg))).toBe(true);
    // Watched there.
    await c().create({ apiVersion: GW, kind: 'TCPRoute', metadata: { name: 'new', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }] } });
    await until(() => source.snapshot().tcpRoutes.some((r) => r.metadata.name === 'new'));
  }, 90_000);

  test('leader election without permission on the Lease: said once, with what RBAC refused; never leading', async () => {
    const from = logs.length;
    const elector = new LeaderElector({ kubeConfig: restricted, namespace: NS, name: 'sluice-controller', identity: 'trouble-0', logger, retryPeriodSeconds: 0.2, onStartedLeading: () => undefined, onStoppedLeading: () => undefined });
    elector.start();
    try {
      await until(() => logs.slice(from).some((l) => /leader election: cannot reach the lease/.test(l.msg)));
      await sleep(1_000); // several retries
      const lines = logs.slice(from).filter((l) => /leader election: cannot reach the lease/.test(l.msg));
      // Before: "cannot reach the lease: HTTP 403", which permission left to guess.
      expect(lines.map((l) => l.msg)).toEqual([
        `leader election: cannot reach the lease: HTTP 403: leases.coordination.k8s.io "sluice-controller" is forbidden: User "restricted" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "${NS}"`,
      ]);
      expect(elector.isLeader()).toBe(false);
    } finally {
      await elector.stop();
    }
  });

  test('an older standard channel without our CRDs: the missing optional kinds named in one line, the rest served; one installed later is watched', async () => {
    const missing = [`grpcroutes.${GROUP}`, `listenersets.${GROUP}`, `backendtlspolicies.${GROUP}`, 'ratelimitpolicies.sluice.dev'];
    const saved = new Map<string, KubeObject>();
    for (const name of missing) {
      const crd = await c().get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name });
      saved.set(name, { apiVersion: crd.apiVersion, kind: crd.kind, metadata: { name, annotations: crd.metadata.annotations }, spec: crd.spec });
      await c().delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name });
    }
    await until(async () => (await c().request('GET', `/apis/${GW}`)).body.resources.every((r: { name: string }) => !['grpcroutes', 'listenersets', 'backendtlspolicies'].includes(r.name)), 20_000);
    await until(async () => (await c().request('GET', '/apis/sluice.dev/v1alpha1')).status === 404, 20_000);

    const from = logs.length;
    const source = newSource(admin);
    await source.start();
    expect(source.snapshot().httpRoutes.map((r) => r.metadata.name)).toEqual(['web']);
    const absent = logs.slice(from).filter((l) => /not served, treated as absent/.test(l.msg));
    expect(absent).toHaveLength(1);
    for (const named of ['ListenerSet (gateway.networking.k8s.io/v1)', 'GRPCRoute (gateway.networking.k8s.io/v1)', 'BackendTLSPolicy (gateway.networking.k8s.io/v1)', 'RateLimitPolicy (sluice.dev/v1alpha1)']) {
      expect(absent[0]!.msg).toContain(named);
    }
    expect(source.stats().RateLimitPolicy!.state).toBe('absent');

    // Installed later (the CRD as the release ships it): found and watched, no restart.
    await createCrd(saved.get(`grpcroutes.${GROUP}`)!);
    await until(() => source.stats().GRPCRoute!.state === 'synced', 20_000);
    await c().create({ apiVersion: GW, kind: 'GRPCRoute', metadata: { name: 'rpc', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'rpc', port: 9000 }] }] } });
    await until(() => source.snapshot().grpcRoutes.some((r) => r.metadata.name === 'rpc'));
    for (const name of missing.slice(1)) await createCrd(saved.get(name)!);
  }, 60_000);

  test('a status write the identity may not make (403) is named once while retried; the statuses it may write are written; granted, it is written', async () => {
    const writer = new StatusWriter({ kubeConfig: restricted, controllerName: CONTROLLER, logger, current: () => undefined, requestTimeoutMs: 5_000 });
    const parentRef = { group: GROUP, kind: 'Gateway', name: 'gw', namespace: NS };
    const accepted = (generation: number) => [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', observedGeneration: generation, lastTransitionTime: '2026-01-01T00:00:00Z' }];
    const gateway = (generation: number) => ({ kind: 'Gateway', apiVersion: GW, namespace: NS, name: 'gw', status: { conditions: accepted(generation) } });
    const route = (generation: number) => ({
      kind: 'HTTPRoute', apiVersion: GW, namespace: NS, name: 'web',
      status: { parents: [{ parentRef, controllerName: CONTROLLER, conditions: accepted(generation) }] },
    });
    const warnings = () => logs.filter((l) => l.level === 40 && /could not write the status of/.test(l.msg));
    const result = await writer.write([gateway(1), route(1)]);
    expect(result.written).toBe(1);
    expect(result.failed).toEqual([`Gateway/${NS}/gw`]);
    expect((await c().get({ apiVersion: GW, kind: 'HTTPRoute', name: 'web', namespace: NS })).status.parents).toHaveLength(1);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]!.msg).toMatch(/of 1 object\(s\): Gateway\/trouble\/gw: HTTP 403: gateways\.gateway\.networking\.k8s\.io "gw" is forbidden: User "restricted" cannot patch resource "gateways\/status"/);

    // The controller retries every few seconds: the same refusal again is not warned about again
    // (before: one warning per retry, for as long as the RBAC stays wrong) ...
    const again = await writer.write([gateway(1), route(2)]);
    expect(again).toMatchObject({ written: 1, failed: [`Gateway/${NS}/gw`] });
    expect(warnings()).toHaveLength(1);
    expect(logs.some((l) => l.level === 20 && /^still could not write the status of 1 object/.test(l.msg))).toBe(true);
    // ... and once granted, it is written and said so.
    await clusterRole('trouble-gateway-status', [{ apiGroups: [GROUP], resources: ['gateways/status'], verbs: ['patch'] }]);
    await bindToRestricted('trouble-gateway-status');
    await until(async () => (await writer.write([gateway(1), route(2)])).failed.length === 0, 20_000);
    expect((await c().get({ apiVersion: GW, kind: 'Gateway', name: 'gw', namespace: NS })).status.conditions[0].reason).toBe('Accepted');
    expect(logs.some((l) => l.level === 30 && /status writes succeed again/.test(l.msg))).toBe(true);
  });

  // Last: it changes the HTTPRoute CRD the other tests read.
  test('a required kind no longer served at a version Sluice reads: its last objects kept and said, not dropped; served again, watched as before', async () => {
    const source = newSource(admin);
    await source.start();
    await until(() => source.snapshot().httpRoutes.some((r) => r.metadata.name === 'web'));
    const get = () => c().get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: `httproutes.${GROUP}` });
    const serve = async (served: (version: string) => boolean) => {
      const crd = await get();
      crd.spec.versions = crd.spec.versions.map((v: { name: string }) => ({ ...v, served: served(v.name) }));
      await c().replace(crd);
    };
    // An older bundle applied over it, say: only v1beta1 served. The objects stay in etcd; a
    // discovery answer without v1 is all Sluice sees.
    await serve((v) => v === 'v1beta1');
    await until(() => source.stats().HTTPRoute!.state === 'absent', 30_000);
    // Before: every HTTPRoute dropped on that answer, and a configuration without routes published.
    expect(source.snapshot().httpRoutes.map((r) => r.metadata.name)).toContain('web');
    expect(source.problems().find((p) => p.file === `httproutes.${GROUP}`)?.message).toBe(
      'HTTPRoute: httproutes are no longer served by the API server (its CRD was removed?); keeping its last listed objects until they are served again',
    );
    const lost = logs.find((l) => l.kind === 'HTTPRoute' && /is no longer served/.test(l.msg));
    expect(lost?.level).toBe(50);
    expect(lost?.msg).toMatch(/keeping its \d+ last listed object\(s\) until it is served again/);
    // v1 served again: watched, its list the cache, the problem gone.
    await serve(() => true);
    await until(() => source.stats().HTTPRoute!.state === 'synced', 30_000);
    expect(source.snapshot().httpRoutes.map((r) => r.metadata.name)).toContain('web');
    expect(source.problems().find((p) => p.file === `httproutes.${GROUP}`)).toBeUndefined();
    await c().create({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'after', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }] } });
    await until(() => source.snapshot().httpRoutes.some((r) => r.metadata.name === 'after'));
  }, 90_000);
});

/**
 * A TCP proxy to the API server that can go silent the way a broken network path does: silence()
 * keeps every connection open but forwards nothing more on those that exist and answers nothing on
 * new ones; restore() forwards new connections again (the silenced ones stay silent).
 */
async function startSilenceableProxy(upstreamPort: string): Promise<{ port: number; silence(): void; restore(): void; close(): Promise<void> }> {
  let silent = false;
  const open = new Set<{ client: Socket; upstream?: Socket; stalled: boolean }>();
  const server: Server = createServer((client) => {
    const pair: { client: Socket; upstream?: Socket; stalled: boolean } = { client, stalled: silent };
    open.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => {
      pair.upstream?.destroy();
      open.delete(pair);
    });
    if (pair.stalled) return void client.resume(); // read and drop
    const upstream = connect(Number(upstreamPort), '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (chunk) => void (pair.stalled || upstream.write(chunk)));
    upstream.on('data', (chunk) => void (pair.stalled || client.write(chunk)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    silence() {
      silent = true;
      for (const pair of open) pair.stalled = true;
    },
    restore() {
      silent = false;
    },
    async close() {
      for (const pair of open) pair.client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function tcpRouteCrd(versions: { name: string; served: boolean; storage: boolean }[]): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    // The group is protected (*.k8s.io): the release's own approval annotation.
    metadata: { name: `tcproutes.${GROUP}`, annotations: { 'api-approved.kubernetes.io': 'https://github.com/kubernetes-sigs/gateway-api/pull/4530' } },
    spec: {
      group: GROUP,
      names: { kind: 'TCPRoute', listKind: 'TCPRouteList', plural: 'tcproutes', singular: 'tcproute' },
      scope: 'Namespaced',
      versions: versions.map((v) => ({ ...v, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } }, subresources: { status: {} } })),
    },
  };
}

/** test/support/wait.ts's poll, for a yes/no check. */
function until(check: () => boolean | Promise<boolean>, timeoutMs?: number): Promise<true> {
  return waitFor(check.toString().slice(0, 300), async () => (await check()) || undefined, timeoutMs);
}
