// HttpIR → RouteTable, incrementally (RouteTableCompiler). Problems confined to one route, backend
// reference or certificate are recorded and disable only that piece; anything thrown out of here
// rejects the whole version (the caller keeps the last good table and the compiler its last base).

import type { Backend, BackendClientCertificate, Filter, HeaderModifier, HttpIR, HttpListener, ListenerScope, Origin, Route, RouteAction, VirtualHost } from '../../ir/types.ts';
import { DEFAULT_UPGRADE_TYPES } from '../../ir/upgrades.ts';
import { compileFilterChain, concatChains, EMPTY_CHAIN, type FilterChain } from '../filters/chain.ts';
import { compileHeaderModifier } from '../filters/header-modifier.ts';
import { compileRedirect } from '../filters/redirect.ts';
import type { DataplaneMetrics, RequestMetrics } from '../metrics.ts';
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
import { BackendTarget } from '../upstream/backend.ts';
import type { UpstreamEndpoint, UpstreamPools } from '../upstream/pools.ts';
import { SessionPlan } from '../upstream/session.ts';
import { weightedPicker, type PickerState, type PickerStateGeneration } from '../upstream/weighted.ts';
import { MAX_TIMER_MS } from '../timer-bound.ts';
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

/** A compile from scratch (tests, golden files); the Dataplane keeps a RouteTableCompiler across versions. */
export function compileRouteTable(version: string, http: HttpIR, context: CompileContext): RouteTable {
  return new RouteTableCompiler().compile(version, http, context).table;
}

export interface CompileResult {
  table: RouteTable;
  /**
   * Makes this compile the base of the next one, and gives the backends whose endpoints alone changed
   * their new endpoints (in place: the routes using them were not recompiled). Call once the table
   * is going to be served; never for a table that is thrown away.
   */
  commit(): void;
}

/**
 * HttpIR → RouteTable across versions, recompiling only what changed. The controller keeps the IR
 * objects made from unchanged inputs (structural sharing), so identity says what is unchanged: a
 * route whose IR object, scope context (HTTPS, HSTS) and backend targets are those of the live
 * table is reused as compiled, a virtual host whose compiled routes are all reused keeps its path
 * index, a scope or listener whose parts are all reused is the same object. A backend whose IR
 * changed only in its endpoints (EndpointSlice churn, the most frequent change) keeps its
 * BackendTarget, which takes the new endpoints at commit: no route is recompiled for it. The
 * answer is the one a compile from scratch gives (property test: test/dataplane/incremental.test.ts).
 */
export class RouteTableCompiler {
  private live = new Generation();
  /** Every compile's own stamp, a failed one's included (the entries it marked are not the next one's). */
  private stamps = 0;

  compile(version: string, http: HttpIR, context: CompileContext): CompileResult {
    const next = new Generation(++this.stamps);
    const problems: CompileProblem[] = [];
    const endpointKeys = new Set<string>();
    const certificateKeys = new Set<string>();
    const specs = http.backends ?? {};
    const backends = new BackendResolver(specs, this.live.backends, next.backends, context, endpointKeys, problems);
    backends.resolveAll();

    const compiler = new TableCompiler(context, backends, specs, problems, this.live, next);
    const listeners = http.listeners.map((listener) => {
      const table = compiler.listener(listener);
      if (table.tlsSettings !== null) {
        for (const certificate of listener.tls?.certificates ?? []) certificateKeys.add(cacheKey(certificate, table.clientValidation, table.tlsSettings));
      }
      return table;
    });

    const live = this.live;
    return {
      table: { version, listeners, endpointKeys, certificateKeys, problems },
      commit: () => {
        backends.commit();
        releaseDropped(live, next, context.metrics);
        this.live = next;
      },
    };
  }
}

/** The routes of `live` that `next` does not reuse give back their metrics' uses. */
function releaseDropped(live: Generation, next: Generation, metrics: DataplaneMetrics): void {
  for (const scopes of live.scopes.values()) {
    for (const scope of scopes) {
      if (scope.carried === next.stamp) continue; // its virtual hosts too
      const virtualHosts = scope.virtualHostEntries;
      for (let v = 0; v < virtualHosts.length; v++) {
        const virtualHost = virtualHosts[v]!;
        if (virtualHost.carried === next.stamp) continue;
        const routes = virtualHost.routes;
        for (let r = 0; r < routes.length; r++) {
          const route = routes[r]!;
          if (route.carried === next.stamp) continue;
          route.carried = next.stamp; // once, though it may sit in several positions
          const taken = route.metrics;
          for (let i = 0; i < taken.length; i += 2) metrics.release(taken[i] as RequestMetrics, taken[i + 1] as RequestMetrics['perBackend']);
        }
      }
    }
  }
}

/** What one compile made, by IR name, for the next compile to reuse. */
class Generation {
  /** Marks the entries of the live generation this one reuses (their `carried`). */
  readonly stamp: number;
  constructor(stamp = 0) {
    this.stamp = stamp;
  }

  /** By backend name, `name\0<client certificate hash>` for a TLS backend presenting one. */
  readonly backends = new Map<string, BackendEntry>();
  readonly listeners = new Map<string, ListenerEntry>();
  /** Several when one IR object is compiled in several contexts (the same scope on two sockets). */
  readonly scopes = new Map<string, ScopeEntry[]>();
  /** The virtual hosts of the scopes named so, by name: made on first use (a scope compiled host by host). */
  private byScope: Map<string, Map<string, VirtualHostEntry[]>> | null = null;

  virtualHostsNamed(scope: string, name: string): VirtualHostEntry[] | undefined {
    this.byScope ??= new Map();
    let byName = this.byScope.get(scope);
    if (byName === undefined) {
      byName = new Map();
      for (const entry of this.scopes.get(scope) ?? NONE) {
        const entries = entry.virtualHostEntries;
        for (let v = 0; v < entries.length; v++) addEntry(byName, entries[v]!.virtualHost.name, entries[v]!);
      }
      this.byScope.set(scope, byName);
    }
    return byName.get(name);
  }
}

interface BackendEntry {
  spec: Backend;
  httpPolicy: HttpPolicyIndex | null;
  target: BackendTarget;
  /** What `target` serves once the compile is committed. */
  endpoints: readonly UpstreamEndpoint[];
  policies: ReadonlyMap<string, EndpointPolicy> | null;
  endpointKeys: readonly string[];
  problems: readonly CompileProblem[];
}

interface ListenerEntry {
  listener: HttpListener;
  table: ListenerTable;
  scopes: readonly ScopeTable[];
  certificateProblems: readonly CompileProblem[];
}

interface ScopeEntry {
  scope: ListenerScope;
  https: boolean;
  table: ScopeTable;
  virtualHosts: readonly VirtualHostTable[];
  /** What each of them was compiled from (same positions). */
  virtualHostEntries: readonly VirtualHostEntry[];
  /** Some virtual host is rate limited (never reused whole). */
  limited: boolean;
  /** The stamp of the last compile that reused it whole. */
  carried: number;
}

interface VirtualHostEntry {
  /**
   * Every backend its routes looked up and what each found, and its session plans' targets and
   * endpoints: a superset (carried over from the entry it was made from, plus its new routes'),
   * which is sound — a dependency that changed only makes it recheck its routes one by one.
   */
  backends: ReadonlyMap<string, BackendTarget | null>;
  session: ReadonlyMap<BackendTarget, readonly UpstreamEndpoint[]> | null;
  /** The hash of the client certificate its TLS backends were looked up with (its scope's). */
  client: string | undefined;
  virtualHost: VirtualHost;
  https: boolean;
  /** The scope's HSTS value its routes were compiled with (HTTPS only). */
  hsts: string | undefined;
  table: VirtualHostTable;
  routes: readonly RouteEntry[];
  /** Its routes' problems and multi-backend picker states, re-stated when it is reused whole. */
  problems: readonly CompileProblem[];
  pickers: readonly { route: string; state: PickerState }[];
  /** Some route is rate limited: limiters are the version's, so it is never reused whole. */
  limited: boolean;
  /** The stamp of the last compile that reused it whole. */
  carried: number;
}

/** What a compiled route was made with besides its IR: valid while these hold. */
interface Dependencies {
  /** Every backend looked up (with the scope's client certificate) and what it found: name, target, name, ... (flat: memory at 50 000 rules). */
  backends: readonly (string | BackendTarget | null)[];
  /** Session plans' targets and the endpoints they were built over: those change in place. */
  session: readonly { target: BackendTarget; endpoints: readonly UpstreamEndpoint[] }[] | null;
}

interface RouteEntry extends Dependencies {
  route: Route;
  https: boolean;
  hsts: string | undefined;
  compiled: CompiledRoute;
  problems: readonly CompileProblem[];
  /** The metrics its compile took a use of and the per-backend series each had then, flat pairs: given back when it is dropped. */
  metrics: readonly (RequestMetrics | RequestMetrics['perBackend'])[];
  /** A multi-backend picker's state, carried to the next generation of picker states. */
  picker: PickerState | null;
  /** The stamp of the last compile that reused it. */
  carried: number;
}

const NONE: readonly never[] = [];

/** The version's backends as targets, built on first use, reused from the live table when their IR is. */
class BackendResolver {
  private readonly specs: Readonly<Record<string, Backend>>;
  private readonly previous: ReadonlyMap<string, BackendEntry>;
  private readonly next: Map<string, BackendEntry>;
  private readonly context: CompileContext;
  private readonly endpointKeys: Set<string>;
  private readonly problems: CompileProblem[];
  /** Kept targets whose endpoints change at commit. */
  private readonly staged = new Map<BackendTarget, BackendEntry>();
  /**
   * Every backend is the live generation's (same IR, same policy), none gone (resolveAll): then
   * every dependency a live route recorded holds, and unchanged parts are reused without checking
   * their routes' lookups one by one.
   */
  unchanged = false;

  constructor(
    specs: Readonly<Record<string, Backend>>,
    previous: ReadonlyMap<string, BackendEntry>,
    next: Map<string, BackendEntry>,
    context: CompileContext,
    endpointKeys: Set<string>,
    problems: CompileProblem[],
  ) {
    this.specs = specs;
    this.previous = previous;
    this.next = next;
    this.context = context;
    this.endpointKeys = endpointKeys;
    this.problems = problems;
  }

  /**
   * Resolves every backend of the version and tells whether all are the live ones (`unchanged`).
   * Not where the live generation has a client-certificate variant (`name\0hash`): those are
   * resolved when a route asks, and a route reused without asking would leave them out of the next
   * generation, whose later compile would make them anew under routes that kept the old target.
   */
  resolveAll(): void {
    const names = Object.keys(this.specs);
    let unchanged = names.length === this.previous.size;
    for (const name of names) {
      this.get(name);
      if (this.next.get(name) !== this.previous.get(name)) unchanged = false;
    }
    this.unchanged = unchanged && this.staged.size === 0;
  }

  /** Null when the IR has no such backend. A client certificate matters only to TLS backends. */
  get(name: string, client?: BackendClientCertificate): BackendTarget | null {
    const spec = this.specs[name];
    if (spec === undefined) return null;
    const presented = spec.tls !== undefined ? client : undefined;
    const key = presented === undefined ? name : `${name}\0${presented.hash}`;
    let entry = this.next.get(key);
    if (entry === undefined) this.take(key, (entry = this.build(spec, presented, this.previous.get(key))));
    return entry.target;
  }

  private take(key: string, entry: BackendEntry): void {
    this.next.set(key, entry);
    for (const endpointKey of entry.endpointKeys) this.endpointKeys.add(endpointKey);
    for (const problem of entry.problems) this.problems.push(problem);
  }

  /** The endpoints `target` serves once this compile is committed. */
  endpointsOf(target: BackendTarget): readonly UpstreamEndpoint[] {
    return this.staged.get(target)?.endpoints ?? target.endpoints;
  }

  commit(): void {
    for (const [target, entry] of this.staged) target.replaceEndpoints(entry.endpoints, entry.policies);
  }

  private build(spec: Backend, client: BackendClientCertificate | undefined, previous: BackendEntry | undefined): BackendEntry {
    const httpPolicy = this.context.httpPolicy ?? null;
    if (previous !== undefined && previous.spec === spec && previous.httpPolicy === httpPolicy) return previous;
    const problems: CompileProblem[] = [];
    const endpointKeys: string[] = [];
    const { endpoints, policies } = compileEndpoints(spec, client, this.context, endpointKeys, problems);
    if (previous !== undefined && sameShape(previous.spec, spec)) {
      const entry = { spec, httpPolicy, target: previous.target, endpoints, policies, endpointKeys, problems };
      this.staged.set(previous.target, entry);
      return entry;
    }
    return { spec, httpPolicy, target: new BackendTarget(spec.name, endpoints, policies), endpoints, policies, endpointKeys, problems };
  }
}

/**
 * What the routes using a backend took from its IR besides the target: the metric labels (name and
 * source). Endpoints, app protocol and TLS only make the endpoints' pools, which a kept target takes anew.
 */
function sameShape(a: Backend, b: Backend): boolean {
  return a.name === b.name && a.source === b.source;
}

function compileEndpoints(
  backend: Backend,
  client: BackendClientCertificate | undefined,
  context: CompileContext,
  endpointKeys: string[],
  problems: CompileProblem[],
): { endpoints: UpstreamEndpoint[]; policies: Map<string, EndpointPolicy> | null } {
  const endpoints: UpstreamEndpoint[] = [];
  const tls = backend.tls;
  if (tls?.refused !== undefined) {
    // Never plaintext instead: no endpoint, every request answers 503.
    problems.push({ subject: backend.name, message: `${tls.refused}; requests answer 503` });
    return { endpoints, policies: null };
  }
  let policies: Map<string, EndpointPolicy> | null = null;
  for (const endpoint of backend.endpoints) {
    try {
      const upstream = context.pools.acquire(endpoint, backend.appProtocol, tls ? { settings: tls, client } : undefined);
      endpointKeys.push(upstream.key);
      endpoints.push(upstream);
      const policy = context.httpPolicy?.forEndpoint(endpoint.address, endpoint.port) ?? null;
      if (policy !== null) (policies ??= new Map()).set(upstream.key, policy);
    } catch (err) {
      // An address or port no connection pool takes (a hand-written EndpointSlice): that endpoint
      // is left out, not the whole version.
      problems.push({ subject: backend.name, message: `endpoint ${endpoint.address}:${endpoint.port} is unusable (${(err as Error).message}); left out` });
    }
  }
  return { endpoints, policies };
}

/** The entry compiled for `object` in this context (HTTPS or not), if any. */
function entryFor<E extends { https: boolean }>(entries: readonly E[] | undefined, matches: (entry: E) => boolean, https: boolean): E | undefined {
  if (entries === undefined) return undefined;
  for (const entry of entries) if (entry.https === https && matches(entry)) return entry;
  return undefined;
}

/**
 * A virtual host's routes' dependencies, problems and picker states. `carried`: an entry whose
 * dependencies all hold and from which the unchanged routes come, so that only `fresh` (the routes
 * compiled now) add to its dependencies.
 */
function aggregate(
  routes: readonly RouteEntry[],
  carried: VirtualHostEntry | undefined,
  fresh: readonly RouteEntry[],
  from = 0,
  to = routes.length,
): Pick<VirtualHostEntry, 'backends' | 'session' | 'problems' | 'pickers' | 'limited'> {
  const backends = new Map(carried?.backends);
  let session = carried?.session == null ? null : new Map(carried.session);
  let problems: CompileProblem[] | null = null;
  let pickers: { route: string; state: PickerState }[] | null = null;
  let limited = false;
  // Indexed loops: a virtual host may hold 50 000 routes, and a for-of not yet optimised allocates per element.
  const added = carried === undefined ? routes : fresh;
  for (let r = 0; r < added.length; r++) {
    const route = added[r]!;
    const looked = route.backends;
    for (let i = 0; i < looked.length; i += 2) backends.set(looked[i] as string, looked[i + 1] as BackendTarget | null);
    if (route.session !== null) for (const { target, endpoints } of route.session) (session ??= new Map()).set(target, endpoints);
  }
  // Only [from, to) when the routes outside it are known to have no problems, pickers or limits.
  for (let r = from; r < to; r++) {
    const route = routes[r]!;
    if (route.problems.length > 0) (problems ??= []).push(...route.problems);
    if (route.picker !== null) (pickers ??= []).push({ route: route.route.name, state: route.picker });
    if (route.route.rateLimit !== undefined) limited = true;
  }
  return { backends, session, problems: problems ?? NONE, pickers: pickers ?? NONE, limited };
}

/** Up to this many virtual hosts changed in a scope, the previous ones of that stretch are looked up by a scan. */
const SMALL_CHANGE = 64;

/** Entries `from`..`to` of `source`, and their tables, to `entries` and `tables` from `at`. */
function copyTables(source: readonly VirtualHostEntry[], from: number, to: number, entries: VirtualHostEntry[], tables: VirtualHostTable[], at: number): void {
  for (let v = from; v < to; v++) {
    entries[at + v - from] = source[v]!;
    tables[at + v - from] = source[v]!.table;
  }
}

/** A scope's virtual hosts by hostname, built afresh. */
function hostIndex(scope: ListenerScope, tables: readonly VirtualHostTable[]): HostIndex<VirtualHostTable> {
  const index = new HostIndex<VirtualHostTable>();
  for (let i = 0; i < tables.length; i++) {
    const virtualHost = scope.virtualHosts[i];
    index.add(virtualHost.hostname, tables[i], virtualHost.singleLabelWildcard === true);
  }
  return index;
}

/** Same length, same objects at every position. */
function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function addEntry<E>(map: Map<string, E[]>, name: string, entry: E): void {
  const entries = map.get(name);
  if (entries === undefined) map.set(name, [entry]);
  else entries.push(entry);
}

class TableCompiler {
  private readonly context: CompileContext;
  private readonly backends: BackendResolver;
  /** The scope being compiled's client certificate for TLS backends (its Gateway's spec.tls.backend). */
  private clientCertificate: BackendClientCertificate | undefined;
  /** Whether the listener being compiled is HTTPS (session cookies are Secure there). */
  private https = false;
  /** The scope being compiled's HSTS value (HTTPS only), appended to its routes' filters. */
  private hsts: string | undefined = undefined;
  /** The IR backends, for the per-backend metrics' labels. */
  private readonly irBackends: Readonly<Record<string, Backend>>;
  private readonly problems: CompileProblem[];
  private readonly live: Generation;
  private readonly next: Generation;
  /** What the route being compiled looks up and uses (recorded into its RouteEntry). */
  private recording: { backends: (string | BackendTarget | null)[]; metrics: RouteEntry['metrics'][number][]; problems: CompileProblem[]; session: RouteEntry['session'] } | null = null;

  constructor(context: CompileContext, backends: BackendResolver, irBackends: Readonly<Record<string, Backend>>, problems: CompileProblem[], live: Generation, next: Generation) {
    this.context = context;
    this.backends = backends;
    this.irBackends = irBackends;
    this.problems = problems;
    this.live = live;
    this.next = next;
  }

  listener(listener: HttpListener): ListenerTable {
    const https = listener.protocol === 'HTTPS';
    const previous = this.live.listeners.get(listener.name);
    const scopes = listener.scopes.map((scope) => this.scope(scope, https));
    const flows = this.context.flows ?? null;

    let entry: ListenerEntry;
    if (previous !== undefined && previous.listener === listener && sameItems(previous.scopes, scopes)) {
      for (const problem of previous.certificateProblems) this.problems.push(problem);
      // Nothing in it changed: the same table, unless only the version's flow recorder did.
      entry = previous.table.flows === flows ? previous : { ...previous, table: { ...previous.table, flows } };
    } else {
      const index = new HostIndex<ScopeTable>();
      for (let i = 0; i < scopes.length; i++) index.add(listener.scopes[i].hostname, scopes[i]);

      let certificates: CertificateSelector | null = null;
      const clientValidation = https ? compileClientValidation(listener.tls?.clientValidation) : null;
      const tlsSettings = https ? compileTlsSettings(listener.tls?.settings) : null;
      const certificateProblems: CompileProblem[] = [];
      if (tlsSettings !== null) {
        const problems: CertificateProblem[] = [];
        certificates = CertificateSelector.build(listener.tls, clientValidation, tlsSettings, this.context.certificates, problems);
        for (const problem of problems) certificateProblems.push({ subject: problem.certificate, message: `certificate unusable: ${problem.message}` });
      }
      for (const problem of certificateProblems) this.problems.push(problem);
      const table: ListenerTable = {
        name: listener.name,
        listener,
        protocol: listener.protocol,
        scheme: listener.protocol === 'HTTPS' ? 'https' : 'http',
        port: listener.port,
        redirectPortOffset: this.context.redirectPortOffset ?? 0,
        scopes: index,
        certificates,
        clientValidation,
        tlsSettings,
        notFound: this.context.metrics.requestMetrics('', ''),
        rejections: this.context.metrics.downstreamRejections(listener.name),
        flows,
      };
      entry = { listener, table, scopes, certificateProblems };
    }
    this.next.listeners.set(listener.name, entry);
    return entry.table;
  }

  private scope(scope: ListenerScope, https: boolean): ScopeTable {
    this.clientCertificate = scope.backendClientCertificate;
    this.https = https;
    this.hsts = https ? scope.hsts : undefined;
    // HSTS is a response header modifier appended to each route's own filters: every answer a
    // route gives (backend, redirect, direct response, error) carries it, and so do the scope's
    // 404 and 421; never on plain HTTP.
    const hsts: HeaderModifier | null =
      https && scope.hsts !== undefined ? { set: [{ name: 'strict-transport-security', value: scope.hsts }], add: [], remove: [] } : null;
    const routeFilters: Filter[] = hsts === null ? [] : [{ type: 'ResponseHeaderModifier', modifier: hsts }];

    const candidates = this.live.scopes.get(scope.name);
    const previous = entryFor(candidates, (e) => e.scope === scope, https);
    const stamp = this.next.stamp;
    if (previous !== undefined && this.backends.unchanged && !previous.limited) {
      // Unchanged, and so is every backend: reused whole without visiting its routes.
      previous.carried = stamp;
      this.carryVirtualHosts(previous.virtualHostEntries, 0, previous.virtualHostEntries.length);
      addEntry(this.next.scopes, scope.name, previous);
      return previous.table;
    }
    // A changed scope (one virtual host edited among thousands): the virtual hosts at its start and
    // end that are the same objects as in the scope it was made from are carried as they are (when no
    // backend changed: then nothing they depend on did), the ones between compiled one by one.
    const base = previous ?? entryFor(candidates, (e) => e.scope.hsts === scope.hsts && e.scope.backendClientCertificate?.hash === scope.backendClientCertificate?.hash, https);
    const now = scope.virtualHosts;
    const before = base?.scope.virtualHosts ?? NONE;
    let head = 0;
    let tail = 0;
    if (base !== undefined && this.backends.unchanged && !base.limited) {
      while (head < now.length && head < before.length && now[head] === before[head]) head++;
      while (tail < now.length - head && tail < before.length - head && now[now.length - 1 - tail] === before[before.length - 1 - tail]) tail++;
    }
    const count = now.length;
    const virtualHosts = new Array<VirtualHostTable>(count);
    const entries = new Array<VirtualHostEntry>(count);
    let limited = false;
    if (head > 0) {
      this.carryVirtualHosts(base!.virtualHostEntries, 0, head);
      copyTables(base!.virtualHostEntries, 0, head, entries, virtualHosts, 0);
    }
    // The previous virtual hosts between: where a changed one is looked up (a few), else by name in the scope.
    const between = base !== undefined && head + tail > 0 && before.length - head - tail <= SMALL_CHANGE ? base.virtualHostEntries.slice(head, before.length - tail) : null;
    for (let i = head; i < count - tail; i++) {
      const virtualHost = now[i];
      const found = between === null ? this.live.virtualHostsNamed(scope.name, virtualHost.name) : between.filter((e) => e.virtualHost.name === virtualHost.name);
      const entry = this.virtualHost(virtualHost, routeFilters, found);
      entries[i] = entry;
      virtualHosts[i] = entry.table;
      if (entry.limited) limited = true;
    }
    if (tail > 0) {
      this.carryVirtualHosts(base!.virtualHostEntries, before.length - tail, before.length);
      copyTables(base!.virtualHostEntries, before.length - tail, before.length, entries, virtualHosts, count - tail);
    }

    let entry: ScopeEntry;
    if (previous !== undefined && sameItems(previous.virtualHostEntries, entries)) {
      entry = previous;
    } else if (previous !== undefined && sameItems(previous.virtualHosts, virtualHosts)) {
      entry = { ...previous, virtualHostEntries: entries, carried: 0 };
    } else {
      const table: ScopeTable = {
        name: scope.name,
        hostname: scope.hostname === '*' ? null : scope.hostname,
        virtualHosts: (head + tail > 0 && this.replacedHosts(base!, scope, head, tail, virtualHosts)) || hostIndex(scope, virtualHosts),
        replyModifiers: hsts === null ? [] : [compileHeaderModifier(hsts)],
        gateway: gatewayOf(scope.origin),
      };
      entry = { scope, https, table, virtualHosts, virtualHostEntries: entries, limited, carried: 0 };
    }
    addEntry(this.next.scopes, scope.name, entry);
    return entry.table;
  }

  /** Virtual hosts reused whole: marked as carried, their problems and picker states re-stated. */
  private carryVirtualHosts(entries: readonly VirtualHostEntry[], from: number, to: number): void {
    const stamp = this.next.stamp;
    const next = this.context.pickerStates.next;
    for (let v = from; v < to; v++) {
      const entry = entries[v]!;
      entry.carried = stamp;
      if (entry.problems.length > 0) for (const problem of entry.problems) this.problems.push(problem);
      if (entry.pickers.length > 0) for (const { route, state } of entry.pickers) if (!next.has(route)) next.set(route, state);
    }
  }

  /**
   * The base scope's host index with the tables of the virtual hosts between `head` and `tail`
   * replaced, when those are the same hostnames in the same places (edited, not added, removed or
   * renamed); null otherwise (built afresh).
   */
  private replacedHosts(base: ScopeEntry, scope: ListenerScope, head: number, tail: number, tables: readonly VirtualHostTable[]): HostIndex<VirtualHostTable> | null {
    const before = base.scope.virtualHosts;
    const now = scope.virtualHosts;
    if (before.length !== now.length) return null;
    const replacements: { pattern: string | null; old: VirtualHostTable; value: VirtualHostTable }[] = [];
    for (let i = head; i < now.length - tail; i++) {
      if (now[i].hostname !== before[i].hostname || (now[i].singleLabelWildcard === true) !== (before[i].singleLabelWildcard === true)) return null;
      replacements.push({ pattern: now[i].hostname, old: base.virtualHosts[i], value: tables[i] });
    }
    return base.table.virtualHosts.replacing(replacements);
  }

  /**
   * `scopeFilters` are the scope's HSTS: `this.https` and `this.hsts` are part of the entries' key.
   * `candidates`: the live entries of the same name.
   */
  private virtualHost(virtualHost: VirtualHost, scopeFilters: Filter[], candidates: readonly VirtualHostEntry[] | undefined): VirtualHostEntry {
    const https = this.https;
    const hsts = this.hsts;
    const same = entryFor(candidates, (e) => e.virtualHost === virtualHost && e.hsts === hsts, https);
    if (same !== undefined && !same.limited && (this.unchangedFor(same) || this.allStillValid(same))) {
      // Unchanged, and so is everything it was compiled with: reused whole, in time independent of its size.
      this.carryVirtualHosts([same], 0, 1);
      return same;
    }
    // A changed virtual host (a route added, removed or edited) still reuses its unchanged routes:
    // found at the same position (an edit in place), else by route object.
    const previous = same ?? entryFor(candidates, (e) => e.hsts === hsts, https);
    // When all the previous entry's dependencies hold, so do each of its routes': not checked one by one.
    const valid = previous !== undefined && (this.unchangedFor(previous) || this.allStillValid(previous));
    const count = virtualHost.routes.length;
    const now = virtualHost.routes;
    const before = previous?.routes ?? NONE;
    // Its dependencies hold and none is rate limited: a rule that is the same object as before is
    // taken as it is, in loops that call nothing (a virtual host may hold 50 000 rules, and one edit
    // must not cost a pass of calls over them). The rules at its start and end that are where they
    // were are copied whole.
    const fast = valid && !previous!.limited && same === undefined;
    let head = 0;
    let tail = 0;
    if (fast) {
      while (head < count && head < before.length && now[head] === before[head]!.route) head++;
      while (tail < count - head && tail < before.length - head && now[count - 1 - tail] === before[before.length - 1 - tail]!.route) tail++;
    }
    // Carried rules add no problems or picker states when the previous entry had none (the usual case).
    const quiet = fast && previous!.problems.length === 0 && previous!.pickers.length === 0;
    let entries: RouteEntry[] = head > 0 ? before.slice(0, head) : [];
    let routes: CompiledRoute[] = head > 0 ? previous!.table.routes.slice(0, head) : [];
    if (head > 0) this.carryRoutes(before, 0, head, quiet);
    let unchanged = same !== undefined;
    const fresh: RouteEntry[] = [];
    // A changed virtual host (a route added, removed or edited) still reuses its unchanged routes:
    // kept rules sit where they were, or one further or nearer for each rule that moved past them (a
    // changed rule re-sorted by precedence): followed with a running offset. A few misses are rules
    // edited in place (new objects, found nowhere); more, rules inserted or removed before them:
    // then by route object.
    let offset = 0;
    let misses = 0;
    let byRoute: Map<Route, RouteEntry> | null = null;
    const stamp = this.next.stamp;
    for (let i = head; i < count - tail; i++) {
      const route = now[i];
      let prior: RouteEntry | undefined;
      const k = i + offset;
      if (before[k]?.route === route) prior = before[k];
      else if (before[k + 1]?.route === route) prior = before[k + ++offset];
      else if (before[k - 1]?.route === route) prior = before[k + --offset];
      else if (previous !== undefined && (byRoute !== null || ++misses > 8)) {
        if (byRoute === null) {
          byRoute = new Map();
          for (let r = 0; r < before.length; r++) byRoute.set(before[r]!.route, before[r]!);
        }
        prior = byRoute.get(route);
      }
      let entry: RouteEntry;
      if (fast && prior !== undefined && quiet) {
        // The same rule, nothing it depends on changed, nothing to re-state: carried.
        prior.carried = stamp;
        entry = prior;
      } else {
        entry = this.routeEntry(route, scopeFilters, prior, valid);
        if (prior === undefined || entry.compiled.match !== prior.compiled.match) fresh.push(entry);
      }
      entries.push(entry);
      routes.push(entry.compiled);
      if (unchanged && same!.table.routes[i] !== entry.compiled) unchanged = false;
    }
    if (tail > 0) {
      const from = before.length - tail;
      this.carryRoutes(before, from, before.length, quiet);
      entries = entries.concat(before.slice(from));
      routes = routes.concat(previous!.table.routes.slice(from));
    }
    // A changed host's path index is derived from the previous one: only the changed rules' keys are touched.
    const table = unchanged && same !== undefined ? same.table : { name: virtualHost.name, routes, index: previous?.table.index.derive(routes, head, tail) ?? new RouteIndex(routes) };
    return { virtualHost, https, hsts, client: this.clientCertificate?.hash, table, routes: entries, carried: 0, ...aggregate(entries, valid ? previous : undefined, fresh, quiet ? head : 0, quiet ? count - tail : count) };
  }

  /** No backend changed and the entry looked them up with this scope's client certificate: its dependencies hold. */
  private unchangedFor(entry: VirtualHostEntry): boolean {
    return this.backends.unchanged && entry.client === this.clientCertificate?.hash;
  }

  /** Routes reused as they are (dependencies hold, not rate limited): marked, and unless `quiet` (none has any), problems and picker states re-stated. */
  private carryRoutes(from: readonly RouteEntry[], start: number, end: number, quiet: boolean): void {
    const stamp = this.next.stamp;
    if (quiet) {
      for (let r = start; r < end; r++) from[r]!.carried = stamp;
      return;
    }
    const next = this.context.pickerStates.next;
    for (let r = start; r < end; r++) {
      const entry = from[r]!;
      entry.carried = stamp;
      if (entry.problems.length > 0) for (const problem of entry.problems) this.problems.push(problem);
      if (entry.picker !== null && !next.has(entry.route.name)) next.set(entry.route.name, entry.picker);
    }
  }

  /** The route as compiled for the live table when nothing it depends on changed, else compiled now. */
  private routeEntry(route: Route, scopeFilters: Filter[], previous: RouteEntry | undefined, valid: boolean): RouteEntry {
    if (previous !== undefined && previous.route === route && previous.https === this.https && previous.hsts === this.hsts && (valid || this.stillValid(previous))) {
      previous.carried = this.next.stamp;
      for (const problem of previous.problems) this.problems.push(problem);
      if (previous.picker !== null && !this.context.pickerStates.next.has(route.name)) this.context.pickerStates.next.set(route.name, previous.picker);
      // Limiters belong to the version's rate-limit table: a limited route takes this version's.
      const limiter = this.context.rateLimits?.forRoute(route) ?? null;
      return limiter === previous.compiled.rateLimit ? previous : { ...previous, compiled: { ...previous.compiled, rateLimit: limiter } };
    }
    const recording: NonNullable<TableCompiler['recording']> = { backends: [], metrics: [], problems: [], session: null };
    this.recording = recording;
    try {
      const compiled = this.route(scopeFilters.length === 0 ? route : { ...route, filters: [...route.filters, ...scopeFilters] });
      const action = compiled.action;
      const picker = action.type === 'Forward' && action.picker !== null && action.picker.items.length > 1 ? (this.context.pickerStates.next.get(route.name) ?? null) : null;
      return {
        route,
        https: this.https,
        hsts: this.hsts,
        compiled,
        backends: recording.backends.length === 0 ? NONE : recording.backends,
        session: recording.session,
        problems: recording.problems.length === 0 ? NONE : recording.problems,
        metrics: recording.metrics,
        picker,
        carried: this.next.stamp,
      };
    } finally {
      this.recording = null;
    }
  }

  /** The backends looked up resolve to the same targets, and session plans' endpoints are unchanged. */
  private stillValid(dependencies: Dependencies): boolean {
    const looked = dependencies.backends;
    for (let i = 0; i < looked.length; i += 2) if (this.backends.get(looked[i] as string, this.clientCertificate) !== looked[i + 1]) return false;
    if (dependencies.session !== null) for (const { target, endpoints } of dependencies.session) if (this.backends.endpointsOf(target) !== endpoints) return false;
    return true;
  }

  /** stillValid for all of a virtual host's routes at once. */
  private allStillValid(entry: VirtualHostEntry): boolean {
    for (const [name, target] of entry.backends) if (this.backends.get(name, this.clientCertificate) !== target) return false;
    if (entry.session !== null) for (const [target, endpoints] of entry.session) if (this.backends.endpointsOf(target) !== endpoints) return false;
    return true;
  }

  private problem(subject: string, message: string): void {
    const problem = { subject, message };
    this.problems.push(problem);
    this.recording?.problems.push(problem);
  }

  private backend(name: string): BackendTarget | null {
    const target = this.backends.get(name, this.clientCertificate);
    this.recording?.backends.push(name, target);
    return target;
  }

  private requestMetrics(...args: Parameters<DataplaneMetrics['requestMetrics']>): RequestMetrics {
    const metrics = this.context.metrics.requestMetrics(...args);
    this.recording?.metrics.push(metrics, metrics.perBackend);
    return metrics;
  }

  private route(route: Route): CompiledRoute {
    const matchProblems: MatchProblem[] = [];
    const match = compileMatch(route.match, matchProblems);
    for (const problem of matchProblems) this.problem(route.name, `${problem.field}: ${problem.message}; the route never matches`);
    const filters = this.filterChain(route, route.filters);
    return { name: route.name, source: route.source, match, cors: filters.cors, rateLimit: this.context.rateLimits?.forRoute(route) ?? null, grpc: route.grpc === true, upgradeTypes: route.upgradeTypes === undefined ? DEFAULT_UPGRADES : new Set(route.upgradeTypes), action: this.action(route, route.action, filters) };
  }

  private filterChain(route: Route, filters: Route['filters']): FilterChain {
    const messages: string[] = [];
    const chain = compileFilterChain(filters, route.match.path, (name) => this.backend(name), messages);
    for (const message of messages) this.problem(route.name, message);
    return chain;
  }

  private action(route: Route, action: RouteAction, filters: FilterChain): CompiledAction {
    switch (action.type) {
      case 'Forward': {
        const candidates = action.backends.map((weighted, index) => {
          let backend: BackendTarget | null = null;
          if (weighted.backend !== null) {
            backend = this.backend(weighted.backend);
            if (backend === null) this.problem(route.name, `backend ${weighted.backend} is not in the IR; its share answers 500`);
          }
          const irBackend = backend === null ? undefined : this.irBackends[backend.name];
          const choice: BackendChoice = {
            backend,
            filters: concatChains(filters, this.filterChain(route, weighted.filters)),
            metrics: this.requestMetrics(route.name, weighted.backend ?? '', irBackend && { route, backend: irBackend }),
          };
          // The id only enters a multi-backend picker's signature: no string per rule for the rest.
          return { item: choice, weight: weighted.weight, id: action.backends.length === 1 ? '' : `${index}:${weighted.backend ?? ''}` };
        });
        return {
          type: 'Forward',
          picker: weightedPicker(route.name, candidates, this.context.pickerStates),
          noBackend: { backend: null, filters, metrics: this.requestMetrics(route.name, '') },
          requestTimeoutMs: timerMs(route.timeouts?.requestMs),
          backendTimeoutMs: timerMs(route.timeouts?.backendRequestMs),
          retry: compileRetry(route),
          session: this.session(route, candidates),
        };
      }
      case 'Redirect': {
        let statusCode = action.statusCode;
        if (!(statusCode >= 300 && statusCode <= 399)) {
          this.problem(route.name, `redirect status ${statusCode} is not 3xx; using 302`);
          statusCode = 302;
        }
        return {
          type: 'Redirect',
          redirect: compileRedirect({ ...action, statusCode }, route.match.path),
          responseModifiers: filters.responseModifiers,
          metrics: this.requestMetrics(route.name, ''),
        };
      }
      case 'DirectResponse': {
        let status = action.status;
        if (!(Number.isInteger(status) && status >= 200 && status <= 599)) {
          this.problem(route.name, `direct response status ${status} is invalid; using 500`);
          status = 500;
        }
        return {
          type: 'DirectResponse',
          status,
          body: action.body === undefined ? null : Buffer.from(action.body),
          responseModifiers: filters.responseModifiers,
          metrics: this.requestMetrics(route.name, ''),
        };
      }
      default:
        // A newer IR than this dataplane knows: fail the one route loudly, not the whole table.
        this.problem(route.name, `unknown action type ${JSON.stringify((action as RouteAction).type)}; the route answers 500`);
        return { type: 'DirectResponse', status: 500, body: null, responseModifiers: EMPTY_CHAIN.responseModifiers, metrics: this.requestMetrics(route.name, '') };
    }
  }

  /** Every endpoint of every valid share, weight 0 included, as the route's session targets. */
  private session(route: Route, candidates: { item: BackendChoice }[]): SessionPlan<BackendChoice> | null {
    const spec = route.sessionPersistence;
    if (spec === undefined) return null;
    const key = this.context.sessionKey;
    if (key === undefined) {
      this.problem(route.name, 'session persistence needs a session key, which this dataplane was not given; requests are load balanced without sessions');
      return null;
    }
    const targets = [];
    const recorded: { target: BackendTarget; endpoints: readonly UpstreamEndpoint[] }[] = [];
    for (const { item } of candidates) {
      if (item.backend === null) continue;
      // The endpoints the target serves once this version is live (a kept target's change at commit).
      const endpoints = this.backends.endpointsOf(item.backend);
      targets.push({ choice: item, backend: item.backend.name, endpoints });
      recorded.push({ target: item.backend, endpoints });
    }
    if (this.recording !== null) this.recording.session = recorded;
    return new SessionPlan(spec, key, targets, this.https);
  }
}

/** One set for every route that says nothing (most): a set per rule is memory at 50 000 rules. */
const DEFAULT_UPGRADES: ReadonlySet<string> = new Set(DEFAULT_UPGRADE_TYPES);

function positive(milliseconds: number | undefined): number {
  return milliseconds !== undefined && Number.isFinite(milliseconds) && milliseconds > 0 ? milliseconds : 0;
}

/**
 * A route duration the dataplane runs a timer for (0: none). Gateway API durations reach 99999h:
 * past MAX_TIMER_MS one is held at it (as good as never) instead of firing at once.
 */
function timerMs(milliseconds: number | undefined): number {
  return Math.min(positive(milliseconds), MAX_TIMER_MS);
}

function compileRetry(route: Route): RetryPlan | null {
  const retry = route.retry;
  if (retry === undefined || !(retry.attempts > 0)) return null;
  return { codes: new Set(retry.codes), attempts: Math.floor(retry.attempts), backoffMs: timerMs(retry.backoffMs) };
}

/** `<ns>/<name>` of the Gateway a listener belongs to (a ListenerSet's parent), null for Ingress. */
function gatewayOf(origin: Origin): string | null {
  const gateway = origin.kind === 'ListenerSet' ? origin.parent : origin;
  return gateway?.kind === 'Gateway' ? `${gateway.namespace}/${gateway.name}` : null;
}
