// The backend idle bound (--backend-idle-timeout) on coarse ticks (dataplane/upstream/idle-watch.ts),
// which replaced undici's per-request timers: the watch itself (expiry after the bound, activity,
// held attempts, removal, the interval stopping when nothing is watched), and through a real
// `sluice run` (bound 1 s) what it must not cut: a request body the client sends slower than the
// bound (the client's pace, as undici's head wait did not run out while it wrote), and a response
// the client reads after pausing longer than the bound (the backend is held back, not silent).

import net from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { IdleWatch, type Watched } from '../../dataplane/upstream/idle-watch.ts';
import { RawConnection } from './support/raw-http.ts';
import { head, useUpstreamAttackGateway } from './support/upstream-attack-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function node(): Watched & { expiredAt: number | null } {
  const n: Watched & { expiredAt: number | null } = {
    quietTicks: 0,
    held: false,
    watchPrev: null,
    watchNext: null,
    watched: false,
    expiredAt: null,
    idleExpired() {
      n.expiredAt = performance.now();
    },
  };
  return n;
}

describe('IdleWatch', () => {
  it('expires a silent attempt after the bound, not before; activity and holding keep others; the list empties', async () => {
    const watch = new IdleWatch(200);
    const silent = node();
    const busy = node();
    const held = node();
    const left = node();
    const start = performance.now();
    for (const n of [silent, busy, held, left]) watch.add(n);
    held.held = true;
    watch.remove(left);
    expect(watch.size).toBe(3);
    // Activity every 50 ms for 600 ms: three bounds' worth.
    for (let t = 0; t < 12; t++) {
      await sleep(50);
      busy.quietTicks = 0;
    }
    expect(silent.expiredAt).not.toBeNull();
    expect(silent.expiredAt! - start).toBeGreaterThanOrEqual(200);
    expect(silent.watched).toBe(false);
    expect([busy.expiredAt, held.expiredAt, left.expiredAt]).toEqual([null, null, null]);
    // Released: the held one now counts from zero.
    held.held = false;
    watch.remove(busy);
    await sleep(450);
    expect(held.expiredAt).not.toBeNull();
    expect(busy.expiredAt).toBeNull();
    expect(watch.size).toBe(0);
    // Adding twice keeps one node; removing one never added is nothing.
    const twice = node();
    watch.add(twice);
    watch.add(twice);
    expect(watch.size).toBe(1);
    watch.remove(twice);
    watch.remove(node());
    expect(watch.size).toBe(0);
  });
});

describe('the backend idle bound through a real sluice run (--backend-idle-timeout 1000)', () => {
  const gateway = useUpstreamAttackGateway(['--backend-idle-timeout', '1000']);

  it('a request body the client sends slower than the bound is not cut: the backend answers once it has it', async () => {
    gateway.hostile.scripts.set('after-body', (socket, request) => {
      const body = `got ${request.body.length}\n`;
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`, 'latin1');
    });
    const connection = await RawConnection.open(gateway.port);
    try {
      connection.send('POST /s/after-body HTTP/1.1\r\nHost: attack.example.com\r\ntransfer-encoding: chunked\r\n\r\n');
      // 2.4 s of upload, a chunk every 400 ms: each gap under the front door's body timeout, the whole over the bound.
      for (let i = 0; i < 6; i++) {
        await sleep(400);
        connection.send('5\r\nhello\r\n');
      }
      connection.send('0\r\n\r\n');
      const text = await connection.until((t) => t.includes('\r\n\r\n') && t.endsWith('\n'), 5_000);
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      expect(text.endsWith('got 30\n')).toBe(true);
    } finally {
      connection.close();
    }
  });

  it('a response the client pauses longer than the bound is relayed whole when it reads again', async () => {
    const size = 8 * 1024 * 1024;
    gateway.hostile.scripts.set('big', (socket) => {
      socket.write(head('HTTP/1.1 200 OK', `content-length: ${size}`));
      socket.write(Buffer.alloc(size, 0x61));
    });
    // A raw socket: paused, it reads nothing and the kernel's buffers fill back to the gateway.
    const socket = net.connect(gateway.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    try {
      socket.pause();
      socket.write('GET /s/big HTTP/1.1\r\nHost: attack.example.com\r\n\r\n');
      await sleep(2_500);
      let received = 0;
      let headEnd = -1;
      let first = '';
      let closed = false;
      socket.on('close', () => (closed = true));
      await new Promise<void>((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`${received} bytes after 10 s (closed: ${closed})`)), 10_000);
        const done = (): void => {
          clearTimeout(deadline);
          resolve();
        };
        socket.on('data', (chunk: Buffer) => {
          if (headEnd < 0) {
            first += chunk.toString('latin1');
            headEnd = first.indexOf('\r\n\r\n');
            if (headEnd >= 0) received = first.length - headEnd - 4;
          } else received += chunk.length;
          if (headEnd >= 0 && received >= size) done();
        });
        socket.on('close', () => done());
        socket.resume();
      });
      expect(first).toMatch(/^HTTP\/1\.1 200 /);
      expect(received).toBe(size);
      expect(closed).toBe(false);
    } finally {
      socket.destroy();
    }
  });
});
