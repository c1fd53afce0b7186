// A hostile HTTP/2 cleartext backend (prior knowledge, what `kubernetes.io/h2c` Services get) that
// answers with frames a test writes by hand: a GOAWAY or RST_STREAM mid-stream, a SETTINGS flood,
// a header block past any limit, trailers with pseudo-headers, a stream answered twice. It reads
// the client preface, sends its own empty SETTINGS, ACKs the client's, and hands each new request
// stream to the current script; it never decodes the request's header block (a test sends one
// request at a time, or counts streams).

import net from 'node:net';
import { Flag, frame, FrameType, PREFACE } from './h2-frames.ts';

/** An HPACK integer with an `prefix`-bit prefix (RFC 7541 §5.1), first byte or-ed with `high`. */
function hpackInteger(value: number, prefix: number, high: number): Buffer {
  const max = (1 << prefix) - 1;
  if (value < max) return Buffer.from([high | value]);
  const bytes = [high | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

const hpackString = (text: string): Buffer => Buffer.concat([hpackInteger(text.length, 7, 0), Buffer.from(text, 'latin1')]);

/** A header block of literals without indexing (new names), in order: blocks never depend on each other. */
export function headerBlock(fields: Array<[string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

export interface H2Stream {
  socket: net.Socket;
  /** The request's stream id. */
  id: number;
  /** Which connection (from 0) it came on. */
  connection: number;
  /** HEADERS (END_HEADERS) on this stream. */
  headers(fields: Array<[string, string]>, endStream: boolean): void;
  data(text: string, endStream: boolean): void;
}

export type H2Script = (stream: H2Stream) => void;

export interface RawH2Backend {
  port: number;
  /** Answers each new request stream; default: `200`, body `ok <stream id>`. */
  script: H2Script;
  /** Request streams seen, all connections. */
  streams: Array<{ connection: number; id: number }>;
  connections(): number;
  closed(index: number): boolean;
  close(): Promise<void>;
}

export const honestH2: H2Script = (stream) => {
  stream.headers([[':status', '200'], ['content-type', 'text/plain']], false);
  stream.data(`ok ${stream.connection}/${stream.id}\n`, true);
};

export async function startRawH2Backend(): Promise<RawH2Backend> {
  const sockets = new Set<net.Socket>();
  const closed: boolean[] = [];
  const backend: RawH2Backend = {
    port: 0,
    script: honestH2,
    streams: [],
    connections: () => closed.length,
    closed: (index) => closed[index] ?? false,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((socket) => {
    const connection = closed.push(false) - 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      closed[connection] = true;
      sockets.delete(socket);
    });
    socket.write(frame(FrameType.SETTINGS, 0, 0));
    let buffered = Buffer.alloc(0);
    let prefaced = false;
    const opened = new Set<number>();
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!prefaced) {
        if (buffered.length < PREFACE.length) return;
        if (!buffered.subarray(0, PREFACE.length).equals(PREFACE)) return void socket.destroy();
        prefaced = true;
        buffered = buffered.subarray(PREFACE.length);
      }
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) return;
        const type = buffered[3]!;
        const flags = buffered[4]!;
        const id = buffered.readUInt32BE(5) & 0x7fffffff;
        buffered = buffered.subarray(9 + length);
        if (type === FrameType.SETTINGS && (flags & Flag.ACK) === 0) socket.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
        else if (type === FrameType.PING && (flags & Flag.ACK) === 0) socket.write(frame(FrameType.PING, Flag.ACK, 0, Buffer.alloc(8)));
        else if (type === FrameType.HEADERS && !opened.has(id)) {
          opened.add(id);
          backend.streams.push({ connection, id });
          backend.script({
            socket,
            id,
            connection,
            headers: (fields, endStream) => socket.write(frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), id, headerBlock(fields))),
            data: (text, endStream) => socket.write(frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, id, Buffer.from(text, 'latin1'))),
          });
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as net.AddressInfo).port;
  return backend;
}
