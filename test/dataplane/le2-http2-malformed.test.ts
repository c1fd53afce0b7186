// HTTP/2 requests RFC 9113 calls malformed that Node's HTTP/2 served (a real `sluice run`, raw
// frames, raw-socket backends that record every byte: support/attack-gateway.ts). Node ignores a
// field with a forbidden character instead of refusing the request (§8.2.1), nghttp2 serves a Host
// naming another entity than :authority (§8.3.1), and DATA beyond the content-length ended the
// whole connection where §8.1.1 makes it a stream error. Each must be RST_STREAM PROTOCOL_ERROR
// on its stream only, never reach a backend, and leave the connection's other streams served.
// (attack-http2.test.ts has the malformed requests nghttp2 refuses itself.)

import { describe, expect, it } from '@jest/globals';
import { ADMIN_HOST, useAttackGateway } from './support/attack-gateway.ts';
import { connect, h2request } from './support/http2-client.ts';
import { ErrorCode, fieldBlock, firstThenNext, Flag, frame, FrameType, headersFrame, RawH2, requestFields, requestHeaders, streamVerdict } from './support/h2-frames.ts';

const HOST = 'api.example.com';
const GET = requestFields(HOST);
const POST = requestFields(HOST, 'POST');
const MALFORMED = { reset: ErrorCode.PROTOCOL_ERROR };

describe('malformed HTTP/2 requests Node served: a stream error, never forwarded', () => {
  const gateway = useAttackGateway();

  /** Sends `frames` as stream 1, expects `expected` on it, then a request on stream 3 of the same connection served. */
  async function exchange(frames: Buffer[], expected: object): Promise<void> {
    expect(await firstThenNext(gateway.port, HOST, frames)).toEqual({ first: expected, next: { status: 200 } });
  }

  const fields: Array<[string, [string, string]]> = [
    ['a CR LF in a value (a second request line)', ['x-a', 'b\r\nGET /admin/smuggled HTTP/1.1']],
    ['a bare LF in a value', ['x-a', 'b\nx-b: c']],
    ['a bare CR in a value', ['x-a', 'b\rc']],
    ['a NUL in a value', ['x-a', 'b\u0000c']],
    ['another control character in a value', ['x-a', 'b\u0001c']],
    ['DEL in a value', ['x-a', 'b\u007fc']],
    ['a leading space in a value', ['x-a', ' b']],
    ['a trailing tab in a value', ['x-a', 'b\t']],
    ['a value that is only a space', ['x-a', ' ']],
    ['a field name with a colon inside', ['x:a', 'b']],
    ['a field name with a space', ['x a', 'b']],
    ['a field name with a quote', ['x"a', 'b']],
    ['an empty field name', ['', 'b']],
    ['a field name with a non-ASCII byte', ['x\u00e9', 'b']],
    ['a host that is no authority (a space)', ['host', 'api.example.com evil']],
    ['a host with userinfo', ['host', `evil@${HOST}`]],
    ['two host fields', ['host', HOST]],
  ];
  it.each(fields)('%s: RST_STREAM PROTOCOL_ERROR; the backend sees only the next request', async (what, field) => {
    const before = gateway.seen();
    const extra: Array<[string, string]> = what === 'two host fields' ? [['host', HOST], field] : [field];
    await exchange([headersFrame(1, fieldBlock([...GET, ...extra, ['x-kept', 'yes']]), true)], MALFORMED);
    await new Promise((r) => setTimeout(r, 20));
    expect(gateway.seen() - before).toBe(1);
    expect(gateway.public.requests.at(-1)?.target).toBe('/next');
    expect(gateway.admin.raw() + gateway.public.raw()).not.toContain('smuggled');
    expect(gateway.admin.malformed.concat(gateway.public.malformed)).toEqual([]);
  });

  it('a malformed field in the second of two blocks sharing the dynamic table (Huffman, indexed) is found', async () => {
    // Stream 1 adds `x-a: ok` to the dynamic table (incremental indexing, Huffman name); stream 3
    // refers to it and adds a bad value: the decoder must follow the table to see it.
    const huffmanXa = Buffer.from([0x83, 0xf2, 0xb0, 0xff]); // "x-a" Huffman-coded (RFC 7541 Appendix B: 1111001 010110 00011, EOS padding)
    const first = Buffer.concat([fieldBlock(GET), Buffer.from([0x40]), huffmanXa, Buffer.from([0x02]), Buffer.from('ok')]);
    const second = Buffer.concat([fieldBlock(GET), Buffer.from([0xbe]), Buffer.from([0x7e]), Buffer.from([0x03]), Buffer.from('b\nc')]);
    const connection = await RawH2.connect(gateway.port);
    try {
      await connection.handshake();
      connection.send(headersFrame(1, first, true));
      expect(await streamVerdict(connection, 1)).toEqual({ status: 200 });
      connection.send(headersFrame(3, second, true));
      expect(await streamVerdict(connection, 3)).toEqual(MALFORMED);
    } finally {
      connection.destroy();
    }
    const request = gateway.public.requests.at(-1);
    expect(request?.headers.filter(([name]) => name === 'x-a')).toEqual([['x-a', 'ok']]);
  });

  it('a malformed field split across HEADERS and CONTINUATION is found', async () => {
    const block = fieldBlock([...GET, ['x-a', 'b\r\nx-b: c']]);
    const cut = block.length - 4;
    const before = gateway.seen();
    await exchange([frame(FrameType.HEADERS, Flag.END_STREAM, 1, block.subarray(0, cut)), frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(cut))], MALFORMED);
    await new Promise((r) => setTimeout(r, 20));
    expect(gateway.seen() - before).toBe(1);
  });

  it('a malformed trailer field resets the stream', async () => {
    const before = gateway.public.requests.length;
    await exchange(
      [headersFrame(1, fieldBlock([...POST, ['content-length', '5']]), false), frame(FrameType.DATA, 0, 1, Buffer.from('hello')), headersFrame(1, fieldBlock([['x-t', 'a\r\nb']]), true)],
      MALFORMED,
    );
    // The request had gone up as its body came; the backend never got it whole with the trailer.
    expect(gateway.public.requests.slice(before).map((r) => r.target)).not.toContain('/h2?trailer');
  });

  const hosts: Array<[string, Array<[string, string]>, object, 'public' | 'admin' | null]> = [
    ['Host naming another host than :authority', [...GET, ['host', ADMIN_HOST]], MALFORMED, null],
    ['Host naming another port than :authority', [...GET, ['host', `${HOST}:8080`]], MALFORMED, null],
    ['Host equal to :authority but for case and the default port', [...GET, ['host', `API.Example.com:80`]], { status: 200 }, 'public'],
    [':authority routes, not Host, when only :authority is sent', [[':method', 'GET'], [':scheme', 'http'], [':authority', ADMIN_HOST], [':path', '/h2']], { status: 200 }, 'admin'],
    ['Host routes when there is no :authority', [[':method', 'GET'], [':scheme', 'http'], [':path', '/h2'], ['host', ADMIN_HOST]], { status: 200 }, 'admin'],
  ];
  it.each(hosts)('%s', async (_what, block, expected, backend) => {
    const admin = gateway.admin.requests.length;
    const pub = gateway.public.requests.length;
    await exchange([headersFrame(1, fieldBlock(block), true)], expected);
    await new Promise((r) => setTimeout(r, 20));
    // /next goes to public; stream 1 to `backend`, or nowhere.
    expect(gateway.admin.requests.length - admin).toBe(backend === 'admin' ? 1 : 0);
    expect(gateway.public.requests.length - pub).toBe(backend === 'public' ? 2 : 1);
  });

  describe('DATA beyond the content-length', () => {
    it('in the same write as its HEADERS: RST_STREAM PROTOCOL_ERROR for that stream, nothing forwarded, the connection serves on', async () => {
      const before = gateway.seen();
      await exchange([headersFrame(1, fieldBlock([...POST, ['content-length', '2']]), false), frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('hello'))], MALFORMED);
      await new Promise((r) => setTimeout(r, 20));
      expect(gateway.seen() - before).toBe(1);
      expect(gateway.public.raw()).not.toContain('hello');
    });

    it('after the request went upstream: the stream is reset, its surplus never sent, the backend never gets a whole request, a stream open beside it is answered', async () => {
      const before = gateway.public.requests.length;
      const rawBefore = gateway.public.raw().length;
      const connection = await RawH2.connect(gateway.port);
      try {
        await connection.handshake();
        connection.send(headersFrame(1, fieldBlock([...POST.slice(0, 3), [':path', '/upload'], ['content-length', '4']]), false));
        connection.send(frame(FrameType.DATA, 0, 1, Buffer.from('ab')));
        // The head reached the backend: the request is on its way up.
        for (let i = 0; i < 200 && !gateway.public.raw().slice(rawBefore).includes('POST /upload'); i++) await new Promise((r) => setTimeout(r, 10));
        expect(gateway.public.raw().slice(rawBefore)).toContain('POST /upload');
        connection.send(headersFrame(3, fieldBlock([...POST.slice(0, 3), [':path', '/beside'], ['content-length', '3']]), false));
        connection.send(frame(FrameType.DATA, 0, 1, Buffer.from('cdSURPLUS')));
        expect(await streamVerdict(connection, 1)).toEqual(MALFORMED);
        connection.send(frame(FrameType.DATA, Flag.END_STREAM, 3, Buffer.from('xyz')));
        expect(await streamVerdict(connection, 3)).toEqual({ status: 200 });
      } finally {
        connection.destroy();
      }
      expect(gateway.public.raw().slice(rawBefore)).not.toContain('SURPLUS');
      expect(gateway.public.requests.slice(before).map((r) => r.target)).toEqual(['/beside']);
    });

    it('a DATA frame with padding counts its data only; surplus behind padding is still refused', async () => {
      const padded = (data: string, pad: number, flags: number): Buffer => frame(FrameType.DATA, flags | 0x8, 1, Buffer.concat([Buffer.from([pad]), Buffer.from(data), Buffer.alloc(pad)]));
      await exchange([headersFrame(1, fieldBlock([...POST, ['content-length', '5']]), false), padded('hello', 20, Flag.END_STREAM)], { status: 200 });
      await exchange([headersFrame(1, fieldBlock([...POST, ['content-length', '5']]), false), padded('hello!', 3, Flag.END_STREAM)], MALFORMED);
    });

    it('refused surplus still counts against the connection window: WINDOW_UPDATEs let the client send on', async () => {
      // 6 streams each declaring 1 byte and sending 16 KiB: 96 KiB, past the 64 KiB connection
      // window. Had the surplus been dropped before nghttp2, it would never give that window back.
      const connection = await RawH2.connect(gateway.port);
      try {
        await connection.handshake();
        const sent = 6 * 16_384;
        for (let i = 0; i < 6; i++) {
          const id = 1 + 2 * i;
          connection.send(headersFrame(id, fieldBlock([...POST, ['content-length', '1']]), false), frame(FrameType.DATA, Flag.END_STREAM, id, Buffer.alloc(16_384, 0x61)));
          expect(await streamVerdict(connection, id)).toEqual(MALFORMED);
        }
        connection.send(headersFrame(13, requestHeaders(HOST, '/after'), true));
        expect(await streamVerdict(connection, 13)).toEqual({ status: 200 });
        const returned = connection.frames.filter((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 0).reduce((sum, f) => sum + (f.payload.readUInt32BE(0) & 0x7fffffff), 0);
        expect(returned).toBeGreaterThanOrEqual(sent - 65_535);
      } finally {
        connection.destroy();
      }
    });
  });

  it("a Node client's 300 requests on one connection, Huffman-coded and indexed, the table evicting, are all served with their fields", async () => {
    // Values of 100-300 bytes each indexed: the 4 KiB dynamic table evicts every few requests, and
    // repeated ones are sent as references. A decoder out of step with the client's would refuse
    // or mis-read one (COMPRESSION_ERROR, or a malformed field).
    const session = await connect(`http://127.0.0.1:${gateway.port}`);
    const before = gateway.public.requests.length;
    const values = Array.from({ length: 300 }, (_, i) => `v${i % 40}-${'abcdefghij'.repeat(10 + (i % 21))}`);
    try {
      const answers = await Promise.all(values.map((value, i) => h2request(session, `/many/${i}`, { ':authority': HOST, 'x-v': value, 'x-same': 'always' })));
      expect(answers.map((a) => a.status)).toEqual(values.map(() => 200));
    } finally {
      session.close();
    }
    const received = new Map(gateway.public.requests.slice(before).map((r) => [r.target, r.headers.find(([name]) => name === 'x-v')?.[1]]));
    expect(values.filter((value, i) => received.get(`/many/${i}`) !== value)).toEqual([]);
  });

  it('a well-formed request with every kind of field is still served whole', async () => {
    const before = gateway.public.requests.length;
    await exchange([headersFrame(1, fieldBlock([...GET, ['host', HOST], ['x-tab', 'a\tb'], ['x-empty', ''], ['x-utf8', 'caf\u00c3\u00a9'], ["x-!#$%&'*+.^`|~", 'ok'], ['te', 'trailers']]), true)], { status: 200 });
    const request = gateway.public.requests[before];
    expect(request?.target).toBe('/h2');
    expect(request?.headers.filter(([name]) => name.startsWith('x-') && !name.startsWith('x-forwarded'))).toEqual([
      ['x-tab', 'a\tb'],
      ['x-empty', ''],
      ['x-utf8', 'caf\u00c3\u00a9'],
      ["x-!#$%&'*+.^`|~", 'ok'],
    ]);
  });
});
