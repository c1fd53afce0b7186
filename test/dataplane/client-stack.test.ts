// A cleartext HTTP/1.1 endpoint's connections (dataplane/upstream/pools.ts ClientStack): one
// connection per concurrent request, an idle one reused (the last freed), none reused after it
// failed, closing lets requests under way finish. On real sockets against a node:http upstream
// that counts its connections and says which one answered.

import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request } from 'undici';
import { ClientStack } from '../../dataplane/upstream/pools.ts';
import { freePort } from '../support/ports.ts';

interface Upstream {
  server: http.Server;
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Requests held until released (`/hold`). */
  release(): void;
}

async function upstream(): Promise<Upstream> {
  let accepted = 0;
  let held: (() => void)[] = [];
  const ids = new WeakMap<net.Socket, number>();
  const server = http.createServer((req, res) => {
    req.resume();
    const answer = (): void => {
      res.writeHead(200, { 'x-connection': String(ids.get(req.socket)) });
      res.end(req.url);
    };
    if (req.url === '/hold') held.push(answer);
    else answer();
  });
  server.on('connection', (socket: net.Socket) => ids.set(socket, ++accepted));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    release: () => {
      for (const answer of held) answer();
      held = [];
    },
  };
}

async function get(stack: ClientStack, path: string): Promise<{ status: number; connection: string; body: string }> {
  const { statusCode, headers, body } = await request(`http://example.com${path}`, { dispatcher: stack });
  return { status: statusCode, connection: String(headers['x-connection']), body: await body.text() };
}

const OPTIONS = { connectTimeout: 2_000, headersTimeout: 0, bodyTimeout: 0 };

describe('ClientStack', () => {
  let up: Upstream;

  beforeAll(async () => {
    up = await upstream();
  });

  afterAll(async () => {
    up.server.closeAllConnections();
    await new Promise<void>((resolve) => up.server.close(() => resolve()));
  });

  it('opens a connection per concurrent request, then serves on the idle ones, the last freed first', async () => {
    const stack = new ClientStack(`http://127.0.0.1:${up.port}`, OPTIONS);
    const before = up.accepted();
    try {
      const held = [get(stack, '/hold'), get(stack, '/hold'), get(stack, '/hold')];
      // Bounded, and saying what the requests came to: a CI run once waited out jest's 60 s here.
      for (const deadline = Date.now() + 15_000; up.accepted() - before < 3; ) {
        if (Date.now() > deadline) {
          const settled = await Promise.race([Promise.allSettled(held), new Promise((resolve) => setTimeout(() => resolve('pending'), 100))]);
          throw new Error(`${up.accepted() - before} of 3 connections after 15 s (stack size ${stack.size}); requests: ${JSON.stringify(settled, (_k, v) => (v instanceof Error ? `${v.name}: ${v.message}` : v))}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      up.release();
      const answers = await Promise.all(held);
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      expect(new Set(answers.map((a) => a.connection)).size).toBe(3);
      expect(stack.size).toBe(3);
      // One at a time now (undici frees a connection a loop turn after its answer: setImmediate):
      // always the one freed last, kept alive, no new one.
      const turn = async (): Promise<void> => {
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setImmediate(resolve));
      };
      await turn();
      const again = [];
      for (const path of ['/a', '/b', '/c']) {
        again.push(await get(stack, path));
        await turn();
      }
      expect(again.map((a) => a.body)).toEqual(['/a', '/b', '/c']);
      expect(new Set(again.map((a) => a.connection)).size).toBe(1);
      expect({ accepted: up.accepted() - before, size: stack.size }).toEqual({ accepted: 3, size: 3 });
    } finally {
      await stack.close();
    }
  });

  it('retires a client whose connection failed: none is kept for the next request', async () => {
    // A port nobody listens on: refused at once.
    const deadPort = await freePort();
    const dead = new ClientStack(`http://127.0.0.1:${deadPort}`, OPTIONS);
    try {
      await expect(get(dead, '/x')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(dead.size).toBe(0);
      await expect(get(dead, '/y')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(dead.size).toBe(0);
    } finally {
      await dead.close();
    }
  });

  it('close() lets a request under way finish, then refuses new ones', async () => {
    const stack = new ClientStack(`http://127.0.0.1:${up.port}`, OPTIONS);
    const before = up.accepted();
    const held = get(stack, '/hold');
    while (up.accepted() - before < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    const closed = stack.close();
    await expect(get(stack, '/late')).rejects.toMatchObject({ name: 'ClientClosedError' });
    up.release();
    expect((await held).status).toBe(200);
    await closed;
  });

  it('destroy() ends requests under way with the error', async () => {
    const stack = new ClientStack(`http://127.0.0.1:${up.port}`, OPTIONS);
    const before = up.accepted();
    const held = get(stack, '/hold');
    while (up.accepted() - before < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    await stack.destroy(new Error('going away'));
    await expect(held).rejects.toThrow('going away');
    up.release();
  });
});
