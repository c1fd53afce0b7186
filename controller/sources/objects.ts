// Kubernetes object shapes Sluice reads. A KubeObject is any kind, its spec and status unknown; the
// InputSnapshot holds each kind as a KindObject with its kind's spec and status types (the custom
// resources' generated from their CRDs, the core kinds' from @kubernetes/client-node): an object
// reaches the snapshot only after its kind's schema accepted it (standalone: controller/schema/validate.ts;
// Kubernetes mode: the API server), which is what makes those types sound.
import type {
  DiscoveryV1EndpointPort,
  V1Endpoint,
  V1IngressClassSpec,
  V1IngressSpec,
  V1IngressStatus,
  V1NetworkPolicySpec,
  V1PodSpec,
  V1PodStatus,
  V1ServiceSpec,
  V1ServiceStatus,
} from '@kubernetes/client-node';
import type { BackendTLSPolicy, Gateway, GatewayClass, GRPCRoute, HTTPRoute, ListenerSet, RateLimitPolicy, ReferenceGrant, TCPRoute, TLSRoute, UDPRoute } from '../schema/generated/crd-types.ts';

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
  spec?: unknown;
  status?: unknown;
  data?: Record<string, string>;
  [field: string]: unknown;
}

/** A custom resource: spec and status as its CRD's generated type says (every CRD Sluice reads requires a spec). */
interface CustomResource<T extends { spec: unknown; status?: unknown }> extends KubeObject {
  spec: T['spec'];
  status?: T['status'];
}

/** A core kind: spec and status as @kubernetes/client-node types them (both optional, as there). */
interface CoreObject<Spec, Status = unknown> extends KubeObject {
  spec?: Spec;
  status?: Status;
}

export type GatewayClassObject = CustomResource<GatewayClass>;
export type GatewayObject = CustomResource<Gateway>;
export type ListenerSetObject = CustomResource<ListenerSet>;
export type HTTPRouteObject = CustomResource<HTTPRoute>;
export type TLSRouteObject = CustomResource<TLSRoute>;
export type GRPCRouteObject = CustomResource<GRPCRoute>;
export type TCPRouteObject = CustomResource<TCPRoute>;
export type UDPRouteObject = CustomResource<UDPRoute>;
export type ReferenceGrantObject = CustomResource<ReferenceGrant>;
export type RateLimitPolicyObject = CustomResource<RateLimitPolicy>;
export type BackendTLSPolicyObject = CustomResource<BackendTLSPolicy>;
export type IngressObject = CoreObject<V1IngressSpec, V1IngressStatus>;
export type IngressClassObject = CoreObject<V1IngressClassSpec>;
export type ServiceObject = CoreObject<V1ServiceSpec, V1ServiceStatus>;
export type PodObject = CoreObject<V1PodSpec, V1PodStatus>;
export type NetworkPolicyObject = CoreObject<V1NetworkPolicySpec>;

/** An EndpointSlice has no spec: its fields sit at the top level (as in client-node's V1EndpointSlice). */
export interface EndpointSliceObject extends KubeObject {
  addressType?: string;
  endpoints?: V1Endpoint[];
  ports?: DiscoveryV1EndpointPort[];
}

/** The input of translation: plain arrays of objects, nothing below calls out. */
export interface InputSnapshot {
  namespaces: KubeObject[];
  gatewayClasses: GatewayClassObject[];
  gateways: GatewayObject[];
  listenerSets: ListenerSetObject[];
  httpRoutes: HTTPRouteObject[];
  tlsRoutes: TLSRouteObject[];
  grpcRoutes: GRPCRouteObject[];
  tcpRoutes: TCPRouteObject[];
  udpRoutes: UDPRouteObject[];
  ingresses: IngressObject[];
  ingressClasses: IngressClassObject[];
  referenceGrants: ReferenceGrantObject[];
  services: ServiceObject[];
  endpointSlices: EndpointSliceObject[];
  secrets: KubeObject[];
  configMaps: KubeObject[];
  /** sluice.dev RateLimitPolicy objects. */
  rateLimitPolicies: RateLimitPolicyObject[];
  /** BackendTLSPolicy: TLS from the gateway to the Services they target. */
  backendTlsPolicies: BackendTLSPolicyObject[];
  /** Pods: labels, IPs and container ports, for network policy identities. */
  pods: PodObject[];
  /** networking.k8s.io/v1 NetworkPolicy. */
  networkPolicies: NetworkPolicyObject[];
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
  GRPCRoute: 'grpcRoutes',
  TCPRoute: 'tcpRoutes',
  UDPRoute: 'udpRoutes',
  Ingress: 'ingresses',
  IngressClass: 'ingressClasses',
  ReferenceGrant: 'referenceGrants',
  Service: 'services',
  EndpointSlice: 'endpointSlices',
  Secret: 'secrets',
  ConfigMap: 'configMaps',
  RateLimitPolicy: 'rateLimitPolicies',
  BackendTLSPolicy: 'backendTlsPolicies',
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

/**
 * The snapshot's arrays as plain KubeObject arrays, for the sources that fill them: each puts an object
 * in its kind's array only after the kind's schema accepted it, which is what the per-kind types rest on.
 */
export function snapshotArrays(snapshot: InputSnapshot): Record<keyof InputSnapshot, KubeObject[]> {
  return snapshot;
}

export function emptySnapshot(): InputSnapshot {
  return {
    namespaces: [],
    gatewayClasses: [],
    gateways: [],
    listenerSets: [],
    httpRoutes: [],
    tlsRoutes: [],
    grpcRoutes: [],
    tcpRoutes: [],
    udpRoutes: [],
    ingresses: [],
    ingressClasses: [],
    referenceGrants: [],
    services: [],
    endpointSlices: [],
    secrets: [],
    configMaps: [],
    rateLimitPolicies: [],
    backendTlsPolicies: [],
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
