// The HTTP/2 frame checks Node's HTTP/2 (nghttp2) leaves out, as a stream between the client's
// socket and the http2 session. nghttp2 forgets a stream once it closes, so it silently ignores
// DATA or HEADERS on a stream the client itself ended or reset, and HEADERS that reuse a lower
// stream id (RFC 9113 §5.1, §5.1.1: connection errors STREAM_CLOSED / PROTOCOL_ERROR); it ignores
// PRIORITY frames (on stream 0, or a stream depending on itself: §5.3.1, §6.3); it treats a
// stream's send window overflow as a connection error where §6.9.1 asks for RST_STREAM
// FLOW_CONTROL_ERROR; and Node closes the connection on a PING ACK it did not ask for, which
// §6.7 says to ignore. h2spec finds each (test/dataplane/h2spec.test.ts).
//
// The guard reads every frame header both ways (9 bytes a frame, payload untouched except the few
// bytes a check needs) and tracks, per connection: the client's stream ids, which of its streams
// the client has not finished sending on, and each stream's send window (initial window, the
// client's WINDOW_UPDATEs, our DATA). A non-native stream costs Node's JSStreamSocket hop per read
// and write; measured in the report of this change (see README "HTTP/2").

import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { HpackDecoder, HpackError, RequestHeadChecker, type Malformed } from './http2-request-head.ts';
import type { DownstreamRejections } from './metrics.ts';

const { NGHTTP2_PROTOCOL_ERROR, NGHTTP2_STREAM_CLOSED, NGHTTP2_FLOW_CONTROL_ERROR, NGHTTP2_SETTINGS_TIMEOUT, NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_COMPRESSION_ERROR, NGHTTP2_FRAME_SIZE_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } =
  http2.constants;

const FRAME_HEADER = 9;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const DEFAULT_INITIAL_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;

/**
 * Payload bytes a check reads at most, but for header blocks: SETTINGS are read whole, up to this
 * many bytes (a SETTINGS frame longer than that has its INITIAL_WINDOW_SIZE entries past the bound
 * ignored for window tracking only). Also the size of a frame scanner's buffer until a larger
 * HEADERS or CONTINUATION frame comes.
 */
const MAX_INSPECTED = 6 * 64;

/**
 * SETTINGS_MAX_FRAME_SIZE the front door announces (RFC 9113's initial value, which Node keeps):
 * HEADERS and CONTINUATION frames are read whole, so up to this.
 */
const MAX_FRAME_PAYLOAD = 16_384;

/**
 * Bytes of one header block (a HEADERS frame and its CONTINUATIONs) at most: nghttp2 (in Node)
 * ends a connection after 8 CONTINUATION frames of a block (CVE-2024-27316), so 9 full frames.
 */
const MAX_HEADER_BLOCK = 9 * MAX_FRAME_PAYLOAD;

/**
 * The largest header list a request (or its trailers) may have, as the front door announces it
 * (SETTINGS_MAX_HEADER_LIST_SIZE: server.ts's HTTP2_SETTINGS announces this). Node enforces it
 * only once the client has acknowledged those SETTINGS (nghttp2's local settings): a client that
 * never does had 120 KiB lists served (review-s11b-header-list). Refused here as Node refuses it
 * after the acknowledgement: RST_STREAM ENHANCE_YOUR_CALM.
 */
export const MAX_HEADER_LIST_SIZE = 32 * 1024;

/**
 * Client streams remembered as "the client finished sending here" (so later DATA/HEADERS on them
 * are STREAM_CLOSED, not a reused id), and client streams still open for sending. RFC 9113 §5.1
 * lets an endpoint limit how long it ignores frames on a stream it reset; past these bounds the
 * oldest entries are forgotten.
 */
const MAX_REMEMBERED_STREAMS = 2_000;

/** What the guard asks of the session that reads through it. */
export interface GuardActions {
  /** A connection error: GOAWAY with `code`, then close. */
  connectionError(code: number, reason: string): void;
  /**
   * A stream error: RST_STREAM with `code`, or a connection error with `code` when the session no
   * longer has that stream (§5.4.1 lets any stream error be one).
   */
  streamError(streamId: number, code: number, reason: string): void;
  /** Our complete response (END_STREAM) went out while the client is still sending the request. */
  responseCompleteEarly(streamId: number): void;
  /**
   * The stream's request is malformed (RFC 9113 §8.1.1), or too large: RST_STREAM `code`
   * (PROTOCOL_ERROR unless given), and never served, whether the session has announced the stream
   * yet or not.
   */
  malformedRequest(streamId: number, reason: string, code?: number): void;
  /**
   * A client stream was reset PROTOCOL_ERROR for its malformed request (the guard's checks or
   * nghttp2's own): count it under `reason`.
   */
  requestRefused(reason: string): void;
}

interface FrameHead {
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/**
 * Splits a byte stream into frames, calling `onFrame` once a frame's header and the first
 * `wanted(head)` payload bytes are in; `onFrame` says whether the frame passes on. Bytes of frames
 * that pass are handed to `emit` as slices of the input (a copy only for a header split across
 * chunks); dropped frames are cut out. `flush()`, called from `onFrame`, emits everything before
 * the frame being decided at once, so the session has seen it (e.g. a stream's HEADERS).
 */
class FrameScanner {
  private pending: Buffer = Buffer.alloc(FRAME_HEADER + MAX_INSPECTED);
  private pendingLength = 0;
  /** Payload bytes of the current frame still to come after its inspected part. */
  private remaining = 0;
  private dropping = false;
  /** Preface bytes still expected (inbound only); -1 once it differed: nothing passes any more. */
  private prefaceLeft: number;
  private readonly wanted: (head: FrameHead) => number;
  private readonly onFrame: (head: FrameHead, payload: Buffer) => boolean;
  private readonly emit: (bytes: Buffer) => void;
  private readonly onBadPreface: () => void;
  /** Set by `replaceFrame()` during `onFrame`: what goes on in place of the frame being decided. */
  private replacement: Buffer | null = null;
  /** The chunk being scanned, and where its passing bytes not yet emitted start and end. */
  private chunk: Buffer | null = null;
  private keepFrom = 0;
  private headStart = 0;

  /** `onBadPreface` set: the stream must start with the client connection preface. */
  constructor(wanted: (head: FrameHead) => number, onFrame: (head: FrameHead, payload: Buffer) => boolean, emit: (bytes: Buffer) => void, onBadPreface?: () => void) {
    this.wanted = wanted;
    this.onFrame = onFrame;
    this.emit = emit;
    this.onBadPreface = onBadPreface ?? (() => undefined);
    this.prefaceLeft = onBadPreface !== undefined ? PREFACE.length : 0;
  }

  /** True while the client connection preface has started but not ended. */
  inPreface(): boolean {
    return this.prefaceLeft > 0 && this.prefaceLeft < PREFACE.length;
  }

  /** True when the bytes scanned so far end with a whole frame. */
  betweenFrames(): boolean {
    return this.remaining === 0 && this.pendingLength === 0;
  }

  /** Called from `onFrame`, which then returns false: `bytes` go on where the frame was. */
  replaceFrame(bytes: Buffer): void {
    this.replacement = bytes;
  }

  flush(): void {
    if (this.chunk !== null && this.headStart > this.keepFrom) this.emit(this.chunk.subarray(this.keepFrom, this.headStart));
    this.keepFrom = this.headStart;
  }

  scan(chunk: Buffer): void {
    if (this.prefaceLeft === -1) return;
    this.chunk = chunk;
    this.keepFrom = 0;
    this.headStart = 0;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.prefaceLeft > 0) {
        const offset = PREFACE.length - this.prefaceLeft;
        const n = Math.min(this.prefaceLeft, chunk.length - pos);
        if (!chunk.subarray(pos, pos + n).equals(PREFACE.subarray(offset, offset + n))) {
          // Not a preface (nghttp2 would answer INTERNAL_ERROR): nothing of it passes on.
          this.prefaceLeft = -1;
          this.chunk = null;
          this.onBadPreface();
          return;
        }
        this.prefaceLeft -= n;
        pos += n;
        continue;
      }
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - pos);
        if (this.dropping) {
          this.headStart = pos;
          this.flush();
          this.keepFrom = pos + n;
        }
        this.remaining -= n;
        pos += n;
        continue;
      }
      // A frame header (and the payload bytes its check needs) may straddle chunks: collected in
      // `pending`, held back until the decision.
      this.headStart = pos;
      const needHeader = FRAME_HEADER - this.pendingLength;
      if (needHeader > 0) {
        const n = Math.min(needHeader, chunk.length - pos);
        chunk.copy(this.pending, this.pendingLength, pos, pos + n);
        this.pendingLength += n;
        pos += n;
        if (this.pendingLength < FRAME_HEADER) break;
      }
      const head = readHead(this.pending);
      const inspect = Math.min(head.length, this.wanted(head));
      if (this.pending.length < FRAME_HEADER + inspect) {
        const grown = Buffer.allocUnsafe(FRAME_HEADER + inspect);
        this.pending.copy(grown, 0, 0, this.pendingLength);
        this.pending = grown;
      }
      const haveInspected = this.pendingLength - FRAME_HEADER;
      if (haveInspected < inspect) {
        const n = Math.min(inspect - haveInspected, chunk.length - pos);
        chunk.copy(this.pending, this.pendingLength, pos, pos + n);
        this.pendingLength += n;
        pos += n;
        if (this.pendingLength - FRAME_HEADER < inspect) break;
      }
      const passes = this.onFrame(head, this.pending.subarray(FRAME_HEADER, FRAME_HEADER + inspect));
      // The collected bytes from earlier chunks are not in `chunk`: they go out as a copy.
      const fromEarlier = this.pendingLength - (pos - this.headStart);
      this.flush();
      if (this.replacement !== null) {
        this.emit(this.replacement);
        this.replacement = null;
      }
      if (passes && fromEarlier > 0) this.emit(Buffer.from(this.pending.subarray(0, fromEarlier)));
      this.keepFrom = passes ? this.headStart : pos;
      this.pendingLength = 0;
      // A large header frame's buffer is not kept for the connection's life.
      if (this.pending.length > FRAME_HEADER + MAX_INSPECTED) this.pending = Buffer.allocUnsafe(FRAME_HEADER + MAX_INSPECTED);
      this.remaining = head.length - inspect;
      this.dropping = !passes;
    }
    // Bytes of an undecided frame (held in `pending`) stay back; the rest passes.
    const end = this.pendingLength > 0 ? this.headStart : chunk.length;
    if (end > this.keepFrom) this.emit(chunk.subarray(this.keepFrom, end));
    this.chunk = null;
  }
}

function readHead(bytes: Buffer): FrameHead {
  return { length: bytes.readUIntBE(0, 3), type: bytes[3], flags: bytes[4], streamId: bytes.readUInt32BE(5) & 0x7fffffff };
}

/** Bounded insertion-ordered set: stream ids only grow, so the oldest entries are the lowest ids. */
function rememberBounded(set: Set<number>, id: number): void {
  set.add(id);
  dropOldestPastBound(set);
}

/** A per-stream map entry set, the oldest stream's forgotten past MAX_REMEMBERED_STREAMS. */
function setBounded<V>(map: Map<number, V>, id: number, value: V): void {
  map.set(id, value);
  dropOldestPastBound(map);
}

function dropOldestPastBound(streams: Set<number> | Map<number, unknown>): void {
  if (streams.size > MAX_REMEMBERED_STREAMS) streams.delete(streams.keys().next().value as number);
}

/**
 * The guard stream: give it to the http2 server in place of the socket. `actions` must be set
 * (by the session's owner) before any data flows.
 */
export class Http2FrameGuard extends Duplex {
  readonly socket: Socket;
  actions: GuardActions | null = null;
  private readonly inbound: FrameScanner;
  private readonly outbound: FrameScanner;
  /** Highest stream id the client opened. */
  private lastClientStream = 0;
  /** Client streams the client may still send DATA/HEADERS on. */
  private readonly clientOpen = new Set<number>();
  /** Client streams the client ended or reset (recent ones). */
  private readonly clientFinished = new Set<number>();
  /** Send window per stream we may still send DATA on; NaN once we reset it for an overflow. */
  private readonly sendWindows = new Map<number, number>();
  private initialWindow = DEFAULT_INITIAL_WINDOW;
  /** PINGs we sent whose ACK is still due (Node matches ACKs to them in order). */
  private pingsInFlight = 0;
  private readonly hpack = new HpackDecoder();
  private readonly headChecker = new RequestHeadChecker();
  /** The header block being received (HEADERS then CONTINUATIONs): its stream, fragments and flags. */
  private blockStream = 0;
  private blockFragments: Buffer[] = [];
  private blockLength = 0;
  private blockEndsStream = false;
  private blockIsTrailers = false;
  /** Request body bytes still allowed on a stream by its content-length (RFC 9113 §8.1.1). */
  private readonly bodyLeft = new Map<number, number>();
  /**
   * Client bytes held back from the session (null: none are) until the session has reset the
   * streams in `resetsAwaited`: a header block on a stream nghttp2 still has half-closed (remote)
   * would be a connection error there (measured: GOAWAY STREAM_CLOSED), yet the block must be
   * decoded (RFC 9113 §4.3). Once nghttp2 has sent its RST_STREAM and forgotten the stream, it
   * decodes such a block and ignores it.
   */
  private held: Buffer[] | null = null;
  private readonly resetsAwaited = new Set<number>();
  private endAfterHeld = false;
  /** Streams the guard had reset PROTOCOL_ERROR, and the reason label each counts under (see countRefused). */
  private readonly resetReasons = new Map<number, string | null>();
  private failed = false;
  /** Our own GOAWAY went out (see `goaway`): the session's writes are dropped. */
  private goawayWritten = false;
  /** The session has written something: its SETTINGS, the server's connection preface, went first. */
  private sessionWrote = false;

  constructor(socket: Socket) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.inbound = new FrameScanner(
      inboundInspection,
      (head, payload) => this.onInbound(head, payload),
      (bytes) => {
        if (this.held !== null) this.held.push(bytes);
        else if (!this.failed && !this.push(bytes)) socket.pause();
      },
      () => this.fail(NGHTTP2_PROTOCOL_ERROR, 'invalid connection preface'),
    );
    this.outbound = new FrameScanner(
      (head) => (head.type === RST_STREAM ? 4 : 0),
      (head, payload) => this.onOutbound(head, payload),
      () => undefined,
    );
    socket.on('data', (chunk: Buffer) => {
      if (!this.failed) this.inbound.scan(chunk);
    });
    // The guard ends the socket's writable side itself (allowHalfOpen: false of its own), after
    // whatever the session still has to say: a client that ends mid-preface gets its GOAWAY.
    socket.allowHalfOpen = true;
    socket.once('end', () => {
      if (this.inbound.inPreface()) this.fail(NGHTTP2_PROTOCOL_ERROR, 'connection preface cut short');
      else if (this.held !== null) this.endAfterHeld = true;
      else this.push(null);
    });
    socket.once('close', () => this.destroy());
    // Closed, not errored: an 'error' reaching Node's wrapper while it shuts the stream down
    // makes the session write GOAWAY during the shutdown, which fails an internal assertion of
    // JSStreamSocket (the process exits). A reset peer needs no error report anyway.
    socket.on('error', () => this.destroy());
  }

  /** Call before `session.ping()`: its ACK is then expected and passes on to Node. */
  expectPingAck(): void {
    this.pingsInFlight++;
  }

  /** True while client bytes wait for the session to reset a stream (see `held`). */
  get holding(): boolean {
    return this.held !== null;
  }

  override _read(): void {
    if (this.held === null) this.socket.resume();
  }

  /**
   * Writes GOAWAY `code` ahead of the session, which is about to be destroyed: Node's session sends
   * none while a write of its own is under way (its socket is this stream, and a write ends a tick
   * after the socket took it), so a connection error right after any frame we sent was a bare
   * close (review-s11b-goaway). What the session writes after it (its own GOAWAY) is dropped. Not
   * written when the socket is gone or the session's last write ended mid-frame: the session's own
   * goes out then, if it can.
   */
  goaway(code: number): void {
    if (this.goawayWritten || this.socket.destroyed || !this.socket.writable || !this.outbound.betweenFrames()) return;
    this.goawayWritten = true;
    // The server's connection preface, a SETTINGS frame, must be its first frame (RFC 9113 §3.4):
    // an empty one goes first when the session has written nothing yet (an invalid client preface).
    const settings = this.sessionWrote ? 0 : FRAME_HEADER;
    const bytes = Buffer.alloc(settings + FRAME_HEADER + 8);
    if (settings > 0) bytes[3] = SETTINGS;
    bytes.writeUIntBE(8, settings, 3);
    bytes[settings + 3] = GOAWAY;
    bytes.writeUInt32BE(this.lastClientStream, settings + FRAME_HEADER);
    bytes.writeUInt32BE(code, settings + FRAME_HEADER + 4);
    this.socket.write(bytes);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.goawayWritten) {
      callback();
      return;
    }
    this.sessionWrote = true;
    this.outbound.scan(chunk);
    this.socket.write(chunk, (error) => this.written(error, callback));
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    if (this.goawayWritten) {
      callback();
      return;
    }
    this.sessionWrote = true;
    this.socket.cork();
    for (let i = 0; i < chunks.length; i++) {
      this.outbound.scan(chunks[i].chunk);
      if (i < chunks.length - 1) this.socket.write(chunks[i].chunk);
      else this.socket.write(chunks[i].chunk, (error) => this.written(error, callback));
    }
    this.socket.uncork();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end();
    callback();
  }

  /**
   * A failed write (EPIPE, reset) closes the guard instead of erroring it: see the 'error'
   * listener in the constructor for why Node's wrapper must never see an error.
   */
  private written(error: Error | null | undefined, callback: (error?: Error | null) => void): void {
    if (error) this.destroy();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }

  /** Decides on one client frame: true passes it on to nghttp2. */
  private onInbound(head: FrameHead, payload: Buffer): boolean {
    const id = head.streamId;
    switch (head.type) {
      case DATA:
        if (id !== 0 && id <= this.lastClientStream && (id & 1) === 1 && !this.clientOpen.has(id)) {
          return this.closedStream(id, 'DATA');
        }
        {
          const passes = this.countBody(head, payload);
          if ((head.flags & END_STREAM) !== 0) this.finish(id);
          return passes;
        }
      case HEADERS: {
        if (id === 0 || (id & 1) === 0) return true; // nghttp2 rejects these itself
        if (!this.readHeaderBlock(head, payload)) return false;
        if ((head.flags & PRIORITY_FLAG) !== 0) {
          const at = (head.flags & PADDED) !== 0 ? 1 : 0;
          const dependency = payload.length >= at + 4 ? payload.readUInt32BE(at) & 0x7fffffff : 0;
          if (dependency === id) return this.fail(NGHTTP2_PROTOCOL_ERROR, `HEADERS: stream ${id} depends on itself`);
        }
        if (id > this.lastClientStream) {
          this.lastClientStream = id;
          setBounded(this.sendWindows, id, this.initialWindow);
          if ((head.flags & END_STREAM) === 0) rememberBounded(this.clientOpen, id);
          else rememberBounded(this.clientFinished, id);
          return true;
        }
        if (!this.clientOpen.has(id)) {
          if (this.clientFinished.has(id)) return this.lateHeaderBlock(id);
          return this.fail(NGHTTP2_PROTOCOL_ERROR, `HEADERS: stream ${id} is lower than stream ${this.lastClientStream} the client opened before`);
        }
        if ((head.flags & END_STREAM) !== 0) this.finish(id); // trailers
        return true;
      }
      case CONTINUATION:
        return this.readHeaderBlock(head, payload);
      case PRIORITY:
        if (head.length !== 5) return true; // FRAME_SIZE_ERROR: nghttp2's
        if (id === 0) return this.fail(NGHTTP2_PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if ((payload.readUInt32BE(0) & 0x7fffffff) === id) {
          return this.streamError(id, NGHTTP2_PROTOCOL_ERROR, `PRIORITY: stream ${id} depends on itself`);
        }
        return true;
      case RST_STREAM:
        if (id !== 0 && id <= this.lastClientStream) {
          this.finish(id);
          this.sendWindows.delete(id);
        }
        return true;
      case SETTINGS:
        if ((head.flags & ACK) === 0 && head.length % 6 === 0) this.applySettings(payload);
        return true;
      case PING:
        if ((head.flags & ACK) === 0 || head.length !== 8) return true;
        if (this.pingsInFlight > 0) {
          this.pingsInFlight--;
          return true;
        }
        return false; // an ACK of nothing: ignored (§6.7), Node would close the connection
      case WINDOW_UPDATE:
        return this.onWindowUpdate(head, payload);
      default:
        return true;
    }
  }

  /** Outbound: our DATA spends stream windows; our END_STREAM or RST_STREAM ends them. */
  private onOutbound(head: FrameHead, payload: Buffer): boolean {
    if (head.type === RST_STREAM && payload.length === 4 && payload.readUInt32BE(0) === NGHTTP2_PROTOCOL_ERROR && (head.streamId & 1) === 1) {
      this.countRefused(head.streamId);
    }
    if (this.resetsAwaited.size > 0 && (head.type === RST_STREAM || ((head.type === DATA || head.type === HEADERS) && (head.flags & END_STREAM) !== 0))) {
      // nghttp2 closes a stream before it hands over the frame that closes it (nghttp2_session_mem_send).
      if (this.resetsAwaited.delete(head.streamId) && this.resetsAwaited.size === 0) queueMicrotask(() => this.releaseHeld());
    }
    if ((head.type === DATA || head.type === HEADERS) && (head.flags & END_STREAM) !== 0 && this.clientOpen.has(head.streamId)) {
      this.actions?.responseCompleteEarly(head.streamId);
    }
    const window = this.sendWindows.get(head.streamId);
    if (window === undefined || Number.isNaN(window)) return true;
    if (head.type === DATA) this.sendWindows.set(head.streamId, window - head.length);
    if (head.type === RST_STREAM || ((head.type === DATA || head.type === HEADERS) && (head.flags & END_STREAM) !== 0)) {
      this.sendWindows.delete(head.streamId);
    }
    return true;
  }

  private onWindowUpdate(head: FrameHead, payload: Buffer): boolean {
    if (head.streamId === 0 || head.length !== 4) return true; // the connection window, and malformed frames: nghttp2's
    const window = this.sendWindows.get(head.streamId);
    if (window === undefined) return true;
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (increment === 0) return true; // PROTOCOL_ERROR: nghttp2's
    if (Number.isNaN(window)) return false; // reset by us for an overflow: nghttp2 must not see more
    if (window + increment > MAX_WINDOW) {
      // nghttp2 would see the same overflow (until our RST_STREAM closed the stream) and end the
      // whole connection: it gets no WINDOW_UPDATE for this stream any more.
      this.sendWindows.set(head.streamId, NaN);
      return this.streamError(head.streamId, NGHTTP2_FLOW_CONTROL_ERROR, `WINDOW_UPDATE: stream ${head.streamId} window above 2^31-1`);
    }
    this.sendWindows.set(head.streamId, window + increment);
    return true;
  }

  private applySettings(payload: Buffer): void {
    for (let offset = 0; offset + 6 <= payload.length; offset += 6) {
      if (payload.readUInt16BE(offset) !== SETTINGS_INITIAL_WINDOW_SIZE) continue;
      const value = payload.readUInt32BE(offset + 2);
      if (value > MAX_WINDOW) return; // FLOW_CONTROL_ERROR: nghttp2's
      const delta = value - this.initialWindow;
      this.initialWindow = value;
      for (const [id, window] of this.sendWindows) this.sendWindows.set(id, window + delta);
    }
  }

  private finish(id: number): void {
    this.clientOpen.delete(id);
    this.bodyLeft.delete(id);
    rememberBounded(this.clientFinished, id);
  }

  /**
   * Reads a HEADERS or CONTINUATION frame's part of a header block; at the block's end decodes and
   * checks it (a new stream's request, or trailers). The frame always passes (nghttp2 must decode
   * every block for its table); false only when the connection has failed.
   */
  private readHeaderBlock(head: FrameHead, payload: Buffer): boolean {
    if (head.length > MAX_FRAME_PAYLOAD) return this.fail(NGHTTP2_FRAME_SIZE_ERROR, `${head.type === HEADERS ? 'HEADERS' : 'CONTINUATION'} of ${head.length} bytes`);
    let fragment = payload;
    if (head.type === HEADERS) {
      if (this.blockFragments.length > 0) return this.fail(NGHTTP2_PROTOCOL_ERROR, `HEADERS on stream ${head.streamId} inside another header block`);
      const padded = (head.flags & PADDED) !== 0;
      const padLength = padded ? payload[0] : 0;
      const start = (padded ? 1 : 0) + ((head.flags & PRIORITY_FLAG) !== 0 ? 5 : 0);
      if (start + padLength > payload.length) return true; // PROTOCOL_ERROR: nghttp2's
      fragment = payload.subarray(start, payload.length - padLength);
      this.blockStream = head.streamId;
      this.blockEndsStream = (head.flags & END_STREAM) !== 0;
      this.blockIsTrailers = head.streamId <= this.lastClientStream;
      this.blockLength = 0;
    } else if (head.streamId !== this.blockStream || this.blockStream === 0) {
      return true; // a CONTINUATION out of place: PROTOCOL_ERROR, nghttp2's
    }
    this.blockLength += fragment.length;
    if (this.blockLength > MAX_HEADER_BLOCK) return this.fail(NGHTTP2_ENHANCE_YOUR_CALM, `a header block over ${MAX_HEADER_BLOCK} bytes`);
    if ((head.flags & END_HEADERS) === 0) {
      // The payload is the scanner's buffer, reused by the next frame.
      this.blockFragments.push(Buffer.from(fragment));
      return true;
    }
    let block = fragment;
    if (this.blockFragments.length > 0) {
      this.blockFragments.push(fragment);
      block = Buffer.concat(this.blockFragments, this.blockLength);
      this.blockFragments = [];
    }
    const id = this.blockStream;
    this.blockStream = 0;
    let check;
    try {
      check = this.headChecker.check(this.hpack, block, this.blockIsTrailers);
    } catch (error) {
      if (!(error instanceof HpackError)) throw error;
      return this.fail(NGHTTP2_COMPRESSION_ERROR, `header block on stream ${id}: ${error.message}`);
    }
    if (check.malformed !== null) {
      this.bodyLeft.delete(id);
      this.malformed(id, check.malformed);
    } else if (check.listSize > MAX_HEADER_LIST_SIZE) {
      this.bodyLeft.delete(id);
      this.inbound.flush();
      this.actions?.malformedRequest(id, `a header list of ${check.listSize} bytes (over ${MAX_HEADER_LIST_SIZE})`, NGHTTP2_ENHANCE_YOUR_CALM);
    } else if (!this.blockIsTrailers && !this.blockEndsStream && check.contentLength >= 0) {
      setBounded(this.bodyLeft, id, check.contentLength);
    }
    return true;
  }

  /**
   * DATA spends its stream's content-length; DATA beyond it makes the request malformed: the stream
   * is reset and the frame replaced by as many bytes of DATA that are all padding, so the session
   * neither delivers its bytes nor loses track of the connection's flow-control window (a dropped
   * frame would leak it). Short of it at END_STREAM nghttp2 resets the stream itself.
   */
  private countBody(head: FrameHead, payload: Buffer): boolean {
    const left = this.bodyLeft.get(head.streamId);
    if (left === undefined || head.length === 0) return true;
    const padding = (head.flags & PADDED) !== 0 ? payload[0] + 1 : 0;
    const data = head.length - padding;
    if (data <= left) {
      if ((head.flags & END_STREAM) === 0) this.bodyLeft.set(head.streamId, left - data);
      return true;
    }
    if (padding > head.length) return true; // PROTOCOL_ERROR: nghttp2's
    this.bodyLeft.delete(head.streamId);
    this.inbound.replaceFrame(paddingOnly(head));
    this.malformed(head.streamId, { reason: 'invalid_content_length', detail: `DATA beyond the content-length (${data} bytes, ${left} left)` });
    return false;
  }

  private malformed(id: number, why: Malformed): void {
    if (this.failed) return;
    this.resetReason(id, why.reason);
    this.inbound.flush();
    this.actions?.malformedRequest(id, why.detail);
  }

  /** What the session's RST_STREAM PROTOCOL_ERROR on stream `id` counts under (null: not at all). */
  private resetReason(id: number, reason: string | null): void {
    setBounded(this.resetReasons, id, reason);
  }

  /**
   * A client stream reset PROTOCOL_ERROR: a malformed request, for the reason the guard found, or
   * else nghttp2's own (RFC 9113 §8.1.1, which nghttp2 does not tell): `malformed_request`, as
   * HTTP/1.1's parser errors without a label of their own. Once per stream: one RST_STREAM.
   */
  private countRefused(id: number): void {
    const reason = this.resetReasons.has(id) ? this.resetReasons.get(id)! : 'malformed_request';
    this.resetReasons.delete(id);
    if (reason !== null) this.actions?.requestRefused(reason);
  }

  /**
   * DATA or HEADERS on a stream the client has finished sending on (§5.1: STREAM_CLOSED; a
   * connection error when the stream is closed both ways, which is when the session has no stream).
   */
  private closedStream(id: number, frame: string): false {
    return this.streamError(id, NGHTTP2_STREAM_CLOSED, `${frame} on stream ${id} after the client ended or reset it`);
  }

  /**
   * A header block on a stream the client has finished sending on: STREAM_CLOSED as any frame
   * there (closedStream), but the block still reaches nghttp2, after the session has reset the
   * stream: from here on, client bytes are held until the session's RST_STREAM (or END_STREAM)
   * on it goes out. Where the session has no stream any more, its answer is a connection error.
   */
  private lateHeaderBlock(id: number): true {
    this.streamError(id, NGHTTP2_STREAM_CLOSED, `HEADERS on stream ${id} after the client ended or reset it`);
    // No send window: closed both ways (our END_STREAM or a reset), nghttp2 has forgotten it.
    if (this.failed || !this.sendWindows.has(id)) return true;
    this.resetsAwaited.add(id);
    if (this.held === null) {
      this.held = [];
      this.socket.pause();
    }
    return true;
  }

  private releaseHeld(): void {
    const held = this.held;
    if (held === null || this.resetsAwaited.size > 0) return;
    this.held = null;
    let more = true;
    for (const bytes of held) if (!this.failed) more = this.push(bytes);
    if (this.endAfterHeld) this.push(null);
    else if (more) this.socket.resume();
  }

  /** RST_STREAM through the session, once it has read everything before this frame (so it knows the stream); the frame is dropped. */
  private streamError(id: number, code: number, reason: string): false {
    if (!this.failed) {
      // A frame's fault (PRIORITY on itself), not the request's: no refused request.
      if (code === NGHTTP2_PROTOCOL_ERROR) this.resetReason(id, null);
      this.inbound.flush();
      this.actions?.streamError(id, code, reason);
    }
    return false;
  }

  private fail(code: number, reason: string): false {
    if (!this.failed) {
      this.failed = true;
      this.actions?.connectionError(code, reason);
    }
    return false;
  }
}

/** Most payload one PADDED frame can be that is all padding: the pad length byte and 255 bytes of padding. */
const MAX_PADDING_ONLY = 256;

/**
 * DATA frames on the stream of `head`, of its payload length in all and its END_STREAM, that carry
 * no data: each PADDED, all its payload padding.
 */
function paddingOnly(head: FrameHead): Buffer {
  const count = Math.ceil(head.length / MAX_PADDING_ONLY);
  const bytes = Buffer.alloc(count * FRAME_HEADER + head.length);
  let at = 0;
  for (let left = head.length; left > 0; ) {
    const length = Math.min(left, MAX_PADDING_ONLY);
    left -= length;
    bytes.writeUIntBE(length, at, 3);
    bytes[at + 3] = DATA;
    bytes[at + 4] = PADDED | (left === 0 ? head.flags & END_STREAM : 0);
    bytes.writeUInt32BE(head.streamId, at + 5);
    bytes[at + FRAME_HEADER] = length - 1;
    at += FRAME_HEADER + length;
  }
  return bytes;
}

/** Payload bytes each inbound frame type needs inspected. */
function inboundInspection(head: FrameHead): number {
  switch (head.type) {
    case HEADERS:
    case CONTINUATION:
      // Whole: the header block is decoded (a longer frame is refused unread).
      return head.length <= MAX_FRAME_PAYLOAD ? head.length : 0;
    case DATA:
      return (head.flags & PADDED) !== 0 ? 1 : 0; // the pad length
    case PRIORITY:
      return 5;
    case SETTINGS:
      return Math.min(head.length, MAX_INSPECTED);
    case WINDOW_UPDATE:
      return 4;
    default:
      return 0;
  }
}

/** Event-loop turns a stream error waits for the session to read the stream's HEADERS still buffered. */
const MAX_STREAM_LOOKUPS = 100;

/** The HTTP/2 timeouts a session is supervised with (from FrontDoorLimits). */
export interface Http2Timeouts {
  /** No frame either way for this long: GOAWAY when no stream is open, else a PING probe. */
  idleMs: number;
  /** Longest wait for the client's SETTINGS ACK (from the session's start) or a PING ACK. */
  ackMs: number;
  /** Longest silence on a stream whose request body is still coming: the stream is reset (CANCEL). */
  requestBodyMs: number;
}

/**
 * Serves `socket` (whose bytes are HTTP/2: prior knowledge or ALPN h2) on `server` through a frame
 * guard, and supervises the session it becomes: the client's SETTINGS ACK must come within the ack
 * timeout (RFC 9113 §6.5.3; a client that never sends its preface is closed by the same timer), an
 * idle session gets GOAWAY, one with open streams but silent a PING whose ACK must come in time.
 * Returns the session (already announced on the server's 'session' event). Streams reset for a
 * malformed request count in `rejections()` (read per refusal: the listener's table swaps on reload).
 */
export function serveHttp2(
  server: http2.Http2Server,
  socket: Socket,
  timeouts: Http2Timeouts,
  logger: Logger,
  listener: string,
  rejections: () => DownstreamRejections,
): http2.ServerHttp2Session {
  const guard = new Http2FrameGuard(socket);
  let session: http2.ServerHttp2Session | null = null;
  // connectionListener creates the session and emits 'session' synchronously within emit().
  const capture = (created: http2.ServerHttp2Session): void => {
    session = created;
  };
  server.once('session', capture);
  server.emit('connection', guard);
  server.removeListener('session', capture);
  if (session === null) throw new Error('http2 server created no session for the connection');
  supervise(session, guard, timeouts, logger, listener, rejections);
  return session;
}

function supervise(session: http2.ServerHttp2Session, guard: Http2FrameGuard, timeouts: Http2Timeouts, logger: Logger, listener: string, rejections: () => DownstreamRejections): void {
  const socket = guard.socket;
  // Node wraps the guard in a socket of its own (JSStreamSocket) that knows neither peer nor SNI;
  // the request handler reads both through req.socket. Its _peername is what net.Socket's
  // remoteAddress/remotePort fall back to for a handle without getpeername.
  const wrapper = session.socket as unknown as Record<string, unknown>;
  wrapper._peername = { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily };
  const tlsSocket = socket as Partial<TLSSocket>;
  if (tlsSocket.encrypted === true) {
    wrapper.servername = tlsSocket.servername;
    wrapper.encrypted = true;
    wrapper.alpnProtocol = tlsSocket.alpnProtocol;
  }

  const streams = new Map<number, http2.ServerHttp2Stream>();
  /** Malformed requests whose streams the session has not announced yet (it may never: nghttp2 may refuse them first), and their RST_STREAM codes. */
  const malformed = new Map<number, { reason: string; code: number }>();
  const refuse = (stream: http2.ServerHttp2Stream, reason: string, code = NGHTTP2_PROTOCOL_ERROR): void => {
    if (stream.closed || stream.destroyed) return;
    logger.debug({ listener, remote: socket.remoteAddress, stream: stream.id, reason }, 'HTTP/2 malformed request: stream reset');
    stream.close(code);
  };
  // Ahead of the server's own listener, which turns the stream into a request and serves it: a
  // malformed one is reset first, and the request handler leaves a closed stream alone.
  session.prependListener('stream', (stream: http2.ServerHttp2Stream) => {
    const id = stream.id;
    const refusal = id === undefined ? undefined : malformed.get(id);
    if (refusal === undefined || id === undefined) return;
    malformed.delete(id);
    refuse(stream, refusal.reason, refusal.code);
  });
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    const id = stream.id;
    if (id === undefined) return;
    streams.set(id, stream);
    stream.once('close', () => streams.delete(id));
    // As the HTTP/1.1 body timeout (nginx's client_body_timeout), per stream: the connection's
    // other streams go on. Node refreshes the timer on each frame the stream reads or writes.
    if (!stream.endAfterHeaders) {
      stream.setTimeout(timeouts.requestBodyMs, () => {
        logger.debug({ listener, remote: socket.remoteAddress, stream: id }, 'HTTP/2 request body timed out: stream reset');
        stream.close(NGHTTP2_CANCEL);
      });
      stream.once('end', () => stream.setTimeout(0));
    }
  });
  const close = (code: number, reason: string): void => {
    logger.debug({ listener, remote: socket.remoteAddress, code, reason }, 'HTTP/2 connection closed');
    guard.goaway(code);
    // An Error, not just the code: destroy(undefined, code) would send NO_ERROR.
    session.destroy(new Error(reason), code);
  };
  guard.actions = {
    connectionError: (code, reason) => close(code, reason),
    // Node announces a stream on the next tick after reading its HEADERS, or later when the
    // bytes before this frame still wait in the guard's buffer (the session paused reading).
    streamError: (id, code, reason) => {
      let tries = 0;
      const resolve = (): void => {
        const stream = streams.get(id);
        if (stream !== undefined && !stream.closed && !stream.destroyed) {
          logger.debug({ listener, remote: socket.remoteAddress, stream: id, code, reason }, 'HTTP/2 stream reset');
          stream.close(code);
        } else if ((guard.readableLength > 0 || guard.holding) && !session.destroyed && tries++ < MAX_STREAM_LOOKUPS) {
          setImmediate(resolve);
        } else {
          close(code, reason);
        }
      };
      setImmediate(resolve);
    },
    // RFC 9113 §8.1: after a complete response, RST_STREAM NO_ERROR asks the client to stop sending
    // the request (nginx does the same); otherwise an upload nobody reads any more holds the stream
    // open on flow control until the client gives up. Deferred: this runs inside the session's write.
    malformedRequest: (id, reason, code = NGHTTP2_PROTOCOL_ERROR) => {
      const stream = streams.get(id);
      if (stream !== undefined) {
        refuse(stream, reason, code);
        return;
      }
      setBounded(malformed, id, { reason, code });
    },
    requestRefused: (reason) => rejections().record(reason),
    responseCompleteEarly: (id) =>
      setImmediate(() => {
        const stream = streams.get(id);

        if (stream !== undefined && !stream.closed && !stream.destroyed && !stream.readableEnded) stream.close(NGHTTP2_NO_ERROR);
      }),
  };

  let ackTimer: NodeJS.Timeout | null = setTimeout(() => close(NGHTTP2_SETTINGS_TIMEOUT, 'no SETTINGS ACK'), timeouts.ackMs);
  const clearAck = (): void => {
    if (ackTimer !== null) clearTimeout(ackTimer);
    ackTimer = null;
  };
  session.once('localSettings', clearAck);
  session.once('close', clearAck);
  session.on('error', () => undefined); // reported on the server as 'sessionError'; the session closes itself

  session.setTimeout(timeouts.idleMs, () => {
    if (session.closed || session.destroyed) return;
    if (streams.size === 0) {
      // GOAWAY; a client that does not let the close finish is cut after the ack timeout.
      session.close();
      setTimeout(() => session.destroy(), timeouts.ackMs).unref();
      return;
    }
    // Streams open but nothing moves (a long poll, or a client that vanished): ask.
    if (ackTimer !== null) return;
    ackTimer = setTimeout(() => close(NGHTTP2_NO_ERROR, 'no PING ACK'), timeouts.ackMs);
    guard.expectPingAck();
    session.ping(() => clearAck());
  });
}
