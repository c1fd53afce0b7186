// HTTP/2 to HTTP/1.1 downgrade attacks against a real `sluice run`: requests no well-behaved
// client sends, written as raw HPACK (a Node client refuses to send them), forwarded over HTTP/1.1
// to raw-socket backends with a strict parser (support/raw-backend.ts). RFC 9113 §8.2-8.3 call
// each one malformed: the stream must be reset with PROTOCOL_ERROR (or answered 4xx), nothing may
// reach a backend, and the connection's other streams, and other clients, go on being served.
// What nghttp2 lets through (a field with a forbidden character, Host against :authority, DATA
// beyond the content-length) the front door's frame guard refuses: le2-http2-malformed.test.ts.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { useAttackGateway } from './support/attack-gateway.ts';
import { ErrorCode, fieldBlock as block, Flag, frame, FrameType, headersFrame, RawH2, requestFields, requestHeaders, streamVerdict, type StreamVerdict as Verdict } from './support/h2-frames.ts';

const HOST = 'api.example.com';

const GET = requestFields(HOST);
const POST = requestFields(HOST, 'POST');

const verdict = (connection: RawH2): Promise<Verdict> => streamVerdict(connection, 1);

const MALFORMED: Verdict = { reset: ErrorCode.PROTOCOL_ERROR };

// [what, header fields, DATA payload (END_STREAM on it) or null (END_STREAM on HEADERS), verdict]
const matrix: Array<[string, Array<[string, string]>, string | null, Verdict]> = [
  ['content-length above the DATA sent', [...POST, ['content-length', '10']], 'hello', MALFORMED],
  ['two content-length fields that differ', [...POST, ['content-length', '5'], ['content-length', '6']], 'hello', MALFORMED],
  ['transfer-encoding: chunked', [...POST, ['transfer-encoding', 'chunked']], '0\r\n\r\nGET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n', MALFORMED],
  ['connection: keep-alive', [...GET, ['connection', 'keep-alive']], null, MALFORMED],
  ['upgrade: websocket', [...GET, ['upgrade', 'websocket']], null, MALFORMED],
  ['keep-alive', [...GET, ['keep-alive', 'timeout=5']], null, MALFORMED],
  ['proxy-connection', [...GET, ['proxy-connection', 'keep-alive']], null, MALFORMED],
  ['te: gzip', [...GET, ['te', 'gzip']], null, MALFORMED],
  ['an upper-case field name', [...GET, ['X-A', 'b']], null, MALFORMED],
  ['an unknown pseudo-header', [...GET, [':x', 'b']], null, MALFORMED],
  ['a pseudo-header after a regular field', [...GET.slice(0, 3), ['x-a', 'b'], GET[3]!], null, MALFORMED],
  ['a response pseudo-header in a request', [...GET, [':status', '200']], null, MALFORMED],
  ['two :path fields', [...GET, [':path', '/admin']], null, MALFORMED],
  ['no :path', GET.slice(0, 3), null, MALFORMED],
  ['no :method', GET.slice(1), null, MALFORMED],
  ['no :scheme', [GET[0]!, ...GET.slice(2)], null, MALFORMED],
  ['two :method fields', [...GET.slice(0, 3), [':method', 'POST'], GET[3]!], null, MALFORMED],
  ['an empty :authority', [...GET.slice(0, 2), [':authority', ''], GET[3]!], null, MALFORMED],
  [':path not starting with /', [...GET.slice(0, 3), [':path', 'admin']], null, MALFORMED],
  [':path * with GET', [...GET.slice(0, 3), [':path', '*']], null, MALFORMED],
  [':path with a space and a version (a request line)', [...GET.slice(0, 3), [':path', '/x HTTP/1.1']], null, MALFORMED],
  ['an empty :path', [...GET.slice(0, 3), [':path', '']], null, MALFORMED],
  [':method with a space', [[':method', 'GET /admin'], ...GET.slice(1)], null, MALFORMED],
  ['extended CONNECT (:protocol) the gateway did not enable', [[':method', 'CONNECT'], [':protocol', 'websocket'], ...GET.slice(1)], null, MALFORMED],
  ['CONNECT', [[':method', 'CONNECT'], [':authority', 'admin.internal:443']], null, { status: 405 }],
  ['a field name with an underscore', [...GET, ['x_forwarded_for', '10.0.0.1']], null, { status: 400 }],
];

describe('HTTP/2 requests that must not be downgraded', () => {
  const gateway = useAttackGateway();

  it.each(matrix)('%s', async (_what, fields, data, expected) => {
    const seen = gateway.seen();
    const connection = await RawH2.connect(gateway.port);
    try {
      await connection.handshake();
      connection.send(headersFrame(1, block(fields), data === null));
      if (data !== null) connection.send(frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from(data, 'latin1')));
      expect(await verdict(connection)).toEqual(expected);
      // A stream error leaves the connection: the next request on it is served.
      if (!('goaway' in expected)) {
        connection.send(headersFrame(3, requestHeaders(HOST, '/next'), true));
        const next = await connection.waitFor((f) => f.streamId === 3 && f.type === FrameType.HEADERS);
        expect(next?.payload[0]).toBe(0x88); // :status 200
      }
    } finally {
      connection.destroy();
    }
    await new Promise((r) => setTimeout(r, 20));
    // Only the follow-up request reached a backend, well-formed.
    expect(gateway.seen() - seen).toBe('goaway' in expected ? 0 : 1);
    expect(gateway.public.requests.at(-1)?.target).toBe('/next');
    expect(gateway.admin.malformed.concat(gateway.public.malformed)).toEqual([]);
  });

  it('forwards te: trailers and a :authority-less request with Host, and nothing smuggled ever reached a backend', async () => {
    const connection = await RawH2.connect(gateway.port);
    try {
      await connection.handshake();
      connection.send(headersFrame(1, block([...GET, ['te', 'trailers']]), true));
      connection.send(headersFrame(3, block([[':method', 'GET'], [':scheme', 'http'], [':path', '/by-host'], ['host', HOST]]), true));
      for (const id of [1, 3]) expect((await connection.waitFor((f) => f.streamId === id && f.type === FrameType.HEADERS))?.payload[0]).toBe(0x88);
    } finally {
      connection.destroy();
    }
    expect(gateway.public.requests.slice(-2).map((r) => r.target).sort()).toEqual(['/by-host', '/h2']);
    expect(gateway.admin.raw() + gateway.public.raw()).not.toContain('smuggled');
  });
});
