// gRPC over the proxy (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): which
// requests are gRPC, the answers the gateway itself gives them (trailers-only, HTTP 200, the status
// in `grpc-status`), and the client's `grpc-timeout`. Everything else about a gRPC call — HTTP/2
// both ways, `te: trailers`, trailers relayed — is the ordinary proxy path.

import { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { DownstreamRequest, DownstreamResponse } from '../downstream.ts';
import { headerValue } from '../header-fields.ts';
import { MAX_TIMER_MS } from '../timer-bound.ts';

/** gRPC status codes the gateway answers with. */
export const GRPC_STATUS = {
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** `application/grpc`, alone or with a `+format` or parameters (the spec's Content-Type rule). */
export function isGrpcContentType(value: string | undefined): boolean {
  if (value === undefined || !value.startsWith('application/grpc')) return false;
  const next = value.charCodeAt(16);
  return Number.isNaN(next) || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

/** A gRPC call: HTTP/2 and a gRPC content type (gRPC-Web and HTTP/1.x are not gRPC). */
export function isGrpcRequest(req: DownstreamRequest, headers: readonly string[]): boolean {
  return req instanceof Http2ServerRequest && isGrpcContentType(headerValue(headers, 'content-type'));
}

/**
 * The gRPC status for a gateway answer of HTTP status `status`, as Envoy maps its local replies for
 * gRPC requests (Grpc::Utility::httpToGrpcStatus, after the gRPC spec's table): no route (404) is
 * UNIMPLEMENTED, an unreachable, failing or timed-out backend (502, 503, 504) and a rate limit (429)
 * UNAVAILABLE.
 */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** `grpc-message` is percent-encoded: anything outside printable ASCII, and `%` itself. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/**
 * `grpc-timeout` in milliseconds (at least 1), or 0 when absent or malformed. The spec's grammar:
 * 1 to 8 digits and a unit (H, M, S, m, u, n); anything else is ignored, as Envoy does.
 */
export function grpcTimeoutMs(headers: readonly string[]): number {
  const value = headerValue(headers, 'grpc-timeout');
  if (value === undefined || !/^[0-9]{1,8}[HMSmun]$/.test(value)) return 0;
  const ms = Number(value.slice(0, -1)) * TIMEOUT_UNIT_MS[value[value.length - 1]];
  return Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(ms)));
}

/**
 * A trailers-only answer from the gateway: `:status` 200, the content type, `grpc-status` and
 * `grpc-message` (what gRPC clients read as the call's end). `headers` are the gateway's own
 * (server, CORS, route response modifiers), flat `[name, value, ...]`.
 */
export function sendTrailersOnly(res: DownstreamResponse, grpcStatus: number, message: string, headers: readonly string[]): void {
  const flat: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'content-type' && !headers[i].startsWith('grpc-')) flat.push(headers[i], headers[i + 1]);
  }
  flat.push('content-type', 'application/grpc', 'grpc-status', String(grpcStatus));
  if (message !== '') flat.push('grpc-message', encodeGrpcMessage(message));
  respondTrailersOnly(res, flat);
}

/**
 * One HEADERS frame with END_STREAM and `:status` 200: a gRPC trailers-only response (the gateway's,
 * or a backend's relayed as it came). The compatibility API's writeHead never ends the stream on the
 * HEADERS frame, which gRPC clients need to see the status there. HTTP/1.x (a gRPC content type
 * without HTTP/2) gets the same fields as an empty 200.
 */
export function respondTrailersOnly(res: DownstreamResponse, headers: readonly string[]): void {
  const fields: Record<string, string | string[]> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name === 'content-length' || CONNECTION_SPECIFIC.has(name)) continue;
    const existing = fields[name];
    fields[name] = existing === undefined ? headers[i + 1] : Array.isArray(existing) ? [...existing, headers[i + 1]] : [existing, headers[i + 1]];
  }
  if (res instanceof Http2ServerResponse) {
    const stream = res.stream;
    if (stream.destroyed || stream.headersSent) return;
    try {
      stream.respond({ ...fields, ':status': 200 }, { endStream: true });
    } catch {
      // A header value HTTP/2 refuses: the status alone, never a hanging call.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(fields['grpc-status'] ?? GRPC_STATUS.UNKNOWN) }, { endStream: true });
    }
    return;
  }
  res.writeHead(200, { ...fields, 'content-length': '0' });
  res.end();
}

/** RFC 9113 §8.2.2: never in an HTTP/2 message. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te']);
