// TLS passthrough: SNI read from real ClientHellos, connections spliced to
// TLS backends without decryption, weighted, and refused when nothing matches.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { createSelfSignedServerCertificate, type CertificateBundle } from '../../support/demo/certs.ts';
import type { Backend, PassthroughListener } from '../../../ir/types.ts';
import { readServerName } from '../../../dataplane/passthrough/client-hello.ts';
import { PassthroughServer, compilePassthroughRoutes } from '../../../dataplane/passthrough/passthrough-server.ts';
import { PickerStates } from '../../../dataplane/upstream/weighted.ts';
import type { ConnectionBudget } from '../../../dataplane/front-door.ts';
import { L4Metrics } from '../../../dataplane/l4/metrics.ts';
import { Registry } from 'prom-client';
import { capturingLogger, testBudget } from '../support/harness.ts';

/** A TLS backend that answers every connection with its name and closes. */
async function tlsBackend(name: string, cert: CertificateBundle): Promise<{ server: TlsServer; port: number }> {
  const server = createTlsServer({ cert: cert.certPem, key: cert.keyPem }, (socket) => socket.end(`${name}:${socket.servername}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** `servername` null: no SNI (Node sends none when connecting to an IP address without one). */
function askThrough(port: number, servername: string | null, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...(servername === null ? { checkServerIdentity: () => undefined } : { servername }), ca }, () => undefined);
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

/** The bytes a real Node TLS client sends first. */
function captureClientHello(servername: string | undefined): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = createNetServer((socket) => {
      socket.once('data', (chunk) => {
        resolve(chunk);
        socket.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
      client.on('error', () => undefined);
    });
  });
}

describe('readServerName', () => {
  it('finds the SNI of a real ClientHello, and none when the client sends none', async () => {
    expect(readServerName(await captureClientHello('App.Example.com'))).toEqual({ kind: 'done', serverName: 'app.example.com', cipherSuites: expect.arrayContaining([0xc02b, 0xc02f]) });
    expect(readServerName(await captureClientHello(undefined))).toEqual({ kind: 'done', serverName: null, cipherSuites: expect.arrayContaining([0xc02b, 0xc02f]) });
  });

  it('asks for more bytes on a partial hello and refuses what is not TLS', async () => {
    const hello = await captureClientHello('a.example.com');
    expect(readServerName(hello.subarray(0, 3))).toEqual({ kind: 'more' });
    expect(readServerName(hello.subarray(0, hello.length - 1))).toEqual({ kind: 'more' });
    expect(readServerName(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toMatchObject({ kind: 'invalid' });
  });
});

describe('PassthroughServer', () => {
  let cert: CertificateBundle;
  const backends: { server: TlsServer; port: number }[] = [];
  let proxy: PassthroughServer;
  let budget: ConnectionBudget;
  let port: number;

  beforeAll(async () => {
    cert = await createSelfSignedServerCertificate({ dnsNames: ['app.example.com', '*.apps.example.com'] });
    backends.push(await tlsBackend('one', cert), await tlsBackend('two', cert));
    const ir: Record<string, Backend> = {
      one: { name: 'one', appProtocol: 'http', endpoints: [{ address: '127.0.0.1', port: backends[0]!.port }] },
      two: { name: 'two', appProtocol: 'http', endpoints: [{ address: '127.0.0.1', port: backends[1]!.port }] },
    };
    const listener: PassthroughListener = {
      name: 'test',
      origins: [],
      address: '127.0.0.1',
      port: 0,
      routes: [
        { name: 'exact', origin: { kind: 'TLSRoute', namespace: 'default', name: 'exact' }, hostname: 'app.example.com', backends: [{ backend: 'one', weight: 3, filters: [] }, { backend: 'two', weight: 1, filters: [] }] },
        { name: 'wildcard', origin: { kind: 'TLSRoute', namespace: 'default', name: 'wildcard' }, hostname: '*.apps.example.com', backends: [{ backend: 'two', weight: 1, filters: [] }] },
      ],
    };
    const states = new PickerStates();
    const generation = states.begin();
    budget = testBudget();
    proxy = new PassthroughServer('test', compilePassthroughRoutes(listener, ir, generation, null), capturingLogger().logger, budget, new L4Metrics(new Registry()), 60_000);
    states.commit(generation);
    await proxy.listen('127.0.0.1', 0);
    port = (proxy as unknown as { server: { address(): AddressInfo } }).server.address().port;
  });

  afterAll(async () => {
    await proxy.close(100);
    budget.close();
    for (const b of backends) b.server.close();
  });

  it('splices TLS end to end: the client verifies the backend certificate', async () => {
    expect(await askThrough(port, 'app.example.com', cert.certPem)).toMatch(/^(one|two):app.example.com$/);
    expect(await askThrough(port, 'x.apps.example.com', cert.certPem)).toBe('two:x.apps.example.com');
  });

  it('splits connections by weight exactly (3:1 over 40 connections)', async () => {
    const answers: string[] = [];
    for (let i = 0; i < 40; i++) answers.push(await askThrough(port, 'app.example.com', cert.certPem));
    expect(answers.filter((a) => a.startsWith('one:'))).toHaveLength(30);
    expect(answers.filter((a) => a.startsWith('two:'))).toHaveLength(10);
  });

  it('closes connections whose SNI matches no route, and those without SNI when no route is a catch-all', async () => {
    // Depending on timing the client sees a reset (error) or a bare end before any byte: never an answer.
    for (const servername of ['other.example.com', null]) {
      const outcome = await askThrough(port, servername, cert.certPem).catch(() => 'refused');
      expect({ servername, outcome: ['refused', ''].includes(outcome) ? 'closed' : outcome }).toEqual({ servername, outcome: 'closed' });
    }
  });

  it('gives a connection without SNI to a catch-all route (a TLSRoute without hostnames), as one with an unlisted name', async () => {
    const states = new PickerStates();
    const generation = states.begin();
    const listener: PassthroughListener = {
      name: 'any',
      origins: [],
      address: '127.0.0.1',
      port: 0,
      routes: [
        { name: 'exact', origin: { kind: 'TLSRoute', namespace: 'default', name: 'exact' }, hostname: 'app.example.com', backends: [{ backend: 'one', weight: 1, filters: [] }] },
        { name: 'any', origin: { kind: 'TLSRoute', namespace: 'default', name: 'any' }, hostname: '*', backends: [{ backend: 'two', weight: 1, filters: [] }] },
      ],
    };
    const ir: Record<string, Backend> = {
      one: { name: 'one', appProtocol: 'http', endpoints: [{ address: '127.0.0.1', port: backends[0]!.port }] },
      two: { name: 'two', appProtocol: 'http', endpoints: [{ address: '127.0.0.1', port: backends[1]!.port }] },
    };
    const anyProxy = new PassthroughServer('any', compilePassthroughRoutes(listener, ir, generation, null), capturingLogger().logger, budget, new L4Metrics(new Registry()), 60_000);
    states.commit(generation);
    await anyProxy.listen('127.0.0.1', 0);
    try {
      const anyPort = (anyProxy as unknown as { server: { address(): AddressInfo } }).server.address().port;
      // The backend answers with the name it was asked for: false when none came.
      expect([await askThrough(anyPort, null, cert.certPem), await askThrough(anyPort, 'y.apps.example.com', cert.certPem), await askThrough(anyPort, 'app.example.com', cert.certPem)]).toEqual([
        'two:false',
        'two:y.apps.example.com',
        'one:app.example.com',
      ]);
    } finally {
      await anyProxy.close(100);
    }
  });
});
