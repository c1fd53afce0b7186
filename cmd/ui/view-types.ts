// What the web view (/ui) receives over server-sent events: the one contract between the admin
// server (cmd/ui/*.ts) and the page (cmd/ui/browser/*.ts). Types only, importing nothing, so the
// browser modules can import it (type-only) without reaching any server code.

/** ok: every condition that matters is True; failing: one is False; unknown: no status to judge by. */
export type Health = 'ok' | 'failing' | 'unknown';

export type Column = 'gateway' | 'listener' | 'route' | 'backend';

export interface UiCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

export interface UiNode {
  /** Stable across updates: `Gateway/<ns>/<name>`, `Gateway/<ns>/<name>/<listener>`, `HTTPRoute/<ns>/<name>`, the IR backend name. */
  id: string;
  column: Column;
  /** Gateway, Listener, HTTPRoute, TLSRoute, Ingress, Service ... */
  kind: string;
  label: string;
  /** One line under the label: protocol and port, hostnames, endpoints. */
  detail: string;
  health: Health;
  /** The first False condition (or other failure) as a person reads it: `Accepted=False NotAllowedByListeners: ...`. */
  problem?: string;
  conditions: UiCondition[];
  /** Routes: the rate-limit policies in force (their `<ns>/<name>`). */
  rateLimits?: string[];
}

export interface UiEdge {
  /** `<from>→<to>`. */
  id: string;
  from: string;
  to: string;
  /** Route → backend: the weights, per rule when the rules differ (`80 (80%)`). */
  weight?: string;
  health: Health;
  problem?: string;
}

export interface UiGraph {
  nodes: UiNode[];
  edges: UiEdge[];
  /** The configuration version served, when there is one. */
  version: string | null;
}

/** What this process can show: `sluice run` all of it; split mode one side each (see `notes`). */
export interface UiCapabilities {
  /** Status conditions (the controller side). */
  conditions: boolean;
  /** Request and rate-limit counters (the dataplane side). */
  traffic: boolean;
  /** Flow records (eBPF on, or per-request flows). */
  flows: boolean;
}

export interface UiHello {
  mode: string;
  capabilities: UiCapabilities;
  /** Sentences the page shows as they are: what is missing here, and where to find it. */
  notes: string[];
  /** Seconds between traffic updates. */
  intervalSeconds: number;
}

export interface UiRate {
  /** Requests per second over the last interval. */
  rps: number;
  /** Of those, answered 5xx. */
  errorRps: number;
  /** Requests since the process started. */
  total: number;
}

export interface UiRateLimitRow {
  /** The policy's `<ns>/<name>`. */
  policy: string;
  rule: string;
  /** Decisions per second over the last interval, by result (allowed, limited, shadow_limited, fail_open, fail_closed). */
  perSecond: Record<string, number>;
  /** Decisions since the process started, by result. */
  totals: Record<string, number>;
}

export interface UiTraffic {
  at: string;
  /** By edge id; edges without traffic are absent. */
  edges: Record<string, UiRate>;
  /** By node id (routes and backends). */
  nodes: Record<string, UiRate>;
  /** Flows per second by edge or node id (flow records that name a route, backend or Service). */
  flows: Record<string, number>;
  /** Drops (and audits) of the last 10 s by the node they belong to (counted among the latest kept). */
  drops: Record<string, number>;
  /** Requests no route matched (404 from the gateway itself). */
  noRoute: UiRate;
  rateLimits: UiRateLimitRow[];
}

export interface UiDrop {
  time: string;
  /** DROPPED, or AUDIT (would have been dropped; audit mode let it through). */
  verdict: string;
  /** policy-L3/L4, policy-L7, rate-limited, no-route, POLICY_DENY ... as the flow source names it. */
  reason: string;
  source: string;
  destination: string;
  /** The node the drop belongs to in the graph (a route or a backend), when known. */
  node?: string;
  /** Method, path and status for requests; the rule that decided, when one did. */
  detail: string;
}

export interface UiProblem {
  code: string;
  message: string;
}

/** Event name → payload, as sent on /ui/events. */
export interface UiEvents {
  hello: UiHello;
  graph: UiGraph;
  traffic: UiTraffic;
  /** New drops, oldest first; the first one after connecting carries the latest ones kept. */
  drops: UiDrop[];
  problems: UiProblem[];
}
