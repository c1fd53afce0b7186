// The front door announces a 32 KiB header list (SETTINGS_MAX_HEADER_LIST_SIZE, README "HTTP/2"),
// but Node enforces it only once the client has acknowledged those SETTINGS: a client that never
// did had a 120 KiB header list served and forwarded. A real `sluice run`, raw frames; the backend
// records what reaches it.

import { describe, expect, it } from '@jest/globals';
import { useAttackGateway } from './support/attack-gateway.ts';
import { ErrorCode, fieldBlock, headerFrames, RawH2, requestHeaders, streamVerdict } from './support/h2-frames.ts';

const HOST = 'api.example.com';

/** A GET whose header list holds `count` fields of 4 000 bytes besides its pseudo-header fields (about 4 KiB each). */
function bigRequest(streamId: number, count: number): Buffer[] {
  const fields: Array<[string, string]> = Array.from({ length: count }, (_, i) => [`x-f${i}`, 'v'.repeat(4_000)]);
  const block = Buffer.concat([requestHeaders(HOST, '/big'), fieldBlock(fields)]);
  return headerFrames(streamId, block);
}

describe('a header list over the 32 KiB the front door announces is refused, SETTINGS acknowledged or not', () => {
  const gateway = useAttackGateway();

  it.each([
    ['never acknowledged', false],
    ['acknowledged', true],
  ])('SETTINGS %s: 30 x 4 000 bytes RST_STREAM ENHANCE_YOUR_CALM, never forwarded; 7 x 4 000 bytes served', async (_what, acknowledge) => {
    const connection = await RawH2.connect(gateway.port);
    try {
      await connection.handshake(acknowledge);
      const before = gateway.seen();
      connection.send(...bigRequest(1, 30));
      expect(await streamVerdict(connection, 1)).toEqual({ reset: ErrorCode.ENHANCE_YOUR_CALM });
      connection.send(...bigRequest(3, 7));
      expect(await streamVerdict(connection, 3)).toEqual({ status: 200 });
      expect(gateway.seen() - before).toBe(1);
    } finally {
      connection.destroy();
    }
  });
});
