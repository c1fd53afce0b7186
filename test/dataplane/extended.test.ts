// Gateway API Extended features end to end: URL rewrites, backend redirects, timeouts,
// retries, mirrors and CORS.

import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { CorsPolicy, Filter, Route } from '../../ir/types.ts';
import { REPLAY_BODY_LIMIT_BYTES } from '../../dataplane/upstream/forward.ts';
import { request, type Response } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { backend, exact, forwardTo, prefix, requestHeaders, responseHeaders, route, singleHostIR, weighted } from './support/ir.ts';

const rewrite = (rewrite: Omit<Extract<Filter, { type: 'URLRewrite' }>, 'type'>): Filter => ({ type: 'URLRewrite', ...rewrite });
const mirrorTo = (target: string | null, percent = 100): Filter => ({ type: 'RequestMirror', backend: target, percent });
const cors = (policy: Partial<CorsPolicy>): Filter => ({
  type: 'CORS',
  cors: { allowOrigins: [], allowCredentials: false, allowMethods: [], allowHeaders: [], exposeHeaders: [], ...policy },
});

async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

/** A chunked upload (no Content-Length): `body` written in pieces. */
function chunkedRequest(port: number, path: string, body: Buffer): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: text, echo: res.headers['content-type'] === 'application/json' ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    const piece = 16 * 1024;
    for (let offset = 0; offset < body.length; offset += piece) req.write(body.subarray(offset, offset + piece));
    req.end();
  });
}

describe('Extended HTTPRoute features', () => {
  let a: EchoServer;
  let b: EchoServer;
  /** Accepts connections and never answers. */
  let silent: net.Server;
  let silentRequests = 0;
  const silentSockets = new Set<net.Socket>();
  let port: number;
  let harness: TestDataplane;
  let keys = 0;
  const key = (): string => `k${++keys}`;

  beforeAll(async () => {
    [a, b] = await Promise.all([startEchoServer('a', { responseHeaders: { 'access-control-allow-origin': 'https://upstream.example' } }), startEchoServer('b')]);
    silent = net.createServer((socket) => {
      silentSockets.add(socket);
      socket.once('data', () => silentRequests++);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentEndpoint = { address: '127.0.0.1', port: (silent.address() as net.AddressInfo).port };
    const deadPort = await freePort();
    port = await freePort();
    const routes: Route[] = [
      route('rewrite-prefix', { path: prefix('/prefix/one') }, forwardTo('svc/a'), [rewrite({ path: { type: 'ReplacePrefixMatch', value: '/one' } })]),
      route('rewrite-strip', { path: prefix('/strip-prefix') }, forwardTo('svc/a'), [rewrite({ path: { type: 'ReplacePrefixMatch', value: '/' } })]),
      route('rewrite-full', { path: prefix('/full') }, forwardTo('svc/a'), [
        rewrite({ hostname: 'rewritten.example.com', path: { type: 'ReplaceFullPath', value: '/one' } }),
        requestHeaders({ set: [{ name: 'x-set', value: 'yes' }] }),
      ]),
      route('backend-rewrite', { path: prefix('/backend-rewrite') }, forwardTo(weighted('svc/a', 1, [rewrite({ path: { type: 'ReplacePrefixMatch', value: '/by-backend' } })]))),
      route('backend-redirect', { path: prefix('/backend-redirect') }, forwardTo(weighted('svc/a', 1, [{ type: 'RequestRedirect', redirect: { type: 'Redirect', hostname: 'moved.example.com', statusCode: 301 } }]))),
      { ...route('timeout', { path: prefix('/timeout') }, forwardTo('svc/a')), timeouts: { requestMs: 150 } },
      { ...route('backend-timeout', { path: prefix('/backend-timeout') }, forwardTo('svc/a')), timeouts: { backendRequestMs: 150 } },
      { ...route('retry', { path: prefix('/retry') }, forwardTo('svc/a')), retry: { codes: [500], attempts: 3, backoffMs: 5 } },
      { ...route('retry-timeout', { path: prefix('/retry-timeout') }, forwardTo('svc/a')), retry: { codes: [], attempts: 2, backoffMs: 0 }, timeouts: { backendRequestMs: 100 } },
      route('no-retry', { path: prefix('/no-retry') }, forwardTo('svc/a')),
      route('mirror', { path: prefix('/mirror') }, forwardTo('svc/a'), [
        requestHeaders({ set: [{ name: 'x-before-mirror', value: '1' }] }),
        mirrorTo('svc/b'),
        requestHeaders({ set: [{ name: 'x-after-mirror', value: '1' }] }),
      ]),
      route('half-mirror', { path: prefix('/half-mirror') }, forwardTo('svc/a'), [mirrorTo('svc/b', 50)]),
      route('mirror-nowhere', { path: prefix('/mirror-nowhere') }, forwardTo('svc/a'), [mirrorTo('svc/silent'), mirrorTo('svc/dead')]),
      route('cors', { path: prefix('/cors') }, forwardTo('svc/a'), [
        cors({ allowOrigins: ['https://www.foo.com', 'https://*.bar.com'], allowMethods: ['GET', 'OPTIONS'], allowHeaders: ['x-header-1', 'x-header-2'], exposeHeaders: ['x-header-3'], allowCredentials: true, maxAge: 3600 }),
      ]),
      route('cors-any', { path: prefix('/any-cors') }, forwardTo('svc/a'), [cors({ allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'] })]),
      route('cors-direct', { path: exact('/cors-direct') }, { type: 'DirectResponse', status: 200, body: 'direct' }, [cors({ allowOrigins: ['*'] }), responseHeaders({ set: [{ name: 'x-direct', value: '1' }] })]),
    ];
    harness = testDataplane();
    const result = await harness.dataplane.apply(
      'v1',
      singleHostIR(port, routes, [
        backend('svc/a', [a.endpoint]),
        backend('svc/b', [b.endpoint]),
        backend('svc/silent', [silentEndpoint]),
        backend('svc/dead', [{ address: '127.0.0.1', port: deadPort }]),
      ]),
    );
    expect(result.listeners[0].ok).toBe(true);
    expect(harness.logs.filter((line) => line.level >= 40)).toEqual([]);
  });

  afterAll(async () => {
    // Unanswered mirror requests would hold the pools' drain for its whole timeout.
    for (const socket of silentSockets) socket.destroy();
    silent.close();
    await harness.dataplane.close();
    await Promise.all([a.close(), b.close()]);
  });

  const notReplayable = async (routeName: string): Promise<number> => {
    const text = await harness.registry.metrics();
    const match = new RegExp(`sluice_http_request_body_not_replayable_total\\{route="httproute/default/${routeName}/rule/0/match/0"\\} (\\d+)`).exec(text);
    return match === null ? 0 : Number(match[1]);
  };

  describe('URLRewrite', () => {
    it('replaces the matched prefix element-wise and keeps the query', async () => {
      expect((await request(port, '/prefix/one/two?x=1')).echo?.path).toBe('/one/two?x=1');
      expect((await request(port, '/prefix/one')).echo?.path).toBe('/one');
      expect((await request(port, '/strip-prefix/three')).echo?.path).toBe('/three');
      expect((await request(port, '/strip-prefix')).echo?.path).toBe('/');
    });

    it('replaces the full path and the hostname, alongside header modifiers', async () => {
      const echo = (await request(port, '/full/one/two', { host: 'shop.example.com' })).echo!;
      expect(echo.path).toBe('/one');
      expect(echo.host).toBe('rewritten.example.com');
      expect(echo.headers['x-set']).toBe('yes');
    });

    it('applies a backendRef-level rewrite', async () => {
      expect((await request(port, '/backend-rewrite/x')).echo?.path).toBe('/by-backend/x');
    });
  });

  it('answers a backendRef-level RequestRedirect', async () => {
    const response = await request(port, '/backend-redirect/page', { host: 'shop.example.com' });
    expect(response.status).toBe(301);
    expect(response.headers.location).toBe(`http://moved.example.com:${port}/backend-redirect/page`);
  });

  describe('timeouts', () => {
    it('answers 504 when the request timeout expires, 200 within it', async () => {
      expect((await request(port, '/timeout?delay=400')).status).toBe(504);
      expect((await request(port, '/timeout?delay=10')).status).toBe(200);
    });

    it('answers 504 when the backend request timeout expires', async () => {
      expect((await request(port, '/backend-timeout?delay=400')).status).toBe(504);
      expect((await request(port, '/backend-timeout')).status).toBe(200);
    });

    it('has no timeout when none is configured', async () => {
      expect((await request(port, '/no-retry?delay=300')).status).toBe(200);
    });
  });

  describe('retry', () => {
    it('retries listed codes until an attempt succeeds', async () => {
      const k = key();
      const response = await request(port, `/retry?key=${k}&fail=2&code=500`);
      expect(response.status).toBe(200);
      expect(a.attempts.get(k)).toBe(3);
    });

    it('returns the last answer when the attempts run out', async () => {
      const k = key();
      const response = await request(port, `/retry?key=${k}&fail=10&code=500`);
      expect(response.status).toBe(500);
      expect(response.body).toBe('failure 4');
      expect(a.attempts.get(k)).toBe(4);
    });

    it('does not retry codes that are not listed', async () => {
      const k = key();
      expect((await request(port, `/retry?key=${k}&fail=1&code=503`)).status).toBe(503);
      expect(a.attempts.get(k)).toBe(1);
    });

    it('retries connection resets; 503 once every attempt failed', async () => {
      const recovered = key();
      expect((await request(port, `/retry?key=${recovered}&fail=2&code=reset`)).status).toBe(200);
      const dead = key();
      expect((await request(port, `/retry?key=${dead}&fail=10&code=reset`)).status).toBe(503);
      expect(a.attempts.get(dead)).toBe(4);
    });

    it('retries an attempt that exceeded the backend request timeout', async () => {
      const response = await request(port, '/retry-timeout?delay=300');
      expect(response.status).toBe(504);
    });

    it('retries a request with a body, sending the same body each time', async () => {
      const k = key();
      const response = await request(port, `/retry?key=${k}&fail=2&code=500`, { method: 'POST', body: 'payload' });
      expect(response.status).toBe(200);
      expect(response.echo?.body).toBe('payload');
      expect(a.attempts.get(k)).toBe(3);
      // Chunked (no Content-Length) works the same, and resets are retried too.
      const chunked = key();
      const body = Buffer.alloc(40 * 1024, 'c');
      const again = await chunkedRequest(port, `/retry?key=${chunked}&fail=1&code=reset`, body);
      expect(again.echo?.bodyLength).toBe(body.length);
      expect(a.attempts.get(chunked)).toBe(2);
    });

    it('sends a body beyond the replay buffer once, without retrying, and counts it', async () => {
      const before = await notReplayable('retry');
      const sized = key();
      const large = Buffer.alloc(REPLAY_BODY_LIMIT_BYTES + 1, 's');
      expect((await request(port, `/retry?key=${sized}&fail=2&code=500`, { method: 'POST', body: large })).status).toBe(500);
      expect(a.attempts.get(sized)).toBe(1);
      // Without Content-Length the limit is found while reading: what was read is sent first.
      const chunked = key();
      const body = Buffer.from(Array.from({ length: 3 * REPLAY_BODY_LIMIT_BYTES }, (_, i) => 97 + (i % 26)));
      const streamed = await chunkedRequest(port, `/retry?key=${chunked}&fail=1&code=500`, body);
      expect(streamed.status).toBe(500);
      expect(a.attempts.get(chunked)).toBe(1);
      const ok = await chunkedRequest(port, `/retry?key=${key()}`, body);
      expect(ok.echo?.bodyLength).toBe(body.length);
      expect(ok.echo?.body).toBe(body.toString());
      expect(await notReplayable('retry')).toBe(before + 3);
    });

    it('answers 502 for a reset without a retry policy', async () => {
      expect((await request(port, `/no-retry?key=${key()}&fail=1&code=reset`)).status).toBe(502);
    });
  });

  describe('RequestMirror', () => {
    it('sends a copy with the header changes listed before the mirror; the answer comes from the real backend', async () => {
      const before = b.count;
      const response = await request(port, '/mirror/x?id=1', { host: 'shop.example.com' });
      expect(response.echo?.pod).toBe('a');
      expect(response.echo?.headers['x-before-mirror']).toBe('1');
      expect(response.echo?.headers['x-after-mirror']).toBe('1');
      await eventually(() => b.count === before + 1, 'the mirrored request');
    });

    it('mirrors requests with a body, the same body to both', async () => {
      const before = b.received.length;
      const response = await request(port, '/mirror/upload', { method: 'POST', body: 'mirrored payload' });
      expect(response.echo).toMatchObject({ pod: 'a', body: 'mirrored payload' });
      await eventually(() => b.received.length === before + 1, 'the mirrored request');
      expect(b.received[before]).toMatchObject({ method: 'POST', path: '/mirror/upload', body: 'mirrored payload' });
    });

    it('does not mirror a body beyond the replay buffer; the real request still gets all of it', async () => {
      const before = b.received.length;
      const counted = await notReplayable('mirror');
      const large = Buffer.alloc(REPLAY_BODY_LIMIT_BYTES * 2, 'm');
      expect((await request(port, '/mirror/large', { method: 'POST', body: large })).echo?.bodyLength).toBe(large.length);
      expect((await chunkedRequest(port, '/mirror/large-chunked', large)).echo?.bodyLength).toBe(large.length);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(b.received.length).toBe(before);
      expect(await notReplayable('mirror')).toBe(counted + 2);
    });

    it('never delays or changes the real response, whatever the mirror does', async () => {
      const seen = silentRequests;
      // Five requests while one mirror never answers and the other refuses connections. A response
      // that waited for the silent mirror would never come (the route sets no timeout):
      // each one within 5 s shows it did not, with slack for a loaded machine.
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const response = await request(port, `/mirror-nowhere/${i}`, { method: i % 2 === 0 ? 'POST' : 'GET', ...(i % 2 === 0 ? { body: 'x' } : {}) });
        expect(performance.now() - started).toBeLessThan(5000);
        expect(response.status).toBe(200);
        expect(response.echo?.pod).toBe('a');
      }
      await eventually(() => silentRequests >= seen + 1, 'the silent mirror to be reached');
    });

    it('mirrors about the configured share of requests', async () => {
      const before = b.count;
      for (let i = 0; i < 200; i++) await request(port, '/half-mirror');
      await new Promise((resolve) => setTimeout(resolve, 100));
      // 50% of 200: mean 100, standard deviation ~7; ±40 is far beyond chance.
      expect(b.count - before).toBeGreaterThan(60);
      expect(b.count - before).toBeLessThan(140);
    });
  });

  describe('CORS', () => {
    const preflight = (path: string, origin: string, method = 'GET', headers?: string) =>
      request(port, path, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': method, ...(headers ? { 'access-control-request-headers': headers } : {}) },
      });

    it('answers preflights from allowed origins itself', async () => {
      const before = a.count;
      const response = await preflight('/cors', 'https://www.foo.com', 'GET', 'x-header-1, x-header-2');
      expect(response.status).toBe(204);
      expect(response.headers).toMatchObject({
        'access-control-allow-origin': 'https://www.foo.com',
        'access-control-allow-methods': 'GET, OPTIONS',
        'access-control-allow-headers': 'x-header-1, x-header-2',
        'access-control-expose-headers': 'x-header-3',
        'access-control-max-age': '3600',
        'access-control-allow-credentials': 'true',
      });
      expect(a.count).toBe(before);
    });

    it('lets a wildcard origin span several labels, and refuses others', async () => {
      expect((await preflight('/cors', 'https://a.b.bar.com')).headers['access-control-allow-origin']).toBe('https://a.b.bar.com');
      const refused = await preflight('/cors', 'https://foobar.com');
      expect(refused.status).toBe(403);
      expect(refused.headers['access-control-allow-origin']).toBeUndefined();
      expect((await preflight('/cors', 'http://www.foo.com')).headers['access-control-allow-origin']).toBeUndefined();
    });

    it('echoes the requested method and headers for wildcards, without credentials', async () => {
      const response = await preflight('/any-cors', 'https://foobar.com:12345', 'PUT', 'x-a, x-b');
      expect(response.headers).toMatchObject({
        'access-control-allow-origin': 'https://foobar.com:12345',
        'access-control-allow-methods': 'PUT',
        'access-control-allow-headers': 'x-a, x-b',
        'access-control-max-age': '5',
      });
      expect(response.headers['access-control-allow-credentials']).toBeUndefined();
    });

    it('adds CORS headers to forwarded responses for allowed origins only, replacing the upstream ones', async () => {
      const allowed = await request(port, '/cors', { headers: { origin: 'https://www.foo.com' } });
      expect(allowed.echo?.headers.origin).toBe('https://www.foo.com');
      expect(allowed.headers['access-control-allow-origin']).toBe('https://www.foo.com');
      expect(allowed.headers['access-control-allow-credentials']).toBe('true');
      const refused = await request(port, '/cors', { headers: { origin: 'https://foobar.com' } });
      expect(refused.status).toBe(200);
      expect(refused.headers['access-control-allow-origin']).toBe('https://upstream.example');
      const direct = await request(port, '/cors-direct', { headers: { origin: 'https://any.example' } });
      expect(direct.headers['access-control-allow-origin']).toBe('https://any.example');
      expect(direct.headers['x-direct']).toBe('1');
    });
  });

  it('speaks HTTP/2 with prior knowledge to h2c backends, bodies streamed', async () => {
    const h2c = http2.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ pod: 'h2c', httpVersion: req.httpVersion, path: req.url, host: req.headers[':authority'], method: req.method, body, headers: req.headers }));
      });
    });
    await new Promise<void>((resolve) => h2c.listen(0, '127.0.0.1', resolve));
    const h2cPort = await freePort();
    const local = testDataplane();
    try {
      const ir = singleHostIR(h2cPort, [route('grpcish', {}, forwardTo('svc/h2c'))], [
        { name: 'svc/h2c', appProtocol: 'h2c', endpoints: [{ address: '127.0.0.1', port: (h2c.address() as net.AddressInfo).port }] },
      ]);
      expect((await local.dataplane.apply('v1', ir)).listeners[0].ok).toBe(true);
      const get = await request(h2cPort, '/h2c/path?q=1', { host: 'api.example.com' });
      expect(get.status).toBe(200);
      expect(JSON.parse(get.body)).toMatchObject({ httpVersion: '2.0', path: '/h2c/path?q=1', host: 'api.example.com', method: 'GET' });
      const post = JSON.parse((await request(h2cPort, '/upload', { method: 'POST', body: 'x'.repeat(100_000) })).body);
      expect(post.body).toHaveLength(100_000);
      expect(post.headers['x-forwarded-proto']).toBe('http');
    } finally {
      await local.dataplane.close();
      h2c.close();
    }
  });
});
