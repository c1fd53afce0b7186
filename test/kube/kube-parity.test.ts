// Kubernetes mode reads what standalone reads, against a real kube-apiserver + etcd (one cluster,
// the experimental channel's CRDs): a list whose continue token expired mid-way (etcd compacted
// between two pages) falls back to one unpaginated list, as client-go's pager does.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';

import { KubernetesSource } from '../../controller/sources/kubernetes.ts';
import { binariesSkipReason, kubeTestsRequired, startTestCluster, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';

const describeKube = describeIfPossible('real API server tests of Kubernetes mode parity', binariesSkipReason(), kubeTestsRequired());
const NS = 'parity';

describeKube('Kubernetes mode reads what standalone reads', () => {
  let cluster: TestCluster;
  const sources: KubernetesSource[] = [];
  const servers: Server[] = [];
  const logs: { level: number; msg: string; kind?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });

  beforeAll(async () => {
    // ConfigMaps without the API server's watch cache: their lists are served by etcd, where a
    // compacted continue token expires at once. With the cache (Kubernetes 1.34+ lists from its
    // snapshots), a token expires only once it is older than the cache's history, which a test
    // cannot wait out; the code path in Sluice is the same 410 either way.
    cluster = await startTestCluster({ installSafeUpgradesPolicy: false, crdChannel: 'experimental', apiServerFlags: ['--watch-cache-sizes=configmaps#0'] });
    await cluster.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  }, 240_000);

  afterAll(async () => {
    await Promise.all(sources.map((s) => s.stop()));
    for (const s of servers) s.close();
    await cluster?.stop();
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
    const names = source.snapshot().configMaps.filter((o) => o.metadata.namespace === NS).map((o) => o.metadata.name);
    expect(names).toEqual(['late', 'page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    expect(logs.some((l) => l.kind === 'ConfigMap' && /continue token expired \(410\).*unpaginated/.test(l.msg))).toBe(true);
  }, 60_000);
});

/** etcd's v3 JSON gateway. */
async function etcd(cluster: TestCluster, op: 'compaction' | 'status', body: unknown): Promise<{ header: { revision: string } }> {
  const path = op === 'status' ? '/v3/maintenance/status' : `/v3/kv/${op}`;
  const res = await fetch(`${cluster.etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`etcd ${op}: ${res.status} ${JSON.stringify(json)}`);
  return json as { header: { revision: string } };
}
