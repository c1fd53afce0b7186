// A response the client does not take. A client that stops reading (a zero TCP or HTTP/2 window)
// holds its connection, the response's buffers and, while the body is relayed, the upstream
// request and its connection — for ever, since no other timer runs while a response is being
// sent. As nginx's send_timeout: while bytes wait for the client (a write returned false, or the
// end was written but not flushed), it must take some within --response-send-timeout, or the
// connection is closed (HTTP/2: that stream is reset with CANCEL; the others go on). What counts as
// taking some is a relayed chunk (at most 64 KiB) leaving the buffer — the unit Node reports — so a
// client must take at least one chunk per bound (about 1 KiB/s at the 60 s default), where nginx
// resets its timer on any byte taken. Nothing runs for a response the client keeps up with. An
// upgraded connection (WebSocket) is bounded the same way on its client side (boundTunnel).
import { constants as http2Constants, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { DownstreamResponse } from './downstream.ts';

/** A listener's bound, and where it counts a cut (sluice_client_timeouts_total{stage="response_send"}). */
export interface SendBound {
  readonly timeoutMs: number;
  timedOut(): void;
}

const SEND_BOUND = Symbol('sluice.sendBound');

type Marked = { [SEND_BOUND]?: SendBound };

/**
 * Gives a connection its listener's bound: `socket` is the one its responses report as
 * `res.socket` (HTTP/1.1: the socket the HTTP server was handed; HTTP/2: the session's socket).
 */
export function boundSends(socket: object, bound: SendBound): void {
  (socket as Marked)[SEND_BOUND] = bound;
}

/**
 * Starts the wait for the client to take what is queued on `res`; the caller clears the timer on
 * 'drain' (or the response's 'close'). Undefined when the connection has no bound.
 */
export function awaitClient(res: DownstreamResponse): NodeJS.Timeout | undefined {
  const bound = (res.socket as Marked | null)?.[SEND_BOUND];
  return bound === undefined ? undefined : setTimeout(cutStalled, bound.timeoutMs, res, bound);
}

function cutStalled(res: DownstreamResponse, bound: SendBound): void {
  // The response's 'close' follows, which cancels the upstream request (ProxyExchange).
  if (!(res instanceof Http2ServerResponse)) {
    if (res.socket !== null) cutConnection(res.socket, bound);
  } else if (!res.stream.destroyed) {
    bound.timedOut();
    res.stream.close(http2Constants.NGHTTP2_CANCEL);
  }
}

/** Closes a client connection (HTTP/1.1, or a tunnel's) whose bytes waited too long, counted once. */
function cutConnection(socket: Socket, bound: SendBound): void {
  if (socket.destroyed) return;
  bound.timedOut();
  socket.destroy();
}

/**
 * A tunnel's client side: bytes relayed from the upstream wait for the client as a response's do
 * (nginx applies send_timeout to upgraded connections too). pipe() pauses `upstream` when a write to
 * `client` is held back and resumes it on the client's 'drain'. Without this, a client that never
 * reads but sends a byte now and then keeps the tunnel's idle timer from ever firing.
 */
export function boundTunnel(client: Socket, upstream: Duplex): void {
  const bound = (client as Marked)[SEND_BOUND];
  if (bound === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  upstream.on('pause', () => {
    timer ??= setTimeout(cutConnection, bound.timeoutMs, client, bound);
  });
  client.on('drain', () => {
    clearTimeout(timer);
    timer = undefined;
  });
  client.once('close', () => clearTimeout(timer));
}
