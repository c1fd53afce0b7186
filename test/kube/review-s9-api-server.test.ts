// Review of standalone validation against the real API server: every borderline object here is
// created in a real kube-apiserver (v1.6.1 CRDs) AND read by `sluice run`/`translate`'s manifest
// reader. Sluice must never refuse what the API server takes (a false refusal un-serves a valid
// manifest); it may be more lenient, which is listed, not failed. Then what it serves of the
// accepted ones: a route to a Service port whose protocol is omitted (defaulted TCP) resolves.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { binariesSkipReason, KubeApiError, kubeTestsRequired, startTestCluster, type KubeObject, type TestCluster } from './cluster.ts';
import { describeIfPossible } from '../support/suite.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';

const describeKube = describeIfPossible('real API server tests', binariesSkipReason(), kubeTestsRequired());

const NS = 'review';
const GW = 'gateway.networking.k8s.io/v1';

const gateway = (name: string, address: string): KubeObject =>
  ({
    apiVersion: GW,
    kind: 'Gateway',
    metadata: { name, namespace: NS },
    spec: { gatewayClassName: 'sluice', addresses: [{ type: 'IPAddress', value: address }], listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  }) as KubeObject;

const ingress = (name: string, rule: Record<string, unknown>): KubeObject =>
  ({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name, namespace: NS }, spec: { rules: [rule] } }) as KubeObject;

const httpRule = (path: Record<string, unknown>) => ({ http: { paths: [{ backend: { service: { name: 'web', port: { number: 80 } } }, ...path }] } });

const externalName = (name: string, externalName: string): KubeObject =>
  ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { type: 'ExternalName', externalName } }) as KubeObject;

const secret = (name: string, value: string): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, data: { 'tls.crt': value } }) as KubeObject;

const service = (name: string, ports: Record<string, unknown>[]): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { ports } }) as KubeObject;

const CASES: KubeObject[] = [
  gateway('gw-v4', '10.0.0.1'),
  gateway('gw-v4-leading-zero', '010.0.0.1'),
  gateway('gw-v4-leading-zeros', '0010.0.0.1'),
  gateway('gw-v6', '2001:db8::1'),
  gateway('gw-v6-full', '2001:0db8:0000:0000:0000:0000:0000:0001'),
  gateway('gw-v6-mapped', '::ffff:1.2.3.4'),
  gateway('gw-v6-mapped-leading-zero', '::ffff:010.2.3.4'),
  gateway('gw-v6-v4-compat', '::1.2.3.4'),
  gateway('gw-v6-zone', 'fe80::1%eth0'),
  gateway('gw-v6-upper', '2001:DB8::1'),
  gateway('gw-v4-short', '10.1'),
  ingress('ing-wildcard', { host: '*.foo.com', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-single-label', { host: 'foo', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-punycode', { host: 'xn--bcher-kva.example', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-host-ip', { host: '10.0.0.1', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-host-ip-leading-zero', { host: '010.0.0.1', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-host-numeric-label', { host: '1.2.3', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-host-upper', { host: 'Foo.com', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-is-regex', { ...httpRule({ path: '/api/v[0-9]+/(.*)', pathType: 'ImplementationSpecific' }) }),
  ingress('ing-is-empty-path', { ...httpRule({ path: '', pathType: 'ImplementationSpecific' }) }),
  ingress('ing-is-no-path', { ...httpRule({ pathType: 'ImplementationSpecific' }) }),
  ingress('ing-is-relative', { ...httpRule({ path: 'api', pathType: 'ImplementationSpecific' }) }),
  ingress('ing-prefix-no-path', { ...httpRule({ pathType: 'Prefix' }) }),
  ingress('ing-prefix-dotdot', { ...httpRule({ path: '/a/../b', pathType: 'Prefix' }) }),
  ingress('ing-host-only', { host: 'only.example' }),
  ingress('ing-no-pathtype', { ...httpRule({ path: '/' }) }),
  // Added by FX: the API server's Ingress path and host rules (validateHTTPIngressPath, validateIngressRules, validateIngressTLS).
  ingress('ing-prefix-empty-path', { ...httpRule({ path: '', pathType: 'Prefix' }) }),
  ingress('ing-exact-no-path', { ...httpRule({ pathType: 'Exact' }) }),
  ingress('ing-exact-dot', { ...httpRule({ path: '/a/./b', pathType: 'Exact' }) }),
  ingress('ing-prefix-double-slash', { ...httpRule({ path: '/a//b', pathType: 'Prefix' }) }),
  ingress('ing-prefix-encoded-slash', { ...httpRule({ path: '/a%2fb', pathType: 'Prefix' }) }),
  ingress('ing-prefix-ends-dotdot', { ...httpRule({ path: '/a/..', pathType: 'Prefix' }) }),
  ingress('ing-exact-ends-dot', { ...httpRule({ path: '/a/.', pathType: 'Exact' }) }),
  ingress('ing-prefix-dots-in-name', { ...httpRule({ path: '/a/..b/.c', pathType: 'Prefix' }) }),
  ingress('ing-prefix-percent-25', { ...httpRule({ path: '/a%252Fb', pathType: 'Prefix' }) }),
  ingress('ing-is-dotdot', { ...httpRule({ path: '/a/../b//c', pathType: 'ImplementationSpecific' }) }),
  ingress('ing-host-underscore', { host: 'a_b.example', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-wildcard-inner', { host: 'foo.*.example', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-wildcard-upper', { host: '*.Example.com', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-wildcard-bare', { host: '*', ...httpRule({ path: '/', pathType: 'Prefix' }) }),
  ingress('ing-paths-empty', { host: 'a.example', http: { paths: [] } }),
  { ...ingress('ing-tls-upper', { host: 'a.example', ...httpRule({ path: '/', pathType: 'Prefix' }) }), spec: { rules: [{ host: 'a.example', ...httpRule({ path: '/', pathType: 'Prefix' }) }], tls: [{ hosts: ['A.example'], secretName: 's' }] } } as KubeObject,
  { ...ingress('ing-tls-wildcard', {}), spec: { rules: [{ host: 'a.example', ...httpRule({ path: '/', pathType: 'Prefix' }) }], tls: [{ hosts: ['*.example.com'], secretName: 's' }] } } as KubeObject,
  { ...ingress('ing-nothing', {}), spec: { ingressClassName: 'sluice' } } as KubeObject,
  { ...ingress('ing-default-backend-only', {}), spec: { defaultBackend: { service: { name: 'web', port: { number: 80 } } } } } as KubeObject,
  ingress('ing-pathtype-lower', { ...httpRule({ path: '/', pathType: 'prefix' }) }),
  externalName('ext-trailing-dot', 'api.example.com.'),
  externalName('ext-single-label', 'api'),
  externalName('ext-ip', '10.0.0.1'),
  externalName('ext-upper', 'API.example.com'),
  externalName('ext-underscore', '_srv.example.com'),
  externalName('ext-placeholder', '<GUARDRAILS_API_HOSTNAME>'),
  externalName('ext-two-dots', 'api.example.com..'),
  secret('secret-padded', 'YWJj'),
  secret('secret-newlines', 'YWJj\nZGVm\r\n'),
  secret('secret-unpadded', 'YWI'),
  secret('secret-empty', ''),
  secret('secret-space', 'YWJj ZGVm'),
  secret('secret-urlsafe', 'a-_b'),
  secret('secret-bad-trailing-bits', 'YR=='),
  service('svc-protocol-omitted', [{ port: 80 }]),
  service('svc-protocol-empty', [{ port: 80, protocol: '' }]),
  service('svc-sctp', [{ port: 80, protocol: 'SCTP' }]),
  service('svc-tcp-and-udp', [
    { name: 'dns-tcp', port: 53, protocol: 'TCP' },
    { name: 'dns-udp', port: 53, protocol: 'UDP' },
  ]),
];

describeKube('review s9: standalone validation refuses only what the API server refuses', () => {
  let cluster: TestCluster;
  let dir: string;

  beforeAll(async () => {
    cluster = await startTestCluster({ installSafeUpgradesPolicy: false });
    await cluster.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    dir = mkdtempSync(join(tmpdir(), 'review-s9-'));
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test('no object the API server accepts is refused by the manifest reader', async () => {
    const api = new Map<string, string | null>();
    for (const obj of CASES) {
      try {
        await cluster.client.create(obj);
        api.set(obj.metadata.name, null);
      } catch (err) {
        if (!(err instanceof KubeApiError)) throw err;
        api.set(obj.metadata.name, err.message.slice(0, 300));
      }
    }
    CASES.forEach((obj, i) => writeFileSync(join(dir, `${String(i).padStart(2, '0')}-${obj.metadata.name}.yaml`), JSON.stringify(obj)));
    const load = new ManifestFolder(dir).load();
    const sluice = new Map<string, string>();
    for (const p of load.problems) {
      if (p.code !== 'SLU_MANIFEST_INVALID' || !p.object) continue;
      sluice.set(p.object.split('/').pop()!, p.message);
    }
    const rows = CASES.map((obj) => {
      const name = obj.metadata.name;
      return { name, api: api.get(name) ?? 'accepted', sluice: sluice.get(name) ?? 'accepted' };
    });
    process.stderr.write(`${rows.map((r) => `${r.name}\n  api:    ${r.api}\n  sluice: ${r.sluice}`).join('\n')}\n`);
    const falseRefusals = rows.filter((r) => r.api === 'accepted' && r.sluice !== 'accepted');
    expect(falseRefusals).toEqual([]);
    // Ingress both ways: what the API server refuses is refused too (it was read and served: an
    // uppercase host, an empty Prefix path, a path holding /../).
    const ingressesTaken = rows.filter((r) => r.name.startsWith('ing-') && r.api !== 'accepted' && r.sluice === 'accepted');
    expect(ingressesTaken).toEqual([]);
    // The API server defaults an empty port protocol to TCP, as an omitted one.
    const stored = await cluster.client.get<KubeObject & { spec: { ports: { protocol: string }[] } }>({ apiVersion: 'v1', kind: 'Service', namespace: NS, name: 'svc-protocol-empty' });
    expect(stored.spec.ports[0]!.protocol).toBe('TCP');
  }, 120_000);
});
