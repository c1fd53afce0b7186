// Review s9b: cleartext HTTP/1.1 upstreams go through ClientStack (dataplane/upstream/pools.ts,
// 93e1084) instead of undici's Pool, and small bodies leave with end(string, 'latin1') (3b9b0cb).
// Hostile upstreams on raw sockets, through a real in-process dataplane: connections closed right
// after an answer (FIN without `Connection: close`, and with it), 204/304 heads that announce a
// length, chunked bodies with trailers, retries and mirrors through the stack, an endpoint removed
// by a reload with a request in flight (its sockets must be closed, the request must finish), and
// an endpoint that vanishes and comes back.

import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Route } from '../../ir/types.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { getLatin1 as get } from './support/latin1-get.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';

/** A raw HTTP/1.1 upstream: every answer written byte for byte; counts requests per path and open sockets. */
interface RawUpstream {
  port: number;
  seen: Map<string, number>;
  open(): number;
  release(): void;
  stop(): Promise<void>;
}

async function rawUpstream(port = 0): Promise<RawUpstream> {
  const seen = new Map<string, number>();
  const sockets = new Set<Socket>();
  let held: (() => void)[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (data: Buffer) => {
      buffered += data.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const path = head.split(' ')[1] ?? '/';
        const count = (seen.get(path) ?? 0) + 1;
        seen.set(path, count);
        answer(socket, path, count, (fn) => held.push(fn));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    open: () => sockets.size,
    release: () => {
      for (const fn of held) fn();
      held = [];
    },
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function answer(socket: Socket, path: string, count: number, hold: (fn: () => void) => void): void {
  const ok = (body: string, extra = ''): void => void socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`);
  if (path === '/fin') {
    // Keep-alive as far as the head says, then the upstream closes at once (an idle timeout of 0).
    ok('fin');
    socket.end();
  } else if (path === '/close') {
    ok('closed', 'connection: close\r\n');
    socket.end();
  } else if (path === '/204') socket.write('HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n');
  else if (path === '/304') socket.write('HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\netag: "v1"\r\n\r\n');
  else if (path === '/chunked') socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 42\r\n\r\n');
  else if (path === '/flaky') {
    // The first answer is a 503 (retried by the route's policy on the same stack), then 200.
    if (count === 1) socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy');
    else ok('second');
  } else if (path === '/hold') hold(() => ok('held'));
  else ok(`ok ${path}`);
}

describe('review s9b: ClientStack upstreams against hostile backends', () => {
  let up: RawUpstream;
  let port: number;
  let harness: TestDataplane;
  let routes: Route[];

  beforeAll(async () => {
    up = await rawUpstream();
    port = await freePort();
    harness = testDataplane();
    routes = [
      { ...route('flaky', { path: prefix('/flaky') }, forwardTo('svc/up')), retry: { codes: [503], attempts: 1, backoffMs: 0 } },
      route('mirrored', { path: prefix('/mirrored') }, forwardTo('svc/up'), [{ type: 'RequestMirror', backend: 'svc/up', percent: 100 }]),
      route('all', { path: prefix('/') }, forwardTo('svc/up')),
    ];
    const ir = singleHostIR(port, routes, [backend('svc/up', [{ address: '127.0.0.1', port: up.port }])]);
    expect((await harness.dataplane.apply('v1', ir)).listeners[0]?.ok).toBe(true);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    await up.stop();
  });

  it('an upstream that closes each connection right after its answer (FIN, no Connection: close): every request answered', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const statuses: string[] = [];
      for (let i = 0; i < 40; i++) {
        // Interleaved with answers on kept connections: a closed one must never be handed a request.
        const a = await get(port, i % 2 === 0 ? '/fin' : `/ok${i}`, agent);
        statuses.push(`${a.status} ${a.body}`);
      }
      expect(statuses.filter((s) => !s.startsWith('200 '))).toEqual([]);
      expect(statuses.filter((s) => s === '200 fin')).toHaveLength(20);
    } finally {
      agent.destroy();
    }
  });

  it('Connection: close answers, sequential and concurrent: every request answered, no socket left open upstream', async () => {
    for (let i = 0; i < 20; i++) expect(await get(port, '/close')).toMatchObject({ status: 200, body: 'closed' });
    const concurrent = await Promise.all(Array.from({ length: 30 }, () => get(port, '/close')));
    expect(concurrent.map((a) => a.status)).toEqual(new Array(30).fill(200));
    await waitFor('upstream sockets of /close answers closed', () => (up.open() <= 2 ? true : undefined), 5_000);
  });

  it('204 and 304 heads that announce a length: no body, the client connection serves on', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const noContent = await get(port, '/204', agent);
      expect({ status: noContent.status, body: noContent.body }).toEqual({ status: 204, body: '' });
      const notModified = await get(port, '/304', agent);
      expect({ status: notModified.status, body: notModified.body, etag: notModified.headers.etag }).toEqual({ status: 304, body: '', etag: '"v1"' });
      const next = await get(port, '/after', agent);
      expect(next).toMatchObject({ status: 200, body: 'ok /after' });
      expect(next.socket).toBe(noContent.socket);
    } finally {
      agent.destroy();
    }
  });

  it('a chunked answer with a trailer reaches an HTTP/1.1 client whole, trailer included', async () => {
    const answer = await get(port, '/chunked');
    expect({ status: answer.status, body: answer.body, checksum: answer.trailers['x-checksum'] }).toEqual({ status: 200, body: 'hello world', checksum: '42' });
  });

  it('a retry (503 then 200) and a mirror go through the same stack', async () => {
    expect(await get(port, '/flaky')).toMatchObject({ status: 200, body: 'second' });
    expect(up.seen.get('/flaky')).toBe(2);
    expect(await get(port, '/mirrored')).toMatchObject({ status: 200, body: 'ok /mirrored' });
    await waitFor('the mirror copy', () => (up.seen.get('/mirrored') === 2 ? true : undefined), 5_000);
  });

  it('a request held upstream never holds another: the next one gets its own connection', async () => {
    const heldBefore = up.seen.get('/hold') ?? 0;
    const held = get(port, '/hold');
    await waitFor('the held request upstream', () => (up.seen.get('/hold') === heldBefore + 1 ? true : undefined), 5_000);
    // Answered while the first still waits (queued behind it on one connection, it would wait too).
    const quick = await Promise.race([get(port, '/quick'), new Promise<'waited'>((resolve) => setTimeout(resolve, 3_000, 'waited'))]);
    expect(quick).toMatchObject({ status: 200, body: 'ok /quick' });
    up.release();
    expect(await held).toMatchObject({ status: 200, body: 'held' });
  });

  it('an endpoint removed by a reload: its request in flight finishes, then its sockets are closed', async () => {
    const other = await rawUpstream();
    try {
      const warm = await Promise.all(Array.from({ length: 5 }, (_, i) => get(port, `/warm${i}`)));
      expect(warm.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
      const heldBefore = up.seen.get('/hold') ?? 0;
      const inFlight = get(port, '/hold');
      await waitFor('the held request upstream', () => (up.seen.get('/hold') === heldBefore + 1 ? true : undefined), 5_000);
      expect(up.open()).toBeGreaterThan(0);
      const ir = singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/other'))], [backend('svc/other', [{ address: '127.0.0.1', port: other.port }])]);
      expect((await harness.dataplane.apply('v2', ir)).listeners[0]?.ok).toBe(true);
      expect(await get(port, '/now')).toMatchObject({ status: 200, body: 'ok /now' });
      expect(other.seen.get('/now')).toBe(1);
      // The removed endpoint's idle connections go at once (within 2.5 s: before undici's own 4 s
      // keep-alive timeout or the 10 s drain bound would close them); the one holding a request stays for it.
      await waitFor('idle sockets of the removed endpoint closed', () => (up.open() === 1 ? true : undefined), 2_500);
      up.release();
      expect(await inFlight).toMatchObject({ status: 200, body: 'held' });
      await waitFor('every socket of the removed endpoint closed', () => (up.open() === 0 ? true : undefined), 2_500);
    } finally {
      const ir = singleHostIR(port, routes, [backend('svc/up', [{ address: '127.0.0.1', port: up.port }])]);
      await harness.dataplane.apply('v3', ir);
      await other.stop();
    }
  });

  it('an endpoint that vanishes and comes back on the same port is answered again', async () => {
    const gone = await rawUpstream();
    const goneAt = gone.port;
    const ir = (version: string) => harness.dataplane.apply(version, singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/gone'))], [backend('svc/gone', [{ address: '127.0.0.1', port: goneAt }])]));
    let back: RawUpstream | null = null;
    try {
      expect((await ir('v4')).listeners[0]?.ok).toBe(true);
      const before = await Promise.all(Array.from({ length: 10 }, () => get(port, '/x')));
      expect(before.map((a) => a.status)).toEqual(new Array(10).fill(200));
      await gone.stop();
      const meanwhile = await Promise.all(Array.from({ length: 10 }, () => get(port, '/x')));
      // Refused connections: 502 (no retry policy), never a hang.
      expect(meanwhile.every((a) => a.status >= 500)).toBe(true);
      back = await rawUpstream(goneAt);
      const after = await Promise.all(Array.from({ length: 10 }, () => get(port, '/x')));
      expect(after.map((a) => a.status)).toEqual(new Array(10).fill(200));
    } finally {
      await back?.stop();
      const restore = singleHostIR(port, routes, [backend('svc/up', [{ address: '127.0.0.1', port: up.port }])]);
      await harness.dataplane.apply('v5', restore);
    }
  });
});
