// A hostile backend's time and size: a real `sluice run` (--backend-idle-timeout 1 s, so the tests
// are short) in front of a scripted backend that answers nothing, sends a head that never ends,
// stops mid-body, drips interim responses or trickles a body for ever, or sends a body far larger
// than the gateway could hold to a client that reads slowly. Each wait is bounded — by the route's
// timeouts when it has them, else by the backend idle bound — with the status the client gets
// (504 before a response started, a cut connection after), and a large body streams with
// backpressure: the gateway's memory stays flat.

import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { RawConnection } from './support/raw-http.ts';
import { ask, connectionOf, head, script, stillServes, untilClosed, useUpstreamAttackGateway, type UpstreamAttackGateway } from './support/upstream-attack-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `text` one byte every `everyMs` until the socket closes. */
function drip(socket: net.Socket, text: string, everyMs: number): void {
  let at = 0;
  const timer = setInterval(() => {
    if (socket.destroyed) clearInterval(timer);
    else socket.write(text[at++ % text.length]!, 'latin1');
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

/** A 504 the gateway wrote itself, the client connection kept. */
function expectGatewayTimeout(answer: { status: number; body: string; closed: boolean }): void {
  expect(answer.status).toBe(504);
  expect(answer.body).toBe('Gateway Timeout\n');
  expect(answer.closed).toBe(false);
}

/** The last 'upstream request failed' log line, parsed. */
function lastFailure(gateway: UpstreamAttackGateway): { backend: string; endpoint: string; status: number; err: { code?: string } } {
  const line = gateway.sluice.logs().split('\n').reverse().find((l) => l.includes('upstream request failed'));
  if (line === undefined) throw new Error('no upstream failure logged');
  return JSON.parse(line) as ReturnType<typeof lastFailure>;
}

describe('a hostile backend, in time', () => {
  const gateway = useUpstreamAttackGateway(['--backend-idle-timeout', '1000', '--request-body-timeout', '2000']);

  it('no answer at all, no route timeout: 504 after the backend idle bound, the upstream connection closed, logged under the backend', async () => {
    script(gateway, 'mute', () => undefined);
    expectGatewayTimeout(await ask(gateway.port, '/s/mute'));
    expect(lastFailure(gateway)).toMatchObject({ status: 504, endpoint: `127.0.0.1:${gateway.hostile.port}`, err: { code: 'UND_ERR_HEADERS_TIMEOUT' } });
    expect(lastFailure(gateway).backend).toContain('hostile');
    const upstream = connectionOf(gateway, 'mute');
    await untilClosed(gateway, upstream);
    await stillServes(gateway, upstream);
  });

  it('a head dripped one byte at a time, never finished: 504 (bytes do not extend the wait for a head)', async () => {
    script(gateway, 'drip-head', (socket) => drip(socket, 'HTTP/1.1 200 OK\r\nx-slow: ' + 'a'.repeat(1_000), 100));
    expectGatewayTimeout(await ask(gateway.port, '/s/drip-head'));
    await untilClosed(gateway, connectionOf(gateway, 'drip-head'));
  });

  it('a 103 every 100 ms for ever: 502 after the tenth (each one restarts undici\'s wait for a head)', async () => {
    script(gateway, 'drip-103', (socket) => {
      const timer = setInterval(() => socket.write(head('HTTP/1.1 103 Early Hints', 'link: </a>')), 100);
      socket.once('close', () => clearInterval(timer));
    });
    const answer = await ask(gateway.port, '/s/drip-103');
    expect(answer.status).toBe(502);
    expect(answer.text).not.toContain('103');
    await untilClosed(gateway, connectionOf(gateway, 'drip-103'));
  });

  it('a backend that never reads the request body: the upload is held back, then cut by --request-body-timeout; memory does not grow', async () => {
    gateway.hostile.stalls.add('noread');
    const TOTAL = 256 * 1024 * 1024;
    const client = net.connect(gateway.port, '127.0.0.1');
    let received = '';
    let closed = false;
    client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    client.on('error', () => undefined);
    client.once('close', () => (closed = true));
    const before = rss(gateway.sluice.pid);
    let sent = 0;
    await new Promise<void>((resolve) => client.once('connect', resolve));
    client.write(`POST /s/noread HTTP/1.1\r\nHost: attack.example.com\r\ncontent-length: ${TOTAL}\r\n\r\n`);
    const block = Buffer.alloc(64 * 1024, 'u');
    // Writes while the gateway takes them; stops when it is held back (or the connection closed).
    const pump = (): void => {
      while (!closed && sent < TOTAL) {
        sent += block.length;
        if (!client.write(block)) return void client.once('drain', pump);
      }
    };
    pump();
    for (let i = 0; i < 100 && !closed; i++) await sleep(100);
    expect(closed).toBe(true);
    expect(sent).toBeLessThan(TOTAL / 4);
    expect(rss(gateway.sluice.pid) - before).toBeLessThan(64 * 1024 * 1024);
    // Closed without an answer (the front door's choice for a stalled body), and the backend
    // request went with it: the backend's connection is closed too.
    expect(received).toBe('');
    const [stalled] = [...gateway.hostile.stalled.keys()];
    expect(stalled).toBeDefined();
    gateway.hostile.drainStalled();
    await untilClosed(gateway, stalled!);
    client.destroy();
  });

  it('a mirror that answers with an endless body is not read for ever: cut past 64 KiB, its connection closed', async () => {
    let written = 0;
    let ended = false;
    script(gateway, 'endless', (socket) => {
      socket.write(head('HTTP/1.1 200 OK', 'transfer-encoding: chunked'));
      const chunk = `${(64 * 1024).toString(16)}\r\n${'m'.repeat(64 * 1024)}\r\n`;
      const pump = (): void => {
        while (!socket.destroyed) {
          written += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      socket.once('close', () => (ended = true));
      pump();
    });
    const answer = await ask(gateway.port, '/mirrored/s/endless');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatch(/^\/mirrored\/s\/endless conn=\d+\n$/);
    // The copy reached the mirror, whose answer the gateway stops reading past 64 KiB.
    for (let i = 0; i < 100 && !ended; i++) await sleep(20);
    expect(ended).toBe(true);
    expect(written).toBeLessThan(16 * 1024 * 1024);
  });

  it('a mirror trickling a small answer is cut at the idle bound in all; an honest mirror keeps its connection', async () => {
    let ended = false;
    script(gateway, 'trickle-mirror', (socket) => {
      socket.write(head('HTTP/1.1 200 OK', 'content-length: 30'));
      drip(socket, 'm', 200);
      socket.once('close', () => (ended = true));
    });
    expect((await ask(gateway.port, '/mirrored/s/trickle-mirror')).status).toBe(200);
    // 30 bytes at 5 a second would take 6 s; the copy has the 1 s bound in all.
    for (let i = 0; i < 150 && !ended; i++) await sleep(20);
    expect(ended).toBe(true);
    const copies = (): number[] => gateway.hostile.requests.filter((r) => r.target === '/mirrored/plain').map((r) => r.connection);
    await ask(gateway.port, '/mirrored/plain');
    for (let i = 0; i < 100 && copies().length < 1; i++) await sleep(20);
    await sleep(100);
    await ask(gateway.port, '/mirrored/plain');
    for (let i = 0; i < 100 && copies().length < 2; i++) await sleep(20);
    const [first, second] = copies();
    expect(second).toBe(first);
  });

  it('a body that stops half way: the client connection is cut after the bound, with the bytes that came', async () => {
    script(gateway, 'stall', (socket) => socket.write(head('HTTP/1.1 200 OK', 'content-length: 100') + 'half'));
    const answer = await ask(gateway.port, '/s/stall');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('half');
    expect(answer.closed).toBe(true);
    expect(lastFailure(gateway)).toMatchObject({ err: { code: 'UND_ERR_BODY_TIMEOUT' } });
    await untilClosed(gateway, connectionOf(gateway, 'stall'));
  });

  it('a route timeout longer than the idle bound wins: a backend silent for twice the bound still answers', async () => {
    script(gateway, 'slow', (socket) => void setTimeout(() => socket.write(head('HTTP/1.1 200 OK', 'content-length: 4') + 'late'), 2_000));
    const answer = await ask(gateway.port, '/patient/s/slow');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('late');
  });

  it('with route timeouts: no answer is 504 at timeouts.request; a trickling body is cut there', async () => {
    script(gateway, 'mute2', () => undefined);
    expectGatewayTimeout(await ask(gateway.port, '/timed/s/mute2'));
    script(gateway, 'trickle', (socket) => {
      socket.write(head('HTTP/1.1 200 OK', 'content-length: 1000'));
      drip(socket, 'x', 100);
    });
    const answer = await ask(gateway.port, '/timed/s/trickle');
    expect(answer.status).toBe(200);
    expect(answer.closed).toBe(true);
    expect(answer.body.length).toBeGreaterThan(0);
    expect(answer.body.length).toBeLessThan(1_000);
    await untilClosed(gateway, connectionOf(gateway, 'trickle'));
  });

  it('without route timeouts a body that keeps coming is relayed while the client stays, and cancelled when it leaves', async () => {
    // As nginx's proxy_read_timeout and Envoy's stream_idle_timeout: bytes keep the stream alive
    // (a long download, server-sent events); timeouts.request is the bound for a whole exchange.
    script(gateway, 'stream', (socket) => {
      socket.write(head('HTTP/1.1 200 OK', 'transfer-encoding: chunked'));
      drip(socket, '1\r\nx\r\n', 40);
    });
    const connection = await RawConnection.open(gateway.port);
    try {
      connection.send('GET /s/stream HTTP/1.1\r\nHost: attack.example.com\r\n\r\n');
      await connection.until((text) => text.includes('\r\n\r\n'));
      await sleep(2_500);
      const seen = connection.text.length;
      await sleep(300);
      expect(connection.isClosed).toBe(false);
      expect(connection.text.length).toBeGreaterThan(seen);
    } finally {
      connection.close();
    }
    await untilClosed(gateway, connectionOf(gateway, 'stream'));
  });
});

/** The gateway process's resident set, in bytes (Linux). */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error('no VmRSS');
  return Number(kb) * 1024;
}

describe('a hostile backend, in size', () => {
  const gateway = useUpstreamAttackGateway();
  const TOTAL = 512 * 1024 * 1024;

  it('a 512 MiB body to a client that stops reading, then reads slowly: relayed whole with backpressure, the gateway\'s memory flat', async () => {
    const block = Buffer.alloc(64 * 1024, 'z');
    let written = 0;
    // The backend writes as fast as the gateway takes: what the gateway does not pass on, it must not read.
    script(gateway, 'huge', (socket) => {
      socket.write(head('HTTP/1.1 200 OK', `content-length: ${TOTAL}`));
      const pump = (): void => {
        while (written < TOTAL && !socket.destroyed) {
          written += block.length;
          if (!socket.write(block)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
    const before = rss(gateway.sluice.pid);
    const client = net.connect(gateway.port, '127.0.0.1');
    let received = 0;
    client.on('data', (chunk: Buffer) => (received += chunk.length));
    client.pause();
    client.write('GET /s/huge HTTP/1.1\r\nHost: attack.example.com\r\n\r\n');
    try {
      // Not reading: the socket buffers fill, then the gateway must stop reading the backend.
      await sleep(1_500);
      const stalled = written;
      expect(stalled).toBeLessThan(TOTAL / 4);
      expect(rss(gateway.sluice.pid) - before).toBeLessThan(128 * 1024 * 1024);
      // Reading slowly, in bursts: the memory stays flat all the way.
      let peak = 0;
      while (received < TOTAL) {
        client.resume();
        await sleep(20);
        client.pause();
        await sleep(20);
        peak = Math.max(peak, rss(gateway.sluice.pid) - before);
        if (client.destroyed) break;
      }
      expect(received).toBeGreaterThan(TOTAL);
      // Garbage collection lets the relayed chunks pile up a while (measured: 18-70 MiB up and down
      // over 512 MiB): bounded well below the body, which a gateway that buffered would hold whole.
      expect(peak).toBeLessThan(128 * 1024 * 1024);
    } finally {
      client.destroy();
    }
  }, 120_000);
});
