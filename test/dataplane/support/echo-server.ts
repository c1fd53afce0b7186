// A tiny upstream for dataplane tests: answers every request with JSON describing what it
// received, so tests can assert which backend answered and what the proxy sent it.
//
// Query parameters script misbehaviour: `delay=<ms>` answers late; `key=<k>&fail=<n>` makes the
// first n requests with that key fail, with `code=<status>` (default 500) or by resetting the
// connection when `code=reset`.

import http from 'node:http';
import type net from 'node:net';
import type { Endpoint } from '../../../ir/types.ts';

export interface EchoReply {
  pod: string;
  method: string;
  /** The request target as received (path and query). */
  path: string;
  host: string | undefined;
  headers: http.IncomingHttpHeaders;
  /** Raw header names/values as received (to check what was stripped or repeated). */
  rawHeaders: string[];
  /** Length of the request body received. */
  bodyLength: number;
  /** The body as text (tests send small bodies). */
  body: string;
}

export interface EchoServer {
  pod: string;
  port: number;
  endpoint: Endpoint;
  server: http.Server;
  /** Requests answered so far. */
  count: number;
  /** Currently open TCP connections from the proxy. */
  openConnections(): number;
  /** Requests seen per `key` query parameter (failed ones included). */
  attempts: Map<string, number>;
  /** Every request answered: target, body length, and the body's first KiB. */
  received: Array<{ method: string; path: string; bodyLength: number; body: string }>;
  close(): Promise<void>;
}

export async function startEchoServer(pod: string, options: { responseHeaders?: Record<string, string | string[]> } = {}): Promise<EchoServer> {
  const sockets = new Set<net.Socket>();
  const echo: EchoServer = {
    pod,
    port: 0,
    endpoint: { address: '127.0.0.1', port: 0 },
    server: http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      const query = new URL(req.url ?? '/', 'http://x').searchParams;
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const key = query.get('key');
        if (key !== null) {
          const seen = (echo.attempts.get(key) ?? 0) + 1;
          echo.attempts.set(key, seen);
          if (seen <= Number(query.get('fail') ?? 0)) {
            const code = query.get('code') ?? '500';
            if (code === 'reset') req.socket.destroy();
            else res.writeHead(Number(code), { 'content-type': 'text/plain' }).end(`failure ${seen}`);
            return;
          }
        }
        const delay = Number(query.get('delay') ?? 0);
        if (delay > 0) setTimeout(answer, delay);
        else answer();
      });
      const answer = (): void => {
        echo.count++;
        const body = Buffer.concat(chunks);
        echo.received.push({ method: req.method ?? '', path: req.url ?? '', bodyLength: body.length, body: body.subarray(0, 1024).toString() });
        const reply: EchoReply = {
          pod,
          method: req.method ?? '',
          path: req.url ?? '',
          host: req.headers.host,
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          bodyLength: body.length,
          body: body.toString(),
        };
        const payload = JSON.stringify(reply);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...options.responseHeaders });
        res.end(payload);
      };
    }),
    count: 0,
    openConnections: () => sockets.size,
    attempts: new Map(),
    received: [],
    close: async () => {
      echo.server.closeAllConnections();
      await new Promise<void>((resolve) => echo.server.close(() => resolve()));
    },
  };
  echo.server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => echo.server.listen(0, '127.0.0.1', resolve));
  echo.port = (echo.server.address() as net.AddressInfo).port;
  echo.endpoint = { address: '127.0.0.1', port: echo.port };
  return echo;
}
