// A faithful Node.js replacement for the upstream Gateway API conformance
// echo server (`echo-basic`, kubernetes-sigs/gateway-api-conformance-images).
//
// One instance plays one "pod": it listens for HTTP/1.1 on `httpPort`, for
// cleartext HTTP/2 on `h2cPort` (prior knowledge or `Upgrade: h2c`; anything
// else gets 400) and, when a certificate is given, for HTTPS (h2 and
// http/1.1 via ALPN) on `httpsPort`. It echoes every request as a JSON
// document (see `EchoReply`), logs `Echoing back request made to <target> to
// client (<remote>)`, and supports X-Echo-Set-Header, `?delay=`,
// `/status/<code>`, `/health`, `/retry/...` and a WebSocket echo on `/ws`.
//
// Used by the conformance runner (one instance per simulated pod) and by the
// quickstart (`sluice run --demo-backends`).

import { EventEmitter } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

export interface EchoIdentity {
  /** POD_NAME */
  pod: string;
  /** NAMESPACE */
  namespace: string;
  /** SERVICE_NAME (rarely used) */
  service?: string;
  /** INGRESS_NAME (rarely used) */
  ingress?: string;
}

export interface EchoTlsOptions {
  /** PEM certificate (chain) served on the HTTPS port. */
  cert: string;
  /** PEM private key. */
  key: string;
  /** PEM CA bundle; when given, client certificates are requested and verified against it. */
  ca?: string;
}

export interface EchoServerOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** HTTP/1.1 port (default 3000; 0 picks a free port). */
  httpPort?: number;
  /** Cleartext HTTP/2 port; omitted or null = no h2c listener. 0 picks a free port. */
  h2cPort?: number | null;
  /** HTTPS port (h2 + http/1.1); only used together with `tls`. 0 picks a free port. */
  httpsPort?: number | null;
  tls?: EchoTlsOptions;
  identity: EchoIdentity;
  /** true: print log lines to stdout; a function receives every line; false/omitted: silent. */
  log?: boolean | ((line: string) => void);
  /** How many received requests `received` keeps (oldest dropped first; default 10000). */
  maxReceived?: number;
}

/** One request that reached the echo handler (i.e. one "Echoing back..." log line). */
export interface ReceivedRequest {
  /** The raw request target (path plus query). */
  target: string;
  /** `ip:port` of the client, as in the log line. */
  remote: string;
  method: string;
  host: string;
  proto: string;
  /** Which listener received it. */
  listener: 'http' | 'h2c' | 'https';
  /** Date.now() when it arrived. */
  at: number;
}

/** The JSON document the echo server answers with. */
export interface EchoReply {
  path: string;
  host: string;
  method: string;
  proto: string;
  headers: Record<string, string[]>;
  namespace: string;
  ingress: string;
  service: string;
  pod: string;
  httpPort: string;
  tls?: {
    version: string;
    serverName: string;
    negotiatedProtocol?: string;
    cipherSuite: string;
    peerCertificates?: string[];
  };
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const MAX_RETRY_COUNTERS = 100_000;

// ---------------------------------------------------------------------------
// Small pure helpers (exported for tests)
// ---------------------------------------------------------------------------

/** Go's textproto.CanonicalMIMEHeaderKey: `x-header-set` -> `X-Header-Set`. */
export function canonicalHeaderName(name: string): string {
  // Go leaves keys with invalid token characters (e.g. spaces) unchanged.
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  let upper = true;
  let out = '';
  for (const ch of name) {
    if (upper && ch >= 'a' && ch <= 'z') out += ch.toUpperCase();
    else if (!upper && ch >= 'A' && ch <= 'Z') out += ch.toLowerCase();
    else out += ch;
    upper = ch === '-';
  }
  return out;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration (`1s`, `300ms`, `1m30s`, `1.5h`) into milliseconds; throws on bad input. */
export function parseGoDuration(text: string): number {
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration "${text}"`);
  let total = 0;
  const re = /^([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/;
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m || m[1] === '' || m[1] === '.') {
      throw new Error(`time: invalid duration "${text}"`);
    }
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/**
 * Applies `X-Echo-Set-Header` values the way echo-basic does: each value is
 * `Name:value,Name2:value2`; names keep their casing; a repeated name is
 * appended to the first value with a comma. Returns [name, value] pairs.
 */
export function echoSetHeaders(values: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const list of values) {
    for (const kv of list.split(',')) {
      const trimmed = kv.trim();
      const idx = trimmed.indexOf(':');
      const name = idx === -1 ? trimmed : trimmed.slice(0, idx);
      const value = idx === -1 ? '' : trimmed.slice(idx + 1).trim();
      if (!isToken(name)) continue; // Go would write nothing usable either
      const existing = out.find((p) => p[0] === name);
      if (existing) existing[1] += ',' + value;
      else out.push([name, value]);
    }
  }
  return out;
}

function isToken(s: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s);
}

/** Groups raw header pairs by canonical name (Host and pseudo-headers excluded). */
export function canonicalHeaders(rawHeaders: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.startsWith(':')) continue;
    const canon = canonicalHeaderName(name);
    if (canon === 'Host' || canon === 'Transfer-Encoding') continue;
    (out[canon] ??= []).push(rawHeaders[i + 1]);
  }
  return out;
}

/** Go's path.Clean plus ServeMux's rule of keeping a trailing slash. */
export function cleanPath(p: string): string {
  if (p === '') return '/';
  if (p[0] !== '/') p = '/' + p;
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  let np = '/' + parts.join('/');
  if (p.endsWith('/') && np !== '/') np += '/';
  return np;
}

function goPathUnescape(p: string): string | undefined {
  // url.PathUnescape semantics: %XX decoded, '+' left alone, bad escapes are errors.
  if (/%(?![0-9A-Fa-f]{2})/.test(p)) return undefined;
  try {
    return decodeURIComponent(p);
  } catch {
    return unescapeBytes(p);
  }
}

function unescapeBytes(p: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '%') {
      bytes.push(parseInt(p.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const b of Buffer.from(p[i])) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('latin1');
}

function splitTarget(target: string): { rawPath: string; query: URLSearchParams } {
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  return { rawPath, query };
}

// ---------------------------------------------------------------------------
// Request / response abstraction shared by HTTP/1.1 and HTTP/2
// ---------------------------------------------------------------------------

interface EchoRequest {
  target: string;
  host: string;
  method: string;
  proto: string;
  rawHeaders: string[];
  remote: string;
  listener: 'http' | 'h2c' | 'https';
  tlsSocket?: tls.TLSSocket;
}

interface EchoResponder {
  /** Sends a complete response. Header pairs keep their order and casing (HTTP/1.1). */
  send(status: number, headers: [string, string][], body: Buffer | string): void;
  /** Aborts the exchange abruptly (TCP reset for HTTP/1.1, RST_STREAM for HTTP/2). */
  reset(): void;
  /** True once the client went away. */
  readonly closed: boolean;
}

function remoteOf(socket: net.Socket | tls.TLSSocket | undefined): string {
  const addr = socket?.remoteAddress ?? '';
  const port = socket?.remotePort ?? 0;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function http1Responder(req: http.IncomingMessage, res: http.ServerResponse): EchoResponder {
  return {
    send(status, headers, body) {
      if (res.headersSent || res.destroyed) return;
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      const flat: string[] = [];
      for (const [k, v] of headers) flat.push(k, v);
      flat.push('Content-Length', String(buf.length));
      res.writeHead(status, flat);
      res.end(req.method === 'HEAD' ? undefined : buf);
    },
    reset() {
      const socket = req.socket as net.Socket;
      if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
      else socket.destroy();
    },
    get closed() {
      return res.destroyed || req.socket.destroyed;
    },
  };
}

function http2Responder(stream: http2.ServerHttp2Stream, method: string): EchoResponder {
  return {
    send(status, headers, body) {
      if (stream.destroyed || stream.closed || stream.headersSent) return;
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      const out: http2.OutgoingHttpHeaders = { ':status': status };
      for (const [k, v] of headers) {
        const name = k.toLowerCase();
        if (isConnectionSpecific(name)) continue;
        const prev = out[name];
        if (prev === undefined) out[name] = v;
        else out[name] = Array.isArray(prev) ? [...prev, v] : [String(prev), v];
      }
      out['content-length'] = String(buf.length);
      try {
        if (method === 'HEAD' || buf.length === 0) {
          stream.respond(out, { endStream: true });
        } else {
          stream.respond(out);
          stream.end(buf);
        }
      } catch {
        stream.destroy();
      }
    },
    reset() {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    },
    get closed() {
      return stream.destroyed || stream.closed;
    },
  };
}

function isConnectionSpecific(name: string): boolean {
  return name === 'connection' || name === 'keep-alive' || name === 'proxy-connection' ||
    name === 'transfer-encoding' || name === 'upgrade';
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

export interface EchoServer {
  readonly host: string;
  readonly httpPort: number;
  readonly h2cPort: number | undefined;
  readonly httpsPort: number | undefined;
  readonly identity: Readonly<EchoIdentity>;
  /** Requests that reached the echo handler, oldest first (bounded by `maxReceived`). */
  readonly received: readonly ReceivedRequest[];
  /** Resolves with the first request (already received or arriving later) matching `pred`, or undefined after `timeoutMs`. */
  waitForRequest(pred: (r: ReceivedRequest) => boolean, timeoutMs: number): Promise<ReceivedRequest | undefined>;
  /** Forgets the received requests. */
  clearReceived(): void;
  on(event: 'request', listener: (r: ReceivedRequest) => void): this;
  off(event: 'request', listener: (r: ReceivedRequest) => void): this;
  close(): Promise<void>;
}

class EchoServerImpl extends EventEmitter implements EchoServer {
  host: string;
  httpPort = 0;
  h2cPort: number | undefined;
  httpsPort: number | undefined;
  identity: Readonly<EchoIdentity>;
  received: ReceivedRequest[] = [];

  #opts: EchoServerOptions;
  #maxReceived: number;
  #logFn: ((line: string) => void) | undefined;
  #retryCounters = new Map<string, number>();
  #listeners: net.Server[] = [];
  #sockets = new Set<net.Socket>();
  #h2Sessions = new Set<http2.Http2Session>();
  #wss = new WebSocketServer({ noServer: true });
  #closed = false;

  // Protocol handlers (no sockets of their own; listeners hand connections over).
  #http1 = http.createServer({
    shouldUpgradeCallback: (req) => this.#isWebSocketRequest(req),
  });
  #h2 = http2.createServer();
  #h2cHttp1 = http.createServer({
    shouldUpgradeCallback: (req) => isH2cUpgrade(req),
  });

  constructor(opts: EchoServerOptions) {
    super();
    this.setMaxListeners(0); // one listener per pending waitForRequest
    this.#opts = opts;
    this.host = opts.host ?? '127.0.0.1';
    this.identity = { ...opts.identity };
    this.#maxReceived = opts.maxReceived ?? 10_000;
    this.#logFn = typeof opts.log === 'function'
      ? opts.log
      : opts.log
        ? (line) => process.stdout.write(line + '\n')
        : undefined;

    this.#http1.on('request', (req, res) => this.#onHttp1Request(req, res));
    this.#http1.on('upgrade', (req, socket, head) => this.#onWebSocketUpgrade(req, socket as net.Socket, head));
    this.#http1.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    this.#http1.keepAliveTimeout = 30_000;

    this.#h2.on('session', (session) => {
      this.#h2Sessions.add(session);
      session.on('close', () => this.#h2Sessions.delete(session));
      session.on('error', () => {});
    });
    this.#h2.on('stream', (stream, headers, _flags, rawHeaders) => this.#onH2Stream(stream, headers, rawHeaders));

    this.#h2cHttp1.on('request', (_req, res) => {
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Expected h2c request\n');
    });
    this.#h2cHttp1.on('upgrade', (req, socket, head) => this.#onH2cUpgrade(req, socket as net.Socket, head));
    this.#h2cHttp1.on('clientError', (_err, socket) => socket.destroy());

    this.#wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
      this.#log(`established websocket connection ${remoteOf(req.socket)}`);
      ws.on('message', (data, isBinary) => {
        ws.send(data, { binary: isBinary });
      });
      ws.on('error', () => ws.terminate());
    });
  }

  async start(): Promise<void> {
    const o = this.#opts;
    const httpListener = net.createServer((socket) => {
      this.#track(socket);
      this.#http1.emit('connection', socket);
    });
    this.httpPort = await this.#listen(httpListener, o.httpPort ?? 3000);

    if (o.h2cPort !== undefined && o.h2cPort !== null) {
      const h2cListener = net.createServer((socket) => {
        this.#track(socket);
        sniffPreface(socket, (isH2) => {
          if (isH2) {
            this.#h2.emit('connection', socket);
          } else {
            this.#h2cHttp1.emit('connection', socket);
            // The sniffed bytes sit in the stream buffer; flowing mode hands them to the parser.
            socket.resume();
          }
        });
      });
      this.h2cPort = await this.#listen(h2cListener, o.h2cPort);
    }

    if (o.tls && o.httpsPort !== undefined && o.httpsPort !== null) {
      const tlsListener = tls.createServer({
        cert: o.tls.cert,
        key: o.tls.key,
        ALPNProtocols: ['h2', 'http/1.1'],
        // Go's VerifyClientCertIfGiven: ask for a client certificate, accept a connection without
        // one, refuse one that does not chain to the CA.
        ...(o.tls.ca ? { ca: o.tls.ca, requestCert: true, rejectUnauthorized: false } : {}),
      });
      tlsListener.on('connection', (socket: net.Socket) => this.#track(socket));
      tlsListener.on('secureConnection', (socket: tls.TLSSocket) => {
        this.#track(socket);
        if (o.tls?.ca && !socket.authorized && socket.getPeerX509Certificate()) {
          this.#log(`TLS: client certificate refused: ${socket.authorizationError}`);
          socket.destroy();
          return;
        }
        if (socket.alpnProtocol === 'h2') this.#h2.emit('connection', socket);
        else this.#http1.emit('connection', socket);
      });
      tlsListener.on('tlsClientError', () => {});
      this.httpsPort = await this.#listen(tlsListener, o.httpsPort);
    }
  }

  async #listen(server: net.Server, port: number): Promise<number> {
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ host: this.host, port, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.#listeners.push(server);
    return (server.address() as net.AddressInfo).port;
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
  }

  #log(line: string): void {
    this.#logFn?.(line);
  }

  #isWebSocketRequest(req: http.IncomingMessage): boolean {
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (upgrade !== 'websocket') return false;
    const { rawPath } = splitTarget(req.url ?? '/');
    return goPathUnescape(rawPath) === '/ws';
  }

  #onWebSocketUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    // golang.org/x/net/websocket rejects handshakes without a parseable Origin.
    const origin = req.headers.origin;
    let originOk = false;
    if (typeof origin === 'string') {
      try {
        new URL(origin);
        originOk = true;
      } catch {
        originOk = false;
      }
    }
    if (!originOk) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#wss.emit('connection', ws, req));
  }

  #onHttp1Request(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket as tls.TLSSocket;
    const isTls = socket instanceof tls.TLSSocket;
    const r: EchoRequest = {
      target: req.url ?? '/',
      host: req.headers.host ?? '',
      method: req.method ?? 'GET',
      proto: `HTTP/${req.httpVersion}`,
      rawHeaders: req.rawHeaders,
      remote: remoteOf(socket),
      listener: isTls ? 'https' : 'http',
      tlsSocket: isTls ? socket : undefined,
    };
    req.resume(); // drain any request body
    void this.#dispatch(r, http1Responder(req, res));
  }

  #onH2Stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void {
    stream.on('error', () => {});
    const session = stream.session;
    const socket = session?.socket as unknown as tls.TLSSocket | undefined;
    const isTls = socket instanceof tls.TLSSocket;
    const method = String(headers[':method'] ?? 'GET');
    const r: EchoRequest = {
      target: String(headers[':path'] ?? '/'),
      host: String(headers[':authority'] ?? headers.host ?? ''),
      method,
      proto: 'HTTP/2.0',
      rawHeaders,
      remote: remoteOf(socket),
      listener: isTls ? 'https' : 'h2c',
      tlsSocket: isTls ? socket : undefined,
    };
    stream.resume();
    void this.#dispatch(r, http2Responder(stream, method));
  }

  #onH2cUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const settings = req.headers['http2-settings'];
    if (typeof settings !== 'string') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    // The upgraded request becomes stream 1 (half-closed remote). Node's
    // http2 server cannot adopt an upgraded stream, so stream 1 is answered
    // here with hand-written frames and every later stream goes to Node.
    const raw = req.rawHeaders.filter((_, i, a) => {
      const name = (i % 2 === 0 ? a[i] : a[i - 1]).toLowerCase();
      return name !== 'connection' && name !== 'upgrade' && name !== 'http2-settings';
    });
    const r: EchoRequest = {
      target: req.url ?? '/',
      host: req.headers.host ?? '',
      method: req.method ?? 'GET',
      proto: 'HTTP/2.0',
      rawHeaders: raw,
      remote: remoteOf(socket),
      listener: 'h2c',
    };
    socket.pause();
    const responder = new UpgradedStreamResponder(socket, head, (duplex) => this.#h2.emit('connection', duplex));
    void this.#dispatch(r, responder);
  }

  // -------------------------------------------------------------------------
  // Routing: a small emulation of Go's http.ServeMux used by echo-basic
  // -------------------------------------------------------------------------

  async #dispatch(r: EchoRequest, res: EchoResponder): Promise<void> {
    try {
      const { rawPath, query } = splitTarget(r.target);
      if (r.method !== 'CONNECT' && r.target !== '*') {
        const decoded = goPathUnescape(rawPath);
        if (decoded === undefined) {
          res.send(400, [['Content-Type', 'text/plain; charset=utf-8']], '400 Bad Request');
          return;
        }
        const cleaned = cleanPath(decoded);
        if (cleaned === '/status' || cleaned === '/retry') {
          this.#redirect(r, res, cleaned + '/');
          return;
        }
        if (cleaned !== decoded) {
          this.#redirect(r, res, cleaned);
          return;
        }
        if (cleaned === '/health') {
          res.send(200, [['Content-Type', 'text/plain; charset=utf-8']], 'OK');
          return;
        }
        if (cleaned.startsWith('/status/')) {
          this.#status(r, res, cleaned.slice('/status/'.length));
          return;
        }
        if (cleaned.startsWith('/retry/')) {
          await this.#retry(r, res, query);
          return;
        }
      }
      await this.#echo(r, res, query);
    } catch (err) {
      this.#processError(res, err, 500);
    }
  }

  #redirect(r: EchoRequest, res: EchoResponder, path: string): void {
    const q = r.target.indexOf('?');
    const location = encodeURI(path) + (q === -1 ? '' : r.target.slice(q));
    const body = r.method === 'GET' || r.method === 'HEAD' ? `<a href="${location}">Moved Permanently</a>.\n\n` : '';
    res.send(301, [['Content-Type', 'text/html; charset=utf-8'], ['Location', location]], body);
  }

  #status(r: EchoRequest, res: EchoResponder, codeText: string): void {
    if (r.method !== 'GET' && r.method !== 'POST') {
      res.send(405, [], '');
      return;
    }
    if (!/^[+-]?\d+$/.test(codeText)) {
      this.#processError(res, new Error(`strconv.Atoi: parsing "${codeText}": invalid syntax`), 400);
      return;
    }
    const code = Number(codeText);
    if (code < 100 || code > 999) {
      this.#processError(res, new Error(`invalid status code ${code}`), 400);
      return;
    }
    res.send(code, [], '');
  }

  async #retry(r: EchoRequest, res: EchoResponder, query: URLSearchParams): Promise<void> {
    const uuid = query.get('uuid');
    const succeedAfterText = query.get('succeedAfter');
    if (!uuid || !succeedAfterText) {
      this.#processError(res, new Error('uuid and succeedAfter query parameters are required'), 400);
      return;
    }
    const succeedAfter = Number(succeedAfterText);
    if (!/^\d+$/.test(succeedAfterText) || !Number.isSafeInteger(succeedAfter)) {
      this.#processError(res, new Error(`invalid succeedAfter "${succeedAfterText}"`), 400);
      return;
    }
    let responseCode: number | undefined;
    const codeText = query.get('responseCode');
    if (codeText) {
      responseCode = Number(codeText);
      if (!/^\d+$/.test(codeText) || responseCode < 100 || responseCode > 999) {
        this.#processError(res, new Error(`invalid responseCode "${codeText}"`), 400);
        return;
      }
    }
    let delayMs = 0;
    const delayText = query.get('delayRetry');
    if (delayText) {
      try {
        delayMs = parseGoDuration(delayText);
      } catch (err) {
        this.#processError(res, err, 400);
        return;
      }
    }
    const attempt = (this.#retryCounters.get(uuid) ?? 0) + 1;
    this.#retryCounters.set(uuid, attempt);
    if (this.#retryCounters.size > MAX_RETRY_COUNTERS) {
      const oldest = this.#retryCounters.keys().next().value;
      if (oldest !== undefined) this.#retryCounters.delete(oldest);
    }
    if (attempt <= succeedAfter) {
      if (delayMs > 0) await sleep(delayMs);
      if (responseCode !== undefined) res.send(responseCode, [], '');
      else res.reset();
      return;
    }
    await this.#echo(r, res, query);
  }

  async #echo(r: EchoRequest, res: EchoResponder, query: URLSearchParams): Promise<void> {
    const received: ReceivedRequest = {
      target: r.target,
      remote: r.remote,
      method: r.method,
      host: r.host,
      proto: r.proto,
      listener: r.listener,
      at: Date.now(),
    };
    this.#log(`Echoing back request made to ${r.target} to client (${r.remote})`);
    this.received.push(received);
    if (this.received.length > this.#maxReceived) this.received.splice(0, this.received.length - this.#maxReceived);
    this.emit('request', received);

    const delay = query.get('delay');
    if (delay) {
      let ms: number;
      try {
        ms = parseGoDuration(delay);
      } catch (err) {
        this.#processError(res, err, 500);
        return;
      }
      if (ms > 0) await sleep(ms);
    }
    if (res.closed) return;

    const headers = canonicalHeaders(r.rawHeaders);
    const reply: EchoReply = {
      path: r.target,
      host: r.host,
      method: r.method,
      proto: r.proto,
      headers,
      namespace: this.identity.namespace,
      ingress: this.identity.ingress ?? '',
      service: this.identity.service ?? '',
      pod: this.identity.pod,
      httpPort: String(this.httpPort),
    };
    if (r.tlsSocket) reply.tls = tlsInfo(r.tlsSocket);

    const echoSet: string[] = [];
    for (let i = 0; i + 1 < r.rawHeaders.length; i += 2) {
      if (r.rawHeaders[i].toLowerCase() === 'x-echo-set-header') echoSet.push(r.rawHeaders[i + 1]);
    }
    const out = echoSetHeaders(echoSet).filter(([k]) => k !== 'Content-Type' && k !== 'X-Content-Type-Options');
    out.push(['Content-Type', 'application/json'], ['X-Content-Type-Options', 'nosniff']);
    res.send(200, out, JSON.stringify(reply, null, ' '));
  }

  #processError(res: EchoResponder, err: unknown, code: number): void {
    const message = err instanceof Error ? err.message : String(err);
    this.#log(message);
    res.send(code, [['Content-Type', 'application/json']], JSON.stringify({ error: message, code }));
  }

  waitForRequest(pred: (r: ReceivedRequest) => boolean, timeoutMs: number): Promise<ReceivedRequest | undefined> {
    const found = this.received.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => {
      const onRequest = (r: ReceivedRequest) => {
        if (!pred(r)) return;
        clearTimeout(timer);
        this.off('request', onRequest);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.off('request', onRequest);
        resolve(undefined);
      }, timeoutMs);
      this.on('request', onRequest);
    });
  }

  clearReceived(): void {
    this.received.length = 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closing = this.#listeners.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const ws of this.#wss.clients) ws.terminate();
    for (const session of this.#h2Sessions) session.destroy();
    for (const socket of this.#sockets) socket.destroy();
    this.#wss.close();
    await Promise.all(closing);
  }
}

function tlsInfo(socket: tls.TLSSocket): NonNullable<EchoReply['tls']> {
  const info: NonNullable<EchoReply['tls']> = {
    version: socket.getProtocol() ?? '',
    serverName: typeof (socket as { servername?: unknown }).servername === 'string'
      ? (socket as unknown as { servername: string }).servername
      : '',
    cipherSuite: socket.getCipher()?.standardName ?? '',
  };
  if (socket.alpnProtocol) info.negotiatedProtocol = socket.alpnProtocol;
  const peers = peerCertificatePems(socket);
  if (peers.length) info.peerCertificates = peers;
  return info;
}

/**
 * PEM of the certificate the client presented. Leaf only: Node completes the chain from its own
 * trust store, so the issuers it reports are not necessarily what the client sent.
 */
export function peerCertificatePems(socket: tls.TLSSocket): string[] {
  const leaf = socket.getPeerX509Certificate();
  return leaf ? [leaf.toString()] : [];
}

function isH2cUpgrade(req: http.IncomingMessage): boolean {
  const tokens = (v: string | string[] | undefined) =>
    (Array.isArray(v) ? v.join(',') : v ?? '').split(',').map((t) => t.trim().toLowerCase());
  return tokens(req.headers.upgrade).includes('h2c') && tokens(req.headers.connection).includes('http2-settings');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads just enough of a new connection to tell an HTTP/2 preface from HTTP/1.x. */
function sniffPreface(socket: net.Socket, cb: (isH2: boolean) => void): void {
  let buf = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const n = Math.min(buf.length, H2_PREFACE.length);
    const prefixMatches = buf.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (prefixMatches && buf.length < H2_PREFACE.length) return;
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
    socket.unshift(buf);
    cb(prefixMatches);
  };
  const onEnd = () => socket.destroy();
  socket.on('data', onData);
  socket.on('end', onEnd);
}

// ---------------------------------------------------------------------------
// h2c upgrade (RFC 7540 §3.2): answer stream 1 by hand, then hand over to Node
// ---------------------------------------------------------------------------

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const DEFAULT_WINDOW = 65_535;
const MAX_FRAME = 16_384;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

function hpackInt(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const bytes = [firstByteFlags | max];
  value -= max;
  while (value >= 128) {
    bytes.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** An HPACK string literal without Huffman coding, of any length (RFC 7541 §5.2). */
export function hpackString(s: string): Buffer {
  const raw = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(raw.length, 7, 0), raw]);
}

/** HPACK block of "literal header field without indexing — new name" entries (no Huffman, no dynamic table). */
export function hpackLiteralBlock(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of headers) parts.push(Buffer.from([0x00]), hpackString(k.toLowerCase()), hpackString(v));
  return Buffer.concat(parts);
}

/**
 * Responder for the request carried by an h2c upgrade. When the response is
 * ready it writes `101 Switching Protocols`, an empty SETTINGS frame (the
 * server preface), HEADERS + DATA on stream 1, and then hands the connection
 * to Node's HTTP/2 server through a filter that hides from Node what belongs
 * to stream 1: client frames on stream 1 and the client's ACK of our SETTINGS.
 */
class UpgradedStreamResponder implements EchoResponder {
  #socket: net.Socket;
  #head: Buffer;
  #handover: (duplex: Duplex) => void;
  #done = false;

  constructor(socket: net.Socket, head: Buffer, handover: (duplex: Duplex) => void) {
    this.#socket = socket;
    this.#head = head;
    this.#handover = handover;
  }

  get closed(): boolean {
    return this.#socket.destroyed;
  }

  send(status: number, headers: [string, string][], body: Buffer | string): void {
    if (this.#done || this.#socket.destroyed) return;
    this.#done = true;
    let buf = typeof body === 'string' ? Buffer.from(body) : body;
    if (buf.length > DEFAULT_WINDOW) buf = buf.subarray(0, DEFAULT_WINDOW); // initial flow-control window
    const hdrs: [string, string][] = [[':status', String(status)]];
    for (const [k, v] of headers) if (!isConnectionSpecific(k.toLowerCase())) hdrs.push([k, v]);
    hdrs.push(['content-length', String(buf.length)]);
    const out: Buffer[] = [
      Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'),
      frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0)),
    ];
    out.push(frame(FRAME_HEADERS, FLAG_END_HEADERS | (buf.length === 0 ? FLAG_END_STREAM : 0), 1, hpackLiteralBlock(hdrs)));
    for (let off = 0; off < buf.length; off += MAX_FRAME) {
      const chunk = buf.subarray(off, Math.min(buf.length, off + MAX_FRAME));
      out.push(frame(FRAME_DATA, off + MAX_FRAME >= buf.length ? FLAG_END_STREAM : 0, 1, chunk));
    }
    this.#socket.write(Buffer.concat(out));
    this.#handover(new H2UpgradeFilter(this.#socket, this.#head));
  }

  reset(): void {
    if (this.#done) return;
    this.#done = true;
    if (typeof this.#socket.resetAndDestroy === 'function') this.#socket.resetAndDestroy();
    else this.#socket.destroy();
  }
}

/** Duplex between Node's HTTP/2 session and the socket; see UpgradedStreamResponder. */
class H2UpgradeFilter extends Duplex {
  #socket: net.Socket;
  #pending: Buffer;
  #prefaceSeen = false;
  #ackToDrop = 1;

  constructor(socket: net.Socket, head: Buffer) {
    super();
    this.#socket = socket;
    this.#pending = head.length ? Buffer.from(head) : Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', (err) => this.destroy(err));
    if (this.#pending.length) queueMicrotask(() => this.#onData(Buffer.alloc(0)));
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }

  #onData(chunk: Buffer): void {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    const forward: Buffer[] = [];
    if (!this.#prefaceSeen) {
      if (this.#pending.length < H2_PREFACE.length) return;
      forward.push(this.#pending.subarray(0, H2_PREFACE.length));
      this.#pending = this.#pending.subarray(H2_PREFACE.length);
      this.#prefaceSeen = true;
    }
    while (this.#pending.length >= 9) {
      const len = this.#pending.readUIntBE(0, 3);
      if (this.#pending.length < 9 + len) break;
      const type = this.#pending[3];
      const flags = this.#pending[4];
      const streamId = this.#pending.readUInt32BE(5) & 0x7fffffff;
      const whole = this.#pending.subarray(0, 9 + len);
      this.#pending = this.#pending.subarray(9 + len);
      if (streamId === 1) continue;
      if (type === FRAME_SETTINGS && (flags & FLAG_ACK) && this.#ackToDrop > 0) {
        this.#ackToDrop--;
        continue;
      }
      forward.push(whole);
    }
    if (forward.length && !this.push(Buffer.concat(forward))) this.#socket.pause();
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#socket.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#socket.destroy();
    cb(err);
  }
}

/** Starts an echo server; resolves once every configured port is listening. */
export async function startEchoServer(opts: EchoServerOptions): Promise<EchoServer> {
  const server = new EchoServerImpl(opts);
  try {
    await server.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}

/** Identity from the environment, as echo-basic reads it. */
export function identityFromEnv(env: NodeJS.ProcessEnv = process.env): EchoIdentity {
  return {
    pod: env.POD_NAME ?? '',
    namespace: env.NAMESPACE ?? '',
    service: env.SERVICE_NAME ?? '',
    ingress: env.INGRESS_NAME ?? '',
  };
}
