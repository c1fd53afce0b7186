// The conformance HTTP client: one connection per request (keep-alive off),
// raw header access, HTTP/1.1, HTTP/1.1 over TLS, h2 (ALPN) and h2c with
// prior knowledge; TLS trusts exactly one certificate and verifies the server
// name like Go's crypto/x509 (which, unlike Node, accepts `*.org`).

import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { groupRawHeaders } from './headers.ts';

export type Protocol = 'HTTP/1.1' | 'HTTP/1.1+TLS' | 'h2' | 'h2c-prior-knowledge';

export interface ClientTls {
  /** SNI and the name verified against the certificate ('' or an IP address: no SNI). */
  serverName: string;
  /** PEM of the only trusted certificate (required unless `insecureSkipVerify`). */
  trustPem?: string;
  /** Go's InsecureSkipVerify: neither the chain nor the name is verified. */
  insecureSkipVerify?: boolean;
  /** Client certificate and key (PEM), if any. */
  certPem?: string;
  keyPem?: string;
}

export interface ClientRequest {
  connectHost: string;
  connectPort: number;
  protocol: Protocol;
  method: string;
  /** Raw request target (path plus query), sent exactly as given. */
  path: string;
  /** Host header / :authority. */
  authority: string;
  /** Header pairs in order (names as they should appear on the wire for HTTP/1.1). */
  headers: [string, string][];
  tls?: ClientTls;
  timeoutMs: number;
}

export interface ClientResponse {
  ok: true;
  status: number;
  rawHeaders: string[];
  /** Lower-case name -> values in arrival order. */
  headers: Map<string, string[]>;
  body: Buffer;
  httpVersion: string;
  /** For TLS requests with a client certificate: did the handshake carry it (i.e. did the server ask for it)? */
  clientCertificateSent?: boolean;
  /** For TLS requests: the leaf certificate the server presented. */
  peerCertificate?: PeerCertificateInfo;
}

export interface PeerCertificateInfo {
  pem: string;
  /** DNS SANs in certificate order. */
  dnsNames: string[];
  ipAddresses: string[];
  validFrom: string;
  validTo: string;
}

export interface ClientError {
  ok: false;
  error: string;
  code?: string;
}

export type ClientResult = ClientResponse | ClientError;

const MAX_BODY = 16 * 1024 * 1024;

function errorResult(err: unknown): ClientError {
  const e = err as NodeJS.ErrnoException;
  return { ok: false, error: e?.message ?? String(err), code: e?.code };
}

// ---------------------------------------------------------------------------
// Go-compatible server name verification
// ---------------------------------------------------------------------------

/** Go's x509 matchHostnames (leftmost label `*` matches exactly one label, `*.tld` allowed). */
export function goMatchHostname(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase().replace(/\.$/, '');
  if (p === '' || h === '') return false;
  const pp = p.split('.');
  const hp = h.split('.');
  if (pp.length !== hp.length) return false;
  for (let i = 0; i < pp.length; i++) {
    if (i === 0 && pp[i] === '*') continue;
    if (pp[i] !== hp[i]) return false;
  }
  return true;
}

export function parseSubjectAltName(san: string | undefined): { dns: string[]; ip: string[] } {
  const dns: string[] = [];
  const ip: string[] = [];
  for (const part of (san ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) dns.push(part.slice(4));
    else if (part.startsWith('IP Address:')) ip.push(part.slice(11));
  }
  return { dns, ip };
}

/** checkServerIdentity with Go semantics: SANs only (no CN fallback). */
export function goCheckServerIdentity(hostname: string, cert: tls.PeerCertificate): Error | undefined {
  const { dns, ip } = parseSubjectAltName(cert.subjectaltname);
  if (net.isIP(hostname)) {
    if (ip.includes(hostname)) return undefined;
    return new Error(`x509: certificate is not valid for IP ${hostname} (IP SANs: ${ip.join(', ') || 'none'})`);
  }
  if (dns.some((p) => goMatchHostname(p, hostname))) return undefined;
  return new Error(`x509: certificate is valid for ${dns.join(', ') || 'no DNS names'}, not ${hostname}`);
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connect to ${host}:${port} timed out`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A Duplex in front of a socket that records the size of every chunk written. */
function recordingDuplex(raw: net.Socket, writes: number[]): Duplex {
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.length);
      raw.write(chunk, cb);
    },
    read() {
      raw.resume();
    },
    final(cb) {
      raw.end(cb);
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (c: Buffer) => {
    if (!d.push(c)) raw.pause();
  });
  raw.on('end', () => d.push(null));
  raw.on('error', (err) => d.destroy(err));
  raw.on('close', () => d.destroy());
  return d;
}

function pemDerLength(pem: string): number {
  try {
    return new X509Certificate(pem).raw.length;
  } catch {
    return 600;
  }
}

interface TlsConnection {
  socket: tls.TLSSocket;
  clientCertificateSent?: boolean;
  peerCertificate?: PeerCertificateInfo;
}

function peerCertificateOf(socket: tls.TLSSocket): PeerCertificateInfo | undefined {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return undefined;
  const { dns, ip } = parseSubjectAltName(cert.subjectAltName);
  return { pem: cert.toString(), dnsNames: dns, ipAddresses: ip, validFrom: cert.validFrom, validTo: cert.validTo };
}

async function connectTls(req: ClientRequest, alpn: string[], deadline: number): Promise<TlsConnection> {
  const t = req.tls!;
  if (!t.insecureSkipVerify && !t.trustPem) throw new Error('TLS: no trusted certificate given (and verification not skipped)');
  const raw = await connectTcp(req.connectHost, req.connectPort, Math.max(1, deadline - Date.now()));
  const detect = Boolean(t.certPem && t.keyPem);
  const writes: number[] = [];
  const transport: Duplex = detect ? recordingDuplex(raw, writes) : raw;
  const socket = tls.connect({
    socket: transport,
    servername: t.serverName === '' || net.isIP(t.serverName) ? undefined : t.serverName,
    cert: t.certPem,
    key: t.keyPem,
    ALPNProtocols: alpn,
    ...(t.insecureSkipVerify
      ? { rejectUnauthorized: false }
      : {
          ca: [t.trustPem!],
          // Go accepts a chain that ends at a trusted leaf (a passthrough backend's certificate,
          // issued by CA 'C'); OpenSSL needs X509_V_FLAG_PARTIAL_CHAIN for that (suite README).
          allowPartialTrustChain: true,
          rejectUnauthorized: true,
          checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => goCheckServerIdentity(t.serverName, cert),
        }),
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('TLS handshake timed out'), { code: 'ETIMEDOUT' }));
    }, Math.max(1, deadline - Date.now()));
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(Object.assign(new Error('connection closed during the TLS handshake'), { code: 'ECONNRESET' }));
    });
  });
  let clientCertificateSent: boolean | undefined;
  if (detect) {
    // The client's second flight (TLS 1.2: right away; TLS 1.3: just after
    // 'secureConnect') carries Certificate + CertificateVerify only when the
    // server sent a CertificateRequest; without one it is ~100 bytes.
    const until = Date.now() + 300;
    while (writes.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    const secondFlight = writes.slice(1).reduce((a, b) => a + b, 0);
    clientCertificateSent = secondFlight >= pemDerLength(t.certPem!);
  }
  return { socket, clientCertificateSent, peerCertificate: peerCertificateOf(socket) };
}

// ---------------------------------------------------------------------------
// HTTP/1.1
// ---------------------------------------------------------------------------

function http1Exchange(req: ClientRequest, deadline: number, socket?: tls.TLSSocket): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const flat: string[] = [];
    for (const [k, v] of req.headers) flat.push(k, v);
    let cr: http.ClientRequest;
    try {
      cr = http.request({
        host: req.connectHost,
        port: req.connectPort,
        method: req.method,
        path: req.path,
        headers: flat,
        setHost: false,
        // No agent: one connection per request, `Connection: close`. With a
        // ready TLS socket, `createConnection` is only honoured without an agent.
        ...(socket ? { createConnection: () => socket } : { agent: false }),
      });
    } catch (err) {
      reject(err);
      return;
    }
    const timer = setTimeout(() => {
      cr.destroy(Object.assign(new Error(`no complete response within ${req.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, Math.max(1, deadline - Date.now()));
    cr.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    cr.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          cr.destroy(new Error('response body too large'));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({
          ok: true,
          status: res.statusCode ?? 0,
          rawHeaders: res.rawHeaders,
          headers: groupRawHeaders(res.rawHeaders),
          body: Buffer.concat(chunks),
          httpVersion: `HTTP/${res.httpVersion}`,
        });
        res.socket?.destroy();
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    cr.end();
  });
}

// ---------------------------------------------------------------------------
// HTTP/2
// ---------------------------------------------------------------------------

function h2Exchange(req: ClientRequest, deadline: number, scheme: 'http' | 'https', socket?: tls.TLSSocket): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const url = `${scheme}://${req.connectHost.includes(':') ? `[${req.connectHost}]` : req.connectHost}:${req.connectPort}`;
    const session = http2.connect(url, socket ? { createConnection: () => socket } : {});
    const timer = setTimeout(() => {
      session.destroy(Object.assign(new Error(`no complete response within ${req.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, Math.max(1, deadline - Date.now()));
    const fail = (err: Error) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    };
    session.on('error', fail);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': req.method,
      ':path': req.path,
      ':scheme': scheme,
      ':authority': req.authority,
    };
    for (const [k, v] of req.headers) {
      const name = k.toLowerCase();
      if (name === 'host' || name === 'connection') continue;
      const prev = headers[name];
      headers[name] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: true });
    } catch (err) {
      fail(err as Error);
      return;
    }
    let status = 0;
    let rawHeaders: string[] = [];
    const chunks: Buffer[] = [];
    stream.on('response', (hdrs, _flags, raw) => {
      status = Number(hdrs[':status']);
      rawHeaders = raw ?? [];
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', fail);
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      const plain: string[] = [];
      for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (!rawHeaders[i].startsWith(':')) plain.push(rawHeaders[i], rawHeaders[i + 1]);
      resolve({ ok: true, status, rawHeaders: plain, headers: groupRawHeaders(plain), body: Buffer.concat(chunks), httpVersion: 'HTTP/2.0' });
    });
  });
}

/** Performs one request on a fresh connection. Transport failures are returned, not thrown. */
export async function sendRequest(req: ClientRequest): Promise<ClientResult> {
  const deadline = Date.now() + req.timeoutMs;
  try {
    switch (req.protocol) {
      case 'HTTP/1.1':
        return await http1Exchange(req, deadline);
      case 'h2c-prior-knowledge':
        return await h2Exchange(req, deadline, 'http');
      case 'HTTP/1.1+TLS': {
        const conn = await connectTls(req, ['http/1.1'], deadline);
        const res = await http1Exchange(req, deadline, conn.socket);
        return { ...res, clientCertificateSent: conn.clientCertificateSent, peerCertificate: conn.peerCertificate };
      }
      case 'h2': {
        const conn = await connectTls(req, ['h2'], deadline);
        if (conn.socket.alpnProtocol !== 'h2') {
          conn.socket.destroy();
          return { ok: false, error: `server did not negotiate h2 via ALPN (got ${conn.socket.alpnProtocol || 'none'})` };
        }
        const res = await h2Exchange(req, deadline, 'https', conn.socket);
        return { ...res, clientCertificateSent: conn.clientCertificateSent, peerCertificate: conn.peerCertificate };
      }
    }
    return { ok: false, error: `unsupported protocol ${String(req.protocol)}` };
  } catch (err) {
    return errorResult(err);
  }
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

export interface WsFrameSpec {
  type: 'text' | 'binary';
  data?: string;
  bytes?: number[];
}

export interface WsExchangeRequest {
  connectHost: string;
  connectPort: number;
  path: string;
  authority: string;
  origin?: string;
  headers: [string, string][];
  exchanges: { send: WsFrameSpec; receive: WsFrameSpec }[];
  timeoutMs: number;
}

function frameText(f: { type: string; data?: string; bytes?: number[] }): string {
  return f.type === 'text' ? `text ${JSON.stringify(f.data)}` : `binary [${(f.bytes ?? []).join(',')}]`;
}

/** Opens a WebSocket, runs the exchanges in order; returns problems (empty = all echoed). */
export async function runWebSocketExchanges(req: WsExchangeRequest): Promise<string[]> {
  const host = req.connectHost.includes(':') ? `[${req.connectHost}]` : req.connectHost;
  const headers: Record<string, string> = { Host: req.authority };
  for (const [k, v] of req.headers) headers[k] = v;
  const ws = new WebSocket(`ws://${host}:${req.connectPort}${req.path}`, {
    headers,
    origin: req.origin,
    handshakeTimeout: req.timeoutMs,
    perMessageDeflate: false,
  });
  const incoming: { data: Buffer; binary: boolean }[] = [];
  let waiter: (() => void) | undefined;
  let closed: string | undefined;
  ws.on('message', (data, isBinary) => {
    incoming.push({ data: Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), binary: isBinary });
    waiter?.();
  });
  ws.on('close', (code) => {
    closed = `connection closed (code ${code})`;
    waiter?.();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_r, res) => reject(new Error(`handshake answered with HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  } catch (err) {
    ws.terminate();
    return [`websocket handshake failed: ${(err as Error).message}`];
  }
  ws.on('error', () => {});
  const problems: string[] = [];
  for (const [i, x] of req.exchanges.entries()) {
    const payload = x.send.type === 'text' ? x.send.data ?? '' : Buffer.from(x.send.bytes ?? []);
    ws.send(payload, { binary: x.send.type === 'binary' });
    const deadline = Date.now() + req.timeoutMs;
    while (incoming.length === 0 && !closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        waiter = resolve;
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
      waiter = undefined;
    }
    const got = incoming.shift();
    if (!got) {
      problems.push(`exchange ${i}: no frame received (${closed ?? 'timeout'})`);
      break;
    }
    const actual = got.binary ? { type: 'binary', bytes: [...got.data] } : { type: 'text', data: got.data.toString('utf8') };
    const want = x.receive;
    const same =
      actual.type === want.type &&
      (want.type === 'text' ? actual.data === want.data : JSON.stringify(actual.bytes) === JSON.stringify(want.bytes ?? []));
    if (!same) problems.push(`exchange ${i}: expected ${frameText(want)}, got ${frameText(actual)}`);
  }
  ws.terminate();
  return problems;
}
