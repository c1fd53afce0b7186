// HttpIR → RouteTable. Problems confined to one route, backend reference or certificate are
// recorded and disable only that piece; anything thrown out of here rejects the whole version
// (the caller keeps the last good table).

import type { Backend, BackendClientCertificate, Filter, HeaderModifier, HttpIR, HttpListener, ListenerScope, Origin, Route, RouteAction, VirtualHost } from '../../ir/types.ts';
import { DEFAULT_UPGRADE_TYPES } from '../../ir/upgrades.ts';
import { compileFilterChain, concatChains, EMPTY_CHAIN, type FilterChain } from '../filters/chain.ts';
import { compileHeaderModifier } from '../filters/header-modifier.ts';
import { compileRedirect } from '../filters/redirect.ts';
import type { DataplaneMetrics } from '../metrics.ts';
import type { RateLimitTable } from '../ratelimit/limiter.ts';
import { HostIndex } from '../router/host.ts';
import { compileMatch, type MatchProblem } from '../router/match.ts';
import { RouteIndex } from '../router/route-index.ts';
import {
  cacheKey,
  CertificateSelector,
  compileClientValidation,
  compileTlsSettings,
  type CertificateProblem,
  type SecureContextCache,
} from '../tls/certificates.ts';
import type { EndpointPolicy, HttpPolicyIndex } from '../policy/http-policy.ts';
import type { RequestFlows } from '../flows/request-flows.ts';
import { BackendTarget, BackendTargets } from '../upstream/backend.ts';
import type { UpstreamEndpoint, UpstreamPools } from '../upstream/pools.ts';
import { SessionPlan } from '../upstream/session.ts';
import { weightedPicker, type PickerStateGeneration } from '../upstream/weighted.ts';
import type {
  BackendChoice,
  CompiledAction,
  CompiledRoute,
  CompileProblem,
  ListenerTable,
  RetryPlan,
  RouteTable,
  ScopeTable,
  VirtualHostTable,
} from './route-table.ts';

export interface CompileContext {
  pools: UpstreamPools;
  certificates: SecureContextCache;
  pickerStates: PickerStateGeneration;
  metrics: DataplaneMetrics;
  /** This version's rate-limit policies (RateLimitService.compile); absent: nothing is limited. */
  rateLimits?: RateLimitTable;
  /** DataplaneOptions.redirectPortOffset; 0 when absent. */
  redirectPortOffset?: number;
  /** L7 network policy (ir.l4.policy.http); absent or null: none. */
  httpPolicy?: HttpPolicyIndex | null;
  /** This version's request flow recorder; absent or null: flows are off. */
  flows?: RequestFlows | null;
  /** Signs and checks session persistence tokens (DataplaneOptions.sessionKey); absent: routes with sessions are load balanced, with a problem. */
  sessionKey?: Buffer;
}

export function compileRouteTable(version: string, http: HttpIR, context: CompileContext): RouteTable {
  const problems: CompileProblem[] = [];
  const endpointKeys = new Set<string>();
  const certificateKeys = new Set<string>();

  const backends = new BackendTargets(http.backends ?? {}, (backend, client) => compileBackend(backend, client, context, endpointKeys, problems));
  for (const key of Object.keys(http.backends ?? {})) backends.get(key);

  const compiler = new TableCompiler(context, backends, http.backends ?? {}, problems);
  const listeners = http.listeners.map((listener) => {
    const table = compiler.listener(listener);
    if (table.tlsSettings !== null) {
      for (const certificate of listener.tls?.certificates ?? []) certificateKeys.add(cacheKey(certificate, table.clientValidation, table.tlsSettings));
    }
    return table;
  });

  return { version, listeners, endpointKeys, certificateKeys, problems };
}

function compileBackend(backend: Backend, client: BackendClientCertificate | undefined, context: CompileContext, endpointKeys: Set<string>, problems: CompileProblem[]): BackendTarget {
  const endpoints: UpstreamEndpoint[] = [];
  const tls = backend.tls;
  if (tls?.refused !== undefined) {
    // Never plaintext instead: no endpoint, every request answers 503.
    problems.push({ subject: backend.name, message: `${tls.refused}; requests answer 503` });
    return new BackendTarget(backend.name, []);
  }
  let policies: Map<string, EndpointPolicy> | null = null;
  for (const endpoint of backend.endpoints) {
    try {
      const upstream = context.pools.acquire(endpoint, backend.appProtocol, tls ? { settings: tls, client } : undefined);
      endpointKeys.add(upstream.key);
      endpoints.push(upstream);
      const policy = context.httpPolicy?.forEndpoint(endpoint.address, endpoint.port) ?? null;
      if (policy !== null) (policies ??= new Map()).set(upstream.key, policy);
    } catch (err) {
      // An address or port no connection pool takes (a hand-written EndpointSlice): that endpoint
      // is left out, not the whole version.
      problems.push({ subject: backend.name, message: `endpoint ${endpoint.address}:${endpoint.port} is unusable (${(err as Error).message}); left out` });
    }
  }
  return new BackendTarget(backend.name, endpoints, policies);
}

class TableCompiler {
  private readonly context: CompileContext;
  private readonly backends: BackendTargets;
  /** The scope being compiled's client certificate for TLS backends (its Gateway's spec.tls.backend). */
  private clientCertificate: BackendClientCertificate | undefined;
  /** Whether the listener being compiled is HTTPS (session cookies are Secure there). */
  private https = false;
  /** The IR backends, for the per-backend metrics' labels. */
  private readonly irBackends: Readonly<Record<string, Backend>>;
  private readonly problems: CompileProblem[];

  constructor(context: CompileContext, backends: BackendTargets, irBackends: Readonly<Record<string, Backend>>, problems: CompileProblem[]) {
    this.context = context;
    this.backends = backends;
    this.irBackends = irBackends;
    this.problems = problems;
  }

  listener(listener: HttpListener): ListenerTable {
    const https = listener.protocol === 'HTTPS';
    const scopes = new HostIndex<ScopeTable>();
    for (const scope of listener.scopes) scopes.add(scope.hostname, this.scope(scope, https));

    let certificates: CertificateSelector | null = null;
    const clientValidation = https ? compileClientValidation(listener.tls?.clientValidation) : null;
    const tlsSettings = https ? compileTlsSettings(listener.tls?.settings) : null;
    if (tlsSettings !== null) {
      const certificateProblems: CertificateProblem[] = [];
      certificates = CertificateSelector.build(listener.tls, clientValidation, tlsSettings, this.context.certificates, certificateProblems);
      for (const problem of certificateProblems) this.problems.push({ subject: problem.certificate, message: `certificate unusable: ${problem.message}` });
    }

    return {
      name: listener.name,
      listener,
      protocol: listener.protocol,
      scheme: listener.protocol === 'HTTPS' ? 'https' : 'http',
      port: listener.port,
      redirectPortOffset: this.context.redirectPortOffset ?? 0,
      scopes,
      certificates,
      clientValidation,
      tlsSettings,
      notFound: this.context.metrics.requestMetrics('', ''),
      rejections: this.context.metrics.downstreamRejections(listener.name),
      flows: this.context.flows ?? null,
    };
  }

  private scope(scope: ListenerScope, https: boolean): ScopeTable {
    this.clientCertificate = scope.backendClientCertificate;
    this.https = https;
    // HSTS is a response header modifier appended to each route's own filters: every answer a
    // route gives (backend, redirect, direct response, error) carries it, and so do the scope's
    // 404 and 421; never on plain HTTP.
    const hsts: HeaderModifier | null =
      https && scope.hsts !== undefined ? { set: [{ name: 'strict-transport-security', value: scope.hsts }], add: [], remove: [] } : null;
    const routeFilters: Filter[] = hsts === null ? [] : [{ type: 'ResponseHeaderModifier', modifier: hsts }];
    const virtualHosts = new HostIndex<VirtualHostTable>();
    for (const virtualHost of scope.virtualHosts) {
      virtualHosts.add(virtualHost.hostname, this.virtualHost(virtualHost, routeFilters), virtualHost.singleLabelWildcard === true);
    }
    return {
      name: scope.name,
      hostname: scope.hostname === '*' ? null : scope.hostname,
      virtualHosts,
      replyModifiers: hsts === null ? [] : [compileHeaderModifier(hsts)],
      gateway: gatewayOf(scope.origin),
    };
  }

  private virtualHost(virtualHost: VirtualHost, scopeFilters: Filter[]): VirtualHostTable {
    const routes = virtualHost.routes.map((route) => this.route(scopeFilters.length === 0 ? route : { ...route, filters: [...route.filters, ...scopeFilters] }));
    return { name: virtualHost.name, routes, index: new RouteIndex(routes) };
  }

  private route(route: Route): CompiledRoute {
    const matchProblems: MatchProblem[] = [];
    const match = compileMatch(route.match, matchProblems);
    for (const problem of matchProblems) {
      this.problems.push({ subject: route.name, message: `${problem.field}: ${problem.message}; the route never matches` });
    }
    const filters = this.filterChain(route, route.filters);
    return { name: route.name, source: route.source, match, cors: filters.cors, rateLimit: this.context.rateLimits?.forRoute(route) ?? null, grpc: route.grpc === true, upgradeTypes: route.upgradeTypes === undefined ? DEFAULT_UPGRADES : new Set(route.upgradeTypes), action: this.action(route, route.action, filters) };
  }

  private filterChain(route: Route, filters: Route['filters']): FilterChain {
    const messages: string[] = [];
    const chain = compileFilterChain(filters, route.match.path, (name) => this.backends.get(name, this.clientCertificate), messages);
    for (const message of messages) this.problems.push({ subject: route.name, message });
    return chain;
  }

  private action(route: Route, action: RouteAction, filters: FilterChain): CompiledAction {
    const metrics = this.context.metrics;
    switch (action.type) {
      case 'Forward': {
        const candidates = action.backends.map((weighted, index) => {
          let backend: BackendTarget | null = null;
          if (weighted.backend !== null) {
            backend = this.backends.get(weighted.backend, this.clientCertificate);
            if (backend === null) this.problems.push({ subject: route.name, message: `backend ${weighted.backend} is not in the IR; its share answers 500` });
          }
          const irBackend = backend === null ? undefined : this.irBackends[backend.name];
          const choice: BackendChoice = {
            backend,
            filters: concatChains(filters, this.filterChain(route, weighted.filters)),
            metrics: metrics.requestMetrics(route.name, weighted.backend ?? '', irBackend && { route, backend: irBackend }),
          };
          return { item: choice, weight: weighted.weight, id: `${index}:${weighted.backend ?? ''}` };
        });
        return {
          type: 'Forward',
          picker: weightedPicker(route.name, candidates, this.context.pickerStates),
          noBackend: { backend: null, filters, metrics: metrics.requestMetrics(route.name, '') },
          requestTimeoutMs: positive(route.timeouts?.requestMs),
          backendTimeoutMs: positive(route.timeouts?.backendRequestMs),
          retry: compileRetry(route),
          session: this.session(route, candidates),
        };
      }
      case 'Redirect': {
        let statusCode = action.statusCode;
        if (!(statusCode >= 300 && statusCode <= 399)) {
          this.problems.push({ subject: route.name, message: `redirect status ${statusCode} is not 3xx; using 302` });
          statusCode = 302;
        }
        return {
          type: 'Redirect',
          redirect: compileRedirect({ ...action, statusCode }, route.match.path),
          responseModifiers: filters.responseModifiers,
          metrics: metrics.requestMetrics(route.name, ''),
        };
      }
      case 'DirectResponse': {
        let status = action.status;
        if (!(Number.isInteger(status) && status >= 200 && status <= 599)) {
          this.problems.push({ subject: route.name, message: `direct response status ${status} is invalid; using 500` });
          status = 500;
        }
        return {
          type: 'DirectResponse',
          status,
          body: action.body === undefined ? null : Buffer.from(action.body),
          responseModifiers: filters.responseModifiers,
          metrics: metrics.requestMetrics(route.name, ''),
        };
      }
      default:
        // A newer IR than this dataplane knows: fail the one route loudly, not the whole table.
        this.problems.push({ subject: route.name, message: `unknown action type ${JSON.stringify((action as RouteAction).type)}; the route answers 500` });
        return { type: 'DirectResponse', status: 500, body: null, responseModifiers: EMPTY_CHAIN.responseModifiers, metrics: metrics.requestMetrics(route.name, '') };
    }
  }

  /** Every endpoint of every valid share, weight 0 included, as the route's session targets. */
  private session(route: Route, candidates: { item: BackendChoice }[]): SessionPlan<BackendChoice> | null {
    const spec = route.sessionPersistence;
    if (spec === undefined) return null;
    const key = this.context.sessionKey;
    if (key === undefined) {
      this.problems.push({ subject: route.name, message: 'session persistence needs a session key, which this dataplane was not given; requests are load balanced without sessions' });
      return null;
    }
    const targets = [];
    for (const { item } of candidates) if (item.backend !== null) targets.push({ choice: item, backend: item.backend.name, endpoints: item.backend.endpoints });
    return new SessionPlan(spec, key, targets, this.https);
  }
}

/** One set for every route that says nothing (most): a set per rule is memory at 50 000 rules. */
const DEFAULT_UPGRADES: ReadonlySet<string> = new Set(DEFAULT_UPGRADE_TYPES);

function positive(milliseconds: number | undefined): number {
  return milliseconds !== undefined && Number.isFinite(milliseconds) && milliseconds > 0 ? milliseconds : 0;
}

function compileRetry(route: Route): RetryPlan | null {
  const retry = route.retry;
  if (retry === undefined || !(retry.attempts > 0)) return null;
  return { codes: new Set(retry.codes), attempts: Math.floor(retry.attempts), backoffMs: positive(retry.backoffMs) };
}

/** `<ns>/<name>` of the Gateway a listener belongs to (a ListenerSet's parent), null for Ingress. */
function gatewayOf(origin: Origin): string | null {
  const gateway = origin.kind === 'ListenerSet' ? origin.parent : origin;
  return gateway?.kind === 'Gateway' ? `${gateway.namespace}/${gateway.name}` : null;
}
