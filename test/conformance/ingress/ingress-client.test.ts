// The client as the Ingress suite uses it: TLS without verification (Go's
// InsecureSkipVerify), SNI from the case, the leaf certificate reported.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createSelfSignedServerCertificate } from '../../support/demo/certs.ts';
import { startEchoServer, type EchoServer } from '../../support/demo/echo-server.ts';
import { sendRequest } from '../lib/http-client.ts';
import { certificateValidForHost } from './expect.ts';
import { clientRequest, firstHop } from './traffic.ts';

describe('ingress client over TLS', () => {
  let echo: EchoServer;

  beforeAll(async () => {
    const cert = await createSelfSignedServerCertificate({ commonName: 'default', organization: 'Acme Co', dnsNames: ['foo.bar.com', 'other.test'] });
    echo = await startEchoServer({ host: '127.0.0.1', httpPort: 0, httpsPort: 0, tls: { cert: cert.certPem, key: cert.keyPem }, identity: { pod: 'p-1-2', namespace: 'n', service: 's' } });
  });
  afterAll(async () => {
    await echo.close();
  });

  it('skips verification, sends SNI and reports the leaf certificate', async () => {
    const hop = firstHop({ scheme: 'https', host: 'foo.bar.com', sni: 'foo.bar.com', path: '/x?y=1', method: 'GET', followRedirects: false }, '127.0.0.1');
    const req = clientRequest(hop, '127.0.0.1', { 'User-Agent': 'Go-http-client/1.1' }, { portOffset: echo.httpsPort! - 443, timeoutMs: 5000 });
    const r = await sendRequest(req);
    if (!r.ok) throw new Error(r.error);
    expect(r.httpVersion).toBe('HTTP/1.1');
    expect(r.peerCertificate?.dnsNames).toEqual(['foo.bar.com', 'other.test']);
    expect(certificateValidForHost(r.peerCertificate!, 'foo.bar.com')).toBe(true);
    const e = JSON.parse(r.body.toString());
    expect([e.path, e.host, e.tls.serverName, e.headers['User-Agent']]).toEqual(['/x?y=1', 'foo.bar.com', 'foo.bar.com', ['Go-http-client/1.1']]);
  });

  it('refuses TLS without a trusted certificate unless verification is skipped', async () => {
    const r = await sendRequest({
      connectHost: '127.0.0.1',
      connectPort: echo.httpsPort!,
      protocol: 'HTTP/1.1+TLS',
      method: 'GET',
      path: '/',
      authority: 'x',
      headers: [['Host', 'x']],
      tls: { serverName: 'x' },
      timeoutMs: 2000,
    });
    expect(r.ok).toBe(false);
  });
});
