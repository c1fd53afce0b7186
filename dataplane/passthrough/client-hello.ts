// Reads the SNI server name from the first TLS ClientHello of a connection,
// without terminating TLS. The ClientHello may arrive in pieces and may span
// several TLS records; `readServerName` says when it needs more bytes.
import type { Socket } from 'node:net';

export type ClientHelloResult =
  | { kind: 'more' }
  /** `cipherSuites`: the suites the client offers, IANA codes in its order (HTTPS listeners pick a certificate by them). */
  | { kind: 'done'; serverName: string | null; cipherSuites: number[] }
  | { kind: 'invalid'; reason: string };

const RECORD_HEADER = 5;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME_EXTENSION = 0x0000;
/** A plaintext record's longest fragment (RFC 8446 §5.1, RFC 5246 §6.2.1: longer is record_overflow). */
const MAX_RECORD = 1 << 14;
/** A ClientHello larger than this is refused (post-quantum key shares make them ~2 KiB; this leaves room). */
export const MAX_CLIENT_HELLO = 64 * 1024;

/** `data` holds every byte received so far on the connection. */
export function readServerName(data: Buffer): ClientHelloResult {
  // Reassemble the handshake message from consecutive handshake records.
  const parts: Buffer[] = [];
  let offset = 0;
  let have = 0;
  let needed = -1;
  while (needed < 0 || have < needed) {
    if (data.length < offset + RECORD_HEADER) return more(data);
    if (data[offset] !== HANDSHAKE) return { kind: 'invalid', reason: 'not a TLS handshake' };
    const length = data.readUInt16BE(offset + 3);
    // Refused at its header, not after waiting for bytes no TLS client sends.
    if (length > MAX_RECORD) return { kind: 'invalid', reason: 'TLS record longer than 2^14 bytes' };
    if (data.length < offset + RECORD_HEADER + length) return more(data);
    const fragment = data.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length);
    parts.push(fragment);
    have += fragment.length;
    offset += RECORD_HEADER + length;
    if (needed < 0 && have >= 4) {
      const head = parts[0]!.length >= 4 ? parts[0]! : Buffer.concat(parts);
      if (head[0] !== CLIENT_HELLO) return { kind: 'invalid', reason: 'first handshake message is not a ClientHello' };
      needed = 4 + head.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO) return { kind: 'invalid', reason: 'ClientHello too large' };
    }
  }
  try {
    const hello = Buffer.concat(parts).subarray(4, needed);
    return { kind: 'done', serverName: serverNameFrom(hello), cipherSuites: cipherSuitesFrom(hello) };
  } catch {
    return { kind: 'invalid', reason: 'malformed ClientHello' };
  }
}

/**
 * Reads a connection's first bytes until its ClientHello is whole (or is not one): then stops
 * reading, pauses the socket and calls `read` once with the result and every byte received.
 * Returns what stops the reading early (a deadline).
 */
export function readClientHello(socket: Socket, read: (hello: Exclude<ClientHelloResult, { kind: 'more' }>, data: Buffer) => void): () => void {
  // Linear in the bytes received, however they are cut: the bytes gather in one buffer grown by
  // doubling, and record headers are walked once each (RecordWalk); readServerName, which reads
  // everything from the start, runs only when the walk says the answer is there. Before, a client
  // pacing its ClientHello a byte per segment cost a concat of every chunk and a walk of every
  // record per byte (~0.4 ms of the main thread per byte at 32 KiB: a few slow clients held a core).
  let held: Buffer = Buffer.alloc(0);
  let length = 0;
  const walk = new RecordWalk();
  const onData = (chunk: Buffer): void => {
    if (length === 0) held = chunk;
    else {
      if (length + chunk.length > held.length) held = Buffer.concat([held.subarray(0, length)], Math.max(2 * held.length, length + chunk.length));
      chunk.copy(held, length);
    }
    length += chunk.length;
    const data = held.subarray(0, length);
    if (!walk.decided(data)) return;
    const hello = readServerName(data);
    if (hello.kind === 'more') return;
    socket.off('data', onData);
    socket.pause();
    read(hello, data);
  };
  socket.on('data', onData);
  return () => void socket.off('data', onData);
}

/** Follows the records of a ClientHello as bytes arrive, each header read once. */
class RecordWalk {
  /** Where the next record header starts. */
  private offset = 0;
  /** Handshake bytes in the records walked, and the first four of them (the message header). */
  private have = 0;
  private readonly head: number[] = [];
  private needed = -1;

  /** Whether readServerName(data) can answer other than 'more' (done, or invalid). */
  decided(data: Buffer): boolean {
    for (;;) {
      if (data.length > MAX_CLIENT_HELLO + 64 * RECORD_HEADER) return true;
      if (data.length < this.offset + RECORD_HEADER) return false;
      const length = data.readUInt16BE(this.offset + 3);
      if (data[this.offset] !== HANDSHAKE || length > MAX_RECORD) return true;
      if (data.length < this.offset + RECORD_HEADER + length) return false;
      for (let i = 0; this.head.length < 4 && i < length; i++) this.head.push(data[this.offset + RECORD_HEADER + i]!);
      this.have += length;
      this.offset += RECORD_HEADER + length;
      if (this.needed < 0 && this.head.length === 4) {
        this.needed = 4 + ((this.head[1]! << 16) | (this.head[2]! << 8) | this.head[3]!);
        if (this.head[0] !== CLIENT_HELLO || this.needed > MAX_CLIENT_HELLO) return true;
      }
      if (this.needed >= 0 && this.have >= this.needed) return true;
    }
  }
}

function more(data: Buffer): ClientHelloResult {
  return data.length > MAX_CLIENT_HELLO + 64 * RECORD_HEADER ? { kind: 'invalid', reason: 'ClientHello too large' } : { kind: 'more' };
}

/** The ClientHello body's cipher_suites, in the client's order. Throws on truncation. */
function cipherSuitesFrom(hello: Buffer): number[] {
  let p = 2 + 32; // client_version, random
  p += 1 + byte(hello, p); // session_id
  const end = p + 2 + uint16(hello, p);
  if (end > hello.length) throw new RangeError('truncated');
  const suites: number[] = [];
  for (let q = p + 2; q + 2 <= end; q += 2) suites.push(hello.readUInt16BE(q));
  return suites;
}

/** Walks the ClientHello body to the server_name extension. Throws on truncation. */
function serverNameFrom(hello: Buffer): string | null {
  let p = 2 + 32; // client_version, random
  p += 1 + byte(hello, p); // session_id
  p += 2 + uint16(hello, p); // cipher_suites
  p += 1 + byte(hello, p); // compression_methods
  if (p === hello.length) return null; // no extensions
  const end = p + 2 + uint16(hello, p);
  p += 2;
  while (p + 4 <= end) {
    const type = uint16(hello, p);
    const length = uint16(hello, p + 2);
    p += 4;
    if (type === SERVER_NAME_EXTENSION) {
      let q = p + 2; // server_name_list length
      while (q + 3 <= p + length) {
        const nameType = byte(hello, q);
        const nameLength = uint16(hello, q + 1);
        if (nameType === 0) return hello.toString('ascii', q + 3, q + 3 + nameLength).toLowerCase();
        q += 3 + nameLength;
      }
      return null;
    }
    p += length;
  }
  return null;
}

function byte(b: Buffer, at: number): number {
  if (at >= b.length) throw new RangeError('truncated');
  return b[at]!;
}

function uint16(b: Buffer, at: number): number {
  if (at + 2 > b.length) throw new RangeError('truncated');
  return b.readUInt16BE(at);
}
