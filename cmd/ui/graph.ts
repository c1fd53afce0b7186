// The web view's graph: Gateway → listeners → routes → backends. What is served comes from the
// IR (which listener serves which route, the weighted backends); what went wrong comes from the
// computed statuses (conditions) of the objects, so a route that is not served at all still shows,
// red, tied to the parent it asked for. Pure: the same inputs give the same graph.
import type { IR, Origin, WeightedBackend } from '../../ir/types.ts';
import type { KubeObject } from '../../controller/sources/objects.ts';
import type { UiCondition, UiEdge, UiGraph, UiNode } from './view-types.ts';

/** The condition types whose False marks a node red (the ones the Gateway API says a user must act on). */
const JUDGED = new Set(['Accepted', 'Programmed', 'ResolvedRefs']);

/** Kinds drawn in the route column, and how their statuses report (`parents`, as the Gateway API routes do). */
const ROUTE_KINDS = new Set(['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute', 'UDPRoute']);

export interface GraphInput {
  ir: IR | null;
  /** Every object read, with its computed status (empty in `sluice dataplane`). */
  objects: KubeObject[];
  /** Route status `parents` entries of other controllers are not ours to show. */
  controllerName?: string;
}

/** Node id of the object (and listener) an IR origin names. */
export function originId(o: Pick<Origin, 'kind' | 'namespace' | 'name' | 'sectionName'>): string {
  return [o.kind, o.namespace, o.name, ...(o.sectionName !== undefined ? [o.sectionName] : [])].join('/');
}

/** Where the IR names each route: IR route name → the route node, and the listener nodes serving it. */
export interface RouteIndex {
  routeNode: Map<string, string>;
  listeners: Map<string, Set<string>>;
  /** `<ns>/<name>:<port>` of a Service port → its backend node (flow records name Services). */
  services: Map<string, string>;
}

export function indexRoutes(ir: IR | null): RouteIndex {
  const index: RouteIndex = { routeNode: new Map(), listeners: new Map(), services: new Map() };
  if (!ir) return index;
  for (const [name, label] of backendLabels(ir)) index.services.set(label, name);
  const add = (routeName: string, origin: Origin, listener: string) => {
    index.routeNode.set(routeName, originId({ ...origin, sectionName: undefined }));
    let set = index.listeners.get(routeName);
    if (!set) index.listeners.set(routeName, (set = new Set()));
    set.add(listener);
  };
  for (const l of ir.http.listeners) {
    for (const scope of l.scopes) {
      const listener = listenerId(scope.origin, l.name);
      for (const vh of scope.virtualHosts) for (const r of vh.routes) add(r.name, r.origin, listener);
    }
  }
  for (const l of ir.http.passthrough ?? []) {
    for (const origin of l.origins) for (const r of l.routes) add(r.name, r.origin, listenerId(origin, l.name));
  }
  return index;
}

/** A Gateway or ListenerSet listener is its own node; an Ingress class has one per socket. */
function listenerId(origin: Origin, socket: string): string {
  return origin.sectionName !== undefined ? originId(origin) : `${originId(origin)}@${socket}`;
}

/** The Gateway a listener origin belongs to (a ListenerSet's parent; an IngressClass stands for itself). */
function gatewayOf(origin: Origin): Origin {
  return origin.kind === 'ListenerSet' && origin.parent ? origin.parent : origin;
}

export function buildGraph(input: GraphInput): UiGraph {
  const nodes = new Map<string, UiNode>();
  const edges = new Map<string, UiEdge>();
  const node = (id: string, init: Omit<UiNode, 'id' | 'health' | 'conditions'>): UiNode => {
    let n = nodes.get(id);
    if (!n) nodes.set(id, (n = { id, health: 'unknown', conditions: [], ...init }));
    return n;
  };
  const edge = (from: string, to: string, extra: Partial<UiEdge> = {}): UiEdge => {
    const id = `${from}→${to}`;
    let e = edges.get(id);
    if (!e) edges.set(id, (e = { id, from, to, health: 'ok', ...extra }));
    return e;
  };
  const { ir } = input;

  if (ir) {
    const labels = backendLabels(ir);
    const gatewayAndListener = (origin: Origin, socket: string, detail: string): string => {
      const gw = gatewayOf(origin);
      const gwId = originId({ ...gw, sectionName: undefined });
      node(gwId, { column: 'gateway', kind: gw.kind, label: nsName(gw), detail: '' });
      const id = listenerId(origin, socket);
      const label = origin.kind === 'ListenerSet' ? `${nsName(origin)} ${origin.sectionName ?? ''}` : (origin.sectionName ?? socket);
      node(id, { column: 'listener', kind: origin.kind === 'ListenerSet' ? 'ListenerSet listener' : 'Listener', label, detail });
      edge(gwId, id);
      return id;
    };
    const routeNode = (origin: Origin, detail: string): string => {
      const id = originId({ ...origin, sectionName: undefined });
      node(id, { column: 'route', kind: origin.kind, label: nsName(origin), detail });
      return id;
    };
    /** Edge id → rule → that backend's weight in the rule (summed: a rule may name it twice) and the rule's total. */
    const rulesSeen = new Map<string, Map<string, { weight: number; total: number }>>();
    const rulesDone = new Set<string>();
    const backendEdges = (routeId: string, rule: string, backends: WeightedBackend[]) => {
      // The IR has one route per match (and per listener): each rule is drawn once.
      if (rulesDone.has(`${routeId}#${rule}`)) return;
      rulesDone.add(`${routeId}#${rule}`);
      const total = backends.reduce((sum, b) => sum + b.weight, 0);
      for (const b of backends) {
        const target = b.backend ?? `invalid:${routeId}`;
        if (b.backend) {
          const backend = ir.http.backends[b.backend];
          const n = node(b.backend, { column: 'backend', kind: 'Service', label: labels.get(b.backend) ?? b.backend, detail: endpointsDetail(backend?.endpoints.length ?? 0) });
          if ((backend?.endpoints.length ?? 0) === 0) fail(n, 'no ready endpoints: its share is answered 503');
          else if (n.health === 'unknown') n.health = 'ok';
        } else {
          fail(node(target, { column: 'backend', kind: 'backendRef', label: 'invalid backendRef', detail: 'its share is answered 500' }), "the reference does not resolve (see the route's ResolvedRefs)");
        }
        const e = edge(routeId, target);
        if (!b.backend) e.health = 'failing';
        let perRule = rulesSeen.get(e.id);
        if (!perRule) rulesSeen.set(e.id, (perRule = new Map()));
        perRule.set(rule, { weight: (perRule.get(rule)?.weight ?? 0) + b.weight, total });
      }
    };
    for (const l of ir.http.listeners) {
      for (const scope of l.scopes) {
        const detail = `${l.protocol} :${l.port}${scope.hostname ? ` ${scope.hostname}` : ''}`;
        const listener = gatewayAndListener(scope.origin, l.name, detail);
        for (const vh of scope.virtualHosts) {
          for (const r of vh.routes) {
            const routeId = routeNode(r.origin, '');
            edge(listener, routeId);
            // HTTPRoute rules by index; an Ingress path has none: each IR route is its own rule.
            const rule = r.origin.ruleIndex !== undefined ? String(r.origin.ruleIndex) : r.name;
            if (r.action.type === 'Forward') backendEdges(routeId, rule, r.action.backends);
            else if (r.action.type === 'Redirect') nodes.get(routeId)!.detail = 'redirect';
            else nodes.get(routeId)!.detail = `direct response ${r.action.status}`;
            if (r.rateLimit) {
              const policy = ir.http.rateLimits?.[r.rateLimit.policy]?.source ?? r.rateLimit.policy;
              const n = nodes.get(routeId)!;
              n.rateLimits = [...new Set([...(n.rateLimits ?? []), policy])].sort();
            }
          }
        }
      }
    }
    for (const l of ir.http.passthrough ?? []) {
      for (const origin of l.origins) {
        const listener = gatewayAndListener(origin, l.name, `TLS passthrough :${l.port}`);
        for (const r of l.routes) {
          const routeId = routeNode(r.origin, r.hostname);
          edge(listener, routeId);
          backendEdges(routeId, '0', r.backends);
        }
      }
    }
    for (const [sockets, protocol] of [[ir.http.tcp ?? [], 'TCP'], [ir.http.udp ?? [], 'UDP']] as const) {
      for (const l of sockets) {
        const listener = gatewayAndListener(l.origin, l.name, `${protocol} :${l.port}`);
        if (!l.route) continue;
        const routeId = routeNode(l.route.origin, '');
        edge(listener, routeId);
        backendEdges(routeId, '0', l.route.backends);
      }
    }
    for (const [key, perRule] of rulesSeen) {
      const text = ([rule, { weight, total }]: [string, { weight: number; total: number }]) => [rule, `${weight} (${total > 0 ? Math.round((weight / total) * 100) : 0}%)`] as const;
      const byRule = [...perRule].map(text);
      const weights = [...new Set(byRule.map(([, w]) => w))];
      edges.get(key)!.weight = weights.length === 1 ? weights[0] : byRule.map(([rule, w]) => `rule ${rule}: ${w}`).join(', ');
    }
  }

  // Conditions, and what the IR does not show: Gateways, listeners and routes that are not served.
  for (const obj of input.objects) {
    if (obj.kind === 'Gateway') gatewayConditions(obj, node, edge);
    else if (obj.kind === 'ListenerSet') listenerSetConditions(obj, node, edge);
    else if (ROUTE_KINDS.has(obj.kind)) routeConditions(obj, input.controllerName, node, edge, nodes);
  }
  for (const n of nodes.values()) if (n.health === 'unknown' && n.conditions.length > 0) n.health = 'ok';

  const order: Record<UiNode['column'], number> = { gateway: 0, listener: 1, route: 2, backend: 3 };
  return {
    nodes: [...nodes.values()].sort((a, b) => order[a.column] - order[b.column] || byCodePoint(a.id, b.id)),
    edges: [...edges.values()].sort((a, b) => byCodePoint(a.id, b.id)),
    version: ir?.version ?? null,
  };
}

type NodeFn = (id: string, init: Omit<UiNode, 'id' | 'health' | 'conditions'>) => UiNode;
type EdgeFn = (from: string, to: string, extra?: Partial<UiEdge>) => UiEdge;

function gatewayConditions(obj: KubeObject, node: NodeFn, edge: EdgeFn): void {
  const status = record(obj.status);
  const own = conditionsOf(status?.conditions);
  if (own.length === 0) return; // not ours (or not judged yet): nothing to say
  const gwId = `Gateway/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
  judge(node(gwId, { column: 'gateway', kind: 'Gateway', label: `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`, detail: '' }), own);
  for (const { name, declared, conditions } of listenersOf(obj)) {
    const id = `${gwId}/${name}`;
    judge(node(id, { column: 'listener', kind: 'Listener', label: name, detail: listenerDetail(declared) }), conditions);
    edge(gwId, id);
  }
}

/** Each listener in the spec or the status (a refused object may report none), with its conditions. */
function listenersOf(obj: KubeObject): { name: string; declared: Record<string, unknown> | undefined; conditions: UiCondition[] }[] {
  const declared = new Map(list(record(obj.spec)?.listeners).map((l) => [String(l.name), l]));
  const reported = new Map(list(record(obj.status)?.listeners).map((l) => [String(l.name), conditionsOf(l.conditions)]));
  return [...new Set([...declared.keys(), ...reported.keys()])].map((name) => ({ name, declared: declared.get(name), conditions: reported.get(name) ?? [] }));
}

function listenerDetail(declared: Record<string, unknown> | undefined): string {
  return declared ? `${String(declared.protocol)} :${String(declared.port)}${declared.hostname ? ` ${String(declared.hostname)}` : ''}` : '';
}

function listenerSetConditions(obj: KubeObject, node: NodeFn, edge: EdgeFn): void {
  const status = record(obj.status);
  const own = conditionsOf(status?.conditions);
  if (own.length === 0) return;
  const parent = record(record(obj.spec)?.parentRef);
  const ns = obj.metadata.namespace ?? '';
  const gwId = `Gateway/${parent?.namespace !== undefined ? String(parent.namespace) : ns}/${String(parent?.name ?? '')}`;
  for (const { name, declared, conditions } of listenersOf(obj)) {
    const id = `ListenerSet/${ns}/${obj.metadata.name}/${name}`;
    const n = node(id, { column: 'listener', kind: 'ListenerSet listener', label: `${ns}/${obj.metadata.name} ${name}`, detail: listenerDetail(declared) });
    // A ListenerSet refused as a whole reports no listener conditions: its own False ones say why.
    judge(n, [...own.filter((c) => c.status === 'False'), ...conditions]);
    edge(gwId, id);
  }
}

function routeConditions(obj: KubeObject, controllerName: string | undefined, node: NodeFn, edge: EdgeFn, nodes: Map<string, UiNode>): void {
  const parents = list(record(obj.status)?.parents).filter((p) => controllerName === undefined || p.controllerName === controllerName);
  if (parents.length === 0) return;
  const ns = obj.metadata.namespace ?? '';
  const id = `${obj.kind}/${ns}/${obj.metadata.name}`;
  const n = node(id, { column: 'route', kind: obj.kind, label: `${ns}/${obj.metadata.name}`, detail: '' });
  const all: UiCondition[] = [];
  for (const p of parents) {
    const ref = record(p.parentRef);
    const conditions = conditionsOf(p.conditions);
    all.push(...conditions);
    const failing = conditions.find((c) => c.status === 'False' && JUDGED.has(c.type));
    if (!failing || !ref) continue;
    // Drawn to the parent it names, red, so the reason sits where the user looks for the route.
    const parentKind = ref.kind !== undefined ? String(ref.kind) : 'Gateway';
    const parentObject = `${parentKind}/${ref.namespace !== undefined ? String(ref.namespace) : ns}/${String(ref.name ?? '')}`;
    const listener = ref.sectionName !== undefined ? `${parentObject}/${String(ref.sectionName)}` : parentObject;
    // The listener it names, else its Gateway (a listener that does not exist has no node).
    const parentId = nodes.has(listener) ? listener : parentObject;
    if (!nodes.has(parentId)) continue; // a parent that is not ours or not shown: the route node says it
    edge(parentId, id, { health: 'failing', problem: conditionText(failing) });
  }
  judge(n, all);
}

/** Adds the conditions; the node turns red on the first judged one that is False. */
function judge(n: UiNode, conditions: UiCondition[]): void {
  n.conditions.push(...conditions);
  const failing = conditions.find((c) => c.status === 'False' && JUDGED.has(c.type));
  if (failing) fail(n, conditionText(failing));
  else if (n.health === 'unknown' && conditions.length > 0) n.health = 'ok';
}

function fail(n: UiNode, problem: string): void {
  n.health = 'failing';
  n.problem ??= problem;
}

/** Ordinal order: stable, and far cheaper than localeCompare on thousands of ids. */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function conditionText(c: UiCondition): string {
  return `${c.type}=${c.status} ${c.reason}${c.message ? `: ${c.message}` : ''}`;
}

function conditionsOf(value: unknown): UiCondition[] {
  return list(value).map((c) => ({ type: String(c.type ?? ''), status: String(c.status ?? ''), reason: String(c.reason ?? ''), message: String(c.message ?? '') }));
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function list(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.map(record).filter((v): v is Record<string, unknown> => v !== undefined) : [];
}

function nsName(o: Pick<Origin, 'namespace' | 'name'>): string {
  return o.namespace ? `${o.namespace}/${o.name}` : o.name;
}

/** `<ns>/<name>:<port>` from the Service the L4 part names it after (IR names are never parsed back); else the IR name. */
function backendLabels(ir: IR): Map<string, string> {
  return new Map(ir.l4.services.map((s) => [s.name, `${nsName(s.origin)}:${s.port}`]));
}

function endpointsDetail(count: number): string {
  return count === 1 ? '1 endpoint' : `${count} endpoints`;
}
