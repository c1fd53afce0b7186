// The intermediate representation: the only contract between the controller
// (producer) and its consumers, the dataplane (`http`) and the BPF agent (`l4`).
//
// Everything here is plain, JSON-serialisable data. Names are deterministic and
// hierarchical (`httproute/<ns>/<name>/rule/<i>/match/<j>`) so golden diffs are
// stable and the dataplane can keep pools and buckets across reloads.

export interface IR {
  /** Content hash of `http` and `l4` (see ir/version.ts). */
  version: string;
  http: HttpIR;
  l4: L4IR;
}

/**
 * The object (and the part of it) an IR element was translated from. Consumers and status read
 * identities here; IR names are for stable diffs and pools, never parsed back.
 */
export interface Origin {
  kind: 'Gateway' | 'ListenerSet' | 'IngressClass' | 'Ingress' | 'HTTPRoute' | 'GRPCRoute' | 'TLSRoute' | 'TCPRoute' | 'UDPRoute' | 'RateLimitPolicy' | 'BackendTLSPolicy' | 'Service';
  /** Empty for cluster-scoped objects (the implicit Ingress IngressClass). */
  namespace: string;
  name: string;
  /** A listener's name (Gateway, ListenerSet), or a named HTTPRoute rule's name. */
  sectionName?: string;
  /** HTTPRoute: the rule's position in `spec.rules`. */
  ruleIndex?: number;
  /** A ListenerSet listener: the Gateway it attaches to. */
  parent?: Origin;
}

// ---------------------------------------------------------------- HTTP

export interface HttpIR {
  /** One entry per socket to listen on (address + port), sorted by name. */
  listeners: HttpListener[];
  /** Every backend any route references, keyed by IR name. */
  backends: Record<string, Backend>;
  /** TLS listeners (TLSRoute): connections picked by SNI, passed through or terminated per route. */
  passthrough?: PassthroughListener[];
  /** TCP listeners (TCPRoute): each connection forwarded to one backend picked by weight. */
  tcp?: ProxyListener[];
  /** UDP listeners (UDPRoute): each client address is a session with one backend picked by weight. */
  udp?: ProxyListener[];
  /** Rate-limit policies any route references (Route.rateLimit), keyed by IR name; absent when none. */
  rateLimits?: Record<string, RateLimitPolicy>;
}

export interface PassthroughListener {
  /** `<address>:<port>`. */
  name: string;
  /** The Gateway and ListenerSet listeners served on this socket. */
  origins: Origin[];
  /** The Gateway's client certificate for TLS backends of terminated routes (`spec.tls.backend`). */
  backendClientCertificate?: BackendClientCertificate;
  address: string;
  port: number;
  /** Most specific SNI first: exact names, then wildcards by length. No SNI or no match: the connection is closed. */
  routes: PassthroughRoute[];
}

export interface PassthroughRoute {
  /** `tlsroute/<ns>/<name>/host/<hostname>`. */
  name: string;
  origin: Origin;
  /** Exact or `*.` wildcard (Gateway API semantics). */
  hostname: string;
  /** Weighted split over backends (keys into HttpIR.backends; null = invalid reference). */
  backends: WeightedBackend[];
  /**
   * The route attached to a TLS listener in Terminate mode: the gateway ends TLS with the listener's
   * certificates and settings and forwards the plaintext stream. Absent: passthrough.
   */
  terminate?: ListenerTls;
}

/** A TCP or UDP socket (TCPRoute, UDPRoute): no hostnames, one route served. */
export interface ProxyListener {
  /** `<address>:<port>` (TCP) or `udp/<address>:<port>` (UDP: the same port number is another socket). */
  name: string;
  /** The Gateway or ListenerSet listener served on this socket. */
  origin: Origin;
  address: string;
  port: number;
  /** The oldest route attached; absent when none is (connections are closed, datagrams dropped). */
  route?: ProxyRoute;
}

export interface ProxyRoute {
  /** `tcproute/<ns>/<name>` or `udproute/<ns>/<name>`. */
  name: string;
  origin: Origin;
  /** Weighted split over backends (keys into HttpIR.backends; null = invalid reference, its share is refused). */
  backends: WeightedBackend[];
}

export type ListenerProtocol = 'HTTP' | 'HTTPS';

export interface HttpListener {
  /** `<address>:<port>`. */
  name: string;
  /** Address to bind (a Gateway's own address, or the shared bind address). */
  address: string;
  /** The Gateway listener port. Redirects derive ports from it; the dataplane may add an offset when binding. */
  port: number;
  protocol: ListenerProtocol;
  /** HTTPS only: certificates chosen by SNI; the first one is the fallback for clients without SNI. */
  tls?: ListenerTls;
  /**
   * One scope per Gateway listener bound to this socket. A request is served by the scope whose
   * hostname matches its Host most specifically (exact, then longest wildcard, then no hostname).
   */
  scopes: ListenerScope[];
}

export interface ListenerTls {
  certificates: TlsCertificate[];
  /**
   * Frontend client-certificate validation for this port (Gateway `spec.tls.frontend`, default or
   * per port). Absent: no client certificate is requested.
   */
  clientValidation?: ClientValidation;
  /**
   * Protocol versions and TLS 1.2 ciphers for the whole port: OpenSSL settles them before the SNI
   * callback picks a certificate, so they cannot differ per hostname. Absent: the intermediate profile.
   */
  settings?: TlsSettings;
}

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** What a TLS port offers (Gateway listener `tls.options`, resolved against a profile; see ir/tls-profiles.ts). */
export interface TlsSettings {
  /** The Mozilla server-side TLS profile the settings start from. */
  profile: TlsProfileName;
  minVersion: TlsVersion;
  maxVersion: TlsVersion;
  /** OpenSSL names of the TLS 1.2 suites, in preference order; TLS 1.3 suites are always OpenSSL's defaults. */
  ciphers: string[];
}

export type TlsProfileName = 'modern' | 'intermediate';

export interface ClientValidation {
  /** PEM CA certificates a client certificate must chain to. */
  caCertificates: string[];
  /**
   * AllowValidOnly: the handshake fails without a valid client certificate.
   * AllowInsecureFallback: a certificate is requested but connections without a valid one are still served.
   */
  mode: 'AllowValidOnly' | 'AllowInsecureFallback';
}

export interface TlsCertificate {
  /** `<scope name>/certificate/<i>`: unique per listener and reference. */
  name: string;
  /** The Secret it came from, `secret/<ns>/<name>`. */
  secret: string;
  /** SNI names this certificate is selected for (`*.example.com` allowed); empty = any. */
  hostnames: string[];
  certPem: string;
  keyPem: string;
  /** sha256 of cert+key: the dataplane caches SecureContexts by it; golden output shows this, not the key. */
  hash: string;
}

export interface ListenerScope {
  /** `gateway/<ns>/<name>/listener/<listenerName>`. */
  name: string;
  /** The listener this scope serves. */
  origin: Origin;
  /** The Gateway listener's hostname, or null when it has none (matches any host). */
  hostname: string | null;
  /**
   * HTTPS only: a Strict-Transport-Security value (listener `tls.options` `sluice.dev/hsts`) set on
   * every response of this scope's routes. Absent: no HSTS header is added.
   */
  hsts?: string;
  /** The Gateway's client certificate for TLS backends (`spec.tls.backend`); absent: none is presented. */
  backendClientCertificate?: BackendClientCertificate;
  /** The Gateway's access log switch (annotations `sluice.dev/access-log`, `-fields`); absent: `--access-log` decides. */
  accessLog?: AccessLogSetting;
  /** Sorted most specific first: exact names, then wildcards by length, then `*`. */
  virtualHosts: VirtualHost[];
}

export interface AccessLogSetting {
  /** Lines for this Gateway's requests (to `--access-log`'s sink, stdout without it), or none even when the flag is on; absent: the flag decides. */
  enabled?: boolean;
  /** The fields of its lines (ACCESS_LOG_FIELDS of ir/flow.ts); absent: `--access-log-fields`. */
  fields?: string[];
}

export interface VirtualHost {
  /** `<scope name>/host/<hostname>`. */
  name: string;
  /** `example.com`, `*.example.com` or `*` (any). */
  hostname: string;
  /**
   * Ingress semantics: the wildcard matches exactly one label (`*.foo.com` matches `a.foo.com`, not
   * `a.b.foo.com`). Absent: Gateway API semantics, one or more labels.
   */
  singleLabelWildcard?: boolean;
  /** Already sorted by Gateway API precedence: the first route that matches wins. */
  routes: Route[];
}

export interface Route {
  /** `httproute/<ns>/<name>/rule/<i>/match/<j>`. */
  name: string;
  /** The HTTPRoute this came from, `<ns>/<name>`, for metrics and logs. */
  source: string;
  /** The HTTPRoute rule (or Ingress) this came from. */
  origin: Origin;
  match: RouteMatch;
  /** Applied in order before the action. */
  filters: Filter[];
  action: RouteAction;
  /** HTTPRoute rule `timeouts`, in milliseconds; absent or 0 = no timeout. */
  timeouts?: { requestMs?: number; backendRequestMs?: number };
  /** HTTPRoute rule `retry`. */
  retry?: RetryPolicy;
  /** HTTPRoute or GRPCRoute rule `sessionPersistence` (GEP-1619); absent: every request is load balanced. */
  sessionPersistence?: SessionPersistence;
  /** The rate-limit policy in force for this route (the most specific one attached); absent: none. */
  rateLimit?: RouteRateLimit;
  /**
   * HTTP/1.1 upgrade protocols (lower-case tokens, e.g. `websocket`, `spdy/3.1`) this route tunnels
   * once the backend answers 101; an upgrade to any other is served as a plain request. Absent:
   * DEFAULT_UPGRADE_TYPES (ir/upgrades.ts). `h2c` is never tunnelled.
   */
  upgradeTypes?: string[];
  /**
   * A GRPCRoute rule: only gRPC requests (HTTP/2, `content-type: application/grpc`) are served, an
   * invalid backend share answers UNAVAILABLE, and `grpc-timeout` bounds the exchange. Absent: HTTP.
   */
  grpc?: true;
}

export interface RetryPolicy {
  /** Response codes that are retried; connection errors (refused, reset, no response) always are. */
  codes: number[];
  /** Retries after the first attempt. */
  attempts: number;
  /** Wait before each retry, in milliseconds. */
  backoffMs: number;
}

/**
 * Sticky sessions (GEP-1619). A request carrying a valid token of this rule goes to the endpoint the
 * token names while the endpoint is in the backend (the token beats the weights, weight 0 included);
 * any other request is load balanced and its response carries a new token naming the endpoint that
 * answered. Tokens are opaque and signed by the dataplane (never an address in the clear).
 */
export interface SessionPersistence {
  /** Cookie: `Set-Cookie` / `Cookie`; Header: the same header both ways. */
  type: 'Cookie' | 'Header';
  /** The cookie's name, or the header's (lower-case): `sessionName`, or one generated per rule. */
  name: string;
  /** The rule the sessions belong to (`<kind>/<ns>/<name>/rule/<i>`): another rule's token is never honoured. */
  scope: string;
  /** A session ends this long after it started (its token names the start); absent: never. */
  absoluteTimeoutMs?: number;
  /** Cookie only. Permanent: `Max-Age` is the absolute timeout; Session: neither `Max-Age` nor `Expires`. */
  cookieLifetime?: 'Session' | 'Permanent';
  /** Cookie only: its `Path`, from the route's path match (GEP-1619 "Path"). */
  cookiePath?: string;
}

export interface CorsPolicy {
  /** `*`, exact origins (`https://a.com`) or wildcard hosts (`https://*.a.com`). */
  allowOrigins: string[];
  allowCredentials: boolean;
  /** Upper-case methods, or `*`. */
  allowMethods: string[];
  /** Lower-case header names, or `*`. */
  allowHeaders: string[];
  exposeHeaders: string[];
  /** Seconds; absent means the spec default of 5. */
  maxAge?: number;
}

export interface RouteMatch {
  path: PathMatch;
  headers: HeaderMatch[];
  queryParams: QueryParamMatch[];
  /** Upper-case HTTP method, or absent for any. */
  method?: string;
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';

export interface PathMatch {
  type: PathMatchType;
  value: string;
}

export type StringMatchType = 'Exact' | 'RegularExpression';

export interface HeaderMatch {
  /** Lower-case header name. */
  name: string;
  type: StringMatchType;
  value: string;
}

export interface QueryParamMatch {
  /** Exact (case-sensitive) parameter name. */
  name: string;
  type: StringMatchType;
  value: string;
}

export interface HeaderModifier {
  /** Lower-case names. `set` replaces, `add` appends, `remove` deletes. */
  set: HeaderValue[];
  add: HeaderValue[];
  remove: string[];
}

export interface HeaderValue {
  name: string;
  value: string;
}

export type Filter =
  | { type: 'RequestHeaderModifier'; modifier: HeaderModifier }
  | { type: 'ResponseHeaderModifier'; modifier: HeaderModifier }
  /** Rewrites what the backend sees; ReplacePrefixMatch replaces the route's PathPrefix match. */
  | { type: 'URLRewrite'; hostname?: string; path?: PathModifier }
  /**
   * Sends a copy of the request (after the filters before it) to another backend and ignores the
   * answer. `percent` is 0–100 (may be fractional); `backend` null when the reference is invalid.
   */
  | { type: 'RequestMirror'; backend: string | null; percent: number }
  /** Answers preflights itself and adds CORS headers to responses for allowed origins. */
  | { type: 'CORS'; cors: CorsPolicy }
  /** Backend-level redirect (a RequestRedirect filter on a backendRef). */
  | { type: 'RequestRedirect'; redirect: RedirectAction };

export type PathModifier = { type: 'ReplaceFullPath'; value: string } | { type: 'ReplacePrefixMatch'; value: string };

export type RouteAction = ForwardAction | RedirectAction | DirectResponseAction;

export interface ForwardAction {
  type: 'Forward';
  /** Weighted split. A backend with weight 0 never receives traffic. All weights 0 => 500. */
  backends: WeightedBackend[];
}

export interface WeightedBackend {
  /** Key into HttpIR.backends, or null when the reference is invalid (its share answers 500). */
  backend: string | null;
  weight: number;
  /** Per-backendRef filters (request header modifiers). */
  filters: Filter[];
}

export interface RedirectAction {
  type: 'Redirect';
  /** Absent fields keep the request's own value (the port is derived per the spec, see dataplane/filters). */
  scheme?: 'http' | 'https';
  hostname?: string;
  port?: number;
  path?: PathModifier;
  statusCode: number;
}

export interface DirectResponseAction {
  type: 'DirectResponse';
  status: number;
  body?: string;
}

export type AppProtocol = 'http' | 'h2c' | 'ws';

export interface Backend {
  /** `service/<ns>/<name>/port/<port>`. */
  name: string;
  /** The Service port this came from, `<ns>/<name>:<port>`, for metrics and logs (absent from older controllers). */
  source?: string;
  appProtocol: AppProtocol;
  /** Ready endpoints; empty => the dataplane answers 503 at once. */
  endpoints: Endpoint[];
  /** TLS to the endpoints (a BackendTLSPolicy targets this Service port); absent: plaintext. */
  tls?: BackendTls;
}

/** How the gateway speaks TLS to a backend (BackendTLSPolicy `spec.validation`). */
export interface BackendTls {
  /** The BackendTLSPolicy in force. */
  origin: Origin;
  /** SNI sent, and the name the certificate must carry when `subjectAltNames` is empty. */
  serverName: string;
  /** CA certificates the backend's chain must end in; absent: the system roots (wellKnownCACertificates: System). */
  caCertificates?: BackendCaCertificate[];
  /** Not empty: the certificate must carry one of these SANs, and `serverName` is only the SNI. */
  subjectAltNames: BackendSubjectAltName[];
  /**
   * The policy is not usable (Accepted=False, e.g. no valid CA certificate): no connection is made,
   * never a plaintext one; requests to the backend answer 503. The text says why.
   */
  refused?: string;
  /** sha256 of the settings above: connections are pooled per endpoint and hash, so a new CA opens new ones. */
  hash: string;
}

export interface BackendCaCertificate {
  /** Where it came from: `configmap/<ns>/<name>` or `secret/<ns>/<name>`. */
  source: string;
  pem: string;
}

export interface BackendSubjectAltName {
  type: 'Hostname' | 'URI';
  value: string;
}

/** The certificate the gateway presents to TLS backends that ask for one (Gateway `spec.tls.backend.clientCertificateRef`). */
export interface BackendClientCertificate {
  /** The Secret it came from, `secret/<ns>/<name>`. */
  secret: string;
  certPem: string;
  keyPem: string;
  /** sha256 of cert+key: pools are keyed by it; golden output shows this, not the key. */
  hash: string;
}

export interface Endpoint {
  address: string;
  port: number;
}

// ---------------------------------------------------------------- Rate limits

export interface RouteRateLimit {
  /** Key into HttpIR.rateLimits. */
  policy: string;
  /**
   * Buckets of rules that are not `shared` are per route: this is the route's part of their key
   * (the HTTPRoute or Ingress `<ns>/<name>`). Shared rules ignore it.
   */
  partition: string;
}

/** A RateLimitPolicy (or an Ingress `sluice.dev/rate-limit` annotation) compiled for the dataplane. */
export interface RateLimitPolicy {
  /** `ratelimitpolicy/<ns>/<name>`, or `ingress/<ns>/<name>/rate-limit`. */
  name: string;
  /** `<ns>/<name>` of the object it came from: the `policy` metric label. */
  source: string;
  /** The RateLimitPolicy or the annotated Ingress. */
  origin: Origin;
  /** Token buckets; a request is admitted only when every applicable enforced rule has a token for it. */
  rules: RateLimitRule[];
  /** What Global rules do when Redis cannot answer in time. */
  failureMode: RateLimitFailureMode;
  /** Which address is the client's, for SourceCIDR selectors. */
  clientIP: ClientIPDetection;
  responseHeaders: RateLimitResponseHeaders;
}

export type RateLimitFailureMode = 'FailOpen' | 'FailClosed' | 'Local';

export interface ClientIPDetection {
  /**
   * 0: the peer address. N > 0: walk X-Forwarded-For from the right, at most N entries, for as
   * long as the address that handed the request on is a trusted proxy.
   */
  trustedHops: number;
  /** CIDRs of trusted proxies; empty: every peer is trusted (the gateway is only reachable through proxies). */
  trustedProxies: string[];
}

export interface RateLimitResponseHeaders {
  /** `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10) on every governed response. */
  draft10: boolean;
  /** Legacy `X-RateLimit-Limit/-Remaining/-Reset` (as Envoy's draft-03 headers). */
  legacy: boolean;
}

export interface RateLimitRule {
  /** Quota name shown in the RateLimit headers and the `rule` metric label. */
  name: string;
  /** Local: one bucket per dataplane process. Global: one bucket shared through Redis. */
  scope: 'Local' | 'Global';
  /** Every condition must hold for the rule to apply; Distinct conditions also split buckets by value. */
  selectors: RateLimitSelector[];
  /** Refill: `requests` tokens every `unitSeconds`, continuously. */
  requests: number;
  unitSeconds: number;
  /** Bucket size and initial content (default `requests`). */
  burst: number;
  /** One bucket across every route the policy governs instead of one per route. */
  shared: boolean;
  /** Decide and count, but never reject. */
  shadowMode: boolean;
  /** Hash of the rule's content, part of every bucket key: a changed rule starts with full buckets. */
  hash: string;
}

export type RateLimitSelector =
  /** `name` lower-case. Exact/RegularExpression: a condition (`invert` negates it). Distinct: one bucket per value; absent header: rule does not apply. */
  | { type: 'Header'; name: string; match: 'Exact' | 'RegularExpression' | 'Distinct'; value?: string; invert: boolean }
  /** The client address within any of `cidrs`. Exact: one bucket for them all; Distinct: one per address. */
  | { type: 'SourceCIDR'; match: 'Exact' | 'Distinct'; cidrs: string[] }
  /** Upper-case methods; any of them. */
  | { type: 'Method'; methods: string[] }
  | { type: 'Path'; match: PathMatchType; value: string; invert: boolean };

// ---------------------------------------------------------------- L4 (BPF agent)

export interface L4IR {
  /** Service VIPs and the endpoints behind them, sorted by name. */
  services: L4Service[];
  /**
   * L3/L4 network policy for traffic from the gateway to backends. Absent when no
   * NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy exists: nothing is enforced.
   */
  policy?: L4Policy;
}

export interface L4Service {
  /** `service/<ns>/<name>/port/<port>`; the same name as the HTTP backend for that Service port. */
  name: string;
  /** The Service (flows name it). */
  origin: Origin;
  vip: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  /**
   * random: each connection draws a slot of the weighted Maglev table.
   * client: a client (network namespace + cgroup) always lands on the same endpoint while it exists
   * (Service `spec.sessionAffinity: ClientIP`).
   */
  affinity: 'random' | 'client';
  /** Ready endpoints, sorted by address then port; weights are relative (1 unless something says otherwise). */
  endpoints: L4Endpoint[];
}

export interface L4Endpoint {
  address: string;
  port: number;
  weight: number;
}

/** Reserved identities, numbered as Cilium numbers them. */
export const IDENTITY_ANY = 0;
export const IDENTITY_HOST = 1;
/** A destination in no ipcache prefix (outside every known endpoint and policy CIDR). */
export const IDENTITY_WORLD = 2;
/** The gateway itself: the source of every connection the BPF programs govern. */
export const IDENTITY_INGRESS = 8;

export interface L4Policy {
  /** Every identity an ipcache entry or a rule refers to, sorted by id. */
  identities: L4Identity[];
  /** Destination address → identity, longest prefix wins; sorted by cidr. Endpoints are /32. */
  ipcache: L4IpcacheEntry[];
  /** Identities that are in default deny for a direction (selected by a policy), sorted by identity. */
  enforcement: L4Enforcement[];
  /** Rules as written in policies (one per ingress/egress/deny section), sorted by id; ids start at 1. */
  rules: L4Rule[];
  /** Allow and deny entries, one per (direction, local, remote, protocol, port range); sorted. */
  entries: L4PolicyEntry[];
  /**
   * L7 HTTP rules (Cilium `toPorts[].rules.http`), enforced by the proxy on each request to an
   * endpoint; one per (direction, identity) that some L7 rule governs, sorted. Absent: none.
   */
  http?: HttpPolicy[];
}

/**
 * What the allow rules covering the gateway grant one identity at L7. A request to an endpoint of
 * `identity` on port P is checked against the HTTP rules of the grants whose ports take in P,
 * unless one of those grants is L4-only (`http` null: every request, as in Cilium). No grant takes
 * in P: L7 has no say (L3/L4 decides in the kernel).
 */
export interface HttpPolicy {
  /** ingress: rules of policies selecting the destination endpoint; egress: the gateway's rules towards it. */
  direction: 'ingress' | 'egress';
  /** ingress: the endpoint's identity; egress: the destination's, or IDENTITY_ANY for every destination. */
  identity: number;
  /** Audit mode for the governed identity: denied requests are forwarded and recorded AUDIT. */
  audit: boolean;
  grants: HttpPolicyGrant[];
}

export interface HttpPolicyGrant {
  /** L4Rule id of the section. */
  rule: number;
  /** Inclusive TCP destination port range; absent = every port. */
  ports?: { from: number; to: number };
  /** A request passes when one rule matches; null: L4-only (every request); empty: none passes. */
  http: HttpPolicyRule[] | null;
}

/** One `rules.http[]` entry. RE2 regexes matching the whole value (as Cilium's Envoy: safe_regex, a full match). */
export interface HttpPolicyRule {
  /** Against the method. */
  method?: string;
  /** Against the request target as sent upstream, query included (Envoy's `:path`). */
  path?: string;
  /** Against the Host (`:authority`) as sent upstream. */
  host?: string;
  /** Each must be present, with this exact value when one is given (`headers`, and `headerMatches` without a mismatch action). */
  headers: HttpPolicyHeader[];
  /** `headerMatches` with a mismatch action: the rule still matches on a mismatch, after the action. */
  headerActions: (HttpPolicyHeader & { mismatch: 'LOG' | 'ADD' | 'DELETE' | 'REPLACE' })[];
}

export interface HttpPolicyHeader {
  /** Lower-case. */
  name: string;
  value?: string;
  /** `<ns>/<name>` of the Secret the value came from: redacted wherever the IR is shown. */
  secret?: string;
}

export interface L4Identity {
  id: number;
  /**
   * What the identity stands for, as sorted `source:key=value` labels: `k8s:app=web`,
   * `k8s:io.kubernetes.pod.namespace=default`, `reserved:ingress`, `cidr:10.0.0.0/8`.
   */
  labels: string[];
  /** The Kubernetes namespace of the endpoints that carry it (absent for reserved and CIDR identities). */
  namespace?: string;
}

export interface L4IpcacheEntry {
  /** `a.b.c.d/len`. */
  cidr: string;
  identity: number;
  /** `<ns>/<name>` of the one known Pod with this address (a /32 endpoint), for flows. */
  pod?: string;
}

export interface L4Enforcement {
  identity: number;
  /** Ingress default deny: the identity is a destination some ingress policy selects. */
  ingress: boolean;
  /** Egress default deny: the identity is a source (the gateway) some egress policy selects. */
  egress: boolean;
  /** Audit mode (annotation `sluice.dev/policy-audit-mode: "true"` on a selecting policy): verdicts are reported, nothing is dropped. */
  audit: boolean;
}

export interface L4Rule {
  id: number;
  /** `<kind>/<ns>/<name>/<ingress|egress|ingressDeny|egressDeny>/<i>` (no namespace for clusterwide policies). */
  name: string;
}

export interface L4PolicyEntry {
  direction: 'ingress' | 'egress';
  action: 'allow' | 'deny';
  /** ingress: the destination endpoint's identity; egress: the gateway's identity. */
  local: number;
  /** ingress: the gateway's identity or IDENTITY_ANY; egress: the destination's identity or IDENTITY_ANY. */
  remote: number;
  /** ANY matches every protocol (and then every port). */
  protocol: 'TCP' | 'UDP' | 'SCTP' | 'ANY';
  /** Inclusive destination port range; absent = every port. */
  ports?: { from: number; to: number };
  /** L4Rule id that produced the entry. */
  rule: number;
}
