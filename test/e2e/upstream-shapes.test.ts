// The shapes of other projects' example manifests through a real `sluice run`
// (test/controller/upstream-shapes.test.ts has each shape alone): a file with an alias whose
// anchor is in another document — which ended the process — is refused as invalid YAML while the
// rest serves, at start and when written later; a v1alpha2 TLSRoute without hostnames is spliced
// through to its TLS backend for any SNI name; a merge key and a typed list are read as kubectl
// reads them; a Gateway of a class nobody has and a route without parentRefs are listed as problems.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Problem } from '../../controller/problems.ts';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { GATEWAY_CLASS_YAML, startNamedBackend, type NamedBackend } from './backends.ts';

const HOST = '127.0.0.1';
const HTTP_PORT = 80;
const TLS_PORT = 443;

/** An alias to an anchor of the document before it: invalid YAML (anchors do not cross `---`). */
const BROKEN = `apiVersion: v1
kind: ConfigMap
metadata: {name: first}
data: {a: &shared value}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: second}
data: {b: *shared}
`;

const endpointsYaml = (service: string, port: number) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${service}-1, namespace: default, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
ports: [{name: p, port: ${port}}]
endpoints: [{addresses: [${HOST}]}]
`;

describe('upstream example shapes through sluice run', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;
  let web: NamedBackend;
  let tlsBackend: TlsServer;
  let backendCertPem: string;
  const problems = async () => ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: Problem[] }).problems.map((p) => `${p.code} ${p.file ? `${p.file}: ` : ''}${p.message}`);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-upstream-'));
    web = await startNamedBackend('web');
    // A TLS backend that names the SNI it was asked for: passthrough means its certificate reaches the client.
    const cert = await createSelfSignedServerCertificate({ dnsNames: ['db.example.org'] });
    backendCertPem = cert.certPem;
    tlsBackend = createTlsServer({ cert: cert.certPem, key: cert.keyPem }, (socket) => socket.end(`tls-backend ${socket.servername}\n`));
    await new Promise<void>((resolve) => tlsBackend.listen(0, HOST, resolve));
    const tlsPort = (tlsBackend.address() as { port: number }).port;
    offset = await freePortOffset([HTTP_PORT, TLS_PORT]);
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        GATEWAY_CLASS_YAML,
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: ${HTTP_PORT}, protocol: HTTP}
  - {name: tls, port: ${TLS_PORT}, protocol: TLS, tls: {mode: Passthrough}}
`,
        // The Gateway API examples' class, which nothing defines.
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: prod-web, namespace: default}
spec:
  gatewayClassName: example
  listeners: [{name: http, port: 8080, protocol: HTTP}]
`,
      ].join('---\n'),
    );
    // Services as a typed list (an API list response), endpoints beside them.
    writeFileSync(
      join(dir, 'services.yaml'),
      `apiVersion: v1
kind: ServiceList
items:
- {apiVersion: v1, kind: Service, metadata: {name: web, namespace: default}, spec: {ports: [{name: p, port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: db, namespace: default}, spec: {ports: [{name: p, port: 5432}]}}
---
${endpointsYaml('web', web.port)}---
${endpointsYaml('db', tlsPort)}`,
    );
    writeFileSync(
      join(dir, 'routes.yaml'),
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    backendRefs: [&web {name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /cart}}]
    backendRefs:
    - <<: *web
      weight: 1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: unattached, namespace: default}
spec:
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: db, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: tls}]
  rules: [{backendRefs: [{name: db, port: 5432}]}]
`,
    );
    writeFileSync(join(dir, 'broken.yaml'), BROKEN);
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--bind-address', HOST]);
  });

  afterAll(async () => {
    await sluice?.stop();
    await web?.close();
    await new Promise<void>((resolve) => (tlsBackend ? tlsBackend.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts with a file whose alias has no anchor in its document, lists it as invalid YAML with the objects nobody serves, and serves the rest', async () => {
    expect((await problems()).sort()).toEqual(
      [
        "SLU_MANIFEST_YAML broken.yaml: invalid YAML in document 2: Unresolved alias (the anchor must be set before the alias): shared; its objects are left out until it parses again",
        'SLU_TRANSLATION Gateway default/prod-web: its gatewayClassName example names no GatewayClass, so no controller serves it; set gatewayClassName: cilium, or define that GatewayClass',
        'SLU_TRANSLATION HTTPRoute default/unattached: it has no parentRefs, so it attaches to no Gateway; name its Gateway (or ListenerSet) in spec.parentRefs',
      ].sort(),
    );
    // The merge key's backendRef and the typed list's Service: both rules reach the backend.
    for (const path of ['/shop/1', '/cart/2']) {
      const res = await fetch(`http://${HOST}:${HTTP_PORT + offset}${path}`);
      expect([res.status, ((await res.json()) as { backend: string }).backend]).toEqual([200, 'web']);
    }
  });

  it('splices a v1alpha2 TLSRoute without hostnames through to its backend for any SNI name', async () => {
    const route = (await sluice.status()).find((s) => s.kind === 'TLSRoute' && s.metadata.name === 'db');
    expect(route.status.parents[0].conditions.map((c: { type: string; status: string }) => `${c.type}=${c.status}`)).toEqual(['Accepted=True', 'ResolvedRefs=True']);
    const answer = await new Promise<string>((resolve, reject) => {
      // The backend's own certificate verifies: the gateway did not terminate.
      const socket = tlsConnect({ host: HOST, port: TLS_PORT + offset, servername: 'db.example.org', ca: backendCertPem });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (d) => (text += d));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.setTimeout(5_000, () => socket.destroy(new Error('no answer in 5 s')));
    });
    expect(answer).toBe('tls-backend db.example.org\n');
  });

  it('a broken alias written while running is refused for its file only; fixed, the problem is resolved', async () => {
    writeFileSync(join(dir, 'later.yaml'), BROKEN.replaceAll('first', 'third').replaceAll('second', 'fourth'));
    await waitFor('the later file refused', async () => ((await problems()).some((p) => p.startsWith('SLU_MANIFEST_YAML later.yaml: invalid YAML in document 2: Unresolved alias')) ? true : undefined));
    const res = await fetch(`http://${HOST}:${HTTP_PORT + offset}/shop/3`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    unlinkSync(join(dir, 'later.yaml'));
    await waitFor('the later file gone from the problems', async () => ((await problems()).some((p) => p.includes('later.yaml')) ? undefined : true));
    expect(sluice.logs()).toMatch(/resolved: SLU_MANIFEST_YAML later\.yaml/);
  });
});
