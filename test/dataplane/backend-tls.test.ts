// TLS to backends through the dataplane's own pools (dataplane/upstream/pools.ts + tls.ts) against
// real HTTPS echo servers: SNI is the policy's hostname whatever the Host, the chain must end in the
// policy's CA, SANs replace the hostname check, the Gateway's client certificate is presented, and
// `h2c` backends speak HTTP/2 by ALPN. A failed verification is an error of that request, not a crash.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import type { BackendClientCertificate, BackendSubjectAltName, BackendTls } from '../../ir/types.ts';
import { UpstreamPools } from '../../dataplane/upstream/pools.ts';
import { checkBackendIdentity } from '../../dataplane/upstream/tls.ts';
import { createCertificateAuthority, createClientCertificate, createServerCertificate, type CertificateAuthority } from '../support/demo/certs.ts';
import { startEchoServer, type EchoReply, type EchoServer } from '../support/demo/echo-server.ts';

function settings(ca: CertificateAuthority, serverName: string, subjectAltNames: BackendSubjectAltName[] = []): BackendTls {
  const base = { origin: { kind: 'BackendTLSPolicy' as const, namespace: 'default', name: 'p' }, serverName, caCertificates: [{ source: 'configmap/default/ca', pem: ca.certPem }], subjectAltNames };
  return { ...base, hash: createHash('sha256').update(JSON.stringify(base)).digest('hex').slice(0, 16) };
}

async function get(pool: Dispatcher, host: string): Promise<{ status: number; reply: EchoReply }> {
  const res = await pool.request({ path: '/x', method: 'GET', headers: { host } });
  return { status: res.statusCode, reply: (await res.body.json()) as EchoReply };
}

describe('TLS to backends from the dataplane pools', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let client: BackendClientCertificate;
  let server: EchoServer;
  const pools = new UpstreamPools(1000, 2000);

  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'backend-ca' });
    otherCa = await createCertificateAuthority({ commonName: 'unrelated-ca' });
    const serving = await createServerCertificate(ca, { dnsNames: ['abc.example.com', '*.wild.example.com'], uris: ['spiffe://abc.example.com/test-identity'] });
    const clientBundle = await createClientCertificate(ca, { commonName: 'gateway-client' });
    client = { secret: 'secret/default/client', certPem: clientBundle.certPem, keyPem: clientBundle.keyPem, hash: 'client1' };
    // Asks for a client certificate, verifies one when sent, serves without one too (as echo-basic).
    server = await startEchoServer({ httpPort: 0, httpsPort: 0, tls: { cert: serving.certPem, key: serving.keyPem, ca: ca.certPem }, identity: { pod: 'tls-backend-1', namespace: 'default' } });
  });

  afterAll(async () => {
    await pools.closeAll();
    await server?.close();
  });

  const endpoint = () => ({ address: '127.0.0.1', port: server.httpsPort! });

  it('sends the policy hostname as SNI (not the Host) and verifies the chain against its CA', async () => {
    const upstream = pools.acquire(endpoint(), 'http', { settings: settings(ca, 'abc.example.com'), client: undefined });
    const { status, reply } = await get(upstream.pool, 'site.example.org');
    expect(status).toBe(200);
    expect(reply.host).toBe('site.example.org');
    expect(reply.tls?.serverName).toBe('abc.example.com');
    expect(reply.tls?.negotiatedProtocol).toBe('http/1.1');
    expect(reply.tls?.peerCertificates).toBeUndefined(); // no client certificate configured
    expect(upstream.key).toMatch(/^tls:/);
  });

  it('fails the request when the CA did not sign the backend certificate, or the hostname is not on it', async () => {
    const wrongCa = pools.acquire(endpoint(), 'http', { settings: settings(otherCa, 'abc.example.com'), client: undefined });
    await expect(get(wrongCa.pool, 'abc.example.com')).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/) });
    const wrongHost = pools.acquire(endpoint(), 'http', { settings: settings(ca, 'mismatch.example.com'), client: undefined });
    await expect(get(wrongHost.pool, 'abc.example.com')).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('checks subjectAltNames instead of the hostname when they are given (DNS with wildcards, URI exactly)', async () => {
    const uri = pools.acquire(endpoint(), 'http', { settings: settings(ca, 'not-on-the-cert.example.com', [{ type: 'URI', value: 'spiffe://abc.example.com/test-identity' }]), client: undefined });
    const ok = await get(uri.pool, 'abc.example.com');
    expect(ok.status).toBe(200);
    expect(ok.reply.tls?.serverName).toBe('not-on-the-cert.example.com');
    const wildcard = pools.acquire(endpoint(), 'http', { settings: settings(ca, 'abc.example.com', [{ type: 'Hostname', value: 'api.wild.example.com' }]), client: undefined });
    expect((await get(wildcard.pool, 'abc.example.com')).status).toBe(200);
    // The hostname is on the certificate but is not one of the listed SANs: refused.
    const mismatch = pools.acquire(endpoint(), 'http', {
      settings: settings(ca, 'abc.example.com', [{ type: 'URI', value: 'spiffe://def.example.com/test-identity' }, { type: 'Hostname', value: 'def.example.com' }]),
      client: undefined,
    });
    await expect(get(mismatch.pool, 'abc.example.com')).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('presents the Gateway client certificate, in a pool of its own', async () => {
    const policy = settings(ca, 'abc.example.com');
    const withClient = pools.acquire(endpoint(), 'http', { settings: policy, client });
    const without = pools.acquire(endpoint(), 'http', { settings: policy, client: undefined });
    expect(withClient.key).not.toBe(without.key);
    const { reply } = await get(withClient.pool, 'abc.example.com');
    expect(reply.tls?.peerCertificates?.[0]?.replace(/\s/g, '')).toBe(client.certPem.replace(/\s/g, ''));
  });

  it('speaks HTTP/2 by ALPN to an h2c backend that is reached over TLS', async () => {
    const upstream = pools.acquire(endpoint(), 'h2c', { settings: settings(ca, 'abc.example.com'), client: undefined });
    const { reply } = await get(upstream.pool, 'abc.example.com');
    expect(reply.proto).toBe('HTTP/2.0');
    expect(reply.tls?.negotiatedProtocol).toBe('h2');
  });

  it('matches URI SANs that node quotes', () => {
    const cert = { subjectaltname: 'DNS:a.example.com, URI:"spiffe://x/a, b"', subject: { CN: 'a.example.com' } } as unknown as import('node:tls').PeerCertificate;
    expect(checkBackendIdentity({ serverName: 'zzz', subjectAltNames: [{ type: 'URI', value: 'spiffe://x/a, b' }] }, cert)).toBeUndefined();
    expect(checkBackendIdentity({ serverName: 'zzz', subjectAltNames: [{ type: 'Hostname', value: 'b.example.com' }] }, cert)).toBeInstanceOf(Error);
  });
});
