// A hostile HTTP/2 backend (a `kubernetes.io/h2c` Service, HTTP/2 with prior knowledge) behind a
// real `sluice run`, its frames written by hand (support/raw-h2-backend.ts): GOAWAY and RST_STREAM
// before and in the middle of a response, SETTINGS and PING floods, header blocks past the limit,
// trailers with pseudo-headers, a stream answered twice, fields HTTP/2 forbids. The client (HTTP/1.1)
// gets 502 before anything was relayed and a cut connection after, never a byte of another answer;
// a stream's failure leaves the connection's other streams (other clients) alone; the gateway goes
// on serving over a new connection when the old one is gone.

import { describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import { ErrorCode, Flag, frame, FrameType, u32 } from './support/h2-frames.ts';
import { connect } from './support/http2-client.ts';
import { headerBlock, honestH2, type H2Script, type H2Stream } from './support/raw-h2-backend.ts';
import { ask, expectBadGateway, useUpstreamAttackGateway } from './support/upstream-attack-gateway.ts';

const goaway = (last: number, code: number): Buffer => frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(last), u32(code)]));
const reset = (stream: H2Stream, code: number): Buffer => frame(FrameType.RST_STREAM, 0, stream.id, u32(code));
const ok = (stream: H2Stream): void => stream.headers([[':status', '200']], false);

describe('a hostile HTTP/2 backend', () => {
  const gateway = useUpstreamAttackGateway(['--backend-idle-timeout', '1500']);

  /** After each case: the backend answers honestly again, and does, over a live connection. */
  async function stillServes(): Promise<void> {
    gateway.h2.script = honestH2;
    const again = await ask(gateway.port, '/h2/again');
    expect(again.status).toBe(200);
    expect(again.body).toMatch(/^[0-9a-f]+\r\nok \d+\/\d+\n\r\n0\r\n\r\n$/);
  }

  const refused: Array<[string, H2Script]> = [
    ['GOAWAY before the answer (stream not processed)', (s) => s.socket.write(goaway(0, ErrorCode.NO_ERROR))],
    ['GOAWAY before the answer, then the close', (s) => s.socket.end(goaway(0, ErrorCode.NO_ERROR))],
    ['RST_STREAM before the answer', (s) => s.socket.write(reset(s, ErrorCode.INTERNAL_ERROR))],
    ['20 000 SETTINGS frames (flood)', (s) => {
      s.socket.write(Buffer.concat(Array.from({ length: 20_000 }, () => frame(FrameType.SETTINGS, 0, 0))));
      ok(s);
      s.data('EVIL', true);
    }],
    ['20 000 PINGs (flood)', (s) => {
      s.socket.write(Buffer.concat(Array.from({ length: 20_000 }, () => frame(FrameType.PING, 0, 0, Buffer.alloc(8)))));
      ok(s);
      s.data('EVIL', true);
    }],
    ['a 200 KB header block over CONTINUATION frames', (s) => {
      const block = headerBlock([[':status', '200'], ...Array.from({ length: 200 }, (_, i): [string, string] => [`x-${i}`, 'a'.repeat(1_000)])]);
      s.socket.write(frame(FrameType.HEADERS, 0, s.id, block.subarray(0, 16_000)));
      for (let at = 16_000; at < block.length; at += 16_000) s.socket.write(frame(0x9 /* CONTINUATION */, at + 16_000 >= block.length ? Flag.END_HEADERS : 0, s.id, block.subarray(at, at + 16_000)));
      s.data('EVIL', true);
    }],
    ['no :status', (s) => {
      s.headers([['x-a', 'b']], false);
      s.data('EVIL', true);
    }],
    [':status 600', (s) => {
      s.headers([[':status', '600']], false);
      s.data('EVIL', true);
    }],
    ['a connection-specific field (RFC 9113 §8.2.2)', (s) => {
      s.headers([[':status', '200'], ['connection', 'close']], false);
      s.data('EVIL', true);
    }],
    ['an upper-case field name (RFC 9113 §8.2)', (s) => {
      s.headers([[':status', '200'], ['X-Upper', 'a']], false);
      s.data('EVIL', true);
    }],
    ['DATA before HEADERS', (s) => {
      s.data('EVIL', false);
      ok(s);
      s.data('EVIL', true);
    }],
  ];
  it.each(refused)('%s: 502, nothing of it relayed', async (_what, script) => {
    gateway.h2.script = script;
    const answer = await ask(gateway.port, '/h2/case');
    expectBadGateway(answer);
    await stillServes();
  });

  const cut: Array<[string, H2Script]> = [
    ['GOAWAY (PROTOCOL_ERROR) mid-body, then the close', (s) => {
      ok(s);
      s.data('hel', false);
      s.socket.end(goaway(0, ErrorCode.PROTOCOL_ERROR));
    }],
    ['RST_STREAM mid-body', (s) => {
      ok(s);
      s.data('hel', false);
      s.socket.write(reset(s, ErrorCode.INTERNAL_ERROR));
    }],
    ['trailers with a pseudo-header (RFC 9113 §8.1)', (s) => {
      ok(s);
      s.data('hel', false);
      s.headers([[':status', '500'], ['grpc-status', '0']], true);
    }],
    ['a body shorter than its content-length', (s) => {
      s.headers([[':status', '200'], ['content-length', '10']], false);
      s.data('hel', true);
    }],
  ];
  it.each(cut)('%s: the client connection is cut after the bytes that came', async (_what, script) => {
    gateway.h2.script = script;
    const answer = await ask(gateway.port, '/h2/case');
    expect(answer.status).toBe(200);
    expect(answer.closed).toBe(true);
    expect(answer.body.replace(/^3\r\n(hel)\r\n$/, '$1')).toBe('hel');
    await stillServes();
  });

  it('a stream answered twice: the client gets the first answer, whole, and no byte of the second', async () => {
    gateway.h2.script = (s) => {
      ok(s);
      s.data('first', true);
      s.headers([[':status', '200']], false);
      s.data('EVIL', true);
    };
    const answer = await ask(gateway.port, '/h2/case');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('5\r\nfirst\r\n0\r\n\r\n');
    expect(answer.closed).toBe(false);
    await stillServes();
  });

  it('a field value with CR LF never becomes a field of its own downstream', async () => {
    gateway.h2.script = (s) => {
      s.headers([[':status', '200'], ['x-a', 'b\r\nset-cookie: evil=1']], false);
      s.data('hi', true);
    };
    const answer = await ask(gateway.port, '/h2/case');
    expect(answer.text).not.toMatch(/set-cookie/i);
    expect([200, 502]).toContain(answer.status);
    await stillServes();
  });

  it('no answer at all: 504 after the backend idle bound', async () => {
    gateway.h2.script = () => undefined;
    const answer = await ask(gateway.port, '/h2/case');
    expect(answer.status).toBe(504);
    expect(answer.body).toBe('Gateway Timeout\n');
    await stillServes();
  });

  it('a stream reset leaves the other streams of its connection alone: the other client gets its own answer', async () => {
    // Two requests at once share the endpoint's HTTP/2 connection: the first waits, the second is
    // reset, then the first is answered.
    const waiting: H2Stream[] = [];
    gateway.h2.script = (s) => {
      if (waiting.length === 0) {
        waiting.push(s);
        return;
      }
      s.socket.write(reset(s, ErrorCode.INTERNAL_ERROR));
      setTimeout(() => {
        const first = waiting[0]!;
        ok(first);
        first.data(`mine ${first.id}`, true);
      }, 100);
    };
    const streamsBefore = gateway.h2.streams.length;
    const first = ask(gateway.port, '/h2/first');
    while (gateway.h2.streams.length === streamsBefore) await new Promise((resolve) => setTimeout(resolve, 10));
    const second = await ask(gateway.port, '/h2/second');
    expectBadGateway(second);
    const answer = await first;
    expect(answer.status).toBe(200);
    const [a, b] = gateway.h2.streams.slice(streamsBefore);
    expect(a!.connection).toBe(b!.connection);
    expect(answer.body).toBe(`${`mine ${a!.id}`.length.toString(16)}\r\nmine ${a!.id}\r\n0\r\n\r\n`);
    await stillServes();
  });

  describe('to a gRPC client (HTTP/2 to the gateway)', () => {
    interface Call {
      headers: http2.IncomingHttpHeaders;
      trailers: http2.IncomingHttpHeaders;
      data: number;
      /** The stream's error (a reset), if it ended with one. */
      error: string | null;
    }

    /** One unary call with an empty message; what came back, however the stream ended. */
    async function call(): Promise<Call> {
      const session = await connect(`http://127.0.0.1:${gateway.port}`);
      try {
        return await new Promise<Call>((resolve) => {
          const stream = session.request({ ':method': 'POST', ':path': '/h2/pkg.Svc/Do', 'content-type': 'application/grpc', te: 'trailers' });
          const result: Call = { headers: {}, trailers: {}, data: 0, error: null };
          stream.on('response', (headers) => (result.headers = headers));
          stream.on('trailers', (trailers) => (result.trailers = trailers));
          stream.on('data', (chunk: Buffer) => (result.data += chunk.length));
          stream.on('error', (error: Error) => (result.error = error.message));
          stream.on('close', () => resolve(result));
          stream.end(Buffer.alloc(5));
        });
      } finally {
        session.close();
      }
    }

    it('a stream reset before the answer: UNAVAILABLE (14), trailers-only, as Envoy', async () => {
      gateway.h2.script = (s) => s.socket.write(reset(s, ErrorCode.INTERNAL_ERROR));
      const result = await call();
      expect(result.headers[':status']).toBe(200);
      expect(result.headers['grpc-status']).toBe('14');
      expect(result.data).toBe(0);
      await stillServes();
    });

    it('trailers with a pseudo-header mid-call: the call is reset, never ended with a status it did not get', async () => {
      gateway.h2.script = (s) => {
        s.headers([[':status', '200'], ['content-type', 'application/grpc']], false);
        s.data('\0\0\0\0\0', false);
        s.headers([[':status', '200'], ['grpc-status', '0']], true);
      };
      const result = await call();
      expect(result.headers[':status']).toBe(200);
      expect(result.trailers['grpc-status']).toBeUndefined();
      expect(result.error).not.toBeNull();
      await stillServes();
    });

    it('an honest call still ends with its grpc-status in trailers', async () => {
      gateway.h2.script = (s) => {
        s.headers([[':status', '200'], ['content-type', 'application/grpc']], false);
        s.data('\0\0\0\0\0', false);
        s.headers([['grpc-status', '0']], true);
      };
      const result = await call();
      expect(result.error).toBeNull();
      expect(result.data).toBe(5);
      expect(result.trailers['grpc-status']).toBe('0');
    });
  });
});
