// A TLS backend that is not who the BackendTLSPolicy says (beyond test/e2e/backend-tls.test.ts's
// wrong CA and SAN mismatch): a certificate for another hostname, an expired one, a self-signed
// one, and a backend that answers in plaintext, each behind a real `sluice run` whose policy
// names the right CA. The client gets 502, the backend never reads the request (the handshake
// failed before it was sent), the failure is logged under the backend with the reason, and a
// backend with a valid certificate on the same gateway answers throughout.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, createSelfSignedServerCertificate, createServerCertificate, type CertificateBundle } from '../support/demo/certs.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { waitFor } from '../support/wait.ts';
import { ask } from './support/upstream-attack-gateway.ts';

const HOSTNAME = 'backend.example.com';
const HTTP_PORT = 8080;

interface TlsBackend {
  name: string;
  port: number;
  /** Requests the backend read (only possible after a handshake the gateway accepted). */
  requests: number;
  close(): Promise<void>;
}

async function httpsBackend(name: string, certificate: CertificateBundle): Promise<TlsBackend> {
  const backend: TlsBackend = { name, port: 0, requests: 0, close: async () => undefined };
  const server = https.createServer({ cert: certificate.certPem, key: certificate.keyPem }, (_req, res) => {
    backend.requests++;
    res.end(`secret from ${name}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as net.AddressInfo).port;
  backend.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return backend;
}

/** A "TLS" backend that accepts the connection and never answers the ClientHello. */
async function mutedBackend(name: string): Promise<TlsBackend> {
  const backend: TlsBackend = { name, port: 0, requests: 0, close: async () => undefined };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as net.AddressInfo).port;
  backend.close = () => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  });
  return backend;
}

/** A "TLS" backend that answers any bytes with a plaintext HTTP response (a misconfigured port). */
async function plaintextBackend(name: string): Promise<TlsBackend> {
  const backend: TlsBackend = { name, port: 0, requests: 0, close: async () => undefined };
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nplain\n'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as net.AddressInfo).port;
  backend.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return backend;
}

function manifests(backends: TlsBackend[], caPem: string): string {
  const objects: unknown[] = [
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'default' }, spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', port: HTTP_PORT, protocol: 'HTTP' }] } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web', namespace: 'default' },
      spec: { parentRefs: [{ name: 'gw' }], rules: backends.map((b) => ({ matches: [{ path: { type: 'PathPrefix', value: `/${b.name}` } }], backendRefs: [{ name: b.name, port: 443 }] })) },
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca', namespace: 'default' }, data: { 'ca.crt': caPem } },
  ];
  for (const b of backends) {
    objects.push(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: b.name, namespace: 'default' }, spec: { ports: [{ name: 'https', port: 443, targetPort: b.port }] } },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${b.name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': b.name } },
        addressType: 'IPv4',
        ports: [{ name: 'https', port: b.port }],
        endpoints: [{ addresses: ['127.0.0.1'] }],
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'BackendTLSPolicy',
        metadata: { name: b.name, namespace: 'default' },
        spec: { targetRefs: [{ group: '', kind: 'Service', name: b.name, sectionName: 'https' }], validation: { caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'ca' }], hostname: HOSTNAME } },
      },
    );
  }
  return objects.map((o) => JSON.stringify(o)).join('\n---\n');
}

describe('a TLS backend that is not who its BackendTLSPolicy says', () => {
  let dir: string;
  let sluice: SluiceProcess;
  let port: number;
  const backends: TlsBackend[] = [];

  beforeAll(async () => {
    const ca = await createCertificateAuthority({ commonName: 'backend-ca' });
    backends.push(
      await httpsBackend('valid', await createServerCertificate(ca, { dnsNames: [HOSTNAME] })),
      await httpsBackend('wrong-hostname', await createServerCertificate(ca, { dnsNames: ['other.example.com'] })),
      // notAfter a day before now (and before notBefore): expired for any verifier.
      await httpsBackend('expired', await createServerCertificate(ca, { dnsNames: [HOSTNAME], validityDays: -1 })),
      await httpsBackend('self-signed', await createSelfSignedServerCertificate({ dnsNames: [HOSTNAME] })),
      await plaintextBackend('plaintext'),
      await mutedBackend('muted'),
    );
    dir = mkdtempSync(join(tmpdir(), 'sluice-upattack-tls-'));
    writeFileSync(join(dir, 'all.yaml'), manifests(backends, ca.certPem));
    const offset = await freePortOffset([HTTP_PORT]);
    port = HTTP_PORT + offset;
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), '--backend-connect-timeout', '1000']);
    await waitFor('the valid backend served', async () => ((await ask(port, '/valid')).status === 200 ? true : undefined));
  }, 60_000);

  afterAll(async () => {
    await sluice?.stop();
    for (const b of backends) await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['wrong-hostname', /ERR_TLS_CERT_ALTNAME_INVALID/],
    ['expired', /CERT_HAS_EXPIRED/],
    ['self-signed', /DEPTH_ZERO_SELF_SIGNED_CERT/],
    // OpenSSL's record layer: ERR_SSL_WRONG_VERSION_NUMBER here (other builds may name the bad record otherwise).
    ['plaintext', /"code":"(ERR_SSL_[A-Z_]+|EPROTO)"/],
  ])('%s: 502, the backend never reads the request, logged under the backend with the reason', async (name, reason) => {
    const backend = backends.find((b) => b.name === name)!;
    const answer = await ask(port, `/${name}/x`);
    expect(answer.status).toBe(502);
    expect(answer.body).toBe('Bad Gateway\n');
    expect(backend.requests).toBe(0);
    const line = await waitFor(`${name}'s failure logged`, () => sluice.logs().split('\n').find((l) => l.includes('upstream request failed') && l.includes(`service/default/${name}/port/443`)));
    expect(line).toMatch(reason);
    const valid = await ask(port, '/valid/y');
    expect(valid.status).toBe(200);
    expect(valid.body).toContain('secret from valid');
  });

  it('a backend that never answers the ClientHello: 503 after --backend-connect-timeout (the handshake is part of the connect)', async () => {
    const answer = await ask(port, '/muted/x');
    expect(answer.status).toBe(503);
    const line = await waitFor('the muted failure logged', () => sluice.logs().split('\n').find((l) => l.includes('upstream request failed') && l.includes('service/default/muted/port/443')));
    expect(line).toMatch(/UND_ERR_CONNECT_TIMEOUT/);
    expect((await ask(port, '/valid/z')).status).toBe(200);
  });
});
