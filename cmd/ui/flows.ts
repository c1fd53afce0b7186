// Flow records for the web view. The node's one flow stream (the eBPF agent's connection records
// and the proxy's request records: route, method, path, status, verdict, drop reason POLICY_L7,
// RATE_LIMITED, NO_ROUTE ...) comes in through nodeFlowFeed as UiFlow, the shape the view needs;
// another source would plug in as another FlowFeed. Followed only while a page is open (the
// request path pays nothing otherwise); a page that opens starts from the drops the source's own
// ring still holds.
import type { Flow, FlowFilter, FlowPeer } from '../../ir/flow.ts';
import { byCodePoint, type RouteIndex } from './graph.ts';
import type { UiDrop } from './view-types.ts';

/** One flow as the view needs it; sources map their records onto this. */
export interface UiFlow {
  time: string;
  /** FORWARDED, DROPPED or AUDIT (would have been dropped, audit mode forwarded it). */
  verdict: string;
  /** Why it was (or would have been) dropped. */
  reason?: string;
  source: string;
  destination: string;
  /** The IR route name that matched (per-request flows). */
  route?: string;
  /** The IR backend name chosen (per-request flows). */
  backend?: string;
  /** The Service asked for (kernel flows): `<ns>/<name>:<port>`. */
  service?: string;
  http?: { method: string; path: string; status?: number };
  /** The policy rule that decided. */
  rule?: string;
}

export interface FlowFeed {
  /** Calls `listener` for every new flow until the returned function is called. */
  follow(listener: (flow: UiFlow) => void): () => void;
  /** The latest `count` drops and audits the source still holds, oldest first. */
  latestDrops(count: number): UiFlow[];
}

/** The node's flow stream (AdminState.flows: the eBPF agent's connection records and the proxy's request records) as a FlowFeed. */
export function nodeFlowFeed(source: { follow(listener: (flow: Flow) => void): () => void; flows(filter: FlowFilter, last?: number): Flow[] | Promise<Flow[]> }): FlowFeed {
  return {
    follow: (listener) => source.follow((f) => listener(uiFlow(f))),
    latestDrops: (count) => {
      // Drops and audits are held by the primary thread in every mode, so they come at once (cmd/workers.ts WorkerFlows).
      const drops = source.flows({ verdict: ['DROPPED', 'AUDIT'] }, count);
      return Array.isArray(drops) ? drops.map(uiFlow) : [];
    },
  };
}

function uiFlow(f: Flow): UiFlow {
  return {
    time: f.time,
    verdict: f.verdict,
    ...(f.dropReason ? { reason: f.dropReason } : {}),
    source: endpoint(f.source),
    destination: endpoint(f.destination),
    ...(f.service ? { service: `${f.service.namespace}/${f.service.name}:${f.service.port}` } : {}),
    ...(f.rule ? { rule: f.rule.name } : {}),
    ...(f.route ? { route: f.route.name } : {}),
    ...(f.l7 ? { http: { method: f.l7.method, path: f.l7.path, status: f.l7.status } } : {}),
  };
}

/** `ip:port (pod)`; a request dropped before any backend was picked has no destination: `—`. */
function endpoint(e: FlowPeer): string {
  if (!e.ip) return '—';
  const app = e.labels.find((l) => l.startsWith('k8s:app='));
  const who = e.pod ?? app?.slice(4);
  return `${e.ip}:${e.port}${who ? ` (${who})` : ''}`;
}

/** What a node's drop count covers. */
const RECENT_MS = 10_000;

/** The latest drops (bounded) and flow counts per graph element since the last take. */
export class FlowTally {
  private readonly kept: UiDrop[] = [];
  private fresh: UiDrop[] = [];
  private counts = new Map<string, number>();
  private readonly keep: number;

  constructor(keep: number) {
    this.keep = keep;
  }

  /** Starts afresh from the drops a source still holds (when a page opens and nobody was watching). */
  reset(latest: UiFlow[], index: RouteIndex): void {
    this.kept.length = 0;
    for (const flow of latest.sort((a, b) => byCodePoint(a.time, b.time))) this.add(flow, index);
    this.fresh = [];
    this.counts = new Map();
  }

  add(flow: UiFlow, index: RouteIndex): void {
    const routeId = flow.route ? index.routeNode.get(flow.route) : undefined;
    const backendId = flow.backend ?? (flow.service ? index.services.get(flow.service) : undefined);
    const key = routeId && backendId ? `${routeId}→${backendId}` : (backendId ?? routeId);
    if (key) this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (flow.verdict !== 'DROPPED' && flow.verdict !== 'AUDIT') return;
    const drop: UiDrop = {
      time: flow.time,
      verdict: flow.verdict,
      reason: flow.reason ?? 'unknown',
      source: flow.source,
      destination: flow.destination,
      ...((routeId ?? backendId) ? { node: routeId ?? backendId } : {}),
      detail: [flow.http ? `${flow.http.method} ${flow.http.path}${flow.http.status ? ` → ${flow.http.status}` : ''}` : '', flow.service ?? '', flow.rule ? `rule ${flow.rule}` : ''].filter(Boolean).join(' · '),
    };
    this.kept.push(drop);
    if (this.kept.length > this.keep) this.kept.splice(0, this.kept.length - this.keep);
    this.fresh.push(drop);
    if (this.fresh.length > this.keep) this.fresh.splice(0, this.fresh.length - this.keep);
  }

  latest(): UiDrop[] {
    return [...this.kept];
  }

  /** Drops since the last take; flows per second by edge or node id over `seconds`; drops of the last 10 s by node. */
  take(seconds: number, now = Date.now()): { drops: UiDrop[]; flowsPerSecond: Record<string, number>; recentDrops: Record<string, number> } {
    const recentDrops: Record<string, number> = {};
    for (const d of this.kept) if (d.node && Date.parse(d.time) > now - RECENT_MS) recentDrops[d.node] = (recentDrops[d.node] ?? 0) + 1;
    const taken = { drops: this.fresh, flowsPerSecond: Object.fromEntries([...this.counts].map(([k, n]) => [k, n / seconds])), recentDrops };
    this.fresh = [];
    this.counts = new Map();
    return taken;
  }
}
