// Kubernetes mode reads what standalone reads. Without binaries: every kind the manifest folder
// reads is watched, of the same API group, at versions the folder validates. Against a real
// kube-apiserver + etcd (one cluster, the experimental channel's CRDs): the objects of the Gateway
// API family's kinds Sluice does not read (x-k8s.io, the Inference Extension) get the line the
// manifest folder gives the same manifests, a CRD installed later included; a list whose continue
// token expired mid-way (etcd compacted between two pages) falls back to one unpaginated list, as
// client-go's pager does.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { stringify } from 'yaml';

import { ignoredKindText } from '../../controller/sources/ignored-kinds.ts';
import { NAMED_UNREAD_APIS } from '../../controller/sources/kube-ignored.ts';
import { KIND_APIS, apiVersionOf } from '../../controller/sources/kinds.ts';
import { KubernetesSource } from '../../controller/sources/kubernetes.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { SNAPSHOT_FIELD_BY_KIND } from '../../controller/sources/objects.ts';
import { inputProblem, readApiGroupOf } from '../../controller/schema/validate.ts';
import { binariesSkipReason, grantClusterRole, kubeTestsRequired, startTestCluster, type KubeObject, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const describeKube = describeIfPossible('real API server tests of Kubernetes mode parity', binariesSkipReason(), kubeTestsRequired());
const NS = 'parity';

/**
 * Versions Kubernetes mode reads only where an older Gateway API release is installed (the cluster
 * serves no later one), and the folder, validating against v1.6.1's schemas, refuses ("does not
 * serve"): BackendTLSPolicy v1alpha3 was dropped in v1.5.
 */
const OLDER_CLUSTERS_ONLY = ['gateway.networking.k8s.io/v1alpha3 BackendTLSPolicy'];
const a = (kind: string) => KIND_APIS.find((k) => k.kind === kind)!;

describe('the kinds Kubernetes mode watches are the kinds the manifest folder reads', () => {
  test('same kinds, same API group, and every version watched is one the folder validates', () => {
    expect(KIND_APIS.map((k) => k.kind).sort()).toEqual(Object.keys(SNAPSHOT_FIELD_BY_KIND).sort());
    for (const api of KIND_APIS) {
      const group = readApiGroupOf(api.kind);
      // Cilium's kinds have no schema here (read by the types of the fields read, of any group).
      if (group === undefined) {
        expect([api.kind, api.group]).toEqual([api.kind, 'cilium.io']);
        continue;
      }
      expect([api.kind, api.group]).toEqual([api.kind, group]);
      for (const version of api.versions) {
        const apiVersion = apiVersionOf(api.group, version);
        if (OLDER_CLUSTERS_ONLY.includes(apiVersion + ' ' + api.kind)) continue;
        expect([apiVersion, api.kind, inputProblem({ apiVersion, kind: api.kind })]).not.toEqual([apiVersion, api.kind, expect.stringMatching(/does not serve/)]);
      }
    }
    // ... and each of those is still one Kubernetes mode watches (the list does not go stale).
    for (const entry of OLDER_CLUSTERS_ONLY) {
      const [apiVersion, kind] = entry.split(' ');
      expect(KIND_APIS.find((a) => a.kind === kind)?.versions.map((v) => apiVersionOf(a(kind).group, v))).toContain(apiVersion);
      expect(inputProblem({ apiVersion: apiVersion!, kind: kind! })).toMatch(/does not serve/);
    }
  });

  test('every group whose objects Kubernetes mode names gets the Gateway API family line, not "Sluice does not read this kind"', () => {
    for (const { group } of NAMED_UNREAD_APIS) {
      expect(ignoredKindText(`${group}/v1alpha1`, 'XThing', 'x')).toMatch(/a kind of the Gateway API('s experimental x-k8s.io group| Inference Extension)/);
    }
  });
});

describeKube('Kubernetes mode reads what standalone reads', () => {
  let cluster: TestCluster;
  let adminConfig: KubeConfig;
  const sources: KubernetesSource[] = [];
  const servers: Server[] = [];
  const logs: { level: number; msg: string; kind?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });

  beforeAll(async () => {
    // ConfigMaps without the API server's watch cache: their lists are served by etcd, where a
    // compacted continue token expires at once. With the cache (Kubernetes 1.34+ lists from its
    // snapshots), a token expires only once it is older than the cache's history, which a test
    // cannot wait out; the code path in Sluice is the same 410 either way.
    cluster = await startTestCluster({
      installSafeUpgradesPolicy: false,
      crdChannel: 'experimental',
      apiServerFlags: ['--watch-cache-sizes=configmaps#0'],
      users: [{ name: 'poller' }],
    });
    await cluster.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    adminConfig = new KubeConfig();
    adminConfig.loadFromFile(cluster.kubeconfigPath);
  }, 240_000);

  afterAll(async () => {
    await Promise.all(sources.map((s) => s.stop()));
    for (const s of servers) s.close();
    await cluster?.stop();
  }, 60_000);

  test('objects of the unread Gateway API kinds get the manifest folder\'s lines for the same manifests; a CRD installed later and an object deleted are seen', async () => {
    const mesh = { apiVersion: 'gateway.networking.x-k8s.io/v1alpha1', kind: 'XMesh', metadata: { name: 'mesh' }, spec: { controllerName: 'example.com/mesh' } };
    const retry = {
      apiVersion: 'gateway.networking.x-k8s.io/v1alpha1',
      kind: 'XBackendTrafficPolicy',
      metadata: { name: 'retry', namespace: NS },
      spec: { targetRefs: [{ group: '', kind: 'Service', name: 'echo' }], retryConstraint: { budget: { percent: 20 } } },
    };
    const pool = { apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', metadata: { name: 'llm', namespace: NS }, spec: { targetPorts: [{ number: 8000 }], selector: { matchLabels: { app: 'llm' } } } };
    // The manifest folder's lines for the same three manifests.
    const dir = mkdtempSync(join(tmpdir(), 'sluice-parity-'));
    let folderLines: string[];
    try {
      writeFileSync(join(dir, 'all.yaml'), [mesh, retry, pool].map((o) => stringify(o)).join('---\n'));
      const problems = new ManifestFolder(dir).load().problems.filter((p) => p.code === 'SLU_MANIFEST_OBJECT');
      // The folder names the object by metadata.name (its file says where); the cluster adds the namespace.
      folderLines = problems.map((p) => p.message.replace(/^document \d+: /, '').replace(/ (XBackendTrafficPolicy|InferencePool) (\S+):/, ` $1 ${NS}/$2:`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(folderLines).toHaveLength(3);

    await cluster.client.create(mesh);
    await cluster.client.create(retry);
    const source = new KubernetesSource({ kubeConfig: adminConfig, logger, onChange: () => undefined, backoff: { initialMs: 100, maxMs: 1000 }, rediscoverMs: 300 });
    sources.push(source);
    await source.start();
    const named = () => source.problems().filter((p) => p.code === 'SLU_MANIFEST_OBJECT').map((p) => p.message).sort();
    await until(() => named().length === 2);
    expect(named()).toEqual(folderLines.slice(0, 2).sort());
    // Logged once each, as the manifest folder's problems are.
    const logged = () => logs.filter((l) => /^SLU_MANIFEST_OBJECT /.test(l.msg)).map((l) => l.msg);
    await new Promise((resolve) => setTimeout(resolve, 800)); // more refreshes: no second line
    expect(logged().sort()).toEqual(folderLines.slice(0, 2).map((m) => `SLU_MANIFEST_OBJECT ${m}`).sort());

    // The Inference Extension's CRD installed after start (discovery changes), and an object of it.
    await cluster.client.create(inferencePoolCrd());
    await until(async () => (await cluster.client.request('GET', `/apis/inference.networking.k8s.io/v1/namespaces/${NS}/inferencepools`)).status === 200);
    await cluster.client.create(pool);
    await until(() => named().length === 3);
    expect(named()).toEqual([...folderLines].sort());

    await cluster.client.delete({ apiVersion: mesh.apiVersion, kind: 'XMesh', name: 'mesh' });
    await until(() => named().length === 2);
    expect(logs.some((l) => l.msg === `resolved: SLU_MANIFEST_OBJECT ${folderLines[0]}`)).toBe(true);
  }, 60_000);

  test('a kind this identity may list but not watch is polled: objects added and deleted after start arrive; once watch is granted, watched (no more lists)', async () => {
    const rules = (configMapVerbs: string[]) => KIND_APIS.map((k) => ({ apiGroups: [k.group], resources: [k.plural], verbs: k.plural === 'configmaps' ? configMapVerbs : ['list', 'watch'] }));
    const role = await grantClusterRole(cluster.client, 'poller', rules(['list']), { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'poller' });
    const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data: { a: '1' } });
    await cluster.client.create(cm('polled-before'));
    const config = new KubeConfig();
    config.loadFromFile(cluster.writeKubeconfig(join(cluster.dir, 'poller.kubeconfig'), { token: cluster.tokens.poller! }));
    await until(async () => (await cluster.clientFor({ token: cluster.tokens.poller! }).request('GET', '/api/v1/configmaps')).status === 200);
    const from = logs.length;
    const source = new KubernetesSource({ kubeConfig: config, logger, onChange: () => undefined, backoff: { initialMs: 100, maxMs: 400 }, rediscoverMs: 0 });
    sources.push(source);
    await source.start();
    const mine = () => source.snapshot().configMaps.filter((o) => o.metadata.namespace === NS && o.metadata.name.startsWith('polled-')).map((o) => o.metadata.name);
    expect(mine()).toEqual(['polled-before']);
    await until(() => logs.slice(from).some((l) => l.kind === 'ConfigMap' && l.level === 40));
    expect(logs.slice(from).find((l) => l.kind === 'ConfigMap' && l.level === 40)!.msg).toMatch(
      /^ConfigMap: list\/watch failed \(403 Forbidden to watch configmaps: this identity may list it but not watch it \(RBAC verb "watch"\); polled instead: listed again every 400 ms/,
    );
    expect(source.problems().find((p) => p.file === 'configmaps')?.message).toMatch(/polled instead.*; its objects are as last polled$/);

    // Before, the watch was retried from the first list's resourceVersion and nothing listed again: neither arrived.
    await cluster.client.create(cm('polled-after'));
    await cluster.client.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'polled-before', namespace: NS });
    await until(() => mine().join() === 'polled-after');
    expect(source.stats().ConfigMap!.lists).toBeGreaterThanOrEqual(2);
    // Routine: one warning, not one per poll.
    expect(logs.slice(from).filter((l) => l.kind === 'ConfigMap' && l.level >= 30 && /listing again|restored/.test(l.msg))).toEqual([]);

    // watch granted: picked up by the next poll, then watched.
    await cluster.client.replace({ ...role, rules: rules(['list', 'watch']) });
    await until(() => logs.slice(from).some((l) => l.kind === 'ConfigMap' && /list\/watch restored/.test(l.msg)));
    expect(source.problems().find((p) => p.file === 'configmaps')).toBeUndefined();
    const lists = source.stats().ConfigMap!.lists;
    await cluster.client.create(cm('polled-watched'));
    await until(() => mine().includes('polled-watched'));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // several poll intervals
    expect(source.stats().ConfigMap!.lists).toBe(lists);
  }, 60_000);

  /**
   * A plain-HTTP forwarder to the real API server (admin token added) that lets a test act between
   * two requests: here, compact etcd before a list's second page is asked for.
   */
  async function forwarder(before: (path: string) => Promise<void>): Promise<{ kubeConfig: KubeConfig; seen: { path: string; status: number }[] }> {
    const seen: { path: string; status: number }[] = [];
    const target = new URL(cluster.server);
    const server = createServer((req, res) => {
      const path = req.url ?? '/';
      void before(path).then(() => {
        const up = httpsRequest(
          { host: target.hostname, port: target.port, path, method: req.method, ca: cluster.caPem, headers: { ...req.headers, host: target.host, authorization: `Bearer ${cluster.adminToken}` } },
          (upRes) => {
            seen.push({ path, status: upRes.statusCode ?? 0 });
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            res.flushHeaders(); // a watch's headers come long before its first event
            upRes.pipe(res);
          },
        );
        up.on('error', () => res.destroy());
        res.on('close', () => up.destroy());
        req.pipe(up);
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      // Plain HTTP on loopback to the forwarder (client-node wants skipTLSVerify said for http://).
      clusters: [{ name: 'fwd', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'fwd' }],
      contexts: [{ name: 'fwd', cluster: 'fwd', user: 'fwd' }],
      currentContext: 'fwd',
    });
    return { kubeConfig, seen };
  }

  test('a continue token expired between two pages (etcd compacted): one unpaginated list, as client-go falls back to', async () => {
    for (let i = 0; i < 5; i++) {
      await cluster.client.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `page-${i}`, namespace: NS }, data: { i: String(i) } });
    }
    let compacted = false;
    const { kubeConfig, seen } = await forwarder(async (path) => {
      if (compacted || !path.startsWith('/api/v1/configmaps?') || !path.includes('continue=')) return;
      compacted = true;
      // A write after the first page, then etcd's history compacted up to it: the first page's
      // resourceVersion, which the continue token carries, is gone.
      await cluster.client.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'late', namespace: NS }, data: { i: 'late' } });
      const status = await etcd(cluster, 'status', {});
      await etcd(cluster, 'compaction', { revision: status.header.revision, physical: true });
    });
    const source = new KubernetesSource({ kubeConfig, logger, onChange: () => undefined, backoff: { initialMs: 100, maxMs: 1000 }, rediscoverMs: 0, pageSize: 2 });
    sources.push(source);
    await source.start();

    const configMapLists = seen.filter((r) => /^\/api\/v1\/configmaps(\?|$)/.test(r.path) && !r.path.includes('watch='));
    // The API server did refuse the token: 410 on the page that carried it.
    expect(configMapLists.filter((r) => r.status === 410).map((r) => r.path.includes('continue='))).toEqual([true]);
    // Then one list without a limit, and no second paginated pass.
    const after = configMapLists.slice(configMapLists.findIndex((r) => r.status === 410) + 1);
    expect(after.map((r) => [/[?&]limit=/.test(r.path), r.status])).toEqual([[false, 200]]);
    expect(source.stats().ConfigMap).toMatchObject({ lists: 1, unpaginatedLists: 1, state: 'synced' });
    const names = source.snapshot().configMaps.filter((o) => o.metadata.namespace === NS && /^(page-|late$)/.test(o.metadata.name)).map((o) => o.metadata.name);
    expect(names).toEqual(['late', 'page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    expect(logs.some((l) => l.kind === 'ConfigMap' && /continue token expired \(410\).*unpaginated/.test(l.msg))).toBe(true);
  }, 60_000);
});

/** A stand-in for the Inference Extension's v1 InferencePool CRD (not at hand here): same group, version, names and scope; any content. */
function inferencePoolCrd(): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    // A *.k8s.io group is protected: the API server wants the approval annotation, as on the real CRD.
    metadata: { name: 'inferencepools.inference.networking.k8s.io', annotations: { 'api-approved.kubernetes.io': 'https://github.com/kubernetes-sigs/gateway-api-inference-extension/pull/1173' } },
    spec: {
      group: 'inference.networking.k8s.io',
      names: { kind: 'InferencePool', listKind: 'InferencePoolList', plural: 'inferencepools', singular: 'inferencepool' },
      scope: 'Namespaced',
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** etcd's v3 JSON gateway. */
async function etcd(cluster: TestCluster, op: 'compaction' | 'status', body: unknown): Promise<{ header: { revision: string } }> {
  const path = op === 'status' ? '/v3/maintenance/status' : `/v3/kv/${op}`;
  const res = await fetch(`${cluster.etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`etcd ${op}: ${res.status} ${JSON.stringify(json)}`);
  return json as { header: { revision: string } };
}
