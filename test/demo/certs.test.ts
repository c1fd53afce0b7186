import { describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import {
  createCertificateAuthority,
  createClientCertificate,
  createSelfSignedServerCertificate,
  tlsSecretData,
} from '../../controller/demo/certs.ts';

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
