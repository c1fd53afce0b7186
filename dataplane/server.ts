// One listening socket (HTTP or HTTPS) over the current ListenerTable. The table is a single
// reference swapped on reload; each request reads it once, so in-flight requests finish on
// the table they started with. Certificates resolve through the SNICallback against the same
// reference, so a reload never reopens the socket.
//
// Connections are accepted by a front server (node:net for HTTP, node:tls for HTTPS) and handed
// to one of two servers that never listen themselves: an http.Server for HTTP/1.x and an http2
// server for HTTP/2 (`server.emit('connection', socket)`). HTTPS chooses by ALPN (`h2`, else
// HTTP/1.1); cleartext HTTP looks at the first bytes a client sends, once per connection: the
// HTTP/2 connection preface means prior knowledge (RFC 9113 §3.3), anything else is HTTP/1.x.
// Not http2.createSecureServer({ allowHTTP1 }): it covers TLS only (cleartext needs the sniffing
// anyway) and lacks closeIdleConnections, which draining needs; one mechanism for both schemes
// keeps draining, timeouts and upgrades the same everywhere.
//
// fastify owns the front server's lifecycle (listen, close), but requests go to a raw handler,
// never through fastify's router: measured on the project's VM (CPU time per proxied request,
// 4 rounds), the raw handler cost 0.81x of a bare node:http + undici forwarder's
// throughput-per-CPU and a fastify catch-all route with `reply.hijack()` 0.70x. A proxy must also
// pass every target and body through untouched, which a catch-all route does not (bad-URL 400s,
// content-type parsing, header objects).

import http from 'node:http';
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import fastify, { type FastifyInstance, type FastifyListenOptions } from 'fastify';
import type { Logger } from 'pino';
import type { ListenerTable } from './config/route-table.ts';
import type { DownstreamRequest, DownstreamResponse } from './downstream.ts';
import { REFUSED_RESPONSE, type ConnectionBudget, type FrontDoorLimits } from './front-door.ts';
import { answerParserError, CONNECT_REFUSED, http2FieldProblem, parserRejection, RejectionReporter, requestProblem, sendRejection, targetProblem } from './http1-strict.ts';
import { MAX_HEADER_LIST_SIZE, serveHttp2 } from './http2-front.ts';
import { handleRequest } from './request-handler.ts';
import { boundSends, type SendBound } from './response-send.ts';
import { secureContextOptions } from './tls/certificates.ts';
import { ClientHellos } from './tls/client-hellos.ts';
import { Http1Upgrades, shouldTakeUpgrade, stopsParser, type ServeRequest } from './upgrade-handler.ts';

/**
 * How often Node's http.Server checks request-head deadlines (connectionsCheckingInterval): a
 * fifth of the headers timeout, between these bounds. Node's default, 30 s, lets a slowloris
 * client outlive a 10 s headers timeout threefold.
 */
const HEADERS_CHECK_MIN_MS = 50;
const HEADERS_CHECK_MAX_MS = 1_000;

/** A refused cleartext client gets this long to read the 503 before its socket is destroyed. */
const REFUSAL_LINGER_MS = 1_000;

/** accept() errors closer together than this belong to one episode (one log line). */
const ACCEPT_ERROR_EPISODE_MS = 1_000;

/** While draining, how often keep-alive connections that went idle are closed. */
const DRAIN_SWEEP_MS = 250;

/**
 * What the HTTP/2 server announces: concurrent streams a client may open on one connection, and
 * the largest header list it accepts (name + value + 32 per field, RFC 9113 §6.5.2), 32 KiB as
 * nginx's large_client_header_buffers (4 × 8k) allows HTTP/1.1 request heads; Node's default is 64 KiB.
 */
const HTTP2_SETTINGS: http2.Settings = { maxConcurrentStreams: 1000, maxHeaderListSize: MAX_HEADER_LIST_SIZE };

/** ALPN offer of HTTPS listeners, in server preference order. */
const ALPN_PROTOCOLS = ['h2', 'http/1.1'];

/** The first line of the HTTP/2 connection preface (RFC 9113 §3.4), without its CRLF. */
const HTTP2_PREFACE_LINE = 'PRI * HTTP/2.0';

/**
 * Bytes of a cleartext connection's first line read at most to tell HTTP/1.x from HTTP/2 (nginx's
 * large_client_header_buffers: 8 KiB); a longer line is left to the HTTP/1.1 parser (414/431).
 */
const SNIFF_MAX_LINE = 8192;

type Sniffed = 'h2' | 'http/1.1' | 'more';

/**
 * HTTP/2 with prior knowledge (RFC 9113 §3.3) or HTTP/1.x, from a cleartext connection's first
 * line. HTTP/1.x when it reads as a request line, however malformed (the HTTP/1.1 parser then
 * answers 400): it names an HTTP version, or its target has one of the request-target forms (RFC
 * 9112 §3.2: `/path`, `*`, `scheme://...`, CONNECT's authority). The preface, and a first line that
 * is none of these (h2spec's `INVALID CONNECTION PREFACE`), go to the HTTP/2 server: a broken
 * preface is a connection error there (GOAWAY PROTOCOL_ERROR, §3.4), where an HTTP/1.1 400 would
 * answer in a protocol the client did not speak. 'more' until the first line is complete; empty
 * lines before it are skipped, as RFC 9112 §2.2 lets a server do.
 */
export function sniffProtocol(data: Buffer): Sniffed {
  let start = 0;
  while (start < data.length && (data[start] === 0x0d || data[start] === 0x0a)) start++;
  const end = data.indexOf(0x0a, start);
  if (end === -1) return data.length - start >= SNIFF_MAX_LINE ? 'http/1.1' : 'more';
  const line = data.toString('latin1', start, end > start && data[end - 1] === 0x0d ? end - 1 : end);
  if (line === HTTP2_PREFACE_LINE) return 'h2';
  if (/HTTP\//i.test(line)) return 'http/1.1';
  const [method, target = ''] = line.split(' ', 2);
  return target.startsWith('/') || target === '*' || target.includes('://') || method === 'CONNECT' ? 'http/1.1' : 'h2';
}

/**
 * Whether a request head says a body follows: Content-Length other than 0, or Transfer-Encoding.
 * Without either a request has none (RFC 9112 §6.3), so no gap in it to bound: most requests
 * (GET) then cost no socket timer and no listeners (profiled under load: a few % of the proxy's CPU).
 */
function announcesBody(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    // Compare lengths first: nearly every header is neither.
    if (name.length === 14 && name.toLowerCase() === 'content-length' && rawHeaders[i + 1] !== '0') return true;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
  }
  return false;
}

export class ListenerServer {
  readonly name: string;
  readonly address: string;
  readonly bindPort: number;
  readonly protocol: ListenerTable['protocol'];
  private table: ListenerTable;
  private readonly logger: Logger;
  private readonly limits: FrontDoorLimits;
  private readonly budget: ConnectionBudget;
  /** Every connection's bound on responses its client does not take (dataplane/response-send.ts). */
  private readonly sendBound: SendBound;
  private readonly app: FastifyInstance;
  /** The listening servers: one, unless fastify binds a name that resolves to several addresses. */
  private readonly fronts: net.Server[] = [];
  /** HTTPS: the TLS servers the fronts hand connections to (they never listen). */
  private readonly tlsServers: tls.Server[] = [];
  /** Serve the connections the fronts hand over; they never listen. */
  private readonly http1: http.Server;
  private readonly http2: http2.Http2Server;
  /** Every accepted TCP connection (whatever became of it: HTTP/1.1, HTTP/2, tunnel). */
  private readonly connections = new Set<Socket>();
  /** Cleartext connections whose protocol is not known yet. */
  private readonly sniffing = new Set<Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** What the default (no-SNI) context was built from: certificate hash and client CA set. */
  private defaultContextKey: string | null = null;
  private draining = false;
  private lastAcceptErrorAt = 0;
  /** Each worker thread (--workers) binds its own socket to the port (SO_REUSEPORT); the kernel spreads connections. */
  private readonly reusePort: boolean;
  /** TLS session ticket keys shared by the worker threads, so that a ticket one issued resumes on any; null: the server's own. */
  private readonly ticketKeys: Buffer | null;

  /** `table.certificates` must be set for HTTPS (the caller checks). */
  constructor(table: ListenerTable, bindPort: number, logger: Logger, budget: ConnectionBudget, reusePort = false, ticketKeys: Buffer | null = null) {
    this.reusePort = reusePort;
    this.ticketKeys = ticketKeys;
    this.name = table.name;
    this.address = table.listener.address;
    this.bindPort = bindPort;
    this.protocol = table.protocol;
    this.table = table;
    this.logger = logger;
    this.budget = budget;
    this.limits = budget.limits;
    this.sendBound = { timeoutMs: this.limits.responseSendTimeoutMs, timedOut: () => budget.timedOut(this.name, 'response_send') };
    this.http1 = this.createHttp1Server();
    this.http2 = this.createHttp2Server();
    this.app = fastify({
      serverFactory: () => this.createFront() as unknown as http.Server,
      logger: false,
      // The fronts are not HTTP servers; close() below drains connections itself.
      forceCloseConnections: false,
    });
  }

  /** Rejects with the bind error (EADDRINUSE, EACCES, ...). */
  async listen(): Promise<void> {
    // fastify hands its listen options to net.Server#listen, which knows reusePort (fastify's types do not).
    await this.app.listen({ host: this.address, port: this.bindPort, ...(this.reusePort ? { reusePort: true } : {}) } as FastifyListenOptions);
  }

  /**
   * Swaps in a new table. Only the default (no-SNI) context and the client-certificate settings
   * need the TLS server touched; SNI contexts come from the table itself.
   */
  update(table: ListenerTable): void {
    this.table = table;
    this.configureTls();
  }

  /**
   * Graceful: stop accepting, close idle keep-alive connections and send HTTP/2 GOAWAY, let
   * in-flight requests finish (HTTP/1.1 responses say `Connection: close`), then cut whatever is
   * left after `drainMs`.
   */
  async close(drainMs: number): Promise<void> {
    this.draining = true;
    for (const socket of this.sniffing) socket.destroy(); // nothing asked on them yet
    for (const session of this.sessions) session.close();
    this.http1.closeIdleConnections();
    // A response already under way when draining began still says keep-alive: close its
    // connection once it is idle too.
    const sweep = setInterval(() => this.http1.closeIdleConnections(), DRAIN_SWEEP_MS);
    sweep.unref();
    const deadline = setTimeout(() => {
      for (const socket of this.connections) socket.destroy();
    }, drainMs);
    deadline.unref();
    // close() stops listening at once (the port is free for a rebind); its callback runs when
    // the last connection the front accepted has ended.
    await Promise.all(this.fronts.map((front) => new Promise<void>((resolve) => front.close(() => resolve()))));
    clearInterval(sweep);
    clearTimeout(deadline);
    this.http1.close(); // stops its timeout checks
    this.http2.close();
    await this.app.close();
  }

  private createHttp1Server(): http.Server {
    const rejections = new RejectionReporter(this.name, this.logger, () => this.table.rejections);
    // Plain requests and upgrade requests alike: the strict checks, then routing.
    const serve: ServeRequest = (req, res, upgrade) => {
      const problem = requestProblem(req, this.limits);
      if (problem !== null) {
        rejections.report(problem, req.socket.remoteAddress);
        sendRejection(req, res, problem);
        return;
      }
      handleRequest(this.table, this.logger, req, res, upgrade);
    };
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      // An upgrade request with a body: Node's parser dropped what followed it in the same read,
      // so the client must not pipeline behind it (see shouldTakeUpgrade).
      if (this.draining || stopsParser(req)) res.shouldKeepAlive = false;
      if (!req.complete && announcesBody(req.rawHeaders)) this.boundBodyGaps(req, res);
      serve(req, res, null);
    };
    const headersTimeout = this.limits.requestHeadersTimeoutMs;
    const server = http.createServer(
      {
        keepAliveTimeout: this.limits.idleTimeoutMs,
        // From a request's first byte (or from the hand-over, for a connection that says nothing)
        // to the end of its head; Node answers 408 and closes. It only works because the server
        // tracks connections (see 'listening' below) and checks often enough.
        headersTimeout,
        connectionsCheckingInterval: Math.min(HEADERS_CHECK_MAX_MS, Math.max(HEADERS_CHECK_MIN_MS, Math.floor(headersTimeout / 5))),
        // Request deadlines are a route policy (Gateway API timeouts), not a server default that
        // would cut long uploads; a stalled upload is cut by the body timeout (boundBodyGaps).
        requestTimeout: 0,
        // Upgrade requests go to Http1Upgrades, which tunnels WebSocket on the upstream's 101 and
        // serves everything else as plain requests.
        shouldUpgradeCallback: shouldTakeUpgrade,
        // Checked by requestProblem(), so that the 400 is counted and logged like the others.
        requireHostHeader: false,
        // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3): Node
        // hands it over with its body stream already ended and closed, so a GET costs no 'end' and
        // 'close' events, no resume and no dump ticks (issue #14). Nothing here reads such a body
        // (ProxyRequest.hasBody is false for it, and nothing listens to a GET's req stream: a client
        // leaving is the response's 'close'). Node 24.12+; older versions ignore the option.
        optimizeEmptyRequests: true,
      },
      onRequest,
    );
    const upgrades = new Http1Upgrades(server, serve, this.limits.tunnelIdleTimeoutMs);
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => upgrades.handle(req, socket as Socket, head, !this.draining));
    // Connections back from an upgrade request wait outside the server until their next byte:
    // draining (close()) must close them with the server's own idle ones.
    const closeIdleConnections = server.closeIdleConnections.bind(server);
    server.closeIdleConnections = (): void => {
      closeIdleConnections();
      upgrades.closeIdle();
    };
    // Replaces Node's default answer to what its parser refuses (same statuses), to count and log it.
    server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
      const rejection = parserRejection(error.code);
      if (rejection !== null) rejections.report(rejection, (socket as Socket).remoteAddress, error.code);
      answerParserError(socket as Socket, rejection);
    });
    // A gateway is no forward proxy (left unheard, Node closes the connection without a word).
    server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
      rejections.report(CONNECT_REFUSED, (socket as Socket).remoteAddress);
      answerParserError(socket as Socket, CONNECT_REFUSED);
    });
    // A server that never listens never starts tracking its connections, and without that
    // neither headersTimeout nor closeIdleConnections work: start it as `listen` would.
    server.emit('listening');
    return server;
  }

  /**
   * While a request body is still coming, the connection may go silent (no byte either way) for
   * at most the body timeout; then Node's socket timeout handler destroys it (nginx's
   * client_body_timeout; the backend request is cancelled as for any client that leaves). Reads
   * refresh the timer even though the parser consumes the socket natively: Node's
   * onParserExecute calls socket._unrefTimer(). Once the body is in, the wait for the response
   * is the route's timeout policy, and Node sets the keep-alive timeout after the response.
   */
  private boundBodyGaps(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket;
    const onTimeout = (): void => this.budget.timedOut(this.name, 'request_body');
    socket.setTimeout(this.limits.requestBodyTimeoutMs);
    socket.once('timeout', onTimeout);
    req.once('end', () => {
      socket.removeListener('timeout', onTimeout);
      // A response that already finished has set the keep-alive timeout in place of ours.
      if (!res.writableFinished) socket.setTimeout(0);
    });
  }

  private createHttp2Server(): http2.Http2Server {
    const rejections = new RejectionReporter(this.name, this.logger, () => this.table.rejections);
    const onRequest = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
      // Reset already: the frame guard found the request malformed (http2-front.ts).
      if (req.stream.closed) return;
      // nghttp2 and the frame guard have checked the fields (RFC 9113 §8.2); the target is checked as HTTP/1.1's is.
      const problem = targetProblem(req.url ?? '', this.limits) ?? http2FieldProblem(req.rawHeaders, this.limits);
      if (problem !== null) {
        rejections.report(problem, req.socket.remoteAddress);
        sendRejection(req, res, problem);
        return;
      }
      handleRequest(this.table, this.logger, req as DownstreamRequest, res as DownstreamResponse);
    };
    const server = http2.createServer({ settings: HTTP2_SETTINGS }, onRequest);
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      if (this.draining) session.close();
    });
    return server;
  }

  /** Serves a connection that speaks HTTP/2 (ALPN h2 or prior knowledge): see serveHttp2. */
  private serveHttp2(socket: Socket): void {
    const timeouts = { idleMs: this.limits.http2IdleTimeoutMs, ackMs: this.limits.http2AckTimeoutMs, requestBodyMs: this.limits.requestBodyTimeoutMs };
    boundSends(serveHttp2(this.http2, socket, timeouts, this.logger, this.name, () => this.table.rejections).socket, this.sendBound);
  }

  private serveHttp1(socket: Socket): void {
    boundSends(socket, this.sendBound);
    this.http1.emit('connection', socket);
  }

  private createFront(): net.Server {
    let front: net.Server;
    if (this.protocol === 'HTTPS') {
      const current = () => this.table;
      const hellos = new ClientHellos();
      const tlsServer = tls.createServer({
        ...secureContextOptions(this.table.certificates!.fallback, this.table.clientValidation, this.table.tlsSettings),
        ALPNProtocols: ALPN_PROTOCOLS,
        noDelay: true,
        ...(this.ticketKeys !== null ? { ticketKeys: this.ticketKeys } : {}),
        // From the accept: also bounds a client that never sends its ClientHello.
        handshakeTimeout: this.limits.tlsHandshakeTimeoutMs,
        // node:tls calls it on the handshake's TLSSocket: a set of pairs for one name picks by its signature algorithms.
        SNICallback(this: TLSSocket, servername: string, callback: (error: Error | null, context?: SecureContext) => void) {
          const certificates = current().certificates;
          callback(null, certificates === null ? undefined : certificates.select(servername, hellos.view(this)));
        },
      });
      this.tlsServers.push(tlsServer);
      this.configureTls(tlsServer);
      tlsServer.on('secureConnection', (socket: TLSSocket) => {
        hellos.secured(socket);
        if (socket.alpnProtocol === 'h2') this.serveHttp2(socket);
        else this.serveHttp1(socket);
      });
      tlsServer.on('tlsClientError', (error: Error, socket: TLSSocket) => {
        this.logger.debug({ listener: this.name, err: error.message, remote: socket.remoteAddress }, 'TLS handshake failed');
        // Node reports a handshake timeout (ERR_TLS_HANDSHAKE_TIMEOUT) here but leaves the
        // connection open: a client that never sends its ClientHello would stay forever.
        if ((error as { code?: string }).code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.budget.timedOut(this.name, 'tls_handshake');
        socket.destroy();
      });
      // The TLS server never listens: a plain one accepts, admits, and hands the raw TCP socket over
      // before its handshake — after reading its ClientHello when certificates are chosen by suites.
      front = net.createServer({ noDelay: true }, (socket: Socket) => {
        if (!this.admit(socket)) return;
        const handOver = () => void tlsServer.emit('connection', socket);
        if (current().certificates?.needsClientHello === true) hellos.read(socket, this.limits.tlsHandshakeTimeoutMs, () => this.budget.timedOut(this.name, 'tls_handshake'), handOver);
        else handOver();
      });
    } else {
      // allowHalfOpen as http.Server has it: the HTTP/1.1 server decides when to end the socket.
      front = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
        if (this.admit(socket)) this.sniff(socket);
      });
    }
    front.on('connection', (socket: Socket) => {
      // Nagle + delayed ACK can stall a proxy completely (seen with TLS under load): always off,
      // whether or not the server option above reached this socket.
      socket.setNoDelay(true);
    });
    front.on('error', (error: Error & { code?: string }) => this.onAcceptError(error));
    this.fronts.push(front);
    return front;
  }

  /**
   * Counts a connection in, or refuses it at once (limits, load shedding): a cleartext client
   * reads a 503 first, a TLS client is closed before its handshake. False when refused.
   */
  private admit(socket: Socket): boolean {
    const refusal = this.budget.admit(this.name);
    if (refusal === null) {
      this.connections.add(socket);
      socket.once('close', () => {
        this.connections.delete(socket);
        this.budget.release(this.name);
      });
      return true;
    }
    if (this.protocol === 'HTTPS') {
      socket.destroy();
      return false;
    }
    socket.on('error', () => socket.destroy()); // a client that resets first: nothing to tell it
    socket.end(REFUSED_RESPONSE);
    socket.setTimeout(REFUSAL_LINGER_MS, () => socket.destroy());
    socket.once('finish', () => socket.destroy());
    return false;
  }

  /**
   * EMFILE/ENFILE never reach here (measured on Node 24.21): libuv closes a descriptor it keeps in
   * reserve, accepts and closes the waiting connections and reopens the reserve; with no
   * descriptor to be had at all it retries on each loop turn. Other accept() errors (ENOBUFS,
   * ENOMEM...) are emitted on the server, and without this listener would crash the process; the
   * listener keeps listening. Logged once per episode (an error after a quiet second starts a new one).
   */
  private onAcceptError(error: Error & { code?: string }): void {
    const now = Date.now();
    if (now - this.lastAcceptErrorAt > ACCEPT_ERROR_EPISODE_MS) {
      this.logger.error({ listener: this.name, err: error.message, code: error.code }, `accept failed on ${this.name}: ${error.code ?? error.message}; still listening`);
    }
    this.lastAcceptErrorAt = now;
  }

  /**
   * Reads the first bytes of a cleartext connection and hands it to the HTTP/2 or HTTP/1.1
   * server with those bytes put back. Costs one extra read event per connection, nothing per
   * request: the HTTP/1.1 parser then reads the socket natively as it would have anyway.
   */
  private sniff(socket: Socket): void {
    this.sniffing.add(socket);
    let seen: Buffer | null = null;
    const onData = (chunk: Buffer): void => {
      const data = seen === null ? chunk : Buffer.concat([seen, chunk]);
      const protocol = sniffProtocol(data);
      if (protocol === 'more') {
        seen = data;
        return;
      }
      socket.removeListener('data', onData);
      socket.removeListener('error', forget);
      socket.removeListener('close', forget);
      socket.removeListener('end', drop);
      clearTimeout(deadline);
      this.sniffing.delete(socket);
      if (protocol === 'h2') {
        // Paused, the bytes wait in the socket's buffer, where the frame guard reads them first
        // once the session starts reading.
        socket.pause();
        socket.unshift(data);
        this.serveHttp2(socket);
      } else {
        // Still flowing (never paused): the HTTP/1.1 server's 'data' listener gets these bytes
        // on the next tick, before anything its parser reads from the socket later.
        socket.unshift(data);
        this.serveHttp1(socket);
      }
    };
    const forget = (): void => {
      clearTimeout(deadline);
      this.sniffing.delete(socket);
    };
    /** Silent too long, or ended before saying what it speaks. */
    const drop = (): void => {
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('error', forget); // a reset before the first bytes: nothing to report
    socket.once('close', forget);
    socket.once('end', drop);
    // The first line (or HTTP/2 preface) is part of the request head: the headers timeout counts
    // from the accept, not from the last byte (an idle timeout would let a client trickle it).
    const deadline = setTimeout(() => {
      this.budget.timedOut(this.name, 'first_line');
      drop();
    }, this.limits.requestHeadersTimeoutMs);
  }

  /** Applies the table's client-certificate settings, TLS versions and ciphers, and default certificate to the TLS servers. */
  private configureTls(created?: tls.Server): void {
    const fallback = this.table.certificates?.fallback;
    if (fallback === undefined) return;
    const validation = this.table.clientValidation;
    const key = this.table.certificates!.fallbackKey;
    // A server being created already has the right default context; existing ones need it
    // replaced when the certificate or the client CAs changed.
    const contextChanged = this.defaultContextKey !== null && key !== this.defaultContextKey;
    this.defaultContextKey = key;
    const servers = created !== undefined ? [created] : this.tlsServers;
    for (const server of servers) {
      // tls.Server keeps these as (untyped) fields set from its options and reads them for
      // each new connection, so a reload changes them for new handshakes only.
      const verification = server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
      verification.requestCert = validation !== null;
      verification.rejectUnauthorized = validation?.rejectUnauthorized ?? true;
      if (contextChanged && created === undefined) server.setSecureContext(secureContextOptions(fallback, validation, this.table.tlsSettings));
    }
  }
}

