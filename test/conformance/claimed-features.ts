// The ONE list of Gateway API conformance features Sluice claims, by the upstream feature names
// (pkg/features of kubernetes-sigs/gateway-api, recorded in ./upstream-features.json). A test of
// the suite is skipped exactly when one of its `features[].name` is missing here; the skip line
// names the missing feature(s). Every upstream feature is either claimed or listed in NOT_CLAIMED
// with the reason (claimed-features.test.ts holds both to the upstream list and to the README).

import { readFileSync } from 'node:fs';

export interface UpstreamFeature {
  name: string;
  channel: 'standard' | 'experimental';
  /** Core or Extended when the upstream set holding the feature says so. */
  level: 'Core' | 'Extended' | null;
  /** The pkg/features set that holds it, e.g. HTTPRouteExtendedFeatures. */
  set: string;
  /** False: only on upstream main (the commit the shared cases were translated from), not in v1.6.1. */
  inV1_6_1: boolean;
}

export interface UpstreamFeatureList {
  schema: 'sluice-upstream-features/v1';
  repository: string;
  release: { tag: string; commit: string };
  mainCommit: string;
  features: UpstreamFeature[];
}

export const UPSTREAM_FEATURES_FILE = new URL('./upstream-features.json', import.meta.url);

export function loadUpstreamFeatures(): UpstreamFeatureList {
  return JSON.parse(readFileSync(UPSTREAM_FEATURES_FILE, 'utf8')) as UpstreamFeatureList;
}

export const CLAIMED_FEATURES = [
  // Gateway
  'Gateway',
  'GatewayAddressEmpty',
  'GatewayBackendClientCertificate',
  'GatewayFrontendClientCertificateValidation',
  'GatewayFrontendClientCertificateValidationInsecureFallback',
  'GatewayHTTPSListenerDetectMisdirectedRequests',
  'GatewayHTTPListenerIsolation',
  'GatewayPort8080',
  'GatewayStaticAddresses',
  'ListenerSet',
  'ReferenceGrant',
  // BackendTLSPolicy (TLS to Services of HTTPRoute, GRPCRoute and terminated TLSRoute backends)
  'BackendTLSPolicy',
  'BackendTLSPolicySANValidation',
  // HTTPRoute
  'HTTPRoute',
  'HTTPRoute303RedirectStatusCode',
  'HTTPRoute307RedirectStatusCode',
  'HTTPRoute308RedirectStatusCode',
  'HTTPRouteBackendProtocolH2C',
  'HTTPRouteBackendProtocolWebSocket',
  'HTTPRouteBackendRequestHeaderModification',
  'HTTPRouteBackendRequestRedirect',
  'HTTPRouteBackendTimeout',
  'HTTPRouteBackendURLRewrite',
  'HTTPRouteCORS',
  'HTTPRouteDestinationPortMatching',
  'HTTPRouteHostRewrite',
  'HTTPRouteMethodMatching',
  'HTTPRouteNamedRouteRule',
  'HTTPRouteParentRefPort',
  'HTTPRoutePathRedirect',
  'HTTPRoutePathRewrite',
  'HTTPRoutePortRedirect',
  'HTTPRouteQueryParamMatching',
  'HTTPRouteRequestMirror',
  'HTTPRouteRequestMultipleMirrors',
  'HTTPRouteRequestPercentageMirror',
  'HTTPRouteRequestTimeout',
  'HTTPRouteResponseHeaderModification',
  'HTTPRouteRetry',
  'HTTPRouteRetryBackendTimeout',
  'HTTPRouteRetryConnectionError',
  'HTTPRouteSchemeRedirect',
  // GRPCRoute (h2c and h2 by ALPN on HTTP/HTTPS listeners)
  'GRPCRoute',
  'GRPCRouteNamedRouteRule',
  'GRPCRouteRequestHeaderModifier',
  // TLSRoute (passthrough, terminate, both on one port), TCPRoute, UDPRoute
  'TLSRoute',
  'TLSRouteModeTerminate',
  'TLSRouteModeMixed',
  'TCPRoute',
  'UDPRoute',
] as const;

export type ClaimedFeature = (typeof CLAIMED_FEATURES)[number];

const MESH = 'Sluice is a gateway, not a mesh: it reads no Service parentRefs (GAMMA)';

/** Every upstream feature Sluice does not claim, and why. */
export const NOT_CLAIMED: Readonly<Record<string, string>> = {
  GatewayInfrastructurePropagation: 'Sluice provisions no per-Gateway infrastructure to carry spec.infrastructure labels and annotations',
  Mesh: MESH,
  MeshClusterIPMatching: MESH,
  MeshConsumerRoute: MESH,
  MeshHTTPRouteBackendRequestHeaderModification: MESH,
  MeshHTTPRouteNamedRouteRule: MESH,
  MeshHTTPRouteQueryParamMatching: MESH,
  MeshHTTPRouteRedirectPath: MESH,
  MeshHTTPRouteRedirectPort: MESH,
  MeshHTTPRouteRewritePath: MESH,
  MeshHTTPRouteSchemeRedirect: MESH,
};
