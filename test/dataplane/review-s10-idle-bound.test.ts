// Review (session 10): the backend idle bound (--backend-idle-timeout, here 1 s) on coarse ticks
// (dataplane/upstream/idle-watch.ts) through a real `sluice run`, single process and --workers 2:
// long-lived legitimate exchanges longer than the bound are not cut — server-sent events with a
// heartbeat more often than the bound, a long poll shorter than the bound, a WebSocket tunnel quiet
// for longer than the bound, an upload slower than the bound to a backend that answered its head
// at once — and a backend silent past the bound gets one 504, logged once.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../e2e/backends.ts';
import { runServing, type SluiceProcess } from '../support/sluice-process.ts';

const BOUND_MS = 1_000;
const DUPLEX_BYTES = 4 * 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A backend whose answers take their time, by path. */
function startBackend(): Promise<{ server: http.Server; port: number; tunnels: Set<net.Socket> }> {
  const tunnels = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (req.url === '/sse') {
      // 3.2 s of events, one every 400 ms.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const timer = setInterval(() => {
        res.write(`data: ${++n}\n\n`);
        if (n === 8) {
          clearInterval(timer);
          res.end();
        }
      }, 400);
      res.on('close', () => clearInterval(timer));
    } else if (req.url === '/poll') {
      setTimeout(() => res.end('polled'), BOUND_MS * 0.6);
    } else if (req.url === '/upload') {
      // The head at once, the rest once the whole body came.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders();
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => res.end(`got ${bytes}`));
    } else if (req.url === '/duplex') {
      // 4 MiB at once (more than the sockets buffer while the client does not read), the end once
      // the whole request body came.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(DUPLEX_BYTES, 0x61));
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => res.end(`got ${bytes}`));
    } else if (req.url === '/silent') {
      // Never answers.
    } else res.end('ok');
  });
  server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    socket.on('data', (chunk: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), chunk])));
    socket.on('error', () => socket.destroy());
    tunnels.add(socket);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port, tunnels })));
}

/** Sends `request`, then each of `later` after `gapMs`; resolves with everything read until the close (or `withinMs`). */
async function exchange(port: number, request: string, later: string[] = [], gapMs = 0, withinMs = 8_000): Promise<{ text: string; afterMs: number; closed: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const start = performance.now();
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  const closed = new Promise<boolean>((resolve) => {
    socket.once('close', () => resolve(true));
    setTimeout(() => resolve(false), withinMs);
  });
  socket.write(request);
  for (const part of later) {
    await sleep(gapMs);
    if (!socket.destroyed) socket.write(part);
  }
  const didClose = await closed;
  socket.destroy();
  return { text, afterMs: performance.now() - start, closed: didClose };
}

for (const workers of ['1', '2']) {
  describe(`the backend idle bound (1 s) does not cut long legitimate exchanges (sluice run --workers ${workers})`, () => {
    let dir: string;
    let sluice: SluiceProcess;
    let backend: Awaited<ReturnType<typeof startBackend>>;
    let port: number;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sluice-review-s10-idle-'));
      backend = await startBackend();
      const routes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`;
      writeFileSync(join(dir, 'all.yaml'), [httpGatewayYaml(80), serviceYaml('app', backend), routes].join('---\n'));
      ({ sluice, port } = await runServing(dir, ['--backend-idle-timeout', String(BOUND_MS), '--workers', workers]));
    }, 60_000);

    afterAll(async () => {
      await sluice?.stop();
      backend?.server.closeAllConnections();
      for (const socket of backend?.tunnels ?? []) socket.destroy();
      backend?.server.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('server-sent events for 3.2 s, one every 400 ms: every event relayed, the stream ends as the backend ends it', async () => {
      const { text, closed } = await exchange(port, 'GET /sse HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
      expect(closed).toBe(true);
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      expect(text.match(/data: \d+/g)).toEqual(Array.from({ length: 8 }, (_, i) => `data: ${i + 1}`));
      expect(text.endsWith('0\r\n\r\n')).toBe(true); // chunked, ended: not cut
    });

    it('a long poll answered after 0.6 of the bound, five in a row on one connection: all answered', async () => {
      const request = 'GET /poll HTTP/1.1\r\nhost: a\r\n\r\n';
      const { text } = await exchange(port, request, [request, request, request, `GET /poll HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n`], BOUND_MS * 0.7);
      expect(text.match(/polled/g)).toHaveLength(5);
    });

    it('an upload slower than the bound to a backend that sent its head at once is answered whole', async () => {
      const { text } = await exchange(port, 'POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n', ['5\r\nhello\r\n', '5\r\nhello\r\n', '5\r\nhello\r\n', '5\r\nhello\r\n', '5\r\nhello\r\n0\r\n\r\n'], 500);
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      expect(text).toMatch(/got 25/);
    });

    it('full duplex: a response paused by its reader, then read, while the upload goes on past the bound: relayed whole, not cut', async () => {
      // The response's drain must not count the backend as silent while the client is still
      // uploading (the backend waits for the body's end): held by the upload, not only by the pause.
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.pause();
      let received = 0;
      let first = '';
      let tail = '';
      let closed = false;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (first === '') first = chunk.subarray(0, 64).toString('latin1');
        tail = (tail + chunk.subarray(Math.max(0, chunk.length - 64)).toString('latin1')).slice(-64);
      });
      socket.on('close', () => (closed = true));
      socket.write('POST /duplex HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n');
      // Paused for 1.5 bounds while uploading, then reading while uploading for 2.5 bounds more.
      for (let i = 0; i < 8; i++) {
        await sleep(500);
        if (i === 3) socket.resume();
        socket.write('5\r\nhello\r\n');
      }
      socket.write('0\r\n\r\n');
      for (const deadline = Date.now() + 8_000; !closed && Date.now() < deadline; ) await sleep(50);
      socket.destroy();
      expect(first).toMatch(/^HTTP\/1\.1 200 /);
      expect(received).toBeGreaterThan(DUPLEX_BYTES);
      expect(tail).toMatch(/got 40\r\n0\r\n\r\n$/);
    }, 20_000);

    it('a WebSocket tunnel quiet for twice the bound still carries bytes both ways', async () => {
      const { text } = await exchange(port, 'GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n', ['ping'], BOUND_MS * 2, BOUND_MS * 3);
      expect(text).toMatch(/^HTTP\/1\.1 101 /);
      expect(text.endsWith('echo:ping')).toBe(true);
    });

    it('a backend silent past the bound: one 504 after the bound, one log line', async () => {
      const before = sluice.logs().split('\n').filter((line) => line.includes('/silent')).length;
      const { text, afterMs } = await exchange(port, 'GET /silent HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
      expect(text).toMatch(/^HTTP\/1\.1 504 /);
      expect(text.match(/HTTP\/1\.1/g)).toHaveLength(1);
      expect(afterMs).toBeGreaterThanOrEqual(BOUND_MS - 50);
      await sleep(BOUND_MS);
      const lines = sluice.logs().split('\n').filter((line) => line.includes('/silent'));
      expect(lines.length - before).toBeLessThanOrEqual(2); // the failure, and the access line if any
    });
  });
}
