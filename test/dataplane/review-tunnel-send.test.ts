// Review of --response-send-timeout on a WebSocket tunnel: bytes relayed to a client through an
// upgraded connection wait for it like a response's do (nginx applies send_timeout to the client
// side of an upgraded connection too). A client that never reads but sends a byte now and then
// keeps the tunnel's idle timer (--tunnel-idle-timeout, 5 min) from ever firing, so the tunnel,
// its upstream connection and their buffers are held for ever. On a real `sluice run`.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { serviceYaml } from '../e2e/backends.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';

const SEND_TIMEOUT_MS = 1000;
const SLACK_MS = 5000;

/** Answers every upgrade 101, then sends 64 KiB chunks as fast as the gateway takes them; reads and drops what comes. */
async function startFloodingWebSocket(): Promise<{ server: Server; port: number; closed: Promise<void> }> {
  let tunnelClosed!: () => void;
  const closed = new Promise<void>((resolve) => (tunnelClosed = resolve));
  const server = createServer((_req, res) => res.writeHead(426).end());
  const chunk = Buffer.alloc(64 * 1024, 120);
  server.on('upgrade', (_req, socket: Socket) => {
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('close', () => tunnelClosed());
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    const pump = (): void => {
      while (!socket.destroyed) if (!socket.write(chunk)) return void socket.once('drain', pump);
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, closed };
}

describe('review: response send timeout on a WebSocket tunnel', () => {
  let gateway: H2Gateway;
  let backend: Awaited<ReturnType<typeof startFloodingWebSocket>>;

  beforeAll(async () => {
    backend = await startFloodingWebSocket();
    const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ws, namespace: default}
spec:
  parentRefs: [{name: h2}]
  rules: [{matches: [{path: {type: PathPrefix, value: /ws}}], backendRefs: [{name: ws, port: 80}]}]
---
${serviceYaml('ws', backend)}`;
    gateway = await startH2Gateway(['--response-send-timeout', String(SEND_TIMEOUT_MS)], route);
  });

  afterAll(async () => {
    await gateway?.stop();
    backend?.server.closeAllConnections();
    await new Promise<void>((resolve) => backend?.server.close(() => resolve()));
  });

  it('a client that stops reading the tunnel but keeps sending is cut after the timeout, with the upstream', async () => {
    const socket = net.connect(gateway.plainPort, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('GET /ws HTTP/1.1\r\nHost: h2.sluice.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    // The 101 and the first bytes relayed, then it never reads again: the gateway's writes are held back.
    const first = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => (socket.pause(), resolve(d.subarray(0, 12).toString('latin1')))));
    expect(first).toBe('HTTP/1.1 101');
    const keepSending = setInterval(() => socket.write('x'), 200);
    try {
      const cut = await Promise.race([backend.closed.then(() => 'cut'), new Promise((r) => setTimeout(r, SEND_TIMEOUT_MS + SLACK_MS + 3000, 'held'))]);
      expect(cut).toBe('cut');
    } finally {
      clearInterval(keepSending);
      socket.destroy();
    }
  }, 30_000);
});
