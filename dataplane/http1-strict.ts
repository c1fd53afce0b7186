// What the HTTP/1.x front door refuses, and how it says so. Node's parser (llhttp, strict mode)
// already rejects most of the request-smuggling matrix: Content-Length with Transfer-Encoding,
// repeated or malformed Content-Length, obs-fold, bad chunk sizes, bare LF, NUL/CR in values,
// whitespace before the colon, unknown methods, oversized heads. It lets through a few framings
// nginx and Envoy refuse; requestProblem() catches those after the head is parsed. Every refusal,
// the parser's and ours, is counted (sluice_downstream_rejected_total{listener,reason}) and logged,
// one line per reason per LOG_INTERVAL_MS (with how many were left out), so a flood cannot flood
// the log. README.md "Front door: what is rejected" lists them.

import { STATUS_CODES, ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { writeResponseHead, type DownstreamRequest, type DownstreamResponse } from './downstream.ts';
import { GRPC_STATUS, isGrpcContentType, sendTrailersOnly } from './grpc/grpc.ts';
import type { DownstreamRejections } from './metrics.ts';
import { normalizePath } from './router/path.ts';
import { SERVER_HEADER } from './upstream/headers.ts';
import type { EscapedSlashes, HeadersWithUnderscores } from './front-door.ts';

/** A refusal: the status the client gets and the metric/log label. */
export interface Rejection {
  status: number;
  reason: string;
}

/** One log line per reason per this interval; the rest are counted in the next line. */
export const LOG_INTERVAL_MS = 10_000;

/**
 * llhttp error codes (Node's 'clientError') as status and reason. Codes not listed are 400
 * `malformed_request`; errors without an HPE_ code (resets) are no rejection at all.
 */
const PARSER_REJECTIONS: Record<string, Rejection> = {
  HPE_HEADER_OVERFLOW: { status: 431, reason: 'header_too_large' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, reason: 'chunk_extensions_too_large' },
  HPE_INVALID_METHOD: { status: 400, reason: 'invalid_method' },
  HPE_INVALID_URL: { status: 400, reason: 'invalid_target' },
  HPE_INVALID_VERSION: { status: 400, reason: 'invalid_version' },
  HPE_INVALID_CONSTANT: { status: 400, reason: 'invalid_request_line' },
  HPE_UNEXPECTED_SPACE: { status: 400, reason: 'invalid_request_line' },
  HPE_INVALID_HEADER_TOKEN: { status: 400, reason: 'invalid_header' },
  HPE_INVALID_CONTENT_LENGTH: { status: 400, reason: 'invalid_content_length' },
  HPE_UNEXPECTED_CONTENT_LENGTH: { status: 400, reason: 'invalid_content_length' },
  HPE_INVALID_TRANSFER_ENCODING: { status: 400, reason: 'invalid_transfer_encoding' },
  HPE_INVALID_CHUNK_SIZE: { status: 400, reason: 'invalid_chunk_size' },
  HPE_CR_EXPECTED: { status: 400, reason: 'invalid_line_ending' },
  HPE_LF_EXPECTED: { status: 400, reason: 'invalid_line_ending' },
  HPE_STRICT: { status: 400, reason: 'invalid_line_ending' },
  HPE_CLOSED_CONNECTION: { status: 400, reason: 'data_after_close' },
  HPE_INVALID_EOF_STATE: { status: 400, reason: 'incomplete_request' },
  // Node's headersTimeout (see front-door.ts).
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, reason: 'request_header_timeout' },
};

const MALFORMED: Rejection = { status: 400, reason: 'malformed_request' };

/** How a 'clientError' is answered; null for a socket error (reset, EPIPE), which gets no answer. */
export function parserRejection(code: string | undefined): Rejection | null {
  if (code === undefined) return null;
  return PARSER_REJECTIONS[code] ?? (code.startsWith('HPE_') ? MALFORMED : null);
}

const DUPLICATE_HOST: Rejection = { status: 400, reason: 'duplicate_host' };
const INVALID_HOST: Rejection = { status: 400, reason: 'invalid_host' };
const MISSING_HOST: Rejection = { status: 400, reason: 'missing_host' };
const INVALID_TARGET: Rejection = { status: 400, reason: 'invalid_target' };
const UNSUPPORTED_TRANSFER_ENCODING: Rejection = { status: 501, reason: 'unsupported_transfer_encoding' };
const HTTP10_TRANSFER_ENCODING: Rejection = { status: 400, reason: 'invalid_transfer_encoding' };
const UNSUPPORTED_VERSION: Rejection = { status: 505, reason: 'unsupported_version' };
/**
 * A field name with `_`: CGI-style backends (PHP, WSGI, Rack) read `X_Forwarded_For` and the
 * gateway's `X-Forwarded-For` as one variable, so a client could pass off its own value for one
 * the gateway sets. Envoy Gateway's default `headers.withUnderscoresAction: RejectRequest` (400);
 * nginx drops such fields (`underscores_in_headers off`).
 */
const UNDERSCORE_IN_HEADER: Rejection = { status: 400, reason: 'underscore_in_header' };
/**
 * `%2F` or `%5C` in the path: redirected to the path with them unescaped (and normalised), as
 * Envoy Gateway's default `escapedSlashesAction: UnescapeAndRedirect` (Envoy answers 307 with a
 * path-only Location). A backend that decodes them would see other segments than the router did.
 */
export const ESCAPED_SLASH: Rejection = { status: 307, reason: 'escaped_slash' };
/** The same with `--escaped-slashes reject` (Envoy Gateway's `RejectRequest`). */
const ESCAPED_SLASH_REFUSED: Rejection = { status: 400, reason: 'escaped_slash' };

/** What of a request the front door refuses, as `--headers-with-underscores` and `--escaped-slashes` set. */
export interface RequestChecks {
  headersWithUnderscores: HeadersWithUnderscores;
  escapedSlashes: EscapedSlashes;
}
/** CONNECT: a gateway is no forward proxy (nginx answers 405 too). */
export const CONNECT_REFUSED: Rejection = { status: 405, reason: 'connect_method' };

/**
 * A parsed HTTP/1.x request head the front door refuses, or null (RFC 9112, as nginx does):
 * - a version other than 1.0 and 1.1 (the parser takes `HTTP/2.0` and HTTP/0.9): 505;
 * - HTTP/1.1 without Host, more than one Host (§3.2), or a Host that is no `host[:port]`
 *   (RFC 3986 §3.2.2; nginx refuses empty ones, spaces, slashes and the like too): 400;
 * - Transfer-Encoding other than exactly `chunked` (`gzip, chunked`, `identity, chunked`): 501,
 *   as nginx; the parser already refuses `chunked, chunked` and codings without a final chunked;
 * - Transfer-Encoding in an HTTP/1.0 request (§6.1: faulty framing): 400;
 * - a field name with `_` (UNDERSCORE_IN_HEADER): 400;
 * - a target neither origin-form, nor absolute-form with an http(s) URL, nor `*` for OPTIONS: 400,
 *   or what targetProblem() refuses.
 */
export function requestProblem(req: IncomingMessage, checks: RequestChecks): Rejection | null {
  const underscores = checks.headersWithUnderscores === 'reject';
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1) return UNSUPPORTED_VERSION;
  const raw = req.rawHeaders;
  let hosts = 0;
  let host = '';
  let transferEncoding: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    // Compare lengths first: nearly every header is neither.
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++;
      host = raw[i + 1];
    }
    else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') transferEncoding = transferEncoding === undefined ? raw[i + 1] : `${transferEncoding},${raw[i + 1]}`;
    else if (underscores && name.indexOf('_') >= 0) return UNDERSCORE_IN_HEADER;
  }
  if (hosts > 1) return DUPLICATE_HOST;
  if (hosts === 0 && req.httpVersionMinor === 1) return MISSING_HOST;
  if (hosts === 1 && !validHost(host)) return INVALID_HOST;
  if (transferEncoding !== undefined) {
    if (req.httpVersionMinor === 0) return HTTP10_TRANSFER_ENCODING;
    if (transferEncoding.trim().toLowerCase() !== 'chunked') return UNSUPPORTED_TRANSFER_ENCODING;
  }
  const target = req.url ?? '';
  if (target.charCodeAt(0) === 0x2f /* / */) return targetProblem(target, checks);
  if (target === '*') return req.method === 'OPTIONS' ? null : INVALID_TARGET;
  return absoluteFormAuthority(target) === null ? INVALID_TARGET : targetProblem(target, checks);
}

/** An HTTP/2 request's fields (`rawHeaders`) the front door refuses: see UNDERSCORE_IN_HEADER. */
export function http2FieldProblem(raw: string[], checks: RequestChecks): Rejection | null {
  if (checks.headersWithUnderscores === 'allow') return null;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].indexOf('_') >= 0) return UNDERSCORE_IN_HEADER;
  return null;
}

/**
 * What the front door refuses in a request target of either protocol (HTTP/2's `:path` too):
 * - a fragment (`#`): never sent by a client (RFC 9110 §7.1, RFC 3986 §3.5), and read as part of
 *   the path by some servers and dropped by others, so a route for `/admin` would miss
 *   `/admin#x`; 400, as Envoy (its default rejects it) and HAProxy (CVE-2023-45539);
 * - `%2F` or `%5C` in the path: ESCAPED_SLASH.
 * Two native scans of the target; a `%` before the query is looked at closer.
 */
export function targetProblem(target: string, checks: RequestChecks): Rejection | null {
  if (target.indexOf('#') >= 0) return INVALID_TARGET;
  const percent = checks.escapedSlashes === 'keep' ? -1 : target.indexOf('%');
  if (percent < 0) return null;
  const query = target.indexOf('?');
  const pathEnd = query < 0 ? target.length : query;
  for (let at = percent; at >= 0 && at + 2 < pathEnd; at = target.indexOf('%', at + 1)) {
    if (escapedSlashAt(target, at)) return checks.escapedSlashes === 'redirect' ? ESCAPED_SLASH : ESCAPED_SLASH_REFUSED;
  }
  return null;
}

/** `%2F`, `%2f`, `%5C` or `%5c` at `at`. */
function escapedSlashAt(target: string, at: number): boolean {
  const high = target.charCodeAt(at + 1);
  const low = target.charCodeAt(at + 2) | 0x20; // lower-cased
  return (high === 0x32 /* 2 */ && low === 0x66 /* f */) || (high === 0x35 /* 5 */ && low === 0x63 /* c */);
}

/**
 * Where an ESCAPED_SLASH request is sent: its path with `%2F` and `%5C` unescaped, then normalised
 * as routing does (a backslash is a slash there), and its query as it came. Path-only, as Envoy's.
 */
export function escapedSlashLocation(target: string): string {
  const pathAndQuery = target.charCodeAt(0) === 0x2f /* / */ ? target : (absoluteFormAuthority(target)?.pathAndQuery ?? '/');
  const query = pathAndQuery.indexOf('?');
  const path = query < 0 ? pathAndQuery : pathAndQuery.slice(0, query);
  const unescaped = path.replace(/%(?:2f|5c)/gi, (escape) => (escape[1] === '2' ? '/' : '\\'));
  return normalizePath(unescaped) + (query < 0 ? '' : pathAndQuery.slice(query));
}

/**
 * RFC 3986 host (IP-literal, or reg-name/IPv4 characters) and optional port. Not empty: RFC 9112
 * §3.2 allows an empty Host only for targets without an authority, which a gateway never serves
 * (nginx refuses it too).
 */
const HOST_SYNTAX = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/;

/** The last Host that passed HOST_SYNTAX: most requests repeat it, and comparing costs less than the expression. */
let lastValidHost = '';

function validHost(host: string): boolean {
  if (host === lastValidHost && host !== '') return true;
  if (!HOST_SYNTAX.test(host)) return false;
  lastValidHost = host;
  return true;
}

/** The authority of an absolute-form target (`http://host:port/path`), or null when it is not one. */
export function absoluteFormAuthority(target: string): { host: string; pathAndQuery: string } | null {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return null;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '' || url.username !== '' || url.password !== '') return null;
  return { host: url.host, pathAndQuery: url.pathname + url.search };
}

/**
 * Answers a parsed request the front door refuses; an HTTP/1.x connection closes after it (an
 * HTTP/2 one serves on: the stream ends with the answer). ESCAPED_SLASH gets its Location; a gRPC
 * call gets INTERNAL instead, as Envoy answers it (a redirect means nothing to a gRPC client).
 */
export function sendRejection(req: DownstreamRequest, res: DownstreamResponse, rejection: Rejection): void {
  if (res instanceof ServerResponse) res.shouldKeepAlive = false;
  const headers = [SERVER_HEADER[0], SERVER_HEADER[1], 'content-length', '0'];
  if (rejection === ESCAPED_SLASH) {
    if (isGrpcContentType(req.headers['content-type'])) {
      sendTrailersOnly(res, GRPC_STATUS.INTERNAL, 'escaped slash in the path', [SERVER_HEADER[0], SERVER_HEADER[1]]);
      return;
    }
    headers.push('location', escapedSlashLocation(req.url ?? '/'));
  }
  writeResponseHead(res, rejection.status, headers);
  res.end();
}

/** The Node internals 'clientError' leaves us: the response in flight on the socket, if any. */
interface HttpSocket extends Socket {
  _httpMessage?: { headersSent: boolean } | null;
}

/**
 * Answers a parser error on the raw socket, as Node's default 'clientError' behaviour does (which
 * a 'clientError' listener replaces): only when no response has started on the connection, then
 * closes it once the answer is flushed.
 */
export function answerParserError(socket: Socket, rejection: Rejection | null): void {
  const inFlight = (socket as HttpSocket)._httpMessage;
  if (rejection !== null && socket.writable && (inFlight === undefined || inFlight === null || !inFlight.headersSent)) {
    socket.write(`HTTP/1.1 ${rejection.status} ${STATUS_CODES[rejection.status] ?? 'Bad Request'}\r\n${SERVER_HEADER[0]}: ${SERVER_HEADER[1]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    socket.destroySoon();
  } else {
    socket.destroy();
  }
}

/** Counts every refusal of one listener and logs them, rate-limited per reason. */
export class RejectionReporter {
  private readonly listener: string;
  private readonly logger: Logger;
  private readonly counters: () => DownstreamRejections;
  /** Per reason: until when further ones are only counted, and how many were. */
  private readonly quiet = new Map<string, { until: number; suppressed: number }>();

  /** `counters` is read per refusal: the listener's table (and so its metrics) swaps on reload. */
  constructor(listener: string, logger: Logger, counters: () => DownstreamRejections) {
    this.listener = listener;
    this.logger = logger;
    this.counters = counters;
  }

  report(rejection: Rejection, remote: string | undefined, detail?: string): void {
    this.counters().record(rejection.reason);
    const now = Date.now();
    const window = this.quiet.get(rejection.reason);
    if (window !== undefined && now < window.until) {
      window.suppressed++;
      return;
    }
    const suppressed = window?.suppressed ?? 0;
    this.quiet.set(rejection.reason, { until: now + LOG_INTERVAL_MS, suppressed: 0 });
    // info, as nginx logs "client sent invalid ...": the client's fault, not the operator's.
    this.logger.info(
      { listener: this.listener, status: rejection.status, reason: rejection.reason, remote, ...(detail === undefined ? {} : { detail }), suppressed },
      `request rejected: ${rejection.reason}`,
    );
  }
}
