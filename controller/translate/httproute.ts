// HTTPRoute: attachment to Gateway listeners (parentRefs, sectionName, port,
// allowed namespaces and kinds, hostname intersection), rules compiled into IR
// routes, backendRefs resolved, and the route's per-parent status.
import type { Backend, CorsPolicy, Filter, HeaderMatch, HeaderModifier, PathModifier, RedirectAction, RetryPolicy, Route, RouteAction, RouteMatch, StringMatchType, WeightedBackend } from '../../ir/types.ts';
import { namespacedName, type GRPCRouteObject, type HTTPRouteObject, type KubeObject } from '../sources/objects.ts';
import type { ObjectStatus } from '../status/conditions.ts';
import { resolveBackendRef, type BackendResolution, type RefProblem } from './backends.ts';
import { listenerTakesRoutes, type GatewayState, type ListenerSetState, type ListenerState } from './gateway.ts';
import { attachRoute, type Attached, type Parents } from './attachment.ts';
import { parseDurationMs } from './durations.ts';
import { toSessionPersistence, withCookiePath } from './session-persistence.ts';
import { headerValueTrouble } from './header-fields.ts';
import type { InputIndex } from './index-inputs.ts';
import type { KeyedResolve, Resolve, ResolutionRead } from './memo.ts';
import type {
  BackendRef,
  HTTPBackendRef,
  HTTPCors,
  HTTPHeader,
  HTTPHeaderModifier,
  HTTPPathModifier,
  HTTPRequestMirror,
  HTTPRequestRedirect,
  HTTPRouteFilter,
  HTTPRouteMatch,
  HTTPRouteRetry,
  HTTPRouteTimeouts,
} from '../schema/kinds.ts';

/** A backendRef's filter (the same kinds as a rule's, typed apart by the CRD). */
type BackendFilter = NonNullable<HTTPBackendRef['filters']>[number];

/**
 * A compiled route placed on one listener under one hostname. The listener is named by its scope
 * (ListenerState.scopeName), not held: a Translator hands an unchanged route's placements to the
 * next translation as they are (its listeners are new objects each time). Never mutated: a
 * placement whose route changes (rate limit, upgrade types) is replaced by a copy.
 */
export interface Placement {
  scope: string;
  hostname: string;
  route: Route;
  order: RouteOrder;
}

/** What Gateway API precedence needs beyond the match itself. */
export interface RouteOrder {
  /** Compared first: Ingress host paths (0), then host-less rules (1), then defaultBackend (2); -1 for HTTPS redirects. */
  tier: number;
  creationTimestamp: string;
  source: string;
  ruleIndex: number;
  matchIndex: number;
  /**
   * GRPCRoute matches (precedence.ts): 0 an Exact method match, 1 a RegularExpression one, 2 none;
   * the characters of its service and method.
   */
  grpc?: { tier: number; service: number; method: number };
}

export interface RouteTranslation {
  status: ObjectStatus;
  /** A Translator's memo may hand the same array to the next translation: read only. */
  placements: readonly Placement[];
  backends: Backend[];
}

export interface Compiled {
  /**
   * Every rule's IR routes, rule by rule then match by match, and each one's precedence keys
   * (orders[i] is routes[i]'s): two flat arrays, no object per rule or per pair (50 000 rules
   * are held by a Translator's memo: what the GC copies and traces).
   */
  routes: Route[];
  orders: RouteOrder[];
  /** Set when a rule uses something Sluice cannot serve: the route is not accepted. */
  unsupported: string | null;
  refProblem: RefProblem | null;
  backends: Backend[];
}

/**
 * The one empty list the IR's routes hold wherever they have none (filters, header and query
 * matches): most rules have none, and 50 000 rules made 200 000 empty arrays for the GC to copy and
 * trace. Frozen: the IR is never written into once made, and a write would throw, not spread.
 */
export const NONE = Object.freeze([]) as unknown as never[];

const ROUTE_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'RequestMirror', 'CORS']);
const BACKEND_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'RequestMirror']);

export function translateHttpRoute(route: HTTPRouteObject, parents: Parents, index: InputIndex): RouteTranslation | null {
  const compiled = compileMemoised(route, 'HTTPRoute', index, resolveBackendRef, (resolve) => compileRules(route, resolve));
  return attachCompiled(route, 'HTTPRoute', compiled, parents, index);
}

/** What a route's attachment is reused from (memo.ts): its status, and where it attached by scope name. */
interface AttachmentEntry {
  routes: Route[];
  unsupported: string | null;
  refProblem: RefProblem | null;
  /** The parents the route's parentRefs named, as attachment reads them (parentsKey). */
  parentsKey: string;
  /** The route's parentRefs as kind and `namespace/name` (the route object's: made once). */
  parentRefs: ParentRefKey[];
  attached: { scopeName: string; hostnames: string[] }[];
  /** Status, placements (by scope name: they hold nothing of one translation) and backends: handed on as they are. */
  translation: RouteTranslation;
}

interface ParentRefKey {
  kind: string;
  key: string;
}

/**
 * A compiled HTTPRoute or GRPCRoute attached to its parents: status, placements and backends. With a
 * Translator's memo, the previous status object and attachment are reused while the route, its
 * compilation and everything attachment reads of the parents it names are unchanged, with its
 * placements (counted on this translation's listeners).
 */
export function attachCompiled(route: HTTPRouteObject | GRPCRouteObject, kind: 'HTTPRoute' | 'GRPCRoute', compiled: Compiled, parents: Parents, index: InputIndex): RouteTranslation | null {
  const memo = index.memo;
  // Nothing reused when listeners cannot be told apart by scope name.
  const listeners = memo ? listenersByScope(parents, index) : null;
  const before = listeners !== null ? (memo!.attachment(route) as AttachmentEntry | undefined) : undefined;
  const parentRefs = listeners !== null ? (before?.parentRefs ?? parentRefKeys(route)) : null;
  const parentsKey = parentRefs !== null ? attachmentKey(route.metadata.namespace!, parentRefs, parents, index) : null;
  if (before && listeners && before.parentsKey === parentsKey && before.routes === compiled.routes && before.unsupported === compiled.unsupported && before.refProblem === compiled.refProblem) {
    for (let i = 0; i < before.attached.length; i++) listeners.get(before.attached[i]!.scopeName)!.attachedRoutes += 1;
    return before.translation;
  }
  const hostnames: string[] = (route.spec?.hostnames ?? []).map((h: string) => String(h).toLowerCase());
  const attachment = attachRoute(route, kind, hostnames, parents, compiled, index);
  if (attachment.parents.length === 0) return null;
  const status: ObjectStatus = { apiVersion: route.apiVersion, kind, namespace: route.metadata.namespace, name: route.metadata.name, status: { parents: attachment.parents } };
  const translation: RouteTranslation = { status, placements: placeRoutes(attachment.attached, compiled), backends: compiled.backends };
  if (parentsKey !== null && parentRefs !== null) {
    const attached = attachment.attached.map((a) => ({ scopeName: a.listener.scopeName, hostnames: a.hostnames }));
    const entry: AttachmentEntry = { routes: compiled.routes, unsupported: compiled.unsupported, refProblem: compiled.refProblem, parentsKey, parentRefs, attached, translation };
    memo!.setAttachment(route, entry);
  }
  return translation;
}

/** What a route kind's loop (translateRoutes) leaves for the next translation. */
interface RouteLoop {
  /** The routes in the order given, and what each translated to (null: attached to no parent of ours). */
  input: readonly object[];
  output: (RouteTranslation | null)[];
  /** Listener attachments the loop counted (attachedRoutes), by scope name. */
  counted: Map<string, number>;
  /** Every parent's fingerprint token (parentsToken), and the namespaces when a listener selects them by label. */
  parents: string;
  namespaces: readonly object[] | null;
  /** Each backendRef key some route of the loop read: by how many, one read of it and its route's namespace (to resolve it again). */
  readers: Map<string, { count: number; read: ResolutionRead; ns: string }>;
}

/** Most positions that may differ from the previous translation's routes for translateRoutes to take over the rest. */
const FEW_CHANGED = 64;

/**
 * `translateOne` over a route kind's routes (sorted: the same order every time), the translations of
 * those that attach to a parent. With a Translator's memo, when at most FEW_CHANGED routes are new
 * objects, every parent's fingerprint is the same (and the namespaces where a listener selects them)
 * and every backendRef the other routes read resolves as before, those others' translations are the
 * previous ones, taken without a call per route, and their listener attachments counted from the
 * previous total: what attachCompiled would find route by route (it reuses a translation on exactly
 * these conditions), at the cost of the changed routes. Otherwise route by route.
 */
export function translateRoutes<R extends HTTPRouteObject | GRPCRouteObject>(
  kind: 'HTTPRoute' | 'GRPCRoute',
  routes: readonly R[],
  parents: Parents,
  index: InputIndex,
  resolveOne: ResolveOne,
  translateOne: (route: R) => RouteTranslation | null,
): RouteTranslation[] {
  const memo = index.memo;
  const listeners = memo ? listenersByScope(parents, index) : null;
  let output: (RouteTranslation | null)[] | null = null;
  if (memo && listeners) {
    const before = new Map<string, number>();
    for (const [scope, l] of listeners) before.set(scope, l.attachedRoutes);
    const parentsNow = parentsToken(parents, index);
    const namespaces = parentsNow.selects ? index.snapshot.namespaces : null;
    const previous = memo.routeLoops.get(kind) as RouteLoop | undefined;
    let readers = previous && takeOver(previous, routes, parentsNow.token, namespaces, listeners, kind, index, resolveOne, (o) => (output = o), translateOne);
    if (!readers) {
      output = new Array<RouteTranslation | null>(routes.length);
      readers = new Map();
      for (let i = 0; i < routes.length; i++) {
        output[i] = translateOne(routes[i]!);
        countReads(readers, memo.routeReads(routes[i]!), routes[i]!.metadata.namespace!, 1);
      }
    }
    const counted = new Map<string, number>();
    for (const [scope, l] of listeners) counted.set(scope, l.attachedRoutes - before.get(scope)!);
    memo.routeLoops.set(kind, { input: routes, output: output!, counted, parents: parentsNow.token, namespaces, readers } satisfies RouteLoop);
  } else {
    memo?.routeLoops.delete(kind);
    output = routes.map(translateOne);
  }
  const out: RouteTranslation[] = [];
  for (let i = 0; i < output!.length; i++) if (output![i]) out.push(output![i]!);
  return out;
}

/**
 * translateRoutes' take-over: the previous translations with the changed positions translated
 * again (handed to `done`), and the loop's readers; null (nothing counted, nothing kept) when the
 * conditions do not hold. What it resolves before it may give up is what every route left reads:
 * the loop route by route would resolve it too.
 */
function takeOver<R extends HTTPRouteObject | GRPCRouteObject>(
  previous: RouteLoop,
  routes: readonly R[],
  parentsNow: string,
  namespaces: readonly object[] | null,
  listeners: Map<string, ListenerState>,
  kind: 'HTTPRoute' | 'GRPCRoute',
  index: InputIndex,
  resolveOne: ResolveOne,
  done: (output: (RouteTranslation | null)[]) => void,
  translateOne: (route: R) => RouteTranslation | null,
): RouteLoop['readers'] | null {
  const memo = index.memo!;
  if (previous.input.length !== routes.length || previous.parents !== parentsNow || !sameElements(previous.namespaces, namespaces)) return null;
  const changed: number[] = [];
  for (let i = 0; i < routes.length; i++) {
    if (routes[i] !== previous.input[i] && changed.push(i) > FEW_CHANGED) return null;
  }
  // What the changed routes counted and read before.
  const uncounted = new Map<string, number>();
  const delta = new Map<string, { count: number; read: ResolutionRead; ns: string }>();
  for (const i of changed) {
    const old = previous.input[i] as R;
    const was = previous.output[i] ?? null;
    if (was !== null) {
      const entry = memo.attachment(old) as AttachmentEntry | undefined;
      if (entry?.translation !== was) return null;
      for (const a of entry.attached) uncounted.set(a.scopeName, (uncounted.get(a.scopeName) ?? 0) + 1);
    }
    const reads = memo.routeReads(old);
    if (reads === undefined) return null;
    countReads(delta, reads, old.metadata.namespace!, -1);
  }
  for (const scope of previous.counted.keys()) if (!listeners.has(scope)) return null;
  // Every key a route left reads still resolves as it did (resolved once a translation, as they would be route by route).
  for (const [key, r] of previous.readers) {
    if (r.count + (delta.get(key)?.count ?? 0) > 0 && !memo.readStands(keyedResolver(index, kind, r.ns, resolveOne), r.read)) return null;
  }
  for (const [scope, l] of listeners) l.attachedRoutes += (previous.counted.get(scope) ?? 0) - (uncounted.get(scope) ?? 0);
  const output = previous.output.slice();
  for (const i of changed) {
    output[i] = translateOne(routes[i]!);
    countReads(delta, memo.routeReads(routes[i]!), routes[i]!.metadata.namespace!, 1);
  }
  // The readers, updated in place (the previous loop's are not looked at again).
  const readers = previous.readers;
  for (const [key, d] of delta) {
    const r = readers.get(key);
    const count = (r?.count ?? 0) + d.count;
    if (count <= 0) readers.delete(key);
    else if (r) r.count = count;
    else readers.set(key, { ...d, count });
  }
  done(output);
  return readers;
}

/** Adds `by` for each of `reads` (one route's: its keys are distinct) to `readers`. */
function countReads(readers: RouteLoop['readers'], reads: readonly ResolutionRead[] | undefined, ns: string, by: number): void {
  if (reads === undefined) return;
  for (let i = 0; i < reads.length; i++) {
    const read = reads[i]!;
    const r = readers.get(read.key);
    if (r) r.count += by;
    else readers.set(read.key, { count: by, read, ns });
  }
}

function sameElements(a: readonly object[] | null, b: readonly object[] | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Every parent by key and fingerprint token (what attachmentKey reads of them), and whether a listener selects namespaces by label. */
function parentsToken(parents: Parents, index: InputIndex): { token: string; selects: boolean } {
  let token = '';
  let selects = false;
  for (const [key, parent] of parents.gateways) {
    const fingerprint = parentToken(parent, index);
    token += `|G${key}:${fingerprint.token}`;
    selects ||= fingerprint.selects;
  }
  for (const [key, parent] of parents.listenerSets) {
    const fingerprint = parentToken(parent, index);
    token += `|L${key}:${fingerprint.token}`;
    selects ||= fingerprint.selects;
  }
  return { token, selects };
}

/**
 * Everything attachRoute reads besides the route and its compilation: for each parentRef, the
 * parent it names (or none) with, per listener, what attachToParent checks; the route namespace's
 * labels where a listener selects namespaces.
 */
function attachmentKey(ns: string, parentRefs: ParentRefKey[], parents: Parents, index: InputIndex): string {
  let key = '';
  for (let i = 0; i < parentRefs.length; i++) {
    const { kind, key: parentKey } = parentRefs[i]!;
    const parent = kind === 'Gateway' ? parents.gateways.get(parentKey) : kind === 'ListenerSet' ? parents.listenerSets.get(parentKey) : undefined;
    if (!parent) {
      key += '|-';
      continue;
    }
    const fingerprint = parentToken(parent, index);
    key += `|${fingerprint.token}`;
    if (fingerprint.selects) key += JSON.stringify(index.namespaceLabels(ns));
  }
  return key;
}

function parentRefKeys(route: HTTPRouteObject | GRPCRouteObject): ParentRefKey[] {
  const ns = route.metadata.namespace!;
  return (route.spec?.parentRefs ?? []).map((parentRef) => ({ kind: parentRef?.kind ?? 'Gateway', key: `${parentRef?.namespace ?? ns}/${parentRef?.name}` }));
}

/**
 * Each parent's fingerprint as a token (memo.token: equal tokens, equal fingerprints), computed once
 * per translation: parents are this translation's objects. A route's key is then a few characters.
 */
const parentFingerprints = new WeakMap<GatewayState | ListenerSetState, { token: number; selects: boolean }>();

function parentToken(parent: GatewayState | ListenerSetState, index: InputIndex): { token: number; selects: boolean } {
  let fingerprint = parentFingerprints.get(parent);
  if (!fingerprint) {
    const { key: text, selects } = parentFingerprint(parent);
    parentFingerprints.set(parent, (fingerprint = { token: index.memo!.token(text), selects }));
  }
  return fingerprint;
}

function parentFingerprint(parent: GatewayState | ListenerSetState): { key: string; selects: boolean } {
  const allowed = 'allowed' in parent ? `${parent.allowed.ok}:${parent.allowed.message}` : '';
  // Also what NotAllowedByListeners' message says of a listener (attachment.ts whyNotAllowed): its
  // protocol and TLS mode, and why one is not served.
  const listeners = parent.listeners.map((l) => {
    const takes = listenerTakesRoutes(l);
    const notServed = takes ? null : !l.gateway.accepted.ok ? l.gateway.accepted : !l.accepted.ok ? l.accepted : l.conflict;
    return [l.scopeName, l.name, l.port, l.hostname, takes, l.supportedKinds, l.allowedRoutes, l.owner.namespace, l.protocol, l.tlsMode, notServed?.reason, notServed?.message];
  });
  return { key: JSON.stringify([allowed, listeners]), selects: parent.listeners.some((l) => l.allowedRoutes.from === 'Selector') };
}

/** This translation's listeners of every parent by scope name; null if a name is taken twice. */
function listenersByScope(parents: Parents, index: InputIndex): Map<string, ListenerState> | null {
  return index.cached('attachment listeners by scope', () => {
    const out = new Map<string, ListenerState>();
    for (const parent of [...parents.gateways.values(), ...parents.listenerSets.values()]) {
      for (const l of parent.listeners) {
        const known = out.get(l.scopeName);
        if (known !== undefined && known !== l) return null;
        out.set(l.scopeName, l);
      }
    }
    return out;
  });
}

/** Every compiled route on every attached listener, under each effective hostname (an array of the exact size: a memo keeps it). */
export function placeRoutes(attached: Attached[], compiled: Pick<Compiled, 'routes' | 'orders'>): Placement[] {
  const { routes, orders } = compiled;
  let size = 0;
  for (let a = 0; a < attached.length; a++) size += attached[a]!.hostnames.length * routes.length;
  const placements = new Array<Placement>(size);
  let n = 0;
  for (let a = 0; a < attached.length; a++) {
    const { listener, hostnames } = attached[a]!;
    for (let h = 0; h < hostnames.length; h++) {
      for (let i = 0; i < routes.length; i++) placements[n++] = { scope: listener.scopeName, hostname: hostnames[h]!, route: routes[i]!, order: orders[i]! };
    }
  }
  return placements;
}

/**
 * A route's compilation to fill: arrays of the size its rules compile to (one IR route per match; a
 * rule without matches has one), and its source strings, one per route for every rule's `source`
 * and for its precedence key (namespacedName) when that reads the same.
 */
export function startCompile(route: KubeObject, rules: readonly ({ matches?: readonly unknown[] } | undefined)[]): { out: Compiled; source: string; orderSource: string } {
  let size = 0;
  for (let i = 0; i < rules.length; i++) size += rules[i]?.matches?.length || 1;
  const ns = route.metadata.namespace!;
  const source = `${ns}/${route.metadata.name}`;
  return {
    out: { routes: new Array<Route>(size), orders: new Array<RouteOrder>(size), unsupported: null, refProblem: null, backends: [] },
    source,
    orderSource: ns ? source : namespacedName(route),
  };
}

/**
 * A compiled route's precedence keys (the route's own; every placement of it shares them).
 * `source` is namespacedName(route), made once per route by the caller.
 */
export function routeOrder(route: KubeObject, source: string, ruleIndex: number, matchIndex: number, grpc?: RouteOrder['grpc']): RouteOrder {
  const creationTimestamp = route.metadata.creationTimestamp ?? '';
  return grpc ? { tier: 0, creationTimestamp, source, ruleIndex, matchIndex, grpc } : { tier: 0, creationTimestamp, source, ruleIndex, matchIndex };
}

/**
 * A route's rules compiled, each backendRef resolved once per translation; with a Translator's memo,
 * the previous compilation when the route and what its references resolve to are unchanged.
 */
export function compileMemoised<T extends Compiled>(
  route: KubeObject,
  routeKind: 'HTTPRoute' | 'GRPCRoute',
  index: InputIndex,
  resolveOne: (ref: BackendRef | undefined, routeNamespace: string, index: InputIndex, routeKind: string) => BackendResolution,
  compile: (resolve: Resolve<BackendResolution>) => T,
): T {
  const ns = route.metadata.namespace!;
  const { memo } = index;
  const resolver = keyedResolver(index, routeKind, ns, resolveOne);
  // Without a memo too, each distinct reference is resolved once per translation (10 000 routes to one Service: one resolution).
  if (!memo) return compile((ref) => resolver.resolve(resolver.key(ref), ref));
  return memo.compile(route, resolver, compile);
}

/** Per translation, one resolver per route kind, namespace and resolve function (not one per route: nothing to allocate for a route whose compilation is reused). */
type ResolveOne = (ref: BackendRef | undefined, routeNamespace: string, index: InputIndex, routeKind: string) => BackendResolution;
const resolvers = new WeakMap<InputIndex, Map<string, Map<string, KeyedResolve<BackendResolution> & { fn: ResolveOne }>>>();

function keyedResolver(
  index: InputIndex,
  routeKind: 'HTTPRoute' | 'GRPCRoute',
  ns: string,
  resolveOne: ResolveOne,
): KeyedResolve<BackendResolution> {
  let byKind = resolvers.get(index);
  if (!byKind) resolvers.set(index, (byKind = new Map()));
  // By kind, then namespace: no key string made per route.
  let byScope = byKind.get(routeKind);
  if (!byScope) byKind.set(routeKind, (byScope = new Map()));
  let resolver = byScope.get(ns);
  if (resolver?.fn !== resolveOne) {
    const keyOf = (ref: BackendRef | undefined) => `backendRef ${JSON.stringify([routeKind, ns, ref?.group, ref?.kind, ref?.namespace, ref?.name, ref?.port])}`;
    // A reference naming only a name and port (a Service of the route's namespace: most of them)
    // gets the one key string made for them: no JSON per rule, and a string whose hash the Maps
    // it is looked up in computed once. Keyed by the values themselves (a name 5 and "5" apart).
    const plain = new Map<unknown, Map<unknown, string>>();
    resolver = {
      fn: resolveOne,
      // The key names everything resolveOne reads of the reference (the rest it reads from the index).
      key: (ref) => {
        if (ref === undefined || ref === null || ref.group !== undefined || ref.kind !== undefined || ref.namespace !== undefined) return keyOf(ref);
        let byPort = plain.get(ref.name);
        if (byPort === undefined) plain.set(ref.name, (byPort = new Map()));
        let key = byPort.get(ref.port);
        if (key === undefined) byPort.set(ref.port, (key = keyOf(ref)));
        return key;
      },
      resolve: (key, ref) => (index.computed(key) as BackendResolution | undefined) ?? index.cached(key, () => resolveOne(ref, ns, index, routeKind)),
    };
    byScope.set(ns, resolver);
  }
  return resolver;
}

/** Reads nothing but the route and its references' resolutions (`resolve`): what makes the memo above sound. */
function compileRules(route: HTTPRouteObject, resolve: Resolve<BackendResolution>): Compiled {
  const ns = route.metadata.namespace!;
  const base = `httproute/${ns}/${route.metadata.name}`;
  const rules = route.spec?.rules ?? [];
  const { out, source, orderSource } = startCompile(route, rules);
  let n = 0;
  let previousAction: RouteAction | null = null;
  const unsupported = (msg: string) => {
    out.unsupported ??= msg;
  };
  const backendOf = (ref: BackendRef | undefined) => backendName(resolve(ref), out);
  rules.forEach((rule, ruleIndex) => {
    const where = `rule ${ruleIndex}`;
    const filters: Filter[] = [];
    let redirect: RedirectAction | null = null;
    // An ExtensionRef Sluice cannot resolve (it resolves none): not skipped; the requests it would
    // have processed get 500 (the spec), ResolvedRefs=False names it, the other rules are served.
    let unresolvedFilter: string | null = null;
    for (const f of rule?.filters ?? []) {
      if (f?.type === 'ExtensionRef') {
        unresolvedFilter ??= extensionRefProblem(f.extensionRef, where);
        continue;
      }
      if (!ROUTE_FILTERS.has(f?.type)) {
        unsupported(`${where}: filter ${f?.type} is not supported`);
        continue;
      }
      if (f.type === 'RequestRedirect') redirect = toRedirect(f.requestRedirect ?? {}, `${where} RequestRedirect`, unsupported);
      else filters.push(toFilter(f, backendOf, where, unsupported));
    }
    if (redirect && filters.some((f) => f.type === 'URLRewrite')) unsupported(`${where}: RequestRedirect and URLRewrite cannot be combined`);
    // map: an array of the exact size (the IR keeps it), where push would leave room for 16.
    const backends: WeightedBackend[] = (rule?.backendRefs ?? []).map((ref) => {
      const resolved = resolve(ref);
      const refFilters: Filter[] = [];
      let unresolvedRefFilter: string | null = null;
      for (const f of ref?.filters ?? []) {
        if (f?.type === 'ExtensionRef') unresolvedRefFilter ??= extensionRefProblem(f.extensionRef, `${where} backendRef ${ref?.name}`);
        else if (!BACKEND_FILTERS.has(f?.type)) unsupported(`${where}: backendRef filter ${f?.type} is not supported`);
        else if (f.type === 'RequestRedirect') refFilters.push({ type: 'RequestRedirect', redirect: toRedirect(f.requestRedirect ?? {}, `${where} backendRef ${ref?.name} RequestRedirect`, unsupported) });
        else refFilters.push(toFilter(f, backendOf, `${where} backendRef ${ref?.name}`, unsupported));
      }
      // Its share of the requests gets 500, as for an invalid backendRef.
      if (unresolvedRefFilter !== null) out.refProblem ??= { reason: 'InvalidKind', message: unresolvedRefFilter };
      return {
        backend: unresolvedRefFilter !== null ? null : backendName(resolved, out),
        weight: ref?.weight === undefined ? 1 : Number(ref.weight),
        filters: refFilters.length === 0 ? NONE : refFilters,
      };
    });
    const timeouts = toTimeouts(rule?.timeouts, where, unsupported);
    const retry = toRetry(rule?.retry, where, unsupported);
    const session = toSessionPersistence(rule?.sessionPersistence, `${base}/rule/${ruleIndex}`, where, unsupported);
    if (unresolvedFilter !== null) out.refProblem ??= { reason: 'InvalidKind', message: unresolvedFilter };
    const action: RouteAction = unresolvedFilter !== null
      ? { type: 'DirectResponse', status: 500 }
      : redirect
        ? redirect
        : backends.length > 0
          ? sameForward(previousAction, backends) ?? { type: 'Forward', backends }
          : { type: 'DirectResponse', status: 500 };
    previousAction = action;
    const matches: HTTPRouteMatch[] = rule?.matches?.length ? rule.matches : [{}];
    const replacesPrefix = (redirect as RedirectAction | null)?.path?.type === 'ReplacePrefixMatch' || filters.some(replacesPrefixMatch) || backends.some((b) => b.filters.some(replacesPrefixMatch));
    matches.forEach((m, matchIndex) => {
      const match = toMatch(m, `${where} match ${matchIndex}`, unsupported);
      if (replacesPrefix && match.path.type !== 'PathPrefix') unsupported(`${where}: ReplacePrefixMatch needs a PathPrefix match`);
      out.routes[n] = {
        name: `${base}/rule/${ruleIndex}/match/${matchIndex}`,
        source,
        origin: { kind: 'HTTPRoute', namespace: ns, name: route.metadata.name, ruleIndex, ...(typeof rule?.name === 'string' && rule.name !== '' ? { sectionName: rule.name } : {}) },
        match,
        filters: filters.length === 0 ? NONE : filters,
        action,
        ...(timeouts ? { timeouts } : {}),
        ...(retry ? { retry } : {}),
        ...(session ? { sessionPersistence: withCookiePath(session, match.path)! } : {}),
      };
      out.orders[n++] = routeOrder(route, orderSource, ruleIndex, matchIndex);
    });
  });
  out.backends = out.backends.slice(); // kept by the memo: of the exact size
  return out;
}

/**
 * `previous` (the route's previous rule's action) when it forwards to these very backends, weights
 * and no backend filters: rules of a route mostly send their matches to one Service, and the memo
 * keeps every rule's action (one object then, not one a rule; the IR's content is the same).
 */
export function sameForward(previous: RouteAction | null, backends: WeightedBackend[]): RouteAction | null {
  if (previous?.type !== 'Forward' || previous.backends.length !== backends.length) return null;
  for (let i = 0; i < backends.length; i++) {
    const a = previous.backends[i]!;
    const b = backends[i]!;
    if (a.backend !== b.backend || a.weight !== b.weight || a.filters !== NONE || b.filters !== NONE) return null;
  }
  return previous;
}

/** A filter that replaces the matched prefix (it needs a PathPrefix match). */
function replacesPrefixMatch(f: Filter): boolean {
  return (f.type === 'URLRewrite' && f.path?.type === 'ReplacePrefixMatch') || (f.type === 'RequestRedirect' && f.redirect.path?.type === 'ReplacePrefixMatch');
}

// The HTTPRoute CRD's enums and CEL rules (checked in standalone by controller/schema/validate.ts, in
// Kubernetes mode by the API server) already refuse other path, header and query match types, Exact
// and PathPrefix values not starting with /, and lower-case methods: only what they cannot say is
// checked here (a regular expression JavaScript compiles).
function toMatch(m: HTTPRouteMatch, where: string, unsupported: (msg: string) => void): RouteMatch {
  const pathType = m?.path?.type ?? 'PathPrefix';
  const pathValue = String(m?.path?.value ?? '/');
  if (pathType === 'RegularExpression') checkRegex(pathValue, `${where} path`, unsupported);
  const headers = toHeaderMatches(m?.headers, where, unsupported);
  const queryParams = [];
  const seenParams = m?.queryParams?.length ? new Set<string>() : null;
  for (const q of m?.queryParams ?? []) {
    const name = String(q?.name ?? '');
    if (seenParams!.has(name)) continue;
    seenParams!.add(name);
    const type = q?.type ?? 'Exact';
    if (type === 'RegularExpression') checkRegex(String(q?.value), `${where} query ${name}`, unsupported);
    queryParams.push({ name, type, value: String(q?.value ?? '') });
  }
  return {
    path: { type: pathType, value: pathValue },
    headers,
    queryParams: queryParams.length === 0 ? NONE : queryParams,
    ...(m?.method ? { method: m.method } : {}),
  };
}

/** HTTPRoute and GRPCRoute header matches: names lower-cased, a repeated name ignored (the spec). */
export function toHeaderMatches(
  list: { name: string; type?: StringMatchType; value: string }[] | undefined,
  where: string,
  unsupported: (msg: string) => void,
): HeaderMatch[] {
  if (!list?.length) return NONE;
  // Of the exact size (the IR keeps it); the CRD allows 16 matches: names compared in a loop.
  const headers = new Array<HeaderMatch>(list.length);
  let n = 0;
  next: for (const h of list) {
    const name = String(h?.name ?? '').toLowerCase();
    for (let i = 0; i < n; i++) if (headers[i]!.name === name) continue next; // the spec: later duplicates of a header name are ignored
    const type = h?.type ?? 'Exact';
    if (type === 'RegularExpression') checkRegex(String(h?.value), `${where} header ${name}`, unsupported);
    headers[n++] = { name, type, value: String(h?.value ?? '') };
  }
  headers.length = n;
  return headers;
}

export function checkRegex(pattern: string, where: string, unsupported: (msg: string) => void): void {
  try {
    new RegExp(pattern);
  } catch (err) {
    unsupported(`${where}: invalid regular expression ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}

/** An ExtensionRef filter, which Sluice never resolves (it defines no filter kinds), as the route's ResolvedRefs message. */
export function extensionRefProblem(ref: { group?: string; kind?: string; name?: string } | undefined, where: string): string {
  return `${where}: ExtensionRef filter ${ref?.group || 'core'}/${ref?.kind} ${ref?.name} cannot be resolved (Sluice has no filter extensions); its requests get 500`;
}

/** A resolved reference's IR backend name (recorded in `out`), or null with its problem recorded. */
export function backendName(resolved: BackendResolution, out: Compiled): string | null {
  if ('problem' in resolved) {
    out.refProblem ??= resolved.problem;
    return null;
  }
  // Rules of a route mostly name one backend: not listed again after itself.
  if (out.backends[out.backends.length - 1] !== resolved.backend) out.backends.push(resolved.backend);
  return resolved.backend.name;
}

/**
 * Every filter but RequestRedirect (which becomes the rule's action, or a backend-level filter).
 * `backendOf` resolves a mirror's backendRef as the route kind resolves its backends.
 */
export function toFilter(f: HTTPRouteFilter | BackendFilter, backendOf: (ref: BackendRef | undefined) => string | null, where: string, unsupported: (msg: string) => void): Filter {
  switch (f.type) {
    case 'RequestHeaderModifier':
      return { type: f.type, modifier: toHeaderModifier(f.requestHeaderModifier ?? {}, `${where} ${f.type}`, unsupported) };
    case 'ResponseHeaderModifier':
      return { type: f.type, modifier: toHeaderModifier(f.responseHeaderModifier ?? {}, `${where} ${f.type}`, unsupported) };
    case 'URLRewrite': {
      const path = toPathModifier(f.urlRewrite?.path, `${where} URLRewrite`, unsupported);
      return { type: 'URLRewrite', ...(f.urlRewrite?.hostname ? { hostname: String(f.urlRewrite.hostname) } : {}), ...(path ? { path } : {}) };
    }
    case 'RequestMirror': {
      const mirror: Partial<HTTPRequestMirror> = f.requestMirror ?? {};
      return { type: 'RequestMirror', backend: backendOf(mirror.backendRef), percent: mirrorPercent(mirror) };
    }
    case 'CORS':
      return { type: 'CORS', cors: toCors(f.cors ?? {}) };
    default:
      throw new Error(`unexpected filter ${f.type}`);
  }
}

/** `percent` (0–100) or `fraction` (numerator / denominator, default 100); neither means every request. */
function mirrorPercent(mirror: Partial<HTTPRequestMirror>): number {
  if (mirror.percent !== undefined) return Math.min(100, Math.max(0, Number(mirror.percent)));
  if (mirror.fraction?.numerator !== undefined) {
    const denominator = Number(mirror.fraction.denominator ?? 100);
    return denominator > 0 ? Math.min(100, (100 * Number(mirror.fraction.numerator)) / denominator) : 0;
  }
  return 100;
}

function toCors(spec: HTTPCors): CorsPolicy {
  return {
    allowOrigins: (spec.allowOrigins ?? []).map(String),
    allowCredentials: spec.allowCredentials === true,
    allowMethods: (spec.allowMethods ?? []).map((m: string) => (m === '*' ? '*' : String(m).toUpperCase())),
    allowHeaders: (spec.allowHeaders ?? []).map((h: string) => String(h).toLowerCase()),
    exposeHeaders: (spec.exposeHeaders ?? []).map((h: string) => String(h).toLowerCase()),
    ...(spec.maxAge !== undefined ? { maxAge: Number(spec.maxAge) } : {}),
  };
}

function toTimeouts(spec: HTTPRouteTimeouts | undefined, where: string, unsupported: (msg: string) => void): Route['timeouts'] | undefined {
  if (!spec) return undefined;
  const out: NonNullable<Route['timeouts']> = {};
  for (const [field, key] of [['request', 'requestMs'], ['backendRequest', 'backendRequestMs']] as const) {
    if (spec[field] === undefined) continue;
    const ms = parseDurationMs(spec[field]);
    if (ms === null) unsupported(`${where}: timeouts.${field} ${JSON.stringify(spec[field])} is not a duration such as 500ms or 1m30s`);
    else if (ms > 0) out[key] = ms;
  }
  // backendRequest longer than a non-zero request: refused by the CRD's CEL rule, not checked again.
  return Object.keys(out).length ? out : undefined;
}

function toRetry(spec: HTTPRouteRetry | undefined, where: string, unsupported: (msg: string) => void): RetryPolicy | undefined {
  if (!spec) return undefined;
  const backoffMs = spec.backoff === undefined ? 0 : parseDurationMs(spec.backoff);
  if (backoffMs === null) {
    unsupported(`${where}: retry.backoff ${JSON.stringify(spec.backoff)} is not a duration`);
    return undefined;
  }
  // Without `attempts` the spec leaves the count to implementations: one retry, as Envoy Gateway does.
  return { codes: (spec.codes ?? []).map(Number), attempts: spec.attempts === undefined ? 1 : Number(spec.attempts), backoffMs };
}

function toHeaderModifier(spec: HTTPHeaderModifier, where: string, unsupported: (msg: string) => void): HeaderModifier {
  const values = (list: HTTPHeader[] | undefined) =>
    (list ?? []).map((h) => {
      const value = String(h.value ?? '');
      // The schema bounds only its length: every request of the route would fail (500), said nowhere.
      const trouble = headerValueTrouble(value);
      if (trouble !== null) unsupported(`${where} ${h.name}: ${trouble}`);
      return { name: String(h.name).toLowerCase(), value };
    });
  return { set: values(spec.set), add: values(spec.add), remove: (spec.remove ?? []).map((n: string) => String(n).toLowerCase()) };
}

const CONTROL_CHARACTER = /[\x00-\x1f\x7f]/;

/**
 * A path to replace with, as written (the dataplane percent-encodes what a request line and a
 * Location cannot carry raw: a space, a character beyond ASCII). A control character is refused as
 * in a header value: the CRD bounds only the length, and such a path failed each request (500 or 400).
 */
function toPathModifier(path: HTTPPathModifier | undefined, where: string, unsupported: (msg: string) => void): PathModifier | undefined {
  const checked = (field: string, value: string) => {
    if (CONTROL_CHARACTER.test(value)) unsupported(`${where}: path.${field} ${JSON.stringify(value)} holds a control character, which no URL path can carry`);
    return value;
  };
  if (path?.type === 'ReplaceFullPath') return { type: 'ReplaceFullPath', value: checked('replaceFullPath', String(path.replaceFullPath ?? '/')) };
  if (path?.type === 'ReplacePrefixMatch') return { type: 'ReplacePrefixMatch', value: checked('replacePrefixMatch', String(path.replacePrefixMatch ?? '/')) };
  return undefined;
}

function toRedirect(spec: HTTPRequestRedirect, where: string, unsupported: (msg: string) => void): RedirectAction {
  const path = toPathModifier(spec.path, where, unsupported);
  return {
    type: 'Redirect',
    ...(spec.scheme ? { scheme: spec.scheme } : {}),
    ...(spec.hostname ? { hostname: String(spec.hostname) } : {}),
    ...(spec.port !== undefined ? { port: Number(spec.port) } : {}),
    ...(path ? { path } : {}),
    statusCode: spec.statusCode === undefined ? 302 : Number(spec.statusCode),
  };
}
