// Status assertions of the Gateway API suite, evaluated against the objects
// Sluice reports on GET /api/status. Each evaluation returns the list of
// problems (empty = the check holds); the runner polls until it holds.

import type { Condition, ListenerExpectation, RouteKind, StatusCheck } from './types.ts';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface StatusObject {
  apiVersion?: string;
  kind: string;
  metadata: { name: string; namespace?: string; generation?: number; annotations?: Record<string, string> };
  spec?: any;
  status?: any;
}

/** Objects by kind and `namespace/name` (or `name` for cluster-scoped kinds). */
export class StatusIndex {
  #byKind = new Map<string, Map<string, StatusObject>>();

  constructor(items: StatusObject[]) {
    for (const item of items) {
      if (!item || typeof item.kind !== 'string' || !item.metadata?.name) continue;
      let m = this.#byKind.get(item.kind);
      if (!m) this.#byKind.set(item.kind, (m = new Map()));
      m.set(refOf(item), item);
    }
  }

  get(kind: string, ref: string): StatusObject | undefined {
    return this.#byKind.get(kind)?.get(ref);
  }

  list(kind: string): StatusObject[] {
    return [...(this.#byKind.get(kind)?.values() ?? [])];
  }

  kinds(): string[] {
    return [...this.#byKind.keys()];
  }

  /** A route a check names: of `kind` (the check's routeKind), HTTPRoute when none is given. */
  route(ref: string, kind: RouteKind = 'HTTPRoute'): StatusObject | undefined {
    return this.get(kind, ref);
  }
}

export function refOf(obj: { metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

export function splitRef(ref: string): { namespace: string | undefined; name: string } {
  const i = ref.indexOf('/');
  return i === -1 ? { namespace: undefined, name: ref } : { namespace: ref.slice(0, i), name: ref.slice(i + 1) };
}

export interface CheckContext {
  controllerName: string;
  index: StatusIndex;
  /** `Kind/ref` -> metadata.generation recorded just before the follow-up mutations. */
  generationsBefore: Map<string, number>;
  /** Gateways the test's manifest set declares (namespace/name), for namespacesReady. */
  declaredGateways: { ref: string; annotations: Record<string, string> }[];
  /** Per-check state carried across polls. */
  state: { emptyParentsPolls?: number };
}

/** Which suite.json statusTimeoutsSeconds entry bounds each check. */
export function timeoutNameFor(check: StatusCheck): string {
  switch (check.check) {
    case 'parentAndRoutesAccepted':
      return check.requireGatewayAddress ? 'gatewayMustHaveAddress' : 'routeMustHaveParents';
    case 'routeCondition':
      return 'httpRouteMustHaveCondition';
    case 'routeParents':
      return 'routeMustHaveParents';
    case 'routeHasNoAcceptedParents':
      return 'httpRouteMustNotHaveParents';
    case 'gatewayCondition':
      return 'gatewayMustHaveCondition';
    case 'gatewayListenersExact':
    case 'gatewayHasZeroRoutes':
    case 'gatewayAttachedListenerSets':
      return 'gatewayStatusMustHaveListeners';
    case 'gatewayListenerConditions':
      return 'gatewayListenersMustHaveConditions';
    case 'gatewayHasAddress':
      return 'gatewayMustHaveAddress';
    case 'namespacesReady':
      return 'namespacesMustBeReady';
    case 'listenerSetCondition':
      return 'listenerSetMustHaveCondition';
    case 'listenerSetListenersExact':
    case 'listenerSetListenerConditions':
      return 'listenerSetListenersMustHaveConditions';
    case 'gatewayClassAccepted':
      return 'gwcMustBeAccepted';
    case 'gatewayConditionsAtLatestGeneration':
    case 'gatewayClassConditionsAtLatestGeneration':
    case 'routeConditionsAtLatestGeneration':
    case 'generationIncreased':
    case 'backendTLSPolicyConditionsAtLatestGeneration':
      return 'latestObservedGenerationSet';
    case 'backendTLSPolicyCondition':
      return 'backendTLSPolicyMustHaveCondition';
    case 'gatewayStatusAddresses':
      return 'gatewayMustHaveAddress';
  }
}

/** How often a check is polled (ms); 0 = evaluated once (suite README, "Status checks"). */
export function pollIntervalFor(check: StatusCheck, defaultMs: number): number {
  switch (check.check) {
    case 'backendTLSPolicyConditionsAtLatestGeneration':
      return 0;
    case 'backendTLSPolicyCondition':
    case 'gatewayStatusAddresses':
      return 100;
    default:
      return defaultMs;
  }
}

/** Short description of a check for failure messages. */
export function describeCheck(check: StatusCheck): string {
  const c = check as Record<string, unknown>;
  const subject = c.route ?? c.gateway ?? c.listenerSet ?? c.gatewayClass ?? c.parent ?? c.object ?? c.policy ?? (Array.isArray(c.namespaces) ? c.namespaces.join(',') : '');
  return `${check.check} ${String(subject)}`;
}

// ---------------------------------------------------------------------------
// Condition helpers
// ---------------------------------------------------------------------------

interface K8sCondition {
  type?: string;
  status?: string;
  reason?: string;
  observedGeneration?: number;
}

export function conditionMatches(actual: K8sCondition, expected: Condition): boolean {
  return (
    actual.type === expected.type &&
    (expected.status === null || actual.status === expected.status) &&
    (expected.reason === null || actual.reason === expected.reason)
  );
}

export function formatCondition(c: Condition): string {
  return `${c.type}=${c.status ?? '*'}/${c.reason ?? '*'}`;
}

function formatActual(list: K8sCondition[] | undefined): string {
  if (!list || list.length === 0) return 'no conditions';
  return list.map((c) => `${c.type}=${c.status}/${c.reason}@gen${c.observedGeneration ?? '?'}`).join(', ');
}

/** Problems when `expected` is not among `actual`. */
function requireCondition(where: string, actual: K8sCondition[] | undefined, expected: Condition): string[] {
  if ((actual ?? []).some((c) => conditionMatches(c, expected))) return [];
  return [`${where}: expected condition ${formatCondition(expected)}, got ${formatActual(actual)}`];
}

function requireLatestGeneration(where: string, obj: StatusObject, list: K8sCondition[] | undefined, requireSome = true): string[] {
  const gen = obj.metadata.generation;
  if (!list || list.length === 0) return requireSome ? [`${where}: no conditions`] : [];
  const stale = list.filter((c) => c.observedGeneration !== gen);
  if (stale.length === 0) return [];
  return [`${where}: conditions not at generation ${gen}: ${stale.map((c) => `${c.type}@${c.observedGeneration ?? 'unset'}`).join(', ')}`];
}

function missing(kind: string, ref: string): string[] {
  return [`${kind} ${ref} not found in Sluice's status`];
}

// ---------------------------------------------------------------------------
// Listener helpers
// ---------------------------------------------------------------------------

function listenersExact(where: string, owner: StatusObject, expected: ListenerExpectation[]): string[] {
  const actual: any[] = owner.status?.listeners ?? [];
  const out: string[] = [];
  const names = actual.map((l) => l?.name);
  const expectedNames = expected.map((l) => l.name);
  const extra = names.filter((n) => !expectedNames.includes(n));
  const absent = expectedNames.filter((n) => !names.includes(n));
  if (extra.length || absent.length || names.length !== expectedNames.length) {
    out.push(`${where}: listeners ${JSON.stringify(names)}, expected exactly ${JSON.stringify(expectedNames)}`);
  }
  for (const exp of expected) {
    const l = actual.find((x) => x?.name === exp.name);
    if (!l) continue;
    const kinds: any[] = l.supportedKinds ?? [];
    if (exp.supportedKinds.length === 0) {
      if (kinds.length !== 0) out.push(`${where}: listener ${exp.name}: supportedKinds ${JSON.stringify(kinds)}, expected none`);
    } else {
      for (const sk of exp.supportedKinds) {
        const group = sk.group ?? GATEWAY_GROUP;
        if (!kinds.some((k) => (k?.group ?? GATEWAY_GROUP) === group && k?.kind === sk.kind)) {
          out.push(`${where}: listener ${exp.name}: supportedKinds ${JSON.stringify(kinds)} lacks ${group}/${sk.kind}`);
        }
      }
    }
    if (l.attachedRoutes !== exp.attachedRoutes) {
      out.push(`${where}: listener ${exp.name}: attachedRoutes ${l.attachedRoutes}, expected ${exp.attachedRoutes}`);
    }
    for (const c of exp.conditions) out.push(...requireCondition(`${where}: listener ${exp.name}`, l.conditions, c));
  }
  out.push(...requireLatestGeneration(where, owner, owner.status?.conditions));
  return out;
}

function listenerConditions(where: string, owner: StatusObject, names: string[], conds: Condition[]): string[] {
  const actual: any[] = owner.status?.listeners ?? [];
  const out: string[] = [];
  for (const name of names) {
    const l = actual.find((x) => x?.name === name);
    if (!l) {
      out.push(`${where}: listener ${name} not in status.listeners (${JSON.stringify(actual.map((x) => x?.name))})`);
      continue;
    }
    for (const c of conds) out.push(...requireCondition(`${where}: listener ${name}`, l.conditions, c));
  }
  return out;
}

const LISTENER_READY: Condition[] = [
  { type: 'ResolvedRefs', status: 'True', reason: null },
  { type: 'Accepted', status: 'True', reason: null },
  { type: 'Programmed', status: 'True', reason: null },
];

function hasTypedAddress(gw: StatusObject): boolean {
  return (gw.status?.addresses ?? []).some((a: any) => typeof a?.type === 'string' && a.type !== '');
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

export function evaluateStatusCheck(check: StatusCheck, ctx: CheckContext): string[] {
  const { index } = ctx;
  switch (check.check) {
    case 'parentAndRoutesAccepted': {
      const out: string[] = [];
      const parent = index.get(check.parentKind, check.parent);
      if (!parent) return missing(check.parentKind, check.parent);
      const { namespace: parentNs, name: parentName } = splitRef(check.parent);
      if (check.requireGatewayAddress) {
        let gwRef = check.parent;
        if (check.parentKind === 'ListenerSet') {
          const pr = parent.spec?.parentRef ?? {};
          gwRef = `${pr.namespace ?? parentNs}/${pr.name}`;
        }
        const gw = index.get('Gateway', gwRef);
        if (!gw) out.push(...missing('Gateway', gwRef));
        else if (!hasTypedAddress(gw)) out.push(`Gateway ${gwRef}: no address with a type in status.addresses (${JSON.stringify(gw.status?.addresses ?? [])})`);
      }
      for (const routeRef of check.routes) {
        const route = index.route(routeRef, check.routeKind);
        if (!route) {
          out.push(...missing(check.routeKind ?? 'HTTPRoute', routeRef));
          continue;
        }
        const routeNs = route.metadata.namespace;
        const parents: any[] = route.status?.parents ?? [];
        const entry = parents.find((p) => {
          const ref = p?.parentRef ?? {};
          if (p?.controllerName !== ctx.controllerName) return false;
          if (ref.group !== GATEWAY_GROUP || ref.kind !== check.parentKind || ref.name !== parentName) return false;
          if (ref.namespace === undefined || ref.namespace === null) return routeNs === parentNs;
          return ref.namespace === parentNs;
        });
        if (!entry) {
          out.push(
            `route ${routeRef}: no status.parents entry for ${check.parentKind} ${check.parent} with controllerName ${ctx.controllerName} and explicit group/kind (got ${JSON.stringify(parents.map((p) => ({ controllerName: p?.controllerName, parentRef: p?.parentRef })))})`,
          );
          continue;
        }
        out.push(...requireCondition(`route ${routeRef} parent ${check.parent}`, entry.conditions, { type: 'Accepted', status: 'True', reason: 'Accepted' }));
      }
      if (check.checkListeners === false) return out;
      const specListeners: any[] = parent.spec?.listeners ?? [];
      const statusListeners: any[] = parent.status?.listeners ?? [];
      for (const sl of specListeners) {
        if (!statusListeners.some((l) => l?.name === sl?.name)) out.push(`${check.parentKind} ${check.parent}: listener ${sl?.name} missing from status.listeners`);
      }
      if (specListeners.length === 0 && statusListeners.length === 0) out.push(`${check.parentKind} ${check.parent}: no listeners in status`);
      for (const l of statusListeners) {
        for (const c of LISTENER_READY) out.push(...requireCondition(`${check.parentKind} ${check.parent} listener ${l?.name}`, l?.conditions, c));
      }
      return out;
    }

    case 'routeCondition': {
      const route = index.route(check.route, check.routeKind);
      if (!route) return missing(check.routeKind ?? 'HTTPRoute', check.route);
      const { namespace: pNs, name: pName } = splitRef(check.parent);
      const parents: any[] = route.status?.parents ?? [];
      const candidates = parents.filter((p) => p?.parentRef?.name === pName && (p.parentRef.namespace == null || p.parentRef.namespace === pNs));
      const out: string[] = [];
      if (!candidates.some((p) => (p.conditions ?? []).some((c: K8sCondition) => conditionMatches(c, check.condition)))) {
        out.push(
          `route ${check.route} parent ${check.parent}: expected condition ${formatCondition(check.condition)}, got ${
            candidates.length ? candidates.map((p) => formatActual(p.conditions)).join(' | ') : 'no parent entry for it'
          }`,
        );
      }
      const all = parents.flatMap((p) => p?.conditions ?? []);
      out.push(...requireLatestGeneration(`route ${check.route}`, route, all, false));
      return out;
    }

    case 'routeParents': {
      const route = index.route(check.route, check.routeKind);
      if (!route) return missing(check.routeKind ?? 'HTTPRoute', check.route);
      const parents: any[] = route.status?.parents ?? [];
      const out: string[] = [];
      for (const exp of check.parents) {
        const er = exp.parentRef;
        const entry = parents.find((p) => {
          const ref = p?.parentRef ?? {};
          if (p?.controllerName !== ctx.controllerName) return false;
          if (ref.group !== er.group || ref.kind !== er.kind || ref.name !== er.name) return false;
          const expNs = er.namespace ?? undefined;
          if (ref.namespace === undefined || ref.namespace === null) return !check.namespaceRequired;
          return ref.namespace === expNs;
        });
        const label = `${er.kind} ${er.namespace ? `${er.namespace}/` : ''}${er.name}`;
        if (!entry) {
          out.push(`route ${check.route}: no status.parents entry for ${label} (got ${JSON.stringify(parents.map((p) => ({ controllerName: p?.controllerName, parentRef: p?.parentRef })))})`);
          continue;
        }
        for (const c of exp.conditions) out.push(...requireCondition(`route ${check.route} parent ${label}`, entry.conditions, c));
      }
      return out;
    }

    case 'routeHasNoAcceptedParents': {
      const route = index.route(check.route, check.routeKind);
      if (!route) return missing(check.routeKind ?? 'HTTPRoute', check.route);
      const parents: any[] = route.status?.parents ?? [];
      if (parents.length === 0) {
        ctx.state.emptyParentsPolls = (ctx.state.emptyParentsPolls ?? 0) + 1;
        return ctx.state.emptyParentsPolls >= 2 ? [] : ['status.parents empty on one poll only (needs two consecutive)'];
      }
      ctx.state.emptyParentsPolls = 0;
      if (parents.length !== 1) return [`route ${check.route}: ${parents.length} parent entries, expected none or exactly one not Accepted`];
      const conds: K8sCondition[] = parents[0]?.conditions ?? [];
      const accepted = conds.find((c) => c.type === 'Accepted');
      const out: string[] = [];
      if (!accepted || accepted.status !== 'False') out.push(`route ${check.route}: parent entry has ${accepted ? `Accepted=${accepted.status}` : 'no Accepted condition'}, expected Accepted=False`);
      out.push(...requireLatestGeneration(`route ${check.route}`, route, conds));
      return out;
    }

    case 'gatewayCondition': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      return [
        ...requireCondition(`Gateway ${check.gateway}`, gw.status?.conditions, check.condition),
        ...requireLatestGeneration(`Gateway ${check.gateway}`, gw, gw.status?.conditions),
      ];
    }

    case 'gatewayConditionsAtLatestGeneration': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      return requireLatestGeneration(`Gateway ${check.gateway}`, gw, gw.status?.conditions);
    }

    case 'gatewayListenersExact': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      return listenersExact(`Gateway ${check.gateway}`, gw, check.listeners);
    }

    case 'gatewayListenerConditions': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      return listenerConditions(`Gateway ${check.gateway}`, gw, check.listeners, check.conditions);
    }

    case 'gatewayHasZeroRoutes': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      const listeners: any[] = gw.status?.listeners ?? [];
      if (listeners.length === 0) return [];
      if (listeners.length === 1 && listeners[0]?.attachedRoutes === 0) return [];
      return [`Gateway ${check.gateway}: listeners ${JSON.stringify(listeners.map((l) => ({ name: l?.name, attachedRoutes: l?.attachedRoutes })))}, expected none or one with attachedRoutes 0`];
    }

    case 'gatewayHasAddress': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      return hasTypedAddress(gw) ? [] : [`Gateway ${check.gateway}: no address with a type (${JSON.stringify(gw.status?.addresses ?? [])})`];
    }

    case 'gatewayAttachedListenerSets': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      const actual = gw.status?.attachedListenerSets ?? 0;
      return actual === check.count ? [] : [`Gateway ${check.gateway}: attachedListenerSets ${actual}, expected ${check.count}`];
    }

    case 'namespacesReady': {
      const out: string[] = [];
      const refs = new Map<string, Record<string, string>>();
      for (const d of ctx.declaredGateways) refs.set(d.ref, d.annotations);
      for (const gw of index.list('Gateway')) if (!refs.has(refOf(gw))) refs.set(refOf(gw), gw.metadata.annotations ?? {});
      for (const [ref, annotations] of refs) {
        const { namespace } = splitRef(ref);
        if (!namespace || !check.namespaces.includes(namespace)) continue;
        if (annotations['gateway-api/skip-this-for-readiness'] === 'true') continue;
        const gw = index.get('Gateway', ref);
        if (!gw) {
          out.push(...missing('Gateway', ref));
          continue;
        }
        const conds: K8sCondition[] = gw.status?.conditions ?? [];
        for (const type of ['Accepted', 'Programmed']) {
          const c = conds.find((x) => x.type === type);
          if (!c || c.status !== 'True') out.push(`Gateway ${ref}: ${type} is ${c ? `${c.status}/${c.reason}` : 'missing'}, expected True`);
          else if (c.observedGeneration !== gw.metadata.generation) out.push(`Gateway ${ref}: ${type} at generation ${c.observedGeneration}, object at ${gw.metadata.generation}`);
        }
      }
      return out;
    }

    case 'listenerSetCondition': {
      const ls = index.get('ListenerSet', check.listenerSet);
      if (!ls) return missing('ListenerSet', check.listenerSet);
      const conds: K8sCondition[] = ls.status?.conditions ?? [];
      const match = conds.filter((c) => conditionMatches(c, check.condition));
      if (match.length === 0) return [`ListenerSet ${check.listenerSet}: expected condition ${formatCondition(check.condition)}, got ${formatActual(conds)}`];
      if (!match.some((c) => c.observedGeneration === ls.metadata.generation)) {
        return [`ListenerSet ${check.listenerSet}: ${formatCondition(check.condition)} not at generation ${ls.metadata.generation}`];
      }
      return [];
    }

    case 'listenerSetListenersExact': {
      const ls = index.get('ListenerSet', check.listenerSet);
      if (!ls) return missing('ListenerSet', check.listenerSet);
      return listenersExact(`ListenerSet ${check.listenerSet}`, ls, check.listeners);
    }

    case 'listenerSetListenerConditions': {
      const ls = index.get('ListenerSet', check.listenerSet);
      if (!ls) return missing('ListenerSet', check.listenerSet);
      return listenerConditions(`ListenerSet ${check.listenerSet}`, ls, check.listeners, check.conditions);
    }

    case 'gatewayClassAccepted': {
      const gc = index.get('GatewayClass', check.gatewayClass);
      if (!gc) return missing('GatewayClass', check.gatewayClass);
      const conds: K8sCondition[] = gc.status?.conditions ?? [];
      const c = conds.find((x) => x.type === 'Accepted');
      if (!c) return [`GatewayClass ${check.gatewayClass}: no Accepted condition (${formatActual(conds)})`];
      if (check.status !== null && c.status !== check.status) return [`GatewayClass ${check.gatewayClass}: Accepted=${c.status}, expected ${check.status}`];
      if (c.observedGeneration !== gc.metadata.generation) return [`GatewayClass ${check.gatewayClass}: Accepted at generation ${c.observedGeneration}, object at ${gc.metadata.generation}`];
      return [];
    }

    case 'gatewayClassConditionsAtLatestGeneration': {
      const gc = index.get('GatewayClass', check.gatewayClass);
      if (!gc) return missing('GatewayClass', check.gatewayClass);
      return requireLatestGeneration(`GatewayClass ${check.gatewayClass}`, gc, gc.status?.conditions);
    }

    case 'routeConditionsAtLatestGeneration': {
      const route = index.route(check.route, check.routeKind);
      if (!route) return missing(check.routeKind ?? 'HTTPRoute', check.route);
      const all = (route.status?.parents ?? []).flatMap((p: any) => p?.conditions ?? []);
      return requireLatestGeneration(`route ${check.route}`, route, all);
    }

    case 'backendTLSPolicyCondition': {
      // As upstream's BackendTLSPolicyMustHaveCondition: not yet while any ancestor entry is stale.
      const policy = index.get('BackendTLSPolicy', check.policy);
      if (!policy) return missing('BackendTLSPolicy', check.policy);
      const ancestors: any[] = policy.status?.ancestors ?? [];
      const stale = ancestors.flatMap((a) => requireLatestGeneration(`BackendTLSPolicy ${check.policy} ancestor ${a?.ancestorRef?.name}`, policy, a?.conditions, false));
      if (stale.length > 0) return stale;
      const { namespace: gwNs, name: gwName } = splitRef(check.ancestor);
      const entries = ancestors.filter((a) => a?.ancestorRef?.name === gwName && (a.ancestorRef.namespace == null || a.ancestorRef.namespace === gwNs));
      if (entries.some((a) => (a.conditions ?? []).some((c: K8sCondition) => conditionMatches(c, check.condition)))) return [];
      return [
        `BackendTLSPolicy ${check.policy} ancestor ${check.ancestor}: expected condition ${formatCondition(check.condition)}, got ${
          entries.length ? entries.map((a) => formatActual(a.conditions)).join(' | ') : 'no ancestor entry for it'
        }`,
      ];
    }

    case 'backendTLSPolicyConditionsAtLatestGeneration': {
      const policy = index.get('BackendTLSPolicy', check.policy);
      if (!policy) return missing('BackendTLSPolicy', check.policy);
      return (policy.status?.ancestors ?? []).flatMap((a: any) => requireLatestGeneration(`BackendTLSPolicy ${check.policy}`, policy, a?.conditions, false));
    }

    case 'gatewayStatusAddresses': {
      const gw = index.get('Gateway', check.gateway);
      if (!gw) return missing('Gateway', check.gateway);
      const out = requireLatestGeneration(`Gateway ${check.gateway}`, gw, gw.status?.conditions);
      const addresses: { type?: string; value?: string }[] = gw.status?.addresses ?? [];
      const shown = JSON.stringify(addresses);
      if (addresses.length !== check.count) out.push(`Gateway ${check.gateway}: ${addresses.length} status.addresses ${shown}, expected ${check.count}`);
      for (const want of check.mustContain) {
        if (!addresses.some((a) => a?.value === want.value && a?.type === want.type)) out.push(`Gateway ${check.gateway}: status.addresses ${shown} lacks ${want.type} ${want.value}`);
      }
      for (const value of check.mustNotContain) {
        if (addresses.some((a) => a?.value === value)) out.push(`Gateway ${check.gateway}: status.addresses ${shown} contains ${value}`);
      }
      return out;
    }

    case 'generationIncreased': {
      const obj = index.get(check.kind, check.object);
      if (!obj) return missing(check.kind, check.object);
      const before = ctx.generationsBefore.get(`${check.kind}/${check.object}`);
      if (before === undefined) return [`${check.kind} ${check.object}: generation before the mutation is unknown (not mutated, or not in Sluice's status then)`];
      return obj.metadata.generation !== before ? [] : [`${check.kind} ${check.object}: generation still ${before}`];
    }
  }
  return [`unknown status check ${JSON.stringify((check as { check?: unknown }).check)}`];
}
