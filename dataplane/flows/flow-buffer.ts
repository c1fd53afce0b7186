// The flows of one process in one bounded ring: request flows from the proxy and, when eBPF is on,
// the kernel's connection flows (cmd/ feeds them in), so readers see one stream in time order.
// Subscribers (`sluice observe -f`, the web view) get each flow as it is pushed.

import { flowMatches, type Flow, type FlowFilter } from '../../ir/flow.ts';
import { pathPatternMatches } from './path-pattern.ts';

/** Flows kept for /api/flows and `sluice observe --last`: Hubble's ring default is 4095. */
export const DEFAULT_FLOW_BUFFER_SIZE = 4096;

export type FlowListener = (flow: Flow) => void;

export class FlowBuffer {
  private readonly ring: (Flow | undefined)[];
  /** Flows pushed so far; `next % size` is where the next one goes. */
  private next = 0;
  private readonly listeners = new Set<FlowListener>();

  readonly size: number;

  constructor(size: number = DEFAULT_FLOW_BUFFER_SIZE) {
    this.size = size;
    if (!Number.isInteger(size) || size < 1) throw new Error(`flow buffer size ${size}: expected a positive integer`);
    this.ring = new Array(size);
  }

  push(flow: Flow): void {
    this.ring[this.next % this.size] = flow;
    this.next++;
    for (const listener of this.listeners) {
      try {
        listener(flow);
      } catch {
        // A subscriber's bug must not cost the proxy its request: the flow is still kept.
      }
    }
  }

  /** The latest flows that pass `filter`, oldest first; at most `last` of them. */
  flows(filter: FlowFilter = {}, last = this.size): Flow[] {
    const out: Flow[] = [];
    const count = Math.min(this.next, this.size);
    for (let i = this.next - 1; i >= this.next - count && out.length < last; i--) {
      const flow = this.ring[i % this.size]!;
      if (flowMatches(flow, filter, pathPatternMatches)) out.push(flow);
    }
    return out.reverse();
  }

  /** Every flow pushed from now on; returns the unsubscribe function. */
  subscribeFlows(listener: FlowListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
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
