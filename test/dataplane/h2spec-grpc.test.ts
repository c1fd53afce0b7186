// h2spec with a GRPCRoute serving the listeners instead of an HTTPRoute: h2spec's requests are not
// gRPC, so the gateway answers each at its HEADERS (415, trailers-only gRPC replies for gRPC rules)
// while the request may still be coming. Every one of the 145 tests must still pass on both
// listeners (8.1.2.1/3 sends malformed trailers after such an answer).
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { describeIfPossible, requiredByEnvironment } from '../support/suite.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';
import { H2SPEC_TESTS, failures, runH2spec, skipReason } from './support/h2spec.ts';

// Every gRPC call (no matches) to the echo Service; h2spec's calls never reach it.
const GRPC_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: all-grpc, namespace: default}
spec:
  parentRefs: [{name: h2}]
  rules:
  - backendRefs: [{name: echo, port: 80}]
`;

describeIfPossible('h2spec with a GRPCRoute', skipReason(), requiredByEnvironment('SLUICE_H2SPEC_REQUIRED'))('h2spec against sluice run with a GRPCRoute', () => {
  let gateway: H2Gateway;

  beforeAll(async () => {
    gateway = await startH2Gateway([], '', GRPC_ROUTE);
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it.each([
    ['cleartext listener (prior knowledge)', false],
    ['HTTPS listener (h2 by ALPN)', true],
  ])('passes every test on the %s', async (_name, tls) => {
    const cases = await runH2spec(tls ? gateway.tlsPort : gateway.plainPort, tls);
    expect(failures(cases)).toEqual([]);
    expect(cases.filter((c) => c.outcome === 'passed')).toHaveLength(H2SPEC_TESTS);
    expect(gateway.sluice.logs()).not.toMatch(/ERR_INTERNAL_ASSERTION|uncaught/i);
  }, 300_000);
});
