// The types of what translation reads, by kind and by part: the custom resources' from their CRDs
// (generated/crd-types.ts, `npm run gen:types`), the core kinds' from @kubernetes/client-node.
//
// An object translation sees has passed its schema (standalone: controller/schema/validate.ts;
// Kubernetes mode: the API server), so reading `obj.spec` as its kind's spec type is sound. Fields
// with a schema default may still be absent (standalone hands translation the object as written),
// which these types say: such fields are optional.
import type {
  V1HTTPIngressPath,
  V1IngressBackend,
  V1IngressRule,
  V1IngressServiceBackend,
  V1ServicePort,
} from '@kubernetes/client-node';
import type { Gateway, GRPCRoute, HTTPRoute, ListenerSet, ReferenceGrant, TLSRoute } from './generated/crd-types.ts';

export type { Gateway, GatewayClass, GRPCRoute, HTTPRoute, ListenerSet, RateLimitPolicy, ReferenceGrant, TLSRoute } from './generated/crd-types.ts';

type Item<T> = T extends readonly (infer U)[] ? U : never;

export type GatewaySpec = Gateway['spec'];
export type Listener = Item<GatewaySpec['listeners']> | Item<ListenerSet['spec']['listeners']>;
export type ListenerTLS = NonNullable<Listener['tls']>;
export type CertificateRef = Item<ListenerTLS['certificateRefs']>;
export type FrontendValidation = NonNullable<NonNullable<GatewaySpec['tls']>['frontend']>;
export type RouteGroupKind = Item<NonNullable<Listener['allowedRoutes']>['kinds']>;

export type HTTPRouteSpec = HTTPRoute['spec'];
export type ParentRef = Item<HTTPRouteSpec['parentRefs']> | Item<TLSRoute['spec']['parentRefs']>;
export type HTTPRouteRule = Item<HTTPRouteSpec['rules']>;
export type HTTPRouteMatch = Item<HTTPRouteRule['matches']>;
export type HTTPRouteFilter = Item<HTTPRouteRule['filters']>;
export type HTTPBackendRef = Item<HTTPRouteRule['backendRefs']>;
export type BackendRef = HTTPBackendRef | Item<Item<TLSRoute['spec']['rules']>['backendRefs']>;
export type HTTPHeaderModifier = NonNullable<HTTPRouteFilter['requestHeaderModifier']>;
export type HTTPHeader = Item<HTTPHeaderModifier['set']>;
export type HTTPRequestRedirect = NonNullable<HTTPRouteFilter['requestRedirect']>;
export type HTTPPathModifier = NonNullable<HTTPRequestRedirect['path']>;
export type HTTPRequestMirror = NonNullable<HTTPRouteFilter['requestMirror']>;
export type HTTPCors = NonNullable<HTTPRouteFilter['cors']>;
export type HTTPRouteTimeouts = NonNullable<HTTPRouteRule['timeouts']>;
export type HTTPRouteRetry = NonNullable<HTTPRouteRule['retry']>;

export type GRPCRouteRule = Item<GRPCRoute['spec']['rules']>;
export type GRPCRouteMatch = Item<GRPCRouteRule['matches']>;
export type GRPCRouteFilter = Item<GRPCRouteRule['filters']>;
export type GRPCBackendRef = Item<GRPCRouteRule['backendRefs']>;

export type ReferenceGrantFrom = Item<ReferenceGrant['spec']['from']>;
export type ReferenceGrantTo = Item<ReferenceGrant['spec']['to']>;

export type { V1ServicePort as ServicePort };
export type { V1IngressRule as IngressRule, V1HTTPIngressPath as IngressPath, V1IngressBackend as IngressBackend, V1IngressServiceBackend as IngressServiceBackend };
