// Hand-written HTTP/2 frames over a raw socket (net or tls), for tests that must send what no
// well-behaved client sends: frames on closed streams, unsolicited PING ACKs, floods of resets,
// or nothing at all.

import net from 'node:net';
import tls from 'node:tls';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = { DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8 } as const;
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
