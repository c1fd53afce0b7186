// The manifest folder refuses objects whose fields have the wrong type, as the API server would:
// each case here once made translate() throw (found by test/fuzz/translate.test.ts), stopping
// every update. Now the object is left out with a problem naming the field, and the rest translates.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestFolder, parseManifest } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';
import { GATEWAY_CLASS_YAML } from '../e2e/backends.ts';

const GATEWAY = `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: sluice
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
`;

/** Inputs that threw out of translate() before the shape check, with the field the problem must name. */
const CRASHERS: Array<[what: string, yaml: string, field: string]> = [
  ['HTTPRoute rules as a mapping', 'kind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: gw}], rules: {a: 1}}', 'spec.rules'],
  ['HTTPRoute with an empty rule item', 'kind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  -\n', 'spec.rules'],
  ['HTTPRoute hostnames as a number', 'kind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: gw}], hostnames: 42}', 'spec.hostnames'],
  ['CORS allowMethods as a mapping', 'kind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: gw}], rules: [{filters: [{type: CORS, cors: {allowMethods: {}}}]}]}', 'spec.rules[0].filters[0].cors.allowMethods'],
  ['EndpointSlice ports as a string', 'kind: EndpointSlice\napiVersion: discovery.k8s.io/v1\nmetadata: {name: s-1, labels: {kubernetes.io/service-name: s}}\nports: oops\nendpoints: []', 'ports'],
  ['Secret data value as a number', 'kind: Secret\napiVersion: v1\nmetadata: {name: tls}\ntype: kubernetes.io/tls\ndata: {tls.crt: 12, tls.key: 13}', 'data'],
  ['Ingress creationTimestamp as a mapping', 'kind: Ingress\napiVersion: networking.k8s.io/v1\nmetadata: {name: i, creationTimestamp: {}}\nspec: {ingressClassName: cilium}', 'metadata.creationTimestamp'],
  ['Gateway listeners as a string', 'kind: Gateway\nmetadata: {name: gw2}\nspec: {gatewayClassName: sluice, listeners: http}', 'spec.listeners'],
];

describe('shape check of manifest objects', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-shapes-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  for (const [what, yaml, field] of CRASHERS) {
    it(`leaves out ${what}, names ${field}, and translation goes on`, () => {
      writeFileSync(join(dir, 'gateway.yaml'), GATEWAY);
      writeFileSync(join(dir, 'bad.yaml'), yaml.includes('apiVersion:') ? yaml : `apiVersion: gateway.networking.k8s.io/v1\n${yaml}\n`);
      const load = new ManifestFolder(dir).load();
      expect(load.problems).toEqual([
        expect.objectContaining({ code: 'SLU_MANIFEST_OBJECT', file: 'bad.yaml', message: expect.stringContaining(`: ${field} must be `) }),
      ]);
      const result = translate(load.snapshot, { controllerName: 'sluice.dev/gateway-controller', bindAddress: '127.0.0.1', ingress: { classNames: ['cilium'], controllers: [], enforceHttps: true } });
      expect(result.ir.http.listeners.map((l) => l.port)).toEqual([80]);
    });
  }

  it('keeps fields whose type depends on the kind', () => {
    const parsed = parseManifest(`${GATEWAY}---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {}
  ingress: [{toPorts: [{ports: [{port: "80"}], rules: {http: [{method: GET, path: /x}]}}]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i}
spec:
  tls: [{hosts: [a.example.com], secretName: s}]
  rules: [{host: a.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-1}
endpoints: [{addresses: [10.0.0.1]}]
`);
    expect(parsed).toMatchObject({ problems: [] });
    expect('objects' in parsed && parsed.objects.map((o) => o.kind)).toEqual(['GatewayClass', 'Gateway', 'CiliumNetworkPolicy', 'Ingress', 'EndpointSlice']);
  });
});
