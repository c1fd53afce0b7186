// Cilium's policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy) are the kinds Sluice
// reads without a schema at hand (every other kind is validated against its schema by
// controller/schema/validate.ts). A field of the wrong type would throw deep inside translate()
// and stop every update; the API server refuses such an object, and the manifest folder does the
// same here: each field translation reads is checked, by name, against the type Cilium gives it,
// and an object with a wrong one is left out with a problem naming the field.
// Found and kept honest by test/fuzz/translate.test.ts.

import type { KubeObject } from './objects.ts';

type Shape =
  /** a list of anything */
  | 'list'
  /** a list of mappings */
  | 'objects'
  | 'strings'
  | 'object'
  | 'string'
  /** a mapping of strings to strings (labels, annotations, Secret data) */
  | 'stringMap';

const FIELD_SHAPES: Record<string, Shape> = {
  // Lists of mappings.
  rules: 'objects',
  matches: 'objects',
  parentRefs: 'objects',
  backendRefs: 'objects',
  filters: 'objects',
  listeners: 'objects',
  ports: 'objects',
  endpoints: 'objects',
  headers: 'objects',
  queryParams: 'objects',
  set: 'objects',
  add: 'objects',
  certificateRefs: 'objects',
  caCertificateRefs: 'objects',
  to: 'objects',
  paths: 'objects',
  matchExpressions: 'objects',
  ingress: 'objects',
  egress: 'objects',
  ingressDeny: 'objects',
  egressDeny: 'objects',
  toPorts: 'objects',
  fromEndpoints: 'objects',
  toEndpoints: 'objects',
  fromCIDRSet: 'objects',
  toCIDRSet: 'objects',
  fromRequires: 'objects',
  toRequires: 'objects',
  toServices: 'objects',
  icmps: 'objects',
  targetRefs: 'objects',
  clientSelectors: 'objects',
  specs: 'objects',
  containers: 'objects',
  podIPs: 'objects',
  items: 'objects',
  // Lists of strings.
  hostnames: 'strings',
  hosts: 'strings',
  remove: 'strings',
  values: 'strings',
  allowOrigins: 'strings',
  allowMethods: 'strings',
  allowHeaders: 'strings',
  exposeHeaders: 'strings',
  trustedCIDRs: 'strings',
  fromCIDR: 'strings',
  toCIDR: 'strings',
  fromEntities: 'strings',
  toEntities: 'strings',
  toFQDNs: 'objects',
  except: 'strings',
  policyTypes: 'strings',
  methods: 'strings',
  // Lists of whatever (a status code list, addresses that are strings in one kind and mappings in another).
  codes: 'list',
  addresses: 'list',
  // Mappings.
  metadata: 'object',
  spec: 'object',
  allowedRoutes: 'object',
  namespaces: 'object',
  frontendValidation: 'object',
  options: 'stringMap',
  requestHeaderModifier: 'object',
  responseHeaderModifier: 'object',
  requestRedirect: 'object',
  urlRewrite: 'object',
  requestMirror: 'object',
  cors: 'object',
  timeouts: 'object',
  retry: 'object',
  backend: 'object',
  defaultBackend: 'object',
  service: 'object',
  resource: 'object',
  selector: 'object',
  podSelector: 'object',
  namespaceSelector: 'object',
  endpointSelector: 'object',
  nodeSelector: 'object',
  ipBlock: 'object',
  conditions: 'object',
  parametersRef: 'object',
  local: 'object',
  global: 'object',
  sourceCIDR: 'object',
  limit: 'object',
  // Mappings of strings.
  labels: 'stringMap',
  annotations: 'stringMap',
  matchLabels: 'stringMap',
  data: 'stringMap',
  stringData: 'stringMap',
  // Strings.
  name: 'string',
  namespace: 'string',
  kind: 'string',
  group: 'string',
  type: 'string',
  value: 'string',
  hostname: 'string',
  host: 'string',
  protocol: 'string',
  controllerName: 'string',
  gatewayClassName: 'string',
  ingressClassName: 'string',
  sectionName: 'string',
  pathType: 'string',
  addressType: 'string',
  scheme: 'string',
  replacePrefixMatch: 'string',
  replaceFullPath: 'string',
  method: 'string',
  secretName: 'string',
  operator: 'string',
  key: 'string',
  cidr: 'string',
  appProtocol: 'string',
  creationTimestamp: 'string',
  uid: 'string',
};

/** Field names whose type in Cilium's kinds differs from the table above. */
const KIND_FIELD_SHAPES: Record<string, Record<string, Shape>> = {
  CiliumNetworkPolicy: { http: 'objects', path: 'string', rules: 'object', headers: 'strings', headerMatches: 'objects' },
  CiliumClusterwideNetworkPolicy: { http: 'objects', path: 'string', rules: 'object', headers: 'strings', headerMatches: 'objects' },
};

/** Parts of an object whose content is free-form: never checked by field name. */
// enableDefaultDeny (Cilium) holds booleans named ingress/egress, which are rule lists elsewhere; the translator checks them.
const FREE_FORM = new Set(['status', 'annotations', 'labels', 'matchLabels', 'data', 'stringData', 'options', 'enableDefaultDeny']);

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fits(shape: Shape, value: unknown): string | null {
  switch (shape) {
    case 'list':
      return Array.isArray(value) ? null : 'a list';
    case 'objects':
      return Array.isArray(value) && value.every(isMapping) ? null : 'a list of mappings';
    case 'strings':
      return Array.isArray(value) && value.every((v) => typeof v === 'string') ? null : 'a list of strings';
    case 'object':
      return isMapping(value) ? null : 'a mapping';
    case 'string':
      return typeof value === 'string' ? null : 'a string';
    case 'stringMap':
      return isMapping(value) && Object.values(value).every((v) => typeof v === 'string') ? null : 'a mapping of strings (quote numbers and booleans)';
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)?.slice(0, 40)}`;
}

/** Where the first field of the wrong type is and what it should be, or null when every checked field fits. */
export function shapeProblem(obj: KubeObject): string | null {
  const overrides = KIND_FIELD_SHAPES[obj.kind];
  const walk = (value: unknown, path: string): string | null => {
    if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) {
        const problem = walk(item, `${path}[${i}]`);
        if (problem) return problem;
      }
      return null;
    }
    if (!isMapping(value)) return null;
    for (const [key, child] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      // null is how YAML writes an empty field (`tls:`): absent, as the API server reads it.
      if (child === null || child === undefined) continue;
      // A Cilium policy's own `labels` (spec, specs[i]) is a list of {key, value, source}, not metadata's map.
      const shape = overrides !== undefined && key === 'labels' && /^specs?(\[\d+\])?$/.test(path) ? 'objects' : (overrides?.[key] ?? FIELD_SHAPES[key]);
      const expected = shape ? fits(shape, child) : null;
      if (expected) return `${at} must be ${expected}, not ${describe(child)}`;
      if (!FREE_FORM.has(key)) {
        const problem = walk(child, at);
        if (problem) return problem;
      }
    }
    return null;
  };
  return walk(obj, '');
}
