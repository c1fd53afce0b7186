// An RSA and an ECDSA certificate for the same names on one listener (Envoy Gateway's secure-gateways
// task adds the ECDSA one beside the RSA one) through a real `sluice run`: both are served, and each
// client gets the one its signature algorithms and cipher suites can use, as Envoy does. Checked
// for the listener's first set (the server's default context: OpenSSL picks), a later set (the
// SNICallback picks a pair), an HTTPS listener with a hostname, and a TLS Terminate listener.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { createSelfSignedServerCertificate, type CertificateBundle } from '../support/demo/certs.ts';
import { selfSignedCertificate } from '../dataplane/support/certs.ts';
import { freePortOffset } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { gatewayYaml, serviceYaml, startNamedBackend, tlsSecretYaml, type NamedBackend } from './backends.ts';

const HOST = '127.0.0.1';

/** Clients that can use one key type only, and a default one. */
const CLIENTS: Record<string, { options: ConnectionOptions; keyType?: 'rsa' | 'ec' }> = {
  default: { options: {} },
  'TLS 1.3 ECDSA signatures only': { options: { sigalgs: 'ecdsa_secp256r1_sha256' }, keyType: 'ec' },
  'TLS 1.3 RSA signatures only': { options: { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }, keyType: 'rsa' },
  'TLS 1.2 ECDHE-ECDSA only': { options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', sigalgs: 'ecdsa_secp256r1_sha256' }, keyType: 'ec' },
  'TLS 1.2 ECDHE-RSA only': { options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }, keyType: 'rsa' },
  // Signatures of both key types, suites of one: the suites decide (a later set's first pair by the
  // signatures alone failed the handshake: no shared cipher).
  'TLS 1.2 ECDHE-ECDSA suites, RSA signatures too': { options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256:ecdsa_secp256r1_sha256' }, keyType: 'ec' },
  'TLS 1.2 ECDHE-RSA suites, ECDSA signatures too': { options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', sigalgs: 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }, keyType: 'rsa' },
};

describe('an RSA and an ECDSA certificate for the same names, both served (sluice run)', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let offset: number;
  let app: NamedBackend;
  const certs: Record<string, CertificateBundle> = {};

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-tls-key-types-'));
    app = await startNamedBackend('app');
    const rsa = (names: string[]) => createSelfSignedServerCertificate({ dnsNames: names });
    const ecdsa = (names: string[]) => selfSignedCertificate(names[0]!, names);
    const made = await Promise.all([
      rsa(['www.example.com']),
      ecdsa(['www.example.com']),
      rsa(['www.sample.com']),
      ecdsa(['www.sample.com']),
      rsa(['first.test']),
      rsa(['www.named.test']),
      ecdsa(['www.named.test']),
      ecdsa(['first.test']),
    ]);
    ['example-rsa', 'example-ecdsa', 'sample-rsa', 'sample-ecdsa', 'first-rsa', 'named-rsa', 'named-ecdsa', 'first-ecdsa'].forEach((name, i) => (certs[name] = made[i]!));
    offset = await freePortOffset([443, 8443, 9443]);
    writeManifests(['first-rsa']);
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--bind-address', HOST]);
  }, 60_000);

  /** The Gateway (listener `first` with these certificateRefs), every Secret, the Service and routes. */
  const writeManifests = (firstRefs: string[]) =>
    writeFileSync(
      join(dir, 'all.yaml'),
      `${gatewayYaml([
        '{name: sites, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: example-rsa}, {name: example-ecdsa}, {name: sample-rsa}, {name: sample-ecdsa}]}}',
        `{name: first, port: 8443, protocol: HTTPS, hostname: first.test, tls: {certificateRefs: [${firstRefs.map((name) => `{name: ${name}}`).join(', ')}]}}`,
        '{name: named, port: 8443, protocol: HTTPS, hostname: www.named.test, tls: {certificateRefs: [{name: named-ecdsa}, {name: named-rsa}]}}',
        '{name: tls, port: 9443, protocol: TLS, tls: {mode: Terminate, certificateRefs: [{name: example-rsa}, {name: example-ecdsa}, {name: sample-rsa}, {name: sample-ecdsa}]}}',
      ])}---
${Object.entries(certs)
  .map(([name, cert]) => tlsSecretYaml(name, cert))
  .join('---\n')}---
${serviceYaml('app', app)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sites, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: terminated, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: tls}]
  hostnames: [www.example.com, www.sample.com]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`,
    );

  afterAll(async () => {
    await sluice?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The served certificate's names and key type, once it verifies for `servername` against every test certificate. */
  const served = (port: number, servername: string, options: ConnectionOptions) =>
    new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: HOST, port: port + offset, servername, ca: Object.values(certs).map((cert) => cert.certPem), ...options }, () => {
        const peer = socket.getPeerX509Certificate();
        resolve(`${peer?.subjectAltName} ${peer?.publicKey.asymmetricKeyType}`);
        socket.destroy();
      });
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(`refused: ${error.code ?? error.message}`));
    });

  const cases: Array<[string, number, string]> = [
    ["HTTPS without a hostname, the listener's first set (www.example.com)", 443, 'www.example.com'],
    ['HTTPS without a hostname, a later set (www.sample.com)', 443, 'www.sample.com'],
    ['HTTPS with a hostname, ECDSA first, after another listener on the port', 8443, 'www.named.test'],
    ['TLS Terminate, first set', 9443, 'www.example.com'],
    ['TLS Terminate, a later set', 9443, 'www.sample.com'],
  ];
  for (const [what, port, servername] of cases) {
    it(`${what}: every client completes the handshake with a certificate of a type it can use`, async () => {
      for (const [client, { options, keyType }] of Object.entries(CLIENTS)) {
        const answer = await served(port, servername, options);
        expect(`${client}: ${answer}`).toMatch(new RegExp(`^${client}: DNS:${servername.replaceAll('.', '\\.')} ${keyType ?? '(rsa|ec)'}$`));
      }
    });
  }

  it('a listener with one certificate still serves it to every client that can use it', async () => {
    expect(await served(8443, 'first.test', {})).toBe('DNS:first.test rsa');
    expect(await served(8443, 'first.test', CLIENTS['TLS 1.3 ECDSA signatures only']!.options)).toMatch(/^refused: /);
  });

  // The task adds the ECDSA certificate to a listener already serving: the port's default context
  // (the first set) is replaced on the open socket, no restart.
  it('an ECDSA certificate added to a serving listener is served beside the RSA one', async () => {
    writeManifests(['first-rsa', 'first-ecdsa']);
    const ecdsaOnly = CLIENTS['TLS 1.3 ECDSA signatures only']!.options;
    await waitFor('the ECDSA certificate served', async () => ((await served(8443, 'first.test', ecdsaOnly)) === 'DNS:first.test ec' ? true : undefined));
    expect(await served(8443, 'first.test', CLIENTS['TLS 1.2 ECDHE-RSA only']!.options)).toBe('DNS:first.test rsa');
    expect(await served(8443, 'www.named.test', ecdsaOnly)).toBe('DNS:www.named.test ec');
  });
});
