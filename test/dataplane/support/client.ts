// Test clients: a plain HTTP request helper (fresh connection unless an agent is given) and a
// raw-socket one for checking exactly what goes over the wire.

import http from 'node:http';
import net from 'node:net';
import type { EchoReply } from './echo-server.ts';

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  /** The echo server's reply, when the body is one. */
  echo: EchoReply | null;
}

export interface RequestOptions {
  host?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  agent?: http.Agent | false;
  /** No answer within this: the request fails (default: waits as long as the test). */
  timeoutMs?: number;
}

export function request(port: number, path: string, options: RequestOptions = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: { ...(options.host !== undefined ? { host: options.host } : {}), ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          let echo: EchoReply | null = null;
          if (res.headers['content-type'] === 'application/json') echo = JSON.parse(body) as EchoReply;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, echo });
        });
      },
    );
    req.on('error', reject);
    if (options.timeoutMs !== undefined) req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`no answer to ${path} within ${options.timeoutMs} ms`)));
    req.end(options.body);
  });
}

/** Sends `text` as is on a new connection and returns everything read until the server closes. */
export function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
    // Not end(): a half-closed client makes Node drop the response; `Connection: close` in the
    // request makes the server close after answering.
    socket.write(text);
  });
}

/** Counts of `echo.pod` over `n` sequential requests. */
export async function podCounts(port: number, path: string, n: number, options: RequestOptions = {}): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const response = await request(port, path, options);
    const key = response.echo?.pod ?? `status ${response.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
