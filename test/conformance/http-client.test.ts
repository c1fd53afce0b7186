import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createCertificateAuthority, createClientCertificate, createSelfSignedServerCertificate, type CertificateBundle } from '../support/demo/certs.ts';
import { startEchoServer, type EchoServer } from '../support/demo/echo-server.ts';
import { sendRequest, type ClientRequest } from './lib/http-client.ts';
import { joinHeaderValues } from './lib/headers.ts';

const HOST = '127.0.0.1';

describe('conformance HTTP client against the echo server', () => {
  let server: CertificateBundle;
  let client: CertificateBundle;
  let plain: EchoServer;
  let mtls: EchoServer;

  beforeAll(async () => {
    server = await createSelfSignedServerCertificate({ dnsNames: ['*.org', '*.wildcard.org'], uris: ['*'] });
    const ca = await createCertificateAuthority();
    client = await createClientCertificate(ca);
    plain = await startEchoServer({ host: HOST, httpPort: 0, h2cPort: 0, httpsPort: 0, tls: { cert: server.certPem, key: server.keyPem }, identity: { pod: 'a-1-2', namespace: 'n' } });
    mtls = await startEchoServer({ host: HOST, httpPort: 0, httpsPort: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem }, identity: { pod: 'b-1-2', namespace: 'n' } });
  });
  afterAll(async () => {
    await plain.close();
    await mtls.close();
  });

  const base = (over: Partial<ClientRequest>): ClientRequest => ({
    connectHost: HOST,
    connectPort: plain.httpPort,
    protocol: 'HTTP/1.1',
    method: 'GET',
    path: '/p?q=1',
    authority: 'example.org',
    headers: [['Host', 'example.org'], ['X-Echo-Set-Header', 'X-Multi:a,X-Other:b']],
    timeoutMs: 5000,
    ...over,
  });

  it('reads raw headers over HTTP/1.1 and sends the raw target', async () => {
    const r = await sendRequest(base({ headers: [['Host', 'example.org'], ['X-Echo-Set-Header', 'X-Multi:a,X-Multi:b']] }));
    if (!r.ok) throw new Error(r.error);
    expect(joinHeaderValues(r.headers.get('x-multi')!)).toBe('a,b');
    const echo = JSON.parse(r.body.toString());
    expect([echo.path, echo.host, echo.headers.Connection]).toEqual(['/p?q=1', 'example.org', ['close']]);
  });

  it('speaks h2c with prior knowledge', async () => {
    const r = await sendRequest(base({ connectPort: plain.h2cPort!, protocol: 'h2c-prior-knowledge' }));
    if (!r.ok) throw new Error(r.error);
    expect(JSON.parse(r.body.toString())).toMatchObject({ proto: 'HTTP/2.0', host: 'example.org' });
  });

  it('fails at transport level when h2c meets an HTTP/1.1-only port', async () => {
    const r = await sendRequest(base({ protocol: 'h2c-prior-knowledge' }));
    expect(r.ok).toBe(false);
  });

  it('verifies the server name like Go (accepts *.org) and trusts only the given certificate', async () => {
    const tls = { serverName: 'example.org', trustPem: server.certPem };
    for (const protocol of ['HTTP/1.1+TLS', 'h2'] as const) {
      const r = await sendRequest(base({ connectPort: plain.httpsPort!, protocol, tls }));
      if (!r.ok) throw new Error(`${protocol}: ${r.error}`);
      expect(JSON.parse(r.body.toString()).tls.negotiatedProtocol).toBe(protocol === 'h2' ? 'h2' : 'http/1.1');
    }
    const other = await createSelfSignedServerCertificate({ dnsNames: ['*.org'] });
    expect((await sendRequest(base({ connectPort: plain.httpsPort!, protocol: 'HTTP/1.1+TLS', tls: { ...tls, trustPem: other.certPem } }))).ok).toBe(false);
    expect((await sendRequest(base({ connectPort: plain.httpsPort!, protocol: 'HTTP/1.1+TLS', tls: { ...tls, serverName: 'example.com' } }))).ok).toBe(false);
  });

  it('tells whether the server asked for the client certificate', async () => {
    const tls = { serverName: 'example.org', trustPem: server.certPem, certPem: client.certPem, keyPem: client.keyPem };
    const asked = await sendRequest(base({ connectPort: mtls.httpsPort!, protocol: 'HTTP/1.1+TLS', tls }));
    if (!asked.ok) throw new Error(asked.error);
    expect(asked.clientCertificateSent).toBe(true);
    const notAsked = await sendRequest(base({ connectPort: plain.httpsPort!, protocol: 'HTTP/1.1+TLS', tls }));
    if (!notAsked.ok) throw new Error(notAsked.error);
    expect(notAsked.clientCertificateSent).toBe(false);
  });
});
