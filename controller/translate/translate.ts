// translate(snapshot) → { ir, statuses }: a pure function of its inputs.
// No API calls, no clock, no randomness: the same snapshot always gives the
// same IR (and so the same version) and the same statuses. A Translator gives
// the same results, computed incrementally (memo.ts).
import type { Backend, HttpListener, IR, L4IR, ListenerScope, Origin, PassthroughListener, ProxyListener, Route, VirtualHost } from '../../ir/types.ts';
import { IrHasher } from '../../ir/version.ts';
import type { Problem } from '../problems.ts';
import { applyAccessLog } from './access-log.ts';
import { namespacedName, type InputSnapshot } from '../sources/objects.ts';
import type { ObjectStatus } from '../status/conditions.ts';
import { addressRequest, planGatewayAddresses, serviceAddressing } from './addresses.ts';
import { translateL4Services } from './backends.ts';
import {
  allListeners,
  gatewayStatus,
  listenerProgrammed,
  listenerSetStatus,
  markConflicts,
  olderFirst,
  tlsSettingsOf,
  translateGatewayClasses,
  translateGateways,
  type GatewayState,
  type ListenerState,
} from './gateway.ts';
import { hostnameSpecificity, isWildcard } from './hostnames.ts';
import { translateHttpAndGrpcRoutes } from './grpcroute.ts';
import type { Placement } from './httproute.ts';
import { InputIndex } from './index-inputs.ts';
import { resort, share, sortFrom, TranslateMemo, type Sort } from './memo.ts';
import { translateNetworkPolicies } from './networkpolicy.ts';
import { INGRESS_GATEWAY_KEY, servedIngresses, translateIngresses } from './ingress.ts';
import { comparePrecedence } from './precedence.ts';
import { translateTlsRoute, type PassthroughPlacement } from './tlsroute.ts';
import { translateProxyRoute, type ProxyPlacement } from './proxyroute.ts';
import { translateRateLimits } from './ratelimit.ts';
import { attachBackendClientCertificates, backendTlsPolicyStatuses } from './backendtls.ts';

import type { TranslateOptions } from './options.ts';
import { applyUpgradeTypes } from './upgrades.ts';
import { foreignAnnotationProblems, ignoredFieldProblems, variableHeaderValueProblems, meshRouteProblems, referenceGrantProblems } from './ignored-fields.ts';
import { endpointlessServiceProblems, unservedProblems } from './unserved.ts';
import { serviceFieldProblems } from './service-fields.ts';

export type { TranslateOptions };

export interface TranslateResult {
  ir: IR;
  statuses: ObjectStatus[];
  /** Problems with objects that have no status of their own to carry them (Ingress, policies). */
  problems: Problem[];
  /**
   * What the result depends on besides the always-read kinds: the Secrets and ConfigMaps it looked
   * up (`Secret/<ns>/<name>`, found or not), and whether Pods matter (they only do for network
   * policy). A change to anything else of those kinds cannot change the result (sources/relevance.ts).
   */
  dependsOn: { references: string[]; pods: boolean };
}

/** One translation from scratch: nothing kept, nothing shared with an earlier result. */
export function translate(snapshot: InputSnapshot, options: TranslateOptions): TranslateResult {
  return translateWith(snapshot, options, null);
}

/**
 * Translations in sequence (a process's source → apply loop): each result deep-equal to what
 * translate() gives for the same inputs, but made from what the previous ones computed where the
 * inputs it depended on are unchanged (memo.ts), and sharing with the previous IR every part that
 * did not change (same JS objects: the dataplane skips recompiling them, the version rehashes only
 * what is new). Inputs must not be mutated once given: a changed object is a new object.
 */
export class Translator {
  private readonly memo: TranslateMemo;

  /** `memo`: for tests only (one made to break on purpose shows the property test can fail). */
  constructor(memo = new TranslateMemo()) {
    this.memo = memo;
  }

  translate(snapshot: InputSnapshot, options: TranslateOptions): TranslateResult {
    return translateWith(snapshot, options, this.memo);
  }
}

function translateWith(snapshot: InputSnapshot, options: TranslateOptions, memo: TranslateMemo | null): TranslateResult {
  memo?.begin();
  const index = new InputIndex(snapshot, memo);
  const classes = translateGatewayClasses(snapshot.gatewayClasses, options);
  const ourGateways = snapshot.gateways.filter((g) => classes.accepted.has(g.spec?.gatewayClassName));
  const ingresses = options.ingress ? servedIngresses(index, options.ingress, options.standalone === true) : { ingresses: [], listening: false, problems: [] };
  const plan = planGatewayAddresses(options.bindAddress, [
    // Gateways that name all their addresses take none of the plan's.
    ...ourGateways.filter((g) => addressRequest(g.spec?.addresses, !options.dataplaneService).planned).map(namespacedName),
    ...(ingresses.listening ? [INGRESS_GATEWAY_KEY] : []),
  ]);
  const gateways = translateGateways(ourGateways, snapshot.listenerSets, plan, index, serviceAddressing(options.dataplaneService, snapshot.services));
  attachBackendClientCertificates(gateways, index);
  const ingress = translateIngresses(ingresses, plan.byGateway.get(INGRESS_GATEWAY_KEY) ?? null, index, options.ingress!);
  markConflicts([...[...gateways].sort(olderFirst).flatMap(allListeners), ...(ingress.gateway?.listeners ?? [])]);
  for (const l of ingress.gateway?.listeners ?? []) {
    if (l.conflict) ingress.problems.push(`Ingress listener on port ${l.port} is not served: ${l.conflict.message} (a Gateway listener takes precedence)`);
  }

  const tlsOptionProblems = gateways.flatMap(allListeners).flatMap((l) =>
    (l.ignoredTlsOptions ?? []).map((key): Problem => ({
      code: 'SLU_TRANSLATION',
      message: `${l.owner.kind} ${l.owner.key} listener ${l.name}: tls.options key ${key} is not Sluice's; ignored`,
      object: `${l.owner.kind} ${l.owner.key}`,
    })).concat((l.unservedCertificates ?? []).map((message): Problem => ({ code: 'SLU_TRANSLATION', message: `${l.owner.kind} ${l.owner.key} listener ${l.name}: ${message}`, object: `${l.owner.kind} ${l.owner.key}` }))),
  );

  const listenerSets = gateways.flatMap((g) => g.listenerSets);
  const parents = {
    gateways: new Map(gateways.map((g) => [g.key, g])),
    listenerSets: new Map(listenerSets.map((s) => [s.owner.key, s])),
  };
  // Each route's placements: servedPlacements takes those served from them in one pass.
  const placementLists: (readonly Placement[])[] = [ingress.placements];
  const backends = new Map<string, Backend>(ingress.backends.map((b) => [b.name, b]));
  const passthrough: PassthroughPlacement[] = [];
  const proxied: ProxyPlacement[] = [];
  const results = [
    // HTTPRoutes and GRPCRoutes, cross-serving resolved between them.
    ...translateHttpAndGrpcRoutes(sortByName(snapshot.httpRoutes, memo, 'HTTPRoute'), sortByName(snapshot.grpcRoutes, memo, 'GRPCRoute'), parents, index).map((result) => {
      placementLists.push(result.placements);
      return result;
    }),
    ...sortByName(snapshot.tlsRoutes, memo, 'TLSRoute').map((r) => {
      const result = translateTlsRoute(r, parents, index);
      if (result) passthrough.push(...result.placements);
      return result;
    }),
    ...[...sortByName(snapshot.tcpRoutes, memo, 'TCPRoute').map((r) => translateProxyRoute(r, 'TCPRoute', parents, index)), ...sortByName(snapshot.udpRoutes, memo, 'UDPRoute').map((r) => translateProxyRoute(r, 'UDPRoute', parents, index))].map((result) => {
      if (result) proxied.push(...result.placements);
      return result;
    }),
  ];
  const routeStatuses = collectRouteResults(results, options.controllerName, memo, backends);

  // Placements name their listener by scope: this translation's listeners by scope name (a name
  // taken twice, which the CRD's unique listener names rule out, goes to the programmed one).
  const servingGateways: GatewayState[] = ingress.gateway ? [...gateways, ingress.gateway] : gateways;
  const listenerByScope = new Map<string, ListenerState>();
  for (const l of servingGateways.flatMap(allListeners)) if (!listenerByScope.has(l.scopeName) || listenerProgrammed(l)) listenerByScope.set(l.scopeName, l);
  // Rate limits (RateLimitPolicy, Ingress annotation) attach to the served placements before assembly.
  let servedRoutes: Set<string> | undefined;
  // servedPlacements' list is the memo's: copied at the first placement replaced (rate limits, upgrade types).
  const made = servedPlacements(placementLists, listenerByScope, memo);
  let served: Placement[] = made;
  const replace = (i: number, placement: Placement): void => {
    if (served === made) served = made.slice();
    served[i] = placement;
  };
  const rateLimits = translateRateLimits({
    snapshot,
    gateways,
    servedRoutes: () => (servedRoutes ??= new Set(routeStatuses.filter((s) => s.kind === 'HTTPRoute').map((s) => `${s.namespace}/${s.name}`))),
    placements: made,
    replace,
    listenerOrigin: (scope) => listenerOrigin(listenerByScope.get(scope)!),
    controllerName: options.controllerName,
    index,
  });
  const upgradeProblems = applyUpgradeTypes(served, replace, snapshot, index);
  const http: IR['http'] = {
    listeners: assembleListeners(servingGateways, served, memo),
    passthrough: assemblePassthrough(gateways, passthrough),
    ...assembleProxyListeners(gateways, proxied),
    backends: Object.fromEntries([...backends.entries()].sort(([a], [b]) => a.localeCompare(b))),
    ...(Object.keys(rateLimits.rateLimits).length > 0 ? { rateLimits: rateLimits.rateLimits } : {}),
  };

  const accessLogProblems = applyAccessLog(http, gateways);
  const backendTls = backendTlsPolicyStatuses(http, index, options.controllerName);
  const { policy, problems: policyProblems } = translateNetworkPolicies(index, options.policy);
  const l4: L4IR = { services: translateL4Services(index), ...(policy ? { policy } : {}) };
  // Last, once nothing more is written into the IR: parts equal to the previous IR's become those parts.
  const ir = memo ? share(memo.previous, { http, l4 }) : { http, l4 };
  if (memo) memo.previous = ir;
  return {
    ir: { version: (memo?.hasher ?? new IrHasher()).version(ir.http, ir.l4), ...ir },
    statuses: [
      ...classes.statuses,
      ...gateways.map(gatewayStatus),
      ...listenerSets.map(listenerSetStatus),
      ...routeStatuses,
      ...ingress.statuses,
      ...rateLimits.statuses,
      ...backendTls.statuses,
    ],
    problems: [
      ...ingresses.problems,
      ...tlsOptionProblems,
      ...ignoredFieldProblems([...snapshot.gatewayClasses.filter((c) => classes.accepted.has(c.metadata.name)), ...snapshot.listenerSets, ...snapshot.referenceGrants, ...snapshot.backendTlsPolicies], ourGateways),
      ...referenceGrantProblems(snapshot.referenceGrants),
      ...variableHeaderValueProblems(snapshot.httpRoutes, routeStatuses, index),
      ...variableHeaderValueProblems(snapshot.grpcRoutes, routeStatuses, index),
      ...foreignAnnotationProblems(ourGateways, [snapshot.listenerSets, snapshot.httpRoutes, snapshot.grpcRoutes, snapshot.tlsRoutes, snapshot.tcpRoutes, snapshot.udpRoutes], [...routeStatuses, ...listenerSets.map((s) => ({ kind: 'ListenerSet', namespace: s.owner.obj.metadata.namespace, name: s.owner.obj.metadata.name }))], index),
      ...meshRouteProblems(snapshot.httpRoutes, index),
      ...meshRouteProblems(snapshot.grpcRoutes, index),
      ...unservedProblems(snapshot, classes.accepted, options),
      ...(options.standalone ? endpointlessServiceProblems(backends, index) : []),
      ...serviceFieldProblems(backends, index),
      ...[...ingress.problems, ...rateLimits.problems, ...backendTls.problems, ...policyProblems, ...upgradeProblems, ...accessLogProblems].map((message): Problem => ({ code: 'SLU_TRANSLATION', message })),
    ],
    dependsOn: {
      references: [...index.referenced].sort(),
      pods: snapshot.networkPolicies.length + snapshot.ciliumNetworkPolicies.length + snapshot.ciliumClusterwideNetworkPolicies.length > 0,
    },
  };
}

/** A route kind's translation of one route (what collectRouteResults reads). */
type RouteResult = { status: ObjectStatus; backends: readonly Backend[] } | null | undefined;

/** What collectRouteResults made: its input, each result's place in `statuses` (-1: none), and how many results name each backend. */
interface CollectedResults {
  results: readonly RouteResult[];
  controllerName: string;
  statuses: ObjectStatus[];
  statusAt: Int32Array;
  backendUses: Map<string, number>;
}

/**
 * Each route result's status (returned, with our controllerName) and backends (into `backends`,
 * this translation's object of each name). With a memo, when at most FEW_PLACEMENTS
 * results are other objects than last time's (an unchanged route's result is handed on as it was),
 * only those are read: the statuses are last time's with theirs replaced, the backends the names
 * still used. Reading all 10 000 results, their statuses and parents took ~3 ms of every edit
 * (scattered loads, CPU profile). The same answer as the full pass wherever this translation has
 * an object for every name (memo.backend), else the full pass runs; translate-incremental.test.ts.
 */
function collectRouteResults(results: readonly RouteResult[], controllerName: string, memo: TranslateMemo | null, backends: Map<string, Backend>): readonly ObjectStatus[] {
  const before = memo?.collected as CollectedResults | null | undefined;
  const patched = before && memo ? patchedResults(before, results, controllerName, memo) : null;
  const made = patched ?? allResults(results, controllerName, memo, backends);
  if (memo) memo.collected = made;
  if (patched) for (const name of patched.backendUses.keys()) backends.set(name, memo!.backend(name)!);
  // Read only: the memo keeps it.
  return made.statuses;
}

/** Our controllerName on every parent of `status` (a status reused from the previous translation already carries it: written only when it differs). */
function claimParents(status: ObjectStatus, controllerName: string): void {
  const parents = status.status.parents as { controllerName: string }[];
  for (let i = 0; i < parents.length; i++) if (parents[i]!.controllerName !== controllerName) parents[i]!.controllerName = controllerName;
}

/** Every result read; `backends` set as they come (this translation's object of a name, else the result's own). */
function allResults(results: readonly RouteResult[], controllerName: string, memo: TranslateMemo | null, backends: Map<string, Backend>): CollectedResults {
  const statuses: ObjectStatus[] = [];
  const statusAt = new Int32Array(results.length).fill(-1);
  const backendUses = new Map<string, number>();
  for (let r = 0; r < results.length; r++) {
    const result = results[r];
    if (!result) continue;
    claimParents(result.status, controllerName);
    statusAt[r] = statuses.length;
    statuses.push(result.status);
    // (A reused compilation may hold an earlier translation's backend objects: this translation's by name.)
    for (let i = 0; i < result.backends.length; i++) {
      const b = result.backends[i]!;
      backends.set(b.name, memo?.backend(b.name) ?? b);
      backendUses.set(b.name, (backendUses.get(b.name) ?? 0) + 1);
    }
  }
  return { results, controllerName, statuses, statusAt, backendUses };
}

/** The previous collection with the few changed results read; null when too many changed, or one came or went (a null result). */
function patchedResults(before: CollectedResults, results: readonly RouteResult[], controllerName: string, memo: TranslateMemo): CollectedResults | null {
  if (before.results.length !== results.length || before.controllerName !== controllerName) return null;
  const changed: number[] = [];
  for (let r = 0; r < results.length; r++) {
    if (results[r] !== before.results[r] && changed.push(r) > FEW_PLACEMENTS) return null;
  }
  if (changed.length === 0) return { ...before, results };
  let statuses: ObjectStatus[] | null = null;
  const backendUses = new Map(before.backendUses);
  for (const r of changed) {
    const old = before.results[r];
    const now = results[r];
    if (!old || !now) return null;
    claimParents(now.status, controllerName);
    (statuses ??= before.statuses.slice())[before.statusAt[r]!] = now.status;
    for (const b of old.backends) {
      const uses = backendUses.get(b.name)! - 1;
      if (uses === 0) backendUses.delete(b.name);
      else backendUses.set(b.name, uses);
    }
    for (const b of now.backends) backendUses.set(b.name, (backendUses.get(b.name) ?? 0) + 1);
  }
  // Each name's object is this translation's (as the full pass sets them): else the full pass.
  for (const name of backendUses.keys()) if (memo.backend(name) === undefined) return null;
  return { results, controllerName, statuses: statuses!, statusAt: before.statusAt, backendUses };
}

/**
 * The placements (each route's list, in order) on programmed listeners that serve HTTP (read only:
 * the memo keeps it; rate limits and upgrade types replace placements in a copy). Whether a listener serves is
 * decided once per scope. With a memo, when the scopes serve as last time and at most
 * FEW_PLACEMENTS lists are other arrays than last time's (a route's list is handed on unchanged
 * with it), the previous result is copied around the changed lists' parts: an edit reads the few
 * changed placements, not all 50 000 (each one a load from memory scattered over the heap: ~2 ms
 * of every edit at 10 000 routes). The same answer as the full pass (a list's part depends on its
 * elements and on its scope's answer only); test/controller/translate-incremental.test.ts.
 */
function servedPlacements(lists: readonly (readonly Placement[])[], listenerByScope: Map<string, ListenerState>, memo: TranslateMemo | null): Placement[] {
  const serving = new Map<string, boolean>();
  for (const [scope, listener] of listenerByScope) serving.set(scope, listener.protocol !== 'TLS' && listenerProgrammed(listener));
  const before = memo?.served as ServedPlacements | null | undefined;
  const made = (before && patchedServed(before, lists, serving)) ?? allServed(lists, serving);
  if (memo) memo.served = made;
  // Read only: the caller copies it before it replaces a placement (the memo's stays as made).
  return made.out;
}

/** What servedPlacements made: its input lists, each scope's answer, where each list's part starts in `out` (and its end). */
interface ServedPlacements {
  lists: readonly (readonly Placement[])[];
  serving: Map<string, boolean>;
  offsets: Int32Array;
  out: Placement[];
}

function allServed(lists: readonly (readonly Placement[])[], serving: Map<string, boolean>): ServedPlacements {
  const out: Placement[] = [];
  const offsets = new Int32Array(lists.length + 1);
  for (let l = 0; l < lists.length; l++) {
    offsets[l] = out.length;
    servedOf(lists[l]!, serving, out);
  }
  offsets[lists.length] = out.length;
  return { lists, serving, offsets, out };
}

/** The previous result with the parts of the lists that changed made again; null when the scopes' answers or too many lists changed. */
function patchedServed(before: ServedPlacements, lists: readonly (readonly Placement[])[], serving: Map<string, boolean>): ServedPlacements | null {
  if (before.lists.length !== lists.length || before.serving.size !== serving.size) return null;
  for (const [scope, serves] of serving) if (before.serving.get(scope) !== serves) return null;
  const changed: number[] = [];
  for (let l = 0; l < lists.length; l++) {
    if (lists[l] !== before.lists[l] && changed.push(l) > FEW_PLACEMENTS) return null;
  }
  if (changed.length === 0) return { ...before, lists };
  const offsets = before.offsets.slice();
  const parts: Placement[][] = [];
  let from = 0;
  let shift = 0;
  for (let c = 0; c < changed.length; c++) {
    const l = changed[c]!;
    parts.push(before.out.slice(from, before.offsets[l]));
    const part = servedOf(lists[l]!, serving, []);
    parts.push(part);
    from = before.offsets[l + 1]!;
    const end = c + 1 < changed.length ? changed[c + 1]! : lists.length;
    // The lists after this one, up to the next changed one, start `shift` further.
    shift += part.length - (before.offsets[l + 1]! - before.offsets[l]!);
    if (shift !== 0) for (let k = l + 1; k <= end; k++) offsets[k] = before.offsets[k]! + shift;
  }
  parts.push(before.out.slice(from));
  return { lists, serving, offsets, out: ([] as Placement[]).concat(...parts) };
}

/** `list`'s placements on a serving scope, pushed to `out`. A route's placements come in runs on one scope: looked up once a run. */
function servedOf(list: readonly Placement[], serving: Map<string, boolean>, out: Placement[]): Placement[] {
  let scope: string | null = null;
  let serves = false;
  for (let i = 0; i < list.length; i++) {
    const p = list[i]!;
    if (p.scope !== scope) {
      scope = p.scope;
      serves = serving.get(scope) === true;
    }
    if (serves) out.push(p);
  }
  return out;
}

/** A Gateway, ListenerSet or Ingress listener as an IR origin; a ListenerSet's names its Gateway as parent. */
export function listenerOrigin(l: ListenerState): Origin {
  const { kind, obj } = l.owner;
  const origin: Origin = { kind, namespace: obj.metadata.namespace ?? '', name: obj.metadata.name, sectionName: l.name };
  if (kind !== 'ListenerSet') return origin;
  const gateway = l.gateway.obj.metadata;
  return { ...origin, parent: { kind: 'Gateway', namespace: gateway.namespace ?? '', name: gateway.name } };
}

/**
 * By namespace/name; with a memo, from the previous sort of `kind` (a kind's objects never share a
 * namespace/name: the order is strict, as memo.sorted needs; a tie would make it sort in full).
 */
function sortByName<T extends { metadata: { namespace?: string; name: string } }>(objects: T[], memo: TranslateMemo | null, kind: string): T[] {
  const compare = (a: T, b: T) => namespacedName(a).localeCompare(namespacedName(b));
  return memo ? memo.sorted(kind, objects, compare) : [...objects].sort(compare);
}

/** TLS passthrough sockets, SNI routes most specific first; a hostname claimed twice goes to the older route. */
function assemblePassthrough(gateways: GatewayState[], placements: PassthroughPlacement[]): PassthroughListener[] {
  const sockets = new Map<string, PassthroughListener>();
  for (const gateway of gateways) {
    for (const l of allListeners(gateway)) {
      if (l.protocol !== 'TLS' || !listenerProgrammed(l)) continue;
      for (const address of gateway.addresses) {
        const name = `${address}:${l.port}`;
        const socket: PassthroughListener = sockets.get(name) ?? { name, origins: [], address, port: l.port, routes: [] };
        if (gateway.backendTls?.certificate) socket.backendClientCertificate = gateway.backendTls.certificate;
        socket.origins.push(listenerOrigin(l));
        sockets.set(name, socket);
      }
    }
  }
  const sorted = [...placements].sort(olderRouteFirst);
  for (const p of sorted) {
    if (!listenerProgrammed(p.listener)) continue;
    for (const address of p.listener.gateway.addresses) {
      const socket = sockets.get(`${address}:${p.listener.port}`);
      if (socket && !socket.routes.some((r) => r.hostname === p.route.hostname)) socket.routes.push(p.route);
    }
  }
  for (const socket of sockets.values()) {
    socket.routes.sort((a, b) => hostnameSpecificity(b.hostname) - hostnameSpecificity(a.hostname) || a.name.localeCompare(b.name));
  }
  return [...sockets.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * TCP and UDP sockets (absent from the IR when there are none), each serving the oldest route
 * attached to its listener (creation time, then name).
 */
function assembleProxyListeners(gateways: GatewayState[], placements: ProxyPlacement[]): Pick<IR['http'], 'tcp' | 'udp'> {
  const sockets = new Map<string, ProxyListener>();
  const byListener = new Map<ListenerState, ProxyListener[]>();
  for (const gateway of gateways) {
    for (const l of allListeners(gateway)) {
      if ((l.protocol !== 'TCP' && l.protocol !== 'UDP') || !listenerProgrammed(l)) continue;
      const list = gateway.addresses.map((address): ProxyListener => ({ name: `${l.protocol === 'UDP' ? 'udp/' : ''}${address}:${l.port}`, origin: listenerOrigin(l), address, port: l.port }));
      for (const socket of list) sockets.set(socket.name, socket);
      byListener.set(l, list);
    }
  }
  const sorted = [...placements].sort(olderRouteFirst);
  for (const p of sorted) {
    for (const socket of byListener.get(p.listener) ?? []) socket.route ??= p.route;
  }
  const of = (protocol: string) => [...sockets.values()].filter((s) => s.name.startsWith('udp/') === (protocol === 'UDP')).sort((a, b) => a.name.localeCompare(b.name));
  const tcp = of('TCP');
  const udp = of('UDP');
  return { ...(tcp.length > 0 ? { tcp } : {}), ...(udp.length > 0 ? { udp } : {}) };
}

/**
 * Creation time, then IR name: who wins a hostname (TLS) or a listener (TCP, UDP) claimed twice.
 * Compared as values: creationTimestamp is not schema-checked metadata.
 */
function olderRouteFirst(a: { creationTimestamp: string; route: { name: string } }, b: { creationTimestamp: string; route: { name: string } }): number {
  return a.creationTimestamp < b.creationTimestamp ? -1 : a.creationTimestamp > b.creationTimestamp ? 1 : a.route.name.localeCompare(b.route.name);
}

/** Sockets from the programmed listeners, each with its scopes, virtual hosts and routes in precedence order. */
function assembleListeners(gateways: GatewayState[], placements: Placement[], memo: TranslateMemo | null): HttpListener[] {
  const sockets = new Map<string, HttpListener>();
  const scopes = new Map<string, { listener: ListenerState; scope: ListenerScope; hosts: Map<string, Placement[]> }>();
  for (const gateway of gateways) {
    for (const l of allListeners(gateway)) {
      if ((l.protocol !== 'HTTP' && l.protocol !== 'HTTPS') || !listenerProgrammed(l)) continue;
      // One scope, on a socket per Gateway address (the spec: every listener on every address).
      const scope: ListenerScope = {
        name: l.scopeName,
        origin: listenerOrigin(l),
        hostname: l.hostname,
        ...(l.hsts !== undefined ? { hsts: l.hsts } : {}),
        ...(l.gateway.backendTls?.certificate ? { backendClientCertificate: l.gateway.backendTls.certificate } : {}),
        virtualHosts: [],
      };
      for (const address of gateway.addresses) {
        const name = `${address}:${l.port}`;
        let socket = sockets.get(name);
        if (!socket) {
          socket = { name, address, port: l.port, protocol: l.protocol as HttpListener['protocol'], scopes: [] };
          if (l.protocol === 'HTTPS') socket.tls = { certificates: [], ...(l.clientValidation ? { clientValidation: l.clientValidation } : {}), settings: tlsSettingsOf(l) };
          sockets.set(name, socket);
        }
        socket.tls?.certificates.push(...l.certificates);
        socket.scopes.push(scope);
      }
      scopes.set(l.scopeName, { listener: l, scope, hosts: new Map() });
    }
  }
  const previousScopes = memo?.virtualHosts as Map<string, ScopeHosts> | undefined;
  const previousPlacements = memo?.servedPlacements as Placement[] | null | undefined;
  if (memo) memo.servedPlacements = placements;
  // Few placements are new objects (one route edited): the previous hosts with those few patched.
  if (previousScopes && previousPlacements && takeOverHosts(scopes, previousScopes, previousPlacements, placements)) return sortedSockets(sockets);
  // A route's placements on one listener and hostname come one after another: looked up once per
  // run, a host's first run taken as a slice (of the exact size: a memo keeps it).
  for (let start = 0; start < placements.length; ) {
    const first = placements[start]!;
    let end = start + 1;
    while (end < placements.length && placements[end]!.scope === first.scope && placements[end]!.hostname === first.hostname) end++;
    const entry = scopes.get(first.scope);
    // No entry: attached to a listener that is not served (e.g. its certificate is missing).
    if (entry) {
      const list = entry.hosts.get(first.hostname);
      if (list === undefined) entry.hosts.set(first.hostname, placements.slice(start, end));
      else for (let i = start; i < end; i++) list.push(placements[i]!);
    }
    start = end;
  }
  const made = new Map<string, ScopeHosts>();
  for (const { listener, scope, hosts } of scopes.values()) {
    const previous = previousScopes?.get(scope.name);
    const madeHosts = new Map<string, SortedHost>();
    const unsorted = [...hosts.entries()].map(([hostname, list]): VirtualHost => {
      const entry = sortedHost(listener, scope, hostname, list, previous?.hosts.get(hostname), memo !== null);
      if (memo) madeHosts.set(hostname, entry);
      return entry.host;
    });
    // Hosts in the order of their routes; sorted from last time's order where a few are new objects.
    const order = sortFrom(previous?.order, unsorted, bySpecificity);
    scope.virtualHosts = order.output;
    if (memo) made.set(scope.name, { hosts: madeHosts, order, singleLabelWildcards: listener.singleLabelWildcards === true });
  }
  if (memo) memo.virtualHosts = made;
  return sortedSockets(sockets);
}

function sortedSockets(sockets: Map<string, HttpListener>): HttpListener[] {
  for (const socket of sockets.values()) socket.scopes.sort(bySpecificity);
  return [...sockets.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * A virtual host from its placements in arrival order: the host made last time (`before`) when they
 * are the same, re-sorted from its order when a few changed, else sorted.
 */
function sortedHost(listener: ListenerState, scope: ListenerScope, hostname: string, list: Placement[], before: SortedHost | undefined, sameObjects: boolean, replacedAt?: number[]): SortedHost {
  const singleLabelWildcard = listener.singleLabelWildcards === true && isWildcard(hostname);
  // (`replacedAt`: the only positions where `list` may differ from before's placements.)
  const changed = before && (before.host.singleLabelWildcard === true) === singleLabelWildcard ? (replacedAt ? replacedAt.filter((i) => !samePlacement(before.placements[i]!, list[i]!)).sort((a, b) => a - b) : changedPlacements(before.placements, list)) : null;
  // The same placements (routes and their order keys) as last time: the same sorted host.
  if (before && changed?.length === 0) return before;
  // A few changed: the previous order with those taken out and put back where they belong
  // (`placements` keeps the very objects `sorted` holds: the next change takes them out by identity).
  const resorted = before && changed && changed.length <= 64 ? resort(before.sorted, changed.map((i) => before.placements[i]!), changed.map((i) => list[i]!), comparePrecedence) : null;
  let placements = list;
  if (resorted) {
    placements = before!.placements.slice();
    for (const i of changed!) placements[i] = list[i]!;
  }
  const sorted = resorted ?? [...list].sort(comparePrecedence);
  return { placements, sorted, host: { name: `${scope.name}/host/${hostname}`, hostname, ...(singleLabelWildcard ? { singleLabelWildcard: true } : {}), routes: dedupeRoutes(sorted, sameObjects) } };
}

/**
 * assembleListeners when at most FEW_PLACEMENTS of the served placements are new objects, each on
 * the scope and hostname of the one it replaces, and the scopes are the previous ones: the hosts
 * holding them are made again from their previous placements with those replaced (sortedHost), the
 * other hosts and their order are the previous ones (sortFrom finds the few replaced). Sets each
 * scope's virtual hosts and the memo's hosts; false (nothing changed) when the conditions do not hold.
 */
function takeOverHosts(
  scopes: Map<string, { listener: ListenerState; scope: ListenerScope }>,
  previousScopes: Map<string, ScopeHosts>,
  previous: readonly Placement[],
  placements: readonly Placement[],
): boolean {
  if (previous.length !== placements.length || previousScopes.size !== scopes.size) return false;
  for (const [name, { listener }] of scopes) if (previousScopes.get(name)?.singleLabelWildcards !== (listener.singleLabelWildcards === true)) return false;
  const replaced = new Map<SortedHost, { scope: string; hostname: string; by: Map<Placement, Placement> }>();
  let count = 0;
  for (let i = 0; i < placements.length; i++) {
    const now = placements[i]!;
    const old = previous[i]!;
    if (now === old) continue;
    if (++count > FEW_PLACEMENTS || now.scope !== old.scope || now.hostname !== old.hostname) return false;
    const host = previousScopes.get(now.scope)?.hosts.get(now.hostname);
    if (host === undefined) return false;
    let entry = replaced.get(host);
    if (!entry) replaced.set(host, (entry = { scope: now.scope, hostname: now.hostname, by: new Map() }));
    entry.by.set(old, now);
  }
  // Each replaced placement where its host holds it (once: placements are distinct objects), found natively.
  const lists = new Map<SortedHost, { list: Placement[]; at: number[] }>();
  for (const [host, { by }] of replaced) {
    const list = host.placements.slice();
    const at: number[] = [];
    for (const [old, now] of by) {
      const i = list.indexOf(old);
      if (i < 0) return false;
      list[i] = now;
      at.push(i);
    }
    lists.set(host, { list, at });
  }
  const hostsByScope = new Map<string, Map<SortedHost, SortedHost>>();
  for (const [host, { scope, hostname }] of replaced) {
    const { listener, scope: made } = scopes.get(scope)!;
    let hosts = hostsByScope.get(scope);
    if (!hosts) hostsByScope.set(scope, (hosts = new Map()));
    const { list, at } = lists.get(host)!;
    hosts.set(host, sortedHost(listener, made, hostname, list, host, true, at));
  }
  const inputs = new Map<string, VirtualHost[]>();
  for (const [name, hosts] of hostsByScope) {
    const input = previousScopes.get(name)!.order.input.slice();
    for (const before of hosts.keys()) {
      const at = input.indexOf(before.host);
      if (at < 0) return false;
      input[at] = hosts.get(before)!.host;
    }
    inputs.set(name, input);
  }
  // Nothing is changed above: the previous hosts are patched from here on.
  for (const [name, { scope }] of scopes) {
    const previousHosts = previousScopes.get(name)!;
    const input = inputs.get(name);
    if (input !== undefined) {
      for (const after of hostsByScope.get(name)!.values()) previousHosts.hosts.set(after.host.hostname, after);
      previousHosts.order = sortFrom(previousHosts.order, input, bySpecificity);
    }
    scope.virtualHosts = previousHosts.order.output;
  }
  return true;
}

/** Most served placements that may be new objects for takeOverHosts. */
const FEW_PLACEMENTS = 256;

/** A scope's virtual hosts as made last time, by hostname, and their order. */
interface ScopeHosts {
  hosts: Map<string, SortedHost>;
  order: Sort<VirtualHost>;
  /** The listener's, which its wildcard hosts were made with. */
  singleLabelWildcards: boolean;
}

/** A virtual host as sorted last time: its placements in arrival order, in precedence order, and the host. */
interface SortedHost {
  placements: Placement[];
  sorted: Placement[];
  host: VirtualHost;
}

/**
 * Positions where `b` differs from `a` in what a virtual host's sort reads (route by identity,
 * hostname, precedence keys); null when the lengths differ (then the host is sorted in full).
 */
function changedPlacements(a: Placement[], b: Placement[]): number[] | null {
  if (a.length !== b.length) return null;
  const changed: number[] = [];
  for (let i = 0; i < a.length; i++) if (!samePlacement(a[i]!, b[i]!)) changed.push(i);
  return changed;
}

function samePlacement(x: Placement, y: Placement): boolean {
  if (x === y) return true; // an unchanged route's placement, handed on by the memo
  if (x.route !== y.route || x.hostname !== y.hostname) return false;
  const o = x.order;
  const p = y.order;
  if (o === p) return true; // a compiled route's own keys (httproute.ts routeOrder), unchanged with it
  return (
    o.tier === p.tier && o.creationTimestamp === p.creationTimestamp && o.source === p.source && o.ruleIndex === p.ruleIndex && o.matchIndex === p.matchIndex &&
    o.grpc?.tier === p.grpc?.tier && o.grpc?.service === p.grpc?.service && o.grpc?.method === p.grpc?.method
  );
}

/**
 * A route attached twice to one listener (two parentRefs) appears once. Its two placements are
 * next to each other in precedence order (same match, same order keys: nothing sorts between them),
 * so comparing each with the one before suffices. With a memo they hold the same route object (its
 * rate-limit and upgrade copies are made once per route, memo.perObject): compared by identity,
 * not reading 50 000 names; without one, those copies are made per placement: compared by name.
 */
function dedupeRoutes(sorted: Placement[], sameObjects: boolean): Route[] {
  const out: Route[] = new Array<Route>(sorted.length);
  let n = 0;
  let last: Route | null = null;
  for (let i = 0; i < sorted.length; i++) {
    const { route } = sorted[i]!;
    if (last !== null && (last === route || (!sameObjects && last.name === route.name))) continue;
    out[n++] = last = route;
  }
  out.length = n;
  return out;
}

function bySpecificity<T extends { name: string; hostname: string | null }>(a: T, b: T): number {
  return hostnameSpecificity(b.hostname) - hostnameSpecificity(a.hostname) || a.name.localeCompare(b.name);
}
