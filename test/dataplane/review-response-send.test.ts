// Review of --response-send-timeout (dataplane/response-send.ts): a response whose whole body goes
// out with end() — one chunk of known length, the common small response — never had write()
// return false, so no 'drain' wait started the bound; when the client gives the stream no window
// its bytes waited for ever (the stream, its buffers and a concurrent-stream slot held). On a real
// `sluice run`, through a raw HTTP/2 client.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serviceYaml } from '../e2e/backends.ts';
import { ErrorCode, Flag, frame, FrameType, PREFACE, RawH2, requestHeaders, u32 } from './support/h2-frames.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';

const SEND_TIMEOUT_MS = 1000;
const SLACK_MS = 5000;

describe('review: response send timeout on a response sent whole by end()', () => {
  let gateway: H2Gateway;
  let authority: string;
  let big: Server;

  beforeAll(async () => {
    // /big: 4 MiB, written as fast as the gateway takes it.
    const chunk = Buffer.alloc(64 * 1024, 120);
    big = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(64 * chunk.length) });
      let left = 64;
      const pump = (): void => {
        while (left > 0 && !res.destroyed) if (--left === 0) res.end(chunk);
        else if (!res.write(chunk)) return void res.once('drain', pump);
      };
      pump();
    });
    await new Promise<void>((resolve) => big.listen(0, '127.0.0.1', resolve));
    const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: big, namespace: default}
spec:
  parentRefs: [{name: h2}]
  rules: [{matches: [{path: {type: PathPrefix, value: /big}}], backendRefs: [{name: big, port: 80}]}]
---
${serviceYaml('big', { port: (big.address() as AddressInfo).port })}`;
    gateway = await startH2Gateway(['--response-send-timeout', String(SEND_TIMEOUT_MS)], route);
    authority = `127.0.0.1:${gateway.plainPort}`;
  });

  afterAll(async () => {
    await gateway?.stop();
    big?.closeAllConnections();
    await new Promise<void>((resolve) => big?.close(() => resolve()));
  });

  async function responseSendCuts(): Promise<number> {
    const metrics = await (await fetch(`${gateway.sluice.admin}/metrics`)).text();
    return [...metrics.matchAll(/sluice_client_timeouts_total\{[^}]*stage="response_send"[^}]*\} (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  }

  it('HTTP/2: a small response (one chunk, ended at once) to a stream without window is reset with CANCEL after the timeout', async () => {
    const before = await responseSendCuts();
    const raw = await RawH2.connect(gateway.plainPort);
    try {
      // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 0: the echo backend's small JSON answer cannot be sent.
      raw.send(PREFACE, frame(FrameType.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 0, 0, 0])));
      await raw.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
      raw.send(frame(FrameType.SETTINGS, Flag.ACK, 0), frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, requestHeaders(authority, '/small')));
      // The answer's HEADERS come (not flow-controlled): the backend answered, only the body waits.
      const headers = await raw.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1, SLACK_MS);
      const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, SEND_TIMEOUT_MS + SLACK_MS);
      expect({ headers: headers !== null, reset: reset?.payload.readUInt32BE(0) ?? 'none', closed: raw.closed }).toEqual({ headers: true, reset: ErrorCode.CANCEL, closed: false });
    } finally {
      raw.destroy();
    }
    expect(await responseSendCuts()).toBe(before + 1);
  }, 30_000);

  /**
   * A raw HTTP/2 client that gives stream 1 (and the connection) `grant` bytes of window every 200 ms
   * for `forMs`: the stream's reset code if one came (or 'none'), and whether DATA arrived.
   */
  async function readWithWindow(path: string, grant: number, forMs: number): Promise<{ reset: number | 'none'; progressing: boolean }> {
    const raw = await RawH2.connect(gateway.plainPort);
    let granted: NodeJS.Timeout | undefined;
    try {
      raw.send(PREFACE, frame(FrameType.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 0, 0, 0])));
      await raw.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
      raw.send(frame(FrameType.SETTINGS, Flag.ACK, 0), frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, requestHeaders(authority, path)));
      granted = setInterval(() => raw.send(frame(FrameType.WINDOW_UPDATE, 0, 1, u32(grant)), frame(FrameType.WINDOW_UPDATE, 0, 0, u32(grant))), 200);
      const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, forMs);
      const bytes = raw.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).reduce((sum, f) => sum + f.payload.length, 0);
      return { reset: reset?.payload.readUInt32BE(0) ?? 'none', progressing: bytes > 0 };
    } finally {
      clearInterval(granted);
      raw.destroy();
    }
  }

  // What counts as taking some of the response is a relayed chunk (up to 64 KiB) leaving the buffer
  // (dataplane/response-send.ts; README): a client must take one per bound. nginx resets its timer
  // on any byte taken instead; Sluice asks for a minimum rate (about 1 KiB/s at the 60 s default).
  it('HTTP/2: a client that takes 32 KiB every 200 ms (a 64 KiB chunk within each bound) is not cut', async () => {
    expect(await readWithWindow('/big/steady-reader', 32 * 1024, 4 * SEND_TIMEOUT_MS)).toEqual({ reset: 'none', progressing: true });
  }, 30_000);

  it('HTTP/2: a client that takes 1 KiB every 200 ms (a 64 KiB chunk every 13 s) is cut with CANCEL: below one chunk per bound', async () => {
    expect(await readWithWindow('/big/trickle-reader', 1024, SEND_TIMEOUT_MS + SLACK_MS + 3000)).toEqual({ reset: ErrorCode.CANCEL, progressing: true });
  }, 30_000);
});
