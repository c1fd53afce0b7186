// HTTP/1.1 upgrade requests. Node's HTTP/1.1 server hands each request that asks for an upgrade
// (and carries no body, see shouldTakeUpgrade) to Http1Upgrades with its raw connection, detached
// from the parser. The request is then served like any other, through an http.ServerResponse
// attached to that connection, so routing, filters, rate limits and local answers all apply, with
// proper HTTP/1.1 framing. Only an upgrade the route allows (route.upgradeTypes, WebSocket by
// default) on a forwarding route is asked of the upstream, and only the upstream's 101 turns the
// connection into a tunnel (upstream/tunnel.ts), as nginx and Envoy do. Whatever else happens, once the response is written the connection goes
// back to the HTTP/1.1 server with the bytes the client sent after the request put back in front:
// a pipelined request is parsed and routed like any other.

import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { UPGRADE_PROTOCOL } from '../ir/upgrades.ts';
import type { ClientUpgrade } from './upstream/tunnel.ts';


/** Serves one request on a response; `upgrade` non-null when the request may become a tunnel. */
export type ServeRequest = (req: IncomingMessage, res: http.ServerResponse, upgrade: ClientUpgrade | null) => void;

/**
 * Node's shouldUpgradeCallback: take every upgrade request without a body, whatever it asks for.
 * Left to Node, an upgrade request it serves as a plain one loses the bytes read along with it (a
 * pipelined request gets no answer: Node 24 drops the rest of that read). One with a body must be
 * left to Node, the only one here that parses bodies; server.ts closes its connection after the
 * response instead.
 */
export function shouldTakeUpgrade(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined;
}

/** Whether Node's parser stopped reading after this request (Upgrade with `Connection: upgrade`), losing what followed it in the same read. */
export function stopsParser(req: IncomingMessage): boolean {
  return req.headers.upgrade !== undefined && connectionTokens(req).includes('upgrade');
}

/** The response in flight on a connection, set by Node (and by ServerResponse.assignSocket). */
interface HttpSocket extends Socket {
  _httpMessage?: http.ServerResponse | null;
}

/** The upgrade requests of one HTTP/1.1 server (its 'upgrade' event). */
export class Http1Upgrades {
  private readonly server: http.Server;
  private readonly serve: ServeRequest;
  /** Connections back from an upgrade request, idle: waiting for their next byte (see handBack). */
  private readonly idle = new Set<Socket>();

  private readonly tunnelIdleTimeoutMs: number;

  constructor(server: http.Server, serve: ServeRequest, tunnelIdleTimeoutMs: number) {
    this.server = server;
    this.serve = serve;
    this.tunnelIdleTimeoutMs = tunnelIdleTimeoutMs;
  }

  /** `keepAlive`: false while draining; the connection then closes after the answer. */
  handle(req: IncomingMessage, socket: Socket, head: Buffer, keepAlive: boolean): void {
    // A client that pipelined this request behind another gets it answered after that one.
    const inFlight = (socket as HttpSocket)._httpMessage;
    if (inFlight !== undefined && inFlight !== null) {
      inFlight.once('finish', () => this.handle(req, socket, head, keepAlive));
      return;
    }
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = keepAlive && req.httpVersionMinor === 1 && !connectionTokens(req).includes('close');
    res.assignSocket(socket);
    res.once('finish', () => {
      res.detachSocket(socket);
      if (!res.shouldKeepAlive || socket.destroyed) {
        socket.destroySoon();
        return;
      }
      this.handBack(socket, head);
    });
    const protocol = tunnelProtocol(req);
    const upgrade: ClientUpgrade | null =
      protocol === null
        ? null
        : {
            protocol,
            head,
            idleTimeoutMs: this.tunnelIdleTimeoutMs,
            switchProtocols: () => {
              res.detachSocket(socket);
              return socket;
            },
          };
    this.serve(req, res, upgrade);
  }

  /** Closes the idle connections back from upgrade requests, as the server's closeIdleConnections() does for its own. */
  closeIdle(): void {
    for (const socket of this.idle) socket.destroy();
  }

  /**
   * Gives the connection back to the HTTP/1.1 server (a fresh parser, as for a new connection;
   * the listener still counts the socket), with the bytes read after the request put back in
   * front. Node runs the request-headers timeout from the hand-over, so an idle connection is
   * handed back with its next byte only: until then it is an idle keep-alive connection, closed
   * after the server's keep-alive (idle) timeout, or by closeIdle(), like any other.
   */
  private handBack(socket: Socket, head: Buffer): void {
    if (head.length > 0 || socket.readableLength > 0) {
      if (head.length > 0) socket.unshift(head);
      this.server.emit('connection', socket);
      return;
    }
    const onReadable = (): void => {
      this.idle.delete(socket);
      socket.setTimeout(0);
      // With no 'readable' listener left the socket flows again for the parser's 'data' listener.
      socket.removeListener('readable', onReadable);
      if (!socket.destroyed) this.server.emit('connection', socket);
    };
    this.idle.add(socket);
    socket.once('close', () => this.idle.delete(socket));
    socket.on('readable', onReadable); // also on the client's FIN, which the server then handles
    socket.setTimeout(this.server.keepAliveTimeout, () => socket.destroy());
  }
}

/** The protocol to ask the upstream for, or null when the request is served as a plain one (its Upgrade dropped as hop-by-hop). */
function tunnelProtocol(req: IncomingMessage): string | null {
  // RFC 6455 §4.1: a GET, over HTTP/1.1. h2c (RFC 7540 §3.2) is never tunnelled, nor a list of
  // several protocols; whether the route allows the protocol is asked once it is routed.
  if (req.method !== 'GET' || req.httpVersionMinor !== 1) return null;
  const protocol = req.headers.upgrade?.trim().toLowerCase();
  return protocol !== undefined && protocol !== 'h2c' && UPGRADE_PROTOCOL.test(protocol) ? protocol : null;
}

function connectionTokens(req: IncomingMessage): string[] {
  const connection = req.headers.connection;
  return connection === undefined ? [] : connection.toLowerCase().split(',').map((token) => token.trim());
}
