// Backends rewritten to their Service VIP when the eBPF agent balances (dataplane/config/kernel-lb.ts)
// keep their identity from one version to the next while the backend and its VIP do: the
// incremental compile and the workers' deltas (ir/delta.ts) reuse by identity.
import { describe, expect, it } from '@jest/globals';
import type { L4IR } from '../../ir/types.ts';
import { viaServiceVips } from '../../dataplane/config/kernel-lb.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';

const endpoints = [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }];

function l4(vip: string): L4IR {
  return {
    services: [{ name: 'service/ns/b/port/80', origin: { kind: 'Service', namespace: 'ns', name: 'b' }, vip, port: 80, protocol: 'TCP', affinity: 'random', endpoints: endpoints.map((e) => ({ ...e, weight: 1 })) }],
  };
}

describe('kernel load balancing rewrite', () => {
  it('gives the same rewritten backend while the backend and its VIP are the same, a new one when either changes', () => {
    const http = singleHostIR(8080, [route('plain', { path: prefix('/') }, forwardTo('service/ns/b/port/80'))], [backend('service/ns/b/port/80', endpoints)]);
    const first = viaServiceVips(http, l4('10.96.0.1')).backends['service/ns/b/port/80']!;
    expect(first.endpoints).toEqual([{ address: '10.96.0.1', port: 80 }]);
    // A new version (new HttpIR and L4IR objects) with the same backend object and VIP.
    expect(viaServiceVips({ ...http }, l4('10.96.0.1')).backends['service/ns/b/port/80']).toBe(first);
    const moved = viaServiceVips(http, l4('10.96.0.9')).backends['service/ns/b/port/80']!;
    expect(moved).not.toBe(first);
    expect(moved.endpoints).toEqual([{ address: '10.96.0.9', port: 80 }]);
    const changed = viaServiceVips({ ...http, backends: { 'service/ns/b/port/80': { ...http.backends['service/ns/b/port/80']!, appProtocol: 'h2c' } } }, l4('10.96.0.9')).backends['service/ns/b/port/80']!;
    expect(changed).not.toBe(moved);
    expect(changed.appProtocol).toBe('h2c');
  });
});
