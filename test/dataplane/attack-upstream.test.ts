// The backend is hostile too: a real `sluice run` in front of a backend that answers with bytes
// scripted one by one (support/scripted-backend.ts), against RFC 9112 / 9110. For each broken
// response the client gets what a gateway must give (502 before anything was relayed, a cut
// connection once a response had started, never a complete-looking one), the broken upstream
// connection is never used again (the next request arrives on a new one), no byte of one answer
// reaches another client, and the gateway goes on serving (an honest route and the same backend).

import { describe, expect, it } from '@jest/globals';
import type net from 'node:net';
import { RawConnection } from './support/raw-http.ts';
import { ask, complete, connectionOf, EVIL, expectBadGateway, head, script, stillServes, untilClosed, useUpstreamAttackGateway } from './support/upstream-attack-gateway.ts';

describe('a hostile HTTP/1.1 backend', () => {
  const gateway = useUpstreamAttackGateway();

  // Each: the bytes the backend answers with. The client gets 502 (nothing relayed yet), the
  // upstream connection is closed, the next request goes over a new one.
  const refused: Array<[string, string]> = [
    // RFC 9112 §6.3: both framings is a smuggling vector; a proxy must not guess.
    ['Content-Length and Transfer-Encoding', head('HTTP/1.1 200 OK', 'content-length: 5', 'transfer-encoding: chunked') + '5\r\nhello\r\n0\r\n\r\n' + EVIL],
    ['two different Content-Length values', head('HTTP/1.1 200 OK', 'content-length: 5', 'content-length: 6') + 'hello!' + EVIL],
    ['two equal Content-Length fields', head('HTTP/1.1 200 OK', 'content-length: 5', 'content-length: 5') + 'hello' + EVIL],
    ['a Content-Length list', head('HTTP/1.1 200 OK', 'content-length: 5, 5') + 'hello' + EVIL],
    ['a Content-Length with a sign', head('HTTP/1.1 200 OK', 'content-length: +5') + 'hello' + EVIL],
    ['a Content-Length with garbage', head('HTTP/1.1 200 OK', 'content-length: 5x') + 'hello' + EVIL],
    ['a negative Content-Length', head('HTTP/1.1 200 OK', 'content-length: -1') + 'hello' + EVIL],
    ['a Content-Length past 64 bits', head('HTTP/1.1 200 OK', 'content-length: 99999999999999999999999') + 'hello' + EVIL],
    // A transfer coding Sluice does not decode cannot be dropped (hop-by-hop) nor passed on.
    ['Transfer-Encoding: gzip, chunked', head('HTTP/1.1 200 OK', 'transfer-encoding: gzip, chunked') + '5\r\nhello\r\n0\r\n\r\n'],
    ['Transfer-Encoding: chunked, gzip (body to the close, still encoded)', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked, gzip') + '5\r\nhello\r\n0\r\n\r\n'],
    ['Transfer-Encoding: identity', head('HTTP/1.1 200 OK', 'transfer-encoding: identity') + 'hello'],
    // Status lines.
    ['a status line with letters for digits', head('HTTP/1.1 2OO OK', 'content-length: 2') + 'hi'],
    ['status 000', head('HTTP/1.1 000 Zero', 'content-length: 2') + 'hi'],
    ['status 600 (RFC 9110 §15: invalid, treated as a 5xx)', head('HTTP/1.1 600 Beyond', 'content-length: 2') + 'hi'],
    ['status 999', head('HTTP/1.1 999 Beyond', 'content-length: 2') + 'hi'],
    ['a two-digit status', head('HTTP/1.1 20 OK', 'content-length: 2') + 'hi'],
    ['an HTTP/0.9-style reply (no status line)', 'hello there\n' + EVIL],
    ['an unknown protocol name', head('HTTQ/1.1 200 OK', 'content-length: 2') + 'hi'],
    ['bare LF line ends', 'HTTP/1.1 200 OK\ncontent-length: 2\n\nhi'],
    // Fields.
    ['an obs-fold continuation line', head('HTTP/1.1 200 OK', 'x-a: b', ' set-cookie: evil=1', 'content-length: 2') + 'hi'],
    ['a bare CR in a value', head('HTTP/1.1 200 OK', 'x-a: b\rset-cookie: evil=1', 'content-length: 2') + 'hi'],
    ['a bare LF in a value', head('HTTP/1.1 200 OK', 'x-a: b\nset-cookie: evil=1', 'content-length: 2') + 'hi'],
    ['a NUL in a value', head('HTTP/1.1 200 OK', 'x-a: b\0c', 'content-length: 2') + 'hi'],
    ['a space in a field name', head('HTTP/1.1 200 OK', 'x a: b', 'content-length: 2') + 'hi'],
    ['a space before the colon', head('HTTP/1.1 200 OK', 'content-length : 2') + 'hi'],
    ['a field with no colon', head('HTTP/1.1 200 OK', 'x-a', 'content-length: 2') + 'hi'],
    ['a head past the size limit (one 100 KB field)', head('HTTP/1.1 200 OK', `x-a: ${'a'.repeat(100_000)}`, 'content-length: 2') + 'hi'],
    ['3 000 header fields', head('HTTP/1.1 200 OK', ...Array.from({ length: 3_000 }, (_, i) => `x-${i}: ${i}`), 'content-length: 2') + 'hi'],
    // Within undici's 16 KiB, past the front door's 1000 fields: respelled (`a0: 1`) they made a
    // 17.6 KiB head that Node's own client refuses.
    ['2 500 tiny fields (within the byte limit)', head('HTTP/1.1 200 OK', ...Array.from({ length: 2_500 }, (_, i) => `a${i % 10}:1`), 'content-length: 2') + 'hi'],
    // Interim responses: more than a real server sends, or a 101 nobody asked for.
    ['500 103 Early Hints before the answer', 'HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n'.repeat(500) + head('HTTP/1.1 200 OK', 'content-length: 2') + 'hi'],
    // An unsolicited 100 Continue is taken as any interim answer: le2-upstream-interim.test.ts.
    ['101 Switching Protocols to a request that asked no upgrade', head('HTTP/1.1 101 Switching Protocols', 'connection: upgrade', 'upgrade: websocket') + 'TUNNEL'],
  ];
  it.each(refused)('%s: 502, the upstream connection closed, nothing of it relayed', async (_what, bytes) => {
    const name = `refused${refused.findIndex(([what]) => what === _what)}`;
    script(gateway, name, (socket) => socket.write(bytes, 'latin1'));
    const answer = await ask(gateway.port, `/s/${name}`);
    expectBadGateway(answer);
    expect(answer.text).not.toContain('TUNNEL');
    const upstream = connectionOf(gateway, name);
    await untilClosed(gateway, upstream);
    await stillServes(gateway, upstream);
  });

  // A response that had started when the backend broke it: the client's connection is cut after
  // exactly the bytes that were valid, so it sees a truncated response, never a whole one.
  const cut: Array<[string, string, string]> = [
    ['a chunk size past 64 bits', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhello\r\nfffffffffffffffff1\r\nxx\r\n0\r\n\r\n', 'hello'],
    ['a chunk size that is not hex', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n', 'hello'],
    ['a chunk not followed by CRLF', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n', 'hello'],
    ['a trailer without a colon', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhello\r\n0\r\nbad trailer\r\n\r\n', 'hello'],
    ['a trailer with a space in its name', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhello\r\n0\r\nx y: 1\r\n\r\n', 'hello'],
    ['a body shorter than its Content-Length, then the close', head('HTTP/1.1 200 OK', 'content-length: 50') + 'hello', 'hello'],
    ['a chunked body ended by the close', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhello\r\n', 'hello'],
    ['trailers past the head size limit', head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhello\r\n0\r\n' + Array.from({ length: 40 }, (_, i) => `x-t${i}: ${'t'.repeat(1_000)}\r\n`).join('') + '\r\n', 'hello'],
  ];
  it.each(cut)('%s: the client connection is cut after the valid bytes', async (_what, bytes, valid) => {
    const name = `cut${cut.findIndex(([what]) => what === _what)}`;
    script(gateway, name, (socket) => socket.end(bytes, 'latin1'));
    const answer = await ask(gateway.port, `/s/${name}`);
    expect(answer.status).toBe(200);
    expect(answer.closed).toBe(true);
    // What reached the client: the valid part, in its own framing, and never a terminating chunk.
    const chunked = /\r\ntransfer-encoding: chunked/i.test(answer.text);
    const body = chunked ? answer.body.replace(/([0-9a-f]+)\r\n([^]*?)\r\n/g, (_m, _size: string, data: string) => data) : answer.body;
    expect(body).toBe(valid);
    if (chunked) expect(answer.body.endsWith('0\r\n\r\n')).toBe(false);
    await untilClosed(gateway, connectionOf(gateway, name));
    await stillServes(gateway);
  });

  it('a chunk extension and a trailer it declared are fine: relayed, the connection reused', async () => {
    script(gateway, 'ext', (socket) => socket.write(head('HTTP/1.1 200 OK', 'transfer-encoding: chunked', 'trailer: x-sum') + '5;name=value\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n'));
    const answer = await ask(gateway.port, '/s/ext');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n');
    expect(answer.closed).toBe(false);
    const upstream = connectionOf(gateway, 'ext');
    const next = await ask(gateway.port, '/plain');
    expect(next.body).toBe(`/plain conn=${upstream}\n`);
  });

  it('a 1 MiB chunk extension is parsed as it streams and dropped (never buffered, never relayed); the body is whole', async () => {
    // The front door refuses more than 16 KiB of extensions from a client (413); from a backend
    // undici's parser skips them without keeping them, and they do not count as body bytes for
    // --backend-idle-timeout, so an endless one is cut by that bound.
    script(gateway, 'bigext', (socket) => socket.write(head('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '5\r\nhello\r\n3;ext=' + 'e'.repeat(1 << 20) + '\r\nabc\r\n0\r\n\r\n'));
    const answer = await ask(gateway.port, '/s/bigext');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n');
    expect(answer.closed).toBe(false);
  });

  it('990 fields (under the bound of 1000 relayed, the gateway\'s own included) are relayed', async () => {
    script(gateway, 'thousand', (socket) => socket.write(head('HTTP/1.1 200 OK', ...Array.from({ length: 990 }, (_, i) => `x${i}:1`), 'content-length: 2') + 'hi'));
    const answer = await ask(gateway.port, '/s/thousand');
    expect(answer.status).toBe(200);
    expect(answer.text.match(/\r\nx\d+: 1/g)).toHaveLength(990);
  });

  it('3 interim responses (102, 103, 103) before the answer are dropped and the answer relayed', async () => {
    script(gateway, 'interim', (socket) => socket.write(head('HTTP/1.1 102 Processing') + head('HTTP/1.1 103 Early Hints', 'link: </a>') + head('HTTP/1.1 103 Early Hints', 'link: </b>') + head('HTTP/1.1 200 OK', 'content-length: 2') + 'hi'));
    const answer = await ask(gateway.port, '/s/interim');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('hi');
    expect(answer.text).not.toMatch(/^HTTP\/1\.1 1/);
  });

  describe('a body longer than its Content-Length, or a second, unsolicited response', () => {
    // The surplus must never be read as the answer to the next request on that upstream
    // connection: the connection is closed (undici: a response with no request running is a
    // bad response), and the next client's request goes over a new one.
    const surplus: Array<[string, (socket: net.Socket) => void]> = [
      ['in the same write', (socket) => socket.write(head('HTTP/1.1 200 OK', 'content-length: 5') + 'hello' + EVIL)],
      ['in a later write, the connection idle in the pool', (socket) => {
        socket.write(head('HTTP/1.1 200 OK', 'content-length: 5') + 'hello');
        setTimeout(() => socket.write(EVIL), 100);
      }],
      ['after a 204 (which has no body)', (socket) => socket.write(head('HTTP/1.1 204 No Content') + EVIL)],
      ['after a 304 (which has no body)', (socket) => socket.write(head('HTTP/1.1 304 Not Modified', 'etag: "a"') + EVIL)],
    ];
    it.each(surplus)('%s: request B on the next connection never sees it', async (what, write) => {
      const name = `surplus${surplus.findIndex(([w]) => w === what)}`;
      script(gateway, name, write);
      const a = await ask(gateway.port, `/s/${name}`);
      expect([200, 204, 304]).toContain(a.status);
      expect(a.text).not.toContain('EVIL');
      expect(a.closed).toBe(false);
      if (a.status === 200) expect(a.body).toBe('hello');
      const upstream = connectionOf(gateway, name);
      // B right behind A (and once more after the late write had time to land).
      const b = await ask(gateway.port, '/plain/b');
      expect(b.status).toBe(200);
      expect(b.body).toMatch(/^\/plain\/b conn=\d+\n$/);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const c = await ask(gateway.port, '/plain/c');
      expect(c.body).toMatch(/^\/plain\/c conn=\d+\n$/);
      await untilClosed(gateway, upstream);
      await stillServes(gateway, upstream);
    });

    it('bytes after the answer to a HEAD (which has no body) reach no client', async () => {
      script(gateway, 'head', (socket) => socket.write(head('HTTP/1.1 200 OK', 'content-length: 4') + 'EVIL'));
      const connection = await RawConnection.open(gateway.port);
      try {
        connection.send('HEAD /s/head HTTP/1.1\r\nHost: attack.example.com\r\n\r\n');
        await connection.until((text) => text.includes('\r\n\r\n'));
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(connection.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*content-length: 4\r\n[^]*\r\n\r\n$/i);
      } finally {
        connection.close();
      }
      const b = await ask(gateway.port, '/plain/b');
      expect(b.body).toMatch(/^\/plain\/b conn=\d+\n$/);
      await untilClosed(gateway, connectionOf(gateway, 'head'));
    });
  });

  it('a 204 that declares a body length (RFC 9110 §8.6: a server MUST NOT) is relayed without it, its bytes nowhere, its connection not reused', async () => {
    for (const [name, framing, bytes] of [['cl204', 'content-length: 4', 'EVIL'], ['te204', 'transfer-encoding: chunked', '4\r\nEVIL\r\n0\r\n\r\n'], ['zero204', 'content-length: 0', '']] as const) {
      script(gateway, name, (socket) => socket.write(head('HTTP/1.1 204 No Content', framing, 'x-kept: 1') + bytes));
      const answer = await ask(gateway.port, `/s/${name}`);
      expect(answer.status).toBe(204);
      expect(answer.text).toMatch(/\r\nx-kept: 1\r\n/);
      expect(answer.text).not.toMatch(/content-length|transfer-encoding|EVIL/i);
      expect(answer.closed).toBe(false);
      const upstream = connectionOf(gateway, name);
      if (name !== 'zero204') await untilClosed(gateway, upstream);
      await stillServes(gateway, name === 'zero204' ? undefined : upstream);
    }
  });

  it('an upgrade answered with 200 and a body: relayed as a response, no tunnel, the client connection stays HTTP', async () => {
    script(gateway, 'noupgrade', (socket) => socket.write(head('HTTP/1.1 200 OK', 'content-length: 5') + 'nope\n'));
    const connection = await RawConnection.open(gateway.port);
    try {
      connection.send('GET /s/noupgrade HTTP/1.1\r\nHost: attack.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await connection.until((text) => complete(text));
      expect(connection.statuses()).toEqual([200]);
      expect(connection.text.endsWith('\r\n\r\nnope\n')).toBe(true);
      // The next bytes are a request again, routed and answered as one.
      connection.send('GET /other/after HTTP/1.1\r\nHost: attack.example.com\r\n\r\n');
      await connection.until((text) => /\/other\/after conn=\d+\n$/.test(text));
      expect(connection.statuses()).toEqual([200, 200]);
    } finally {
      connection.close();
    }
  });

  it('logs and counts a broken answer under the backend that gave it', async () => {
    script(gateway, 'logged', (socket) => socket.write(head('HTTP/1.1 200 OK', 'content-length: 1', 'content-length: 2') + 'hi'));
    /** sluice_http_requests_total{code="502"} of the series naming the hostile backend. */
    const badGateways = async (): Promise<number> => {
      const text = await (await fetch(`${gateway.sluice.admin}/metrics`)).text();
      const series = text.split('\n').filter((line) => line.startsWith('sluice_http_requests_total{') && line.includes('code="502"') && /backend="[^"]*hostile[^"]*"/.test(line));
      return series.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    };
    const before = await badGateways();
    expectBadGateway(await ask(gateway.port, '/s/logged'));
    expect(await badGateways()).toBe(before + 1);
    const line = gateway.sluice.logs().split('\n').reverse().find((l) => l.includes('upstream request failed'));
    expect(line).toBeDefined();
    const entry = JSON.parse(line!) as { backend: string; endpoint: string; status: number };
    expect(entry).toMatchObject({ status: 502, endpoint: `127.0.0.1:${gateway.hostile.port}` });
    expect(entry.backend).toContain('hostile');
  });
});
