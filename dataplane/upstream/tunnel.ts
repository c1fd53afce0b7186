// Upgraded connections (WebSocket): the request head is written to a fresh TCP connection to
// the endpoint, then bytes flow both ways untouched until either side closes. Upgrades do not
// go through undici pools: an upgraded connection is never reused for requests.

import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { RequestMetrics } from '../metrics.ts';
import { CLIENT_CLOSED_CODE } from '../metrics.ts';
import { UPSTREAM_CONNECT_TIMEOUT_MS, type UpstreamEndpoint } from './pools.ts';

export interface TunnelRequest {
  method: string;
  target: string;
  /** Flat `[name, value, ...]`, Connection/Upgrade included. */
  headers: readonly string[];
  /** Bytes the client sent after its request head. */
  head: Buffer;
}

export function openTunnel(
  client: Duplex,
  request: TunnelRequest,
  endpoint: UpstreamEndpoint,
  route: string,
  metrics: RequestMetrics,
  logger: Logger,
  startedAt: number,
): void {
  let status = 0;
  let connected = false;
  const upstream = net.connect({ host: endpoint.address, port: endpoint.port, noDelay: true });
  upstream.setTimeout(UPSTREAM_CONNECT_TIMEOUT_MS);

  const record = (code: number): void => {
    if (status !== 0) return;
    status = code;
    metrics.record(code, startedAt);
  };

  upstream.once('timeout', () => upstream.destroy(new Error(`connect timeout after ${UPSTREAM_CONNECT_TIMEOUT_MS} ms`)));
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(0);
    let head = `${request.method} ${request.target} HTTP/1.1\r\n`;
    for (let i = 0; i < request.headers.length; i += 2) head += `${request.headers[i]}: ${request.headers[i + 1]}\r\n`;
    upstream.write(head + '\r\n');
    if (request.head.length > 0) upstream.write(request.head);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  // The status line of the upstream's answer (101, or a refusal) is what the metrics count.
  upstream.once('data', (chunk: Buffer) => {
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(chunk.toString('latin1', 0, 16));
    record(match ? Number(match[1]) : 502);
  });
  // `on`, not `once`: a socket can emit more than one error, and an unheard one would crash.
  upstream.on('error', (error: Error) => {
    if (status === 0) {
      logger.warn({ route, endpoint: endpoint.key, err: error.message }, 'upgrade request failed');
      record(502);
    }
    if (!connected && client.writable) client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    else client.destroy();
  });
  // Before the connection exists the error handler answers the client; after, either side
  // closing ends the tunnel.
  upstream.once('close', () => {
    if (connected) client.destroy();
  });
  client.on('error', () => upstream.destroy());
  client.once('close', () => {
    record(CLIENT_CLOSED_CODE);
    upstream.destroy();
  });
}
