// Standalone mode validates every manifest object as the API server would (controller/schema/):
// the kind's schema (types, bounds, enums, patterns, unknown fields refused) and the CRDs' CEL
// rules. A refused object never reaches the IR: it is one SLU_MANIFEST_INVALID problem naming the
// file, the object and the field path, and the rest translates. The objects here are what the
// API server refuses (checked against Gateway API v1.6.1 and crds/).
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestFolder, parseManifest } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';
import { celRule, rewriteHas } from '../../controller/schema/cel.ts';
import { generate, SCHEMAS_FILE, TYPES_FILE } from '../../scripts/gen-input-types.ts';
import type { Problem } from '../../controller/problems.ts';
import { SNAPSHOT_FIELD_BY_KIND, type HTTPRouteObject } from '../../controller/sources/objects.ts';
import { hasInputSchema } from '../../controller/schema/validate.ts';
import { freePort, startSluice } from '../support/sluice-process.ts';
import { describeIfPossible } from '../support/suite.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_CLASS_YAML } from '../e2e/backends.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const GATEWAY_API_CRDS = join(ROOT, '..', 'shared', 'gateway-api-crds', 'v1.6.1');

const GATEWAY = `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: sluice
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
`;

const gateway = (listeners: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bad}
spec:
  gatewayClassName: sluice
  listeners: ${listeners}
`;

const route = (rules: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec:
  parentRefs: [{name: gw}]
  rules: ${rules}
`;

const policy = (rule: string) => `apiVersion: sluice.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: bad}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  local:
    rules: [${rule}]
`;

/** [what, manifest, the object, what the problem line must say (field path first)]. */
const REFUSED: Array<[what: string, yaml: string, object: string, says: string]> = [
  // Types, bounds, unknown fields (the structural schema).
  ['a listener port that is a word', gateway('[{name: h, port: eighty, protocol: HTTP}]'), 'Gateway default/bad', 'spec.listeners[0].port: Invalid value: string "eighty": must be integer'],
  ['a listener port above 65535', gateway('[{name: h, port: 70000, protocol: HTTP}]'), 'Gateway default/bad', 'spec.listeners[0].port: Invalid value: number 70000: must be <= 65535'],
  ['a listener protocol of the wrong form', gateway('[{name: h, port: 80, protocol: "http 1"}]'), 'Gateway default/bad', 'spec.listeners[0].protocol: Invalid value: string "http 1": must match pattern'],
  ['an unknown field in a listener', gateway('[{name: h, port: 80, protocol: HTTP, tlsMode: x}]'), 'Gateway default/bad', 'spec.listeners[0].tlsMode: unknown field'],
  ['a route without parentRefs item names', 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\nspec: {parentRefs: [{port: 80}]}', 'HTTPRoute default/bad', 'spec.parentRefs[0].name: Required value'],
  ['an unknown field in our RateLimitPolicy (queryParams)', policy('{clientSelectors: [{queryParams: [{name: a}]}], limit: {requests: 1, unit: Second}}'), 'RateLimitPolicy default/bad', 'spec.local.rules[0].clientSelectors[0].queryParams: unknown field'],
  ['an unknown field in our RateLimitPolicy (cost)', policy('{cost: 2, limit: {requests: 1, unit: Second}}'), 'RateLimitPolicy default/bad', 'spec.local.rules[0].cost: unknown field'],
  ['a rate-limit unit out of the enum', policy('{limit: {requests: 1, unit: Fortnight}}'), 'RateLimitPolicy default/bad', 'spec.local.rules[0].limit.unit: Unsupported value "Fortnight": supported values: "Second", "Minute", "Hour", "Day"'],
  ['an apiVersion that does not serve the kind', 'apiVersion: gateway.networking.k8s.io/v9\nkind: HTTPRoute\nmetadata: {name: bad}\nspec: {}', 'HTTPRoute default/bad', 'apiVersion: gateway.networking.k8s.io/v9 does not serve HTTPRoute (served: gateway.networking.k8s.io/v1, gateway.networking.k8s.io/v1beta1)'],
  ['a core kind with a field of the wrong type', 'apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: "80"}]}', 'Service default/bad', 'spec.ports[0].port: Invalid value: string "80": must be integer'],
  ['a core kind with an unknown field', 'apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {portz: []}', 'Service default/bad', 'spec.portz: unknown field'],
  // List types: a map-list holds no two items with the same keys.
  ['a header matched twice by name', route('[{matches: [{headers: [{name: x, value: a}, {name: x, value: b}]}], backendRefs: [{name: s, port: 80}]}]'), 'HTTPRoute default/bad', 'spec.rules[0].matches[0].headers[1]: Duplicate value: {"name":"x"}'],
  // The CRDs' CEL rules (x-kubernetes-validations).
  ['two listeners with one name', gateway('[{name: h, port: 80, protocol: HTTP}, {name: h, port: 81, protocol: HTTP}]'), 'Gateway default/bad', 'spec.listeners: Invalid value: Listener name must be unique within the Gateway'],
  ['two listeners with one port, protocol and hostname', gateway('[{name: a, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: HTTP}]'), 'Gateway default/bad', 'spec.listeners: Invalid value: Combination of port, protocol and hostname must be unique for each listener'],
  ['a TLS listener without a TLS mode', gateway('[{name: t, port: 443, protocol: TLS}]'), 'Gateway default/bad', 'spec.listeners: Invalid value: tls mode must be set for protocol TLS'],
  ['tls on an HTTP listener', gateway('[{name: h, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: c}]}}]'), 'Gateway default/bad', "spec.listeners: Invalid value: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"],
  ['a path match not starting with /', route('[{matches: [{path: {type: PathPrefix, value: api}}], backendRefs: [{name: s, port: 80}]}]'), 'HTTPRoute default/bad', "spec.rules[0].matches[0].path: Invalid value: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"],
  ['a path match holding //', route('[{matches: [{path: {value: /a//b}}], backendRefs: [{name: s, port: 80}]}]'), 'HTTPRoute default/bad', "spec.rules[0].matches[0].path: Invalid value: must not contain '//' when type one of ['Exact', 'PathPrefix']"],
  ['a Service backend without a port', route('[{backendRefs: [{name: s}]}]'), 'HTTPRoute default/bad', 'spec.rules[0].backendRefs[0]: Invalid value: Must have port for Service reference'],
  ['a redirect with a prefix rewrite and two matches', route('[{matches: [{path: {value: /a}}, {path: {value: /b}}], filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]}]'), 'HTTPRoute default/bad', 'spec.rules[0]: Invalid value: When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified'],
  ['a TLSRoute hostname that is an IP address (isIP)', 'apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: bad}\nspec: {parentRefs: [{name: gw}], hostnames: [10.0.0.1], rules: [{backendRefs: [{name: s, port: 443}]}]}', 'TLSRoute default/bad', 'spec.hostnames: Invalid value: Hostnames cannot contain an IP'],
  ['a backendRequest timeout longer than the request timeout (duration())', route('[{timeouts: {request: 10s, backendRequest: 1m}, backendRefs: [{name: s, port: 80}]}]'), 'HTTPRoute default/bad', 'spec.rules[0].timeouts: Invalid value: backendRequest timeout cannot be longer than request timeout'],
  ['a rate-limit sourceCIDR that is no CIDR (isCIDR)', policy('{clientSelectors: [{sourceCIDR: {value: 10.0.0.0/33}}], limit: {requests: 1, unit: Second}}'), 'RateLimitPolicy default/bad', 'spec.local.rules[0].clientSelectors[0].sourceCIDR.value: Invalid value: must be a CIDR such as 10.0.0.0/8'],
  ['a RateLimitPolicy with no rules (our CRD rule)', 'apiVersion: sluice.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: bad}\nspec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]}', 'RateLimitPolicy default/bad', 'spec: Invalid value: a policy needs local or global rules'],
  // Wrong types that once threw out of translate() (found by test/fuzz/translate.test.ts).
  ['HTTPRoute rules as a mapping', route('{a: 1}'), 'HTTPRoute default/bad', 'spec.rules: Invalid value: a mapping: must be array'],
  ['HTTPRoute with an empty rule item', route('\n  -\n'), 'HTTPRoute default/bad', 'spec.rules[0]: Invalid value: object null: must be object'],
  ['HTTPRoute hostnames as a number', 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\nspec: {parentRefs: [{name: gw}], hostnames: 42}', 'HTTPRoute default/bad', 'spec.hostnames: Invalid value: number 42: must be array'],
  ['CORS allowMethods as a mapping', route('[{filters: [{type: CORS, cors: {allowMethods: {}}}]}]'), 'HTTPRoute default/bad', 'spec.rules[0].filters[0].cors.allowMethods: Invalid value: a mapping: must be array'],
  ['EndpointSlice ports as a string', 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: bad, labels: {kubernetes.io/service-name: s}}\naddressType: IPv4\nports: oops\nendpoints: []', 'EndpointSlice default/bad', 'ports: Invalid value: string "oops": must be array'],
  ['Secret data value as a number', 'apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ntype: kubernetes.io/tls\ndata: {tls.crt: 12, tls.key: 13}', 'Secret default/bad', 'data.tls.crt: Invalid value: number 12: must be string'],
  ['Ingress creationTimestamp as a mapping', 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad, creationTimestamp: {}}\nspec: {ingressClassName: cilium}', 'Ingress default/bad', 'metadata.creationTimestamp: Invalid value: a mapping: must be string'],
  ['Gateway listeners as a string', gateway('http'), 'Gateway default/bad', 'spec.listeners: Invalid value: string "http": must be array'],
];

const OPTIONS = { controllerName: 'sluice.dev/gateway-controller', bindAddress: '127.0.0.1', ingress: { classNames: ['cilium'], controllers: [], enforceHttps: true } };

describe('manifest objects are validated as the API server would', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-validate-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  for (const [what, yaml, object, says] of REFUSED) {
    it(`refuses ${what}, naming the field, and the rest translates`, () => {
      writeFileSync(join(dir, 'gateway.yaml'), GATEWAY);
      writeFileSync(join(dir, 'bad.yaml'), yaml);
      const load = new ManifestFolder(dir).load();
      // The whole line where it is fixed; a pattern's text is long: the line starts with `says`.
      const line = `document 1: ${object} refused: ${says}`;
      const message = says.endsWith('pattern') ? expect.stringMatching(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} "`)) : line;
      expect(load.problems).toEqual([{ code: 'SLU_MANIFEST_INVALID', file: 'bad.yaml', object, message }]);
      // Never reaches the IR: the good Gateway's one listener, and no trace of `bad`.
      const result = translate(load.snapshot, OPTIONS);
      expect(result.ir.http.listeners.map((l) => l.port)).toEqual([80]);
      expect(JSON.stringify(result.ir)).not.toMatch(/\/bad\b/);
      expect(result.statuses.map((s) => `${s.kind} ${s.namespace}/${s.name}`)).not.toContain(object);
    });
  }

  it('reads valid objects of every kind, defaults and all (fields the schema defaults may be left out)', () => {
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
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {value: /a}}, {headers: [{name: x, value: "1"}]}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - backendRefs: [{name: s, port: 80}]
    retry: {attempts: 2, backoff: 10ms, codes: [503]}
    timeouts: {request: 1m30s, backendRequest: 10s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: t}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["*.example.com"]
  rules: [{backendRefs: [{name: s, port: 443}]}]
`);
    expect(parsed).toMatchObject({ problems: [] });
    expect('objects' in parsed && parsed.objects.map((o) => o.kind)).toEqual(['GatewayClass', 'Gateway', 'CiliumNetworkPolicy', 'Ingress', 'EndpointSlice', 'HTTPRoute', 'TLSRoute']);
    // Translation gets the object as written, not the defaulted copy the rules saw.
    expect('objects' in parsed && (parsed.objects[5] as HTTPRouteObject).spec.rules?.[0].matches?.[0]).toEqual({ path: { value: '/a' } });
  });

  it('reads TLSRoute at v1alpha2 and v1alpha3 (the experimental channel serves them; Envoy Gateway\'s and Cilium\'s examples use them)', () => {
    const tlsRoute = (version: string, name: string) => `apiVersion: gateway.networking.k8s.io/${version}
kind: TLSRoute
metadata: {name: ${name}}
spec:
  parentRefs: [{name: gw}]
  hostnames: [passthrough.example.com]
  rules: [{backendRefs: [{group: "", kind: Service, name: s, port: 443, weight: 1}]}]
`;
    const parsed = parseManifest(`${tlsRoute('v1alpha2', 'a2')}---\n${tlsRoute('v1alpha3', 'a3')}---\n${tlsRoute('v1alpha2', 'bad').replace('port: 443', 'port: 70000')}`);
    expect('objects' in parsed && parsed.objects.map((o) => `${o.apiVersion} ${o.metadata.name}`)).toEqual(['gateway.networking.k8s.io/v1alpha2 a2', 'gateway.networking.k8s.io/v1alpha3 a3']);
    // Validated by their own version's schema, as any other: the bad port is refused.
    expect('problems' in parsed && parsed.problems).toEqual([expect.objectContaining({ code: 'SLU_MANIFEST_INVALID', message: 'document 3: TLSRoute default/bad refused: spec.rules[0].backendRefs[0].port: Invalid value: number 70000: must be <= 65535' })]);
  });

  it('ignores, with a line, a kind of the same name from another API group', () => {
    const parsed = parseManifest('apiVersion: kuadrant.io/v1\nkind: RateLimitPolicy\nmetadata: {name: theirs}\nspec: {}\n');
    expect(parsed).toEqual({ objects: [], problems: [{ code: 'SLU_MANIFEST_OBJECT', message: "document 1: ignoring kuadrant.io/v1 RateLimitPolicy theirs: a kind of Kuadrant's API, not Sluice's; Sluice reads RateLimitPolicy of sluice.dev only" }] });
  });
});

describe('the Kubernetes CEL library', () => {
  it("evaluates isIP and isCIDR as Kubernetes does (no zones, no leading zeros)", () => {
    const rule = celRule('self.all(a, isIP(a))')!;
    expect(rule(['10.0.0.1', '::1'])).toBe(true);
    for (const bad of ['010.0.0.1', 'fe80::1%eth0', 'example.com', '10.0.0.1/8']) expect(rule([bad])).toBe(false);
    const cidr = celRule('self.all(a, isCIDR(a))')!;
    expect(cidr(['10.0.0.0/8', '::/0'])).toBe(true);
    for (const bad of ['10.0.0.0/33', '10.0.0.0', '10.0.0.0/08', '::/129']) expect(cidr([bad])).toBe(false);
  });

  it('reads has() of any operand, as CEL defines it (cel-js takes only identifier chains)', () => {
    expect(rewriteHas('has(self.a) && has(self.b[0].c) && has(f(x).d.e)')).toBe("has(self.a) && ('c' in self.b[0]) && ('e' in f(x).d)");
    const rule = celRule('self.size() > 0 && has(self[0].path)')!;
    expect([rule([{ path: '/' }]), rule([{ other: 1 }])]).toEqual([true, false]);
  });

  it('leaves transition rules (oldSelf) out: standalone mode stores no earlier object', () => {
    expect(celRule('self == oldSelf')).toBeNull();
  });
});

describeIfPossible('generated schemas and types', existsSync(GATEWAY_API_CRDS) ? null : `the Gateway API CRDs are not at ${GATEWAY_API_CRDS}`)('generated schemas and types', () => {
  it('are what `npm run gen:types` writes from the CRDs today', async () => {
    const { schemasJson, typesTs } = await generate();
    expect(schemasJson === readFileSync(SCHEMAS_FILE, 'utf8')).toBe(true);
    expect(typesTs === readFileSync(TYPES_FILE, 'utf8')).toBe(true);
  });

  it('cover every kind Sluice reads (Cilium\'s policies aside: sources/shapes.ts checks those)', () => {
    expect(Object.keys(SNAPSHOT_FIELD_BY_KIND).filter((k) => !hasInputSchema(k))).toEqual(['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy']);
  });
});

describe('sluice translate', () => {
  it('prints a refused object as an error line and exits 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-validate-cli-'));
    try {
      writeFileSync(join(dir, 'gateway.yaml'), GATEWAY);
      writeFileSync(join(dir, 'bad.yaml'), gateway('[{name: h, port: 70000, protocol: HTTP}]'));
      const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), 'translate', '--manifests', dir, '-o', 'json'], { encoding: 'utf8' });
      expect(r.stderr).toContain('error: SLU_MANIFEST_INVALID bad.yaml: document 1: Gateway default/bad refused: spec.listeners[0].port: Invalid value: number 70000: must be <= 65535\n');
      expect(r.status).toBe(1);
      // The rest is still printed.
      expect(JSON.parse(r.stdout).ir.http.listeners.map((l: { port: number }) => l.port)).toEqual([80]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sluice run', () => {
  it('logs a refused object once, lists it in /api/status, and does not serve it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-validate-run-'));
    const port = await freePort();
    writeFileSync(join(dir, 'gateway.yaml'), GATEWAY);
    // A second Gateway, refused for its TLS listener without a TLS mode: not applied at all.
    writeFileSync(join(dir, 'bad.yaml'), gateway('[{name: h, port: 81, protocol: HTTP}, {name: t, port: 443, protocol: TLS}]'));
    const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
    try {
      const line = 'SLU_MANIFEST_INVALID bad.yaml: document 1: Gateway default/bad refused: spec.listeners: Invalid value: tls mode must be set for protocol TLS';
      await waitFor('the refusal in the log', () => (sluice.logs().includes(line) ? true : undefined));
      const problems = ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: Problem[] }).problems;
      expect(problems.filter((p) => p.code === 'SLU_MANIFEST_INVALID')).toEqual([
        { code: 'SLU_MANIFEST_INVALID', file: 'bad.yaml', object: 'Gateway default/bad', message: line.replace('SLU_MANIFEST_INVALID bad.yaml: ', '') },
      ]);
      // The good Gateway serves (404: no route); the refused one has no status, it does not exist.
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
      const gateways = (await sluice.status()).filter((o) => o.kind === 'Gateway').map((o) => o.metadata.name);
      expect(gateways).toEqual(['gw']);
      expect(sluice.logs().split(line)).toHaveLength(2);
    } finally {
      await sluice.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
