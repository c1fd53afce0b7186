// A Backend as the proxy uses it: its endpoints' pools, picked round-robin.

import type { Backend, BackendClientCertificate } from '../../ir/types.ts';
import type { EndpointPolicy } from '../policy/http-policy.ts';
import type { UpstreamEndpoint } from './pools.ts';

export class BackendTarget {
  readonly name: string;
  readonly endpoints: readonly UpstreamEndpoint[];
  /** L7 policy of the endpoints some HTTP rule governs, by endpoint key; null: none is governed. */
  readonly policies: ReadonlyMap<string, EndpointPolicy> | null;
  private cursor = 0;

  constructor(name: string, endpoints: readonly UpstreamEndpoint[], policies: ReadonlyMap<string, EndpointPolicy> | null = null) {
    this.name = name;
    this.endpoints = endpoints;
    this.policies = policies;
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

/**
 * The version's backends as targets, built on first use: one per IR backend, and for a TLS
 * backend one more per client certificate that a Gateway using it presents (spec.tls.backend).
 */
export class BackendTargets {
  private readonly specs: Readonly<Record<string, Backend>>;
  private readonly build: (backend: Backend, client: BackendClientCertificate | undefined) => BackendTarget;
  private readonly built = new Map<string, BackendTarget>();

  constructor(specs: Readonly<Record<string, Backend>>, build: (backend: Backend, client: BackendClientCertificate | undefined) => BackendTarget) {
    this.specs = specs;
    this.build = build;
  }

  /** Null when the IR has no such backend. A client certificate matters only to TLS backends. */
  get(name: string, client?: BackendClientCertificate): BackendTarget | null {
    const spec = this.specs[name];
    if (spec === undefined) return null;
    const presented = spec.tls !== undefined ? client : undefined;
    const key = presented === undefined ? name : `${name}\0${presented.hash}`;
    let target = this.built.get(key);
    if (target === undefined) {
      target = this.build(spec, presented);
      this.built.set(key, target);
    }
    return target;
  }
}
