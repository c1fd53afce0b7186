// The compiled form of HttpIR the proxy runs on. Everything a request needs is resolved here
// once: host indexes, regexes, header modifier lists, pickers, pools and metric children.
// A RouteTable is immutable once built (picker state and round-robin cursors aside, and a kept
// BackendTarget's endpoints, which a version that changes only them replaces in place); a reload
// builds a new one — reusing what it did not change — and swaps references, so in-flight requests
// finish on the table they began with.

import type { HttpListener, ListenerProtocol } from '../../ir/types.ts';
import type { FilterChain } from '../filters/chain.ts';
import type { RequestFlows } from '../flows/request-flows.ts';
import type { CorsPlan } from '../filters/cors.ts';
import type { RouteLimiter } from '../ratelimit/limiter.ts';
import type { HeaderModifierPlan } from '../filters/header-modifier.ts';
import type { RedirectPlan, Scheme } from '../filters/redirect.ts';
import type { DownstreamRejections, RequestMetrics } from '../metrics.ts';
import type { HostIndex } from '../router/host.ts';
import type { CompiledMatch } from '../router/match.ts';
import type { RouteIndex } from '../router/route-index.ts';
import type { CertificateSelector, ClientValidationPlan, TlsSettingsPlan } from '../tls/certificates.ts';
import type { BackendTarget } from '../upstream/backend.ts';
import type { SessionPlan } from '../upstream/session.ts';
import type { SmoothWeightedPicker } from '../upstream/weighted.ts';

export interface RouteTable {
  version: string;
  /** In IR order (sorted by name). */
  listeners: ListenerTable[];
  /** Pools and certificates this table uses: everything else can be released once it is live. */
  endpointKeys: ReadonlySet<string>;
  certificateKeys: ReadonlySet<string>;
  /** Non-fatal problems: each disabled a route, a backend reference or a certificate. */
  problems: CompileProblem[];
}

export interface CompileProblem {
  /** IR name of what is affected (route, listener, certificate secret). */
  subject: string;
  message: string;
}

export interface ListenerTable {
  name: string;
  /** The IR listener this was compiled from (bind address, port, protocol). */
  listener: HttpListener;
  protocol: ListenerProtocol;
  scheme: Scheme;
  /** The Gateway listener port: redirects derive from it, never from the bound port. */
  port: number;
  /** Added to the ports redirects derive (DataplaneOptions.redirectPortOffset). */
  redirectPortOffset: number;
  scopes: HostIndex<ScopeTable>;
  /** HTTPS only; null when no certificate could be loaded (the listener cannot be served). */
  certificates: CertificateSelector | null;
  /** HTTPS only: client certificates requested (and maybe required); null when not. */
  clientValidation: ClientValidationPlan | null;
  /** HTTPS only: the port's protocol versions and ciphers; null for HTTP. */
  tlsSettings: TlsSettingsPlan | null;
  /** Answers for requests that match no route (404). */
  notFound: RequestMetrics;
  /** Requests refused before routing (malformed or ambiguous HTTP). */
  rejections: DownstreamRejections;
  /** Request flow records (dataplane/flows); null: flows are off. */
  flows: RequestFlows | null;
}

export interface ScopeTable {
  name: string;
  /** The Gateway listener's hostname; null: any host. */
  hostname: string | null;
  virtualHosts: HostIndex<VirtualHostTable>;
  /** The scope's HSTS header (HTTPS), for the answers no route gives (404, 421); empty otherwise. */
  replyModifiers: readonly HeaderModifierPlan[];
  /** `<ns>/<name>` of the Gateway the listener belongs to (a ListenerSet's: its Gateway), for flows; null: Ingress. */
  gateway: string | null;
}

export interface VirtualHostTable {
  name: string;
  routes: CompiledRoute[];
  /** `routes` indexed by path: what the router searches (same answer as walking `routes` in order). */
  index: RouteIndex<CompiledRoute>;
}

export interface CompiledRoute {
  name: string;
  source: string;
  match: CompiledMatch;
  /** The route's CORS filter: preflights are answered before any backend is picked. */
  cors: CorsPlan | null;
  /** The route's rate limiter (RateLimitPolicy, Ingress annotation); null: not limited. */
  rateLimit: RouteLimiter | null;
  /** A GRPCRoute rule (IR `grpc`): gRPC calls only, UNAVAILABLE for an invalid backend, `grpc-timeout` honoured. */
  grpc: boolean;
  /** Upgrade protocols tunnelled after a 101 (IR `upgradeTypes`); others are served as plain requests. */
  upgradeTypes: ReadonlySet<string>;
  action: CompiledAction;
}

export type CompiledAction = ForwardPlan | RedirectActionPlan | DirectResponsePlan;

export interface ForwardPlan {
  type: 'Forward';
  /** Null when every weight is zero: the route answers 500. */
  picker: SmoothWeightedPicker<BackendChoice> | null;
  /** Metrics and response modifiers for the 500 when no backend can be picked. */
  noBackend: BackendChoice;
  /** Whole request, all attempts included; 0 = none. Expiry answers 504. */
  requestTimeoutMs: number;
  /** Each attempt at a backend; 0 = none. */
  backendTimeoutMs: number;
  retry: RetryPlan | null;
  /** Session persistence (IR Route.sessionPersistence): a valid token picks choice and endpoint; null: none. */
  session: SessionPlan<BackendChoice> | null;
}

export interface RetryPlan {
  /** Response codes worth another attempt; connection failures always are. */
  codes: ReadonlySet<number>;
  /** Attempts after the first. */
  attempts: number;
  backoffMs: number;
}

/** One WeightedBackend, with the route's filters and its own already concatenated. */
export interface BackendChoice {
  /** Null when the reference is invalid: its share answers 500. */
  backend: BackendTarget | null;
  filters: FilterChain;
  metrics: RequestMetrics;
}

export interface RedirectActionPlan {
  type: 'Redirect';
  redirect: RedirectPlan;
  responseModifiers: HeaderModifierPlan[];
  metrics: RequestMetrics;
}

export interface DirectResponsePlan {
  type: 'DirectResponse';
  status: number;
  body: Buffer | null;
  responseModifiers: HeaderModifierPlan[];
  metrics: RequestMetrics;
}
