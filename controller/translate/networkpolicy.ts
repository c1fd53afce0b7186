// NetworkPolicy (networking.k8s.io/v1), CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy (cilium.io/v2) → ir.l4.policy. Pure.
//
// The BPF programs see one kind of connection: from the gateway (identity
// reserved:ingress, 8) to a destination address. So only two things in a
// policy matter here:
//  - ingress rules of policies selecting the destination endpoints, for peers
//    that match the gateway (entries: local = endpoint, remote = 8 or any);
//  - egress rules of policies selecting the gateway itself (entries: local = 8,
//    remote = each destination identity the rule selects, or any).
// Endpoint identities come from labels (the Pod's when it is known, else the
// owning Service's selector), numbered by a hash of the label set; CIDR
// identities likewise from the prefixes egress rules name. Bad input skips
// the part it is in (never widening what a rule allows) with a problem line.
import {
  IDENTITY_ANY,
  IDENTITY_HOST,
  IDENTITY_INGRESS,
  IDENTITY_WORLD,
  type HttpPolicy,
  type HttpPolicyGrant,
  type HttpPolicyRule,
  type L4Enforcement,
  type L4Identity,
  type L4IpcacheEntry,
  type L4Policy,
  type L4PolicyEntry,
  type L4Rule,
} from '../../ir/types.ts';
import { RE2JS } from 're2js';
import { TOKEN, headerValueTrouble } from './header-fields.ts';
import { namespacedName, type KubeObject, type PodObject } from '../sources/objects.ts';
import {
  CIDR_IDENTITY_BASE,
  CIDR_IDENTITY_SPAN,
  ENDPOINT_IDENTITY_BASE,
  ENDPOINT_IDENTITY_SPAN,
  NAMESPACE_LABEL,
  allocateIdentities,
  ciliumLabelMap,
  compareStrings,
  identityLabels,
  identityPodLabels,
  stringMap,
  type EndpointLabels,
} from './identities.ts';
import { addressInCidr, cidrContains, compareCidrs, formatCidr, isIPv6, parseCidr, parseIPv4, type Cidr } from '../../ir/ipv4.ts';
import type { InputIndex } from './index-inputs.ts';
import { selectorMatches, selectorProblem, type LabelSelector } from './selectors.ts';

/** Who the gateway is, for policies that select it or name it as a peer. */
export interface PolicyOptions {
  /** Namespace of the gateway pods (default `sluice-system`). */
  gatewayNamespace?: string;
  /** Kubernetes labels of the gateway pods (default `app.kubernetes.io/name: sluice`). */
  gatewayLabels?: Record<string, string>;
  /** Source IPv4 addresses of the gateway's connections, matched against CIDR peers of ingress rules (default none). */
  gatewayAddresses?: string[];
}

export const DEFAULT_GATEWAY_NAMESPACE = 'sluice-system';
export const DEFAULT_GATEWAY_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/name': 'sluice' };
/** `"true"` on a policy: the identities it governs are in audit mode (verdicts reported, nothing dropped). */
export const POLICY_AUDIT_ANNOTATION = 'sluice.dev/policy-audit-mode';

/** 127.0.0.0/8 is the host entity (reserved:host, identity 1). */
const LOOPBACK: Cidr = { ip: 0x7f000000, len: 8 };
const L4_PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const CILIUM_ENTITIES = new Set([
  'all', 'world', 'world-ipv4', 'world-ipv6', 'cluster', 'host', 'remote-node', 'kube-apiserver', 'ingress', 'init', 'health', 'unmanaged', 'none',
]);
/** Entities whose addresses Sluice cannot know: as egress peers they match nothing (said in a problem line). */
const UNTRACKED_ENTITIES = new Set(['remote-node', 'kube-apiserver']);
/** Parts of a Cilium toPorts entry about TLS interception: they restrict nothing Sluice could check. */
const TLS_FIELDS = ['listener', 'terminatingTLS', 'originatingTLS'];
/** L7 protocols of `toPorts[].rules` other than HTTP. */
const OTHER_L7 = ['kafka', 'dns', 'l7proto', 'l7'];
const MISMATCH_ACTIONS = new Set(['LOG', 'ADD', 'DELETE', 'REPLACE']);

export interface PolicyTranslation {
  /** Absent when no policy object exists at all. */
  policy?: L4Policy;
  problems: string[];
}

type Protocol = (typeof L4_PROTOCOLS)[number];
type PortProtocol = Protocol | 'ANY';
type Direction = 'ingress' | 'egress';

interface Identity {
  id: number;
  labels: string[];
  namespace?: string;
  /** For Kubernetes selectors (podSelector, namespaceSelector). */
  k8s: EndpointLabels;
  /** For Cilium selectors: pod labels, namespace, namespace labels (and `reserved:ingress` for the gateway). */
  cilium: Record<string, string>;
  /** Known Pods carrying it, for named ports. */
  pods: PodObject[];
}

type Peer =
  | { type: 'any' }
  | { type: 'selector'; matches: (id: Identity) => boolean }
  | { type: 'cidr'; cidr: Cidr; except: Cidr[] }
  | { type: 'entity'; entity: string };

type PortSpec = { protocol: PortProtocol; from?: number; to?: number } | { protocol: PortProtocol; name: string };

/** One toPorts entry as L7 sees it: its TCP ports (null: every port) and HTTP rules (null: L4-only). */
interface L7Grant {
  ports: PortSpec[] | null;
  http: HttpPolicyRule[] | null;
}

interface Section {
  /** L4Rule name. */
  rule: string;
  /** Where it is written, for problem lines: `spec.ingress[0]`. */
  path: string;
  direction: Direction;
  action: 'allow' | 'deny';
  /** Empty: the rule selects no peer. */
  peers: Peer[];
  /** null: every protocol and port; empty: none. */
  ports: PortSpec[] | null;
  /** What the section grants at L7 (Cilium allow sections); absent: L4 only on all its ports. */
  l7?: L7Grant[];
}

/** One policy spec: what it selects and its rules. */
interface Unit {
  what: string;
  audit: boolean;
  /** Endpoint identities it selects (its ingress rules govern them). */
  endpoints: Identity[];
  /** It selects the gateway (its egress rules govern the gateway). */
  gateway: boolean;
  defaultDeny: { ingress: boolean; egress: boolean };
  sections: Section[];
}

interface Context {
  index: InputIndex;
  problems: string[];
  endpoints: Identity[];
  gateway: Identity;
  gatewayAddresses: number[];
}

type EntryDraft = Omit<L4PolicyEntry, 'rule'> & { rule: string };
type GrantDraft = Omit<HttpPolicyGrant, 'rule'> & { rule: string };

export function translateNetworkPolicies(index: InputIndex, options: PolicyOptions = {}): PolicyTranslation {
  const snapshot = index.snapshot;
  const count = snapshot.networkPolicies.length + snapshot.ciliumNetworkPolicies.length + snapshot.ciliumClusterwideNetworkPolicies.length;
  if (count === 0) return { problems: [] };

  const problems: string[] = [];
  const world = collectEndpoints(index, options, problems);
  const ctx: Context = { index, problems, endpoints: world.endpoints, gateway: world.gateway, gatewayAddresses: world.gatewayAddresses };
  const units = [
    ...sortByName(snapshot.networkPolicies).flatMap((p) => parseNetworkPolicy(p, ctx)),
    ...sortByName(snapshot.ciliumNetworkPolicies).flatMap((p) => parseCiliumPolicy(p, false, ctx)),
    ...sortByName(snapshot.ciliumClusterwideNetworkPolicies).flatMap((p) => parseCiliumPolicy(p, true, ctx)),
  ];
  const applies = (u: Unit, s: Section) => (s.direction === 'ingress' ? u.endpoints.length > 0 : u.gateway);

  // CIDR identities: every prefix (and except) an egress rule governing the gateway names; 0.0.0.0/0 is WORLD.
  const prefixes = new Map<string, Cidr>();
  for (const u of units) {
    for (const s of u.sections) {
      if (s.direction !== 'egress' || !applies(u, s)) continue;
      for (const p of s.peers) {
        if (p.type !== 'cidr') continue;
        for (const c of [p.cidr, ...p.except]) if (c.len > 0) prefixes.set(formatCidr(c), c);
      }
    }
  }
  const cidrIds = allocateIdentities([...prefixes.keys()].map((k) => `cidr:${k}`), CIDR_IDENTITY_BASE, CIDR_IDENTITY_SPAN);
  const cidrIdentities = [...prefixes.entries()]
    .map(([text, cidr]) => ({ text, cidr, id: cidrIds.get(`cidr:${text}`)! }))
    .sort((a, b) => compareCidrs(a.cidr, b.cidr));

  // Entries, rules, enforcement.
  const drafts: EntryDraft[] = [];
  const ruleNames = new Set<string>();
  /** `<direction>/<identity>` → what the allow sections covering the gateway grant it at L7. */
  const grants = new Map<string, GrantDraft[]>();
  const grant = (direction: Direction, identity: number, s: Section, named: (p: NamedPort) => { protocol: Protocol; port: number }[]) => {
    const list = grants.get(`${direction}/${identity}`) ?? [];
    for (const g of s.l7 ?? [{ ports: null, http: null }]) {
      // L7 sees TCP only: the ports of other protocols grant nothing here.
      const ranges = portRanges(g.ports, named).filter((r) => r.protocol === 'TCP' || r.protocol === 'ANY');
      for (const r of ranges) list.push({ rule: s.rule, ...(r.ports ? { ports: r.ports } : {}), http: g.http });
    }
    grants.set(`${direction}/${identity}`, list);
  };
  const enforcement = new Map<number, L4Enforcement>();
  const governedBy = new Map<number, { what: string; audit: boolean }[]>();
  const govern = (u: Unit, id: number, direction: Direction, defaultDeny: boolean) => {
    const e = enforcement.get(id) ?? { identity: id, ingress: false, egress: false, audit: false };
    if (defaultDeny) e[direction] = true;
    if (u.audit) e.audit = true;
    enforcement.set(id, e);
    const list = governedBy.get(id) ?? [];
    if (!list.some((g) => g.what === u.what)) list.push({ what: u.what, audit: u.audit });
    governedBy.set(id, list);
  };
  const egressPeers = (s: Section, u: Unit) => egressRemotes(s, u, ctx, cidrIdentities);
  const endpointById = new Map(ctx.endpoints.map((e) => [e.id, e]));
  for (const u of units) {
    const has = (d: Direction) => u.sections.some((s) => s.direction === d);
    if (u.endpoints.length > 0 && (u.defaultDeny.ingress || has('ingress'))) {
      for (const e of u.endpoints) govern(u, e.id, 'ingress', u.defaultDeny.ingress);
    }
    if (u.gateway && (u.defaultDeny.egress || has('egress'))) govern(u, IDENTITY_INGRESS, 'egress', u.defaultDeny.egress);
    for (const s of u.sections) {
      if (!applies(u, s)) continue;
      ruleNames.add(s.rule);
      const named = new NamedPortReport();
      if (s.direction === 'ingress') {
        const remote = gatewayRemote(s.peers, ctx);
        if (remote === null) continue;
        for (const local of u.endpoints) {
          for (const r of portRanges(s.ports, (p) => named.resolve(p, local))) {
            drafts.push({ direction: 'ingress', action: s.action, local: local.id, remote, ...r, rule: s.rule });
          }
          if (s.action === 'allow') grant('ingress', local.id, s, (p) => named.resolve(p, local, true));
        }
      } else {
        for (const remote of egressPeers(s, u)) {
          // A named port is a container port of the destination, so it is resolved per destination identity;
          // for "any destination" it applies to each endpoint identity that declares it.
          const target = endpointById.get(remote);
          for (const r of portRanges(s.ports, (p) => (remote === IDENTITY_ANY ? [] : named.resolve(p, target)))) {
            drafts.push({ direction: 'egress', action: s.action, local: IDENTITY_INGRESS, remote, ...r, rule: s.rule });
          }
          if (s.action === 'allow') grant('egress', remote, s, (p) => (remote === IDENTITY_ANY ? [] : named.resolve(p, target, true)));
          if (remote !== IDENTITY_ANY || !s.ports) continue;
          const namedOnly = s.ports.filter((p): p is NamedPort => 'name' in p);
          for (const t of namedOnly.length > 0 ? ctx.endpoints : []) {
            for (const r of portRanges(namedOnly, (p) => named.resolve(p, t, true))) {
              drafts.push({ direction: 'egress', action: s.action, local: IDENTITY_INGRESS, remote: t.id, ...r, rule: s.rule });
            }
            if (s.action === 'allow') grant('egress', t.id, s, (p) => named.resolve(p, t, true));
          }
          for (const p of namedOnly) named.resolve(p, undefined); // reported if no destination declares it
        }
      }
      problems.push(...named.problems(u.what, s.path));
    }
  }
  auditProblems(governedBy, enforcement, problems);

  const ruleIds = new Map([...ruleNames].sort(compareRuleNames).map((name, i) => [name, i + 1]));
  const rules: L4Rule[] = [...ruleIds.entries()].map(([name, id]) => ({ id, name }));
  const entries = dedupeEntries(drafts.map((d) => ({ ...d, rule: ruleIds.get(d.rule)! })));
  const http = httpPolicies(grants, ruleIds, enforcement);

  // ipcache: the gateway, then endpoints, then the host, then policy prefixes; the first claim of a prefix wins.
  const ipcache = new Map<string, { cidr: Cidr; identity: number; pod?: string }>();
  const claim = (cidr: Cidr, identity: number, pod?: string) => {
    const key = formatCidr(cidr);
    if (!ipcache.has(key)) ipcache.set(key, { cidr, identity, ...(pod ? { pod } : {}) });
  };
  for (const ip of world.gatewayIps) claim({ ip, len: 32 }, IDENTITY_INGRESS);
  for (const [ip, id] of world.endpointIps) claim({ ip, len: 32 }, id, world.podByIp.get(ip));
  claim(LOOPBACK, IDENTITY_HOST);
  for (const c of cidrIdentities) claim(c.cidr, c.id);

  const identities: L4Identity[] = [
    { id: IDENTITY_HOST, labels: ['reserved:host'] },
    ...(entries.some((e) => e.remote === IDENTITY_WORLD) ? [{ id: IDENTITY_WORLD, labels: ['reserved:world'] }] : []),
    { id: IDENTITY_INGRESS, labels: ctx.gateway.labels },
    ...ctx.endpoints.map((e) => ({ id: e.id, labels: e.labels, namespace: e.namespace! })),
    ...cidrIdentities.map((c) => ({ id: c.id, labels: [`cidr:${c.text}`, 'reserved:world'] })),
  ].sort((a, b) => a.id - b.id);

  return {
    policy: {
      identities,
      ipcache: [...ipcache.values()]
        .sort((a, b) => compareCidrs(a.cidr, b.cidr))
        .map((e): L4IpcacheEntry => ({ cidr: formatCidr(e.cidr), identity: e.identity, ...(e.pod ? { pod: e.pod } : {}) })),
      enforcement: [...enforcement.values()].filter((e) => e.ingress || e.egress || e.audit).sort((a, b) => a.identity - b.identity),
      rules,
      entries,
      ...(http.length > 0 ? { http } : {}),
    },
    problems: [...new Set(problems)],
  };
}

// ---------------------------------------------------------------- endpoints and the gateway

interface World {
  endpoints: Identity[];
  gateway: Identity;
  gatewayAddresses: number[];
  gatewayIps: number[];
  /** Address → endpoint identity, in address order. */
  endpointIps: [number, number][];
  /** Address → `<ns>/<name>` of the one known Pod that has it. */
  podByIp: Map<number, string>;
}

interface AddressOwner {
  namespace: string;
  labels: Record<string, string>;
  pods: PodObject[];
  /** The labels are a known Pod's (else the owning Services' selectors). */
  fromPod: boolean;
}

/** Every endpoint address with the labels it carries, grouped into identities; the gateway's addresses apart. */
function collectEndpoints(index: InputIndex, options: PolicyOptions, problems: string[]): World {
  const gwNamespace = options.gatewayNamespace ?? DEFAULT_GATEWAY_NAMESPACE;
  const gwLabels = stringMap(options.gatewayLabels ?? DEFAULT_GATEWAY_LABELS);
  const gwK8s: EndpointLabels = { namespace: gwNamespace, pod: gwLabels, namespaceLabels: index.namespaceLabels(gwNamespace) };
  const gateway: Identity = {
    id: IDENTITY_INGRESS,
    labels: ['reserved:ingress', ...identityLabels(gwK8s)].sort(compareStrings),
    k8s: gwK8s,
    cilium: { ...ciliumLabelMap(gwK8s), 'reserved:ingress': '' },
    pods: [],
  };
  const isGateway = (namespace: string, labels: Record<string, string>) =>
    namespace === gwNamespace && selectorMatches({ matchLabels: gwLabels }, labels);

  const gatewayAddresses: number[] = [];
  for (const a of options.gatewayAddresses ?? []) {
    const ip = parseIPv4(String(a));
    if (ip !== null) gatewayAddresses.push(ip);
    else if (!isIPv6(String(a))) problems.push(`policy option gatewayAddresses: ${JSON.stringify(a)} is not an IPv4 address; ignored`);
  }
  const gatewayIps = new Set(gatewayAddresses);
  const owners = new Map<number, AddressOwner>();
  const pods = sortByName(index.snapshot.pods).filter((p) => p.spec?.hostNetwork !== true && !['Succeeded', 'Failed'].includes(p.status?.phase ?? ''));
  const podsByName = new Map(pods.map((p) => [namespacedName(p), p]));

  for (const pod of pods) {
    const namespace = pod.metadata.namespace!;
    const labels = stringMap(pod.metadata.labels);
    const gw = isGateway(namespace, labels);
    for (const ip of podAddresses(pod)) {
      if (gw) gatewayIps.add(ip);
      else if (!owners.has(ip)) owners.set(ip, { namespace, labels, pods: [pod], fromPod: true });
    }
  }
  for (const slice of sortByName(index.snapshot.endpointSlices)) {
    if (slice.addressType !== undefined && slice.addressType !== 'IPv4') continue;
    const namespace = slice.metadata.namespace!;
    const serviceName = slice.metadata.labels?.['kubernetes.io/service-name'];
    const service = serviceName ? index.service(namespace, serviceName) : undefined;
    const selector = stringMap(service?.spec?.selector);
    for (const ep of asArray(slice.endpoints)) {
      const endpoint = fieldsOf(ep);
      if (fieldsOf(endpoint.conditions).ready === false) continue;
      const ref = fieldsOf(endpoint.targetRef);
      const refPod = ref.kind === 'Pod' ? podsByName.get(`${String(ref.namespace ?? namespace)}/${String(ref.name)}`) : undefined;
      const owner: AddressOwner = refPod
        ? { namespace, labels: stringMap(refPod.metadata.labels), pods: [refPod], fromPod: true }
        : { namespace, labels: selector, pods: [], fromPod: false };
      for (const address of asArray(endpoint.addresses)) {
        const ip = parseIPv4(String(address));
        if (ip === null) continue;
        if (isGateway(namespace, owner.labels)) {
          gatewayIps.add(ip);
          continue;
        }
        const known = owners.get(ip);
        if (!known || (!known.fromPod && owner.fromPod)) owners.set(ip, { ...owner, labels: { ...owner.labels } });
        else if (!known.fromPod && !owner.fromPod && known.namespace === namespace) {
          // Several Services select the pod behind this address: it carries every selector's labels.
          for (const [k, v] of Object.entries(owner.labels)) if (!(k in known.labels)) known.labels[k] = v;
        }
      }
    }
  }
  for (const ip of gatewayIps) owners.delete(ip);

  const groups = new Map<string, { k8s: EndpointLabels; labels: string[]; pods: Set<PodObject>; ips: number[] }>();
  for (const [ip, owner] of owners) {
    const k8s: EndpointLabels = { namespace: owner.namespace, pod: identityPodLabels(owner.labels), namespaceLabels: index.namespaceLabels(owner.namespace) };
    const labels = identityLabels(k8s);
    const key = labels.join('\n');
    const group = groups.get(key) ?? { k8s, labels, pods: new Set(), ips: [] };
    for (const p of owner.pods) group.pods.add(p);
    group.ips.push(ip);
    groups.set(key, group);
  }
  const ids = allocateIdentities(groups.keys(), ENDPOINT_IDENTITY_BASE, ENDPOINT_IDENTITY_SPAN);
  const endpoints: Identity[] = [];
  const endpointIps: [number, number][] = [];
  const podByIp = new Map<number, string>();
  for (const [ip, owner] of owners) if (owner.fromPod && owner.pods.length === 1) podByIp.set(ip, namespacedName(owner.pods[0]!));
  for (const [key, g] of groups) {
    const id = ids.get(key)!;
    endpoints.push({ id, labels: g.labels, namespace: g.k8s.namespace, k8s: g.k8s, cilium: ciliumLabelMap(g.k8s), pods: [...g.pods] });
    for (const ip of g.ips) endpointIps.push([ip, id]);
  }
  endpoints.sort((a, b) => a.id - b.id);
  endpointIps.sort((a, b) => a[0] - b[0]);
  return { endpoints, gateway, gatewayAddresses, gatewayIps: [...gatewayIps].sort((a, b) => a - b), endpointIps, podByIp };
}

function podAddresses(pod: PodObject): number[] {
  const texts = [...asArray(pod.status?.podIPs).map((p) => fieldsOf(p).ip), pod.status?.podIP];
  const out = new Set<number>();
  for (const t of texts) {
    const ip = typeof t === 'string' ? parseIPv4(t) : null;
    if (ip !== null) out.add(ip);
  }
  return [...out];
}

// ---------------------------------------------------------------- Kubernetes NetworkPolicy

function parseNetworkPolicy(obj: KubeObject, ctx: Context): Unit[] {
  const ns = obj.metadata.namespace ?? 'default';
  const what = `NetworkPolicy ${ns}/${obj.metadata.name}`;
  const problem = (text: string) => ctx.problems.push(`${what}: ${text}`);
  const spec = obj.spec;
  if (!isObject(spec)) {
    problem('no spec; policy ignored');
    return [];
  }
  const podSelector = normalizeSelector(spec.podSelector ?? {}, false);
  if (typeof podSelector === 'string') {
    problem(`spec.podSelector: ${podSelector}; policy ignored`);
    return [];
  }
  const types = { ingress: false, egress: false };
  if (spec.policyTypes === undefined) {
    types.ingress = true;
    types.egress = asArray(spec.egress).length > 0;
  } else {
    for (const t of asArray(spec.policyTypes)) {
      if (t === 'Ingress') types.ingress = true;
      else if (t === 'Egress') types.egress = true;
      else problem(`spec.policyTypes: ${JSON.stringify(t)} is not Ingress or Egress; ignored`);
    }
  }
  const prefix = `networkpolicy/${ns}/${obj.metadata.name}`;
  const sections: Section[] = [];
  for (const direction of ['ingress', 'egress'] as const) {
    if (!types[direction]) continue;
    const list = spec[direction];
    if (list !== undefined && list !== null && !Array.isArray(list)) {
      problem(`spec.${direction} is not a list; its rules are ignored`);
      continue;
    }
    asArray(list).forEach((rule, i) => {
      const path = `spec.${direction}[${i}]`;
      const peerKey = direction === 'ingress' ? 'from' : 'to';
      const section = { rule: `${prefix}/${direction}/${i}`, path, direction, action: 'allow' as const };
      if (!isObject(rule)) {
        problem(`${path} is not a rule; it allows nothing`);
        sections.push({ ...section, peers: [], ports: [] });
        return;
      }
      sections.push({
        ...section,
        peers: kubernetesPeers(rule[peerKey], `${path}.${peerKey}`, ns, problem),
        ports: kubernetesPorts(rule.ports, `${path}.ports`, problem),
      });
    });
  }
  return [
    {
      what,
      audit: auditMode(obj, problem),
      endpoints: ctx.endpoints.filter((e) => e.k8s.namespace === ns && selectorMatches(podSelector, e.k8s.pod)),
      gateway: ctx.gateway.k8s.namespace === ns && selectorMatches(podSelector, ctx.gateway.k8s.pod),
      defaultDeny: types,
      sections,
    },
  ];
}

/** `from`/`to` of a Kubernetes rule; absent or empty: every peer. */
function kubernetesPeers(list: unknown, path: string, policyNamespace: string, problem: (t: string) => void): Peer[] {
  if (list === undefined || list === null) return [{ type: 'any' }];
  if (!Array.isArray(list)) {
    problem(`${path} is not a list; the rule selects no peer`);
    return [];
  }
  if (list.length === 0) return [{ type: 'any' }];
  const peers: Peer[] = [];
  list.forEach((p, j) => {
    const where = `${path}[${j}]`;
    if (!isObject(p)) return problem(`${where} is not a peer; skipped`);
    const hasSelector = p.podSelector !== undefined || p.namespaceSelector !== undefined;
    if (p.ipBlock !== undefined) {
      if (hasSelector) return problem(`${where}: ipBlock cannot be combined with a selector; peer skipped`);
      const block = fieldsOf(p.ipBlock);
      const peer = cidrPeer(block.cidr, block.except, `${where}.ipBlock`, problem);
      if (peer) peers.push(peer);
      return;
    }
    if (!hasSelector) return problem(`${where} names no podSelector, namespaceSelector or ipBlock; peer skipped`);
    const pods = p.podSelector === undefined ? undefined : normalizeSelector(p.podSelector, false);
    const namespaces = p.namespaceSelector === undefined ? undefined : normalizeSelector(p.namespaceSelector, false);
    if (typeof pods === 'string') return problem(`${where}.podSelector: ${pods}; peer skipped`);
    if (typeof namespaces === 'string') return problem(`${where}.namespaceSelector: ${namespaces}; peer skipped`);
    peers.push({
      type: 'selector',
      matches: (id) =>
        (namespaces ? selectorMatches(namespaces, id.k8s.namespaceLabels) : id.k8s.namespace === policyNamespace) &&
        (!pods || selectorMatches(pods, id.k8s.pod)),
    });
  });
  return peers;
}

/** `ports` of a Kubernetes rule; absent or empty: every port. */
function kubernetesPorts(list: unknown, path: string, problem: (t: string) => void): PortSpec[] | null {
  if (list === undefined || list === null) return null;
  if (!Array.isArray(list)) {
    problem(`${path} is not a list; the rule allows no port`);
    return [];
  }
  if (list.length === 0) return null;
  const out: PortSpec[] = [];
  list.forEach((p, j) => {
    const where = `${path}[${j}]`;
    const protocol = p?.protocol ?? 'TCP';
    if (!L4_PROTOCOLS.includes(protocol)) return problem(`${where}: protocol ${JSON.stringify(protocol)} is not TCP, UDP or SCTP; port skipped`);
    const spec = portSpec(protocol, p?.port, p?.endPort, where, problem);
    if (spec) out.push(spec);
  });
  return out;
}

// ---------------------------------------------------------------- CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy

const CILIUM_SECTIONS = ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const;
/** The fields of a Cilium rule ciliumRule reads (or reports as unsupported), by direction. */
const CILIUM_RULE_FIELDS: Record<Direction, Set<string>> = {
  ingress: new Set(['fromEndpoints', 'fromCIDR', 'fromCIDRSet', 'fromEntities', 'fromGroups', 'fromNodes', 'fromRequires', 'authentication', 'toPorts', 'icmps']),
  egress: new Set(['toEndpoints', 'toCIDR', 'toCIDRSet', 'toEntities', 'toServices', 'toFQDNs', 'toGroups', 'toNodes', 'toRequires', 'authentication', 'toPorts', 'icmps']),
};
/** The fields of a Cilium policy spec parseCiliumPolicy reads (`labels` and `description` carry no rule). */
const CILIUM_SPEC_FIELDS = new Set(['endpointSelector', 'nodeSelector', ...CILIUM_SECTIONS, 'enableDefaultDeny', 'labels', 'description']);

function parseCiliumPolicy(obj: KubeObject, clusterwide: boolean, ctx: Context): Unit[] {
  const kind = clusterwide ? 'CiliumClusterwideNetworkPolicy' : 'CiliumNetworkPolicy';
  const ns = clusterwide ? null : (obj.metadata.namespace ?? 'default');
  const what = `${kind} ${namespacedName(obj)}`;
  const problem = (text: string) => ctx.problems.push(`${what}: ${text}`);
  const prefix = `${kind.toLowerCase()}/${ns === null ? '' : `${ns}/`}${obj.metadata.name}`;
  const specs: { spec: unknown; path: string }[] = [];
  if (obj.spec !== undefined && obj.spec !== null) specs.push({ spec: obj.spec, path: 'spec' });
  if (Array.isArray(obj.specs)) obj.specs.forEach((spec, i) => specs.push({ spec, path: `specs[${i}]` }));
  else if (obj.specs !== undefined && obj.specs !== null) problem('specs is not a list; ignored');
  if (specs.length === 0) problem('has neither spec nor specs; policy ignored');

  const audit = auditMode(obj, problem);
  const next = { ingress: 0, ingressDeny: 0, egress: 0, egressDeny: 0 };
  const l7 = { tls: false, namespace: ns ?? '', index: ctx.index };
  const units: Unit[] = [];
  for (const { spec, path } of specs) {
    if (!isObject(spec)) {
      problem(`${path} is not a rule; ignored`);
      continue;
    }
    for (const key of Object.keys(spec)) if (!CILIUM_SPEC_FIELDS.has(key)) problem(`${path}.${key} is not a field Sluice reads; ignored`);
    if (spec.nodeSelector !== undefined) {
      problem(`${path}.nodeSelector: host policies are not translated (Sluice governs the gateway's connections only); ${path} ignored`);
      continue;
    }
    if (spec.endpointSelector === undefined || spec.endpointSelector === null) {
      problem(`${path} has no endpointSelector; ignored`);
      continue;
    }
    // A namespaced policy selects endpoints of its own namespace only, whatever its selector says.
    const subject = ciliumSelector(spec.endpointSelector, ns, true);
    if (typeof subject === 'string') {
      problem(`${path}.endpointSelector: ${subject}; ${path} ignored`);
      continue;
    }
    const sections: Section[] = [];
    for (const key of CILIUM_SECTIONS) {
      const list = spec[key];
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list)) {
        problem(`${path}.${key} is not a list; ignored`);
        continue;
      }
      list.forEach((rule, i) => {
        const where = `${path}.${key}[${i}]`;
        const direction: Direction = key.startsWith('ingress') ? 'ingress' : 'egress';
        const parsed = ciliumRule(rule, direction, where, ns, problem, l7);
        sections.push({ rule: `${prefix}/${key}/${next[key]++}`, path: where, direction, action: key.endsWith('Deny') ? 'deny' : 'allow', ...parsed });
      });
    }
    const explicit = isObject(spec.enableDefaultDeny) ? spec.enableDefaultDeny : {};
    const defaultDeny = (direction: Direction) => {
      const value = explicit[direction];
      if (typeof value === 'boolean') return value;
      if (value !== undefined) problem(`${path}.enableDefaultDeny.${direction} is not a boolean; using the default`);
      return asArray(spec[direction]).length > 0 || asArray(spec[`${direction}Deny`]).length > 0;
    };
    units.push({
      what,
      audit,
      endpoints: ctx.endpoints.filter((e) => selectorMatches(subject, e.cilium)),
      gateway: selectorMatches(subject, ctx.gateway.cilium),
      defaultDeny: { ingress: defaultDeny('ingress'), egress: defaultDeny('egress') },
      sections,
    });
  }
  if (l7.tls) problem('toPorts[].listener, terminatingTLS and originatingTLS are not supported (the gateway intercepts no TLS); ignored');
  return units;
}

function ciliumRule(
  rule: unknown,
  direction: Direction,
  where: string,
  namespace: string | null,
  problem: (t: string) => void,
  l7: L7Context,
): { peers: Peer[]; ports: PortSpec[] | null; l7?: L7Grant[] } {
  if (!isObject(rule)) {
    problem(`${where} is not a rule; it allows nothing`);
    return { peers: [], ports: [] };
  }
  const from = direction === 'ingress' ? 'from' : 'to';
  // A field Sluice does not read (a typo, the other direction's peers, a newer Cilium field) is said, not passed over.
  for (const key of Object.keys(rule)) {
    if (!CILIUM_RULE_FIELDS[direction].has(key)) problem(`${where}.${key} is not a field of a Cilium ${direction} rule that Sluice reads; ignored`);
  }
  const peers: Peer[] = [];
  let hasPeerField = false;
  const list = (key: string): unknown[] => {
    const value = rule[key];
    if (value === undefined || value === null) return [];
    hasPeerField = true; // present, even empty: an explicit empty list selects nothing
    if (Array.isArray(value)) return value;
    problem(`${where}.${key} is not a list; ignored`);
    return [];
  };
  list(`${from}Endpoints`).forEach((sel, j) => {
    const selector = ciliumSelector(sel, namespace, false);
    if (typeof selector === 'string') return problem(`${where}.${from}Endpoints[${j}]: ${selector}; peer skipped`);
    peers.push({ type: 'selector', matches: (id) => selectorMatches(selector, id.cilium) });
  });
  list(`${from}CIDR`).forEach((cidr, j) => {
    const peer = cidrPeer(cidr, undefined, `${where}.${from}CIDR[${j}]`, problem);
    if (peer) peers.push(peer);
  });
  list(`${from}CIDRSet`).forEach((set, j) => {
    const at = `${where}.${from}CIDRSet[${j}]`;
    if (isObject(set) && (set.cidrGroupRef !== undefined || set.cidrGroupSelector !== undefined)) {
      return problem(`${at}: CiliumCIDRGroup references are not supported; peer skipped`);
    }
    const peer = cidrPeer(fieldsOf(set).cidr, fieldsOf(set).except, at, problem);
    if (peer) peers.push(peer);
  });
  list(`${from}Entities`).forEach((entity, j) => {
    if (typeof entity !== 'string' || !CILIUM_ENTITIES.has(entity)) {
      return problem(`${where}.${from}Entities[${j}]: unknown entity ${JSON.stringify(entity)}; skipped`);
    }
    peers.push({ type: 'entity', entity });
  });
  const unsupported = direction === 'ingress' ? ['fromGroups', 'fromNodes'] : ['toServices', 'toFQDNs', 'toGroups', 'toNodes'];
  for (const key of unsupported) {
    if (list(key).length > 0) problem(`${where}.${key} is not supported; those peers match nothing`);
  }
  const requires = `${from}Requires`;
  if (rule[requires] !== undefined) problem(`${where}.${requires} is not supported (deprecated by Cilium); ignored, which may allow more than Cilium would`);
  // Mutual authentication Sluice cannot do: Cilium drops what has not authenticated
  // (DROP_POLICY_AUTH_REQUIRED), so a rule that requires it allows nothing here rather than more.
  const authMode = isObject(rule.authentication) ? rule.authentication.mode : undefined;
  const authRequired = rule.authentication !== undefined && authMode !== 'disabled';
  if (authRequired) problem(`${where}.authentication mode ${JSON.stringify(authMode)}: Sluice does no mutual authentication, so the rule allows nothing (Cilium drops traffic that has not authenticated)`);

  const parsed = ciliumPorts(rule.toPorts, `${where}.toPorts`, direction, problem, l7);
  let ports = parsed.ports;
  const grants = parsed.l7.some((g) => g.http !== null) ? { l7: parsed.l7 } : {};
  if (rule.icmps !== undefined) {
    problem(`${where}.icmps: ICMP is not governed (the gateway only opens TCP and UDP connections); ignored`);
    if (ports === null) ports = []; // an ICMP-only rule allows no TCP, UDP or SCTP port
  }
  // No peer field: an L4-only rule applies to every peer; a rule with neither peers nor ports selects nothing.
  const l4Only = asArray(rule.toPorts).length > 0 || rule.icmps !== undefined;
  if (authRequired) return { peers: [], ports, ...grants };
  if (!hasPeerField) return { peers: l4Only ? [{ type: 'any' }] : [], ports, ...grants };
  return { peers, ports, ...grants };
}

interface L7Context {
  /** A TLS interception field was seen (one problem line per policy). */
  tls: boolean;
  /** The policy's namespace, where headerMatches secrets are looked up ('' for clusterwide policies). */
  namespace: string;
  index: InputIndex;
}

/**
 * `toPorts` of a Cilium rule; absent, empty, or an entry without ports: every port. With each
 * entry's L7 grant: its ports and HTTP rules (null when it has none).
 */
function ciliumPorts(
  toPorts: unknown,
  path: string,
  direction: Direction,
  problem: (t: string) => void,
  l7: L7Context,
): { ports: PortSpec[] | null; l7: L7Grant[] } {
  if (toPorts === undefined || toPorts === null) return { ports: null, l7: [] };
  if (!Array.isArray(toPorts)) {
    problem(`${path} is not a list; the rule allows no port`);
    return { ports: [], l7: [] };
  }
  if (toPorts.length === 0) return { ports: null, l7: [] };
  const out: PortSpec[] = [];
  const grants: L7Grant[] = [];
  let every = false;
  toPorts.forEach((entry, k) => {
    if (!isObject(entry)) return problem(`${path}[${k}] is not a port rule; skipped`);
    if (TLS_FIELDS.some((f) => entry[f] !== undefined && entry[f] !== null)) l7.tls = true;
    const http = l7Rules(entry, `${path}[${k}]`, direction, problem, l7);
    const ports = entry.ports;
    if (ports === undefined || ports === null || (Array.isArray(ports) && ports.length === 0)) {
      every = true;
      grants.push({ ports: null, http });
      return;
    }
    if (!Array.isArray(ports)) return problem(`${path}[${k}].ports is not a list; skipped`);
    const specs: PortSpec[] = [];
    ports.forEach((p, j) => {
      const where = `${path}[${k}].ports[${j}]`;
      let protocol = String(p?.protocol ?? 'ANY').toUpperCase();
      if (protocol !== 'ANY' && !L4_PROTOCOLS.includes(protocol as Protocol)) {
        return problem(`${where}: protocol ${JSON.stringify(p.protocol)} is not TCP, UDP, SCTP or ANY; port skipped`);
      }
      if (http !== null && protocol !== 'TCP') {
        // Cilium refuses the whole policy (which would then enforce nothing); the narrower reading keeps it on TCP.
        if (protocol !== 'ANY') return problem(`${where}: L7 rules apply to TCP only (Cilium refuses ${protocol}); port skipped`);
        problem(`${where}: L7 rules need protocol TCP (Cilium refuses ANY); applied to TCP only`);
        protocol = 'TCP';
      }
      // Cilium: port "0" (or none) is every port; endPort 0 is no range.
      const port = p?.port === '0' || p?.port === 0 || p?.port === '' ? undefined : p?.port;
      const endPort = p?.endPort === 0 ? undefined : p?.endPort;
      const spec = portSpec(protocol as PortProtocol, port, endPort, where, problem);
      if (spec) specs.push(spec);
    });
    out.push(...specs);
    grants.push({ ports: specs, http });
  });
  return { ports: every ? null : out, l7: grants };
}

/**
 * The HTTP rules of one toPorts entry: null when it has no L7 part (L4-only). Rules Sluice cannot
 * check never widen: an invalid HTTP rule matches nothing, and a port governed by another L7
 * protocol (or by SNI, which the gateway's plain HTTP connections never carry) admits no request.
 */
function l7Rules(entry: Record<string, unknown>, where: string, direction: Direction, problem: (t: string) => void, l7: L7Context): HttpPolicyRule[] | null {
  const sni = entry.serverNames;
  const rules = entry.rules;
  const deny = (text: string): HttpPolicyRule[] => {
    problem(`${where}: ${text}; requests to those ports are denied`);
    return [];
  };
  if (Array.isArray(sni) && sni.length > 0) return deny('serverNames is not supported (the gateway speaks plain HTTP to backends: no SNI to match)');
  if (rules === undefined || rules === null) return null;
  if (!isObject(rules)) return deny('rules is not an object');
  const others = OTHER_L7.filter((k) => rules[k] !== undefined && rules[k] !== null && !(Array.isArray(rules[k]) && rules[k].length === 0));
  if (others.length > 0) {
    const what = others.map((k) => `rules.${k}`).join(', ');
    const why = others.includes('dns') && direction === 'ingress' ? 'DNS rules are egress only in Cilium' : 'the gateway sends HTTP, which those parsers would not let through';
    return deny(`${what} is not supported (${why})`);
  }
  if (rules.http === undefined || rules.http === null) return null;
  if (!Array.isArray(rules.http)) return deny('rules.http is not a list');
  const out: HttpPolicyRule[] = [];
  rules.http.forEach((h, i) => {
    const rule = httpRule(h, `${where}.rules.http[${i}]`, problem, l7);
    if (rule) out.push(rule);
  });
  // An empty list is no constraint in Cilium (`rules.http: []` is L4-only).
  return rules.http.length === 0 ? null : out;
}

/** One `rules.http[]` entry, or null (with a problem line) when it cannot be checked as written: it then allows nothing. */
function httpRule(value: unknown, where: string, problem: (t: string) => void, l7: L7Context): HttpPolicyRule | null {
  if (!isObject(value)) {
    problem(`${where} is not an HTTP rule; it allows nothing`);
    return null;
  }
  const rule: HttpPolicyRule = { headers: [], headerActions: [] };
  for (const field of ['method', 'path', 'host'] as const) {
    const re = value[field];
    if (re === undefined || re === null || re === '') continue;
    const error = typeof re === 'string' ? re2Error(re) : 'not a string';
    if (typeof re !== 'string' || error !== null) {
      problem(`${where}.${field}: ${JSON.stringify(re)} is not an RE2 regular expression (${error}); the rule allows nothing`);
      return null;
    }
    rule[field] = re;
  }
  for (const [j, header] of asArray(value.headers).entries()) {
    // As Cilium: "Name" is presence, "Name value" (or "Name: value") an exact value.
    if (typeof header !== 'string' || header === '') {
      problem(`${where}.headers[${j}] is not a header; the rule allows nothing`);
      return null;
    }
    const space = header.indexOf(' ');
    const field = space < 0 ? { name: header.toLowerCase() } : { name: header.slice(0, space).replace(/:+$/, '').toLowerCase(), value: header.slice(space + 1) };
    const trouble = fieldTrouble(field.name, field.value ?? '');
    if (trouble !== null) {
      problem(`${where}.headers[${j}]: ${trouble}; the rule allows nothing`);
      return null;
    }
    rule.headers.push(field);
  }
  for (const [j, m] of asArray(value.headerMatches).entries()) {
    const at = `${where}.headerMatches[${j}]`;
    const match = fieldsOf(m);
    if (typeof match.name !== 'string' || match.name === '') {
      problem(`${at}: header name missing; the rule allows nothing`);
      return null;
    }
    const mismatch = match.mismatch === undefined || match.mismatch === null || match.mismatch === '' ? null : String(match.mismatch);
    if (mismatch !== null && !MISMATCH_ACTIONS.has(mismatch)) {
      problem(`${at}.mismatch: ${JSON.stringify(match.mismatch)} is not LOG, ADD, DELETE or REPLACE; the rule allows nothing`);
      return null;
    }
    const found = headerMatchValue(match, at, problem, l7);
    if (found === null) return null;
    const trouble = fieldTrouble(match.name, found.value);
    if (trouble !== null) {
      problem(`${at}${found.secret ? ` (Secret ${found.secret})` : ''}: ${trouble}; the rule allows nothing`);
      return null;
    }
    const header = { name: match.name.toLowerCase(), ...(found.value !== '' ? { value: found.value } : {}), ...(found.secret ? { secret: found.secret } : {}) };
    if (mismatch === null) rule.headers.push(header);
    else rule.headerActions.push({ ...header, mismatch: mismatch as HttpPolicyRule['headerActions'][number]['mismatch'] });
  }
  return rule;
}

/**
 * Why a header of an HTTP rule cannot be matched or sent (a name that is no token, a value with a
 * control character: no request carries it, and ADD/REPLACE would make every request fail), or null.
 */
function fieldTrouble(name: string, value: string): string | null {
  if (!TOKEN.test(name)) return `header name ${JSON.stringify(name)} is not a valid HTTP field name (RFC 9110 token characters only)`;
  return headerValueTrouble(value);
}

/**
 * The value a headerMatch compares with ('' = presence): the Secret's one entry (as Cilium: it must
 * hold exactly one), else `value`; null when neither exists (the rule never matches).
 */
function headerMatchValue(match: Record<string, unknown>, at: string, problem: (t: string) => void, l7: L7Context): { value: string; secret?: string } | null {
  const inline = typeof match.value === 'string' ? match.value : '';
  if (match.secret === undefined || match.secret === null) return { value: inline };
  const ref = fieldsOf(match.secret);
  const namespace = typeof ref.namespace === 'string' && ref.namespace !== '' ? ref.namespace : l7.namespace;
  const secret = typeof ref.name === 'string' ? l7.index.secret(namespace, ref.name) : undefined;
  const entries = Object.values(fieldsOf(secret?.data));
  if (entries.length === 1 && typeof entries[0] === 'string') return { value: Buffer.from(entries[0], 'base64').toString('utf8'), secret: `${namespace}/${String(ref.name)}` };
  if (inline !== '') return { value: inline };
  problem(`${at}.secret: Secret ${namespace}/${String(ref.name)} ${secret ? 'does not hold exactly one entry' : 'is not known'} and no value is given; the rule allows nothing`);
  return null;
}

/** Why RE2 (Cilium's Envoy's regex engine; the dataplane's re2js) refuses a pattern, or null when it compiles. */
function re2Error(re: string): string | null {
  try {
    RE2JS.compile(re);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** The grants of every (direction, identity) some HTTP rule governs, in IR form; audit mode from the governed identity. */
function httpPolicies(grants: Map<string, GrantDraft[]>, ruleIds: Map<string, number>, enforcement: Map<number, L4Enforcement>): HttpPolicy[] {
  const out: HttpPolicy[] = [];
  for (const [key, list] of grants) {
    if (!list.some((g) => g.http !== null)) continue;
    const [direction, id] = key.split('/') as [Direction, string];
    const identity = Number(id);
    const seen = new Set<string>();
    const unique: HttpPolicyGrant[] = [];
    for (const g of list) {
      const grant: HttpPolicyGrant = { rule: ruleIds.get(g.rule)!, ...(g.ports ? { ports: g.ports } : {}), http: g.http };
      const k = JSON.stringify(grant);
      if (!seen.has(k)) unique.push(grant);
      seen.add(k);
    }
    unique.sort((a, b) => a.rule - b.rule || (a.ports?.from ?? 0) - (b.ports?.from ?? 0) || (a.ports?.to ?? 0) - (b.ports?.to ?? 0));
    const audit = enforcement.get(direction === 'ingress' ? identity : IDENTITY_INGRESS)?.audit ?? false;
    out.push({ direction, identity, audit, grants: unique });
  }
  return out.sort((a, b) => compareStrings(a.direction, b.direction) || a.identity - b.identity);
}

/** One port (number, digits or a name) with an optional inclusive endPort; null (with a problem) when invalid. */
function portSpec(protocol: PortProtocol, port: unknown, endPort: unknown, where: string, problem: (t: string) => void): PortSpec | null {
  const hasEnd = endPort !== undefined && endPort !== null;
  if (port === undefined || port === null) {
    if (hasEnd) {
      problem(`${where}: endPort without port; port skipped`);
      return null;
    }
    return { protocol };
  }
  if (typeof port === 'string' && !/^\d+$/.test(port)) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(port) || !/[a-z]/i.test(port)) {
      problem(`${where}: port ${JSON.stringify(port)} is neither a number nor a port name; port skipped`);
      return null;
    }
    if (hasEnd) {
      problem(`${where}: endPort cannot go with the named port ${JSON.stringify(port)}; port skipped`);
      return null;
    }
    return { protocol, name: port.toLowerCase() };
  }
  const from = Number(port);
  if (!Number.isInteger(from) || from < 1 || from > 65535) {
    problem(`${where}: port ${JSON.stringify(port)} is out of range (1-65535); port skipped`);
    return null;
  }
  if (!hasEnd) return { protocol, from, to: from };
  const to = Number(endPort);
  if (!Number.isInteger(to) || to > 65535) {
    problem(`${where}: endPort ${JSON.stringify(endPort)} is out of range (1-65535); port skipped`);
    return null;
  }
  if (to < from) {
    problem(`${where}: endPort ${to} is below port ${from}; port skipped`);
    return null;
  }
  return { protocol, from, to };
}

// ---------------------------------------------------------------- peers

/** A CIDR peer (Kubernetes ipBlock, Cilium fromCIDR/toCIDR/CIDRSet); IPv6 prefixes are left out, said. */
function cidrPeer(cidrText: unknown, exceptList: unknown, where: string, problem: (t: string) => void): Peer | null {
  if (typeof cidrText !== 'string') {
    problem(`${where}: cidr is missing; peer skipped`);
    return null;
  }
  if (isIPv6(cidrText)) {
    problem(`${where}: ${cidrText} is IPv6, which the policy datapath does not see (IPv4 only); peer left out`);
    return null;
  }
  const cidr = parseCidr(cidrText);
  if (!cidr) {
    problem(`${where}: ${JSON.stringify(cidrText)} is not an IPv4 CIDR; peer skipped`);
    return null;
  }
  if (exceptList !== undefined && exceptList !== null && !Array.isArray(exceptList)) {
    problem(`${where}: except is not a list; peer skipped`);
    return null;
  }
  const except: Cidr[] = [];
  for (const text of asArray(exceptList)) {
    if (typeof text === 'string' && isIPv6(text)) continue;
    const e = typeof text === 'string' ? parseCidr(text) : null;
    if (!e) {
      problem(`${where}: except ${JSON.stringify(text)} is not an IPv4 CIDR; peer skipped`);
      return null;
    }
    if (!cidrContains(cidr, e)) {
      problem(`${where}: except ${text} is not inside ${cidrText}; ignored`);
      continue;
    }
    except.push(e);
  }
  return { type: 'cidr', cidr, except };
}

/** Whether an ingress rule's peers take in the gateway: IDENTITY_ANY, IDENTITY_INGRESS, or null. */
function gatewayRemote(peers: Peer[], ctx: Context): number | null {
  let gateway = false;
  for (const p of peers) {
    if (p.type === 'any' || (p.type === 'entity' && p.entity === 'all')) return IDENTITY_ANY;
    if (p.type === 'entity') gateway ||= p.entity === 'ingress' || p.entity === 'cluster';
    else if (p.type === 'selector') gateway ||= p.matches(ctx.gateway);
    else gateway ||= gatewayInCidr(p, ctx);
  }
  return gateway ? IDENTITY_INGRESS : null;
}

/**
 * The gateway is in a CIDR peer when one of its configured addresses is in the
 * prefix and in no except. With no addresses configured, only 0.0.0.0/0
 * without excepts takes it in (it holds every address, whichever it is).
 */
function gatewayInCidr(p: { cidr: Cidr; except: Cidr[] }, ctx: Context): boolean {
  if (ctx.gatewayAddresses.length === 0) return p.cidr.len === 0 && p.except.length === 0;
  return ctx.gatewayAddresses.some((ip) => addressInCidr(ip, p.cidr) && !p.except.some((e) => addressInCidr(ip, e)));
}

/** Destination identities an egress rule selects, sorted; [IDENTITY_ANY] when it selects every destination. */
function egressRemotes(s: Section, u: Unit, ctx: Context, cidrs: { cidr: Cidr; id: number }[]): number[] {
  const out = new Set<number>();
  const world = () => {
    out.add(IDENTITY_WORLD);
    for (const c of cidrs) out.add(c.id);
  };
  for (const p of s.peers) {
    if (p.type === 'any') return [IDENTITY_ANY];
    if (p.type === 'selector') {
      for (const e of ctx.endpoints) if (p.matches(e)) out.add(e.id);
      if (p.matches(ctx.gateway)) out.add(IDENTITY_INGRESS);
    } else if (p.type === 'cidr') {
      // CIDR peers select addresses that are no endpoint's: the prefix's own identity and every
      // policy prefix nested in it (longest prefix wins in the ipcache), less the excepts.
      if (p.cidr.len === 0) out.add(IDENTITY_WORLD);
      for (const c of cidrs) {
        if (cidrContains(p.cidr, c.cidr) && !p.except.some((e) => cidrContains(e, c.cidr))) out.add(c.id);
      }
    } else {
      switch (p.entity) {
        case 'all':
          return [IDENTITY_ANY];
        case 'world':
        case 'world-ipv4':
          world();
          break;
        case 'cluster':
          for (const e of ctx.endpoints) out.add(e.id);
          out.add(IDENTITY_HOST);
          out.add(IDENTITY_INGRESS);
          break;
        case 'host':
          out.add(IDENTITY_HOST);
          break;
        case 'ingress':
          out.add(IDENTITY_INGRESS);
          break;
        default:
          if (UNTRACKED_ENTITIES.has(p.entity)) {
            ctx.problems.push(`${u.what}: ${s.path}: entity ${p.entity} is not tracked by Sluice (its addresses are unknown); it matches nothing`);
          }
      }
    }
  }
  return [...out].sort((a, b) => a - b);
}

// ---------------------------------------------------------------- ports

type NamedPort = { protocol: PortProtocol; name: string };
type Range = { protocol: L4PolicyEntry['protocol']; ports?: { from: number; to: number } };

function hasNamedPorts(ports: PortSpec[] | null): boolean {
  return (ports ?? []).some((p) => 'name' in p);
}

/** Port specs as entry protocol and ranges: ANY with a port becomes TCP, UDP and SCTP; named ports via `resolve`. */
function portRanges(ports: PortSpec[] | null, resolve: (p: NamedPort) => { protocol: Protocol; port: number }[]): Range[] {
  if (ports === null) return [{ protocol: 'ANY' }];
  const out: Range[] = [];
  for (const p of ports) {
    if ('name' in p) {
      for (const r of resolve(p)) out.push({ protocol: r.protocol, ports: { from: r.port, to: r.port } });
      continue;
    }
    if (p.from === undefined) {
      out.push({ protocol: p.protocol });
      continue;
    }
    for (const protocol of p.protocol === 'ANY' ? L4_PROTOCOLS : [p.protocol]) out.push({ protocol, ports: { from: p.from, to: p.to ?? p.from } });
  }
  return out;
}

/** Resolves named ports against an identity's known Pods and remembers what could not be resolved. */
class NamedPortReport {
  private readonly unknown = new Map<string, Set<number>>();
  private readonly resolved = new Set<string>();
  private readonly seen = new Set<string>();

  /** `quiet`: a destination picked by "any peer"; an identity without a known Pod is not reported. */
  resolve(p: NamedPort, identity: Identity | undefined, quiet = false): { protocol: Protocol; port: number }[] {
    this.seen.add(p.name);
    if (!identity) return [];
    if (identity.pods.length === 0) {
      if (!quiet) this.unknown.set(p.name, (this.unknown.get(p.name) ?? new Set()).add(identity.id));
      return [];
    }
    const out = new Map<string, { protocol: Protocol; port: number }>();
    for (const pod of identity.pods) {
      for (const c of asArray(pod.spec?.containers)) {
        for (const containerPort of asArray(fieldsOf(c).ports)) {
          const cp = fieldsOf(containerPort);
          const protocol = (cp.protocol ?? 'TCP') as Protocol;
          if (String(cp.name ?? '').toLowerCase() !== p.name || (p.protocol !== 'ANY' && protocol !== p.protocol)) continue;
          const port = Number(cp.containerPort);
          if (Number.isInteger(port) && port >= 1 && port <= 65535) out.set(`${protocol}/${port}`, { protocol, port });
        }
      }
    }
    if (out.size > 0) this.resolved.add(p.name);
    return [...out.values()].sort((a, b) => compareStrings(a.protocol, b.protocol) || a.port - b.port);
  }

  problems(what: string, path: string): string[] {
    const out: string[] = [];
    for (const name of [...this.seen].sort(compareStrings)) {
      const unknown = [...(this.unknown.get(name) ?? [])].sort((a, b) => a - b);
      const without = unknown.length > 0 ? ` (identities without a known Pod: ${unknown.join(', ')})` : '';
      if (!this.resolved.has(name)) {
        out.push(`${what}: ${path}: named port "${name}" matches no container port of the known Pods it applies to${without}; skipped`);
      } else if (unknown.length > 0) {
        out.push(`${what}: ${path}: named port "${name}" cannot be resolved for identities without a known Pod (${unknown.join(', ')}); skipped there`);
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------- selectors, audit, output order

/** A selector with string values (and, for Cilium, source prefixes stripped), or the problem with it. */
function normalizeSelector(value: unknown, cilium: boolean): LabelSelector | string {
  if (!isObject(value)) return 'not a label selector';
  if (value.matchLabels !== undefined && value.matchLabels !== null && !isObject(value.matchLabels)) return 'matchLabels is not a map';
  if (value.matchExpressions !== undefined && value.matchExpressions !== null && !Array.isArray(value.matchExpressions)) {
    return 'matchExpressions is not a list';
  }
  const key = (k: string) => (cilium ? stripSource(k) : k);
  const matchLabels: Record<string, string> = {};
  for (const [k, v] of Object.entries(stringMap(value.matchLabels))) matchLabels[key(k)] = v;
  const matchExpressions: NonNullable<LabelSelector['matchExpressions']> = [];
  for (const e of asArray(value.matchExpressions)) {
    if (!isObject(e) || typeof e.key !== 'string') return 'a matchExpression has no key';
    const values = e.values === undefined || e.values === null ? undefined : asArray(e.values).map(String);
    matchExpressions.push({ key: key(e.key), operator: String(e.operator), ...(values ? { values } : {}) });
  }
  const selector: LabelSelector = { matchLabels, matchExpressions };
  const problem = selectorProblem(selector);
  if (problem) return problem;
  for (const e of matchExpressions) {
    if ((e.operator === 'In' || e.operator === 'NotIn') && (e.values ?? []).length === 0) return `operator ${e.operator} needs values (key ${e.key})`;
  }
  return selector;
}

/**
 * A Cilium endpoint selector. In a namespaced policy it is confined to the
 * policy's namespace unless it names io.kubernetes.pod.namespace itself
 * (`force`: always confined, as a policy's own endpointSelector is).
 */
function ciliumSelector(value: unknown, namespace: string | null, force: boolean): LabelSelector | string {
  const selector = normalizeSelector(value, true);
  if (typeof selector === 'string' || namespace === null) return selector;
  const named = NAMESPACE_LABEL in (selector.matchLabels ?? {}) || (selector.matchExpressions ?? []).some((e) => e.key === NAMESPACE_LABEL);
  if (named && !force) return selector;
  return { ...selector, matchExpressions: [...(selector.matchExpressions ?? []), { key: NAMESPACE_LABEL, operator: 'In', values: [namespace] }] };
}

/** `k8s:app` → `app`, `any:app` → `app`; other sources (`reserved:ingress`) stay as they are. */
function stripSource(key: string): string {
  return key.startsWith('k8s:') || key.startsWith('any:') ? key.slice(4) : key;
}

function auditMode(obj: KubeObject, problem: (t: string) => void): boolean {
  const value = obj.metadata.annotations?.[POLICY_AUDIT_ANNOTATION];
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  problem(`annotation ${POLICY_AUDIT_ANNOTATION}: ${JSON.stringify(value)} is not "true" or "false"; enforcing`);
  return false;
}

/** Audit mode is per identity: say when an audit-mode policy also suspends what enforcing policies ask of the same identities. */
function auditProblems(governedBy: Map<number, { what: string; audit: boolean }[]>, enforcement: Map<number, L4Enforcement>, problems: string[]): void {
  const overlaps = new Map<string, Set<string>>();
  for (const [id, list] of governedBy) {
    if (!enforcement.get(id)?.audit) continue;
    const enforcing = list.filter((g) => !g.audit).map((g) => g.what);
    if (enforcing.length === 0) continue;
    for (const g of list) {
      if (!g.audit) continue;
      const set = overlaps.get(g.what) ?? new Set();
      for (const w of enforcing) set.add(w);
      overlaps.set(g.what, set);
    }
  }
  for (const what of [...overlaps.keys()].sort(compareStrings)) {
    const others = [...overlaps.get(what)!].sort(compareStrings).join(', ');
    problems.push(`${what}: audit mode applies per identity: on the endpoints it shares with ${others}, that policy is audited too, not enforced`);
  }
}

/** `…/ingress/10` after `…/ingress/9`. */
function compareRuleNames(a: string, b: string): number {
  const i = a.lastIndexOf('/');
  const j = b.lastIndexOf('/');
  return compareStrings(a.slice(0, i), b.slice(0, j)) || Number(a.slice(i + 1)) - Number(b.slice(j + 1));
}

/** One entry per (direction, action, local, remote, protocol, range), from the lowest rule id; sorted. */
function dedupeEntries(entries: L4PolicyEntry[]): L4PolicyEntry[] {
  const key = (e: L4PolicyEntry) => `${e.direction}|${e.action}|${e.local}|${e.remote}|${e.protocol}|${e.ports?.from ?? ''}|${e.ports?.to ?? ''}`;
  const best = new Map<string, L4PolicyEntry>();
  for (const e of entries) {
    const k = key(e);
    const known = best.get(k);
    if (!known || e.rule < known.rule) best.set(k, e);
  }
  return [...best.values()].sort(
    (a, b) =>
      compareStrings(a.direction, b.direction) ||
      compareStrings(a.action, b.action) ||
      a.local - b.local ||
      a.remote - b.remote ||
      compareStrings(a.protocol, b.protocol) ||
      (a.ports?.from ?? 0) - (b.ports?.from ?? 0) ||
      (a.ports?.to ?? 0) - (b.ports?.to ?? 0) ||
      a.rule - b.rule,
  );
}

function sortByName<T extends KubeObject>(objects: T[]): T[] {
  return [...objects].sort((a, b) => compareStrings(namespacedName(a), namespacedName(b)));
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The fields of a value read as an object: none when it is not one (what optional chaining gives on parsed YAML). */
function fieldsOf(v: unknown): Record<string, unknown> {
  return isObject(v) ? v : {};
}

