// HTTPS listeners: certificate choice by SNI, fallback, rotation without reopening the socket.

import https from 'node:https';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createSelfSignedServerCertificate } from '../support/demo/certs.ts';
import { TLS_PROFILES } from '../../ir/tls-profiles.ts';
import type { HttpIR, ListenerScope, TlsCertificate, TlsSettings } from '../../ir/types.ts';
import { certificateAuthority, irCertificate, selfSignedCertificate, type TestCertificate } from './support/certs.ts';
import { request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import type { EchoReply } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, listener, route, scope } from './support/ir.ts';

/** What a handshake settled on, or the error that ended it. */
function negotiate(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      resolve(`${socket.getProtocol()} ${socket.getCipher().name}`);
      socket.end();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(`refused: ${error.code ?? error.message}`));
  });
}

/** An HTTPS GET (SNI `servername`, Host `host`) that reports the status and the Strict-Transport-Security header. */
function stsOf(port: number, path: string, host: string, servername = host): Promise<{ status: number; sts: string | undefined }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, servername, headers: { host }, rejectUnauthorized: false, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, sts: res.headers['strict-transport-security'] }));
      })
      .on('error', reject);
  });
}

/** The CN of the certificate the server presents for `servername` (undefined: send no SNI). */
function presentedCertificate(port: number, servername?: string, options: tls.ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}), ...options }, () => {
      const commonName = socket.getPeerCertificate().subject.CN;
      socket.end();
      resolve((Array.isArray(commonName) ? commonName[0] : commonName) ?? '');
    });
    socket.on('error', reject);
  });
}

function httpsGet(port: number, servername: string, path: string, agent: https.Agent | false = false): Promise<{ status: number; echo: EchoReply; commonName: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, servername, headers: { host: servername }, rejectUnauthorized: false, agent }, (res) => {
      let body = '';
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate().subject.CN;
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, echo: JSON.parse(body) as EchoReply, commonName: (Array.isArray(peer) ? peer[0] : peer) ?? '' }));
    });
    req.on('error', reject);
  });
}

describe('HTTPS listeners', () => {
  let first: TestCertificate;
  let second: TestCertificate;
  let rotated: TestCertificate;
  let echo: EchoServer;
  let port: number;
  let harness: TestDataplane;

  const ir = (certificates: TlsCertificate[]): HttpIR => ({
    listeners: [
      listener(port, [scope('https', null, [['*', [route('secure', {}, forwardTo('svc/echo'))]]])], {
        protocol: 'HTTPS',
        tls: { certificates },
      }),
    ],
    backends: { 'svc/echo': backend('svc/echo', [echo.endpoint]) },
  });

  beforeAll(async () => {
    [first, second, rotated, echo] = await Promise.all([
      selfSignedCertificate('first.example.com'),
      selfSignedCertificate('second.example.com', ['second.example.com', '*.wild.example.com']),
      selfSignedCertificate('rotated.example.com', ['first.example.com']),
      startEchoServer('echo'),
    ]);
    port = await freePort();
    harness = testDataplane();
    const result = await harness.dataplane.apply(
      'v1',
      ir([irCertificate('secret/default/first', ['first.example.com'], first), irCertificate('secret/default/second', ['second.example.com', '*.wild.example.com'], second)]),
    );
    expect(result.listeners).toEqual([{ name: `127.0.0.1:${port}`, ok: true }]);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await echo.close();
  });

  it('chooses the certificate by SNI: exact name, then wildcard', async () => {
    expect(await presentedCertificate(port, 'first.example.com')).toBe('first.example.com');
    expect(await presentedCertificate(port, 'second.example.com')).toBe('second.example.com');
    expect(await presentedCertificate(port, 'SECOND.example.com')).toBe('second.example.com');
    expect(await presentedCertificate(port, 'a.wild.example.com')).toBe('second.example.com');
    expect(await presentedCertificate(port, 'a.b.wild.example.com')).toBe('second.example.com');
  });

  it('falls back to the first certificate without SNI or for an unknown name', async () => {
    expect(await presentedCertificate(port)).toBe('first.example.com');
    expect(await presentedCertificate(port, 'unknown.example.org')).toBe('first.example.com');
    expect(await presentedCertificate(port, 'wild.example.com')).toBe('first.example.com');
  });

  it('refuses TLS versions below 1.2', async () => {
    await expect(presentedCertificate(port, 'first.example.com', { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow(/protocol version/);
    expect(await presentedCertificate(port, 'first.example.com', { maxVersion: 'TLSv1.2' })).toBe('first.example.com');
  });

  it('proxies HTTPS requests with X-Forwarded-Proto https', async () => {
    const response = await httpsGet(port, 'second.example.com', '/hello');
    expect(response.status).toBe(200);
    expect(response.commonName).toBe('second.example.com');
    expect(response.echo.headers['x-forwarded-proto']).toBe('https');
    expect(response.echo.host).toBe('second.example.com');
  });

  it('rotates certificates on reload without closing the socket or live connections', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await httpsGet(port, 'first.example.com', '/before', agent);
      expect(before.commonName).toBe('first.example.com');

      const result = await harness.dataplane.apply(
        'v2',
        ir([irCertificate('secret/default/first', ['first.example.com'], rotated), irCertificate('secret/default/second', ['second.example.com'], second)]),
      );
      expect(result.listeners[0].ok).toBe(true);

      // The kept-alive connection still works (and still has the certificate it was opened with)...
      const kept = await httpsGet(port, 'first.example.com', '/kept', agent);
      expect(kept.status).toBe(200);
      expect(kept.commonName).toBe('first.example.com');
      // ...while new handshakes get the new certificate, by SNI and as the no-SNI fallback.
      expect(await presentedCertificate(port, 'first.example.com')).toBe('rotated.example.com');
      expect(await presentedCertificate(port)).toBe('rotated.example.com');
      expect(await presentedCertificate(port, 'a.wild.example.com')).toBe('rotated.example.com');
    } finally {
      agent.destroy();
    }
  });

  it('reports an HTTPS listener without a usable certificate, and switches a socket between HTTP and HTTPS', async () => {
    const other = testDataplane();
    const otherPort = await freePort();
    const plain = listener(otherPort, [scope('x', null, [['*', [route('r', {}, forwardTo('svc/echo'))]]])]);
    const backends = { 'svc/echo': backend('svc/echo', [echo.endpoint]) };
    try {
      const broken = await other.dataplane.apply('v1', {
        listeners: [{ ...plain, protocol: 'HTTPS', tls: { certificates: [{ name: 'broken/certificate', secret: 'secret/default/broken', hostnames: [], certPem: 'nope', keyPem: 'nope', hash: 'broken' }] } }],
        backends,
      });
      expect(broken.listeners[0]).toMatchObject({ ok: false, error: expect.stringMatching(/no usable TLS certificate/) });
      expect(other.logs.some((line) => line.subject === 'secret/default/broken')).toBe(true);

      expect((await other.dataplane.apply('v2', { listeners: [plain], backends })).listeners[0].ok).toBe(true);
      expect((await request(otherPort, '/')).echo?.headers['x-forwarded-proto']).toBe('http');

      const secured = await other.dataplane.apply('v3', {
        listeners: [{ ...plain, protocol: 'HTTPS', tls: { certificates: [irCertificate('secret/default/first', [], first)] } }],
        backends,
      });
      expect(secured.listeners[0].ok).toBe(true);
      expect((await httpsGet(otherPort, 'anything.example.com', '/')).echo.headers['x-forwarded-proto']).toBe('https');
    } finally {
      await other.dataplane.close();
    }
  });

  it('validates client certificates against the listener CA, and changes CA on reload', async () => {
    const [trusted, other] = await Promise.all([certificateAuthority('trusted-ca'), certificateAuthority('other-ca')]);
    const [trustedClient, otherClient] = await Promise.all([trusted.issueClientCertificate('good-client'), other.issueClientCertificate('other-client')]);
    const mtls = testDataplane();
    const mtlsPort = await freePort();
    const ir = (ca: string, mode: 'AllowValidOnly' | 'AllowInsecureFallback'): HttpIR => ({
      listeners: [
        listener(mtlsPort, [scope('mtls', null, [['*', [route('r', {}, forwardTo('svc/echo'))]]])], {
          protocol: 'HTTPS',
          tls: { certificates: [irCertificate('secret/default/first', [], first)], clientValidation: { caCertificates: [ca], mode } },
        }),
      ],
      backends: { 'svc/echo': backend('svc/echo', [echo.endpoint]) },
    });
    const handshake = (client: TestCertificate | null, servername?: string) =>
      presentedCertificate(mtlsPort, servername, client === null ? {} : { cert: client.certPem, key: client.keyPem }).then(
        () => 'accepted',
        () => 'refused',
      );
    // A TLS 1.3 server may refuse the client certificate after the client already saw the
    // handshake complete: a request is what tells for sure.
    const requestWith = (client: TestCertificate | null, servername?: string) =>
      new Promise<string>((resolve) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port: mtlsPort,
            path: '/',
            rejectUnauthorized: false,
            agent: false,
            ...(servername ? { servername } : {}),
            ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(String(res.statusCode)));
          },
        );
        req.on('error', () => resolve('refused'));
      });
    try {
      expect((await mtls.dataplane.apply('v1', ir(trusted.certPem, 'AllowValidOnly'))).listeners[0].ok).toBe(true);
      expect(await requestWith(trustedClient)).toBe('200');
      expect(await requestWith(otherClient)).toBe('refused');
      expect(await requestWith(null)).toBe('refused');
      expect(await requestWith(trustedClient, 'any.example.com')).toBe('200');
      expect(await requestWith(otherClient, 'any.example.com')).toBe('refused');
      expect(await handshake(trustedClient, 'any.example.com')).toBe('accepted');

      // Both the default context (no SNI) and the SNI contexts switch CA.
      await mtls.dataplane.apply('v2', ir(other.certPem, 'AllowValidOnly'));
      expect(await requestWith(otherClient)).toBe('200');
      expect(await requestWith(trustedClient)).toBe('refused');
      expect(await requestWith(otherClient, 'any.example.com')).toBe('200');
      expect(await requestWith(trustedClient, 'any.example.com')).toBe('refused');

      await mtls.dataplane.apply('v3', ir(trusted.certPem, 'AllowInsecureFallback'));
      expect(await requestWith(null)).toBe('200');
      expect(await requestWith(otherClient)).toBe('200');
    } finally {
      await mtls.dataplane.close();
    }
  });
});

describe('TLS versions, ciphers and HSTS', () => {
  let ecdsa: TestCertificate;
  let rsa: TestCertificate;
  let echo: EchoServer;
  const harnesses: TestDataplane[] = [];

  beforeAll(async () => {
    const rsaBundle = await createSelfSignedServerCertificate({ commonName: 'rsa.example.com', dnsNames: ['rsa.example.com'] });
    rsa = { ...rsaBundle, commonName: 'rsa.example.com' };
    [ecdsa, echo] = await Promise.all([selfSignedCertificate('ecdsa.example.com'), startEchoServer('echo')]);
  });

  afterAll(async () => {
    await Promise.all(harnesses.map((h) => h.dataplane.close()));
    await echo.close();
  });

  /** One HTTPS listener on a fresh port with both certificates (ECDSA first: the no-SNI fallback). */
  async function serve(settings: TlsSettings | undefined, scopes?: ListenerScope[]): Promise<{ port: number; apply: (settings: TlsSettings | undefined) => Promise<void> }> {
    const port = await freePort();
    const harness = testDataplane();
    harnesses.push(harness);
    let version = 0;
    const apply = async (next: TlsSettings | undefined): Promise<void> => {
      const result = await harness.dataplane.apply(`v${++version}`, {
        listeners: [
          listener(port, scopes ?? [scope('https', null, [['*', [route('r', {}, forwardTo('svc/echo'))]]])], {
            protocol: 'HTTPS',
            tls: {
              certificates: [irCertificate('secret/default/ecdsa', [], ecdsa), irCertificate('secret/default/rsa', ['rsa.example.com'], rsa)],
              ...(next !== undefined ? { settings: next } : {}),
            },
          }),
        ],
        backends: { 'svc/echo': backend('svc/echo', [echo.endpoint]) },
      });
      expect(result.listeners).toEqual([{ name: `127.0.0.1:${port}`, ok: true }]);
    };
    await apply(settings);
    return { port, apply };
  }

  it('offers Mozilla intermediate by default: TLS 1.3, TLS 1.2 with ECDHE and AEAD only, never TLS 1.1, CBC or static RSA', async () => {
    const { port } = await serve(undefined);
    expect(await negotiate(port, {})).toMatch(/^TLSv1\.3 TLS_/);
    expect(await negotiate(port, { maxVersion: 'TLSv1.2' })).toMatch(/^TLSv1\.2 ECDHE-ECDSA-/);
    expect(await negotiate(port, { maxVersion: 'TLSv1.2', servername: 'rsa.example.com' })).toMatch(/^TLSv1\.2 ECDHE-RSA-/);
    for (const cipher of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-RSA-AES128-SHA']) {
      expect(await negotiate(port, { maxVersion: 'TLSv1.2', ciphers: cipher })).toMatch(/^refused/);
    }
    expect(await negotiate(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).toMatch(/^refused/);
  });

  it('never agrees to static RSA key exchange, with an RSA certificate as the default', async () => {
    const port = await freePort();
    const harness = testDataplane();
    harnesses.push(harness);
    const result = await harness.dataplane.apply('v1', {
      listeners: [
        listener(port, [scope('https', null, [['*', [route('r', {}, forwardTo('svc/echo'))]]])], {
          protocol: 'HTTPS',
          tls: { certificates: [irCertificate('secret/default/rsa', [], rsa)] },
        }),
      ],
      backends: { 'svc/echo': backend('svc/echo', [echo.endpoint]) },
    });
    expect(result.listeners[0]!.ok).toBe(true);
    expect(await negotiate(port, { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA' })).toMatch(/^refused/);
    expect(await negotiate(port, { maxVersion: 'TLSv1.2', ciphers: 'DHE-RSA-AES128-GCM-SHA256' })).toMatch(/^refused/);
    expect(await negotiate(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).toBe('TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
  });

  it('lets the client choose among the offered suites (no server preference, as Mozilla advises)', async () => {
    const { port } = await serve(undefined);
    const clientOrder = 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256';
    expect(await negotiate(port, { maxVersion: 'TLSv1.2', ciphers: clientOrder })).toBe('TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305');
  });

  it('applies per-port versions and ciphers on reload, whatever SNI names', async () => {
    const { port, apply } = await serve(TLS_PROFILES.modern);
    for (const servername of [undefined, 'rsa.example.com']) {
      const sni = servername === undefined ? {} : { servername };
      expect(await negotiate(port, { ...sni, maxVersion: 'TLSv1.2' })).toMatch(/^refused/);
      expect(await negotiate(port, sni)).toMatch(/^TLSv1\.3 /);
    }

    await apply({ profile: 'intermediate', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: ['ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-AES256-GCM-SHA384'] });
    expect(await negotiate(port, {})).toBe('TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305');
    expect(await negotiate(port, { minVersion: 'TLSv1.3' })).toMatch(/^refused/);
    expect(await negotiate(port, { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).toMatch(/^refused/);
    // SNI picks the RSA certificate, yet the port's suites stay: only the ones listed.
    expect(await negotiate(port, { servername: 'rsa.example.com', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).toMatch(/^refused/);
    expect(await negotiate(port, { servername: 'rsa.example.com', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' })).toBe('TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384');

    await apply(undefined);
    expect(await negotiate(port, {})).toMatch(/^TLSv1\.3 /);
  });

  it('sends HSTS on every response of the scope that sets it, never on plain HTTP', async () => {
    const hsts = 'max-age=31536000; includeSubDomains';
    const routes = [
      route('direct', { path: { type: 'Exact', value: '/direct' } }, { type: 'DirectResponse', status: 204 }),
      route('broken', { path: { type: 'Exact', value: '/broken' } }, forwardTo('svc/missing')),
      route('forward', { path: { type: 'PathPrefix', value: '/app' } }, forwardTo('svc/echo')),
    ];
    const withHsts: ListenerScope = { ...scope('secure', 'a.example.com', [['a.example.com', routes]]), hsts };
    const without = scope('other', 'b.example.com', [['b.example.com', [route('other', {}, forwardTo('svc/echo'))]]]);
    const { port } = await serve(undefined, [withHsts, without]);
    expect(await stsOf(port, '/app', 'a.example.com')).toEqual({ status: 200, sts: hsts });
    expect(await stsOf(port, '/direct', 'a.example.com')).toEqual({ status: 204, sts: hsts });
    expect(await stsOf(port, '/broken', 'a.example.com')).toEqual({ status: 500, sts: hsts });
    expect(await stsOf(port, '/nothing-here', 'a.example.com')).toEqual({ status: 404, sts: hsts });
    expect(await stsOf(port, '/app', 'a.example.com', 'b.example.com')).toEqual({ status: 421, sts: hsts });
    // The other listener on the port set no HSTS.
    expect(await stsOf(port, '/app', 'b.example.com')).toEqual({ status: 200, sts: undefined });
    expect(await stsOf(port, '/app', 'unknown.example.com')).toEqual({ status: 404, sts: undefined });

    const plainPort = await freePort();
    const plain = testDataplane();
    harnesses.push(plain);
    await plain.dataplane.apply('v1', { listeners: [listener(plainPort, [withHsts])], backends: { 'svc/echo': backend('svc/echo', [echo.endpoint]) } });
    for (const path of ['/app', '/nothing-here']) {
      const response = await request(plainPort, path, { host: 'a.example.com' });
      expect(response.status).toBe(path === '/app' ? 200 : 404);
      expect(response.headers['strict-transport-security']).toBeUndefined();
    }
  });
});
