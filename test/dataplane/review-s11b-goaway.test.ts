// Connection errors the HTTP/2 front door finds itself (the frame guard and its HPACK decoder,
// dataplane/http2-front.ts, http2-request-head.ts) must reach the client as GOAWAY with their code
// (RFC 9113 §5.4.1), then the close. Node's session sends no GOAWAY while a write of its own is
// under way (one is at the connection's start: its SETTINGS), and there each of these was a bare
// close. A real `sluice run`; the bad frame comes in the client's first write, and each case must
// leave other connections served.

import { describe, expect, it } from '@jest/globals';
import { useAttackGateway } from './support/attack-gateway.ts';
import { ErrorCode, Flag, frame, FrameType, freshGetVerdict, headersFrame, PREFACE, RawH2, requestHeaders } from './support/h2-frames.ts';

const HOST = 'api.example.com';
/** RFC 9113 §7 (support/h2-frames.ts's ErrorCode has no entry for it). */
const COMPRESSION_ERROR = 0x9;

/** Header block bytes RFC 7541 makes a decoding error, each after a well-formed request's fields. */
const UNDECODABLE: Array<[string, Buffer]> = [
  ['an indexed field at index 0 (§6.1)', Buffer.from([0x80])],
  ['an index past the (empty) dynamic table (§2.3.3)', Buffer.from([0xbe])],
  ['a table size update after a field (§4.2)', Buffer.from([0x20])],
  ['an integer past 2^31 (§5.1)', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])],
  ['an integer whose continuation bytes never end', Buffer.from([0xff, ...Array<number>(40).fill(0xff)])],
  ['a Huffman string holding EOS (§5.2)', Buffer.from([0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61])],
  ['Huffman padding that is not all ones (§5.2)', Buffer.from([0x00, 0x81, 0x00, 0x01, 0x61])],
  ['Huffman padding longer than 7 bits (§5.2)', Buffer.from([0x00, 0x82, 0x1f, 0xff, 0x01, 0x61])],
  ['a string longer than the block', Buffer.from([0x00, 0x7f, 0x40, 0x01, 0x61])],
  ['a literal name at index 0 cut short', Buffer.from([0x40])],
];

describe('connection errors of the front door go out as GOAWAY, right after the handshake too', () => {
  const gateway = useAttackGateway();

  /** `bad` sent with the client's preface, SETTINGS and SETTINGS ACK; expects GOAWAY `code`, the close, and a new connection served. */
  async function goawayFor(bad: Buffer, code: number): Promise<void> {
    const connection = await RawH2.connect(gateway.port);
    try {
      // All in one write: the session's own SETTINGS are still being written when the guard fails.
      connection.send(PREFACE, frame(FrameType.SETTINGS, 0, 0), frame(FrameType.SETTINGS, Flag.ACK, 0), bad);
      expect(await connection.goawayCode()).toBe(code);
      await connection.closedWithin(5_000);
    } finally {
      connection.destroy();
    }
    expect(await freshGetVerdict(gateway.port, HOST)).toEqual({ status: 200 });
  }

  it.each(UNDECODABLE)('%s: GOAWAY COMPRESSION_ERROR', async (_what, bytes) => {
    await goawayFor(headersFrame(1, Buffer.concat([requestHeaders(HOST, '/undecodable'), bytes]), true), COMPRESSION_ERROR);
  });

  it('PRIORITY on stream 0: GOAWAY PROTOCOL_ERROR', async () => {
    await goawayFor(frame(FrameType.PRIORITY, 0, 0, Buffer.from([0, 0, 0, 1, 16])), ErrorCode.PROTOCOL_ERROR);
  });

  it('a header block over 9 frames of 16 KiB: GOAWAY ENHANCE_YOUR_CALM', async () => {
    const frames = [frame(FrameType.HEADERS, Flag.END_STREAM, 1, Buffer.concat([requestHeaders(HOST, '/long'), Buffer.alloc(16_000, 0x82)]))];
    for (let i = 0; i < 9; i++) frames.push(frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(16_384, 0x82)));
    await goawayFor(Buffer.concat(frames), ErrorCode.ENHANCE_YOUR_CALM);
  });
});
