// The HTTP/2 front door of a real `sluice run`, with raw frames and node:http2 clients: the HTTP/2
// timeouts (idle → GOAWAY, SETTINGS and PING acknowledgements, a client that says nothing), the
// announced limits (concurrent streams, header list size), a rapid-reset flood (CVE-2023-44487)
// that must not keep others from being served, and the frame checks the guard adds in front of
// nghttp2 (dataplane/http2-front.ts), which h2spec also covers where it is built.

import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import { serviceYaml, type NamedBackend } from '../e2e/backends.ts';
import { connect, h2request } from './support/http2-client.ts';
import { ErrorCode, Flag, frame, FrameType, headersFrame, RawH2, requestHeaders, u32 } from './support/h2-frames.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';

/** Short through the flags, so that the tests see them run out; bounds below allow generous slack (shared box). */
const IDLE_MS = 600;
const ACK_MS = 600;
const BODY_MS = 600;
const SLACK_MS = 5_000;

describe('HTTP/2 front door', () => {
  let gateway: H2Gateway;
  let authority: string;
  /** A backend that answers at once, before reading the request body (as many do for errors). */
  let early: NamedBackend;

  beforeAll(async () => {
    early = await startEarlyBackend();
    const earlyRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: early, namespace: default}
spec:
  parentRefs: [{name: h2}]
  rules: [{matches: [{path: {type: PathPrefix, value: /early}}], backendRefs: [{name: early, port: 80}]}]
---
${serviceYaml('early', early)}`;
    gateway = await startH2Gateway(['--http2-idle-timeout', String(IDLE_MS), '--http2-ack-timeout', String(ACK_MS), '--request-body-timeout', String(BODY_MS)], earlyRoute);
    authority = `127.0.0.1:${gateway.plainPort}`;
  });

  afterAll(async () => {
    await gateway?.stop();
    await early?.close();
  });

  describe('timeouts', () => {
    it('sends GOAWAY (NO_ERROR) to an idle session and closes it', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake();
        raw.send(headersFrame(1, requestHeaders(authority, '/before-idle'), true));
        expect(await raw.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1)).not.toBeNull();
        const started = performance.now();
        expect(await raw.goawayCode(IDLE_MS + SLACK_MS)).toBe(ErrorCode.NO_ERROR);
        expect(performance.now() - started).toBeGreaterThanOrEqual(IDLE_MS / 2);
        await raw.closedWithin(ACK_MS + SLACK_MS);
      } finally {
        raw.destroy();
      }
    });

    it('closes a connection whose client never acknowledges our SETTINGS (SETTINGS_TIMEOUT, RFC 9113 §6.5.3)', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake(false);
        expect(await raw.goawayCode(ACK_MS + SLACK_MS)).toBe(ErrorCode.SETTINGS_TIMEOUT);
        await raw.closedWithin(SLACK_MS);
      } finally {
        raw.destroy();
      }
    });

    it('closes a TLS connection that negotiated h2 and then sends nothing, not even the preface', async () => {
      const raw = await RawH2.connect(gateway.tlsPort, gateway.hostname);
      try {
        expect(await raw.goawayCode(ACK_MS + SLACK_MS)).toBe(ErrorCode.SETTINGS_TIMEOUT);
        await raw.closedWithin(SLACK_MS);
      } finally {
        raw.destroy();
      }
    });

    it('probes a quiet connection with open streams by PING and closes it when no ACK comes', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake();
        // A request body that never comes: the stream stays open and nothing moves.
        raw.send(headersFrame(1, requestHeaders(authority, '/upload', { method: 'POST' }), false));
        const ping = await raw.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) === 0, IDLE_MS + SLACK_MS);
        expect(ping).not.toBeNull();
        await raw.closedWithin(ACK_MS + SLACK_MS);
      } finally {
        raw.destroy();
      }
    });

    it('keeps a quiet connection with an open stream when the client answers the PING probe', async () => {
      const session = await connect(`http://${authority}`);
      try {
        // Three idle timeouts of silence while the backend takes its time: node:http2 ACKs each PING.
        const res = await h2request(session, `/long-poll?delay=${3 * IDLE_MS}`);
        expect(res.status).toBe(200);
        expect(res.echo?.path).toBe(`/long-poll?delay=${3 * IDLE_MS}`);
      } finally {
        session.close();
      }
    });

    it('resets a stream whose request body stalls (request body timeout); the connection serves on', async () => {
      const session = await connect(`http://${authority}`);
      try {
        const stream = session.request({ ':method': 'POST', ':path': '/stalled-upload' }, { endStream: false });
        stream.on('error', () => undefined); // the reset surfaces as an error too
        stream.write('the first part, and then nothing');
        const started = performance.now();
        const rstCode = await new Promise<number | undefined>((resolve) => stream.once('close', () => resolve(stream.rstCode)));
        expect(rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
        expect(performance.now() - started).toBeLessThan(BODY_MS + SLACK_MS);
        expect((await h2request(session, '/after-stall')).status).toBe(200);
      } finally {
        session.close();
      }
    });
  });

  describe('limits', () => {
    it('announces at most 1000 concurrent streams and a 32 KiB header list', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake();
        const settings = await raw.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
        const announced = new Map<number, number>();
        for (let offset = 0; settings !== null && offset + 6 <= settings.payload.length; offset += 6) {
          announced.set(settings.payload.readUInt16BE(offset), settings.payload.readUInt32BE(offset + 2));
        }
        expect(announced.get(0x3)).toBe(1000); // SETTINGS_MAX_CONCURRENT_STREAMS
        expect(announced.get(0x6)).toBe(32 * 1024); // SETTINGS_MAX_HEADER_LIST_SIZE
      } finally {
        raw.destroy();
      }
    });

    it('refuses a request whose header list is larger than announced, and serves the next one on the same connection', async () => {
      const session = await connect(`http://${authority}`);
      try {
        const outcome = await h2request(session, '/big', { 'x-big': 'a'.repeat(40 * 1024) }).then(
          (res) => `status ${res.status}`,
          (error: Error & { code?: string }) => `error ${error.code ?? error.message}`,
        );
        expect(outcome).toMatch(/^(status 431|error ERR_HTTP2_STREAM_ERROR)$/);
        expect(gateway.echo.received.some((r) => r.path === '/big')).toBe(false);
        expect((await h2request(session, '/after-big')).status).toBe(200);
      } finally {
        session.close();
      }
    });

    it('cuts a rapid-reset flood (CVE-2023-44487) while another client is served', async () => {
      const flooder = await RawH2.connect(gateway.plainPort);
      const bystander = await connect(`http://${authority}`);
      try {
        await flooder.handshake();
        const served: number[] = [];
        const bystanderLoop = (async () => {
          for (let i = 0; i < 20; i++) served.push((await h2request(bystander, `/bystander/${i}`)).status);
        })().catch((error: Error) => error);
        // 20 000 streams opened and reset at once, in batches written back to back.
        const block = requestHeaders(authority, '/flood');
        for (let batch = 0; batch < 20 && !flooder.closed; batch++) {
          const frames: Buffer[] = [];
          for (let i = 0; i < 1000; i++) {
            const id = 1 + 2 * (batch * 1000 + i);
            frames.push(headersFrame(id, block, false), frame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.CANCEL)));
          }
          flooder.send(...frames);
          await new Promise((resolve) => setImmediate(resolve));
        }
        // nghttp2's stream reset rate limit (a burst of 1000, then 33 a second) ends the connection
        // with INTERNAL_ERROR, which is what it sends for it.
        expect(await flooder.goawayCode(SLACK_MS)).toBe(ErrorCode.INTERNAL_ERROR);
        await flooder.closedWithin(SLACK_MS);
        expect(await bystanderLoop).toBeUndefined();
        expect(served).toEqual(new Array(20).fill(200));
        // Far fewer than the 20 000 flood streams reached a backend.
        expect(gateway.echo.received.filter((r) => r.path === '/flood').length).toBeLessThan(2_000);
      } finally {
        flooder.destroy();
        bystander.close();
      }
    }, 30_000);
  });

  describe('streams', () => {
    it('asks the client to stop sending a request body once the response is complete (RST_STREAM NO_ERROR, RFC 9113 §8.1)', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake();
        raw.send(headersFrame(1, requestHeaders(authority, '/early/upload', { method: 'POST' }), false), frame(FrameType.DATA, 0, 1, Buffer.alloc(1000, 'x')));
        const ended = await raw.waitFor((f) => (f.type === FrameType.DATA || f.type === FrameType.HEADERS) && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0);
        expect(ended).not.toBeNull();
        // Without it the client would keep its upload open until flow control stalls it, forever.
        const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
        expect(reset?.payload.readUInt32BE(0)).toBe(ErrorCode.NO_ERROR);
        expect(raw.frames.indexOf(reset!)).toBeGreaterThan(raw.frames.indexOf(ended!));
        expect(raw.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
      } finally {
        raw.destroy();
      }
    });
  });

  describe('frame checks in front of nghttp2', () => {
    it('ignores a PING ACK it did not ask for and answers the next PING', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake();
        raw.send(frame(FrameType.PING, Flag.ACK, 0, Buffer.from('unasked!')), frame(FrameType.PING, 0, 0, Buffer.from('answerme')));
        const ack = await raw.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
        expect(ack?.payload.toString()).toBe('answerme');
        expect(raw.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
      } finally {
        raw.destroy();
      }
    });

    it('treats DATA on a stream the client reset as a connection error STREAM_CLOSED', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake();
        raw.send(
          headersFrame(1, requestHeaders(authority, '/reset', { method: 'POST' }), false),
          frame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)),
          frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('late')),
        );
        expect(await raw.goawayCode()).toBe(ErrorCode.STREAM_CLOSED);
        await raw.closedWithin(SLACK_MS);
      } finally {
        raw.destroy();
      }
    });

    it('resets a stream whose window grows past 2^31-1 (FLOW_CONTROL_ERROR) and keeps the connection', async () => {
      const raw = await RawH2.connect(gateway.plainPort);
      try {
        await raw.handshake();
        raw.send(
          headersFrame(1, requestHeaders(authority, '/window', { method: 'POST' }), false),
          frame(FrameType.WINDOW_UPDATE, 0, 1, u32(0x7fffffff)),
          frame(FrameType.WINDOW_UPDATE, 0, 1, u32(0x7fffffff)),
        );
        const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
        expect(reset?.payload.readUInt32BE(0)).toBe(ErrorCode.FLOW_CONTROL_ERROR);
        raw.send(headersFrame(3, requestHeaders(authority, '/after-window'), true));
        const response = await raw.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 3);
        expect(response).not.toBeNull();
        expect(raw.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
      } finally {
        raw.destroy();
      }
    });

    it('answers a broken preface with GOAWAY PROTOCOL_ERROR, not an HTTP/1.1 reply', async () => {
      for (const broken of ['PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n', 'INVALID CONNECTION PREFACE\r\n\r\n']) {
        const raw = await RawH2.connect(gateway.plainPort);
        try {
          raw.send(Buffer.from(broken, 'latin1'));
          expect(await raw.goawayCode()).toBe(ErrorCode.PROTOCOL_ERROR);
          await raw.closedWithin(SLACK_MS);
        } finally {
          raw.destroy();
        }
      }
    });

    it('tells the backend the client address, over cleartext and TLS (the guard keeps the peer)', async () => {
      for (const url of [`http://${authority}`, `https://127.0.0.1:${gateway.tlsPort}`]) {
        const session = await connect(url, url.startsWith('https') ? { servername: gateway.hostname } : {});
        try {
          const res = await h2request(session, '/who', { ':authority': gateway.hostname });
          expect(res.status).toBe(200);
          const forwarded = res.echo?.rawHeaders.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'x-forwarded-for') ?? -1;
          expect(res.echo?.rawHeaders[forwarded + 1]).toBe('127.0.0.1');
        } finally {
          session.close();
        }
      }
    });
  });

  it('is still alive and serving after all of that', async () => {
    const session = await connect(`http://${authority}`);
    try {
      expect((await h2request(session, '/still-here')).status).toBe(200);
    } finally {
      session.close();
    }
    expect(gateway.sluice.logs()).not.toMatch(/ERR_INTERNAL_ASSERTION|uncaught/i);
  });
});


/** Answers 200 to every request at once, never reading its body. */
async function startEarlyBackend(): Promise<NamedBackend> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('answered before the body\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    name: 'early',
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
