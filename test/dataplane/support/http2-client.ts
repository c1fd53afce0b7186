// HTTP/2 test clients (node:http2): cleartext with prior knowledge, or TLS with ALPN.

import http2 from 'node:http2';
import type tls from 'node:tls';
import type { EchoReply } from './echo-server.ts';

export interface Http2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
  /** The echo server's reply, when the body is one. */
  echo: EchoReply | null;
}

/** Opens a session: `http://` with prior knowledge, or `https://` negotiating `h2` by ALPN. */
export function connect(authority: string, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(authority, { rejectUnauthorized: false, ...options });
    session.once('connect', () => {
      session.removeListener('error', reject);
      // Errors after connecting surface through the requests.
      session.on('error', () => undefined);
      resolve(session);
    });
    session.once('error', reject);
  });
}

/** One request on `session`; `headers` may set `:method`, `:authority` and ordinary fields. */
export function h2request(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}, body?: string | Buffer): Promise<Http2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ...headers }, { endStream: body === undefined });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (received) => (responseHeaders = received));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const echo = responseHeaders['content-type'] === 'application/json' ? (JSON.parse(text) as EchoReply) : null;
      resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: text, echo });
    });
    if (body !== undefined) stream.end(body);
  });
}

/** The protocol ALPN settled on for a TLS session. */
export function negotiatedProtocol(session: http2.ClientHttp2Session): string | false | null {
  return (session.socket as tls.TLSSocket).alpnProtocol;
}
