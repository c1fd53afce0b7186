import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { parse, stringify } from 'yaml';
import {
  createCertificateAuthority,
  createClientCertificate,
  createSelfSignedServerCertificate,
  tlsSecretData,
} from '../support/demo/certs.ts';
import { DemoBackends } from '../support/demo/demo-backends.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';

const QUICKSTART = join(import.meta.dirname, '..', '..', 'examples', 'quickstart');

/** The certificate PEM of a Secret file written by --demo-backends. */
function generatedCertificate(file: string): X509Certificate {
  const secret = parse(readFileSync(file, 'utf8')) as { data: Record<string, string> };
  return new X509Certificate(Buffer.from(secret.data['tls.crt']!, 'base64'));
}

/** An HTTPS GET that verifies the server certificate against `ca` for `servername` (as curl --resolve … --cacert does). */
function verifiedGet(port: number, servername: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/api/v1', servername, headers: { host: servername }, ca, rejectUnauthorized: true, agent: false },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

interface HandshakeResult {
  ok: boolean;
  error?: string;
  peerSubject?: string;
}

async function handshake(
  serverOpts: tls.TlsOptions,
  clientOpts: tls.ConnectionOptions,
): Promise<HandshakeResult> {
  let peerSubject: string | undefined;
  const server = tls.createServer(serverOpts, (socket) => {
    peerSubject = socket.getPeerX509Certificate()?.subject;
    socket.end('hello');
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<HandshakeResult>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ...clientOpts });
      socket.on('data', () => {
        socket.end();
        resolve({ ok: true, peerSubject });
      });
      socket.on('error', (err) => resolve({ ok: false, error: err.message }));
      socket.on('close', () => resolve({ ok: false, error: 'closed without data' }));
    });
  } finally {
    server.close();
  }
}

describe('certificates', () => {
  it('creates a self-signed server certificate that verifies for a SAN name', async () => {
    const cert = await createSelfSignedServerCertificate({ dnsNames: ['example.org', '*.wildcard.org'], uris: ['*'] });
    const parsed = new X509Certificate(cert.certPem);
    expect(parsed.subjectAltName).toBe('DNS:example.org, DNS:*.wildcard.org, URI:*');
    expect(parsed.ca).toBe(false);
    expect(parsed.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(cert.keyPem)))).toBe(true);

    const ok = await handshake(
      { cert: cert.certPem, key: cert.keyPem },
      { servername: 'foo.wildcard.org', ca: cert.certPem },
    );
    expect(ok).toEqual({ ok: true, peerSubject: undefined });

    const wrongName = await handshake(
      { cert: cert.certPem, key: cert.keyPem },
      { servername: 'other.example', ca: cert.certPem },
    );
    expect(wrongName.ok).toBe(false);

    const untrusted = await handshake(
      { cert: cert.certPem, key: cert.keyPem },
      { servername: 'example.org', ca: (await createSelfSignedServerCertificate({ dnsNames: ['example.org'] })).certPem },
    );
    expect(untrusted.ok).toBe(false);
  });

  it('creates CAs and client certificates accepted for mutual TLS', async () => {
    const server = await createSelfSignedServerCertificate({ dnsNames: ['example.org'] });
    const caA = await createCertificateAuthority({ commonName: 'CA A' });
    const caB = await createCertificateAuthority({ commonName: 'CA B' });
    const parsedCa = new X509Certificate(caA.certPem);
    expect(parsedCa.ca).toBe(true);
    const clientA = await createClientCertificate(caA, { commonName: 'client-a' });
    const parsedClient = new X509Certificate(clientA.certPem);
    expect(parsedClient.checkIssued(parsedCa)).toBe(true);
    expect(parsedClient.subjectAltName).toBeUndefined();

    const serverOpts: tls.TlsOptions = {
      cert: server.certPem,
      key: server.keyPem,
      ca: caA.certPem,
      requestCert: true,
      rejectUnauthorized: true,
    };
    const accepted = await handshake(serverOpts, {
      servername: 'example.org',
      ca: server.certPem,
      cert: clientA.certPem,
      key: clientA.keyPem,
    });
    expect(accepted.ok).toBe(true);
    expect(accepted.peerSubject).toContain('CN=client-a');

    const clientB = await createClientCertificate(caB);
    const rejected = await handshake(serverOpts, {
      servername: 'example.org',
      ca: server.certPem,
      cert: clientB.certPem,
      key: clientB.keyPem,
    });
    expect(rejected.ok).toBe(false);
  });

  it('encodes kubernetes.io/tls Secret data', async () => {
    const cert = await createSelfSignedServerCertificate({ dnsNames: ['a.example'] });
    const data = tlsSecretData(cert);
    expect(Buffer.from(data['tls.crt'], 'base64').toString()).toBe(cert.certPem);
    expect(Buffer.from(data['tls.key'], 'base64').toString()).toContain('BEGIN PRIVATE KEY');
  });
});

describe('demo certificates name the hosts they serve', () => {
  it('collects listener hostnames, attached HTTPRoute hostnames and Ingress hosts per Secret, and leaves foreign files alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-demo-certs-'));
    try {
      writeFileSync(
        join(dir, 'gateways.yaml'),
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: https, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: site-tls}]}}
  - {name: www, port: 8443, protocol: HTTPS, hostname: www.example.org, tls: {certificateRefs: [{name: site-tls}]}}
  - {name: extra, port: 9443, protocol: HTTPS, tls: {certificateRefs: [{name: extra-tls}]}}
  - {name: mine, port: 9444, protocol: HTTPS, tls: {certificateRefs: [{name: mine-tls}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: https}]
  hostnames: [api.example.com, "*.apps.example.com"]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: extra}, {name: other-gateway}]
  hostnames: [extra.example.com]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: default}
spec:
  tls: [{secretName: shop-tls}]
  rules: [{host: shop.example.com}, {host: cart.example.com}]
`,
      );
      // A Secret file the user wrote (no marker): never replaced, whatever it names.
      const own = await createSelfSignedServerCertificate({ dnsNames: ['mine.example.com'] });
      const ownFile = join(dir, 'generated-tls-default-mine-tls.yaml');
      const ownText = stringify({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'mine-tls', namespace: 'default' }, data: tlsSecretData(own) });
      writeFileSync(ownFile, ownText);

      const demo = new DemoBackends(dir, pino({ level: 'silent' }));
      expect(await demo.sync(new ManifestFolder(dir).load().snapshot)).toBe(true);
      await demo.close();
      const sans = (secret: string) => generatedCertificate(join(dir, `generated-tls-default-${secret}.yaml`)).subjectAltName;
      expect(sans('site-tls')).toBe('DNS:api.example.com, DNS:*.apps.example.com, DNS:www.example.org, DNS:localhost, IP Address:127.0.0.1');
      expect(sans('extra-tls')).toBe('DNS:extra.example.com, DNS:localhost, IP Address:127.0.0.1');
      expect(sans('shop-tls')).toBe('DNS:shop.example.com, DNS:cart.example.com, DNS:localhost, IP Address:127.0.0.1');
      expect(readFileSync(ownFile, 'utf8')).toBe(ownText);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('with a real sluice run on the quickstart', () => {
    let dir: string;
    let sluice: SluiceProcess;
    let offset: number;
    const file = () => join(dir, 'generated-tls-default-quickstart-tls.yaml');

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sluice-demo-certs-e2e-'));
      for (const f of readdirSync(QUICKSTART).filter((f) => !f.startsWith('generated-'))) cpSync(join(QUICKSTART, f), join(dir, f));
      // What an older Sluice wrote: a certificate for localhost only. It is replaced on start.
      const stale = await createSelfSignedServerCertificate({ dnsNames: ['localhost'] });
      const secret = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'quickstart-tls', namespace: 'default' }, data: tlsSecretData(stale) };
      writeFileSync(file(), `# Self-signed certificate written by sluice --demo-backends; delete it to get a new one.\n${stringify(secret)}`);
      offset = await freePortOffset([8080, 8443]);
      sluice = await startSluice(['--manifests', dir, '--demo-backends', '--listener-port-offset', String(offset)]);
    });

    afterAll(async () => {
      await sluice?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('verifies api.example.com and localhost with the generated certificate as the CA', async () => {
      const certificate = generatedCertificate(file());
      expect(certificate.subjectAltName).toContain('DNS:api.example.com');
      expect(sluice.logs()).toMatch(/does not name api\.example\.com: writing a new certificate/);
      // The folder is read again after the write; the new certificate is served once it is.
      const deadline = Date.now() + 10_000;
      let answer: { status: number; body: string } | Error = new Error('not tried');
      while (Date.now() < deadline) {
        answer = await verifiedGet(8443 + offset, 'api.example.com', certificate.toString()).catch((error: Error) => error);
        // Not `instanceof Error`: an error made by Node's core is of another realm than jest's test code.
        if ('status' in answer) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(answer).toEqual({ status: 200, body: expect.stringMatching(/"pod": "api-v1-/) });
      await expect(verifiedGet(8443 + offset, 'localhost', certificate.toString())).resolves.toMatchObject({ status: expect.any(Number) });
      await expect(verifiedGet(8443 + offset, 'unnamed.example.net', certificate.toString())).rejects.toThrow(/altnames|not in the cert/i);
    });
  });
});
