// The flows of one process in one bounded ring: request flows from the proxy and, when eBPF is on,
// the kernel's connection flows (cmd/ feeds them in), so readers see one stream in time order.
// Subscribers (`sluice observe -f`, the web view) get each flow as it is pushed.
//
// Forwarded requests (the bulk) are kept compact: their few numbers in typed arrays, their strings
// and shared objects (peer, route, Service: one per version) in parallel arrays, so a kept request
// is no object of its own and the ring promotes no flow objects into the old generation. The
// Hubble-shaped object is built when read, or when pushed only if a subscriber wants objects.

import { flowMatches, type Flow, type FlowFilter, type FlowL7, type FlowPeer } from '../../ir/flow.ts';
import { IDENTITY_WORLD } from '../../ir/types.ts';
import { pathPatternMatches } from './path-pattern.ts';

/** Flows kept for /api/flows and `sluice observe --last`: Hubble's ring default is 4095. */
export const DEFAULT_FLOW_BUFFER_SIZE = 4096;

export type FlowListener = (flow: Flow) => void;

/**
 * A FORWARDED request flow's fields, filled in place by its recorder (one record reused for every
 * request) and copied into the ring: listeners must read it at once, never keep it.
 */
export interface ForwardedRequest extends FlowL7 {
  /** Epoch milliseconds when the request came. */
  wallClock: number;
  clientIp: string;
  clientPort: number;
  direction: Flow['direction'];
  destination: FlowPeer;
  service: Flow['service'];
  rule: Flow['rule'];
  route: Flow['route'];
  gateway: string | undefined;
}

export type ForwardedListener = (request: ForwardedRequest) => void;

/** A reader of every flow that takes forwarded requests as records (metrics, access log): no object built for it. */
export interface FlowRecorder {
  /** Flows pushed as objects (drops, audits, the kernel's). */
  flow: FlowListener;
  forwarded: ForwardedListener;
}

const WORLD_LABELS = ['reserved:world'];

/** ISO time of a millisecond, cached: requests finishing in the same millisecond share the string. */
let isoMs = 0;
let isoText = '';
export function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/** The Hubble-shaped flow of a forwarded request (the client is the world: IDENTITY_WORLD). */
export function forwardedFlow(r: ForwardedRequest): Flow {
  const flow: Flow = {
    time: isoTime(r.wallClock),
    type: 'L7',
    verdict: 'FORWARDED',
    direction: r.direction,
    protocol: 'TCP',
    source: { ip: r.clientIp, port: r.clientPort, identity: IDENTITY_WORLD, labels: WORLD_LABELS },
    destination: r.destination,
    l7: { method: r.method, path: r.path, host: r.host, protocol: r.protocol, status: r.status, latencyMs: r.latencyMs },
  };
  if (r.service !== undefined) flow.service = r.service;
  if (r.rule !== undefined) flow.rule = r.rule;
  if (r.route !== undefined) flow.route = r.route;
  if (r.gateway !== undefined) flow.gateway = r.gateway;
  return flow;
}

/** A slot holding a compact forwarded request rather than a flow object. */
const COMPACT = null;

export class FlowBuffer {
  /** A flow object, or COMPACT: the slot's forwarded request is in the columns below. */
  private readonly ring: (Flow | null | undefined)[];
  private readonly wallClock: Float64Array;
  private readonly latencyMs: Float64Array;
  private readonly status: Uint16Array;
  private readonly clientPort: Uint16Array;
  private readonly clientIp: string[];
  private readonly method: string[];
  private readonly path: string[];
  private readonly host: string[];
  private readonly protocol: string[];
  private readonly direction: Flow['direction'][];
  private readonly destination: (FlowPeer | undefined)[];
  private readonly service: Flow['service'][];
  private readonly rule: Flow['rule'][];
  private readonly route: Flow['route'][];
  private readonly gateway: (string | undefined)[];
  /** The record a slot is read back into (reads are rare and build their flow from it at once). */
  private readonly scratch: ForwardedRequest;
  /** Flows pushed so far; `next % size` is where the next one goes. */
  private next = 0;
  private readonly listeners = new Set<FlowListener>();
  private readonly recorders = new Set<FlowRecorder>();

  readonly size: number;

  constructor(size: number = DEFAULT_FLOW_BUFFER_SIZE) {
    this.size = size;
    if (!Number.isInteger(size) || size < 1) throw new Error(`flow buffer size ${size}: expected a positive integer`);
    this.ring = new Array<Flow | null | undefined>(size).fill(undefined);
    this.wallClock = new Float64Array(size);
    this.latencyMs = new Float64Array(size);
    this.status = new Uint16Array(size);
    this.clientPort = new Uint16Array(size);
    // Filled, not holey: the columns keep one element kind.
    this.clientIp = new Array<string>(size).fill('');
    this.method = new Array<string>(size).fill('');
    this.path = new Array<string>(size).fill('');
    this.host = new Array<string>(size).fill('');
    this.protocol = new Array<string>(size).fill('');
    this.direction = new Array<Flow['direction']>(size).fill('ingress');
    this.destination = new Array<FlowPeer | undefined>(size).fill(undefined);
    this.service = new Array<Flow['service']>(size).fill(undefined);
    this.rule = new Array<Flow['rule']>(size).fill(undefined);
    this.route = new Array<Flow['route']>(size).fill(undefined);
    this.gateway = new Array<string | undefined>(size).fill(undefined);
    this.scratch = { wallClock: 0, clientIp: '', clientPort: 0, method: '', path: '', host: '', protocol: '', status: 0, latencyMs: 0, direction: 'ingress', destination: { ip: '', port: 0, identity: 0, labels: [] }, service: undefined, rule: undefined, route: undefined, gateway: undefined };
  }

  push(flow: Flow): void {
    const slot = this.next % this.size;
    this.ring[slot] = flow;
    // The slot's strings and shared objects are let go (a compact request kept them).
    this.path[slot] = this.host[slot] = this.clientIp[slot] = '';
    this.next++;
    for (const recorder of this.recorders) {
      try {
        recorder.flow(flow);
      } catch {
        // A subscriber's bug must not cost the proxy its request: the flow is still kept.
      }
    }
    for (const listener of this.listeners) {
      try {
        listener(flow);
      } catch {
        // As above.
      }
    }
  }

  /** A forwarded request, kept compact; recorders get the record, flow listeners (if any) its flow. */
  pushForwarded(r: ForwardedRequest): void {
    const slot = this.next % this.size;
    this.ring[slot] = COMPACT;
    this.wallClock[slot] = r.wallClock;
    this.latencyMs[slot] = r.latencyMs;
    this.status[slot] = r.status;
    this.clientPort[slot] = r.clientPort;
    this.clientIp[slot] = r.clientIp;
    this.method[slot] = r.method;
    // A request's path and host are fresh strings from the parser. Kept for the ring's 4096 requests
    // they outlive a few scavenges, are promoted and die in the old generation: under load a
    // mark-compact every few seconds, and old space grown by the garbage between them. Traffic
    // repeats them: when the previous slot holds an equal string, this slot takes that instance and
    // the fresh one dies young (issue #14).
    const previous = slot === 0 ? this.size - 1 : slot - 1;
    const lastPath = this.path[previous]!;
    this.path[slot] = r.path === lastPath ? lastPath : r.path;
    const lastHost = this.host[previous]!;
    this.host[slot] = r.host === lastHost ? lastHost : r.host;
    this.protocol[slot] = r.protocol;
    this.direction[slot] = r.direction;
    this.destination[slot] = r.destination;
    this.service[slot] = r.service;
    this.rule[slot] = r.rule;
    this.route[slot] = r.route;
    this.gateway[slot] = r.gateway;
    this.next++;
    for (const recorder of this.recorders) {
      try {
        recorder.forwarded(r);
      } catch {
        // As push: the request is still kept.
      }
    }
    if (this.listeners.size === 0) return;
    const flow = forwardedFlow(r);
    for (const listener of this.listeners) {
      try {
        listener(flow);
      } catch {
        // As push.
      }
    }
  }

  /** The flow in ring slot `slot` (built from the columns for a compact one). */
  private at(slot: number): Flow {
    const kept = this.ring[slot];
    if (kept !== COMPACT && kept !== undefined) return kept;
    const r = this.scratch;
    r.wallClock = this.wallClock[slot]!;
    r.latencyMs = this.latencyMs[slot]!;
    r.status = this.status[slot]!;
    r.clientPort = this.clientPort[slot]!;
    r.clientIp = this.clientIp[slot]!;
    r.method = this.method[slot]!;
    r.path = this.path[slot]!;
    r.host = this.host[slot]!;
    r.protocol = this.protocol[slot]!;
    r.direction = this.direction[slot]!;
    r.destination = this.destination[slot]!;
    r.service = this.service[slot];
    r.rule = this.rule[slot];
    r.route = this.route[slot];
    r.gateway = this.gateway[slot];
    return forwardedFlow(r);
  }

  /** The latest flows that pass `filter`, oldest first; at most `last` of them. */
  flows(filter: FlowFilter = {}, last = this.size): Flow[] {
    const out: Flow[] = [];
    const count = Math.min(this.next, this.size);
    for (let i = this.next - 1; i >= this.next - count && out.length < last; i--) {
      const flow = this.at(i % this.size);
      if (flowMatches(flow, filter, pathPatternMatches)) out.push(flow);
    }
    return out.reverse();
  }

  /** Every flow pushed from now on; returns the unsubscribe function. */
  subscribeFlows(listener: FlowListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Every flow pushed from now on: forwarded requests as their record (read at once, never kept),
   * the others as objects. Returns the unsubscribe function.
   */
  subscribeRecorder(recorder: FlowRecorder): () => void {
    this.recorders.add(recorder);
    return () => this.recorders.delete(recorder);
  }

  /** subscribeFlows, under the name the admin API's FlowSource uses. */
  follow(listener: FlowListener): () => void {
    return this.subscribeFlows(listener);
  }

  /** Flows pushed since start (the ring keeps the latest `size`). */
  get total(): number {
    return this.next;
  }
}
