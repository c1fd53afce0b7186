// Shapes found by feeding Sluice the example manifests of other gateways (NGINX Gateway Fabric,
// Contour, Istio, Kong, Traefik, ingress-nginx): each case is our own manifest with the shape that
// went unsaid, read the way `sluice run` reads a folder (ManifestFolder, the implicit classes,
// translate), and the line that must now come out of it.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withImplicitGatewayClasses } from '../../controller/sources/implicit-classes.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import type { Problem } from '../../controller/problems.ts';
import { translate } from '../../controller/translate/translate.ts';

const CONTROLLER = 'sluice.dev/gateway-controller';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-upstream-shapes-more-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes the files, reads the folder as `sluice run --gateway-classes sluice --ingress-classes sluice` does, translates. */
function run(files: Record<string, string>) {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const load = new ManifestFolder(dir).load();
  const result = translate(withImplicitGatewayClasses(load.snapshot, ['sluice'], CONTROLLER), {
    controllerName: CONTROLLER,
    bindAddress: '127.0.0.1',
    servedClassNames: ['sluice'],
    ingress: { classNames: ['sluice'], controllers: ['sluice.dev/ingress-controller'], enforceHttps: true },
    standalone: true,
  });
  const lines = (problems: Problem[]) => problems.map((p) => `${p.code} ${p.message}`);
  return { load, result, sourceProblems: lines(load.problems), problems: lines(result.problems) };
}

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: web
  annotations: {networking.istio.io/service-type: ClusterIP, cert-manager.io/cluster-issuer: letsencrypt}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, protocol: HTTP, port: 80}
`;

const SERVICE = (name: string, annotations = '{}') => `apiVersion: v1
kind: Service
metadata: {name: ${name}, annotations: ${annotations}}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [127.0.0.1]}]
`;

const route = (name: string, gateway: string, annotations: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  annotations: ${annotations}
spec:
  parentRefs: [{name: ${gateway}}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
`;

const foreign = (problems: string[]) => problems.filter((p) => p.includes("another implementation's") || p.includes("'s and is not read"));

describe("other implementations' annotations are said, not dropped in silence", () => {
  it("Kong's plugins and strip-path on an HTTPRoute of ours, Istio's service-type on our Gateway: one line per object naming whose", () => {
    const { problems, result } = run({
      'gw.yaml': GATEWAY,
      'svc.yaml': SERVICE('echo'),
      // Kong's key-auth example: the plugin is Kong's; without this line the route served with no authentication and no word.
      'route.yaml': route('echo', 'web', '{konghq.com/plugins: key-auth, konghq.com/strip-path: "true", kubectl.kubernetes.io/last-applied-configuration: "{}"}'),
      // A route of another Gateway (not ours: no class of ours) is not ours to judge.
      'other.yaml': route('theirs', 'kong', '{konghq.com/plugins: key-auth}'),
    });
    expect(foreign(problems)).toEqual([
      "SLU_TRANSLATION Gateway default/web: annotation networking.istio.io/service-type (Istio's) is another implementation's, not read by Sluice: what it asks for is not done; ignored",
      "SLU_TRANSLATION HTTPRoute default/echo: annotations konghq.com/plugins, konghq.com/strip-path (Kong's) are another implementation's, not read by Sluice: what they ask for is not done; ignored",
    ]);
    // Said, and still served as written (the route is Accepted; the annotations change nothing).
    const status = result.statuses.find((s) => s.kind === 'HTTPRoute' && s.name === 'echo')!;
    expect(JSON.stringify(status.status)).toContain('"type":"Accepted","status":"True"');
  });

  it("Contour's and Kong's upstream settings on a Service a route forwards to are said with its other fields; a Service no route uses says nothing", () => {
    const { problems } = run({
      'gw.yaml': GATEWAY,
      'svc.yaml': SERVICE('echo', '{projectcontour.io/upstream-protocol.tls: "80", konghq.com/protocol: https}'),
      'unused.yaml': SERVICE('unused', '{konghq.com/protocol: https}'),
      'route.yaml': route('echo', 'web', '{}'),
    });
    expect(problems.filter((p) => p.startsWith('SLU_TRANSLATION Service'))).toEqual([
      "SLU_TRANSLATION Service default/echo: annotations konghq.com/protocol (Kong's); projectcontour.io/upstream-protocol.tls (Contour's) are another implementation's, not read by Sluice: what they ask for is not done",
    ]);
  });

  it("an Ingress with Kong's, Contour's and NGINX's annotations (prefixes that do not say ingress) has a line for each", () => {
    const { problems } = run({
      'svc.yaml': SERVICE('echo'),
      'ing.yaml': `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  annotations: {konghq.com/strip-path: "true", projectcontour.io/websocket-routes: /ws, nginx.org/rewrites: "serviceName=echo rewrite=/", cert-manager.io/cluster-issuer: x}
spec:
  ingressClassName: sluice
  rules: [{http: {paths: [{path: /api, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}]}}]
`,
    });
    expect(foreign(problems).sort()).toEqual([
      "SLU_TRANSLATION Ingress default/app: annotation konghq.com/strip-path is Kong's and is not read by Sluice; ignored",
      "SLU_TRANSLATION Ingress default/app: annotation nginx.org/rewrites is NGINX's and is not read by Sluice; ignored",
      "SLU_TRANSLATION Ingress default/app: annotation projectcontour.io/websocket-routes is Contour's and is not read by Sluice; ignored",
    ]);
  });
});

describe('files and kinds of other tools in the folder', () => {
  it("a kustomization.yaml says the folder is read as written (no kustomization applied), kind's cluster file says what it is", () => {
    const { sourceProblems } = run({
      'kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: prod\nresources: [gw.yaml]\n',
      'kind.yaml': 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}]\n',
      'gw.yaml': GATEWAY,
    });
    expect(sourceProblems).toEqual([
      'SLU_MANIFEST_OBJECT document 1: Cluster (kind.x-k8s.io/v1alpha4) is kind\'s cluster configuration, not a Kubernetes object; ignored',
      'SLU_MANIFEST_OBJECT document 1: Kustomization (kustomize.config.k8s.io/v1beta1) is kustomize\'s file, not a Kubernetes object: Sluice reads every manifest in the folder as it is written and applies no kustomization (its resources, patches, namespace, namePrefix, images); to serve what kubectl apply -k would apply, write it out first: kubectl kustomize DIR > OTHER_DIR/all.yaml, and give --manifests OTHER_DIR',
    ]);
  });

  it('the Inference Extension, OPA Gatekeeper and HAProxy kinds name whose they are', () => {
    const { sourceProblems } = run({
      'k.yaml': [
        'apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: pool}\nspec: {}\n',
        'apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: t}\n',
        'apiVersion: ingress.v1.haproxy.org/v1\nkind: Backend\nmetadata: {name: b}\n',
      ].join('---\n'),
    });
    expect(sourceProblems).toEqual([
      'SLU_MANIFEST_OBJECT document 1: ignoring inference.networking.k8s.io/v1 InferencePool pool: a kind of the Gateway API Inference Extension, which Sluice does not implement',
      "SLU_MANIFEST_OBJECT document 2: ignoring templates.gatekeeper.sh/v1 ConstraintTemplate t: a kind of OPA Gatekeeper's API, not Sluice's",
      "SLU_MANIFEST_OBJECT document 3: ignoring ingress.v1.haproxy.org/v1 Backend b: a kind of HAProxy's API, not Sluice's",
    ]);
  });
});

describe('an ExternalName that is no DNS name (a placeholder left in an example) is refused as the API server refuses it', () => {
  it('<API_HOSTNAME> and an upper-case name are refused; a name with a trailing dot is read', () => {
    const external = (name: string, value: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {type: ExternalName, externalName: "${value}", ports: [{port: 443}]}\n`;
    const { sourceProblems, load } = run({
      'a.yaml': external('placeholder', '<GUARDRAILS_API_HOSTNAME>'),
      'b.yaml': external('upper', 'API.Example.com'),
      'c.yaml': external('fqdn', 'api.example.com.'),
    });
    expect(sourceProblems).toEqual([
      'SLU_MANIFEST_INVALID document 1: Service default/placeholder refused: spec.externalName: Invalid value: "<GUARDRAILS_API_HOSTNAME>": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character',
      'SLU_MANIFEST_INVALID document 1: Service default/upper refused: spec.externalName: Invalid value: "API.Example.com": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character',
    ]);
    expect(load.snapshot.services.map((s) => s.metadata.name)).toEqual(['fqdn']);
  });
});

describe("a header value that reads as another proxy's variable is said to be sent as written", () => {
  it("NGINX Gateway Fabric's $remote_addr and an Envoy %REQ(...)% operator, in rule and backendRef filters; a plain value says nothing", () => {
    const { problems, result } = run({
      'gw.yaml': GATEWAY,
      'svc.yaml': SERVICE('echo'),
      'route.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: headers}
spec:
  parentRefs: [{name: web}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Client-IP, value: $remote_addr}, {name: X-Plain, value: "costs 5 dollars"}], add: [{name: X-Id, value: "\${request_id}"}]}
    backendRefs:
    - name: echo
      port: 80
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-Trace, value: "%REQ(x-trace)%"}]}}]
`,
    });
    expect(problems.filter((p) => p.includes('sent as written'))).toEqual([
      'SLU_TRANSLATION HTTPRoute default/headers: header modifier values X-Client-IP: $remote_addr, X-Id: ${request_id}, X-Trace: %REQ(x-trace)% are sent as written: the Gateway API, and Sluice, expand no variables (NGINX expands $name, Envoy %NAME%)',
    ]);
    // Served, with the values as written (the spec's rule).
    expect(JSON.stringify(result.ir.http)).toContain('"value":"$remote_addr"');
  });
});

describe("standalone: an Ingress of a class Sluice does not serve is said to be nobody's", () => {
  it("the Kubernetes docs' ingressClassName: nginx-example, and a class of another controller; one of ours says nothing", () => {
    const ingress = (name: string, cls: string) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}}
spec:
  ingressClassName: ${cls}
  rules: [{http: {paths: [{path: /testpath, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}]}}]
`;
    const { problems } = run({
      'svc.yaml': SERVICE('echo'),
      'class.yaml': 'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: external-lb}\nspec: {controller: example.com/ingress-controller}\n',
      'a.yaml': ingress('minimal-ingress', 'nginx-example'),
      'b.yaml': ingress('external', 'external-lb'),
      'c.yaml': ingress('ours', 'sluice'),
    });
    expect(problems.filter((p) => p.includes('nothing else reads this folder')).sort()).toEqual([
      "SLU_TRANSLATION Ingress default/external: its class external-lb is IngressClass external-lb of controller example.com/ingress-controller, not Sluice's, and nothing else reads this folder, so it is not served; list external-lb in --ingress-classes or set spec.ingressClassName: sluice",
      'SLU_TRANSLATION Ingress default/minimal-ingress: its class nginx-example names no IngressClass Sluice serves, and nothing else reads this folder, so it is not served; list nginx-example in --ingress-classes or set spec.ingressClassName: sluice',
    ]);
  });
});
