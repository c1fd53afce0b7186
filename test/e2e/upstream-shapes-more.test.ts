// Other gateways' example shapes through a real `sluice run` (test/controller/upstream-shapes-more.test.ts
// has each alone): Kong's key-auth plugin and strip-path annotations on an HTTPRoute and an Ingress,
// Contour's upstream TLS annotation on a Service, NGINX Gateway Fabric's `$remote_addr` header value,
// a kustomization.yaml and an ExternalName placeholder in the folder. Each is said in /api/status,
// and what is served is what the Gateway API and Ingress say, as written: nothing stripped, no
// authentication asked, the header value sent literally.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Problem } from '../../controller/problems.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { gatewayYaml, startNamedBackend, type NamedBackend } from './backends.ts';

const HOST = '127.0.0.1';
const GATEWAY_PORT = 8080;
const INGRESS_PORT = 80;

describe("other gateways' example shapes through sluice run", () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;
  let echo: NamedBackend;
  const problems = async () => ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: Problem[] }).problems.map((p) => `${p.code} ${p.file ? `${p.file}: ` : ''}${p.message}`);
  const get = async (port: number, path: string) => {
    const res = await fetch(`http://${HOST}:${port + offset}${path}`);
    const body = (await res.json()) as { backend: string; path: string; headers: Record<string, string> };
    return { status: res.status, backend: body.backend, path: body.path, clientIp: body.headers['x-client-ip'] };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-upstream-more-'));
    echo = await startNamedBackend('echo');
    offset = await freePortOffset([GATEWAY_PORT, INGRESS_PORT, 443]);
    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml([`{name: http, port: ${GATEWAY_PORT}, protocol: HTTP}`]));
    writeFileSync(
      join(dir, 'app.yaml'),
      `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default, annotations: {projectcontour.io/upstream-protocol.tls: "80"}}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: ${echo.port}}]
endpoints: [{addresses: [${HOST}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: default
  annotations: {konghq.com/plugins: key-auth, konghq.com/strip-path: "true"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /echo}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Client-IP, value: $remote_addr}]}}]
    backendRefs: [{name: echo, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: default
  annotations: {konghq.com/strip-path: "true"}
spec:
  ingressClassName: cilium
  rules: [{http: {paths: [{path: /api, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {name: guardrails, namespace: default}
spec: {type: ExternalName, externalName: <GUARDRAILS_API_HOSTNAME>, ports: [{port: 443}]}
`,
    );
    writeFileSync(join(dir, 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: prod\nresources: [gateway.yaml, app.yaml]\n');
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--bind-address', HOST, '--bpf', 'off']);
  });

  afterAll(async () => {
    await sluice?.stop();
    await echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('says each shape in /api/status', async () => {
    const said = await problems();
    const expected = [
      "SLU_TRANSLATION HTTPRoute default/echo: annotations konghq.com/plugins, konghq.com/strip-path (Kong's) are another implementation's, not read by Sluice: what they ask for is not done; ignored",
      'SLU_TRANSLATION HTTPRoute default/echo: header modifier values X-Client-IP: $remote_addr are sent as written: the Gateway API, and Sluice, expand no variables (NGINX expands $name, Envoy %NAME%)',
      "SLU_TRANSLATION Service default/echo: annotation projectcontour.io/upstream-protocol.tls (Contour's) is another implementation's, not read by Sluice: what it asks for is not done",
      "SLU_TRANSLATION Ingress default/api: annotation konghq.com/strip-path is Kong's and is not read by Sluice; ignored",
    ];
    for (const line of expected) expect(said).toContain(line);
    expect(said.filter((p) => p.startsWith('SLU_MANIFEST_INVALID app.yaml'))).toEqual([
      'SLU_MANIFEST_INVALID app.yaml: document 5: Service default/guardrails refused: spec.externalName: Invalid value: "<GUARDRAILS_API_HOSTNAME>": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character',
    ]);
    expect(said.filter((p) => p.startsWith('SLU_MANIFEST_OBJECT kustomization.yaml'))).toEqual([expect.stringContaining("Kustomization (kustomize.config.k8s.io/v1beta1) is kustomize's file, not a Kubernetes object")]);
  });

  it('serves the route and the Ingress as written: no authentication asked, nothing stripped, the header value literal', async () => {
    expect(await get(GATEWAY_PORT, '/echo/one')).toEqual({ status: 200, backend: 'echo', path: '/echo/one', clientIp: '$remote_addr' });
    expect(await get(INGRESS_PORT, '/api/two')).toEqual({ status: 200, backend: 'echo', path: '/api/two', clientIp: undefined });
  });
});
