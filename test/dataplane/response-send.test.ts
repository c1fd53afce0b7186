// --response-send-timeout (nginx's send_timeout) on a real `sluice run`: a client that stops taking a
// response — HTTP/1.1 with its socket paused, HTTP/2 with a zero stream window while it still
// answers everything else — is cut once bytes have waited that long for it, and the backend's
// response is cancelled with it (no upstream held for ever); a client that reads in bursts with
// shorter pauses gets the whole body, and a backend that is slow to send is never cut by it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { serviceYaml } from '../e2e/backends.ts';
import { ErrorCode, Flag, frame, FrameType, PREFACE, RawH2, requestHeaders } from './support/h2-frames.ts';
import { startH2Gateway, type H2Gateway } from './support/h2-gateway.ts';

const SEND_TIMEOUT_MS = 1000;
const SLACK_MS = 5000;
const BIG_BYTES = 64 * 1024 * 1024;

/** What became of each response the backend started, by path and request number. */
type Outcome = 'finished' | 'cut';

/** /big: 64 MiB in 64 KiB chunks, written as fast as the gateway takes them; /slow: two bytes 2.5 s apart. */
async function startBigBackend(): Promise<{ server: Server; port: number; outcomes: Map<string, Outcome> }> {
  const outcomes = new Map<string, Outcome>();
  const chunk = Buffer.alloc(64 * 1024, 120);
  const server = createServer((req, res) => {
    const key = req.url ?? '';
    res.once('finish', () => outcomes.set(key, 'finished'));
    res.once('close', () => outcomes.has(key) || outcomes.set(key, 'cut'));
    if (req.url?.startsWith('/slow')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('a');
      setTimeout(() => res.end('b'), 2500);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BYTES) });
    let sent = 0;
    const pump = (): void => {
      while (sent < BIG_BYTES && !res.destroyed) {
        sent += chunk.length;
        if (sent >= BIG_BYTES) res.end(chunk);
        else if (!res.write(chunk)) return void res.once('drain', pump);
      }
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, outcomes };
}

describe('response send timeout', () => {
  let gateway: H2Gateway;
  let backend: Awaited<ReturnType<typeof startBigBackend>>;
  let authority: string;

  beforeAll(async () => {
    backend = await startBigBackend();
    const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: big, namespace: default}
spec:
  parentRefs: [{name: h2}]
  rules: [{matches: [{path: {type: PathPrefix, value: /big}}, {path: {type: PathPrefix, value: /slow}}], backendRefs: [{name: big, port: 80}]}]
---
${serviceYaml('big', backend)}`;
    gateway = await startH2Gateway(['--response-send-timeout', String(SEND_TIMEOUT_MS)], route);
    authority = `127.0.0.1:${gateway.plainPort}`;
  });

  afterAll(async () => {
    await gateway?.stop();
    await new Promise<void>((resolve) => backend?.server.close(() => resolve()));
  });

  async function responseSendCuts(): Promise<number> {
    const metrics = await (await fetch(`${gateway.sluice.admin}/metrics`)).text();
    return [...metrics.matchAll(/sluice_client_timeouts_total\{[^}]*stage="response_send"[^}]*\} (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  }

  async function outcomeOf(path: string): Promise<Outcome | undefined> {
    const deadline = Date.now() + SLACK_MS;
    while (!backend.outcomes.has(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return backend.outcomes.get(path);
  }

  /**
   * An HTTP/1.1 GET of `path` that reads for 20 ms, then pauses `pauseMs`, until the body ends or
   * the gateway closes: the body bytes read, and whether the whole body came.
   */
  function readInBursts(path: string, pauseMs: number): Promise<{ bytes: number; closedEarly: boolean }> {
    return new Promise((resolve) => {
      const socket = net.connect(gateway.plainPort, '127.0.0.1');
      let bytes = 0;
      socket.on('data', (d: Buffer) => (bytes += d.length));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(bursts);
        resolve({ bytes, closedEarly: bytes < BIG_BYTES });
      });
      socket.write(`GET ${path} HTTP/1.1\r\nHost: h2.sluice.test\r\nConnection: close\r\n\r\n`);
      // Each burst reads for 20 ms and at least one chunk: on a loaded machine a burst whose 20 ms
      // passed while this process had no CPU read nothing, and the pause doubled.
      const bursts = setInterval(() => {
        const before = bytes;
        socket.resume();
        const pauseOnceRead = (): void => {
          if (bytes > before || socket.destroyed) socket.pause();
          else setTimeout(pauseOnceRead, 5);
        };
        setTimeout(pauseOnceRead, 20);
      }, pauseMs + 20);
      socket.pause();
    });
  }

  it('HTTP/1.1: a client that stops reading is cut after the timeout, and the backend response with it', async () => {
    const before = await responseSendCuts();
    const socket = net.connect(gateway.plainPort, '127.0.0.1');
    socket.on('error', () => undefined);
    let bytes = 0;
    socket.on('data', (d: Buffer) => (bytes += d.length));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /big/stalled HTTP/1.1\r\nHost: h2.sluice.test\r\n\r\n');
    socket.pause(); // never reads (a paused socket cannot see the close either): the kernel buffers fill, then the gateway's
    const deadline = Date.now() + SEND_TIMEOUT_MS + SLACK_MS + 5000;
    while ((await responseSendCuts()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect({ cuts: (await responseSendCuts()) - before, backend: await outcomeOf('/big/stalled') }).toEqual({ cuts: 1, backend: 'cut' });
    // Reading again, the client finds its connection closed part way through the body.
    socket.resume();
    await closed;
    expect(bytes).toBeLessThan(BIG_BYTES);
  }, 30_000);

  it('HTTP/1.1: a client that reads in bursts with pauses shorter than the timeout gets the whole body; longer pauses are cut', async () => {
    // Pauses of a quarter of the timeout: a loaded machine's stalls of this process fit in the rest.
    const steady = await readInBursts('/big/steady', SEND_TIMEOUT_MS / 4);
    const stalling = await readInBursts('/big/stalling', SEND_TIMEOUT_MS * 3);
    expect({ steady, backend: await outcomeOf('/big/steady') }).toEqual({ steady: { bytes: expect.any(Number), closedEarly: false }, backend: 'finished' });
    expect({ stallingClosedEarly: stalling.closedEarly, backend: await outcomeOf('/big/stalling') }).toEqual({ stallingClosedEarly: true, backend: 'cut' });
  }, 120_000);

  it('a backend slow to send is not cut: the bound runs only while bytes wait for the client', async () => {
    const res = await fetch(`http://${authority}/slow/one`, { headers: { host: 'h2.sluice.test' } });
    expect([res.status, await res.text(), await outcomeOf('/slow/one')]).toEqual([200, 'ab', 'finished']);
  }, 30_000);

  it('HTTP/2: a stream the client gives no window is reset with CANCEL after the timeout; the connection goes on', async () => {
    const before = await responseSendCuts();
    const raw = await RawH2.connect(gateway.plainPort);
    try {
      // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 0: no stream may send DATA until the client says so.
      const zeroWindow = Buffer.from([0, 4, 0, 0, 0, 0]);
      raw.send(PREFACE, frame(FrameType.SETTINGS, 0, 0, zeroWindow));
      await raw.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
      raw.send(frame(FrameType.SETTINGS, Flag.ACK, 0), frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, requestHeaders(authority, '/big/h2-stalled')));
      const reset = await raw.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, SEND_TIMEOUT_MS + SLACK_MS + 5000);
      expect({ reset: reset?.payload.readUInt32BE(0), backend: await outcomeOf('/big/h2-stalled') }).toEqual({ reset: ErrorCode.CANCEL, backend: 'cut' });
      // The window opened again, the same connection serves the next request.
      const window = Buffer.from([0, 4, 0, 0, 0xff, 0xff]);
      raw.send(frame(FrameType.SETTINGS, 0, 0, window), frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, requestHeaders(authority, '/after')));
      const ended = await raw.waitFor((f) => f.streamId === 3 && (f.flags & Flag.END_STREAM) !== 0, SLACK_MS);
      expect({ ended: ended !== null, closed: raw.closed }).toEqual({ ended: true, closed: false });
    } finally {
      raw.destroy();
    }
    expect(await responseSendCuts()).toBe(before + 1);
  }, 30_000);
});
