// A header block the frame guard answers itself (HEADERS on a stream the client already ended:
// RST_STREAM STREAM_CLOSED, RFC 9113 §5.1) still changes the connection's HPACK dynamic table
// (§4.3: every field block is decoded). nghttp2 must decode it too, or the next request that
// refers to an entry it added fails to decode and ends the whole connection (COMPRESSION_ERROR).
// A real `sluice run` whose backend never answers, so the ended stream stays open in nghttp2.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGatewayYaml, serviceYaml } from '../e2e/backends.ts';
import { freePortOffset } from '../support/ports.ts';
import { startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { ErrorCode, fieldBlock, Flag, frame, FrameType, headersFrame, RawH2, requestFields, streamVerdict } from './support/h2-frames.ts';

const HOST = 'api.example.com';
/** /silent goes to the backend that never answers; anything else is the gateway's own 302 (how readiness is seen). */
const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: silent, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /silent}}]
    backendRefs: [{name: silent, port: 80}]
  - filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}, statusCode: 302}}]
`;
const GET = requestFields(HOST, 'GET', '/silent');
/** `x-a: b`, literal with incremental indexing, new name: the dynamic table's entry 62 from now on. */
const ADD_XA = Buffer.concat([Buffer.from([0x40, 0x03]), Buffer.from('x-a'), Buffer.from([0x01]), Buffer.from('b')]);
/** Indexed field 62: the newest dynamic table entry. */
const INDEXED_62 = Buffer.from([0xbe]);

describe('a header block the guard refuses keeps nghttp2 in step with the client (HPACK)', () => {
  let sluice: SluiceProcess;
  let port: number;
  let dir: string;
  let backend: net.Server;
  /** Requests that reached the backend, by their request line. */
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();

  beforeAll(async () => {
    // A backend that reads requests and never answers: the gateway's streams stay open.
    backend = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('latin1').split('\r\n')) if (/^[A-Z]+ \S+ HTTP\/1\.1$/.test(line)) seen.push(line);
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    dir = mkdtempSync(join(tmpdir(), 'sluice-h2s-'));
    writeFileSync(join(dir, 'gateway.yaml'), [httpGatewayYaml(80), serviceYaml('silent', { port: (backend.address() as net.AddressInfo).port }), ROUTES].join('---\n'));
    const offset = await freePortOffset([80]);
    port = 80 + offset;
    sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset)]);
    for (let tries = 0; ; tries++) {
      const ready = await fetch(`http://127.0.0.1:${port}/ready`, { redirect: 'manual' }).then((r) => r.status, () => 0);
      if (ready === 302) break;
      if (tries > 200) throw new Error(`listener not serving\n${sluice.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 60_000);

  afterAll(async () => {
    await sluice?.stop();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Stream 1 ended and waiting on the backend; then `late` (frames on stream 1). Stream 3 refers to the entry `late` added. */
  async function afterLateBlock(late: Buffer[]): Promise<void> {
    const connection = await RawH2.connect(port);
    try {
      await connection.handshake();
      const before = seen.length;
      connection.send(headersFrame(1, fieldBlock([...GET.slice(0, 3), [':path', '/silent/one']]), true));
      for (let tries = 0; seen.length === before && tries < 250; tries++) await new Promise((r) => setTimeout(r, 20));
      expect(seen.slice(before)).toEqual(['GET /silent/one HTTP/1.1']);
      connection.send(...late);
      expect(await streamVerdict(connection, 1)).toEqual({ reset: ErrorCode.STREAM_CLOSED });
      connection.send(headersFrame(3, Buffer.concat([fieldBlock([...GET.slice(0, 3), [':path', '/silent/three']]), INDEXED_62]), true));
      // Stream 3 reaches the backend (which never answers): the block decoded, the connection alive.
      for (let tries = 0; seen.length === before + 1 && !connection.closed && tries < 250; tries++) await new Promise((r) => setTimeout(r, 20));
      expect(connection.frames.filter((f) => f.type === FrameType.GOAWAY).map((f) => f.payload.readUInt32BE(4))).toEqual([]);
      expect(seen.slice(before)).toEqual(['GET /silent/one HTTP/1.1', 'GET /silent/three HTTP/1.1']);
      expect(connection.closed).toBe(false);
    } finally {
      connection.destroy();
    }
  }

  it('HEADERS adding a table entry on the ended stream: STREAM_CLOSED there, the next stream decoded and served', async () => {
    await afterLateBlock([headersFrame(1, Buffer.concat([fieldBlock([['x-t', 'late']]), ADD_XA]), true)]);
  });

  it('the same block split into HEADERS and CONTINUATION', async () => {
    const block = Buffer.concat([fieldBlock([['x-t', 'late']]), ADD_XA]);
    await afterLateBlock([frame(FrameType.HEADERS, Flag.END_STREAM, 1, block.subarray(0, 5)), frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(5))]);
  });
});
