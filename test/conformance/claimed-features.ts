// The ONE list of Gateway API conformance features Sluice claims. A test of
// the suite is skipped exactly when one of its `features[].name` is missing
// here; the skip line names the missing feature(s). Extend it as features land.

export const CLAIMED_FEATURES = [
  'Gateway',
  'HTTPRoute',
  'ReferenceGrant',
  'GatewayPort8080',
  'GatewayAddressEmpty',
  'GatewayFrontendClientCertificateValidation',
  'HTTPRoute303RedirectStatusCode',
  'HTTPRoute308RedirectStatusCode',
  'HTTPRouteBackendProtocolH2C',
  'HTTPRouteBackendProtocolWebSocket',
  'HTTPRouteCORS',
  'HTTPRouteParentRefPort',
  'HTTPRouteMethodMatching',
  'HTTPRouteNamedRouteRule',
  'HTTPRouteQueryParamMatching',
  'HTTPRoutePathRedirect',
  'HTTPRoutePortRedirect',
  'HTTPRouteSchemeRedirect',
  'HTTPRouteRequestMirror',
  'HTTPRouteRequestPercentageMirror',
  'HTTPRouteResponseHeaderModification',
  'HTTPRouteRetry',
  'HTTPRouteRetryConnectionError',
  'HTTPRoutePathRewrite',
  'HTTPRouteRequestTimeout',
  'ListenerSet',
  'TLSRoute',
] as const;

export type ClaimedFeature = (typeof CLAIMED_FEATURES)[number];

/**
 * Claimed, but only in the experimental channel of the Gateway API CRDs: the `--target kubernetes`
 * cluster installs the v1.6.1 standard channel, whose HTTPRoute has no `spec.rules[].retry`, so the
 * API server refuses these tests' routes. That target does not claim them (the skip line says so).
 */
export const EXPERIMENTAL_CHANNEL_FEATURES: readonly ClaimedFeature[] = ['HTTPRouteRetry', 'HTTPRouteRetryConnectionError'];
