// Malformed HTTP/2 requests count in sluice_downstream_rejected_total as HTTP/1.1's refusals do,
// with a reason label saying what was wrong: those the front door's frame guard resets
// (le2-http2-malformed.test.ts) and those nghttp2 resets itself (attack-http2.test.ts). A real
// `sluice run`, raw frames; each case is RST_STREAM PROTOCOL_ERROR on stream 1, then counted once.

import { describe, expect, it } from '@jest/globals';
import { ADMIN_HOST, useAttackGateway } from './support/attack-gateway.ts';
import { ErrorCode, fieldBlock, firstThenNext, frame, FrameType, headersFrame, requestFields, u32 } from './support/h2-frames.ts';

const HOST = 'api.example.com';
const METRIC = 'sluice_downstream_rejected_total';
const GET = requestFields(HOST);
const POST = requestFields(HOST, 'POST');

describe('malformed HTTP/2 requests are counted by reason', () => {
  const gateway = useAttackGateway();

  /** All series of the metric, by reason. */
  async function counts(): Promise<Record<string, number>> {
    const text = await (await fetch(`${gateway.sluice.admin}/metrics`)).text();
    const byReason: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const match = line.startsWith(`${METRIC}{`) ? /reason="([^"]*)"\} (\S+)$/.exec(line) : null;
      if (match !== null) byReason[match[1]!] = (byReason[match[1]!] ?? 0) + Number(match[2]);
    }
    return byReason;
  }

  /** What `frames` on stream 1 added to the metric, after the stream's verdict and a served stream 3. */
  async function counted(frames: Buffer[], verdict: object = { reset: ErrorCode.PROTOCOL_ERROR }): Promise<Record<string, number>> {
    const before = await counts();
    expect(await firstThenNext(gateway.port, HOST, frames)).toEqual({ first: verdict, next: { status: 200 } });
    const after = await counts();
    const added: Record<string, number> = {};
    for (const [reason, value] of Object.entries(after)) if (value !== (before[reason] ?? 0)) added[reason] = value - (before[reason] ?? 0);
    return added;
  }

  const cases: Array<[string, Buffer[], Record<string, number>]> = [
    ['a CR LF in a value', [headersFrame(1, fieldBlock([...GET, ['x-a', 'b\r\nx-b: c']]), true)], { invalid_header: 1 }],
    ['a field name with a space', [headersFrame(1, fieldBlock([...GET, ['x a', 'b']]), true)], { invalid_header: 1 }],
    ['a host that is no authority', [headersFrame(1, fieldBlock([...GET, ['host', `evil@${HOST}`]]), true)], { invalid_host: 1 }],
    ['two host fields', [headersFrame(1, fieldBlock([...GET, ['host', HOST], ['host', HOST]]), true)], { duplicate_host: 1 }],
    ['a host naming another entity than :authority', [headersFrame(1, fieldBlock([...GET, ['host', ADMIN_HOST]]), true)], { host_authority_mismatch: 1 }],
    [
      'DATA beyond the content-length',
      [headersFrame(1, fieldBlock([...POST, ['content-length', '2']]), false), frame(FrameType.DATA, 0x1, 1, Buffer.from('hello'))],
      { invalid_content_length: 1 },
    ],
    ['a malformed trailer field', [headersFrame(1, fieldBlock([...POST, ['content-length', '5']]), false), frame(FrameType.DATA, 0, 1, Buffer.from('hello')), headersFrame(1, fieldBlock([['x-t', 'a\r\nb']]), true)], { invalid_header: 1 }],
    // nghttp2 refuses these itself and does not say why.
    ['connection: keep-alive (nghttp2)', [headersFrame(1, fieldBlock([...GET, ['connection', 'keep-alive']]), true)], { malformed_request: 1 }],
    ['no :path (nghttp2)', [headersFrame(1, fieldBlock(GET.slice(0, 3)), true)], { malformed_request: 1 }],
    ['content-length above the DATA sent (nghttp2)', [headersFrame(1, fieldBlock([...POST, ['content-length', '10']]), false), frame(FrameType.DATA, 0x1, 1, Buffer.from('hello'))], { malformed_request: 1 }],
  ];
  it.each(cases)('%s: counted once under its reason', async (_what, frames, expected) => {
    expect(await counted(frames)).toEqual(expected);
  });

  it('a well-formed request, and a stream reset for a frame (PRIORITY on itself), are not counted', async () => {
    expect(await counted([headersFrame(1, fieldBlock(GET), true)], { status: 200 })).toEqual({});
    const priorityOnItself = frame(FrameType.PRIORITY, 0, 1, Buffer.concat([u32(1), Buffer.from([15])]));
    expect(await counted([headersFrame(1, fieldBlock(POST), false), priorityOnItself], { reset: ErrorCode.PROTOCOL_ERROR })).toEqual({});
  });
});
