// The admin API's own bounds, over real sockets: connections beyond ADMIN_MAX_CONNECTIONS are
// closed at once (the process's descriptors are the dataplane's too), and room comes back as
// connections close.
import { afterEach, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import net from 'node:net';
import { Registry } from 'prom-client';
import { ADMIN_MAX_CONNECTIONS, startAdminServer } from '../../cmd/admin.ts';
import { freePort } from '../support/sluice-process.ts';

/** A raw connection: resolves once connected; `closed` turns true when the server closes it. */
function connect(port: number): Promise<{ socket: net.Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const socket = net.connect(port, '127.0.0.1', () => resolve({ socket, closed: () => closed }));
    socket.on('close', () => (closed = true));
    socket.on('error', (error) => (closed ? undefined : reject(error)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('admin API bounds', () => {
  let app: FastifyInstance | undefined;
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await app?.close();
  });

  it(`holds at most ${ADMIN_MAX_CONNECTIONS} connections: one more is closed at once, the ones held still answer, and a closed one makes room`, async () => {
    const port = await freePort();
    app = await startAdminServer(`127.0.0.1:${port}`, { ready: () => false, objects: () => [], ir: () => null }, new Registry());
    const held = await Promise.all(Array.from({ length: ADMIN_MAX_CONNECTIONS }, () => connect(port)));
    sockets.push(...held.map((h) => h.socket));
    const extra = await connect(port);
    sockets.push(extra.socket);
    for (let i = 0; i < 100 && !extra.closed(); i++) await sleep(20);
    expect(extra.closed()).toBe(true);
    expect(held.filter((h) => h.closed())).toEqual([]);
    // A held one is served.
    const answer = new Promise<string>((resolve) => held[0]!.socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    held[0]!.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await answer).toMatch(/^HTTP\/1\.1 200 /);
    // Room again once one closes.
    held[1]!.socket.destroy();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0);
      if (status !== 200) await sleep(20);
    }
    expect(status).toBe(200);
  });
});
