// Route attachment, shared by every route kind: which listeners of each
// parentRef (a Gateway or a ListenerSet of ours) a route attaches to, and the
// per-parent status entry (Accepted with the spec's reasons, ResolvedRefs).
import type { ObjectMeta } from '../sources/objects.ts';
import { GATEWAY_GROUP } from '../sources/objects.ts';
import { condition, type Condition } from '../status/conditions.ts';
import type { RefProblem } from './backends.ts';
import { listenerAllowsNamespace, listenerTakesRoutes, type GatewayState, type ListenerSetState, type ListenerState } from './gateway.ts';
import { intersectHostnames } from './hostnames.ts';
import type { InputIndex } from './index-inputs.ts';
import type { ParentRef } from '../schema/kinds.ts';
import { undeclaredFields } from '../schema/validate.ts';

/** What a parentRef can name: our Gateways and the ListenerSets attached to them, by `namespace/name`. */
export interface Parents {
  gateways: Map<string, GatewayState>;
  listenerSets: Map<string, ListenerSetState>;
}

export interface Attached {
  listener: ListenerState;
  /** The route's hostnames intersected with the listener's (['*'] for any). */
  hostnames: string[];
}

export interface RouteAttachment {
  /** `status.parents` entries (controllerName filled in by translate()). */
  parents: unknown[];
  /** Listeners the route serves on, over all accepted parents. */
  attached: Attached[];
}

export interface RouteProblems {
  /** Something the route asks for that Sluice cannot serve: Accepted=False UnsupportedValue. */
  unsupported: string | null;
  /** The first unresolvable reference: ResolvedRefs=False. */
  refProblem: RefProblem | null;
}

/** What attachment reads of a route of any kind (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute). */
export interface AttachableRoute {
  apiVersion: string;
  metadata: ObjectMeta;
  spec: { parentRefs?: ParentRef[] };
}

export function attachRoute(route: AttachableRoute, routeKind: string, hostnames: string[], parents: Parents, problems: RouteProblems, index: InputIndex): RouteAttachment {
  const ns = route.metadata.namespace!;
  const gen = route.metadata.generation;
  const resolvedRefs = problems.refProblem
    ? condition('ResolvedRefs', false, problems.refProblem.reason, problems.refProblem.message, gen)
    : condition('ResolvedRefs', true, 'ResolvedRefs', 'All references resolved', gen);
  const unsupported = problems.unsupported ?? index.routeUndeclared(route, () => undeclaredProblem(route, routeKind));
  const out: RouteAttachment = { parents: [], attached: [] };
  /** parentRefs of kinds Sluice cannot be (a Service: GAMMA), answered only on routes that are ours. */
  const foreign: ParentRef[] = [];
  for (const parentRef of route.spec?.parentRefs ?? []) {
    const group = parentRef?.group ?? GATEWAY_GROUP;
    const kind = parentRef?.kind ?? 'Gateway';
    const parentNs = parentRef?.namespace ?? ns;
    if (group !== GATEWAY_GROUP || (kind !== 'Gateway' && kind !== 'ListenerSet')) {
      foreign.push(parentRef);
      continue;
    }
    const parentKey = `${parentNs}/${parentRef?.name}`;
    const parent = kind === 'Gateway' ? parents.gateways.get(parentKey) : parents.listenerSets.get(parentKey);
    if (!parent) continue; // not one of ours: another controller reports on it
    const attach = attachToParent(parent, `${kind} ${parentKey}`, parentRef, routeKind, ns, hostnames, index);
    let accepted: Condition;
    if ('problem' in attach) accepted = condition('Accepted', false, attach.problem.reason, attach.problem.message, gen);
    else if (unsupported) accepted = condition('Accepted', false, 'UnsupportedValue', unsupported, gen);
    else {
      accepted = condition('Accepted', true, 'Accepted', `Attached to ${attach.listeners.length} listener(s)`, gen);
      for (const a of attach.listeners) a.listener.attachedRoutes += 1;
      out.attached.push(...attach.listeners);
    }
    out.parents.push(parentEntry(parentRef, [accepted, resolvedRefs]));
  }
  // A route that is ours (it names one of our parents) hears about its other parents too: a Service
  // (mesh, GAMMA) or another kind is no parent Sluice can be, never silently dropped. A route with
  // only such parents is left to whichever implementation serves them (a mesh), like a Gateway of
  // another class.
  if (out.parents.length > 0) {
    for (const parentRef of foreign) {
      const group = parentRef.group ?? GATEWAY_GROUP;
      const what = `parentRef ${group ? `${group}/` : ''}${parentRef.kind ?? 'Gateway'} ${parentRef.name}`;
      const message = (parentRef.kind ?? 'Gateway') === 'Service'
        ? `${what}: Service parents (GAMMA, mesh) are not supported: Sluice is a gateway, not a mesh`
        : `${what}: Sluice attaches routes to Gateways and ListenerSets only`;
      out.parents.push(parentEntry(parentRef, [condition('Accepted', false, 'UnsupportedValue', message, gen), resolvedRefs]));
    }
  }
  // Kept with the route's status: arrays of the exact size (push left room for 16).
  out.parents = out.parents.slice();
  return out;
}

/** A `status.parents` entry (controllerName filled in by translate()). */
function parentEntry(parentRef: ParentRef, conditions: Condition[]): unknown {
  return {
    // The spec's entry as the API server stores it (group and kind are CRD defaults, the rest
    // only when written): Flagger finds its parent by deep equality with spec.parentRefs[].
    parentRef: {
      group: parentRef.group ?? GATEWAY_GROUP,
      kind: parentRef.kind ?? 'Gateway',
      ...(parentRef.namespace !== undefined ? { namespace: parentRef.namespace } : {}),
      name: parentRef.name,
      ...(parentRef.sectionName !== undefined ? { sectionName: parentRef.sectionName } : {}),
      ...(parentRef.port !== undefined ? { port: parentRef.port } : {}),
    },
    controllerName: '',
    conditions,
  };
}

/**
 * Fields of the route its kind's schema here does not declare (in Kubernetes mode, what an
 * experimental-channel CRD adds: useDefaultGateways, externalAuth ...): the route
 * asks for behaviour Sluice does not have, so it is not accepted (UnsupportedValue, naming them).
 */
function undeclaredProblem(route: AttachableRoute, routeKind: string): string | null {
  const fields = undeclaredFields({ apiVersion: route.apiVersion, kind: routeKind, spec: route.spec });
  return fields.length > 0 ? `${fields.join(', ')}: not supported by Sluice (not in the Gateway API v1.6.1 standard channel it reads)` : null;
}

/**
 * Why one listener does not take a route, for NotAllowedByListeners' message: the one condition
 * alone (not served, the kind, the namespace) would leave a user checking the wrong field.
 */
function whyNotAllowed(l: ListenerState, routeKind: string, routeNamespace: string): string {
  if (!listenerTakesRoutes(l)) {
    const verdict = !l.gateway.accepted.ok ? l.gateway.accepted : !l.accepted.ok ? l.accepted : l.conflict;
    return `is not served (${verdict?.reason ?? 'Invalid'}: ${verdict?.message ?? ''})`;
  }
  if (!l.supportedKinds.some((k) => k.group === GATEWAY_GROUP && k.kind === routeKind)) {
    const kinds = l.supportedKinds.map((k) => k.kind).join(', ') || 'no route kind';
    return `(${l.protocol}${l.tlsMode ? ` ${l.tlsMode}` : ''}) takes ${kinds}`;
  }
  const { from } = l.allowedRoutes;
  return from === 'Same' ? `takes routes from namespace ${l.owner.namespace} only (allowedRoutes.namespaces.from: Same)` : `takes routes from namespaces its allowedRoutes.namespaces.selector matches (from: ${from}), not ${routeNamespace}`;
}

type Attachment = { listeners: Attached[] } | { problem: { reason: string; message: string } };

function attachToParent(
  parent: GatewayState | ListenerSetState,
  what: string,
  parentRef: ParentRef,
  routeKind: string,
  routeNamespace: string,
  hostnames: string[],
  index: InputIndex,
): Attachment {
  if ('allowed' in parent && !parent.allowed.ok) {
    return { problem: { reason: 'NotAllowedByListeners', message: `${what} is not attached: ${parent.allowed.message}` } };
  }
  const candidates = parent.listeners.filter(
    (l) =>
      (parentRef.sectionName === undefined || l.name === parentRef.sectionName) &&
      (parentRef.port === undefined || l.port === Number(parentRef.port)),
  );
  if (candidates.length === 0) {
    const wanted = [parentRef.sectionName && `sectionName ${parentRef.sectionName}`, parentRef.port && `port ${parentRef.port}`].filter(Boolean).join(' and ');
    return { problem: { reason: 'NoMatchingParent', message: `${what} has no listener with ${wanted}` } };
  }
  const allowed = candidates.filter(
    (l) =>
      listenerTakesRoutes(l) &&
      l.supportedKinds.some((k) => k.group === GATEWAY_GROUP && k.kind === routeKind) &&
      listenerAllowsNamespace(l, routeNamespace, index),
  );
  if (allowed.length === 0) {
    const why = candidates.map((l) => `listener ${l.name} ${whyNotAllowed(l, routeKind, routeNamespace)}`).join('; ');
    return { problem: { reason: 'NotAllowedByListeners', message: `no listener of ${what} allows ${routeKind}s from namespace ${routeNamespace}: ${why}` } };
  }
  const listeners = allowed
    .map((listener) => ({ listener, hostnames: intersectHostnames(hostnames, listener.hostname) }))
    .filter((a) => a.hostnames.length > 0);
  if (listeners.length === 0) {
    return { problem: { reason: 'NoMatchingListenerHostname', message: `no listener hostname of ${what} intersects ${hostnames.join(', ')}` } };
  }
  return { listeners };
}
