// Applying versions: hot reload under traffic, listeners that cannot bind, bad content, and
// what is kept (sockets, pools) or released across versions.

import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { HttpIR } from '../../ir/types.ts';
import { podCounts, request } from './support/client.ts';
import { startEchoServer, type EchoServer } from './support/echo-server.ts';
import { freePort, freePorts } from '../support/ports.ts';
import { testDataplane } from './support/harness.ts';
import { backend, forwardTo, listener, prefix, regex, route, scope, singleHostIR, weighted } from './support/ir.ts';
import { waitFor } from '../support/wait.ts';

/**
 * A backend that holds every request until release(): a request the test waits for (arrived) has
 * been routed and is in flight while the test reloads, however slow the machine. (A 150 ms answer
 * after a 50 ms sleep was not: at load 8 the request was routed on the new table.)
 */
async function holdingBackend() {
  const held: http.ServerResponse[] = [];
  let count = 0;
  const server = http.createServer((_req, res) => {
    count++;
    held.push(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    endpoint: { address: '127.0.0.1', port: (server.address() as net.AddressInfo).port },
    /** Resolves once `total` requests have arrived in all. */
    arrived: (total: number) => waitFor(`${total} requests at the backend`, () => (count >= total ? true : undefined)),
    release: () => {
      for (const res of held.splice(0)) res.end('slow done');
    },
  };
}

/** An agent that counts the connections it opens: a reload must not force new ones. */
class CountingAgent extends http.Agent {
  opened = 0;
  override createConnection(...args: Parameters<http.Agent['createConnection']>): Duplex | null | undefined {
    this.opened++;
    return super.createConnection(...args);
  }
}

/** Counts every connection an upstream ever accepts. */
function countConnections(echo: EchoServer): { total: number } {
  const counter = { total: 0 };
  echo.server.on('connection', () => counter.total++);
  return counter;
}

describe('hot reload', () => {
  let a: EchoServer;
  let b: EchoServer;
  let c: EchoServer;

  beforeAll(async () => {
    [a, b, c] = await Promise.all([startEchoServer('a'), startEchoServer('b'), startEchoServer('c')]);
  });

  afterAll(async () => {
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  const splitIR = (port: number, weights: [number, number, number]): HttpIR =>
    singleHostIR(
      port,
      [route('split', { path: prefix('/') }, forwardTo(weighted('svc/a', weights[0]), weighted('svc/b', weights[1]), weighted('svc/c', weights[2])))],
      [backend('svc/a', [a.endpoint]), backend('svc/b', [b.endpoint]), backend('svc/c', [c.endpoint])],
    );

  it('applies 20 versions under keep-alive traffic with zero failed requests, then serves the new weights exactly', async () => {
    const port = await freePort();
    const { dataplane } = testDataplane();
    const upstreamConnections = [a, b, c].map(countConnections);
    const agent = new CountingAgent({ keepAlive: true, maxSockets: 4 });
    try {
      expect((await dataplane.apply('v0', splitIR(port, [1, 1, 1]))).listeners[0].ok).toBe(true);

      let running = true;
      let served = 0;
      const failures: string[] = [];
      const client = async (): Promise<void> => {
        while (running) {
          try {
            const response = await request(port, '/traffic', { agent });
            if (response.status === 200) served++;
            else failures.push(`status ${response.status}`);
          } catch (error) {
            failures.push((error as Error).message);
          }
        }
      };
      const clients = Array.from({ length: 4 }, client);

      for (let version = 1; version <= 20; version++) {
        const weights: [number, number, number] = [(version % 3) + 1, (version % 4) + 1, version % 2];
        const result = await dataplane.apply(`v${version}`, splitIR(port, weights));
        expect(result.listeners).toEqual([{ name: `127.0.0.1:${port}`, ok: true }]);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const servedDuringReloads = served;
      running = false;
      await Promise.all(clients);

      expect(failures).toEqual([]);
      expect(servedDuringReloads).toBeGreaterThan(20);
      expect(dataplane.version).toBe('v20');
      // Last version: weights 3/1/0.
      expect(await podCounts(port, '/after', 400, { agent })).toEqual({ a: 300, b: 100 });
      // The listening socket and the client's keep-alive connections survived every reload...
      expect(agent.opened).toBeLessThanOrEqual(4);
      // ...and so did the upstream pools (a reload opening fresh pools would show up here).
      for (const counter of upstreamConnections) expect(counter.total).toBeLessThanOrEqual(8);
    } finally {
      agent.destroy();
      await dataplane.close();
    }
  });

  it('keeps in-flight requests on the table they started with', async () => {
    const slow = await holdingBackend();
    const port = await freePort();
    const { dataplane } = testDataplane();
    try {
      await dataplane.apply('v1', singleHostIR(port, [route('r', {}, forwardTo('svc/slow'))], [backend('svc/slow', [slow.endpoint])]));
      const inFlight = request(port, '/');
      await slow.arrived(1);
      // v2 drops the slow backend entirely (its pool is released once idle).
      await dataplane.apply('v2', splitIR(port, [1, 0, 0]));
      slow.release();
      expect((await inFlight).body).toBe('slow done');
      expect((await request(port, '/')).echo?.pod).toBe('a');
    } finally {
      slow.release();
      await dataplane.close();
      slow.server.closeAllConnections();
      slow.server.close();
    }
  });

  it('drains in-flight requests on a removed listener and on close()', async () => {
    const slow = await holdingBackend();
    const slowBackend = backend('svc/slow', [slow.endpoint]);
    const [first, second] = await freePorts(2);
    const ir = (ports: number[]): HttpIR => ({
      listeners: ports.map((p) => listener(p, [scope(`l${p}`, null, [['*', [route('r', {}, forwardTo('svc/slow'))]]])])),
      backends: { 'svc/slow': slowBackend },
    });
    const { dataplane } = testDataplane();
    try {
      await dataplane.apply('v1', ir([first, second]));
      const onRemoved = request(first, '/');
      await slow.arrived(1);
      await dataplane.apply('v2', ir([second]));
      slow.release();
      const drained = await onRemoved;
      expect(drained.body).toBe('slow done');
      expect(drained.headers.connection).toBe('close');

      const onClosing = request(second, '/');
      await slow.arrived(2);
      // close() waits for it: answered once closing began.
      const closing = dataplane.close();
      slow.release();
      await closing;
      expect((await onClosing).body).toBe('slow done');
      await expect(request(second, '/')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      slow.release();
      await dataplane.close();
      slow.server.closeAllConnections();
      slow.server.close();
    }
  });

  it('opens added listeners, closes removed ones, and keeps the rest', async () => {
    const [kept, removed, added] = await freePorts(3);
    const { dataplane } = testDataplane();
    const ir = (ports: number[], pod: string): HttpIR => ({
      listeners: ports.map((p) => listener(p, [scope(`l${p}`, null, [['*', [route('r', {}, forwardTo(`svc/${pod}`))]]])])),
      backends: { [`svc/${pod}`]: backend(`svc/${pod}`, [(pod === 'a' ? a : b).endpoint]) },
    });
    const agent = new CountingAgent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await dataplane.apply('v1', ir([kept, removed], 'a'))).listeners.map((l) => l.ok)).toEqual([true, true]);
      expect((await request(kept, '/', { agent })).echo?.pod).toBe('a');

      expect((await dataplane.apply('v2', ir([kept, added], 'b'))).listeners.map((l) => l.ok)).toEqual([true, true]);
      expect((await request(kept, '/', { agent })).echo?.pod).toBe('b');
      expect((await request(added, '/')).echo?.pod).toBe('b');
      await expect(request(removed, '/')).rejects.toThrow(/ECONNREFUSED/);
      expect(agent.opened).toBe(1);
    } finally {
      agent.destroy();
      await dataplane.close();
    }
  });

  it('releases upstream pools no backend uses any more', async () => {
    const port = await freePort();
    const { dataplane } = testDataplane();
    try {
      await dataplane.apply('v1', splitIR(port, [1, 0, 0]));
      expect((await request(port, '/')).echo?.pod).toBe('a');
      expect(a.openConnections()).toBeGreaterThan(0);
      await dataplane.apply('v2', singleHostIR(port, [route('r', {}, forwardTo('svc/b'))], [backend('svc/b', [b.endpoint])]));
      for (let i = 0; i < 100 && a.openConnections() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(a.openConnections()).toBe(0);
      expect((await request(port, '/')).echo?.pod).toBe('b');
    } finally {
      await dataplane.close();
    }
  });
});

describe('apply with bad content', () => {
  let a: EchoServer;

  beforeAll(async () => {
    a = await startEchoServer('a');
  });

  afterAll(async () => {
    await a.close();
  });

  it('reports a listener that cannot bind while the others serve, and binds it on a later apply', async () => {
    const [busyPort, freeOne] = await freePorts(2);
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(busyPort, '127.0.0.1', resolve));
    const { dataplane, registry } = testDataplane();
    const ir: HttpIR = {
      listeners: [busyPort, freeOne].map((p) => listener(p, [scope(`l${p}`, null, [['*', [route('r', {}, forwardTo('svc/a'))]]])])),
      backends: { 'svc/a': backend('svc/a', [a.endpoint]) },
    };
    try {
      const result = await dataplane.apply('v1', ir);
      expect(result.listeners).toEqual([
        { name: `127.0.0.1:${busyPort}`, ok: false, code: 'EADDRINUSE', error: expect.stringContaining('EADDRINUSE') },
        { name: `127.0.0.1:${freeOne}`, ok: true },
      ]);
      expect(dataplane.version).toBe('v1');
      expect((await request(freeOne, '/')).echo?.pod).toBe('a');
      expect(await registry.metrics()).toMatch(new RegExp(`sluice_listener_up\\{listener="127.0.0.1:${busyPort}"\\} 0`));

      await new Promise<void>((resolve) => squatter.close(() => resolve()));
      const retry = await dataplane.apply('v2', ir);
      expect(retry.listeners.map((l) => l.ok)).toEqual([true, true]);
      expect((await request(busyPort, '/')).echo?.pod).toBe('a');
    } finally {
      squatter.close();
      await dataplane.close();
    }
  });

  it('disables a route with an invalid regex, logs it, and keeps the others', async () => {
    const port = await freePort();
    const { dataplane, logs } = testDataplane();
    try {
      const result = await dataplane.apply(
        'v1',
        singleHostIR(port, [route('broken', { path: regex('/(oops') }, forwardTo('svc/a')), route('fine', { path: prefix('/') }, forwardTo('svc/a'))], [backend('svc/a', [a.endpoint])]),
      );
      expect(result.listeners[0].ok).toBe(true);
      expect((await request(port, '/(oops')).status).toBe(200);
      expect(logs.find((line) => line.subject === 'httproute/default/broken/rule/0/match/0')?.msg).toMatch(/invalid regular expression/);
    } finally {
      await dataplane.close();
    }
  });

  it('keeps the last good table when a version cannot be compiled', async () => {
    const port = await freePort();
    const { dataplane, registry } = testDataplane();
    try {
      await dataplane.apply('v1', singleHostIR(port, [route('r', {}, forwardTo('svc/a'))], [backend('svc/a', [a.endpoint])]));
      const broken = singleHostIR(port, [route('r', {}, forwardTo('svc/a'))], [backend('svc/a', [a.endpoint])]);
      (broken.listeners[0].scopes[0].virtualHosts[0].routes[0] as { match: unknown }).match = null;
      const result = await dataplane.apply('v2', broken);
      expect(result.listeners).toEqual([{ name: `127.0.0.1:${port}`, ok: false, error: expect.stringMatching(/^configuration rejected/) }]);
      expect(dataplane.version).toBe('v1');
      expect((await request(port, '/')).echo?.pod).toBe('a');
      expect(await registry.metrics()).toMatch(/sluice_config_applies_total\{result="rejected"\} 1/);
    } finally {
      await dataplane.close();
    }
  });

  it('binds at port + portOffset but redirects to the listener port (a Service maps it, redirectPortOffset 0)', async () => {
    const bound = await freePort();
    const listenerPort = 8080;
    const { dataplane } = testDataplane({ portOffset: bound - listenerPort });
    try {
      const result = await dataplane.apply('v1', singleHostIR(listenerPort, [route('r', {}, { type: 'Redirect', hostname: 'example.com', statusCode: 302 })]));
      expect(result.listeners).toEqual([{ name: `127.0.0.1:${listenerPort}`, ok: true }]);
      const response = await request(bound, '/path?q=1', { host: 'shop.example.com' });
      expect(response.status).toBe(302);
      expect(response.headers.location).toBe('http://example.com:8080/path?q=1');
    } finally {
      await dataplane.close();
    }
  });

  it('with redirectPortOffset (clients reach the bound ports), redirects to the port the client used', async () => {
    const bound = await freePort();
    const listenerPort = 8080;
    const { dataplane } = testDataplane({ portOffset: bound - listenerPort, redirectPortOffset: bound - listenerPort });
    try {
      await dataplane.apply('v1', singleHostIR(listenerPort, [route('r', {}, { type: 'Redirect', hostname: 'example.com', statusCode: 302 })]));
      const response = await request(bound, '/path?q=1', { host: 'shop.example.com' });
      expect(response.status).toBe(302);
      expect(response.headers.location).toBe(`http://example.com:${bound}/path?q=1`);
    } finally {
      await dataplane.close();
    }
  });

  it('refuses to apply after close', async () => {
    const { dataplane } = testDataplane();
    await dataplane.close();
    const result = await dataplane.apply('v1', singleHostIR(await freePort(), []));
    expect(result.listeners[0]).toMatchObject({ ok: false, error: 'the dataplane is closed' });
    expect(dataplane.version).toBeNull();
  });
});
