// The benchmark's baseline: the least a Node reverse proxy can do. A node:http server and one
// undici Pool for the single upstream, each request forwarded with `dispatch()` and both bodies
// streamed, no routing, no filters, no metrics. Sluice's target is a ratio of this (see
// shared/research/perf-baseline.md).
//
//   node test/bench/minimal-forwarder.ts --port 18081 --upstream 127.0.0.1:18080
//
// `--same-headers NAME:VALUE,...`: an informational second baseline (`npm run bench` config
// `minimal-headers`), not the target: it also sends what Sluice adds to every request
// (X-Forwarded-For with the client's address, X-Forwarded-Proto) and the given headers (the bench
// route's RequestHeaderModifier), so the upstream request and answer match Sluice's byte for byte
// and the gap left is Sluice's own code.
//
// Prints `listening <port>` on stdout once it accepts connections.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool, type Dispatcher } from 'undici';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    upstream: { type: 'string' },
    // One of several worker threads on one port (test/bench/workers-forwarder.ts).
    'reuse-port': { type: 'boolean', default: false },
    'same-headers': { type: 'string' },
  },
  strict: true,
});
if (!values.upstream) {
  process.stderr.write('minimal-forwarder: --upstream HOST:PORT is required\n');
  process.exit(2);
}

const pool = new Pool(`http://${values.upstream}`, { headersTimeout: 0, bodyTimeout: 0 });

/** `--same-headers`: null, or the extra `[name, value, ...]` appended after the forwarding headers. */
const sameHeaders: string[] | null =
  values['same-headers'] === undefined
    ? null
    : values['same-headers'].split(',').filter(Boolean).flatMap((pair) => {
        const colon = pair.indexOf(':');
        return [pair.slice(0, colon).trim().toLowerCase(), pair.slice(colon + 1).trim()];
      });

// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded in either direction.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

class Exchange implements Dispatcher.DispatchHandler {
  private readonly res: ServerResponse;
  private controller: Dispatcher.DispatchController | null = null;
  private done = false;

  constructor(res: ServerResponse) {
    this.res = res;
    res.once('close', this.onClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(new Error('client closed'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return;
    // A flat [name, value, ...] list: the cheapest form writeHead takes.
    const out: string[] = [];
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      if (typeof value === 'string') out.push(name, value);
      else for (const v of value) out.push(name, v);
    }
    this.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.res.write(chunk)) return;
    controller.pause();
    this.res.once('drain', () => controller.resume());
  }

  onResponseEnd(): void {
    this.done = true;
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    if (this.done) return;
    this.done = true;
    if (this.res.destroyed) return;
    if (this.res.headersSent) {
      this.res.destroy(error);
    } else {
      this.res.writeHead(502, { 'content-type': 'text/plain' });
      this.res.end('Bad Gateway\n');
    }
  }

  // Abort the upstream request when the client goes away, so no upstream connection is stranded.
  private readonly onClose = (): void => {
    if (!this.done) this.controller?.abort(new Error('client closed'));
  };
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  // rawHeaders only: `req.headers` is built lazily and would cost an object per request.
  const raw = req.rawHeaders;
  const headers: string[] = [];
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name === 'content-length') hasBody ||= raw[i + 1] !== '0';
    else if (name === 'transfer-encoding') hasBody = true;
    if (!HOP_BY_HOP.has(name)) headers.push(name, raw[i + 1]);
  }
  if (sameHeaders !== null) {
    const address = req.socket.remoteAddress ?? '';
    headers.push('x-forwarded-for', address.startsWith('::ffff:') ? address.slice(7) : address, 'x-forwarded-proto', 'http');
    for (let i = 0; i < sameHeaders.length; i++) headers.push(sameHeaders[i]);
  }
  const exchange = new Exchange(res);
  try {
    pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers, body: hasBody ? req : null }, exchange);
  } catch (error) {
    exchange.onResponseError(null, error as Error);
  }
}

const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, handle);
server.listen({ port: Number(values.port), host: values.host, reusePort: values['reuse-port'] }, () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`listening ${port}\n`);
});

const stop = (): void => {
  server.close();
  server.closeAllConnections();
  void pool.destroy().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
