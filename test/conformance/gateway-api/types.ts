// Shapes of suite.json and cases/*.json (schemas gwapi-conformance-suite/v1
// and gwapi-conformance-case/v1). schema.ts checks them strictly first.

export interface Condition {
  type: string;
  /** null = any */
  status: string | null;
  /** null = any */
  reason: string | null;
}

export interface ListenerExpectation {
  name: string;
  supportedKinds: { group?: string | null; kind: string }[];
  attachedRoutes: number;
  conditions: Condition[];
}

export const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute', 'UDPRoute'] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];
/** The kind of every route a route check names; HTTPRoute when absent. */
export interface RouteKindField {
  routeKind?: RouteKind;
}

export type StatusCheck =
  | ({
      check: 'parentAndRoutesAccepted';
      parentKind: 'Gateway' | 'ListenerSet';
      parent: string;
      listenerNames: string[] | null;
      routes: string[];
      requireGatewayAddress: boolean;
      /** false: the listeners' conditions are not looked at (upstream's TLSRoute helper). */
      checkListeners?: boolean;
    } & RouteKindField)
  | ({ check: 'routeCondition'; route: string; parent: string; condition: Condition } & RouteKindField)
  | ({ check: 'routeParents'; route: string; namespaceRequired: boolean; parents: { parentRef: { group: string; kind: string; name: string; namespace?: string | null }; conditions: Condition[] }[] } & RouteKindField)
  | ({ check: 'routeHasNoAcceptedParents'; route: string } & RouteKindField)
  | { check: 'gatewayCondition'; gateway: string; condition: Condition }
  | { check: 'gatewayConditionsAtLatestGeneration'; gateway: string }
  | { check: 'gatewayListenersExact'; gateway: string; listeners: ListenerExpectation[] }
  | { check: 'gatewayListenerConditions'; gateway: string; listeners: string[]; conditions: Condition[] }
  | { check: 'gatewayHasZeroRoutes'; gateway: string }
  | { check: 'gatewayHasAddress'; gateway: string; listener?: string | null }
  | { check: 'gatewayAttachedListenerSets'; gateway: string; count: number }
  | { check: 'namespacesReady'; namespaces: string[] }
  | { check: 'listenerSetCondition'; listenerSet: string; condition: Condition }
  | { check: 'listenerSetListenersExact'; listenerSet: string; listeners: ListenerExpectation[] }
  | { check: 'listenerSetListenerConditions'; listenerSet: string; listeners: string[]; conditions: Condition[] }
  | { check: 'gatewayClassAccepted'; gatewayClass: string; status: string | null }
  | { check: 'gatewayClassConditionsAtLatestGeneration'; gatewayClass: string }
  | ({ check: 'routeConditionsAtLatestGeneration'; route: string } & RouteKindField)
  | { check: 'generationIncreased'; kind: string; object: string }
  | { check: 'backendTLSPolicyCondition'; policy: string; ancestor: string; condition: Condition }
  | { check: 'backendTLSPolicyConditionsAtLatestGeneration'; policy: string }
  | { check: 'gatewayStatusAddresses'; gateway: string; count: number; mustContain: { type: string; value: string }[]; mustNotContain: string[] };

export type StatusCheckKind = StatusCheck['check'];

export interface TlsRequest {
  serverName: string;
  trustCertificateFrom: string;
  clientCertificateFrom: string | null;
}

export interface HttpRequestSpec {
  method: string;
  host: string | null;
  path: string;
  headers: Record<string, string>;
  protocol: 'HTTP/1.1' | 'HTTP/1.1+TLS' | 'h2' | 'h2c-prior-knowledge';
  followRedirects: boolean;
  tls?: TlsRequest | null;
}

export interface WebSocketRequestSpec {
  url: string;
  origin?: string | null;
  host: string | null;
  headers?: Record<string, string>;
}

export interface Target {
  gateway: string;
  port: number;
  scheme: 'http' | 'https';
}

export interface BackendRequestExpectation {
  path?: string | null;
  method?: string | null;
  host?: string | null;
  headers?: Record<string, string>;
  absentHeaders?: string[];
  /** The backend was reached over TLS with this SNI; peerCertificateFrom: the gateway presented that Secret's certificate. */
  tls?: { serverName: string; peerCertificateFrom?: string | null } | null;
}

export interface ResponseExpectation {
  headers?: Record<string, string>;
  headersOneOf?: Record<string, string[]>;
  absentHeaders?: string[];
  ignoreWhitespace?: boolean;
}

export interface MirrorExpectation {
  service: string;
  namespace: string;
  percent: number | null;
}

export interface RedirectExpectation {
  scheme?: string | null;
  host?: string | null;
  port?: string | number | null;
  path?: string | null;
}

export interface WsFrame {
  type: 'text' | 'binary';
  data?: string;
  bytes?: number[];
}

export interface Expectation {
  status?: number[] | null;
  notStatus?: number[] | null;
  backend?: { podNamePrefix: string; namespace: string } | null;
  backendRequest?: BackendRequestExpectation | null;
  answeredByGateway?: boolean;
  response?: ResponseExpectation | null;
  mirroredTo?: MirrorExpectation[] | null;
  redirect?: RedirectExpectation | null;
  transportError?: boolean;
  weights?: Record<string, number>;
  exchanges?: { send: WsFrame; receive: WsFrame }[];
  header?: string;
  /** backendHeaderMatchesPod: the backend saw exactly one value of `header` (checked unless false). */
  exactlyOneValue?: boolean;
  /** backendHeaderMatchesPod: the echo pod name starts with that value (checked unless false). */
  podNameMustStartWithHeaderValue?: boolean;
}

export interface Distribution {
  totalRequests?: number;
  concurrency?: number;
  absoluteTolerance?: number;
  maxAttempts?: number;
  backendFromPodName?: string;
  zeroWeightBackendsMustGetNoTraffic?: boolean;
  batchRequests?: number;
  maxBatches?: number;
  toleranceStdDevs?: number;
  requestIdPerBatch?: string;
  requests?: number;
}

export type CaseKind = 'weightedDistribution' | 'percentageMirror' | 'backendHeaderMatchesPod' | 'websocket' | 'tlsConnectionFailure';

export interface HttpCase {
  name: string;
  kind?: CaseKind;
  target: Target;
  request: HttpRequestSpec & Partial<WebSocketRequestSpec>;
  expect: Expectation;
  echoSetResponseHeaders?: Record<string, string>;
  placeholders?: Record<string, string>;
  uniqueRequestIdQueryParam?: string;
  note?: string;
  randomJitter?: { header: string; note?: string };
  distribution?: Distribution;
  header?: string;
  /** backendHeaderMatchesPod: how many sequential requests (suite README; upstream 100). */
  repeat?: number;
}

/** A ConfigMap/Secret data value: a literal, or the current value of a key of another object. */
export type DataValue = string | { copyFrom: { kind: 'ConfigMap' | 'Secret'; object: string; key: string } };

export interface PatchOrDeleteMutation {
  op: 'delete' | 'patch';
  apiVersion?: string;
  kind: string;
  namespace?: string;
  name: string;
  set?: Record<string, unknown>;
  appendTo?: Record<string, unknown>;
  keepOnly?: Record<string, unknown>;
  removeWhere?: Record<string, unknown>;
  setData?: Record<string, DataValue>;
}

/** Adds a complete object (its data values may be DataValues) after waiting `waitBeforeSeconds`. */
export interface CreateMutation {
  op: 'create';
  object: Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };
  waitBeforeSeconds?: number;
}

export type MutationSpec = PatchOrDeleteMutation | CreateMutation;

export interface RunnerAction {
  action: 'fillEndpointSlices';
  endpointSlices: string[];
  from: string;
  note?: string;
}

export interface FollowUp {
  description: string;
  mutations: MutationSpec[];
  statusChecks: StatusCheck[];
  cases: TestCase[];
}

/** A connection to `<gateway address>:<port>` carrying TLS without HTTP, or plain TCP. */
export interface L4Target {
  gateway: string;
  port: number;
  scheme: 'tls' | 'tcp';
}

/** Per attempt deadline and retry pacing of the L4 cases (defaults: 10 s; every 100 ms for 30 s). */
interface L4Attempts {
  note?: string;
  attemptTimeoutSeconds?: number;
  retry?: { intervalSeconds: number; budgetSeconds: number } | null;
}

/** One exchange with an echo-basic TCP backend (suite README, `tcpEcho`). */
export interface TcpEchoCase extends L4Attempts {
  name: string;
  kind: 'tcpEcho';
  target: L4Target;
  /** Only for scheme tls: the SNI (also the verified name) and the ConfigMap whose ca.crt is the only root. */
  request?: { tls: { serverName: string; trustCACertificateFrom: string } };
  expect: {
    backendIsTLS: boolean;
    backend: { podNamePrefix: string; namespace: string };
    backendTLS: { serverName: string } | null;
  };
}

/** The gateway must close or reset the TLS connection without an alert (suite README). */
export interface TlsConnectionRejectedCase extends L4Attempts {
  name: string;
  kind: 'tlsConnectionRejected';
  target: L4Target;
  request: { tls: { serverName: string } };
}

/** A Gateway listener reached with UDP datagrams. */
export interface UdpTarget {
  gateway: string;
  port: number;
  scheme: 'udp';
}

/** One datagram to a UDP echo backend (suite README, `udpEcho`). */
export interface UdpEchoCase extends L4Attempts {
  name: string;
  kind: 'udpEcho';
  target: UdpTarget;
  request: { payload: string };
  expect: { anyReply: true } | { backend: { service: string; namespace: string } };
}

/** One DNS query through a UDP listener (suite README, `dnsQuery`). */
export interface DnsQueryCase extends L4Attempts {
  name: string;
  kind: 'dnsQuery';
  target: UdpTarget;
  request: { name: string; type: string; recursionDesired: boolean };
  expect: { anyResponse: true };
}

/** `repeat` sequential exchanges that must all reach one backend (suite README, `echoRepeat`). */
export interface EchoRepeatCase extends L4Attempts {
  name: string;
  kind: 'echoRepeat';
  target: { gateway: string; port: number; scheme: 'tcp' | 'udp' };
  request?: { payload: string };
  repeat: number;
  onTransportError: 'fail' | 'retryRound';
  expect: { backendName: string };
}

export type WarmUpStep = 'tcpConnect' | 'tcpEchoOnce' | 'udpAnyReply';

/** weightedDistribution over TCP or UDP: each request is one echoRepeat exchange. */
export interface L4WeightedCase extends L4Attempts {
  name: string;
  kind: 'weightedDistribution';
  target: { gateway: string; port: number; scheme: 'tcp' | 'udp' };
  request?: { payload: string };
  warmUp?: WarmUpStep[];
  expect: { weights: Record<string, number> };
  distribution?: Distribution;
}

export type L4Case = TcpEchoCase | TlsConnectionRejectedCase | UdpEchoCase | DnsQueryCase | EchoRepeatCase | L4WeightedCase;

/** A unary RPC of the GrpcEcho service over cleartext HTTP/2 (suite README, "gRPC cases"). */
export interface GrpcRequestSpec {
  protocol: 'grpc';
  /** null: `<gateway address>:<port>`. */
  authority: string | null;
  service: string;
  method: string;
  metadata: Record<string, string>;
}

export interface GrpcExpectation {
  grpcCode?: string;
  notGrpcCode?: string[];
  backend?: { podNamePrefix: string; namespace: string } | null;
  backendRequest?: { fullyQualifiedMethod?: string | null } | null;
  weights?: Record<string, number>;
}

export interface GrpcCase {
  name: string;
  kind?: 'weightedDistribution';
  target: { gateway: string; port: number; scheme: 'http' };
  request: GrpcRequestSpec;
  expect: GrpcExpectation;
  randomJitter?: { metadata: string; note?: string };
  connectionPerRequest?: boolean;
  distribution?: Distribution;
  note?: string;
}

export type TestCase = HttpCase | L4Case | GrpcCase;

const L4_KINDS = new Set(['tcpEcho', 'tlsConnectionRejected', 'udpEcho', 'dnsQuery', 'echoRepeat']);

/** The L4 kinds, and weightedDistribution over a tcp or udp target. */
export function isL4Case(c: TestCase): c is L4Case {
  if (typeof c.kind === 'string' && L4_KINDS.has(c.kind)) return true;
  return c.kind === 'weightedDistribution' && (c.target.scheme === 'tcp' || c.target.scheme === 'udp');
}

export function isGrpcCase(c: TestCase): c is GrpcCase {
  return (c as { request?: { protocol?: unknown } }).request?.protocol === 'grpc';
}

/** How the runner rewrites a Gateway's spec.addresses (suite README, "Static addresses"). */
export interface StaticAddressInjection {
  gateway: string;
  placeholders: { usable: string; unusable: string };
  usable: { type: string; choose: string; substitutes: string };
  unusable: { type: string; choose: string; substitutes: string };
  resultOrder: { type: string; value: string }[];
}

export interface Feature {
  name: string;
  goConstant?: string;
  level?: string;
  channel?: string;
  profile?: string;
}

export interface CaseFile {
  schema: string;
  name: string;
  upstream?: unknown;
  summary?: string;
  features: Feature[];
  /** Upstream returns early (a pass without checks) unless these hold for the claimed features. */
  runWhen?: { supported: string[]; notSupported: string[] };
  provisional?: boolean;
  parallel?: boolean;
  manifests: string[];
  staticAddressInjection?: StaticAddressInjection;
  gateways?: string[];
  statusChecks: StatusCheck[];
  runnerActionsBeforeCases?: RunnerAction[];
  cases: TestCase[];
  followUp?: FollowUp[];
  notes?: string[];
}

export interface EchoBackendInstance {
  namespace: string;
  deployment: string;
  replicas: number;
  service: string;
  servicePorts: { name?: string; port: number; targetPort: number; appProtocol?: string; protocol?: string }[];
  /** echo-basic mode (suite.json echoBackends.modes); absent = http. */
  mode?: 'http' | 'grpc' | 'tcp' | 'udp' | 'dns';
  /** Container ports by name when they differ from the suite-wide ones (tcp: {tcp, tls}). */
  containerPorts?: Record<string, number>;
  /** Secret ns/name whose tls.crt/tls.key the backend serves on its TLS port. */
  tlsCertificateFrom?: string;
  clientCACertificateFrom?: string | null;
  note?: string;
}

export interface GeneratedObject {
  kind: 'Secret' | 'ConfigMap';
  type?: string;
  namespace: string;
  name: string;
  how?: string;
  subjectAltNames?: { dns?: string[]; uri?: string[]; ip?: string[] };
  upstreamHosts?: string[];
  data?: Record<string, string>;
  usedBy?: string;
}

export interface SuiteFile {
  schema: string;
  baseManifests: string;
  placeholders: Record<string, string>;
  namespaces: { name: string; labels?: Record<string, string> }[];
  generatedObjects: GeneratedObject[];
  caCertificateShape?: string;
  echoBackends: {
    instances: EchoBackendInstance[];
    containerPorts: { http: number; h2c: number; https: number };
  };
  convergence: {
    requiredConsecutiveSuccesses: number;
    defaultPollIntervalMs: number;
    maxTimeToConsistencySeconds: number;
    requestTimeoutSeconds: number;
    statusTimeoutsSeconds: Record<string, number>;
  };
  [k: string]: unknown;
}
