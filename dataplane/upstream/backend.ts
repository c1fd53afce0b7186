// A Backend as the proxy uses it: its endpoints' pools, picked round-robin.

import type { UpstreamEndpoint } from './pools.ts';

export class BackendTarget {
  readonly name: string;
  readonly endpoints: readonly UpstreamEndpoint[];
  private cursor = 0;

  constructor(name: string, endpoints: readonly UpstreamEndpoint[]) {
    this.name = name;
    this.endpoints = endpoints;
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
