// Forwarding end to end: real sockets between a client, the dataplane and echo upstreams.

import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Route } from '../../ir/types.ts';
import { podCounts, rawRequest, request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { connect, h2request } from './support/http2-client.ts';
import { backend, exact, forwardTo, prefix, requestHeaders, responseHeaders, route, singleHostIR, weighted } from './support/ir.ts';

describe('dataplane forwarding', () => {
  let a: EchoServer;
  let b: EchoServer;
  let c: EchoServer;
  let deadPort: number;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    [a, b, c] = await Promise.all([startEchoServer('a'), startEchoServer('b', { responseHeaders: { 'x-from-upstream': 'yes', 'x-drop-me': 'please' } }), startEchoServer('c')]);
    deadPort = await freePort();
    port = await freePort();
    const routes: Route[] = [
      route('split', { path: prefix('/split') }, forwardTo(weighted('svc/a', 3), weighted('svc/b', 1), weighted('svc/c', 0))),
      route('half-invalid', { path: prefix('/half-invalid') }, forwardTo(weighted('svc/a', 1), weighted(null, 1))),
      route('all-zero', { path: prefix('/all-zero') }, forwardTo(weighted('svc/a', 0))),
      route('empty', { path: prefix('/empty') }, forwardTo('svc/empty')),
      route('dead', { path: prefix('/dead') }, forwardTo('svc/dead')),
      route('rr', { path: prefix('/rr') }, forwardTo('svc/ab')),
      route(
        'modify',
        { path: prefix('/modify') },
        forwardTo(weighted('svc/b', 1, [requestHeaders({ set: [{ name: 'x-set', value: 'from-backend' }], add: [{ name: 'x-backend', value: 'b' }] })])),
        [
          requestHeaders({ set: [{ name: 'X-Set', value: 'from-route' }], add: [{ name: 'x-add', value: 'added' }], remove: ['x-remove'] }),
          responseHeaders({ set: [{ name: 'x-response', value: 'set' }], add: [{ name: 'x-from-upstream', value: 'more' }], remove: ['x-drop-me'] }),
        ],
      ),
      route('direct', { path: exact('/direct') }, { type: 'DirectResponse', status: 418, body: 'short and stout' }, [
        responseHeaders({ set: [{ name: 'x-direct', value: '1' }] }),
      ]),
      route('redirect', { path: prefix('/old') }, { type: 'Redirect', hostname: 'new.example.com', statusCode: 301, path: { type: 'ReplacePrefixMatch', value: '/new' } }),
      route('to-https', { path: prefix('/secure') }, { type: 'Redirect', scheme: 'https', statusCode: 302 }),
      route('echo', { path: prefix('/echo') }, forwardTo('svc/a')),
    ];
    harness = testDataplane();
    const ir = singleHostIR(port, routes, [
      backend('svc/a', [a.endpoint]),
      backend('svc/b', [b.endpoint]),
      backend('svc/c', [c.endpoint]),
      backend('svc/ab', [a.endpoint, b.endpoint]),
      backend('svc/empty', []),
      backend('svc/dead', [{ address: '127.0.0.1', port: deadPort }]),
    ]);
    const result = await harness.dataplane.apply('v1', ir);
    expect(result).toEqual({ version: 'v1', listeners: [{ name: `127.0.0.1:${port}`, ok: true }] });
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('forwards method, path, query and the client Host unchanged', async () => {
    const response = await request(port, '/echo/x?y=1&z', { host: 'Shop.Example.com:8080', method: 'DELETE' });
    expect(response.status).toBe(200);
    expect(response.echo).toMatchObject({ pod: 'a', method: 'DELETE', path: '/echo/x?y=1&z', host: 'Shop.Example.com:8080' });
  });

  it('streams request bodies up and response bodies down', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 'x');
    const response = await request(port, '/echo/upload', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(response.echo?.bodyLength).toBe(body.length);
    expect(response.echo?.headers['content-length']).toBe(String(body.length));

    // Chunked upload (no Content-Length) stays chunked upstream.
    const chunked = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/echo/chunked', method: 'PUT', agent: false }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.write('hello ');
      setTimeout(() => req.end('world'), 20);
    });
    const echo = JSON.parse(chunked);
    expect(echo.body).toBe('hello world');
    expect(echo.headers['transfer-encoding']).toBe('chunked');
  });

  it('splits exactly by weight: 3/1 over 400 requests is 300/100, weight 0 gets none', async () => {
    expect(await podCounts(port, '/split', 400)).toEqual({ a: 300, b: 100 });
  });

  it('answers 500 for the share of an invalid backend reference, and when every weight is 0', async () => {
    expect(await podCounts(port, '/half-invalid', 100)).toEqual({ a: 50, 'status 500': 50 });
    expect((await request(port, '/all-zero')).status).toBe(500);
  });

  it('answers 503 at once for a backend without endpoints', async () => {
    expect((await request(port, '/empty')).status).toBe(503);
  });

  it('answers 502 when the endpoint refuses connections, and logs the failure', async () => {
    const response = await request(port, '/dead');
    expect(response.status).toBe(502);
    expect(harness.logs.some((line) => line.msg === 'upstream request failed' && line.endpoint === `127.0.0.1:${deadPort}`)).toBe(true);
  });

  it('answers 404 when no route matches', async () => {
    expect((await request(port, '/nothing-here')).status).toBe(404);
  });

  it('picks endpoints round-robin within a backend', async () => {
    expect(await podCounts(port, '/rr', 10)).toEqual({ a: 5, b: 5 });
  });

  it('applies request header modifiers, route filters first, then the backend ones', async () => {
    const response = await request(port, '/modify', { headers: { 'x-set': 'client', 'x-add': 'client', 'x-remove': 'gone', 'x-keep': 'kept' } });
    const headers = response.echo!.headers;
    expect(headers['x-set']).toBe('from-backend');
    expect(headers['x-add']).toBe('client,added');
    expect(headers['x-backend']).toBe('b');
    expect(headers['x-remove']).toBeUndefined();
    expect(headers['x-keep']).toBe('kept');
  });

  it('applies response header modifiers to the downstream response', async () => {
    const response = await request(port, '/modify');
    expect(response.headers['x-response']).toBe('set');
    expect(response.headers['x-from-upstream']).toBe('yes,more');
    expect(response.headers['x-drop-me']).toBeUndefined();
  });

  it('answers direct responses with their status, body and response filters', async () => {
    const response = await request(port, '/direct');
    expect(response.status).toBe(418);
    expect(response.body).toBe('short and stout');
    expect(response.headers['x-direct']).toBe('1');
  });

  it('redirects with hostname, status code, prefix replacement and the query kept', async () => {
    const response = await request(port, '/old/page?q=1', { host: 'shop.example.com' });
    expect(response.status).toBe(301);
    expect(response.headers.location).toBe(`http://new.example.com:${port}/new/page?q=1`);
  });

  it('redirects to the well-known port of a new scheme', async () => {
    const response = await request(port, '/secure/login', { host: 'shop.example.com:1234' });
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('https://shop.example.com/secure/login');
  });

  it('sets X-Forwarded-For (appending) and X-Forwarded-Proto', async () => {
    const fresh = await request(port, '/echo');
    expect(fresh.echo!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(fresh.echo!.headers['x-forwarded-proto']).toBe('http');
    const chained = await request(port, '/echo', { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' } });
    expect(chained.echo!.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(chained.echo!.headers['x-forwarded-proto']).toBe('http');
  });

  it('strips hop-by-hop headers in both directions, including those named in Connection', async () => {
    const text = await rawRequest(
      port,
      [
        'GET /modify HTTP/1.1',
        'Host: shop.example.com',
        'Connection: close, X-Private',
        'X-Private: secret',
        'Keep-Alive: timeout=5',
        'Proxy-Connection: keep-alive',
        'TE: deflate',
        'Trailer: X-Checksum',
        'X-Visible: yes',
        '',
        '',
      ].join('\r\n'),
    );
    const [head, body] = text.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    const upstreamNames = (JSON.parse(body).rawHeaders as string[]).filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
    for (const name of ['x-private', 'keep-alive', 'proxy-connection', 'te', 'trailer']) expect(upstreamNames).not.toContain(name);
    expect(upstreamNames).toContain('x-visible');
    // `te: trailers` is the one TE the proxy forwards: it passes trailers on.
    expect((await request(port, '/echo', { headers: { te: 'deflate, trailers' } })).echo?.headers.te).toBe('trailers');
    // The upstream connection is the proxy's own keep-alive one, not the client's "close".
    expect(upstreamNames.filter((name) => name === 'connection')).toEqual(['connection']);

    // Response side: an upstream that names private headers in Connection.
    const upstream = http.createServer((_req, res) => {
      res.writeHead(200, { connection: 'keep-alive, x-upstream-private', 'x-upstream-private': '1', 'proxy-connection': 'keep-alive', 'keep-alive': 'timeout=30', 'x-public': '1' });
      res.end('ok');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamPort = (upstream.address() as net.AddressInfo).port;
    const local = testDataplane();
    const localPort = await freePort();
    await local.dataplane.apply('v1', singleHostIR(localPort, [route('r', {}, forwardTo('svc/u'))], [backend('svc/u', [{ address: '127.0.0.1', port: upstreamPort }])]));
    try {
      const response = await request(localPort, '/');
      expect(response.status).toBe(200);
      expect(response.headers['x-public']).toBe('1');
      expect(response.headers['x-upstream-private']).toBeUndefined();
      expect(response.headers['proxy-connection']).toBeUndefined();
      expect(response.headers['keep-alive']).toBeUndefined();
    } finally {
      await local.dataplane.close();
      upstream.closeAllConnections();
      upstream.close();
    }
  });

  it('counts requests by route, backend and code', async () => {
    await request(port, '/echo/metrics');
    const text = await harness.registry.metrics();
    expect(text).toMatch(/sluice_http_requests_total\{route="httproute\/default\/echo\/rule\/0\/match\/0",backend="svc\/a",code="200"\} \d+/);
    expect(text).toMatch(/sluice_http_requests_total\{route="",backend="",code="404"\} \d+/);
    expect(text).toMatch(/sluice_config_version_info\{version="v1"\} 1/);
    expect(text).toMatch(/sluice_http_request_duration_seconds_count\{route="httproute\/default\/echo\/rule\/0\/match\/0"\} \d+/);
  });
});

describe('dataplane and disappearing clients', () => {
  let upstream: http.Server;
  let upstreamPort: number;
  const upstreamSockets = new Set<net.Socket>();
  const upstreamRequestsClosed: string[] = [];
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      // An unfinished response closes only when its connection does.
      res.on('close', () => {
        if (!res.writableFinished) upstreamRequestsClosed.push(req.url ?? '');
      });
      if (req.url === '/stream') {
        // Endless body: only an abort from the proxy ends it.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024, 'y')), 5);
        res.on('close', () => clearInterval(timer));
      } else if (req.url === '/never') {
        // Never answers.
      } else {
        res.end('ok');
      }
    });
    upstream.on('connection', (socket: net.Socket) => {
      upstreamSockets.add(socket);
      socket.on('close', () => upstreamSockets.delete(socket));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamPort = (upstream.address() as net.AddressInfo).port;
    port = await freePort();
    harness = testDataplane();
    await harness.dataplane.apply('v1', singleHostIR(port, [route('r', {}, forwardTo('svc/u'))], [backend('svc/u', [{ address: '127.0.0.1', port: upstreamPort }])]));
  });

  afterAll(async () => {
    await harness.dataplane.close();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  async function until(condition: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    if (!condition()) throw new Error(`timed out waiting for ${what}`);
  }

  it('aborts the upstream request when the client leaves mid-response (no leaked connection)', async () => {
    for (let round = 0; round < 5; round++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/stream', agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
      });
    }
    await until(() => upstreamRequestsClosed.filter((url) => url === '/stream').length === 5, 'upstream requests to close');
    // Every connection that carried one of those requests is gone (idle spare connections the
    // pool may have opened are not leaks; they time out on their own).
    await until(() => [...upstreamSockets].every((socket) => socket.bytesWritten === 0), 'upstream connections to close');
    expect((await request(port, '/ok')).body).toBe('ok');
    expect(await harness.registry.metrics()).toMatch(/sluice_http_requests_total\{route="httproute\/default\/r\/rule\/0\/match\/0",backend="svc\/u",code="499"\} 5/);
  });

  it('aborts the upstream request when the client leaves before response headers', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.write('GET /never HTTP/1.1\r\nHost: x\r\n\r\n');
    const reached = new Promise<net.Socket>((resolve) => {
      upstream.once('request', (req: http.IncomingMessage) => resolve(req.socket));
    });
    socket.write('GET /never HTTP/1.1\r\nHost: x\r\n\r\n');
    const upstreamSocket = await reached;
    socket.destroy();
    await until(() => upstreamRequestsClosed.includes('/never'), 'the upstream request to close');
    await until(() => upstreamSocket.destroyed, 'the aborted upstream connection to close');
    expect((await request(port, '/ok')).body).toBe('ok');
  });

  it('aborts the upstream request when an HTTP/2 client cancels its stream, keeping the connection', async () => {
    const before = upstreamRequestsClosed.filter((url) => url === '/stream').length;
    const session = await connect(`http://127.0.0.1:${port}`);
    try {
      for (let round = 0; round < 3; round++) {
        await new Promise<void>((resolve, reject) => {
          const stream = session.request({ ':path': '/stream' });
          stream.once('data', () => {
            stream.close(http2.constants.NGHTTP2_CANCEL);
            resolve();
          });
          stream.on('error', reject);
        });
      }
      await until(() => upstreamRequestsClosed.filter((url) => url === '/stream').length === before + 3, 'upstream requests to close');
      // The session itself is still good.
      expect((await h2request(session, '/ok')).body).toBe('ok');
    } finally {
      session.close();
    }
  });
});
