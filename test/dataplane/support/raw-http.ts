// Raw HTTP/1.1 on both sides of the dataplane, for tests about framing and smuggling: a client
// connection that sends bytes as they are and reads what comes back, and a backend that
// records every request it parses and every raw byte it receives, answering 200, or 101 to an
// upgrade when the request asks for it (`x-answer: 101`, or `x-answer: 101 h2c` to switch to
// another protocol than the one asked).

import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Endpoint } from '../../../ir/types.ts';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface CountingBackend {
  endpoint: Endpoint;
  /** Every request the backend's own (strict) parser produced, in order. */
  requests: SeenRequest[];
  /** Every byte received, all connections, as latin1 text. */
  raw(): string;
  /** Request lines (`METHOD target HTTP/1.x`) anywhere in the raw bytes, bodies and tunnels included. */
  requestLines(): string[];
  /** Bytes received on upgraded (101) connections. */
  tunnelled(): string;
  close(): Promise<void>;
}

export async function startCountingBackend(): Promise<CountingBackend> {
  const requests: SeenRequest[] = [];
  const rawChunks: Buffer[] = [];
  const tunnelChunks: Buffer[] = [];
  /** Upgraded connections, which server.close() neither tracks nor ends: closed by close(). */
  const upgraded = new Set<net.Socket>();
  const server = http.createServer({ shouldUpgradeCallback: (req) => String(req.headers['x-answer'] ?? '').startsWith('101') }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('latin1') });
      const body = `backend ${req.url}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' });
    const protocol = String(req.headers['x-answer'] ?? '').split(' ')[1] ?? req.headers.upgrade ?? '';
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\nX-Backend: tunnel\r\n\r\n`);
    // An echo: whatever comes through the tunnel goes back, prefixed so the client can tell.
    const relay = (chunk: Buffer): void => {
      tunnelChunks.push(chunk);
      socket.write(Buffer.concat([Buffer.from('echo:'), chunk]));
    };
    if (head.length > 0) relay(head);
    socket.on('data', relay);
    socket.on('error', () => socket.destroy());
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  });
  server.on('connection', (socket: net.Socket) => socket.on('data', (chunk: Buffer) => rawChunks.push(chunk)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const raw = (): string => Buffer.concat(rawChunks).toString('latin1');
  return {
    endpoint: { address: '127.0.0.1', port },
    requests,
    raw,
    requestLines: () => [...raw().matchAll(/^([A-Z]+ \S+ HTTP\/1\.[01])\r?$/gm)].map((match) => match[1]),
    tunnelled: () => Buffer.concat(tunnelChunks).toString('latin1'),
    close: async () => {
      server.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client connection that writes bytes as given and collects everything read. */
export class RawConnection {
  private readonly socket: net.Socket;
  private received = '';
  private closed = false;
  private readonly waiters = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.toString('latin1');
      this.wake();
    });
    // A reset after the server's answer still leaves what was read: tests look at that.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(port: number, options: { tls?: boolean; servername?: string } = {}): Promise<RawConnection> {
    const socket = options.tls
      ? tls.connect({ host: '127.0.0.1', port, servername: options.servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once(options.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawConnection(socket);
  }

  get text(): string {
    return this.received;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Status codes of the responses read so far, in order. */
  statuses(): number[] {
    return [...this.received.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((match) => Number(match[1]));
  }

  /** Resolves once `ready(text)` holds; rejects after `timeoutMs` with what was read. */
  async until(ready: (text: string, closed: boolean) => boolean, timeoutMs = 3_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!ready(this.received, this.closed)) {
      const left = deadline - Date.now();
      if (left <= 0 || (this.closed && !ready(this.received, true))) {
        throw new Error(`${this.closed ? 'closed' : 'timed out'} waiting; read so far: ${JSON.stringify(this.received)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received;
  }

  /** Waits for `count` complete responses (each with Content-Length, or ended by the close). */
  untilResponses(count: number, timeoutMs?: number): Promise<string> {
    return this.until((text, closed) => completeResponses(text) >= count || (closed && this.statuses().length >= count), timeoutMs);
  }

  /** Waits for the server to close the connection. */
  untilClosed(timeoutMs?: number): Promise<string> {
    return this.until((_text, closed) => closed, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }
}

/** Responses in `text` whose Content-Length body has fully arrived. */
function completeResponses(text: string): number {
  let count = 0;
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd < 0 || !text.startsWith('HTTP/1.1 ', at)) return count;
    const head = text.slice(at, headEnd);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    const bodyLength = length === null ? 0 : Number(length[1]);
    if (text.length < headEnd + 4 + bodyLength) return count;
    count++;
    at = headEnd + 4 + bodyLength;
  }
}

/** Runs `use` on a connection from `open`, closed afterwards whatever happens. */
export async function usingConnection<T>(open: () => Promise<RawConnection>, use: (connection: RawConnection) => Promise<T>): Promise<T> {
  const connection = await open();
  try {
    return await use(connection);
  } finally {
    connection.close();
  }
}

/** A raw-socket exchange on a fresh connection: sends `text`, returns what was read when the server closes. */
export function rawExchange(port: number, text: string, timeoutMs = 3_000): Promise<string> {
  return usingConnection(() => RawConnection.open(port), (connection) => {
    connection.send(text);
    return connection.untilClosed(timeoutMs);
  });
}
