// Where each kind Sluice reads lives in the Kubernetes API, and what of it the Kubernetes source
// keeps. One entry per key of SNAPSHOT_FIELD_BY_KIND (checked when this module loads), so a kind
// is listed once here and once there.
//
// Versions are in order of preference; the source uses the first one the API server serves
// (discovery), so clusters with an older Gateway API release (ReferenceGrant only v1beta1,
// TLSRoute v1alpha2/v1alpha3) still work. Gateway API v1.6.1 (../shared/gateway-api-crds/v1.6.1/)
// serves every kind we read at v1: GatewayClass, Gateway, HTTPRoute (v1 storage, v1beta1 served),
// ReferenceGrant (v1 served, v1beta1 storage), TLSRoute (v1 only), ListenerSet (v1 only, in
// gateway.networking.k8s.io: the experimental gateway.networking.x-k8s.io/v1alpha1 XListenerSet
// of older releases is another kind and is not read), GRPCRoute, TCPRoute and UDPRoute (v1; the
// experimental channel also serves TCPRoute/UDPRoute v1alpha2, the same schema) and
// BackendTLSPolicy (v1; v1alpha3 before v1.4).
//
// Required kinds make start() fail when their API is missing: the core and networking kinds every
// cluster has, and the Gateway API kinds of every standard-channel install since v1.0 (GatewayClass,
// Gateway, HTTPRoute, ReferenceGrant). Optional kinds are treated as absent (an empty list, one log
// line) and looked for again now and then: ListenerSet and TLSRoute (standard channel only since
// v1.5), GRPCRoute (since v1.1), TCPRoute and UDPRoute (standard since v1.6), BackendTLSPolicy
// (since v1.4), our RateLimitPolicy, and Cilium's policies (present only where Cilium is installed).
//
// ConfigMaps are all watched, not only the CA bundles some BackendTLSPolicy or Gateway names: a
// watch cannot be limited to a changing set of names (one watch per object would not scale), and
// sources/relevance.ts makes a change to a ConfigMap no translation read cost no retranslation.
import { CLUSTER_SCOPED_KINDS, GATEWAY_GROUP, SNAPSHOT_FIELD_BY_KIND, type KubeObject, type PodObject } from './objects.ts';

export interface KindApi {
  kind: string;
  /** API group; '' for the core group (`/api/v1`). */
  group: string;
  /** Versions in order of preference; the first one served is used. */
  versions: string[];
  /** Resource name in URLs. */
  plural: string;
  namespaced: boolean;
  /** True: start() fails when the API is not served. False: absent means an empty list. */
  required: boolean;
  /** Server-side field selector for list and watch (cuts what the API server sends at all). */
  fieldSelector?: string;
  /** Client-side filter: objects it refuses are not cached (and their changes cost nothing). */
  keep?: (obj: KubeObject) => boolean;
  /** Trims an object, in place, to what translation reads (before caching and comparing). */
  trim?: (obj: KubeObject) => void;
}

/** Secret types translation reads: TLS certificates (also Opaque ones with tls.crt/tls.key) and Opaque (Redis settings, CA bundles). */
export const SECRET_TYPES_KEPT = new Set(['kubernetes.io/tls', 'Opaque']);

/**
 * Secret types the API server filters out before sending (field selector `type!=...`): the built-in
 * types Sluice never reads, and Helm release records (large, rewritten on every `helm upgrade`).
 * Other custom types are dropped client-side by SECRET_TYPES_KEPT.
 */
export const SECRET_TYPES_EXCLUDED = [
  'helm.sh/release.v1',
  'kubernetes.io/service-account-token',
  'kubernetes.io/dockercfg',
  'kubernetes.io/dockerconfigjson',
  'kubernetes.io/basic-auth',
  'kubernetes.io/ssh-auth',
  'bootstrap.kubernetes.io/token',
];

/**
 * Trims a Pod, in place, to what network policy translation reads: labels (metadata), hostNetwork,
 * container names and ports (named ports), phase and IPs (status). The rest of a Pod changes often
 * (conditions, container statuses, restarts) and matters not at all, so those updates are dropped as
 * irrelevant, and the informer's copy stays small. When translation reads more of a Pod, add it here.
 */
export function trimPod(pod: KubeObject): void {
  // From the API server: a Pod as its schema types it.
  const { spec: podSpec, status: podStatus } = pod as PodObject;
  const spec: Record<string, unknown> = {};
  if (podSpec?.hostNetwork !== undefined) spec.hostNetwork = podSpec.hostNetwork;
  if (Array.isArray(podSpec?.containers)) {
    spec.containers = podSpec.containers.map((c) => (c.ports !== undefined ? { name: c.name, ports: c.ports } : { name: c.name }));
  }
  const status: Record<string, unknown> = {};
  for (const field of ['phase', 'podIP', 'podIPs', 'hostIP'] as const) {
    if (podStatus?.[field] !== undefined) status[field] = podStatus[field];
  }
  pod.spec = spec;
  pod.status = status;
}

const GATEWAY_KINDS: Record<string, { plural: string; versions: string[]; required: boolean }> = {
  GatewayClass: { plural: 'gatewayclasses', versions: ['v1'], required: true },
  Gateway: { plural: 'gateways', versions: ['v1'], required: true },
  HTTPRoute: { plural: 'httproutes', versions: ['v1'], required: true },
  ReferenceGrant: { plural: 'referencegrants', versions: ['v1', 'v1beta1'], required: true },
  ListenerSet: { plural: 'listenersets', versions: ['v1'], required: false },
  TLSRoute: { plural: 'tlsroutes', versions: ['v1', 'v1alpha3', 'v1alpha2'], required: false },
  GRPCRoute: { plural: 'grpcroutes', versions: ['v1'], required: false },
  // v1.6.1's standard channel serves v1; experimental-channel installs (and upstream's conformance manifests) use v1alpha2.
  TCPRoute: { plural: 'tcproutes', versions: ['v1', 'v1alpha2'], required: false },
  UDPRoute: { plural: 'udproutes', versions: ['v1', 'v1alpha2'], required: false },
  BackendTLSPolicy: { plural: 'backendtlspolicies', versions: ['v1', 'v1alpha3'], required: false },
};

const OTHER_KINDS: Record<string, Omit<KindApi, 'kind' | 'namespaced'>> = {
  Namespace: { group: '', versions: ['v1'], plural: 'namespaces', required: true },
  Service: { group: '', versions: ['v1'], plural: 'services', required: true },
  Secret: {
    group: '',
    versions: ['v1'],
    plural: 'secrets',
    required: true,
    fieldSelector: SECRET_TYPES_EXCLUDED.map((t) => `type!=${t}`).join(','),
    keep: (s) => SECRET_TYPES_KEPT.has(String(s.type ?? 'Opaque')),
  },
  ConfigMap: { group: '', versions: ['v1'], plural: 'configmaps', required: true },
  Pod: { group: '', versions: ['v1'], plural: 'pods', required: true, trim: trimPod },
  EndpointSlice: { group: 'discovery.k8s.io', versions: ['v1'], plural: 'endpointslices', required: true },
  Ingress: { group: 'networking.k8s.io', versions: ['v1'], plural: 'ingresses', required: true },
  IngressClass: { group: 'networking.k8s.io', versions: ['v1'], plural: 'ingressclasses', required: true },
  NetworkPolicy: { group: 'networking.k8s.io', versions: ['v1'], plural: 'networkpolicies', required: true },
  RateLimitPolicy: { group: 'sluice.dev', versions: ['v1alpha1'], plural: 'ratelimitpolicies', required: false },
  CiliumNetworkPolicy: { group: 'cilium.io', versions: ['v2'], plural: 'ciliumnetworkpolicies', required: false },
  CiliumClusterwideNetworkPolicy: { group: 'cilium.io', versions: ['v2'], plural: 'ciliumclusterwidenetworkpolicies', required: false },
};

/** The API of every kind Sluice reads, in SNAPSHOT_FIELD_BY_KIND order. */
export const KIND_APIS: readonly KindApi[] = Object.keys(SNAPSHOT_FIELD_BY_KIND).map((kind): KindApi => {
  const gw = GATEWAY_KINDS[kind];
  const api = gw ? { group: GATEWAY_GROUP, ...gw } : OTHER_KINDS[kind];
  if (!api) throw new Error(`controller/sources/kinds.ts: no API entry for kind ${kind} (SNAPSHOT_FIELD_BY_KIND lists it)`);
  return { kind, namespaced: !CLUSTER_SCOPED_KINDS.has(kind), ...api };
});

/** `group/version`, or `version` for the core group. */
export function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

/** The collection path across all namespaces: `/api/v1/pods`, `/apis/<group>/<version>/<plural>`. */
export function collectionPath(api: KindApi, version: string): string {
  return `${groupVersionPath(api.group, version)}/${api.plural}`;
}

/** The discovery path of a group version: `/api/v1` or `/apis/<group>/<version>`. */
export function groupVersionPath(group: string, version: string): string {
  return group ? `/apis/${group}/${version}` : `/api/${version}`;
}
