// The plain HTTP/1.1 upstream pool (dataplane/upstream/client-pool.ts) against a real node:http
// server: as many connections as requests at once and no more, idle ones reused, a refused
// connection an error of that request only, close waiting for what is under way, destroy cutting it.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ClientPool } from '../../dataplane/upstream/client-pool.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

interface Backend {
  server: Server;
  port: number;
  connections: Set<Socket>;
  /** Every connection ever accepted. */
  accepted: number;
  /** Answers held back by `/hold` until release(). */
  release(): void;
  close(): Promise<void>;
}

async function startBackend(port = 0): Promise<Backend> {
  const held: ServerResponse[] = [];
  const connections = new Set<Socket>();
  const backend = { accepted: 0 } as Backend;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.url === '/hold') held.push(res);
    else res.end(`port ${(req.socket.remotePort ?? 0).toString()}`);
  });
  server.on('connection', (socket: Socket) => {
    backend.accepted++;
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return Object.assign(backend, {
    server,
    port: (server.address() as AddressInfo).port,
    connections,
    release: () => {
      for (const res of held.splice(0)) res.end('released');
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

const OPTIONS = { connectTimeout: 2000, headersTimeout: 0, bodyTimeout: 0 };

async function get(pool: ClientPool, path: string): Promise<{ status: number; body: string }> {
  const res = await pool.request({ path, method: 'GET', headers: { host: 'backend' } });
  return { status: res.statusCode, body: await res.body.text() };
}

describe('ClientPool (plain HTTP/1.1 upstreams)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('opens one connection per concurrent request and reuses idle ones afterwards', async () => {
    const backend = await startBackend();
    cleanups.push(() => backend.close());
    const pool = new ClientPool(`http://127.0.0.1:${backend.port.toString()}`, OPTIONS);
    cleanups.push(() => pool.destroy());

    const held = Array.from({ length: 5 }, () => get(pool, '/hold'));
    await waitFor('5 connections', () => backend.accepted === 5 || undefined);
    backend.release();
    expect((await Promise.all(held)).map((r) => r.body)).toEqual(Array(5).fill('released'));

    // A client is idle again once undici has said so ('drain', a microtask after the response
    // ended): the request right after may open one more connection, as with undici's Pool.
    await get(pool, '/');
    const open = backend.accepted;
    expect(open).toBeLessThanOrEqual(6);
    // Sequential requests now: all on connections made before.
    for (let i = 0; i < 20; i++) expect((await get(pool, '/')).status).toBe(200);
    expect(backend.accepted).toBe(open);
    // Concurrency again, up to what was open before: no new connection.
    const replies = await Promise.all(Array.from({ length: 5 }, () => get(pool, '/')));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(backend.accepted).toBe(open);
  });

  it('fails a request whose connection is refused, and connects once the endpoint listens', async () => {
    const port = await freePort();
    const pool = new ClientPool(`http://127.0.0.1:${port.toString()}`, OPTIONS);
    cleanups.push(() => pool.destroy());
    await expect(get(pool, '/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const backend = await startBackend(port);
    cleanups.push(() => backend.close());
    expect((await get(pool, '/')).status).toBe(200);
    expect(backend.accepted).toBe(1);
  });

  it('close waits for the requests under way and refuses new ones; destroy cuts them', async () => {
    const backend = await startBackend();
    cleanups.push(() => backend.close());
    const pool = new ClientPool(`http://127.0.0.1:${backend.port.toString()}`, OPTIONS);
    const held = get(pool, '/hold');
    await waitFor('1 connection', () => backend.accepted === 1 || undefined);
    let closed = false;
    const closing = pool.close().then(() => (closed = true));
    await expect(get(pool, '/')).rejects.toMatchObject({ name: 'ClientClosedError' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    backend.release();
    expect((await held).body).toBe('released');
    await closing;
    await waitFor('connections closed', () => backend.connections.size === 0 || undefined);

    const other = new ClientPool(`http://127.0.0.1:${backend.port.toString()}`, OPTIONS);
    const cut = get(other, '/hold');
    await waitFor('2 connections', () => backend.accepted === 2 || undefined);
    await other.destroy();
    await expect(cut).rejects.toBeDefined();
  });
});
