import { describe, expect, it } from '@jest/globals';
import { IDENTITY_ANY, IDENTITY_HOST, IDENTITY_INGRESS, IDENTITY_WORLD, type L4Policy } from '../../ir/types.ts';
import { SNAPSHOT_FIELD_BY_KIND, emptySnapshot, snapshotArrays, type KubeObject } from '../../controller/sources/objects.ts';
import { parseCidr } from '../../ir/ipv4.ts';
import { allocateIdentities } from '../../controller/translate/identities.ts';
import { InputIndex } from '../../controller/translate/index-inputs.ts';
import { translateNetworkPolicies, type PolicyOptions } from '../../controller/translate/networkpolicy.ts';

// ---------------------------------------------------------------- helpers

const namespace = (name: string, labels: Record<string, string> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });

function pod(ns: string, name: string, ip: string, labels: Record<string, string>, spec: object = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec, status: { phase: 'Running', podIP: ip } };
}

const GATEWAY_POD = pod('sluice-system', 'sluice-0', '10.0.0.5', { 'app.kubernetes.io/name': 'sluice' });

function service(ns: string, name: string, selector: Record<string, string>, addresses: string[], targetRefs: (string | undefined)[] = []): KubeObject[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector, ports: [{ port: 80 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ port: 8080 }],
      endpoints: addresses.map((a, i) => ({ addresses: [a], ...(targetRefs[i] ? { targetRef: { kind: 'Pod', namespace: ns, name: targetRefs[i] } } : {}) })),
    },
  ];
}

const np = (ns: string, name: string, spec: unknown): KubeObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns }, spec });

function cnp(ns: string, name: string, spec: unknown, annotations?: Record<string, string>): KubeObject {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) }, spec };
}

const ccnp = (name: string, spec: unknown): KubeObject => ({ apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name }, spec });

function run(objects: KubeObject[], options?: PolicyOptions) {
  const snapshot = emptySnapshot();
  for (const o of objects) snapshotArrays(snapshot)[SNAPSHOT_FIELD_BY_KIND[o.kind]!].push(o);
  return translateNetworkPolicies(new InputIndex(snapshot), options);
}

function policyOf(objects: KubeObject[], options?: PolicyOptions): L4Policy {
  const { policy } = run(objects, options);
  if (!policy) throw new Error('no policy');
  return policy;
}

/** The identity carrying every one of `labels`. */
function idOf(policy: L4Policy, ...labels: string[]): number {
  const found = policy.identities.filter((i) => labels.every((l) => i.labels.includes(l)));
  if (found.length !== 1) throw new Error(`${found.length} identities carry ${labels.join(' ')}`);
  return found[0]!.id;
}

const remotes = (policy: L4Policy, direction: 'ingress' | 'egress', local?: number) =>
  [...new Set(policy.entries.filter((e) => e.direction === direction && (local === undefined || e.local === local)).map((e) => e.remote))].sort((a, b) => a - b);

const fromIngress = { fromEntities: ['ingress'] };

// ---------------------------------------------------------------- identities

describe('identity numbers', () => {
  it('depend only on the set of keys, and collisions probe upwards in sorted order', () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const one = allocateIdentities(keys, 100, 8);
    const two = allocateIdentities([...keys].reverse(), 100, 8);
    expect([...two.entries()].sort()).toEqual([...one.entries()].sort());
    // Eight keys in eight numbers: every number taken once.
    expect([...one.values()].sort()).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
  });

  it('do not change for an endpoint when unrelated endpoints come and go', () => {
    const base = [namespace('shop'), pod('shop', 'web', '10.0.0.1', { app: 'web' }), np('shop', 'p', { podSelector: {} })];
    const before = policyOf(base);
    const after = policyOf([...base, namespace('other'), pod('other', 'x', '10.9.0.1', { app: 'x' }), pod('shop', 'api', '10.0.0.2', { app: 'api' })]);
    expect(idOf(after, 'k8s:app=web')).toBe(idOf(before, 'k8s:app=web'));
  });

  it('put endpoint identities in [256, 2^24) and CIDR identities in [2^24, 2^25)', () => {
    const policy = policyOf([
      pod('shop', 'web', '10.0.0.1', { app: 'web' }),
      GATEWAY_POD,
      cnp('sluice-system', 'egress', { endpointSelector: {}, egress: [{ toCIDR: ['192.0.2.0/24'] }] }),
    ]);
    const web = idOf(policy, 'k8s:app=web');
    const cidr = idOf(policy, 'cidr:192.0.2.0/24');
    expect(web).toBeGreaterThanOrEqual(256);
    expect(web).toBeLessThan(2 ** 24);
    expect(cidr).toBeGreaterThanOrEqual(2 ** 24);
    expect(cidr).toBeLessThan(2 ** 25);
  });

  it('take a known Pod\'s labels over the Service selector, leave volatile labels out, and union several selectors', () => {
    const policy = policyOf([
      namespace('shop'),
      // 10.0.0.1: a known Pod (by IP); 10.0.0.2: named by targetRef only; 10.0.0.3: two Services, no Pod.
      pod('shop', 'web-a', '10.0.0.1', { app: 'web', tier: 'front', 'pod-template-hash': 'abc' }),
      { ...pod('shop', 'web-b', '', { app: 'web', tier: 'front', 'pod-template-hash': 'def' }), status: { phase: 'Running' } },
      ...service('shop', 'web', { app: 'web' }, ['10.0.0.1', '10.0.0.2'], [undefined, 'web-b']),
      ...service('shop', 'api', { app: 'api' }, ['10.0.0.3']),
      ...service('shop', 'api-metrics', { metrics: 'on' }, ['10.0.0.3']).map((o) => (o.kind === 'EndpointSlice' ? { ...o, metadata: { ...o.metadata, name: 'm-1' } } : o)),
      np('shop', 'p', { podSelector: {} }),
    ]);
    const web = idOf(policy, 'k8s:app=web', 'k8s:tier=front');
    expect(policy.ipcache).toEqual(
      expect.arrayContaining([
        // The Pod behind an address is named when one is known (flows show it).
        { cidr: '10.0.0.1/32', identity: web, pod: 'shop/web-a' },
        { cidr: '10.0.0.2/32', identity: web, pod: 'shop/web-b' },
        { cidr: '10.0.0.3/32', identity: idOf(policy, 'k8s:app=api', 'k8s:metrics=on') },
      ]),
    );
    expect(policy.identities.some((i) => i.labels.some((l) => l.includes('pod-template-hash')))).toBe(false);
  });

  it('give the gateway\'s pods and configured addresses identity 8, loopback the host, and skip hostNetwork pods', () => {
    const policy = policyOf(
      [
        GATEWAY_POD,
        pod('shop', 'web', '127.0.0.1', { app: 'web' }),
        pod('kube-system', 'node-agent', '172.18.0.2', { app: 'agent' }, { hostNetwork: true }),
        np('shop', 'p', { podSelector: {} }),
      ],
      { gatewayAddresses: ['172.18.0.3', 'not-an-ip'] },
    );
    expect(policy.ipcache).toEqual([
      { cidr: '10.0.0.5/32', identity: IDENTITY_INGRESS },
      { cidr: '127.0.0.0/8', identity: IDENTITY_HOST },
      { cidr: '127.0.0.1/32', identity: idOf(policy, 'k8s:app=web'), pod: 'shop/web' },
      { cidr: '172.18.0.3/32', identity: IDENTITY_INGRESS },
    ]);
    expect(run([np('shop', 'p', {})], { gatewayAddresses: ['not-an-ip'] }).problems).toEqual([
      'policy option gatewayAddresses: "not-an-ip" is not an IPv4 address; ignored',
    ]);
  });

  it('is absent when there is no policy object at all', () => {
    expect(run([pod('shop', 'web', '10.0.0.1', { app: 'web' })])).toEqual({ problems: [] });
  });
});

// ---------------------------------------------------------------- Kubernetes NetworkPolicy

describe('Kubernetes NetworkPolicy', () => {
  const web = pod('shop', 'web', '10.0.0.1', { app: 'web' });

  it('lets a podSelector / namespaceSelector peer that selects the gateway\'s pods allow the gateway (the spec, not Cilium)', () => {
    const allowFrom = (from: unknown) => policyOf([web, np('shop', 'p', { podSelector: {}, ingress: [{ from }] })]);
    expect(remotes(allowFrom([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'sluice-system' } } }]), 'ingress')).toEqual([IDENTITY_INGRESS]);
    expect(
      remotes(allowFrom([{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'sluice' } } }]), 'ingress'),
    ).toEqual([IDENTITY_INGRESS]);
    // podSelector alone means "in the policy's namespace": not the gateway's.
    expect(remotes(allowFrom([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'sluice' } } }]), 'ingress')).toEqual([]);
    // No from: every source.
    expect(remotes(allowFrom(undefined), 'ingress')).toEqual([IDENTITY_ANY]);
    expect(remotes(allowFrom([]), 'ingress')).toEqual([IDENTITY_ANY]);
  });

  it('honours the gateway options', () => {
    const policy = policyOf(
      [pod('shop', 'web', '10.0.0.1', { app: 'web' }), np('shop', 'p', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'edge' } } }] }] })],
      { gatewayNamespace: 'shop', gatewayLabels: { role: 'edge' } },
    );
    expect(remotes(policy, 'ingress')).toEqual([IDENTITY_INGRESS]);
    expect(policy.identities.find((i) => i.id === IDENTITY_INGRESS)!.labels).toEqual(
      expect.arrayContaining(['reserved:ingress', 'k8s:role=edge', 'k8s:io.kubernetes.pod.namespace=shop']),
    );
  });

  it('matches ipBlock peers against the gateway\'s configured addresses, except carving out', () => {
    const spec = (ipBlock: unknown) => np('shop', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock }] }] });
    const options = { gatewayAddresses: ['192.0.2.10'] };
    expect(remotes(policyOf([web, spec({ cidr: '192.0.2.0/24' })], options), 'ingress')).toEqual([IDENTITY_INGRESS]);
    expect(remotes(policyOf([web, spec({ cidr: '192.0.2.0/24', except: ['192.0.2.8/29'] })], options), 'ingress')).toEqual([]);
    // Without configured addresses only 0.0.0.0/0 (no except) is known to hold the gateway.
    expect(remotes(policyOf([web, spec({ cidr: '192.0.2.0/24' })]), 'ingress')).toEqual([]);
    expect(remotes(policyOf([web, spec({ cidr: '0.0.0.0/0' })]), 'ingress')).toEqual([IDENTITY_INGRESS]);
  });

  it('defaults policyTypes: Ingress always, Egress when there are egress rules', () => {
    const policy = policyOf([GATEWAY_POD, web, np('sluice-system', 'gw', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] })]);
    // The gateway is selected, but ingress into the gateway is not Sluice's to govern.
    expect(policy.enforcement).toEqual([{ identity: IDENTITY_INGRESS, ingress: false, egress: true, audit: false }]);
    expect(remotes(policy, 'egress')).toEqual([IDENTITY_WORLD]);
    const noEgress = policyOf([GATEWAY_POD, np('sluice-system', 'gw', { podSelector: {}, policyTypes: ['Egress'] })]);
    expect(noEgress.enforcement).toEqual([{ identity: IDENTITY_INGRESS, ingress: false, egress: true, audit: false }]);
    expect(noEgress.entries).toEqual([]);
  });

  it('egress to selectors reaches endpoints in every matching namespace, not CIDR identities', () => {
    const policy = policyOf([
      GATEWAY_POD,
      web,
      pod('other', 'db', '10.1.0.1', { app: 'db' }),
      np('sluice-system', 'gw', {
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'sluice' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } }] }, { to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }],
      }),
    ]);
    expect(remotes(policy, 'egress')).toEqual([idOf(policy, 'k8s:app=web'), idOf(policy, 'cidr:10.0.0.0/8')].sort((a, b) => a - b));
  });
});

// ---------------------------------------------------------------- Cilium rule shapes

describe('Cilium rules', () => {
  const web = pod('shop', 'web', '10.0.0.1', { app: 'web' });
  const ingressOf = (ingress: unknown, extra: object = {}) => policyOf([web, cnp('shop', 'p', { endpointSelector: {}, ingress, ...extra })]);

  it('treat an empty rule as allowing nothing, an L4-only rule as any peer, an empty ingress list as no section', () => {
    const empty = ingressOf([{}]);
    expect(empty.enforcement).toHaveLength(1);
    expect(empty.entries).toEqual([]);
    const l4Only = ingressOf([{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }]);
    expect(l4Only.entries.map((e) => [e.remote, e.protocol, e.ports])).toEqual([[IDENTITY_ANY, 'TCP', { from: 80, to: 80 }]]);
    expect(ingressOf([{ fromEndpoints: [] }]).entries).toEqual([]);
    // Cilium: default deny only when the list has rules.
    expect(ingressOf([]).enforcement).toEqual([]);
  });

  it('confine fromEndpoints to the policy namespace unless the selector names one; strip k8s:/any: prefixes', () => {
    const sel = (matchLabels: Record<string, string>) => remotes(ingressOf([{ fromEndpoints: [{ matchLabels }] }]), 'ingress');
    expect(sel({ 'app.kubernetes.io/name': 'sluice' })).toEqual([]);
    expect(sel({ 'any:app.kubernetes.io/name': 'sluice', 'k8s:io.kubernetes.pod.namespace': 'sluice-system' })).toEqual([IDENTITY_INGRESS]);
    expect(sel({ 'reserved:ingress': '' })).toEqual([]); // namespaced: the gateway is not in shop
    const cluster = policyOf([web, ccnp('c', { endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { 'reserved:ingress': '' } }] }] })]);
    expect(remotes(cluster, 'ingress')).toEqual([IDENTITY_INGRESS]);
  });

  it('select the subject in the policy namespace only, even when the selector names another', () => {
    const policy = policyOf([
      web,
      pod('other', 'x', '10.1.0.1', { app: 'web' }),
      cnp('shop', 'p', { endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'other' } }, ingress: [fromIngress] }),
    ]);
    expect(policy.enforcement).toEqual([]);
  });

  it('map entities: cluster and ingress include the gateway; all is any peer; world is not the gateway', () => {
    expect(remotes(ingressOf([{ fromEntities: ['cluster'] }]), 'ingress')).toEqual([IDENTITY_INGRESS]);
    expect(remotes(ingressOf([{ fromEntities: ['world', 'host'] }]), 'ingress')).toEqual([]);
    expect(remotes(ingressOf([{ fromEntities: ['ingress', 'all'] }]), 'ingress')).toEqual([IDENTITY_ANY]);
  });

  it('honour enableDefaultDeny: false (entries, no default deny)', () => {
    const policy = ingressOf([fromIngress], { enableDefaultDeny: { ingress: false } });
    expect(policy.enforcement).toEqual([]);
    expect(remotes(policy, 'ingress')).toEqual([IDENTITY_INGRESS]);
  });

  it('number rules across spec and specs, ids in name order with numeric indexes', () => {
    const rules = Array.from({ length: 11 }, () => fromIngress);
    const policy = policyOf([
      web,
      { ...cnp('shop', 'p', { endpointSelector: {}, ingress: rules.slice(0, 9) }), specs: [{ endpointSelector: {}, ingress: rules.slice(9) }] },
    ]);
    expect(policy.rules.map((r) => r.name.split('/').pop())).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(policy.rules.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // One entry per key, from the lowest rule id.
    expect(policy.entries).toEqual([{ direction: 'ingress', action: 'allow', local: idOf(policy, 'k8s:app=web'), remote: IDENTITY_INGRESS, protocol: 'ANY', rule: 1 }]);
  });

  it('expand ports: ANY with a port into TCP/UDP/SCTP, port 0 as every port, inclusive ranges', () => {
    const policy = ingressOf([
      { ...fromIngress, toPorts: [{ ports: [{ port: '53' }, { port: '0', protocol: 'udp' }, { port: 8000, endPort: 8999, protocol: 'TCP' }] }] },
    ]);
    expect(policy.entries.map((e) => `${e.protocol} ${e.ports ? `${e.ports.from}-${e.ports.to}` : 'all'}`)).toEqual([
      'SCTP 53-53',
      'TCP 53-53',
      'TCP 8000-8999',
      'UDP all',
      'UDP 53-53',
    ]);
  });
});

// ---------------------------------------------------------------- egress of the gateway

describe('gateway egress', () => {
  const api = pod('shop', 'api', '10.0.0.1', { app: 'api' }, { containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] });
  const db = pod('data', 'db', '10.1.0.1', { app: 'db' });
  const egress = (rules: unknown[], annotations?: Record<string, string>) =>
    policyOf([GATEWAY_POD, api, db, cnp('sluice-system', 'gw', { endpointSelector: {}, egress: rules }, annotations)]);

  it('maps CIDR peers to nested CIDR identities less the excepts, never to endpoints', () => {
    const policy = egress([
      { toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.9.0.0/16'] }] },
      { toCIDR: ['10.2.0.0/16', '10.9.1.0/24', '10.0.0.1/32'] },
    ]);
    const id = (c: string) => idOf(policy, `cidr:${c}`);
    const rule1 = policy.entries.filter((e) => e.rule === 1).map((e) => e.remote);
    expect(rule1.sort()).toEqual([id('10.0.0.0/8'), id('10.0.0.1/32'), id('10.2.0.0/16')].sort());
    // 10.0.0.1 is an endpoint: the /32 prefix does not take its address.
    expect(policy.ipcache.find((e) => e.cidr === '10.0.0.1/32')!.identity).toBe(idOf(policy, 'k8s:app=api'));
    expect(policy.ipcache.map((e) => e.cidr)).toEqual(
      expect.arrayContaining(['10.0.0.0/8', '10.2.0.0/16', '10.9.0.0/16', '10.9.1.0/24']),
    );
  });

  it('maps 0.0.0.0/0 and world to WORLD plus every CIDR identity, cluster to endpoints, host and the gateway', () => {
    const world = egress([{ toCIDRSet: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }] }, { toCIDR: ['192.0.2.0/24'] }]);
    expect(remotes(world, 'egress')).toEqual([IDENTITY_WORLD, idOf(world, 'cidr:192.0.2.0/24')]);
    expect(world.ipcache.some((e) => e.cidr === '0.0.0.0/0')).toBe(false);
    const cluster = egress([{ toEntities: ['cluster'] }]);
    expect(remotes(cluster, 'egress')).toEqual([IDENTITY_HOST, IDENTITY_INGRESS, idOf(cluster, 'k8s:app=api'), idOf(cluster, 'k8s:app=db')].sort((a, b) => a - b));
    expect(remotes(egress([{ toEntities: ['all'] }]), 'egress')).toEqual([IDENTITY_ANY]);
    expect(run([GATEWAY_POD, cnp('sluice-system', 'gw', { endpointSelector: {}, egress: [{ toEntities: ['kube-apiserver'] }] })]).problems).toEqual([
      'CiliumNetworkPolicy sluice-system/gw: spec.egress[0]: entity kube-apiserver is not tracked by Sluice (its addresses are unknown); it matches nothing',
    ]);
  });

  it('resolves a named port per destination, for any destination too', () => {
    const policy = egress([{ toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }] }] }]);
    expect(policy.entries).toEqual([
      { direction: 'egress', action: 'allow', local: IDENTITY_INGRESS, remote: idOf(policy, 'k8s:app=api'), protocol: 'TCP', ports: { from: 8080, to: 8080 }, rule: 1 },
    ]);
  });

  it('puts the gateway in audit mode for an audit-mode policy selecting it', () => {
    const policy = egress([{ toEntities: ['world'] }], { 'sluice.dev/policy-audit-mode': 'true' });
    expect(policy.enforcement).toEqual([{ identity: IDENTITY_INGRESS, ingress: false, egress: true, audit: true }]);
  });

  it('ignores egress of policies that do not select the gateway', () => {
    const policy = policyOf([GATEWAY_POD, api, cnp('shop', 'p', { endpointSelector: {}, egress: [{ toCIDR: ['192.0.2.0/24'] }] })]);
    expect(policy.enforcement).toEqual([]);
    expect(policy.rules).toEqual([]);
    expect(policy.identities.some((i) => i.labels.includes('cidr:192.0.2.0/24'))).toBe(false);
  });
});

// ---------------------------------------------------------------- bad input and determinism

describe('bad input', () => {
  it('never throws and never widens: garbage is skipped with a problem line', () => {
    const web = pod('shop', 'web', '10.0.0.1', { app: 'web' });
    const garbage: KubeObject[] = [
      np('shop', 'a', 'nope'),
      np('shop', 'b', { podSelector: 'x', ingress: 'x' }),
      np('shop', 'c', { podSelector: {}, ingress: [null, { from: 5, ports: [null, { port: -1 }, { port: 'bad name!' }, { endPort: 9 }] }], policyTypes: ['Ingress', 'Sideways'] }),
      np('shop', 'd', { podSelector: { matchExpressions: [{ key: 'app', operator: 'In' }] } }),
      np('shop', 'e', { podSelector: {}, ingress: [{ from: [{}, { ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }, { ipBlock: { cidr: 'fd00::/8' } }] }] }),
      cnp('shop', 'f', null),
      { ...cnp('shop', 'g', undefined), specs: { not: 'a list' } },
      cnp('shop', 'h', { nodeSelector: {} }),
      cnp('shop', 'i', { endpointSelector: {}, ingress: [{ fromEndpoints: 'x', fromCIDRSet: [{ cidrGroupRef: 'g' }], toPorts: [{ ports: [{ port: '1', endPort: 0 }, { port: '5', endPort: 2 }, { protocol: 'ICMP' }] }] }, 'x'] }),
      cnp('shop', 'j', { endpointSelector: {}, ingress: [{ icmps: [{ fields: [{ type: 8 }] }] }], enableDefaultDeny: { ingress: 'yes' } }),
      cnp('shop', 'k', { endpointSelector: {}, ingress: [fromIngress] }, { 'sluice.dev/policy-audit-mode': 'maybe' }),
    ];
    const { policy, problems } = run([web, ...garbage]);
    expect(problems.length).toBeGreaterThan(10);
    // Only the one valid rule (k) allows anything, and only for the gateway.
    expect(policy!.entries.map((e) => [e.remote, e.protocol, e.rule])).toEqual([[IDENTITY_INGRESS, 'ANY', policy!.rules.find((r) => r.name.includes('/k/'))!.id]]);
    expect(problems).toContain('CiliumNetworkPolicy shop/k: annotation sluice.dev/policy-audit-mode: "maybe" is not "true" or "false"; enforcing');
    expect(problems).toContain('NetworkPolicy shop/d: spec.podSelector: operator In needs values (key app); policy ignored');
    expect(problems.filter((p) => p.startsWith('NetworkPolicy shop/c:'))).toEqual([
      'NetworkPolicy shop/c: spec.policyTypes: "Sideways" is not Ingress or Egress; ignored',
      'NetworkPolicy shop/c: spec.ingress[0] is not a rule; it allows nothing',
      'NetworkPolicy shop/c: spec.ingress[1].from is not a list; the rule selects no peer',
      'NetworkPolicy shop/c: spec.ingress[1].ports[1]: port -1 is out of range (1-65535); port skipped',
      'NetworkPolicy shop/c: spec.ingress[1].ports[2]: port "bad name!" is neither a number nor a port name; port skipped',
      'NetworkPolicy shop/c: spec.ingress[1].ports[3]: endPort without port; port skipped',
    ]);
  });

  it('gives the same output whatever the input order', () => {
    const objects = [
      GATEWAY_POD,
      namespace('shop', { team: 'a' }),
      pod('shop', 'web', '10.0.0.1', { app: 'web' }),
      pod('shop', 'api', '10.0.0.2', { app: 'api' }),
      np('shop', 'n1', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }] }),
      cnp('shop', 'c1', { endpointSelector: {}, ingressDeny: [{ ...fromIngress, toPorts: [{ ports: [{ port: '22' }] }] }] }),
      cnp('sluice-system', 'c2', { endpointSelector: {}, egress: [{ toCIDR: ['192.0.2.0/24'] }, { toEntities: ['cluster'] }] }),
    ];
    expect(run([...objects].reverse())).toEqual(run(objects));
  });
});

describe('parseCidr', () => {
  it('clears host bits and refuses what is not an IPv4 prefix', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ ip: 0x0a000000, len: 8 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ ip: 0, len: 0 });
    expect(parseCidr('255.255.255.255/32')).toEqual({ ip: 0xffffffff, len: 32 });
    for (const bad of ['10.0.0.0/33', '10.0.0/8', '10.0.0.0', '256.0.0.0/8', 'a.b.c.d/8']) expect(parseCidr(bad)).toBeNull();
  });
});
