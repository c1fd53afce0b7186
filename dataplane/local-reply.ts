// Answers the dataplane writes itself (404, 5xx, redirects, direct responses). Route response
// header modifiers apply to them too: they are the route's responses. A gRPC request's errors are
// answered in gRPC form (trailers-only, grpc-status), as Envoy does for its local replies.

import { writeResponseHead, type DownstreamResponse } from './downstream.ts';
import { grpcStatusForHttp, isGrpcContentType, sendTrailersOnly } from './grpc/grpc.ts';
import { applyHeaderModifiers, type HeaderModifierPlan } from './filters/header-modifier.ts';
import type { RequestMetrics } from './metrics.ts';
import { SERVER_HEADER } from './upstream/headers.ts';

export function sendLocalReply(
  res: DownstreamResponse,
  status: number,
  body: string | Buffer | null,
  modifiers: readonly HeaderModifierPlan[],
  metrics: RequestMetrics,
  startedAt: number,
  /** Flat `[name, value, ...]` added before the modifiers run (Location, CORS headers). */
  extraHeaders: readonly string[] | null = null,
  /** The gRPC status when the HTTP status does not say it (DEADLINE_EXCEEDED); absent: mapped from `status`. */
  grpcStatus?: number,
): void {
  keepReceivingRequest(res);
  // A gRPC call's error: HTTP 200, trailers-only; the body text becomes `grpc-message`.
  const grpc = status >= 400 && isGrpcContentType(res.req?.headers['content-type']);
  const length = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const headers = grpc ? [SERVER_HEADER[0], SERVER_HEADER[1]] : [SERVER_HEADER[0], SERVER_HEADER[1], 'content-length', String(length)];
  if (body !== null && !grpc) headers.push('content-type', 'text/plain; charset=utf-8');
  if (extraHeaders !== null) for (let i = 0; i < extraHeaders.length; i++) headers.push(extraHeaders[i]);
  if (modifiers.length > 0) applyHeaderModifiers(headers, modifiers);
  if (grpc) {
    const message = body === null ? `HTTP ${status}` : (typeof body === 'string' ? body : body.toString('utf8')).trim();
    sendTrailersOnly(res, grpcStatus ?? grpcStatusForHttp(status), message, headers);
    // What went on the wire, as Envoy counts its gRPC local replies: 200 (the status is in grpc-status).
    metrics.record(200, startedAt);
    return;
  }
  try {
    writeResponseHead(res, status, headers);
  } catch {
    // A header value Node refuses (say, a Location built from a strange Host): answer plainly
    // rather than leave the client hanging.
    status = 500;
    body = null;
    writeResponseHead(res, status, ['content-length', '0']);
  }
  if (body === null) res.end();
  else res.end(body);
  metrics.record(status, startedAt);
}

/**
 * An HTTP/2 request still coming when we answer it ourselves: node:http2 closes a stream whose
 * request body nobody started reading as soon as the response is written, before frames of the
 * request already received are checked (malformed trailers then go unanswered instead of getting
 * PROTOCOL_ERROR, h2spec 8.1.2.1/3). Paused, unread, the stream is left to the front door's reset
 * after a complete response (http2-front.ts), which runs once those frames are processed.
 */
function keepReceivingRequest(res: DownstreamResponse): void {
  if (!('stream' in res)) return;
  const stream = res.stream;
  if (stream !== undefined && !stream.readableEnded && stream.readableFlowing === null) stream.pause();
}
