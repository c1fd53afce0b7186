// Hand-written HTTP/2 frames over a raw socket (net or tls), for tests that must send what no
// well-behaved client sends: frames on closed streams, unsolicited PING ACKs, floods of resets,
// or nothing at all.

import net from 'node:net';
import tls from 'node:tls';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = { DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ErrorCode = { NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3, SETTINGS_TIMEOUT: 0x4, STREAM_CLOSED: 0x5, CANCEL: 0x8, ENHANCE_YOUR_CALM: 0xb } as const;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

export const u32 = (value: number): Buffer => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
};

/** An HPACK string literal without Huffman coding (length < 127). */
function literal(text: string): Buffer {
  return Buffer.concat([Buffer.from([text.length]), Buffer.from(text, 'latin1')]);
}

/**
 * The header block of `GET path` (or POST) for `authority` over `scheme`: static-table entries for
 * method and scheme, literals without indexing for the rest (so blocks never depend on each other).
 */
export function requestHeaders(authority: string, path = '/', options: { method?: 'GET' | 'POST'; scheme?: 'http' | 'https' } = {}): Buffer {
  return Buffer.concat([
    Buffer.from([options.method === 'POST' ? 0x83 : 0x82, options.scheme === 'https' ? 0x87 : 0x86]),
    Buffer.from([0x04]), // :path, literal without indexing, name index 4
    literal(path),
    Buffer.from([0x01]), // :authority, name index 1
    literal(authority),
  ]);
}

export const headersFrame = (streamId: number, block: Buffer, endStream: boolean): Buffer =>
  frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), streamId, block);

/** A raw HTTP/2 connection: what was received, parsed into frames, and whether the server closed it. */
export class RawH2 {
  readonly socket: net.Socket;
  readonly frames: Frame[] = [];
  closed = false;
  private buffered = Buffer.alloc(0);
  private readonly waiters = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 9) {
        const length = this.buffered.readUIntBE(0, 3);
        if (this.buffered.length < 9 + length) break;
        this.frames.push({ type: this.buffered[3], flags: this.buffered[4], streamId: this.buffered.readUInt32BE(5) & 0x7fffffff, payload: this.buffered.subarray(9, 9 + length) });
        this.buffered = this.buffered.subarray(9 + length);
      }
      this.wake();
    });
    socket.on('error', () => undefined); // a reset ends the connection like a close: 'close' follows
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects (TLS with ALPN h2 when `tlsServername` is given); sends nothing yet. */
  static async connect(port: number, tlsServername?: string): Promise<RawH2> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s: net.Socket =
        tlsServername === undefined
          ? net.connect(port, '127.0.0.1', () => resolve(s))
          : tls.connect({ port, host: '127.0.0.1', servername: tlsServername, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    return new RawH2(socket);
  }

  /** Preface and an empty SETTINGS; `ackSettings`: also ACK the server's SETTINGS once they come. */
  async handshake(ackSettings = true): Promise<void> {
    this.send(PREFACE, frame(FrameType.SETTINGS, 0, 0));
    await this.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
    if (ackSettings) this.send(frame(FrameType.SETTINGS, Flag.ACK, 0));
  }

  send(...bytes: Buffer[]): void {
    this.socket.write(Buffer.concat(bytes));
  }

  /** The first received frame that matches, waiting up to `timeoutMs`; null when the connection closed (or time ran out) first. */
  waitFor(match: (f: Frame) => boolean, timeoutMs = 5_000): Promise<Frame | null> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const found = this.frames.find(match);
        if (found !== undefined || this.closed) {
          done(found ?? null);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      const done = (result: Frame | null): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(result);
      };
      const waiter = (): void => void check();
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** The GOAWAY's error code, once one came (null if the connection closed without one or time ran out). */
  async goawayCode(timeoutMs = 5_000): Promise<number | null> {
    const goaway = await this.waitFor((f) => f.type === FrameType.GOAWAY, timeoutMs);
    return goaway === null ? null : goaway.payload.readUInt32BE(4);
  }

  /** Resolves with the time it took once the server has closed the connection; rejects after `timeoutMs`. */
  closedWithin(timeoutMs: number): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        if (!this.closed) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(performance.now() - started);
      };
      this.waiters.add(check);
      check();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** An HPACK string literal without Huffman coding, any length (RFC 7541 §5.1 integer prefix). */
function hpackLiteral(text: string): Buffer {
  const raw = Buffer.from(text, 'latin1');
  const length: number[] = [];
  if (raw.length < 127) length.push(raw.length);
  else {
    length.push(127);
    let rest = raw.length - 127;
    while (rest >= 128) {
      length.push((rest & 0x7f) | 0x80);
      rest >>>= 7;
    }
    length.push(rest);
  }
  return Buffer.concat([Buffer.from(length), raw]);
}

/** A header block of literal fields without indexing, new names: exactly these fields, in this order, whatever bytes they hold. */
export function fieldBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackLiteral(name), hpackLiteral(value)]));
}

/** What the server did with a stream: reset it (code), answered (status), or ended the connection (GOAWAY code). */
export type StreamVerdict = { reset: number } | { status: number } | { goaway: number };

/** The first answer on stream `id`: RST_STREAM, a response's HEADERS, or a GOAWAY ending the connection. */
export async function streamVerdict(connection: RawH2, id: number, timeoutMs = 5_000): Promise<StreamVerdict> {
  const seen = await connection.waitFor((f) => (f.streamId === id && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS)) || f.type === FrameType.GOAWAY, timeoutMs);
  if (seen === null) throw new Error(`no answer on stream ${id} (closed: ${connection.closed})`);
  if (seen.type === FrameType.GOAWAY) return { goaway: seen.payload.readUInt32BE(4) };
  if (seen.type === FrameType.RST_STREAM) return { reset: seen.payload.readUInt32BE(0) };
  // `:status` is the first field a Node server writes: indexed (static table 8-14) or a literal.
  const first = seen.payload[0]!;
  const indexed: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };
  if (indexed[first] !== undefined) return { status: indexed[first]! };
  return { status: Number(seen.payload.subarray(2, 2 + seen.payload[1]!).toString('latin1')) };
}

/** A request's pseudo-header fields for fieldBlock: `method` `path` (http) to `authority`. */
export function requestFields(authority: string, method: 'GET' | 'POST' = 'GET', path = '/h2'): Array<[string, string]> {
  return [
    [':method', method],
    [':scheme', 'http'],
    [':authority', authority],
    [':path', path],
  ];
}

/**
 * On a fresh connection to `port`: `frames` (stream 1), stream 1's verdict, then a GET on stream 3
 * of the same connection and its verdict — whether the connection serves on after stream 1.
 */
export async function firstThenNext(port: number, authority: string, frames: Buffer[]): Promise<{ first: StreamVerdict; next: StreamVerdict }> {
  const connection = await RawH2.connect(port);
  try {
    await connection.handshake();
    connection.send(...frames);
    const first = await streamVerdict(connection, 1);
    connection.send(headersFrame(3, requestHeaders(authority, '/next'), true));
    return { first, next: await streamVerdict(connection, 3) };
  } finally {
    connection.destroy();
  }
}

/** `block` as a HEADERS frame (END_STREAM) and as many CONTINUATIONs of 16 KiB as it needs, the last with END_HEADERS. */
export function headerFrames(streamId: number, block: Buffer, framePayload = 16_384): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 0; at < block.length; at += framePayload) {
    const flags = (at === 0 ? Flag.END_STREAM : 0) | (at + framePayload >= block.length ? Flag.END_HEADERS : 0);
    frames.push(frame(at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, flags, streamId, block.subarray(at, at + framePayload)));
  }
  return frames;
}

/** The verdict on a GET of `path` on a fresh connection to `port`: whether the listener still serves. */
export async function freshGetVerdict(port: number, authority: string, path = '/after'): Promise<StreamVerdict> {
  const connection = await RawH2.connect(port);
  try {
    await connection.handshake();
    connection.send(headersFrame(1, requestHeaders(authority, path), true));
    return await streamVerdict(connection, 1);
  } finally {
    connection.destroy();
  }
}
