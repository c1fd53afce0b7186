// L7 HTTP policy for the byte-stream listeners (TCPRoute, TLSRoute passthrough and terminate). The
// gateway relays those streams without parsing them, so it cannot tell whether what flows is HTTP
// the rules allow. Cilium redirects a port with HTTP rules to Envoy, which passes only HTTP it can
// parse and allow; the nearest without parsing HTTP in the relay: a stream to an endpoint whose port
// has HTTP rules is closed before the gateway connects (DROPPED, reason POLICY_L7, the rule named),
// or relayed and recorded AUDIT in audit mode. Otherwise "only GET /api/products" would be
// bypassed by a TCPRoute to the same pods. UDP is not concerned: HTTP rules are TCP-only (the
// translator keeps them off UDP ports, as Cilium refuses them there); L3/L4 decides datagrams.

import type { Endpoint } from '../../ir/types.ts';
import type { RequestFlows } from '../flows/request-flows.ts';
import type { EndpointPolicy, HttpPolicyIndex, L7Decision } from './http-policy.ts';

export class StreamPolicy {
  private readonly index: HttpPolicyIndex;
  private readonly flows: RequestFlows | null;
  /** Per `address:port` of this version's endpoints (compiling the rules is the costly part). */
  private readonly endpoints = new Map<string, EndpointPolicy | null>();

  constructor(index: HttpPolicyIndex, flows: RequestFlows | null) {
    this.index = index;
    this.flows = flows;
  }

  /** Null when no HTTP rule governs anything: streams are then never checked. */
  static build(index: HttpPolicyIndex | null, flows: RequestFlows | null): StreamPolicy | null {
    return index === null ? null : new StreamPolicy(index, flows);
  }

  /**
   * The verdict on a new stream to `endpoint` (null: HTTP rules have no say there), recorded as a
   * flow when it is not FORWARDED. The caller closes the client on DROPPED.
   */
  decide(client: { remoteAddress?: string | undefined; remotePort?: number | undefined }, route: { name: string; source: string }, backend: string, endpoint: Endpoint): L7Decision | null {
    const key = `${endpoint.address}:${endpoint.port}`;
    let policy = this.endpoints.get(key);
    if (policy === undefined) {
      policy = this.index.forEndpoint(endpoint.address, endpoint.port);
      this.endpoints.set(key, policy);
    }
    if (policy === null) return null;
    const decision = policy.decideStream();
    this.flows?.stream(client.remoteAddress ?? '', client.remotePort ?? 0, route, backend, endpoint, decision);
    return decision;
  }
}
