// Shapes found by feeding Sluice the example manifests a new user applies first (the Gateway API
// project's examples and guides, Envoy Gateway's, Cilium's, the Kubernetes documentation's): each
// case is our own manifest with the shape that went wrong, read the way `sluice run` reads a
// folder (ManifestFolder, the implicit classes, translate), and what must come out of it.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withImplicitGatewayClasses } from '../../controller/sources/implicit-classes.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import type { Problem } from '../../controller/problems.ts';
import type { ObjectStatus } from '../../controller/status/conditions.ts';
import { translate } from '../../controller/translate/translate.ts';
import { IDENTITY_INGRESS } from '../../ir/types.ts';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import type { TranslateOptions } from '../../controller/translate/options.ts';

const CONTROLLER = 'sluice.dev/gateway-controller';
const options = (standalone: boolean): TranslateOptions => ({
  controllerName: CONTROLLER,
  bindAddress: '127.0.0.1',
  servedClassNames: ['cilium'],
  ingress: { classNames: ['cilium'], controllers: ['sluice.dev/ingress-controller'], enforceHttps: true },
  standalone,
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-upstream-shapes-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes the files, reads the folder as `sluice run` does, translates. */
function run(files: Record<string, string>, standalone = true) {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const load = new ManifestFolder(dir).load();
  const result = translate(withImplicitGatewayClasses(load.snapshot, ['cilium'], CONTROLLER), options(standalone));
  const lines = (problems: Problem[]) => problems.map((p) => `${p.code} ${p.message}`);
  return { load, result, sourceProblems: lines(load.problems), problems: lines(result.problems) };
}

function statusOf(statuses: ObjectStatus[], kind: string, name: string): ObjectStatus {
  const found = statuses.find((s) => s.kind === kind && s.name === name);
  if (!found) throw new Error(`no status for ${kind} ${name}`);
  return found;
}

const conditions = (s: ObjectStatus, parent = 0) =>
  Object.fromEntries(((s.status.parents as { conditions: { type: string; status: string; reason: string }[] }[])[parent]?.conditions ?? []).map((c) => [c.type, `${c.status} ${c.reason}`]));

const gateway = (name: string, className: string, extra = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ${name}}
spec:
  gatewayClassName: ${className}
  listeners:
  - {name: http, protocol: HTTP, port: 80}
${extra}`;

const route = (name: string, parentRefs: string | null) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}}
spec:
${parentRefs === null ? '' : `  parentRefs: ${parentRefs}\n`}  rules: [{backendRefs: [{name: shop, port: 80}]}]
`;

/** An EndpointSlice for Service `service` (one endpoint on loopback). */
const slice = (service: string, port: number) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${service}-1, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
ports: [{port: ${port}}]
endpoints: [{addresses: [127.0.0.1]}]
`;

describe('Gateways and routes nobody serves are said so, once each', () => {
  it('a Gateway whose gatewayClassName names no GatewayClass (the Gateway API examples\' `example`)', () => {
    const { problems, result } = run({ 'gw.yaml': gateway('web', 'acme-lb'), 'r.yaml': route('shop', '[{name: web}]') });
    expect(problems).toEqual([
      'SLU_TRANSLATION Gateway default/web: its gatewayClassName acme-lb names no GatewayClass, so no controller serves it; set gatewayClassName: cilium, or define that GatewayClass',
    ]);
    // Not ours: no status for it or its route (another controller may yet be installed for the class).
    expect(result.statuses.filter((s) => s.kind !== 'GatewayClass')).toEqual([]);
  });

  it('a Gateway of a class Sluice handles but refused (parametersRef to EnvoyProxy or CiliumGatewayClassConfig)', () => {
    const cls = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tuned}
spec:
  controllerName: ${CONTROLLER}
  parametersRef: {group: gateway.envoyproxy.io, kind: EnvoyProxy, name: proxy-config, namespace: default}
`;
    const { problems, result } = run({ 'gw.yaml': `${cls}---\n${gateway('web', 'tuned')}` });
    expect(statusOf(result.statuses, 'GatewayClass', 'tuned').status.conditions).toEqual([
      expect.objectContaining({ type: 'Accepted', status: 'False', reason: 'InvalidParameters' }),
    ]);
    expect(problems).toEqual(['SLU_TRANSLATION Gateway default/web: not served while its GatewayClass tuned is not accepted (see the GatewayClass status)']);
  });

  it("a Gateway whose class names another controller (Cilium's io.cilium/gateway-controller): said in standalone, where nothing else reads the folder; left alone in a cluster", () => {
    const cls = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodeport}
spec: {controllerName: io.cilium/gateway-controller}
`;
    const files = { 'gw.yaml': `${cls}---\n${gateway('web', 'nodeport')}` };
    expect(run(files).problems).toEqual([
      "SLU_TRANSLATION Gateway default/web: its GatewayClass nodeport names controller io.cilium/gateway-controller, not Sluice's (sluice.dev/gateway-controller), and nothing else reads this folder, so it is not served; list the class in --gateway-classes or set gatewayClassName: cilium",
    ]);
    expect(run(files, false).problems).toEqual([]);
  });

  it('routes without parentRefs, or whose Gateway or ListenerSet does not exist; not a route with one parent present, nor a mesh route', () => {
    const { problems, result } = run({
      'gw.yaml': gateway('web', 'cilium'),
      'routes.yaml': [
        route('bare', null),
        route('lost', '[{name: acme-gw}]'),
        route('lost-set', '[{group: gateway.networking.k8s.io, kind: ListenerSet, name: team-listeners, namespace: team}]'),
        route('half', '[{name: acme-gw}, {name: web}]'),
      ].join('---\n'),
      'mesh.yaml': route('mesh', '[{group: "", kind: Service, name: shop}]'),
    });
    expect(problems.filter((p) => !p.includes('GAMMA'))).toEqual([
      'SLU_TRANSLATION HTTPRoute default/bare: it has no parentRefs, so it attaches to no Gateway; name its Gateway (or ListenerSet) in spec.parentRefs',
      'SLU_TRANSLATION HTTPRoute default/lost: its parentRefs name Gateway default/acme-gw, which do not exist, so no controller serves it; create the parent or correct parentRefs',
      'SLU_TRANSLATION HTTPRoute default/lost-set: its parentRefs name ListenerSet team/team-listeners, which do not exist, so no controller serves it; create the parent or correct parentRefs',
    ]);
    expect(problems.filter((p) => p.includes('GAMMA'))).toHaveLength(1);
    // The parent that exists serves it (and only that parent has a controller to write its status).
    expect(conditions(statusOf(result.statuses, 'HTTPRoute', 'half'))).toEqual({ Accepted: 'True Accepted', ResolvedRefs: 'False BackendNotFound' });
  });

  it('a ListenerSet whose parent Gateway does not exist', () => {
    const { problems } = run({
      'ls.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: team, namespace: default}
spec:
  parentRef: {name: shared-gateway, namespace: infra}
  listeners: [{name: http, protocol: HTTP, port: 8080}]
`,
    });
    expect(problems).toEqual([
      'SLU_TRANSLATION ListenerSet default/team: its parentRef names Gateway infra/shared-gateway, which does not exist, so no controller serves it; create the Gateway or correct spec.parentRef',
    ]);
  });

  it('the other route kinds too (a TLSRoute whose Gateway is in a file not applied, as in an Envoy Gateway example)', () => {
    const { problems } = run({
      'tls.yaml': `apiVersion: gateway.networking.k8s.io/v1alpha3
kind: TLSRoute
metadata: {name: passthrough}
spec:
  parentRefs: [{name: eg}]
  hostnames: [tls.example.com]
  rules: [{backendRefs: [{name: shop, port: 443}]}]
`,
    });
    expect(problems).toEqual([
      'SLU_TRANSLATION TLSRoute default/passthrough: its parentRefs name Gateway default/eg, which do not exist, so no controller serves it; create the parent or correct parentRefs',
    ]);
  });
});

describe('TLSRoute v1alpha2 without hostnames', () => {
  it('is accepted and serves the listener hostname, or every SNI name on a listener without one (v1alpha2 allows it; Envoy Gateway serves it)', () => {
    const { result, problems } = run({
      'tls.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls}
spec:
  gatewayClassName: cilium
  listeners:
  - {name: any, protocol: TLS, port: 443, tls: {mode: Passthrough}}
  - {name: named, protocol: TLS, port: 8443, hostname: db.example.com, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: anyname}
spec:
  parentRefs: [{name: tls}]
  rules: [{backendRefs: [{name: shop, port: 443}]}]
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {ports: [{port: 443}]}
---
${slice('shop', 8443)}`,
    });
    expect(problems).toEqual([]);
    expect(conditions(statusOf(result.statuses, 'TLSRoute', 'anyname'))).toEqual({ Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' });
    const hostnames = (result.ir.http.passthrough ?? []).map((l) => [l.port, l.routes.map((r) => r.hostname)]);
    expect(hostnames).toEqual([
      [443, ['*']],
      [8443, ['db.example.com']],
    ]);
  });
});

describe('Ingress annotations Sluice does not read are said so', () => {
  it("unknown ingress.cilium.io/ and sluice.dev/ keys, and another controller's; not the ones it reads nor unrelated ones", () => {
    const { problems } = run({
      'ing.yaml': `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  annotations:
    ingress.cilium.io/force-https: enabled
    ingress.cilium.io/request-timeout: 10s
    ingress.cilium.io/websocket: enabled
    ingress.cilium.io/loadbalancer-mode: shared
    sluice.dev/rate-limt: 10/minute
    sluice.dev/rate-limit: 100/minute
    nginx.ingress.kubernetes.io/rewrite-target: /
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    kubernetes.io/ingress.class: cilium
spec:
  defaultBackend: {service: {name: shop, port: {number: 80}}}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {ports: [{port: 80}]}
---
${slice('shop', 8080)}`,
    });
    const reads = 'ingress.cilium.io/force-https, ingress.cilium.io/request-timeout, sluice.dev/rate-limit, sluice.dev/rate-limit-scope, sluice.dev/upgrade-types';
    expect(problems).toEqual([
      `SLU_TRANSLATION Ingress default/shop: annotation ingress.cilium.io/websocket is not one Sluice implements (it reads ${reads}); ignored`,
      'SLU_TRANSLATION Ingress default/shop: annotation ingress.cilium.io/loadbalancer-mode does not apply to Sluice; ignored',
      `SLU_TRANSLATION Ingress default/shop: annotation sluice.dev/rate-limt is not one Sluice implements (it reads ${reads}); ignored`,
      'SLU_TRANSLATION Ingress default/shop: annotation nginx.ingress.kubernetes.io/rewrite-target belongs to another ingress controller and is not read by Sluice; ignored',
    ]);
  });
});

describe('YAML as other tools write it', () => {
  it('an alias whose anchor is in another document is invalid YAML for that file (it crashed the process), the other files are served', () => {
    const { sourceProblems, result } = run({
      'gw.yaml': gateway('web', 'cilium'),
      'routes.yaml': `apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  ports: [&port {port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: cart}
spec:
  ports: [*port]
`,
    });
    expect(sourceProblems).toEqual([
      'SLU_MANIFEST_YAML invalid YAML in document 2: Unresolved alias (the anchor must be set before the alias): port; its objects are left out until it parses again',
    ]);
    expect(statusOf(result.statuses, 'Gateway', 'web').status.conditions).toContainEqual(expect.objectContaining({ type: 'Accepted', status: 'True' }));
  });

  it('a document that expands too many aliases (a "billion laughs") is refused the same way', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    const { sourceProblems } = run({ 'laughs.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n` });
    expect(sourceProblems).toHaveLength(1);
    expect(sourceProblems[0]).toMatch(/^SLU_MANIFEST_YAML invalid YAML in document 1: Excessive alias count/);
  });

  it('`<<` merge keys are merged, as kubectl (YAML 1.1) merges them', () => {
    const { load, sourceProblems } = run({
      'r.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: merged}
spec:
  parentRefs: [{name: web}]
  rules:
  - backendRefs: [&shop {name: shop, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /canary}}]
    backendRefs:
    - <<: *shop
      weight: 2
`,
    });
    expect(sourceProblems).toEqual([]);
    expect(load.snapshot.httpRoutes[0]!.spec.rules![1]!.backendRefs).toEqual([expect.objectContaining({ name: 'shop', port: 80, weight: 2 })]);
  });

  it('typed lists (`kind: ServiceList`) are read item by item like `kind: List`; JSON-in-YAML, a byte-order mark and CRLF line ends are read', () => {
    const { load, sourceProblems } = run({
      'list.yaml': `apiVersion: v1
kind: ServiceList
metadata: {resourceVersion: "1"}
items:
- apiVersion: v1
  kind: Service
  metadata: {name: shop}
  spec: {ports: [{port: 80}]}
`,
      'json-in-yaml.yaml': `---\n{\n  apiVersion: "v1",\n  kind: "Service",\n  metadata: {\n    name: "cart",\n  },\n  spec: {ports: [{port: 80}]},\n}\n`,
      'windows.yaml': `\ufeffapiVersion: v1\r\nkind: Service\r\nmetadata:\r\n  name: till\r\nspec:\r\n  ports:\r\n  - port: 80\r\n---\r\n# only a comment\r\n`,
    });
    expect(sourceProblems).toEqual([]);
    expect(load.snapshot.services.map((s) => s.metadata.name).sort()).toEqual(['cart', 'shop', 'till']);
  });
});

describe("Cilium's mutual-authentication policy example", () => {
  const policy = (mode: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: mutual}
spec:
  endpointSelector: {matchLabels: {app: echo}}
  ingress:
  - fromEntities: [ingress]
    authentication: {mode: ${mode}}
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec: {containers: [{name: echo, image: echo}]}
status: {phase: Running, podIP: 10.0.0.7}
`;
  const gatewayAllowed = (files: Record<string, string>) => {
    const { result, problems } = run(files);
    const l4 = result.ir.l4.policy!;
    return { allowed: l4.entries.some((e) => e.direction === 'ingress' && e.remote === IDENTITY_INGRESS), enforced: l4.enforcement.length, problems };
  };

  it('`authentication.mode: required` allows nothing (Cilium drops what has not authenticated; Sluice cannot authenticate), and says so; `disabled` applies the rule', () => {
    expect(gatewayAllowed({ 'p.yaml': policy('required') })).toEqual({
      allowed: false,
      enforced: 1,
      problems: [
        'SLU_TRANSLATION CiliumNetworkPolicy default/mutual: spec.ingress[0].authentication mode "required": Sluice does no mutual authentication, so the rule allows nothing (Cilium drops traffic that has not authenticated)',
      ],
    });
    expect(gatewayAllowed({ 'p.yaml': policy('disabled') })).toEqual({ allowed: true, enforced: 1, problems: [] });
  });
});

describe('BackendTLSPolicy whose Service does not exist (the Gateway API examples target one no file defines)', () => {
  it('is said so; it has no ancestors to carry a status', () => {
    const { problems, result } = run({
      'p.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: upstream-auth}
spec:
  targetRefs: [{group: "", kind: Service, name: auth}]
  validation: {wellKnownCACertificates: System, hostname: auth.example.com}
`,
    });
    expect(problems).toEqual(['SLU_TRANSLATION BackendTLSPolicy default/upstream-auth: targetRef Service default/auth does not exist; the policy has no effect until it does']);
    expect(statusOf(result.statuses, 'BackendTLSPolicy', 'upstream-auth').status).toEqual({ ancestors: [] });
  });
});

describe('Services without any EndpointSlice (every example deploys its backends as a Deployment)', () => {
  const files = (withSlice: boolean) => ({
    'app.yaml': `${gateway('web', 'cilium')}---
${route('shop', '[{name: web}]')}---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {selector: {app: shop}, ports: [{port: 80, targetPort: 3000}]}
---
apiVersion: v1
kind: Service
metadata: {name: unused}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec: {type: ExternalName, externalName: example.org}
${withSlice ? `---\n${slice('shop', 3000)}` : ''}`,
  });

  it('standalone: a Service a route forwards to gets one line saying why it answers 503 and what to write; not an unused one or an ExternalName', () => {
    const { problems, result } = run(files(false));
    expect(problems).toEqual([
      'SLU_TRANSLATION Service default/shop has no EndpointSlice, so the routes to it answer 503: sluice run starts no Deployments or Pods; give its endpoints as an EndpointSlice labelled kubernetes.io/service-name: shop',
    ]);
    expect(conditions(statusOf(result.statuses, 'HTTPRoute', 'shop'))).toEqual({ Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' });
    expect(run(files(true)).problems).toEqual([]);
  });

  it('standalone: a Service port no port of its hand-written EndpointSlices is named after (matched by name, as kube-proxy does) is said so', () => {
    const { problems } = run({
      'app.yaml': `${gateway('web', 'cilium')}---
${route('shop', '[{name: web}]')}---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {ports: [{port: 80, targetPort: http}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: shop-1, labels: {kubernetes.io/service-name: shop}}
addressType: IPv4
ports: [{name: http, port: 3000}]
endpoints: [{addresses: [127.0.0.1]}]
`,
    });
    expect(problems).toEqual([
      'SLU_TRANSLATION Service default/shop port 80 (unnamed, TCP) matches no port of its EndpointSlices (named http, TCP), so the routes to it answer 503: EndpointSlice ports are matched to the Service port by name and protocol, as kube-proxy does; name them alike, with the same protocol',
    ]);
  });

  it('standalone: a TCP Service port whose hand-written EndpointSlice has only a UDP port of its name is said so (matched by name and protocol, as kube-proxy does)', () => {
    const { problems, result } = run({
      'app.yaml': `${gateway('web', 'cilium')}---
${route('shop', '[{name: web}]')}---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {ports: [{port: 80, targetPort: 3000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: shop-1, labels: {kubernetes.io/service-name: shop}}
addressType: IPv4
ports: [{port: 3000, protocol: UDP}]
endpoints: [{addresses: [127.0.0.1]}]
`,
    });
    expect(problems).toEqual([
      'SLU_TRANSLATION Service default/shop port 80 (unnamed, TCP) matches no port of its EndpointSlices (unnamed, UDP), so the routes to it answer 503: EndpointSlice ports are matched to the Service port by name and protocol, as kube-proxy does; name them alike, with the same protocol',
    ]);
    expect(result.ir.http.backends['service/default/shop/port/80']?.endpoints).toEqual([]);
  });

  it('in a cluster the EndpointSlice controller writes one for every Service with a selector: nothing said', () => {
    expect(run(files(false), false).problems).toEqual([]);
  });
});

describe("Cilium's TLS Ingress example without its Secret (demo-cert is made by hand in the tutorial)", () => {
  const ingress = (tls: string) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  ingressClassName: cilium
  rules:
  - host: shop.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}]}
  tls: [${tls}]
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {ports: [{port: 80}]}
---
${slice('shop', 8080)}`;
  const redirected = (ir: unknown) => JSON.stringify(ir).includes('"ingress/default/shop/force-https/shop.example.com"');

  it('plain HTTP to its hosts is not redirected to an HTTPS port that has no certificate for them (it was: a 301 to a closed port), and the line says so', () => {
    const { result, problems } = run({ 'ing.yaml': ingress('{hosts: [shop.example.com], secretName: demo-cert}') });
    expect(problems).toEqual([
      'SLU_TRANSLATION Ingress default/shop: tls[0] Secret default/demo-cert: not found; plain HTTP to shop.example.com is not redirected to HTTPS, which has no certificate for it',
    ]);
    expect(redirected(result.ir)).toBe(false);
  });

  it('with the Secret, the redirect stands; a TLS entry without secretName redirects only when some certificate serves HTTPS', async () => {
    const cert = await createSelfSignedServerCertificate({ dnsNames: ['shop.example.com'] });
    const secret = `apiVersion: v1
kind: Secret
metadata: {name: demo-cert}
type: kubernetes.io/tls
stringData: {tls.crt: ${JSON.stringify(cert.certPem)}, tls.key: ${JSON.stringify(cert.keyPem)}}
`;
    expect(redirected(run({ 'ing.yaml': ingress('{hosts: [shop.example.com], secretName: demo-cert}'), 's.yaml': secret }).result.ir)).toBe(true);
    rmSync(join(dir, 's.yaml'));
    expect(redirected(run({ 'ing.yaml': ingress('{hosts: [shop.example.com]}') }).result.ir)).toBe(false);
    const other = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other}
spec:
  ingressClassName: cilium
  tls: [{hosts: [other.example.com], secretName: demo-cert}]
  defaultBackend: {service: {name: shop, port: {number: 80}}}
`;
    expect(redirected(run({ 'ing.yaml': ingress('{hosts: [shop.example.com]}'), 'other.yaml': other, 's.yaml': secret }).result.ir)).toBe(true);
  });
});

describe("other implementations' kinds mixed into their examples", () => {
  it('each object is one line naming its owner where the API group tells, and a kind Sluice reads of another group says which group it reads', () => {
    const doc = (apiVersion: string, kind: string, name: string) => `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: {}\n`;
    const { sourceProblems } = run({
      'mixed.yaml': [
        doc('gateway.envoyproxy.io/v1alpha1', 'EnvoyProxy', 'proxy-config'),
        doc('gateway.envoyproxy.io/v1alpha1', 'BackendTrafficPolicy', 'retries'),
        doc('cilium.io/v2', 'CiliumEnvoyConfig', 'lb'),
        doc('networking.istio.io/v1', 'Gateway', 'istio-gw'),
        doc('gateway.networking.x-k8s.io/v1alpha1', 'XListenerSet', 'team'),
        doc('apps/v1', 'Deployment', 'backend'),
      ].join('---\n'),
    });
    expect(sourceProblems).toEqual([
      "SLU_MANIFEST_OBJECT document 1: ignoring gateway.envoyproxy.io/v1alpha1 EnvoyProxy proxy-config: a kind of Envoy Gateway's API, not Sluice's",
      "SLU_MANIFEST_OBJECT document 2: ignoring gateway.envoyproxy.io/v1alpha1 BackendTrafficPolicy retries: a kind of Envoy Gateway's API, not Sluice's",
      "SLU_MANIFEST_OBJECT document 3: ignoring cilium.io/v2 CiliumEnvoyConfig lb: a kind of Cilium's API, not Sluice's",
      "SLU_MANIFEST_OBJECT document 4: ignoring networking.istio.io/v1 Gateway istio-gw: a kind of Istio's API, not Sluice's; Sluice reads Gateway of gateway.networking.k8s.io only",
      "SLU_MANIFEST_OBJECT document 5: ignoring gateway.networking.x-k8s.io/v1alpha1 XListenerSet team: a kind of the Gateway API's experimental x-k8s.io group, which Sluice does not read (ListenerSet, gateway.networking.k8s.io/v1, is read)",
      'SLU_MANIFEST_OBJECT document 6: ignoring apps/v1 Deployment backend: Sluice does not read this kind',
    ]);
  });
});
