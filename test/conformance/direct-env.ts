// The runner's TrafficEnv for tests that send cases straight to a backend or a test server: the
// Gateway `ns/gw` "is" `host`, and `portOffset` maps a listener port onto the real port.

import type { TrafficEnv } from './gateway-api/traffic.ts';

export function directTrafficEnv(host: string, portOffset: number, over: Partial<TrafficEnv> = {}): TrafficEnv {
  const unused = (): never => {
    throw new Error('not used by these cases');
  };
  return {
    testName: 't',
    portOffset,
    requestTimeoutMs: 5000,
    convergence: { requiredSuccesses: 3, pollIntervalMs: 50, budgetMs: 1500 },
    gatewayAddress: async () => host,
    gatewayAddresses: async () => new Set([host]),
    secret: unused,
    configMapValue: unused,
    servicePods: unused,
    verbose: () => {},
    ...over,
  };
}
