// The client side of an exchange, whichever protocol it arrived with: node:http's request and
// response (HTTP/1.x) or node:http2's compatibility API (HTTP/2). Both are streams with the
// members the proxy uses; only header handling differs, and it is done here.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Http2ServerResponse, type Http2ServerRequest } from 'node:http2';
import { removeHeader } from './filters/header-modifier.ts';

export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

/**
 * Connection-specific headers: an HTTP/2 message must not carry them (RFC 9113 §8.2.2; node:http2
 * throws on them). `te` is allowed in requests with `trailers` only, never in responses.
 */
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te'];

/**
 * Sends the status and headers (flat `[name, value, ...]`, names lower-case). HTTP/2 responses
 * lose connection-specific headers first: upstream ones are already gone as hop-by-hop, but a
 * response header modifier may have added one.
 */
export function writeResponseHead(res: DownstreamResponse, status: number, headers: string[]): void {
  if (res instanceof Http2ServerResponse) {
    for (let i = 0; i < CONNECTION_SPECIFIC.length; i++) removeHeader(headers, CONNECTION_SPECIFIC[i]);
    res.writeHead(status, headers);
  } else {
    res.writeHead(status, headers);
  }
}
