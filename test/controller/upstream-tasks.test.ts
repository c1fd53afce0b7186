// Shapes found by walking the projects' task docs (Envoy Gateway's tasks, the Gateway API guides)
// through a real `sluice run`: each case is our own manifest with the shape whose status told the
// user too little, read as `sluice run` reads a folder, and the words that must come out of it.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withImplicitGatewayClasses } from '../../controller/sources/implicit-classes.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import type { ObjectStatus } from '../../controller/status/conditions.ts';
import { translate } from '../../controller/translate/translate.ts';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import { selfSignedCertificate } from '../dataplane/support/certs.ts';
import { tlsSecretYaml } from '../e2e/backends.ts';

const CONTROLLER = 'sluice.dev/gateway-controller';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-upstream-tasks-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** What `sluice run` makes of one file of manifests (class `sluice` implicit). */
function translated(yaml: string) {
  writeFileSync(join(dir, 'all.yaml'), yaml);
  const { snapshot } = new ManifestFolder(dir).load();
  return translate(withImplicitGatewayClasses(snapshot, ['sluice'], CONTROLLER), { controllerName: CONTROLLER, bindAddress: '127.0.0.1', servedClassNames: ['sluice'], standalone: true });
}
const statuses = (yaml: string): ObjectStatus[] => translated(yaml).statuses;

type Cond = { type: string; status: string; reason: string; message: string };
const find = (all: ObjectStatus[], kind: string, name: string) => {
  const s = all.find((x) => x.kind === kind && x.name === name);
  if (!s) throw new Error(`no status for ${kind} ${name}`);
  return s.status;
};
const listenerCondition = (all: ObjectStatus[], gateway: string, listener: string, type: string) =>
  ((find(all, 'Gateway', gateway).listeners as { name: string; conditions: Cond[] }[]).find((l) => l.name === listener)?.conditions ?? []).find((c) => c.type === type);
const routeAccepted = (all: ObjectStatus[], kind: string, name: string) =>
  (find(all, kind, name).parents as { conditions: Cond[] }[])[0]?.conditions.find((c) => c.type === 'Accepted');

const gateway = (name: string, listeners: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
${listeners}
---
`;

describe('task walkthroughs: statuses that say what to change', () => {
  // Envoy Gateway's gRPC task applies its own Gateway beside the quickstart's, both plain HTTP on
  // port 80: in a cluster each gets its own address, on one bind address they meet on one socket.
  it("a listener that loses its port to another Gateway's names that Gateway and how to part them", () => {
    const all = statuses(
      gateway('first', '  - {name: http, protocol: HTTP, port: 80}') +
        gateway('second', '  - {name: web, protocol: HTTP, port: 80}\n  - {name: named, protocol: HTTP, port: 80, hostname: a.example}'),
    );
    const lost = listenerCondition(all, 'second', 'web', 'Conflicted');
    expect(lost).toMatchObject({ status: 'True', reason: 'HostnameConflict' });
    expect(lost?.message).toContain('listener http of Gateway default/first');
    expect(lost?.message).toContain('--bind-address with a CIDR, or spec.addresses');
    // Its hostname set apart, the same Gateway's other listener on that port is served beside it.
    expect(listenerCondition(all, 'second', 'named', 'Conflicted')).toMatchObject({ status: 'False' });
  });

  it("a route no listener takes is told which listener refuses it and for what: served, kind or namespace", () => {
    const all = statuses(
      gateway(
        'edge',
        `  - {name: tls, protocol: TLS, port: 443, tls: {mode: Terminate, certificateRefs: [{name: missing}]}}
  - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: Same}}}`,
      ) +
        gateway('taken', '  - {name: http, protocol: HTTP, port: 80}') +
        // Envoy Gateway's TLS termination task: a TCPRoute behind a TLS listener in Terminate mode.
        `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: stream, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: tls}]
  rules: [{backendRefs: [{name: app, port: 3000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: other}
spec:
  parentRefs: [{name: edge, namespace: default, sectionName: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: late, namespace: default}
spec:
  parentRefs: [{name: taken}]
`,
    );
    expect(routeAccepted(all, 'TCPRoute', 'stream')).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
    expect(routeAccepted(all, 'TCPRoute', 'stream')?.message).toContain('listener tls (TLS Terminate) takes TLSRoute');
    expect(routeAccepted(all, 'HTTPRoute', 'elsewhere')?.message).toContain('listener http takes routes from namespace default only (allowedRoutes.namespaces.from: Same)');
    // Gateway `taken` lost port 80 to `edge`: its route hears why, not a word about namespaces.
    expect(routeAccepted(all, 'HTTPRoute', 'late')?.message).toMatch(/listener http is not served \(HostnameConflict: .*Gateway default\/edge/);
  });

  // Envoy Gateway's secure-gateways task adds an ECDSA certificate for the same site beside the RSA
  // one, and a certificate per site on a listener without a hostname: both are served (an RSA and an
  // ECDSA one for the same names are one set, by DNS names), and a second one of a key type already
  // there is not and says so rather than being dropped without a word.
  it('a certificateRef no SNI would select is listed, naming the one that takes its names; an ECDSA one beside an RSA one is not', async () => {
    const [example, sample, exampleAgain, exampleEcdsa] = await Promise.all([
      createSelfSignedServerCertificate({ dnsNames: ['www.example.com'] }),
      createSelfSignedServerCertificate({ dnsNames: ['www.sample.com'] }),
      createSelfSignedServerCertificate({ dnsNames: ['www.example.com'] }),
      selfSignedCertificate('www.example.com'),
    ]);
    const { problems } = translated(
      gateway(
        'sites',
        `  - {name: https, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: example}, {name: sample}, {name: example-ecdsa}, {name: example-again}]}}
  - {name: named, protocol: HTTPS, port: 8443, hostname: www.sample.com, tls: {certificateRefs: [{name: sample}, {name: example}, {name: example-ecdsa}]}}`,
      ) + [tlsSecretYaml('example', example), tlsSecretYaml('sample', sample), tlsSecretYaml('example-again', exampleAgain), tlsSecretYaml('example-ecdsa', exampleEcdsa)].join('---\n'),
    );
    expect(problems.filter((p) => p.message.includes('never served')).map((p) => p.message)).toEqual([
      'Gateway default/sites listener https: certificateRefs[3] Secret default/example-again is never served: certificateRefs[0] is selected for all its names (www.example.com); Sluice serves one certificate per name and key type (an RSA and an ECDSA one for the same names are served together)',
      'Gateway default/sites listener named: certificateRefs[1] Secret default/example is never served: certificateRefs[0] is selected for all its names (www.sample.com); Sluice serves one certificate per name and key type (an RSA and an ECDSA one for the same names are served together)',
    ]);
  });
});
