// A flow record: what `sluice observe`, /api/flows and the web view show. Two producers share the
// shape, so one stream holds both: the eBPF agent (type L3_L4, one per connection the gateway
// opens) and the proxy (type L7, one per proxied request). Plain JSON data.

import type { L4Policy } from './types.ts';

export type FlowVerdict = 'FORWARDED' | 'DROPPED' | 'AUDIT';
export const FLOW_VERDICTS: readonly FlowVerdict[] = ['FORWARDED', 'DROPPED', 'AUDIT'];

/**
 * Why a flow was dropped (or would have been, for AUDIT). The kernel's: POLICY_DENY (a deny rule),
 * DEFAULT_DENY (no allow rule), NO_BACKEND (a VIP without endpoints). The proxy's: POLICY_L7 (an
 * HTTP rule), RATE_LIMITED, NO_ROUTE, NO_BACKEND (no ready endpoint).
 */
export type FlowDropReason = 'POLICY_DENY' | 'DEFAULT_DENY' | 'NO_BACKEND' | 'POLICY_L7' | 'RATE_LIMITED' | 'NO_ROUTE';

export interface FlowPeer {
  ip: string;
  port: number;
  /** Cilium-numbered identity (2: world, 8: the gateway); absent where no policy names one. */
  identity: number;
  namespace?: string;
  /** `source:key=value` labels of the identity. */
  labels: string[];
  /** `<ns>/<name>` of the Pod behind the address, when known. */
  pod?: string;
}

export interface FlowL7 {
  /** Upper-case. */
  method: string;
  /** The request target as received (path and query). */
  path: string;
  host: string;
  /** HTTP/1.1 or HTTP/2. */
  protocol: string;
  /** The status the client got (0: none, the connection went away first). */
  status: number;
  latencyMs: number;
}

export interface Flow {
  /** ISO 8601, UTC. */
  time: string;
  /** Absent: L3_L4 (the eBPF agent's records carry none). */
  type?: 'L3_L4' | 'L7';
  verdict: FlowVerdict;
  dropReason?: FlowDropReason;
  /** The kernel hook that saw it (L3_L4 only). */
  hook?: string;
  /** Of the policy that decided: ingress (the destination's rules) or egress (the gateway's). */
  direction: 'ingress' | 'egress';
  protocol: string;
  source: FlowPeer;
  destination: FlowPeer;
  /** The Service asked for (its VIP for L3_L4 flows). */
  service?: { namespace: string; name: string; vip?: string; port: number };
  /** The network policy rule that decided, when one did. */
  rule?: { id: number; name: string };
  /** L7 only: the route that matched (IR name) and the object it came from (`<ns>/<name>`). */
  route?: { name: string; source: string };
  /** L7 only: `<ns>/<name>` of the Gateway whose listener took the request (a ListenerSet's: its Gateway). */
  gateway?: string;
  l7?: FlowL7;
}

export interface FlowFilter {
  verdict?: FlowVerdict[];
  type?: ('L3_L4' | 'L7')[];
  /** `[ns/]pod-name` prefixes, as hubble's --from-pod / --to-pod. */
  fromPod?: string[];
  toPod?: string[];
  fromNamespace?: string[];
  toNamespace?: string[];
  /** Either side's namespace, or the Service's. */
  namespace?: string[];
  /** `<ns>/<name>`. */
  toService?: string[];
  /** Status codes or classes: `403`, `5+` (hubble's `--http-status 5+`). */
  httpStatus?: string[];
  httpMethod?: string[];
  /** Regexes matched against the path (hubble: RE2 against the URL path). */
  httpPath?: string[];
}

/**
 * Matches an `httpPath` pattern against a request path. Supplied by the caller: the patterns are
 * RE2 (hubble's Go regexps) and the paths are clients', so the engine must be linear-time, which
 * no Node built-in is (dataplane/flows/path-pattern.ts).
 */
export type PathMatcher = (pattern: string, path: string) => boolean;

/** What an access log line may hold (dataplane/flows/access-log.ts reads each from a flow). */
export const ACCESS_LOG_FIELDS = ['time', 'verdict', 'drop_reason', 'method', 'path', 'host', 'protocol', 'status', 'duration_ms', 'client', 'upstream', 'route', 'route_source', 'service', 'rule', 'gateway'] as const;
export type AccessLogField = (typeof ACCESS_LOG_FIELDS)[number];

/** Pod address → `<ns>/<name>`, from the ipcache entries that name a Pod: both producers name peers with it. */
export function podsByAddress(policy: L4Policy | undefined): Map<string, string> {
  const pods = new Map<string, string>();
  for (const e of policy?.ipcache ?? []) if (e.pod !== undefined) pods.set(e.cidr.slice(0, e.cidr.indexOf('/')), e.pod);
  return pods;
}

/** Whether a flow passes a filter: every given field must match, any of its values. */
export function flowMatches(flow: Flow, filter: FlowFilter, matchPath: PathMatcher): boolean {
  const any = <T>(values: T[] | undefined, test: (v: T) => boolean): boolean => values === undefined || values.length === 0 || values.some(test);
  const pod = (peer: FlowPeer, want: string): boolean => {
    const name = peer.pod;
    if (name === undefined) return false;
    return want.includes('/') ? name.startsWith(want) : name.slice(name.indexOf('/') + 1).startsWith(want);
  };
  const l7 = flow.l7;
  return (
    any(filter.verdict, (v) => flow.verdict === v) &&
    any(filter.type, (t) => (flow.type ?? 'L3_L4') === t) &&
    any(filter.fromPod, (p) => pod(flow.source, p)) &&
    any(filter.toPod, (p) => pod(flow.destination, p)) &&
    any(filter.fromNamespace, (n) => flow.source.namespace === n) &&
    any(filter.toNamespace, (n) => flow.destination.namespace === n || flow.service?.namespace === n) &&
    any(filter.namespace, (n) => flow.source.namespace === n || flow.destination.namespace === n || flow.service?.namespace === n) &&
    any(filter.toService, (s) => flow.service !== undefined && `${flow.service.namespace}/${flow.service.name}` === s) &&
    any(filter.httpStatus, (s) => l7 !== undefined && statusMatches(l7.status, s)) &&
    any(filter.httpMethod, (m) => l7 !== undefined && l7.method === m.toUpperCase()) &&
    any(filter.httpPath, (p) => l7 !== undefined && matchPath(p, l7.path.split('?')[0]!))
  );
}

/** `403` exactly, or `4+` for the class (hubble's syntax). */
function statusMatches(status: number, want: string): boolean {
  if (want.endsWith('+')) return String(status).startsWith(want.slice(0, -1));
  return String(status) === want;
}
