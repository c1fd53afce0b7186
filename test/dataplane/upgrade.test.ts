// HTTP/1.1 upgrades at the front door: a connection becomes a tunnel only when the upstream
// answers 101 to a WebSocket upgrade; otherwise the answer is relayed with HTTP/1.1 framing and
// the connection stays HTTP/1.1, every later (or pipelined) request routed on its own. Raw
// sockets on both sides, over cleartext and TLS.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DirectResponseAction } from '../../ir/types.ts';
import { freePort } from '../support/ports.ts';
import { irCertificate, selfSignedCertificate } from './support/certs.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { backend, forwardTo, listener, prefix, route, scope } from './support/ir.ts';
import { RawConnection, startCountingBackend, usingConnection, type CountingBackend } from './support/raw-http.ts';

const direct: DirectResponseAction = { type: 'DirectResponse', status: 200, body: 'direct\n' };

const upgradeRequest = (path: string, protocol: string, extra = ''): string =>
  `GET ${path} HTTP/1.1\r\nHost: app.example.com\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

/** What the smuggling attack sent once a tunnel was (wrongly) open: a host no route sends to the backend. */
const ADMIN_REQUEST = 'GET /admin HTTP/1.1\r\nHost: internal.local\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n';

describe('HTTP/1.1 upgrades', () => {
  let app: CountingBackend;
  let httpPort: number;
  let httpsPort: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    app = await startCountingBackend();
    const certificate = await selfSignedCertificate('app.example.com', ['app.example.com', 'internal.local']);
    httpPort = await freePort();
    httpsPort = await freePort();
    harness = testDataplane();
    const scopes = (name: string) => [
      scope(name, null, [
        [
          'app.example.com',
          [route('direct', { path: prefix('/direct') }, direct), route('empty', { path: prefix('/empty') }, forwardTo('svc/empty')),
            { ...route('spdy', { path: prefix('/spdy') }, forwardTo('svc/app')), upgradeTypes: ['spdy/3.1'] },
            { ...route('no-upgrades', { path: prefix('/no-upgrades') }, forwardTo('svc/app')), upgradeTypes: [] },
            route('app', { path: prefix('/') }, forwardTo('svc/app')),
          ],
        ],
      ]),
    ];
    const result = await harness.dataplane.apply('v1', {
      listeners: [
        listener(httpPort, scopes('http')),
        listener(httpsPort, scopes('https'), { protocol: 'HTTPS', tls: { certificates: [irCertificate('secret/default/app', ['app.example.com', 'internal.local'], certificate)] } }),
      ],
      backends: { 'svc/app': backend('svc/app', [app.endpoint]), 'svc/empty': backend('svc/empty', []) },
    });
    expect(result.listeners.every((l) => l.ok)).toBe(true);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await app.close();
  });

  const schemes: Array<[string, () => Promise<RawConnection>]> = [
    ['cleartext', () => RawConnection.open(httpPort)],
    ['TLS', () => RawConnection.open(httpsPort, { tls: true, servername: 'app.example.com' })],
  ];

  describe.each(schemes)('over %s', (_scheme, open) => {
    it('relays a refused WebSocket upgrade (200) as a response and routes the next request on its own: no tunnel', async () => {
      await usingConnection(open, async (connection) => {
        const linesBefore = app.requestLines().length;
        connection.send(upgradeRequest('/refused', 'websocket'));
        await connection.untilResponses(1);
        expect(connection.statuses()).toEqual([200]);
        expect(connection.text).toContain('backend /refused\n');
        // What the attack sent next: routed by the gateway (no route for that host), never
        // written to the backend's connection.
        connection.send(ADMIN_REQUEST);
        await connection.untilResponses(2);
        expect(connection.statuses()).toEqual([200, 404]);
        connection.send('GET /again HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
        await connection.untilResponses(3);
        expect(connection.statuses()).toEqual([200, 404, 200]);
        expect(app.requestLines().slice(linesBefore)).toEqual(['GET /refused HTTP/1.1', 'GET /again HTTP/1.1']);
        expect(app.raw()).not.toContain('/admin');
      });
    });

    it('tunnels after the upstream 101: bytes flow both ways, early client bytes included', async () => {
      await usingConnection(open, async (connection) => {
        connection.send(upgradeRequest('/ws', 'websocket', 'X-Answer: 101\r\n') + 'early');
        await connection.until((text) => text.includes('echo:early'));
        expect(connection.text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
        expect(connection.text).toMatch(/\r\nupgrade: websocket\r\n/i);
        expect(connection.text).toMatch(/\r\nx-backend: tunnel\r\n/i);
        connection.send('GET /inside HTTP/1.1\r\n\r\n');
        await connection.until((text) => text.includes('echo:GET /inside'));
        expect(app.tunnelled()).toContain('GET /inside HTTP/1.1');
      });
    });

    it('answers pipelined requests behind a refused upgrade, in order', async () => {
      await usingConnection(open, async (connection) => {
        connection.send(upgradeRequest('/first', 'websocket') + 'GET /second HTTP/1.1\r\nHost: app.example.com\r\n\r\n' + ADMIN_REQUEST);
        await connection.untilResponses(3);
        expect(connection.statuses()).toEqual([200, 200, 404]);
        expect(connection.text.indexOf('backend /first')).toBeLessThan(connection.text.indexOf('backend /second'));
      });
    });
  });

  it('answers an upgrade pipelined behind a request still in flight after that request, then the rest', async () => {
    await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
      connection.send('GET /one HTTP/1.1\r\nHost: app.example.com\r\n\r\n' + upgradeRequest('/two', 'websocket') + 'GET /three HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
      await connection.untilResponses(3);
      expect(connection.statuses()).toEqual([200, 200, 200]);
      expect([...connection.text.matchAll(/backend (\S+)/g)].map((match) => match[1])).toEqual(['/one', '/two', '/three']);
    });
  });

  it.each(['h2c', 'foo/1.0'])('serves an `Upgrade: %s` request as a plain one and answers what is pipelined behind it', async (protocol) => {
    await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
      const before = app.requests.length;
      connection.send(upgradeRequest('/plain', protocol, 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n') + 'GET /behind HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
      await connection.untilResponses(2);
      expect(connection.statuses()).toEqual([200, 200]);
      const [plain, behind] = app.requests.slice(before);
      expect(plain.url).toBe('/plain');
      // Hop-by-hop: neither the Upgrade nor what Connection named reaches the backend.
      expect(plain.headers.upgrade).toBeUndefined();
      expect(plain.headers['http2-settings']).toBeUndefined();
      expect(behind.url).toBe('/behind');
    });
  });

  describe('per route (IR upgradeTypes, annotation sluice.dev/upgrade-types)', () => {
    it('tunnels a protocol the route lists after the upstream 101', async () => {
      await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
        connection.send(upgradeRequest('/spdy', 'SPDY/3.1', 'X-Answer: 101\r\n') + 'early');
        await connection.until((text) => text.includes('echo:early'));
        expect(connection.statuses()).toEqual([101]);
        expect(connection.text).toMatch(/\r\nupgrade: spdy\/3\.1\r\n/i);
      });
    });

    it.each([
      ['/spdy', 'websocket', 'a route listing other protocols'],
      ['/no-upgrades', 'websocket', 'a route allowing none'],
      ['/ws', 'spdy/3.1', 'a route on the WebSocket-only default'],
      ['/ws', 'websocket, spdy/3.1', 'a list of protocols'],
    ])('serves %s with Upgrade: %s as a plain request (%s): no Upgrade upstream, no tunnel', async (path, protocol) => {
      await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
        const before = app.requests.length;
        connection.send(upgradeRequest(path, protocol, 'X-Answer: 101\r\n') + 'GET /behind HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
        await connection.untilResponses(2);
        expect(connection.statuses()).toEqual([200, 200]);
        const [plain, behind] = app.requests.slice(before);
        expect(plain.url).toBe(path);
        expect(plain.headers.upgrade).toBeUndefined();
        expect(behind.url).toBe('/behind');
      });
    });
  });

  it('tunnels an upgrade that declares an empty body (Content-Length: 0)', async () => {
    await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
      connection.send(upgradeRequest('/ws', 'websocket', 'X-Answer: 101\r\nContent-Length: 0\r\n') + 'early');
      await connection.until((text) => text.includes('echo:early'));
      expect(connection.statuses()).toEqual([101]);
    });
  });

  it('never tunnels an upstream 101 to another protocol than the one asked', async () => {
    await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
      connection.send(upgradeRequest('/switch', 'websocket', 'X-Answer: 101 h2c\r\n'));
      await connection.untilResponses(1);
      expect(connection.statuses()).toEqual([502]);
      connection.send('GET /after HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
      await connection.untilResponses(2);
      expect(connection.statuses()).toEqual([502, 200]);
    });
  });

  it('serves an upgrade request with a body as a plain request and closes the connection after it', async () => {
    await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
      const before = app.requests.length;
      connection.send(upgradeRequest('/with-body', 'websocket', 'X-Answer: 101\r\nContent-Length: 5\r\n') + 'hello');
      await connection.untilClosed();
      expect(connection.statuses()).toEqual([200]);
      expect(connection.text).toMatch(/\r\nconnection: close\r\n/i);
      expect(app.requests.slice(before)).toEqual([expect.objectContaining({ url: '/with-body', body: 'hello', headers: expect.not.objectContaining({ upgrade: expect.anything() }) })]);
    });
  });

  it('answers an upgrade the gateway itself answers (direct response, no endpoint) and keeps the connection', async () => {
    await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
      connection.send(upgradeRequest('/direct', 'websocket'));
      await connection.untilResponses(1);
      connection.send(upgradeRequest('/empty', 'websocket'));
      await connection.untilResponses(2);
      connection.send('GET /direct HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
      await connection.untilResponses(3);
      expect(connection.statuses()).toEqual([200, 503, 200]);
      expect(connection.text).toContain('direct\n');
    });
  });

  it('closes the connection after a refused upgrade that said `Connection: close`', async () => {
    await usingConnection(() => RawConnection.open(httpPort), async (connection) => {
      connection.send(upgradeRequest('/bye', 'websocket').replace('Connection: Upgrade', 'Connection: Upgrade, close') + 'GET /never HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
      await connection.untilClosed();
      expect(connection.statuses()).toEqual([200]);
      expect(app.raw()).not.toContain('/never');
    });
  });
});

describe('HTTP/1.1 upgrades under a rate limit', () => {
  let app: CountingBackend;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    app = await startCountingBackend();
    port = await freePort();
    harness = testDataplane();
    const limited = { ...route('ws', { path: prefix('/') }, forwardTo('svc/app')), rateLimit: { policy: 'ratelimitpolicy/default/one', partition: 'default/ws' } };
    await harness.dataplane.apply('v1', {
      listeners: [listener(port, [scope('http', null, [['*', [limited]]])])],
      backends: { 'svc/app': backend('svc/app', [app.endpoint]) },
      rateLimits: {
        'ratelimitpolicy/default/one': {
          name: 'ratelimitpolicy/default/one',
          source: 'default/one',
          origin: { kind: 'RateLimitPolicy', namespace: 'default', name: 'one' },
          rules: [{ name: 'one', scope: 'Local', selectors: [], requests: 1, unitSeconds: 3600, burst: 1, shared: false, shadowMode: false, hash: 'one' }],
          failureMode: 'FailOpen',
          clientIP: { trustedHops: 0, trustedProxies: [] },
          responseHeaders: { draft10: false, legacy: false },
        },
      },
    });
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await app.close();
  });

  it('counts an upgrade request like any request: over the limit, 429 and no tunnel', async () => {
    const first = await RawConnection.open(port);
    const second = await RawConnection.open(port);
    try {
      first.send(upgradeRequest('/ws', 'websocket', 'X-Answer: 101\r\n'));
      await first.until((text) => text.startsWith('HTTP/1.1 101 '));
      second.send(upgradeRequest('/ws', 'websocket', 'X-Answer: 101\r\n'));
      await second.untilResponses(1);
      expect(second.statuses()).toEqual([429]);
      expect(app.requests.map((r) => r.url)).toEqual(['/ws']);
    } finally {
      first.close();
      second.close();
    }
  });
});

describe('HTTP/1.1 connections after a refused upgrade', () => {
  const HEADERS_TIMEOUT_MS = 300;
  const IDLE_TIMEOUT_MS = 2_000;
  let app: CountingBackend;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    app = await startCountingBackend();
    port = await freePort();
    harness = await gatewayTo(app, port, IDLE_TIMEOUT_MS);
  });

  /** A dataplane with one route to `app` on `port`, short request-head timeouts and the given idle timeout. */
  async function gatewayTo(backendServer: CountingBackend, listenerPort: number, idleTimeoutMs: number): Promise<TestDataplane> {
    const gateway = testDataplane({ frontDoor: { requestHeadersTimeoutMs: HEADERS_TIMEOUT_MS, idleTimeoutMs } });
    await gateway.dataplane.apply('v1', {
      listeners: [listener(listenerPort, [scope('http', null, [['*', [route('app', { path: prefix('/') }, forwardTo('svc/app'))]]])])],
      backends: { 'svc/app': backend('svc/app', [backendServer.endpoint]) },
    });
    return gateway;
  }

  afterAll(async () => {
    await harness.dataplane.close();
    await app.close();
  });

  /** Closed by the server after the idle timeout, not before (generous slack after: the box is shared). */
  async function expectClosedByIdleTimeout(connection: RawConnection): Promise<void> {
    const idleSince = Date.now();
    await connection.untilClosed(IDLE_TIMEOUT_MS * 5);
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 100);
  }

  it('are idle keep-alive connections: the idle timeout applies, not the request-headers one', async () => {
    await usingConnection(() => RawConnection.open(port), async (connection) => {
      connection.send(upgradeRequest('/refused', 'websocket'));
      await connection.untilResponses(1);
      // Well past the headers timeout, well within the idle timeout.
      await new Promise((resolve) => setTimeout(resolve, HEADERS_TIMEOUT_MS * 3));
      expect(connection.isClosed).toBe(false);
      connection.send('GET /later HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
      await connection.untilResponses(2);
      expect(connection.statuses()).toEqual([200, 200]);
      // Idle again after a request.
      await expectClosedByIdleTimeout(connection);
    });
  });

  it('are closed at once when the listener drains, like other idle connections', async () => {
    const drainingPort = await freePort();
    const draining = await gatewayTo(app, drainingPort, IDLE_TIMEOUT_MS * 30);
    try {
      await usingConnection(() => RawConnection.open(drainingPort), async (connection) => {
        connection.send(upgradeRequest('/refused', 'websocket'));
        await connection.untilResponses(1);
        const closing = draining.dataplane.close();
        // The drain deadline is 10 s and the idle timeout a minute: only the drain closes it this soon.
        await connection.untilClosed(5_000);
        await closing;
      });
    } finally {
      await draining.dataplane.close();
    }
  });

  it('a tunnel with no byte either way is closed after --tunnel-idle-timeout', async () => {
    const TUNNEL_IDLE_MS = 500;
    const tunnelPort = await freePort();
    const gateway = testDataplane({ frontDoor: { tunnelIdleTimeoutMs: TUNNEL_IDLE_MS } });
    await gateway.dataplane.apply('v1', {
      listeners: [listener(tunnelPort, [scope('http', null, [['*', [route('app', { path: prefix('/') }, forwardTo('svc/app'))]]])])],
      backends: { 'svc/app': backend('svc/app', [app.endpoint]) },
    });
    try {
      await usingConnection(() => RawConnection.open(tunnelPort), async (connection) => {
        connection.send(upgradeRequest('/ws', 'websocket', 'X-Answer: 101\r\n') + 'ping');
        await connection.until((text) => text.includes('echo:ping'));
        const quietSince = Date.now();
        await connection.untilClosed(TUNNEL_IDLE_MS * 10);
        expect(Date.now() - quietSince).toBeGreaterThanOrEqual(TUNNEL_IDLE_MS - 100);
      });
    } finally {
      await gateway.dataplane.close();
    }
  });

  it('are closed by the idle timeout when nothing follows the refused upgrade', async () => {
    await usingConnection(() => RawConnection.open(port), async (connection) => {
      connection.send(upgradeRequest('/refused', 'websocket'));
      await connection.untilResponses(1);
      await expectClosedByIdleTimeout(connection);
      expect(connection.statuses()).toEqual([200]);
    });
  });
});
