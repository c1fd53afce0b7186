// Review (session 10): an HTTPS port whose certificates are chosen by the client's cipher suites
// reads each ClientHello before the TLS server gets the connection (dataplane/tls/client-hellos.ts).
// With Gateway spec.tls.frontend client validation on that port, the handshake must still ask for
// and check the client's certificate whichever pair the suites chose: a client the CA signed is
// served, one without a certificate or with another CA's never reaches the backend. Manifests
// through the manifest folder and translate, the IR on a real Dataplane, real TLS clients.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';
import { createCertificateAuthority, createClientCertificate, createSelfSignedServerCertificate, tlsSecretData, type CertificateBundle } from '../support/demo/certs.ts';
import { freePort } from '../support/sluice-process.ts';
import { selfSignedCertificate } from './support/certs.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';

const HOST = '127.0.0.1';
const indent = (pem: string) => pem.trim().split('\n').map((l) => `      ${l}`).join('\n');
const secret = (name: string, bundle: { certPem: string; keyPem: string }) => {
  const data = tlsSecretData(bundle as CertificateBundle);
  return `---
apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: infra}
type: kubernetes.io/tls
data: {tls.crt: ${data['tls.crt']}, tls.key: ${data['tls.key']}}
`;
};

/** TLS 1.2 with ECDHE-ECDSA suites only but RSA signatures too: only the suites pick the EC pair. */
const ECDSA_SUITES_TLS12: ConnectionOptions = { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256:ecdsa_secp256r1_sha256' };
const RSA_SUITES_TLS12: ConnectionOptions = { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', sigalgs: 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256:rsa_pkcs1_sha256' };

/** The status line through the gateway and the key type of the certificate served, or the TLS error. */
function get(port: number, options: ConnectionOptions, client?: { certPem: string; keyPem: string }): Promise<{ answer: string; keyType: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: HOST, port, servername: 'www.sample.com', rejectUnauthorized: false, ...options, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) });
    let keyType = '';
    let text = '';
    socket.on('secureConnect', () => {
      const peer = socket.getPeerX509Certificate();
      keyType = peer?.publicKey.asymmetricKeyType ?? 'none';
      socket.write('GET / HTTP/1.1\r\nHost: www.sample.com\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    // TLS 1.3: a refused client certificate arrives as an alert after the client's handshake ended.
    socket.on('error', (error: NodeJS.ErrnoException) => resolve({ answer: `error ${error.code ?? error.message}`, keyType }));
    socket.on('close', () => resolve({ answer: text.split('\r\n')[0] + (text.endsWith('backend') ? ' backend' : ''), keyType }));
  });
}

describe('HTTPS port choosing certificates by suites, with frontend client validation', () => {
  let t: TestDataplane;
  let backend: Server;
  let dir: string;
  let port: number;
  let client: CertificateBundle;
  let stranger: CertificateBundle;

  beforeAll(async () => {
    const ca = await createCertificateAuthority();
    const otherCa = await createCertificateAuthority({ commonName: 'Other CA' });
    const [exampleRsa, sampleRsa, sampleEcdsa] = await Promise.all([
      createSelfSignedServerCertificate({ dnsNames: ['www.example.com'] }),
      createSelfSignedServerCertificate({ dnsNames: ['www.sample.com'] }),
      selfSignedCertificate('www.sample.com', ['www.sample.com']),
    ]);
    [client, stranger] = await Promise.all([createClientCertificate(ca), createClientCertificate(otherCa)]);
    backend = createServer((_req, res) => res.end('backend'));
    await new Promise<void>((resolve) => backend.listen(0, HOST, resolve));
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'sluice-review-s10-client-cert-'));
    writeFileSync(
      join(dir, 'all.yaml'),
      `apiVersion: gateway.networking.k8s.io/v1
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
  ports: [{name: http, port: 80, targetPort: ${(backend.address() as AddressInfo).port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: infra, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: ${(backend.address() as AddressInfo).port}}]
endpoints:
- addresses: [${HOST}]
${secret('example-rsa', exampleRsa)}${secret('sample-rsa', sampleRsa)}${secret('sample-ecdsa', sampleEcdsa)}---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca, namespace: infra}
data:
  ca.crt: |
${indent(ca.certPem)}
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
  listeners:
  - {name: sites, port: ${port}, protocol: HTTPS, tls: {certificateRefs: [{name: example-rsa}, {name: sample-rsa}, {name: sample-ecdsa}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sites, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`,
    );
    const load = new ManifestFolder(dir).load();
    expect(load.problems).toEqual([]);
    const result = translate(load.snapshot, { controllerName: 'sluice.dev/gateway-controller', bindAddress: HOST, servedClassNames: [], ingress: { classNames: [], controllers: [], enforceHttps: true } });
    t = testDataplane();
    const applied = await t.dataplane.apply('v1', result.ir.http);
    expect(applied.listeners.every((l) => l.ok)).toBe(true);
  });

  afterAll(async () => {
    await t?.dataplane.close();
    backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, ConnectionOptions, 'rsa' | 'ec'][] = [
    ['TLS 1.2, ECDHE-ECDSA suites (the EC pair)', ECDSA_SUITES_TLS12, 'ec'],
    ['TLS 1.2, ECDHE-RSA suites (the RSA pair)', RSA_SUITES_TLS12, 'rsa'],
    ['TLS 1.3, RSA signatures only (the RSA pair)', { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }, 'rsa'],
    // ECDSA preferred (the server picks in the client's order); RSA-PSS listed so the client can sign with its RSA certificate.
    ['TLS 1.3, ECDSA signatures first (the EC pair)', { sigalgs: 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256' }, 'ec'],
  ];
  it.each(cases)('%s: a client the CA signed is served; none, or another CA\'s, never reaches the backend', async (_name, options, keyType) => {
    expect(await get(port, options, client)).toEqual({ answer: 'HTTP/1.1 200 OK backend', keyType });
    expect((await get(port, options)).answer).not.toMatch(/backend/);
    expect((await get(port, options, stranger)).answer).not.toMatch(/backend/);
  });
});
