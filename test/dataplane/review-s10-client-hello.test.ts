// Review (session 10): readClientHello (TLS listeners, and HTTPS ports choosing certificates by
// suites) gathers a ClientHello however the client cuts it. It re-read every byte received per
// chunk (a concat of every chunk, a walk of every record): 64 KiB in one-byte segments took ~27 s
// of CPU. Now it walks each record header once; this checks it still decides exactly where
// readServerName on the bytes so far first decides, with the same answer and the same bytes, for
// random cuts of honest and hostile ClientHellos.
import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { readClientHello, readServerName, type ClientHelloResult } from '../../dataplane/passthrough/client-hello.ts';

const u16 = (value: number) => Buffer.from([value >> 8, value & 255]);

/** A ClientHello handshake message naming `serverName`, padded to about `size` bytes. */
function clientHello(serverName: string, size: number, type = 0x01): Buffer {
  const name = Buffer.from(serverName, 'ascii');
  const sni = Buffer.concat([u16(0x0000), u16(name.length + 5), u16(name.length + 3), Buffer.from([0]), u16(name.length), name]);
  const fixed = 2 + 32 + 1 + 2 + 4 + 1 + 1 + 2 + sni.length + 4;
  const padding = Buffer.concat([u16(0x0015), u16(Math.max(0, size - fixed)), Buffer.alloc(Math.max(0, size - fixed))]);
  const extensions = Buffer.concat([sni, padding]);
  const body = Buffer.concat([u16(0x0303), Buffer.alloc(32, 7), Buffer.from([0]), u16(4), u16(0xc02f), u16(0x1301), Buffer.from([1, 0]), u16(extensions.length), extensions]);
  return Buffer.concat([Buffer.from([type, body.length >> 16, (body.length >> 8) & 255, body.length & 255]), body]);
}

/** `handshake` in records of `recordSize` bytes (`recordType` for every record). */
function records(handshake: Buffer, recordSize: number, recordType = 0x16): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < handshake.length; at += recordSize) {
    const fragment = handshake.subarray(at, at + recordSize);
    out.push(Buffer.from([recordType, 0x03, 0x01]), u16(fragment.length), fragment);
  }
  return Buffer.concat(out);
}

/** Park-Miller: exact in a double. */
function random(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 48_271) % 2_147_483_647) / 2_147_483_647;
}

/** `wire` cut at random places, pieces of 1 to `largest` bytes. */
function cuts(wire: Buffer, next: () => number, largest: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < wire.length; ) {
    const size = 1 + Math.floor(next() * largest);
    pieces.push(wire.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

/**
 * What readClientHello decides when `pieces` arrive one chunk each: the result, the bytes handed
 * back, and after how many pieces. The stream is a PassThrough, not a socket: a real socket
 * coalesces segments, and these cuts must reach the reader exactly as made.
 */
async function throughReader(pieces: Buffer[]): Promise<{ result: ClientHelloResult; data: Buffer; after: number } | null> {
  const stream = new PassThrough();
  let fed = 0;
  let decided: { result: ClientHelloResult; data: Buffer; after: number } | null = null;
  readClientHello(stream as unknown as Socket, (result, data) => (decided = { result, data: Buffer.from(data), after: fed }));
  for (const piece of pieces) {
    if (decided !== null) break;
    fed++;
    stream.write(piece);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return decided;
}

/** The old reader: readServerName on every byte so far after each chunk. */
function oracle(wire: Buffer, pieces: Buffer[]): { result: ClientHelloResult; data: Buffer; after: number } | null {
  let end = 0;
  for (let i = 1; i <= pieces.length; i++) {
    end += pieces[i - 1]!.length;
    const data = wire.subarray(0, end);
    const result = readServerName(data);
    if (result.kind !== 'more') return { result, data, after: i };
  }
  return null;
}

describe('readClientHello over random cuts decides as readServerName on every byte so far', () => {
  const hello = clientHello('app.example.com', 3_000);
  const big = clientHello('big.example.com', 40_000);
  const wires: Array<[string, Buffer]> = [
    ['one record', records(hello, 16_384)],
    ['records of 7 bytes', records(hello, 7)],
    ['one-byte records', records(hello, 1)],
    ['40 KB over 16 KiB records', records(big, 16_384)],
    ['truncated', records(hello, 100).subarray(0, 2_000)],
    ['not a handshake record', records(hello, 16_384, 0x17)],
    ['a second record of another type', Buffer.concat([records(hello.subarray(0, 10), 10), records(hello.subarray(10), 16_384, 0x15)])],
    ['a record announcing more than 2^14', Buffer.concat([Buffer.from([0x16, 3, 1, 0x40, 0x01]), Buffer.alloc(100)])],
    ['a handshake that is not a ClientHello', records(clientHello('x.example', 600, 0x02), 3)],
    ['a ClientHello announcing more than 64 KiB', records(Buffer.concat([Buffer.from([1, 0x01, 0x10, 0x00]), Buffer.alloc(5_000)]), 1_000)],
    ['a malformed body (session id past the end)', records(Buffer.concat([Buffer.from([1, 0, 0, 40]), u16(0x0303), Buffer.alloc(32), Buffer.from([200, 1, 2, 3, 4, 5])]), 5)],
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nhost: a\r\n\r\n')],
    ['an SSLv2-style hello', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10])],
  ];
  for (const [what, wire] of wires) {
    it(what, async () => {
      const next = random(wire.length + 17);
      for (const largest of [1, 3, 64, 5_000, wire.length]) {
        const pieces = cuts(wire, next, largest);
        const expected = oracle(wire, pieces);
        const got = await throughReader(pieces);
        expect(got === null ? null : { ...got, data: got.data.toString('hex') }).toEqual(expected === null ? null : { ...expected, data: expected.data.toString('hex') });
      }
    });
  }

  it('reads the server name of a real-shaped ClientHello cut into one-byte segments', async () => {
    const got = await throughReader(cuts(records(hello, 16_384), random(5), 1));
    expect(got?.result).toEqual({ kind: 'done', serverName: 'app.example.com', cipherSuites: [0xc02f, 0x1301] });
  });
});
