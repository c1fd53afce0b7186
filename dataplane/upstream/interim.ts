// An HTTP/1.1 backend may answer `100 Continue` to a request that sent no Expect (some servers send
// it to every request with a body). RFC 9110 §15.2: a client must parse and may ignore a 1xx it
// did not expect. undici's HTTP/1.1 client takes every other 1xx (dropped by the attempt, up to its
// bound: forward.ts) but refuses a 100 as a bad response (it never sends Expect itself, so it takes
// one as a broken server), and the request got 502.
//
// So each upstream HTTP/1.1 connection's response heads are read here as they arrive, ahead of
// undici's parser: while a response head is awaited (a request was dispatched and no final head
// has begun), the status line of each interim head is looked at, and a 100 is passed on as `102`,
// which undici then takes as any other interim answer (and the bound counts). Nothing else is
// looked at or changed: once a final head begins, the bytes pass untouched until the next request.

import type { Socket } from 'node:net';

/** `HTTP/1.x NNN`: the bytes of a status line that decide. */
const STATUS_LINE_START = 12;
const CR = 0x0d;
const LF = 0x0a;

/** `HTTP/1.` at `at`. */
function isHttp1(bytes: Buffer, at: number): boolean {
  return bytes[at] === 0x48 && bytes[at + 1] === 0x54 && bytes[at + 2] === 0x54 && bytes[at + 3] === 0x50 && bytes[at + 4] === 0x2f && bytes[at + 5] === 0x31 && bytes[at + 6] === 0x2e;
}

/**
 * One upstream connection's interim heads. Reads the socket's bytes through its `push` (every read
 * of a net or TLS socket goes through it, whoever consumes them), so no stream is added between
 * undici and the socket.
 */
export class InterimHeads {
  /** A response head is due: a fresh connection's first bytes are one. */
  private awaiting = true;
  /** Inside an interim head, looking for its end (CRLF CRLF): how much of that end was seen. */
  private inHead = false;
  private endSeen = 0;
  /** The start of a status line shorter than STATUS_LINE_START so far, held back until it decides. */
  private held: Buffer | null = null;

  constructor(socket: Socket) {
    const push = socket.push;
    socket.push = (chunk: Buffer | null, encoding?: BufferEncoding): boolean => {
      if (chunk === null) {
        if (this.held !== null) push.call(socket, this.held);
        this.held = null;
        return push.call(socket, null);
      }
      if (!this.awaiting) return push.call(socket, chunk, encoding);
      const bytes = this.read(chunk);
      return bytes.length === 0 ? true : push.call(socket, bytes, encoding);
    };
  }

  /** A request was dispatched on the connection: its response's head comes next. */
  expectHead(): void {
    this.awaiting = true;
    this.inHead = false;
    this.endSeen = 0;
  }

  /** The bytes to pass on for `chunk` (the held start of a status line first, the undecided end held). */
  private read(chunk: Buffer): Buffer {
    let bytes = chunk;
    if (this.held !== null) {
      bytes = Buffer.concat([this.held, chunk]);
      this.held = null;
    }
    let at = 0;
    while (this.awaiting && at < bytes.length) {
      if (this.inHead) {
        at = this.skipHead(bytes, at);
        continue;
      }
      // Empty lines before a status line: llhttp skips them (le2-upstream-interim, the CRLF cases), so the same here.
      if (bytes[at] === CR || bytes[at] === LF) {
        at++;
        continue;
      }
      if (bytes.length - at < STATUS_LINE_START) {
        this.held = Buffer.from(bytes.subarray(at));
        return bytes.subarray(0, at);
      }
      // Not a status line, a final head, or 101 (an upgrade's answer): undici's from here.
      if (!isHttp1(bytes, at) || bytes[at + 8] !== 0x20 || bytes[at + 9] !== 0x31 /* 1 */ || (bytes[at + 10] === 0x30 && bytes[at + 11] === 0x31)) {
        this.awaiting = false;
        break;
      }
      if (bytes[at + 10] === 0x30 && bytes[at + 11] === 0x30) bytes[at + 11] = 0x32; // 100 -> 102
      this.inHead = true;
      this.endSeen = 0;
      at += STATUS_LINE_START;
    }
    return bytes;
  }

  /** Scans an interim head for its end from `at`; returns where the scan stopped. */
  private skipHead(bytes: Buffer, at: number): number {
    for (; at < bytes.length; at++) {
      const byte = bytes[at];
      if (byte === CR) this.endSeen = this.endSeen === 2 ? 3 : 1;
      else if (byte === LF && (this.endSeen === 1 || this.endSeen === 3)) {
        this.endSeen++;
        if (this.endSeen === 4) {
          this.inHead = false;
          return at + 1;
        }
      } else if (byte === LF) {
        // A bare LF: undici refuses the head; nothing after it is read as a head here.
        this.awaiting = false;
        return bytes.length;
      } else this.endSeen = 0;
    }
    return at;
  }
}
