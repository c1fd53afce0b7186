// Gateway IPAddress values as the real API server (kube-openapi's ipv4/ipv6 formats, Go's
// ParseIPSloppy) takes or refuses them; each row was checked against kube-apiserver v1.36 with the
// v1.6.1 CRDs in test/kube/review-s9-api-server.test.ts. A value it takes must not be refused
// by standalone validation (the Gateway would not be served).
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inputProblem } from '../../controller/schema/validate.ts';
import { withImplicitGatewayClasses } from '../../controller/sources/implicit-classes.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';

const CONTROLLER = 'sluice.dev/gateway-controller';

const GATEWAY_YAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners: [{name: http, protocol: HTTP, port: 8080}]
`;

/** Manifests read from a folder and translated as `sluice run` does. */
function readAndTranslate(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-review-s9-'));
  try {
    writeFileSync(join(dir, 'all.yaml'), yaml);
    const load = new ManifestFolder(dir).load();
    return { load, result: translate(withImplicitGatewayClasses(load.snapshot, ['sluice'], CONTROLLER), { controllerName: CONTROLLER, bindAddress: '127.0.0.1', servedClassNames: ['sluice'], standalone: true }) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const gateway = (value: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name: 'gw', namespace: 'default' },
  spec: { gatewayClassName: 'sluice', addresses: [{ type: 'IPAddress', value }], listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
});

describe('Gateway IPAddress values, as the API server reads them', () => {
  it.each(['10.0.0.1', '010.0.0.1', '0010.0.0.1', '2001:db8::1', '2001:DB8::1', '2001:0db8:0000:0000:0000:0000:0000:0001', '::ffff:1.2.3.4', '::ffff:010.2.3.4', '::1.2.3.4'])('%s is taken', (value) => {
    expect(inputProblem(gateway(value))).toBeNull();
  });

  it.each(['10.1', '999.1.1.1', 'fe80::1%eth0', '::ffff:999.2.3.4', 'example.com', '1.2.3.4.5'])('%s is refused', (value) => {
    expect(inputProblem(gateway(value))).toMatch(/must be of format ipv4 or ipv6/);
  });
});

describe('a Service port with protocol "" (the API server stores TCP, as for one omitted)', () => {
  it('is TCP to an HTTPRoute: resolved, not BackendNotFound', () => {
    const { load, result } = readAndTranslate(
      `${GATEWAY_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec:
  ports: [{name: http, port: 8080, protocol: ""}]
`,
    );
    expect(load.problems).toEqual([]);
    const route = result.statuses.find((s) => s.kind === 'HTTPRoute')!;
    const parents = route.status.parents as { conditions: { type: string; status: string; message: string }[] }[];
    expect(parents[0]!.conditions.find((c) => c.type === 'ResolvedRefs')).toMatchObject({ status: 'True' });
  });
});

describe('a Gateway IPAddress with leading zeros (the API server takes it, reading decimal)', () => {
  it('is bound as the API server reads it: 0127.0.0.1 is 127.0.0.1 (a bind through the resolver read octal 87.0.0.1)', () => {
    const { load, result } = readAndTranslate(
      `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  addresses: [{type: IPAddress, value: "0127.0.0.1"}, {type: IPAddress, value: "::ffff:010.0.0.1"}, {type: IPAddress, value: "10.0.0.1"}]
  listeners: [{name: http, protocol: HTTP, port: 8080}]
`,
    );
    expect(load.problems).toEqual([]);
    expect(result.ir.http.listeners.map((l) => l.address).sort()).toEqual(['10.0.0.1', '127.0.0.1', '::ffff:10.0.0.1']);
  });
});

describe('a route matching a header whose name has an underscore', () => {
  it('is told the match can never match: the front door refuses such requests (400 underscore_in_header)', () => {
    const { load, result } = readAndTranslate(
      `${GATEWAY_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{headers: [{name: X-Version, value: "2"}]}, {headers: [{name: x_api_key, value: k}]}]
    backendRefs: [{name: svc, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec:
  ports: [{name: http, port: 8080}]
`,
    );
    const lines = result.problems.filter((p) => p.object === 'HTTPRoute default/r').map((p) => p.message);
    expect(lines).toEqual([expect.stringContaining("rule 0 match 1 header x_api_key can never match: the front door refuses a request with '_' in a field name (400 underscore_in_header")]);
  });
});
