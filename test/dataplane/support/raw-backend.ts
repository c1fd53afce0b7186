// A backend for the attack tests that sees what a real server behind the gateway would see: a
// net.Server, not node:http (whose own parser would hide or refuse what a laxer server accepts),
// recording every byte each connection receives and reading requests with a strict HTTP/1.1
// parser of its own. Whatever it cannot read as one well-formed request after another (a second
// framing, a bare CR, a smuggled head) is recorded as malformed and the connection closed.
// Answers each request `200` with `<name> <target>` as the body; an upgrade request gets a plain
// 200 too (the backend refuses to switch protocols).

import net from 'node:net';

export interface BackendRequest {
  method: string;
  target: string;
  /** `[name, value]` in arrival order, names as sent. */
  headers: [string, string][];
  body: string;
}

export interface RawBackend {
  name: string;
  port: number;
  /** Every request read, all connections, in order. */
  requests: BackendRequest[];
  /** Why a connection's bytes were not well-formed requests (empty when all were). */
  malformed: string[];
  /** Every byte received, one latin1 string per connection. */
  connections(): string[];
  /** Every byte received, all connections. */
  raw(): string;
  close(): Promise<void>;
}

const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.1$/;
const FIELD = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\0\r\n]*?)[ \t]*$/;
/** What a connection may hold unread (a head never finishing is malformed past it). */
const MAX_BUFFERED = 1 << 20;

/** Reads one request from `data` at `at`: the request and where the next starts, null when more bytes are needed, or an error. */
export function readRequest(data: string, at: number): { request: BackendRequest; end: number } | null | string {
  const headEnd = data.indexOf('\r\n\r\n', at);
  if (headEnd < 0) return null;
  const lines = data.slice(at, headEnd).split('\r\n');
  const line = REQUEST_LINE.exec(lines[0]!);
  if (line === null) return `bad request line ${JSON.stringify(lines[0])}`;
  const headers: [string, string][] = [];
  let length: number | null = null;
  let chunked = false;
  for (const text of lines.slice(1)) {
    const field = FIELD.exec(text);
    if (field === null) return `bad field ${JSON.stringify(text)}`;
    headers.push([field[1]!, field[2]!]);
    const name = field[1]!.toLowerCase();
    if (name === 'content-length') {
      if (length !== null || !/^\d+$/.test(field[2]!)) return `bad or repeated content-length ${JSON.stringify(field[2])}`;
      length = Number(field[2]);
    } else if (name === 'transfer-encoding') {
      if (chunked || field[2]!.toLowerCase() !== 'chunked') return `bad transfer-encoding ${JSON.stringify(field[2])}`;
      chunked = true;
    }
  }
  if (chunked && length !== null) return 'content-length and transfer-encoding';
  if (!headers.some(([name]) => name.toLowerCase() === 'host')) return 'no host';
  let pos = headEnd + 4;
  let body = '';
  if (length !== null) {
    if (data.length < pos + length) return null;
    body = data.slice(pos, pos + length);
    pos += length;
  } else if (chunked) {
    for (;;) {
      const sizeEnd = data.indexOf('\r\n', pos);
      if (sizeEnd < 0) return null;
      const sizeLine = data.slice(pos, sizeEnd);
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeLine)) return `bad chunk size ${JSON.stringify(sizeLine)}`;
      const size = parseInt(sizeLine, 16);
      pos = sizeEnd + 2;
      if (size === 0) {
        // Trailers, then the empty line.
        for (;;) {
          const trailerEnd = data.indexOf('\r\n', pos);
          if (trailerEnd < 0) return null;
          const trailer = data.slice(pos, trailerEnd);
          pos = trailerEnd + 2;
          if (trailer === '') break;
          const field = FIELD.exec(trailer);
          if (field === null) return `bad trailer ${JSON.stringify(trailer)}`;
          if (/^(content-length|transfer-encoding|host)$/i.test(field[1]!)) return `forbidden trailer ${field[1]}`;
          headers.push([field[1]!, field[2]!]);
        }
        break;
      }
      if (data.length < pos + size + 2) return null;
      if (data.slice(pos + size, pos + size + 2) !== '\r\n') return 'chunk not followed by CRLF';
      body += data.slice(pos, pos + size);
      pos += size + 2;
    }
  }
  return { request: { method: line[1]!, target: line[2]!, headers, body }, end: pos };
}

export async function startRawBackend(name: string): Promise<RawBackend> {
  const requests: BackendRequest[] = [];
  const malformed: string[] = [];
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const index = received.push('') - 1;
    let data = '';
    let at = 0;
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      received[index] += text;
      data += text;
      for (;;) {
        const read = readRequest(data, at);
        if (read === null) {
          if (data.length - at > MAX_BUFFERED) {
            malformed.push('request never ended');
            socket.destroy();
          }
          return;
        }
        if (typeof read === 'string') {
          malformed.push(read);
          socket.destroy();
          return;
        }
        requests.push(read.request);
        at = read.end;
        const body = `${name} ${read.request.target}\n`;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`, 'latin1');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    name,
    port: (server.address() as net.AddressInfo).port,
    requests,
    malformed,
    connections: () => [...received],
    raw: () => received.join(''),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
