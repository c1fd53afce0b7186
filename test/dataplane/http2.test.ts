// Downstream HTTP/2: h2c with prior knowledge next to HTTP/1.1 on cleartext listeners, h2 by
// ALPN on HTTPS listeners, routed like HTTP/1.1; and 421 for requests misdirected by SNI.

import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { HttpIR } from '../../ir/types.ts';
import { sniffProtocol } from '../../dataplane/server.ts';
import { certificateAuthority, irCertificate, selfSignedCertificate, type TestCertificate } from './support/certs.ts';
import { request } from './support/client.ts';
import { startEchoServer, type EchoReply, type EchoServer } from './support/echo-server.ts';
import { freePorts } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { connect, h2request, negotiatedProtocol } from './support/http2-client.ts';
import { backend, forwardTo, listener, prefix, responseHeaders, route, scope } from './support/ir.ts';

const HTTP_CONNECTION_HEADERS = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

/** Header names the upstream received, lower-case. */
const namesSeen = (echo: EchoReply): string[] => echo.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());

/** HTTP/1.1 over TLS: `servername` for SNI (omitted when empty), `host` for the Host header. */
function httpsRequest(port: number, servername: string, host: string, path = '/', ALPNProtocols?: string[]): Promise<{ status: number; echo: EchoReply | null; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path, headers: { host }, rejectUnauthorized: false, agent: false, ...(servername ? { servername } : {}), ...(ALPNProtocols ? { ALPNProtocols } : {}) },
      (res) => {
        let body = '';
        const alpn = (res.socket as tls.TLSSocket).alpnProtocol;
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, echo: res.headers['content-type'] === 'application/json' ? (JSON.parse(body) as EchoReply) : null, alpn }),
        );
      },
    );
    req.on('error', reject);
  });
}

/**
 * A TCP relay that delivers the client's first bytes to `port` in small pieces with pauses in
 * between, so the dataplane sees the HTTP/2 preface (or a request line) split over several reads.
 */
async function splittingRelay(port: number): Promise<{ port: number; close(): void }> {
  const server = net.createServer((client) => {
    const upstream = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let first = true;
    client.on('data', (chunk: Buffer) => {
      if (!first) {
        upstream.write(chunk);
        return;
      }
      first = false;
      client.pause();
      const pieces = [chunk.subarray(0, 1), chunk.subarray(1, 7), chunk.subarray(7, 20), chunk.subarray(20)];
      const next = (): void => {
        const piece = pieces.shift();
        if (piece === undefined) {
          client.resume();
          return;
        }
        upstream.write(piece);
        setTimeout(next, 15);
      };
      next();
    });
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe('sniffing the first bytes of a cleartext connection', () => {
  it('recognises the HTTP/2 preface, even split, HTTP/1.x by its request line, and anything else as a broken preface', () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(sniffProtocol(preface)).toBe('h2');
    expect(sniffProtocol(Buffer.concat([preface, Buffer.from([0, 0, 18, 4])]))).toBe('h2');
    expect(sniffProtocol(preface.subarray(0, 1))).toBe('more');
    expect(sniffProtocol(preface.subarray(0, 14))).toBe('more');
    expect(sniffProtocol(preface.subarray(0, 16))).toBe('h2');
    expect(sniffProtocol(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('http/1.1');
    expect(sniffProtocol(Buffer.from('\r\nGET / HTTP/1.0\n'))).toBe('http/1.1');
    expect(sniffProtocol(Buffer.from('PUT'))).toBe('more');
    expect(sniffProtocol(Buffer.from('PRI * HTTP/1.1\r\n'))).toBe('http/1.1');
    // Malformed, but request lines: the HTTP/1.1 parser's 400.
    expect(sniffProtocol(Buffer.from('GET /\r\n'))).toBe('http/1.1');
    expect(sniffProtocol(Buffer.from('GET / http/1.1\r\n'))).toBe('http/1.1');
    expect(sniffProtocol(Buffer.from('GET http://a.test/ HTTP\r\n'))).toBe('http/1.1');
    expect(sniffProtocol(Buffer.from('CONNECT a.test:443\r\n'))).toBe('http/1.1');
    // Not HTTP/1.x at all (h2spec 3.5/2): the HTTP/2 server's GOAWAY, not an HTTP/1.1 400.
    expect(sniffProtocol(Buffer.from('INVALID CONNECTION PREFACE\r\n\r\n'))).toBe('h2');
    // A first line longer than the sniffer reads is the HTTP/1.1 parser's to refuse.
    expect(sniffProtocol(Buffer.alloc(8192, 'A'))).toBe('http/1.1');
    expect(sniffProtocol(Buffer.alloc(8191, 'A'))).toBe('more');
  });
});

describe('downstream HTTP/2', () => {
  let a: EchoServer;
  let b: EchoServer;
  let certificate: TestCertificate;
  let plainPort: number;
  let tlsPort: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    [a, b, certificate] = await Promise.all([
      startEchoServer('a'),
      startEchoServer('b'),
      selfSignedCertificate('a.example.com', ['a.example.com', 'b.example.com', '*.other.example.org']),
    ]);
    [plainPort, tlsPort] = await freePorts(2);
    const ir: HttpIR = {
      listeners: [
        listener(plainPort, [
          scope('http', null, [
            [
              '*',
              [
                route('to-b', { path: prefix('/b') }, forwardTo('svc/b')),
                { ...route('retry', { path: prefix('/retry') }, forwardTo('svc/a')), retry: { codes: [500], attempts: 2, backoffMs: 0 } },
                route('modified', { path: prefix('/modified') }, forwardTo('svc/a'), [
                  responseHeaders({ set: [{ name: 'x-ok', value: '1' }, { name: 'connection', value: 'x-ok' }, { name: 'keep-alive', value: 'timeout=1' }] }),
                ]),
                route('to-a', { path: prefix('/') }, forwardTo('svc/a')),
              ],
            ],
          ]),
        ]),
        listener(
          tlsPort,
          [
            scope('a', 'a.example.com', [['a.example.com', [route('scope-a', {}, forwardTo('svc/a'))]]]),
            scope('b', 'b.example.com', [['b.example.com', [route('scope-b', {}, forwardTo('svc/b'))]]]),
            scope('any', null, [['*', [route('scope-any', {}, forwardTo('svc/b'))]]]),
          ],
          { protocol: 'HTTPS', tls: { certificates: [irCertificate('secret/default/shared', [], certificate)] } },
        ),
      ],
      backends: { 'svc/a': backend('svc/a', [a.endpoint]), 'svc/b': backend('svc/b', [b.endpoint]) },
    };
    harness = testDataplane();
    const result = await harness.dataplane.apply('v1', ir);
    expect(result.listeners.map((l) => l.ok)).toEqual([true, true]);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await Promise.all([a.close(), b.close()]);
  });

  describe('h2c with prior knowledge on an HTTP listener', () => {
    it('routes like HTTP/1.1: backend, status, Host from :authority, forwarding headers, no pseudo-headers', async () => {
      const session = await connect(`http://127.0.0.1:${plainPort}`);
      try {
        const response = await h2request(session, '/items/1?x=1', { ':authority': 'shop.example.com', cookie: ['a=1', 'b=2'], 'x-client': 'h2' });
        expect(response.status).toBe(200);
        expect(response.echo).toMatchObject({ pod: 'a', method: 'GET', path: '/items/1?x=1', host: 'shop.example.com' });
        expect(response.echo!.headers).toMatchObject({ 'x-forwarded-proto': 'http', 'x-forwarded-for': '127.0.0.1', 'x-client': 'h2', cookie: 'a=1; b=2' });
        expect(namesSeen(response.echo!).filter((name) => name.startsWith(':'))).toEqual([]);
        expect(namesSeen(response.echo!).filter((name) => name === 'host')).toEqual(['host']);
        // The same connection carries requests for other routes.
        const other = await h2request(session, '/b/page', { ':authority': 'shop.example.com' });
        expect(other.echo?.pod).toBe('b');
      } finally {
        session.close();
      }
    });

    it('streams request bodies up, with and without content-length', async () => {
      const session = await connect(`http://127.0.0.1:${plainPort}`);
      try {
        const body = 'x'.repeat(200_000);
        const sized = await h2request(session, '/upload', { ':method': 'POST', 'content-length': String(body.length) }, body);
        expect(sized.echo).toMatchObject({ method: 'POST', bodyLength: body.length });
        const unsized = await h2request(session, '/upload', { ':method': 'PUT' }, 'hello');
        expect(unsized.echo).toMatchObject({ method: 'PUT', body: 'hello' });
        expect(unsized.echo!.headers['transfer-encoding']).toBe('chunked');
        // Buffered for a retry, and too large for that.
        const retried = await h2request(session, '/retry?key=h2-small&fail=1', { ':method': 'POST' }, 'again');
        expect(retried.echo).toMatchObject({ body: 'again' });
        expect(a.attempts.get('h2-small')).toBe(2);
        const once = await h2request(session, '/retry?key=h2-large&fail=1', { ':method': 'POST' }, body);
        expect(once.status).toBe(500);
        expect(a.attempts.get('h2-large')).toBe(1);
        expect((await h2request(session, '/retry?key=h2-large-ok', { ':method': 'POST' }, body)).echo?.bodyLength).toBe(body.length);
      } finally {
        session.close();
      }
    });

    it('never sends connection-specific headers to HTTP/2 clients, even ones a filter sets', async () => {
      const session = await connect(`http://127.0.0.1:${plainPort}`);
      try {
        const response = await h2request(session, '/modified');
        expect(response.status).toBe(200);
        expect(response.headers['x-ok']).toBe('1');
        for (const name of HTTP_CONNECTION_HEADERS) expect(response.headers[name]).toBeUndefined();
        const local = await h2request(session, '/b', { ':method': 'POST', 'content-length': '0' });
        expect(local.status).toBe(200);
      } finally {
        session.close();
      }
    });

    it('tells HTTP/2 from HTTP/1.1 when the first bytes arrive in pieces', async () => {
      const relay = await splittingRelay(plainPort);
      try {
        const session = await connect(`http://127.0.0.1:${relay.port}`);
        try {
          expect((await h2request(session, '/b/split')).echo?.pod).toBe('b');
        } finally {
          session.close();
        }
        const response = await request(relay.port, '/b/split-http1', { method: 'PUT', body: 'data' });
        expect(response.echo).toMatchObject({ pod: 'b', method: 'PUT', body: 'data' });
      } finally {
        relay.close();
      }
    });

    it('survives broken and unfinished prefaces', async () => {
      const send = (bytes: string, endAfterMs: number) =>
        new Promise<void>((resolve) => {
          const socket = net.connect(plainPort, '127.0.0.1', () => {
            socket.write(bytes);
            setTimeout(() => socket.destroy(), endAfterMs);
          });
          socket.on('error', () => undefined);
          socket.on('close', () => resolve());
          socket.resume();
        });
      await Promise.all([
        send('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04garbage-frames-here', 100),
        send('PRI * HTTP/2.0\r\n', 100),
        send('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 10),
        send('', 10),
      ]);
      expect((await request(plainPort, '/still-fine')).status).toBe(200);
      const session = await connect(`http://127.0.0.1:${plainPort}`);
      expect((await h2request(session, '/still-fine')).status).toBe(200);
      session.close();
    });

    it('keeps HTTP/1.1 keep-alive and pipelining working on the same port', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let connections = 0;
      const counting = agent.createConnection.bind(agent);
      agent.createConnection = (...args: Parameters<typeof counting>) => {
        connections++;
        return counting(...args);
      };
      try {
        for (let i = 0; i < 3; i++) expect((await request(plainPort, `/keep/${i}`, { agent })).echo?.path).toBe(`/keep/${i}`);
        expect(connections).toBe(1);
      } finally {
        agent.destroy();
      }

      // Two requests in the client's first write, a third later on the same connection.
      const socket = net.connect(plainPort, '127.0.0.1');
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk));
      socket.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /b/two HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 100));
      socket.write('GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await new Promise((resolve) => socket.on('close', resolve));
      const pods = [...received.matchAll(/"pod":"(\w)","method":"GET","path":"([^"]+)"/g)].map((match) => `${match[1]}${match[2]}`);
      expect(pods).toEqual(['a/one', 'b/b/two', 'a/three']);
    });
  });

  describe('h2 over TLS', () => {
    it('negotiates h2 by ALPN and routes with X-Forwarded-Proto https', async () => {
      const session = await connect(`https://127.0.0.1:${tlsPort}`, { servername: 'a.example.com' });
      try {
        expect(negotiatedProtocol(session)).toBe('h2');
        const response = await h2request(session, '/secure', { ':authority': 'a.example.com' });
        expect(response.status).toBe(200);
        expect(response.echo).toMatchObject({ pod: 'a', host: 'a.example.com', path: '/secure' });
        expect(response.echo!.headers['x-forwarded-proto']).toBe('https');
      } finally {
        session.close();
      }
    });

    it('still serves HTTP/1.1, chosen by ALPN or without ALPN', async () => {
      const negotiated = await httpsRequest(tlsPort, 'b.example.com', 'b.example.com', '/', ['http/1.1']);
      expect(negotiated).toMatchObject({ status: 200, alpn: 'http/1.1' });
      expect(negotiated.echo?.pod).toBe('b');
      expect(await httpsRequest(tlsPort, 'a.example.com', 'a.example.com')).toMatchObject({ status: 200, alpn: false });
    });
  });

  describe('421 Misdirected Request', () => {
    it('answers 421 when the Host is outside the scope SNI selected (HTTP/1.1)', async () => {
      expect((await httpsRequest(tlsPort, 'a.example.com', 'b.example.com')).status).toBe(421);
      expect((await httpsRequest(tlsPort, 'a.example.com', 'unknown.example.net')).status).toBe(421);
      expect((await httpsRequest(tlsPort, 'a.example.com', 'A.Example.com:443')).echo?.pod).toBe('a');
      expect((await httpsRequest(tlsPort, 'b.example.com', 'b.example.com')).echo?.pod).toBe('b');
    });

    it('answers 421 to a misdirected upgrade request too', async () => {
      const head = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'a.example.com', rejectUnauthorized: false }, () => {
          socket.write('GET /chat HTTP/1.1\r\nHost: b.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
        });
        let text = '';
        // The answer is an ordinary HTTP/1.1 response: the connection stays open after it.
        socket.on('data', (chunk: Buffer) => {
          text += chunk;
          if (!text.includes('\r\n\r\n')) return;
          resolve(text);
          socket.destroy();
        });
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
      expect(head).toMatch(/^HTTP\/1\.1 421 Misdirected Request\r\n/);
    });

    it('answers 421 on a coalesced HTTP/2 connection, per request', async () => {
      const session = await connect(`https://127.0.0.1:${tlsPort}`, { servername: 'a.example.com' });
      try {
        expect((await h2request(session, '/', { ':authority': 'a.example.com' })).echo?.pod).toBe('a');
        const before = b.count;
        const misdirected = await h2request(session, '/', { ':authority': 'b.example.com' });
        expect(misdirected.status).toBe(421);
        expect(b.count).toBe(before);
        // The connection stays usable for its own host.
        expect((await h2request(session, '/', { ':authority': 'a.example.com' })).status).toBe(200);
      } finally {
        session.close();
      }
    });

    it('answers 421 when SNI fell to the scope without hostname and the Host has a listener of its own; never without SNI', async () => {
      // Listener.hostname (gateway_types.go): another listener with an exact or more specific match → 421.
      expect((await httpsRequest(tlsPort, 'x.other.example.org', 'b.example.com')).status).toBe(421);
      expect((await httpsRequest(tlsPort, 'x.other.example.org', 'a.example.com')).status).toBe(421);
      expect((await httpsRequest(tlsPort, 'x.other.example.org', 'y.other.example.org')).echo?.pod).toBe('b');
      expect((await httpsRequest(tlsPort, '', 'b.example.com')).echo?.pod).toBe('b');
    });
  });

  it('closes idle HTTP/2 connections with GOAWAY when draining, letting open streams finish', async () => {
    const local = testDataplane();
    const [port] = await freePorts(1);
    await local.dataplane.apply('v1', { listeners: [listener(port, [scope('x', null, [['*', [route('r', {}, forwardTo('svc/a'))]]])])], backends: { 'svc/a': backend('svc/a', [a.endpoint]) } });
    const busy = await connect(`http://127.0.0.1:${port}`);
    const idle = await connect(`http://127.0.0.1:${port}`);
    await h2request(idle, '/warm');
    const goaway = new Promise<void>((resolve) => idle.once('goaway', () => resolve()));
    const slow = h2request(busy, '/slow?delay=300');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const startedClosing = Date.now();
    await local.dataplane.close();
    expect(Date.now() - startedClosing).toBeLessThan(3000);
    await goaway;
    expect((await slow).status).toBe(200);
    busy.close();
    idle.close();
  });
});

describe('HTTP/2 over TLS with client certificates and certificate rotation', () => {
  it('validates client certificates and presents rotated certificates to new h2 connections', async () => {
    const [authority, first, rotated, echo] = await Promise.all([
      certificateAuthority('h2-ca'),
      selfSignedCertificate('first.example.com'),
      selfSignedCertificate('rotated.example.com', ['first.example.com']),
      startEchoServer('echo'),
    ]);
    const client = await authority.issueClientCertificate('h2-client');
    const [port] = await freePorts(1);
    const local = testDataplane();
    const ir = (certificate: TestCertificate): HttpIR => ({
      listeners: [
        listener(port, [scope('x', null, [['*', [route('r', {}, forwardTo('svc/echo'))]]])], {
          protocol: 'HTTPS',
          tls: { certificates: [irCertificate('secret/default/cert', [], certificate)], clientValidation: { caCertificates: [authority.certPem], mode: 'AllowValidOnly' } },
        }),
      ],
      backends: { 'svc/echo': backend('svc/echo', [echo.endpoint]) },
    });
    const peerName = (session: http2.ClientHttp2Session): string => String((session.socket as tls.TLSSocket).getPeerCertificate().subject.CN);
    try {
      expect((await local.dataplane.apply('v1', ir(first))).listeners[0].ok).toBe(true);
      const trusted = await connect(`https://127.0.0.1:${port}`, { servername: 'first.example.com', cert: client.certPem, key: client.keyPem });
      expect(peerName(trusted)).toBe('first.example.com');
      expect((await h2request(trusted, '/')).status).toBe(200);
      trusted.close();

      // Without a client certificate the handshake (or, with TLS 1.3, the first request) fails.
      const refused = await connect(`https://127.0.0.1:${port}`, { servername: 'first.example.com' }).then(
        (session) => h2request(session, '/').then(() => 'served', () => 'refused').finally(() => session.destroy()),
        () => 'refused',
      );
      expect(refused).toBe('refused');

      await local.dataplane.apply('v2', ir(rotated));
      const after = await connect(`https://127.0.0.1:${port}`, { servername: 'first.example.com', cert: client.certPem, key: client.keyPem });
      expect(peerName(after)).toBe('rotated.example.com');
      expect((await h2request(after, '/')).status).toBe(200);
      after.close();
    } finally {
      await local.dataplane.close();
      await echo.close();
    }
  });
});

describe('trailers', () => {
  it('passes upstream trailers on to HTTP/1.1 and HTTP/2 clients, and te: trailers upstream', async () => {
    const h2c = http2.createServer();
    h2c.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ te: headers.te ?? null }));
    });
    const chunky = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('body');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
    });
    await Promise.all([new Promise<void>((resolve) => h2c.listen(0, '127.0.0.1', resolve)), new Promise<void>((resolve) => chunky.listen(0, '127.0.0.1', resolve))]);
    const [port] = await freePorts(1);
    const local = testDataplane();
    const endpoint = (server: net.Server) => ({ address: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    try {
      await local.dataplane.apply('v1', {
        listeners: [
          listener(port, [scope('x', null, [['*', [route('h2c', { path: prefix('/grpc.health.v1.Health') }, forwardTo('svc/h2c')), route('chunky', {}, forwardTo('svc/chunky'))]]])]),
        ],
        backends: { 'svc/h2c': { name: 'svc/h2c', appProtocol: 'h2c', endpoints: [endpoint(h2c)] }, 'svc/chunky': backend('svc/chunky', [endpoint(chunky)]) },
      });
      const http1 = await new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/file', agent: false }, (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => (text += chunk));
            res.on('end', () => resolve({ body: text, trailers: res.trailers }));
          })
          .on('error', reject);
      });
      expect(http1).toEqual({ body: 'body', trailers: { 'x-checksum': 'abc123' } });

      const session = await connect(`http://127.0.0.1:${port}`);
      try {
        const received = await new Promise<{ body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
          const stream = session.request({ ':path': '/file' });
          let text = '';
          let trailers: http2.IncomingHttpHeaders = {};
          stream.on('data', (chunk: Buffer) => (text += chunk));
          stream.on('trailers', (headers) => (trailers = headers));
          stream.on('end', () => resolve({ body: text, trailers }));
          stream.on('error', reject);
        });
        expect(received.body).toBe('body');
        expect(received.trailers).toMatchObject({ 'x-checksum': 'abc123' });
        // gRPC-style: te: trailers reaches an h2c backend. (Its trailers do not come back yet:
        // undici's HTTP/2 client completes the response before reading them.)
        const grpc = await h2request(session, '/grpc.health.v1.Health/Check', { ':method': 'POST', te: 'trailers' }, 'request');
        expect(JSON.parse(grpc.body)).toEqual({ te: 'trailers' });
      } finally {
        session.close();
      }
    } finally {
      await local.dataplane.close();
      h2c.close();
      chunky.closeAllConnections();
      chunky.close();
    }
  });
});
