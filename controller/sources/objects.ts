// Kubernetes object shapes Sluice reads. Only the fields translation uses are
// typed; everything arrives as parsed YAML/JSON, so every field is optional
// and translation validates what it relies on.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
  data?: Record<string, string>;
  [field: string]: unknown;
}

/** The input of translation: plain arrays of objects, nothing below calls out. */
export interface InputSnapshot {
  namespaces: KubeObject[];
  gatewayClasses: KubeObject[];
  gateways: KubeObject[];
  listenerSets: KubeObject[];
  httpRoutes: KubeObject[];
  tlsRoutes: KubeObject[];
  ingresses: KubeObject[];
  ingressClasses: KubeObject[];
  referenceGrants: KubeObject[];
  services: KubeObject[];
  endpointSlices: KubeObject[];
  secrets: KubeObject[];
  configMaps: KubeObject[];
  /** sluice.dev RateLimitPolicy objects. */
  rateLimitPolicies: KubeObject[];
  /** Pods: labels, IPs and container ports, for network policy identities. */
  pods: KubeObject[];
  /** networking.k8s.io/v1 NetworkPolicy. */
  networkPolicies: KubeObject[];
  /** cilium.io/v2 CiliumNetworkPolicy. */
  ciliumNetworkPolicies: KubeObject[];
  /** cilium.io/v2 CiliumClusterwideNetworkPolicy (cluster-scoped). */
  ciliumClusterwideNetworkPolicies: KubeObject[];
}

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** Which snapshot array each kind goes to; kinds not listed are not read by Sluice. */
export const SNAPSHOT_FIELD_BY_KIND: Record<string, keyof InputSnapshot> = {
  Namespace: 'namespaces',
  GatewayClass: 'gatewayClasses',
  Gateway: 'gateways',
  ListenerSet: 'listenerSets',
  HTTPRoute: 'httpRoutes',
  TLSRoute: 'tlsRoutes',
  Ingress: 'ingresses',
  IngressClass: 'ingressClasses',
  ReferenceGrant: 'referenceGrants',
  Service: 'services',
  EndpointSlice: 'endpointSlices',
  Secret: 'secrets',
  ConfigMap: 'configMaps',
  RateLimitPolicy: 'rateLimitPolicies',
  Pod: 'pods',
  NetworkPolicy: 'networkPolicies',
  CiliumNetworkPolicy: 'ciliumNetworkPolicies',
  CiliumClusterwideNetworkPolicy: 'ciliumClusterwideNetworkPolicies',
};

/** Kinds that Kubernetes does not namespace. */
export const CLUSTER_SCOPED_KINDS = new Set(['Namespace', 'GatewayClass', 'IngressClass', 'CiliumClusterwideNetworkPolicy']);

/**
 * Kinds whose `status` is input rather than something Sluice writes: a Pod's IPs, and a Service's
 * load-balancer addresses (the dataplane Service's become Gateway and Ingress addresses in Kubernetes mode).
 */
export const STATUS_INPUT_KINDS = new Set(['Pod', 'Service']);

export function emptySnapshot(): InputSnapshot {
  return {
    namespaces: [],
    gatewayClasses: [],
    gateways: [],
    listenerSets: [],
    httpRoutes: [],
    tlsRoutes: [],
    ingresses: [],
    ingressClasses: [],
    referenceGrants: [],
    services: [],
    endpointSlices: [],
    secrets: [],
    configMaps: [],
    rateLimitPolicies: [],
    pods: [],
    networkPolicies: [],
    ciliumNetworkPolicies: [],
    ciliumClusterwideNetworkPolicies: [],
  };
}

/** `Kind/namespace/name`, or `Kind/name` for cluster-scoped kinds. */
export function objectKey(obj: Pick<KubeObject, 'kind' | 'metadata'>): string {
  const ns = obj.metadata.namespace;
  return ns ? `${obj.kind}/${ns}/${obj.metadata.name}` : `${obj.kind}/${obj.metadata.name}`;
}

/** `namespace/name` (or `name`), the form used in logs, IR sources and the conformance data. */
export function namespacedName(obj: Pick<KubeObject, 'metadata'>): string {
  const ns = obj.metadata.namespace;
  return ns ? `${ns}/${obj.metadata.name}` : obj.metadata.name;
}
