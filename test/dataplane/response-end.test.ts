// How an upstream response of known length reaches the client: its last chunk goes out with
// end() (upstream/forward.ts responseData), a small one in the same write as the head (as a latin1
// string, ONE_WRITE_MAX_BYTES). Checked on real sockets against a node:http upstream that writes
// its body in pieces, answers HEAD, dies halfway through a body, and sends every byte value.

import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ONE_WRITE_MAX_BYTES } from '../../dataplane/upstream/forward.ts';
import { freePort } from '../support/ports.ts';
import { testDataplane, type TestDataplane } from './support/harness.ts';
import { getLatin1 as get } from './support/latin1-get.ts';
import { backend, forwardTo, prefix, route, singleHostIR } from './support/ir.ts';

const PIECES = ['first piece, ', 'second piece, ', 'the last piece'];
const WHOLE = PIECES.join('');

function bytes(n: number): Buffer {
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = i % 256;
  return body;
}

/** One GET on a raw socket: everything the gateway sent, as bytes, up to the announced length. */
function rawGet(port: number, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nhost: example.com\r\n\r\n`));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      const headEnd = all.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(all.subarray(0, Math.max(headEnd, 0)).toString('latin1'));
      if (headEnd >= 0 && length && all.length >= headEnd + 4 + Number(length[1])) {
        socket.destroy();
        resolve(all);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed before the whole response')));
  });
}

describe('upstream responses of known length', () => {
  let upstream: http.Server;
  let port: number;
  let harness: TestDataplane;

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      req.resume();
      if (req.url === '/pieces') {
        // Three writes apart in time: the client must get every piece, the last one too.
        res.writeHead(200, { 'content-length': String(Buffer.byteLength(WHOLE)) });
        res.write(PIECES[0]);
        setTimeout(() => res.write(PIECES[1]), 20);
        setTimeout(() => res.end(PIECES[2]), 40);
      } else if (req.url === '/head') {
        res.writeHead(200, { 'content-length': '1000' });
        res.end();
      } else if (req.url === '/dies') {
        // 100 bytes announced, 60 sent, then the connection is cut.
        res.writeHead(200, { 'content-length': '100' });
        res.write('x'.repeat(60));
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (req.url?.startsWith('/bytes/')) {
        // Every byte value in turn (0x00-0xff: not UTF-8, not ASCII), n of them, in one write.
        const body = bytes(Number(req.url.slice('/bytes/'.length)));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
        res.end(body);
      } else res.end('small');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    port = await freePort();
    harness = testDataplane();
    const ir = singleHostIR(port, [route('all', { path: prefix('/') }, forwardTo('svc/up'))], [backend('svc/up', [{ address: '127.0.0.1', port: upstreamPort }])]);
    expect((await harness.dataplane.apply('v1', ir)).listeners[0]?.ok).toBe(true);
  });

  afterAll(async () => {
    await harness.dataplane.close();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('relays a body written in pieces whole, and keeps the connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(port, '/pieces', agent);
      expect(first).toMatchObject({ status: 200, body: WHOLE });
      expect(first.headers['content-length']).toBe(String(Buffer.byteLength(WHOLE)));
      const small = await get(port, '/small', agent);
      expect(small.body).toBe('small');
      expect(small.socket).toBe(first.socket);
    } finally {
      agent.destroy();
    }
  });

  it('answers HEAD with the announced length and no body, and the connection serves on', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const head = await get(port, '/head', agent, 'HEAD');
      expect(head).toMatchObject({ status: 200, body: '' });
      expect(head.headers['content-length']).toBe('1000');
      const next = await get(port, '/small', agent);
      expect(next.body).toBe('small');
      expect(next.socket).toBe(head.socket);
    } finally {
      agent.destroy();
    }
  });

  it('cuts the client off when the upstream dies before the announced end (never a complete-looking answer)', async () => {
    const agent = new http.Agent({ keepAlive: false });
    try {
      await expect(get(port, '/dies', agent)).rejects.toThrow();
    } finally {
      agent.destroy();
    }
  });

  it('relays every byte value exactly, bodies in the head\'s write and larger ones alike', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let socket: Socket | null = null;
      for (const n of [1, 255, 256, ONE_WRITE_MAX_BYTES, ONE_WRITE_MAX_BYTES + 1, 70_000]) {
        const answer = await get(port, `/bytes/${n}`, agent);
        expect(answer.status).toBe(200);
        expect(answer.headers['content-length']).toBe(String(n));
        expect(Buffer.from(answer.body, 'latin1').equals(bytes(n))).toBe(true);
        // The connection serves on after each: the head said the length the body then had.
        if (socket !== null) expect(answer.socket).toBe(socket);
        socket = answer.socket;
      }
    } finally {
      agent.destroy();
    }
  });

  it('sends the upstream head and a small body as one message: the bytes after the head are the body, nothing between or after', async () => {
    const n = 200;
    const raw = await rawGet(port, `/bytes/${n}`);
    const headEnd = raw.indexOf('\r\n\r\n') + 4;
    const head = raw.subarray(0, headEnd).toString('latin1');
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toMatch(/\r\ncontent-type: application\/octet-stream\r\n/i);
    expect(head).toMatch(/\r\ncontent-length: 200\r\n/i);
    expect(head).not.toMatch(/transfer-encoding/i);
    expect(raw.length).toBe(headEnd + n);
    expect(raw.subarray(headEnd).equals(bytes(n))).toBe(true);
  });
});
