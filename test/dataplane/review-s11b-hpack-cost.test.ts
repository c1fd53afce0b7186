// What the front door's HPACK decoder (dataplane/http2-request-head.ts) costs on hostile header
// blocks, measured as the CPU a real `sluice run` spends (its /proc stat: all its threads). A block
// of one-byte references to one large dynamic table entry (an "HPACK bomb") decodes to far more
// than it weighs; the field checks must not scan that entry once per reference. A dynamic table
// size update above the SETTINGS_HEADER_TABLE_SIZE the front door announces (4096) is a decoding
// error (RFC 7541 §6.3, as nghttp2 makes it); accepted, a 64 KiB table made each insertion shift up
// to 2 000 entries. The bounds sit well below the cost before the fix and far above it after: CPU
// time, not wall time, so a loaded machine moves them little.

import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { useAttackGateway } from './support/attack-gateway.ts';
import { ErrorCode, freshGetVerdict, headerFrames, headersFrame, RawH2, requestHeaders, streamVerdict } from './support/h2-frames.ts';

const HOST = 'api.example.com';
const FRAME_PAYLOAD = 16_384;
/** RFC 9113 §7 (support/h2-frames.ts's ErrorCode has no entry for it). */
const COMPRESSION_ERROR = 0x9;

/** The process's CPU time so far (user + system, all threads), in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** An HPACK integer's continuation bytes (RFC 7541 §5.1) for `value` past the prefix's maximum. */
function integerTail(value: number): number[] {
  const bytes: number[] = [];
  for (; value >= 128; value = Math.floor(value / 128)) bytes.push((value % 128) | 0x80);
  bytes.push(value);
  return bytes;
}

describe('hostile HPACK blocks cost the front door what they weigh', () => {
  const gateway = useAttackGateway();

  it('a block of 7 x 16 KiB references to one 4 000-byte entry, 10 times: bounded CPU; the connection and the next request served', async () => {
    const connection = await RawH2.connect(gateway.port);
    try {
      await connection.handshake();
      // x-big: 4 000 bytes, literal with incremental indexing (new name): dynamic entry 62.
      const entry = Buffer.concat([Buffer.from([0x40, 0x05]), Buffer.from('x-big'), Buffer.from([0x7f, ...integerTail(4_000 - 127)]), Buffer.alloc(4_000, 'v')]);
      const references = Buffer.alloc(7 * FRAME_PAYLOAD - 200, 0xbe);
      const before = cpuMs(gateway.sluice.pid);
      for (let i = 0; i < 10; i++) {
        const id = 2 * i + 1;
        connection.send(...headerFrames(id, Buffer.concat([requestHeaders(HOST, '/bomb'), i === 0 ? entry : Buffer.alloc(0), references])));
        // Far over the header list Node takes (its pairs and SETTINGS_MAX_HEADER_LIST_SIZE): refused on that stream.
        expect(await streamVerdict(connection, id, 30_000)).toEqual({ reset: ErrorCode.ENHANCE_YOUR_CALM });
      }
      const spent = cpuMs(gateway.sluice.pid) - before;
      connection.send(headersFrame(21, requestHeaders(HOST, '/after'), true));
      expect(await streamVerdict(connection, 21)).toEqual({ status: 200 });
      // About 5 s before the fix (each block's 114 000 references scanned 4 000 bytes each).
      expect(spent).toBeLessThan(1_000);
    } finally {
      connection.destroy();
    }
  }, 60_000);

  it('a dynamic table size update above 4096, then a block of table insertions, on 40 connections: GOAWAY COMPRESSION_ERROR each, bounded CPU', async () => {
    const update = Buffer.from([0x3f, ...integerTail(65_536 - 31)]);
    // accept-charset (static name 15) with an empty value, literal with incremental indexing: 46 bytes in the table each.
    const insertions = Buffer.alloc(7 * FRAME_PAYLOAD - 200);
    for (let at = 0; at + 1 < insertions.length; at += 2) insertions.set([0x4f, 0x00], at);
    const before = cpuMs(gateway.sluice.pid);
    for (let i = 0; i < 40; i++) {
      const connection = await RawH2.connect(gateway.port);
      try {
        await connection.handshake();
        connection.send(...headerFrames(1, Buffer.concat([update, requestHeaders(HOST, '/table'), insertions])));
        expect(await connection.goawayCode()).toBe(COMPRESSION_ERROR);
      } finally {
        connection.destroy();
      }
    }
    const spent = cpuMs(gateway.sluice.pid) - before;
    expect(await freshGetVerdict(gateway.port, HOST)).toEqual({ status: 200 });
    // About 1.7 s before the fix, 0.07 s after.
    expect(spent).toBeLessThan(600);
  }, 60_000);
});
