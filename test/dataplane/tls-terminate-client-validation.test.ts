// Gateway spec.tls.frontend on a TLS listener in Terminate mode (TLSRoute): the Gateway asks for
// client certificates, so the listener that ends TLS must check them as HTTPS listeners do, never
// serve quietly without. Manifests through the manifest folder and translate, the IR on a real
// Dataplane, real TLS clients with and without a certificate the CA signed.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';
import {
  createCertificateAuthority,
  createClientCertificate,
  createSelfSignedServerCertificate,
  tlsSecretData,
  type CertificateBundle,
} from '../support/demo/certs.ts';
import { freePort } from '../support/sluice-process.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';

const HOST = '127.0.0.1';
const indent = (pem: string) => pem.trim().split('\n').map((l) => `      ${l}`).join('\n');

function manifests(opts: { strictPort: number; fallbackPort: number; backendPort: number; server: CertificateBundle; caPem: string }): string {
  const secret = tlsSecretData(opts.server);
  const route = (name: string, section: string) => `---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: ${name}, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: ${section}}]
  hostnames: [tls.example.com]
  rules:
  - backendRefs: [{name: web, port: 8080}]
`;
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.dev/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: infra}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: infra}
spec:
  ports: [{name: tcp, port: 8080, targetPort: ${opts.backendPort}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: infra, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: tcp, port: ${opts.backendPort}}]
endpoints:
- addresses: [${HOST}]
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: infra}
type: kubernetes.io/tls
data: {tls.crt: ${secret['tls.crt']}, tls.key: ${secret['tls.key']}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca, namespace: infra}
data:
  ca.crt: |
${indent(opts.caPem)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sluice
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{kind: ConfigMap, group: "", name: ca}]
      perPort:
      - port: ${opts.fallbackPort}
        tls:
          validation:
            mode: AllowInsecureFallback
            caCertificateRefs: [{kind: ConfigMap, group: "", name: ca}]
  listeners:
  - {name: strict, port: ${opts.strictPort}, protocol: TLS, hostname: tls.example.com, tls: {mode: Terminate, certificateRefs: [{name: cert}]}}
  - {name: fallback, port: ${opts.fallbackPort}, protocol: TLS, hostname: tls.example.com, tls: {mode: Terminate, certificateRefs: [{name: cert}]}}
${route('strict', 'strict')}${route('fallback', 'fallback')}`;
}

/** The first line the backend writes through the gateway, or the TLS error that ended the connection. */
function through(port: number, server: CertificateBundle, client?: CertificateBundle): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: HOST, port, servername: 'tls.example.com', ca: server.certPem, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) });
    let text = '';
    socket.on('data', (d) => {
      text += d;
      if (text.includes('\n')) {
        socket.destroy();
        resolve(text.slice(0, text.indexOf('\n')));
      }
    });
    // TLS 1.3: a refused client certificate arrives as an alert after the client's handshake ended.
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code ?? error.message}`));
    socket.on('close', () => resolve(`closed ${text}`));
  });
}

describe('spec.tls.frontend on TLS Terminate listeners', () => {
  let t: TestDataplane;
  let backend: Server;
  let dir: string;
  let server: CertificateBundle;
  let client: CertificateBundle;
  let stranger: CertificateBundle;
  const ports = { strict: 0, fallback: 0 };

  beforeAll(async () => {
    const ca = await createCertificateAuthority();
    const otherCa = await createCertificateAuthority({ commonName: 'Other CA' });
    [server, client, stranger] = await Promise.all([createSelfSignedServerCertificate({ dnsNames: ['tls.example.com'] }), createClientCertificate(ca), createClientCertificate(otherCa)]);
    backend = createServer((socket) => socket.end('backend\n'));
    await new Promise<void>((resolve) => backend.listen(0, HOST, resolve));
    [ports.strict, ports.fallback] = [await freePort(), await freePort()];
    dir = mkdtempSync(join(tmpdir(), 'sluice-tls-frontend-'));
    writeFileSync(join(dir, 'all.yaml'), manifests({ strictPort: ports.strict, fallbackPort: ports.fallback, backendPort: (backend.address() as AddressInfo).port, server, caPem: ca.certPem }));
    const load = new ManifestFolder(dir).load();
    expect(load.problems).toEqual([]);
    const result = translate(load.snapshot, {
      controllerName: 'sluice.dev/gateway-controller',
      bindAddress: HOST,
      servedClassNames: [],
      ingress: { classNames: [], controllers: [], enforceHttps: true },
    });
    const routes = result.ir.http.passthrough?.flatMap((l) => l.routes) ?? [];
    expect(routes.map((r) => r.terminate?.clientValidation?.mode).sort()).toEqual(['AllowInsecureFallback', 'AllowValidOnly']);
    t = testDataplane();
    const applied = await t.dataplane.apply('v1', result.ir.http);
    expect(applied.listeners.every((l) => l.ok)).toBe(true);
  });

  afterAll(async () => {
    await t?.dataplane.close();
    backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('AllowValidOnly: a client with a certificate the CA signed is relayed; without one, or with another CA\'s, it never reaches the backend', async () => {
    expect(await through(ports.strict, server, client)).toBe('backend');
    expect(await through(ports.strict, server)).not.toBe('backend');
    expect(await through(ports.strict, server, stranger)).not.toBe('backend');
  });

  it('AllowInsecureFallback: clients with and without a certificate are relayed', async () => {
    expect(await through(ports.fallback, server, client)).toBe('backend');
    expect(await through(ports.fallback, server)).toBe('backend');
  });
});
