// Strict validation of the Ingress case files (FORMAT.md, schemaVersion 1):
// every field, kind, expect key and request field the runner does not know is
// a problem, so no assertion can be silently ignored. A group with problems is
// not run; each of its cases FAILs with the problems.

import { checkShape, S, type Spec } from '../lib/strict.ts';
import type { GroupFile, IndexFile } from './types.ts';

/** Group `source.kind` values; FORMAT.md also allows `+` combinations of them. */
export const GROUP_SOURCE_KINDS = ['upstream-feature', 'k8s-spec', 'cilium-behaviour', 'k8s-spec-vs-cilium'] as const;
export const CASE_SOURCES = ['upstream', 'upstream-derived', 'k8s-spec', 'cilium'] as const;
export const CASE_KINDS = ['http', 'distribution', 'status'] as const;

const int = (min: number, max = Number.MAX_SAFE_INTEGER): Spec =>
  S.custom((v, where) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? [] : [`${where}: expected an integer ${min}..${max}, got ${JSON.stringify(v)}`],
  );

const strList = S.arr(S.str);
const strMap = S.map(S.str);

const groupSourceKind = S.custom((v, where) => {
  if (typeof v !== 'string') return [`${where}: expected string`];
  const parts = v.split('+');
  const bad = parts.filter((p) => !(GROUP_SOURCE_KINDS as readonly string[]).includes(p));
  return bad.length ? [`${where}: unsupported source kind ${JSON.stringify(v)} (known: ${GROUP_SOURCE_KINDS.join(', ')}, or a + combination)`] : [];
});

/** A networking.k8s.io/v1 Ingress object; its spec is the controller's business, not the runner's. */
const ingressObject = S.custom((v, where) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${where}: expected an Ingress object`];
  const o = v as Record<string, any>;
  const out: string[] = [];
  if (o.apiVersion !== 'networking.k8s.io/v1') out.push(`${where}.apiVersion: expected "networking.k8s.io/v1", got ${JSON.stringify(o.apiVersion)}`);
  if (o.kind !== 'Ingress') out.push(`${where}.kind: expected "Ingress", got ${JSON.stringify(o.kind)}`);
  if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') out.push(`${where}.metadata.name: expected a name`);
  if (o.metadata?.namespace !== undefined && typeof o.metadata.namespace !== 'string') out.push(`${where}.metadata.namespace: expected string`);
  if (o.status !== undefined) out.push(`${where}.status: an Ingress to apply cannot carry a status`);
  return out;
});

const request = S.obj(
  {
    scheme: S.enum('http', 'https'),
    host: S.nullable(S.str),
    sni: S.str,
    path: S.str,
    method: S.str,
    headers: strMap,
    followRedirects: S.bool,
    repeat: int(1, 100_000),
  },
  ['sni', 'headers', 'repeat'],
);

export const EXPECT_KEYS = [
  'status',
  'backendService',
  'servicePort',
  'backendPath',
  'backendHost',
  'backendMethod',
  'backendProto',
  'backendHeaders',
  'responseProto',
  'responseHeaders',
  'tls',
  'redirect',
  'distinctPods',
] as const;

const httpExpectFields: Record<string, Spec> = {
  status: int(100, 599),
  backendService: S.nullable(S.str),
  servicePort: S.obj({ number: int(1, 65535), name: S.str }, ['name']),
  backendPath: S.str,
  backendHost: S.str,
  backendMethod: S.str,
  backendProto: S.str,
  backendHeaders: strMap,
  responseProto: S.str,
  responseHeaders: strMap,
  tls: S.obj({ leafCertFirstDnsName: S.str, leafCertValidForHost: S.str }, ['leafCertFirstDnsName', 'leafCertValidForHost']),
  redirect: S.obj({ scheme: S.str, host: S.str, path: S.str, query: S.str }, ['scheme', 'host', 'path', 'query']),
};
const httpExpect = S.obj(httpExpectFields, EXPECT_KEYS.filter((k) => k !== 'status' && k in httpExpectFields));
const distributionExpect = S.obj(
  { ...httpExpectFields, distinctPods: int(1) },
  EXPECT_KEYS.filter((k) => k !== 'status' && k !== 'distinctPods'),
);

const common = {
  id: S.str,
  kind: S.enum(...CASE_KINDS),
  source: S.enum(...CASE_SOURCES),
  summary: S.str,
  upstreamScenario: S.str,
  cilium: S.str,
  references: strList,
  asserted: strList,
};
const commonOptional = ['summary', 'upstreamScenario', 'cilium', 'references', 'asserted'];

const caseSpec = S.custom((v, where) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${where}: expected a case object`];
  const kind = (v as { kind?: unknown }).kind;
  switch (kind) {
    case 'http':
      return checkShape(v, S.obj({ ...common, request, expect: httpExpect }, commonOptional), where);
    case 'distribution':
      return checkShape(v, S.obj({ ...common, request, expect: distributionExpect }, commonOptional), where);
    case 'status':
      return checkShape(
        v,
        S.obj({ ...common, ingress: S.str, expect: S.obj({ loadBalancerAddress: S.enum('present', 'absent') }) }, commonOptional),
        where,
      );
    default:
      return [`${where}.kind: unsupported case kind ${JSON.stringify(kind)} (known: ${CASE_KINDS.join(', ')})`];
  }
});

export const GROUP_SPEC: Spec = S.obj(
  {
    schemaVersion: S.enum(1),
    group: S.str,
    title: S.str,
    source: S.obj({ kind: groupSourceKind, repo: S.str, commit: S.str, feature: S.str, references: strList }, ['repo', 'commit', 'feature', 'references']),
    controller: S.obj({ ingressClassName: S.str, enforceHttps: S.bool }),
    namespace: S.str,
    ingressClasses: S.arr(S.obj({ name: S.str, controller: S.str, isDefaultClass: S.bool })),
    secrets: S.arr(
      S.obj({
        name: S.str,
        namespace: S.str,
        type: S.enum('kubernetes.io/tls'),
        generate: S.obj({
          selfSigned: S.enum(true),
          dnsNames: strList,
          commonName: S.str,
          organization: S.str,
          keyAlgorithm: S.enum('RSA'),
          keyBits: int(1024, 8192),
          validDays: int(1, 36500),
        }),
      }, ['namespace']),
    ),
    ingresses: S.arr(ingressObject),
    ingressClassNameInjected: S.bool,
    services: S.arr(
      S.obj(
        {
          name: S.str,
          namespace: S.str,
          type: S.enum('ClusterIP', 'NodePort', 'LoadBalancer'),
          ports: S.arr(S.obj({ name: S.str, port: int(1, 65535), targetPort: int(1, 65535), protocol: S.enum('TCP') }, ['name', 'protocol'])),
          replicas: int(0, 250),
          echo: S.obj({ namespace: S.str, ingress: S.str, service: S.str, podNamePrefix: S.str }),
        },
        ['namespace', 'type'],
      ),
    ),
    setup: S.obj({ waitForLoadBalancerAddress: strList, scale: S.map(int(0, 250)) }, ['waitForLoadBalancerAddress', 'scale']),
    notes: strList,
    cases: S.arr(caseSpec),
  },
  ['title', 'source', 'secrets', 'ingressClassNameInjected', 'setup', 'notes'],
);

function dupes(values: string[]): string[] {
  const seen = new Set<string>();
  const out = new Set<string>();
  for (const v of values) (seen.has(v) ? out : seen).add(v);
  return [...out];
}

/**
 * Every problem of a parsed group file: shape first, then the cross-field
 * rules FORMAT.md implies. `expectedGroup` is the file name without `.json`.
 */
export function validateGroup(data: unknown, expectedGroup: string): string[] {
  const shape = checkShape(data, GROUP_SPEC, 'group');
  if (shape.length) return shape;
  const g = data as GroupFile;
  const out: string[] = [];
  if (g.group !== expectedGroup) out.push(`group: ${JSON.stringify(g.group)} differs from the file name ${JSON.stringify(expectedGroup)}`);
  const nsOf = (ns: string | undefined) => ns ?? g.namespace;

  for (const d of dupes(g.ingressClasses.map((c) => c.name))) out.push(`ingressClasses: ${d} defined twice`);
  for (const d of dupes((g.secrets ?? []).map((s) => `${nsOf(s.namespace)}/${s.name}`))) out.push(`secrets: ${d} defined twice`);
  for (const d of dupes(g.ingresses.map((i) => `${nsOf(i.metadata.namespace)}/${i.metadata.name}`))) out.push(`ingresses: ${d} defined twice`);
  for (const d of dupes(g.services.map((s) => `${nsOf(s.namespace)}/${s.name}`))) out.push(`services: ${d} defined twice`);
  g.services.forEach((s, i) => {
    if (s.ports.length === 0) out.push(`services[${i}].ports: a Service needs at least one port`);
    for (const d of dupes(s.ports.map((p) => String(p.port)))) out.push(`services[${i}].ports: port ${d} listed twice`);
    for (const d of dupes(s.ports.flatMap((p) => (p.name === undefined ? [] : [p.name])))) out.push(`services[${i}].ports: name ${d} listed twice`);
    if (s.ports.length > 1 && s.ports.some((p) => !p.name)) out.push(`services[${i}].ports: a Service with several ports needs a name on each`);
  });
  g.secrets?.forEach((s, i) => {
    if (s.generate.dnsNames.length === 0) out.push(`secrets[${i}].generate.dnsNames: at least one DNS name is needed`);
  });

  const ingressNames = new Set(g.ingresses.map((i) => i.metadata.name));
  const ambiguous = new Set(dupes(g.ingresses.map((i) => i.metadata.name)));
  const ingressRef = (where: string, name: string) => {
    if (!ingressNames.has(name)) out.push(`${where}: no Ingress named ${JSON.stringify(name)} in the group`);
    else if (ambiguous.has(name)) out.push(`${where}: Ingress name ${JSON.stringify(name)} is ambiguous (several namespaces)`);
  };
  for (const name of g.setup?.waitForLoadBalancerAddress ?? []) ingressRef('setup.waitForLoadBalancerAddress', name);
  const serviceNames = new Set(g.services.map((s) => s.name));
  for (const name of Object.keys(g.setup?.scale ?? {})) {
    if (!serviceNames.has(name)) out.push(`setup.scale: no Service named ${JSON.stringify(name)} in the group`);
    else if (g.services.filter((s) => s.name === name).length > 1) out.push(`setup.scale: Service name ${JSON.stringify(name)} is ambiguous (several namespaces)`);
  }

  for (const d of dupes(g.cases.map((c) => c.id))) out.push(`cases: id ${JSON.stringify(d)} used twice`);
  g.cases.forEach((c, i) => {
    const where = `cases[${i}] (${c.id})`;
    if (c.asserted) {
      for (const k of c.asserted) if (!(k in c.expect)) out.push(`${where}.asserted: ${JSON.stringify(k)} is not a key of expect`);
      for (const d of dupes(c.asserted)) out.push(`${where}.asserted: ${JSON.stringify(d)} listed twice`);
    }
    if (c.kind === 'status') {
      ingressRef(`${where}.ingress`, c.ingress);
      return;
    }
    const r = c.request;
    if (c.kind === 'http' && r.repeat !== undefined) out.push(`${where}.request.repeat: only a distribution case repeats requests`);
    if (c.kind === 'distribution' && r.repeat === undefined) out.push(`${where}.request.repeat: a distribution case needs repeat`);
    if (r.sni !== undefined && r.scheme !== 'https') out.push(`${where}.request.sni: only an https request sends SNI`);
    if (!r.path.startsWith('/')) out.push(`${where}.request.path: must start with "/" (got ${JSON.stringify(r.path)})`);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(r.method)) out.push(`${where}.request.method: not an HTTP token: ${JSON.stringify(r.method)}`);
    for (const name of Object.keys(r.headers ?? {})) {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) out.push(`${where}.request.headers: ${JSON.stringify(name)} is not a header name`);
      if (name.toLowerCase() === 'host') out.push(`${where}.request.headers: Host belongs in request.host`);
    }
    if (c.expect.redirect && r.followRedirects) out.push(`${where}.expect.redirect: only checkable when followRedirects is false`);
    if (c.expect.redirect && ![301, 302, 303, 307, 308].includes(c.expect.status)) {
      out.push(`${where}.expect.redirect: status ${c.expect.status} is not a redirect status`);
    }
  });
  return out;
}

export const INDEX_SPEC: Spec = S.obj(
  {
    schemaVersion: S.enum(1),
    groups: S.arr(S.obj({ file: S.str, group: S.str, source: groupSourceKind, cases: int(0) }, ['source'])),
    totalCases: int(0),
  },
  ['totalCases'],
);

export function validateIndex(data: unknown): string[] {
  const shape = checkShape(data, INDEX_SPEC, 'index.json');
  if (shape.length) return shape;
  const idx = data as IndexFile;
  const out: string[] = [];
  for (const d of dupes(idx.groups.map((g) => g.file))) out.push(`index.json: file ${d} listed twice`);
  for (const g of idx.groups) if (g.file !== `${g.group}.json`) out.push(`index.json: group ${g.group} is in file ${g.file}, expected ${g.group}.json`);
  const sum = idx.groups.reduce((n, g) => n + g.cases, 0);
  if (idx.totalCases !== undefined && idx.totalCases !== sum) out.push(`index.json: totalCases ${idx.totalCases} but the groups add up to ${sum}`);
  return out;
}
