// h2spec with a GRPCRoute serving the listeners instead of an HTTPRoute: h2spec's requests are not
// gRPC, so the gateway answers each at its HEADERS (415, trailers-only gRPC replies for gRPC rules)
// while the request may still be coming. Every one of the 145 tests must still pass on both
// listeners (8.1.2.1/3 sends malformed trailers after such an answer). Raw frames force each order
// of "malformed rest of the request" and "our complete answer" that h2spec meets only by chance.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { describeIfPossible, requiredByEnvironment } from '../support/suite.ts';
import { ErrorCode, Flag, frame, FrameType, headersFrame, PREFACE, RawH2, requestHeaders, type Frame } from './support/h2-frames.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';
import { H2SPEC_TESTS, failures, rerunEarlyAnswerRaces, runH2spec, skipReason } from './support/h2spec.ts';

// Every gRPC call (no matches) to the echo Service; h2spec's calls never reach it.
const GRPC_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: all-grpc, namespace: default}
spec:
  parentRefs: [{name: h2}]
  rules:
  - backendRefs: [{name: echo, port: 80}]
`;

/** An HPACK literal header field without indexing, new name (names and values shorter than 127 bytes). */
function literalField(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
}

/** The two malformed requests of h2spec's 8.1/1 and 8.1.2.6/1, split where h2spec's writes may be split. */
const MALFORMED = [
  {
    name: 'trailers without END_STREAM (h2spec http2/8.1/1)',
    headers: [] as Buffer[],
    rest: [frame(FrameType.DATA, 0, 1, Buffer.from('test')), headersFrame(1, literalField('x-test', 'ok'), false)],
  },
  {
    name: 'a content-length the DATA does not match (h2spec http2/8.1.2.6/1)',
    headers: [literalField('content-length', '1')],
    rest: [frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('test'))],
  },
];

const isEndOfResponse = (f: Frame): boolean => f.streamId === 1 && (f.type === FrameType.DATA || f.type === FrameType.HEADERS) && (f.flags & Flag.END_STREAM) !== 0;
const rstCode = (f: Frame | null): number | undefined => f?.payload.readUInt32BE(0);

describe('a GRPCRoute answering non-gRPC requests at their HEADERS', () => {
  let gateway: H2Gateway;
  /** A raw HTTP/2 connection to the cleartext listener for `use`, destroyed after it. */
  const withRaw = async (use: (raw: RawH2) => Promise<void>): Promise<void> => {
    const raw = await RawH2.connect(gateway.plainPort);
    try {
      await use(raw);
    } finally {
      raw.destroy();
    }
  };
  let authority: string;

  beforeAll(async () => {
    gateway = await startH2Gateway([], '', GRPC_ROUTE);
    authority = `127.0.0.1:${gateway.plainPort}`;
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  const post = (extra: Buffer[]): Buffer => headersFrame(1, Buffer.concat([requestHeaders(authority, '/', { method: 'POST' }), ...extra]), false);

  /** Stream 3 is answered (415) on the same connection: whatever came before did not end it. */
  async function servesNextStream(raw: RawH2): Promise<void> {
    raw.send(headersFrame(3, requestHeaders(authority, '/next'), true));
    const response = await raw.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 3);
    expect(response).not.toBeNull();
    expect(raw.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
  }

  it.each(MALFORMED)('ignores the rest of a request that comes after its answer and RST_STREAM NO_ERROR: $name', async ({ headers, rest }) => {
    await withRaw(async (raw) => {
      await raw.handshake();
      raw.send(post(headers));
      // RFC 9113 §8.1: a complete response, then RST_STREAM NO_ERROR asks the client to stop sending.
      const ended = await raw.waitFor(isEndOfResponse);
      const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
      expect(ended).not.toBeNull();
      expect(rstCode(reset)).toBe(ErrorCode.NO_ERROR);
      expect(raw.frames.indexOf(reset!)).toBeGreaterThan(raw.frames.indexOf(ended!));
      const before = raw.frames.length;
      // §5.1 (closed): frames on a stream after we sent RST_STREAM are ignored, not an error.
      raw.send(...rest);
      await servesNextStream(raw);
      expect(raw.frames.slice(before).filter((f) => f.streamId !== 3 && f.type !== FrameType.SETTINGS)).toEqual([]);
    });
  });

  it('resets a stream whose trailers lack END_STREAM when they come with the request (PROTOCOL_ERROR, RFC 9113 §8.1)', async () => {
    await withRaw(async (raw) => {
      await raw.handshake();
      // One write: the gateway reads it whole before it can answer.
      raw.send(post(MALFORMED[0]!.headers), ...MALFORMED[0]!.rest);
      const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
      expect(rstCode(reset)).toBe(ErrorCode.PROTOCOL_ERROR);
      expect(raw.frames.some(isEndOfResponse)).toBe(false);
      await servesNextStream(raw);
    });
  });

  it('resets a stream whose trailers lack END_STREAM while its answer is still held by flow control (PROTOCOL_ERROR)', async () => {
    await withRaw(async (raw) => {
      // SETTINGS_INITIAL_WINDOW_SIZE 0: the 415's HEADERS go out, its body waits; the stream stays open.
      raw.send(PREFACE, frame(FrameType.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 0, 0, 0])));
      await raw.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
      raw.send(frame(FrameType.SETTINGS, Flag.ACK, 0), post(MALFORMED[0]!.headers));
      expect(await raw.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1)).not.toBeNull();
      raw.send(...MALFORMED[0]!.rest);
      const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
      expect(rstCode(reset)).toBe(ErrorCode.PROTOCOL_ERROR);
      expect(raw.frames.some(isEndOfResponse)).toBe(false);
    });
  });

  it('resets the stream whose DATA passes its content-length when it comes with the request (PROTOCOL_ERROR); the connection serves on', async () => {
    await withRaw(async (raw) => {
      await raw.handshake();
      raw.send(post(MALFORMED[1]!.headers), ...MALFORMED[1]!.rest);
      // The frame guard finds it before nghttp2 (which made it a session error: GOAWAY for the
      // whole connection); RFC 9113 §8.1.1 makes it a stream error.
      const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
      expect(rstCode(reset)).toBe(ErrorCode.PROTOCOL_ERROR);
      expect(raw.frames.some(isEndOfResponse)).toBe(false);
      await servesNextStream(raw);
    });
  });

  describeIfPossible('h2spec with a GRPCRoute', skipReason(), requiredByEnvironment('SLUICE_H2SPEC_REQUIRED'))('h2spec against sluice run with a GRPCRoute', () => {
    it.each([
      ['cleartext listener (prior knowledge)', false],
      ['HTTPS listener (h2 by ALPN)', true],
    ])('passes every test on the %s', async (_name, tls) => {
      const port = tls ? gateway.tlsPort : gateway.plainPort;
      const cases = await rerunEarlyAnswerRaces(await runH2spec(port, tls), port, tls);
      expect(failures(cases)).toEqual([]);
      expect(cases.filter((c) => c.outcome === 'passed')).toHaveLength(H2SPEC_TESTS);
      expect(gateway.sluice.logs()).not.toMatch(/ERR_INTERNAL_ASSERTION|uncaught/i);
    }, 300_000);
  });
});
