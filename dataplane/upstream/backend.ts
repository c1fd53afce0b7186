// A Backend as the proxy uses it: its endpoints' pools, picked round-robin.

import type { EndpointPolicy } from '../policy/http-policy.ts';
import type { UpstreamEndpoint } from './pools.ts';

export class BackendTarget {
  readonly name: string;
  /** Replaced (replaceEndpoints) when a version changes only the endpoints: the routes keep their target. */
  endpoints: readonly UpstreamEndpoint[];
  /** L7 policy of the endpoints some HTTP rule governs, by endpoint key; null: none is governed. */
  policies: ReadonlyMap<string, EndpointPolicy> | null;
  private cursor = 0;

  constructor(name: string, endpoints: readonly UpstreamEndpoint[], policies: ReadonlyMap<string, EndpointPolicy> | null = null) {
    this.name = name;
    this.endpoints = endpoints;
    this.policies = policies;
  }

  /** A new version's endpoints for the same backend (dataplane/config/compile.ts, at commit). */
  replaceEndpoints(endpoints: readonly UpstreamEndpoint[], policies: ReadonlyMap<string, EndpointPolicy> | null): void {
    this.endpoints = endpoints;
    this.policies = policies;
    if (this.cursor >= endpoints.length) this.cursor = 0;
  }

  /** Undefined when the backend has no ready endpoint (the caller answers 503). */
  nextEndpoint(): UpstreamEndpoint | undefined {
    const endpoints = this.endpoints;
    if (endpoints.length <= 1) return endpoints[0];
    const endpoint = endpoints[this.cursor];
    this.cursor = this.cursor + 1 === endpoints.length ? 0 : this.cursor + 1;
    return endpoint;
  }
}
