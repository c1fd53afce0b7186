// The conformance gRPC client (suite README, "gRPC cases"): a unary RPC over cleartext HTTP/2
// with prior knowledge, written with node:http2 so that every header and the 5-byte frame are
// exactly the README's, and the status is derived as Go's client derives it.

import http2 from 'node:http2';
import net from 'node:net';
import { GRPC_CODE_NAMES } from '../gateway-api/schema.ts';

export type GrpcCodeName = (typeof GRPC_CODE_NAMES)[number];

/** An empty protobuf message in gRPC's length-prefixed framing: uncompressed, length 0. */
export const EMPTY_GRPC_FRAME = Buffer.from([0, 0, 0, 0, 0]);
/** A reply longer than this is not an echo answer; the call ends INTERNAL. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export function grpcCodeName(code: number): string {
  return GRPC_CODE_NAMES[code] ?? `CODE_${code}`;
}

/** What Go's client reports for an HTTP status without grpc-status (grpc-go http_util.go). */
export function codeForHttpStatus(status: number): GrpcCodeName {
  switch (status) {
    case 400:
      return 'INTERNAL';
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'PERMISSION_DENIED';
    case 404:
      return 'UNIMPLEMENTED';
    case 429:
    case 502:
    case 503:
    case 504:
      return 'UNAVAILABLE';
    default:
      return 'UNKNOWN';
  }
}

export interface GrpcResponseParts {
  /** :status of the response headers. */
  httpStatus: number;
  contentType: string | undefined;
  /** grpc-status of a trailers-only response (in the headers) or of the trailers. */
  grpcStatus: string | undefined;
}

/**
 * The status code a finished RPC ends with: grpc-status when the server sent one; otherwise, for
 * an HTTP status other than 200, the mapping above; otherwise (200 without grpc-status, or not a
 * gRPC content-type) INTERNAL.
 */
export function deriveGrpcCode(r: GrpcResponseParts): GrpcCodeName | string {
  if (r.grpcStatus !== undefined && /^\d+$/.test(r.grpcStatus.trim())) return grpcCodeName(Number(r.grpcStatus.trim()));
  if (r.httpStatus !== 200) return codeForHttpStatus(r.httpStatus);
  return 'INTERNAL';
}

export interface GrpcCallSpec {
  /** `/<service>/<method>` */
  path: string;
  authority: string;
  /** Lower-case keys, one value each. */
  metadata: [string, string][];
  deadlineMs: number;
}

export interface GrpcCallResult {
  code: string;
  /** grpc-message or what went wrong on the wire. */
  message: string;
  /** The response message (framing removed) when the call ended OK. */
  reply?: Buffer;
  httpStatus?: number;
}

/** One HTTP/2 connection (prior knowledge) to a gateway listener. */
export class GrpcConnection {
  readonly session: http2.ClientHttp2Session;
  #failure: string | undefined;

  private constructor(session: http2.ClientHttp2Session) {
    this.session = session;
    session.on('error', (err) => (this.#failure ??= err.message));
    session.on('goaway', () => (this.#failure ??= 'GOAWAY'));
  }

  /** Dials and completes the HTTP/2 preface; rejects on a failed dial or after `timeoutMs`. */
  static dial(host: string, port: number, timeoutMs: number): Promise<GrpcConnection> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`http://${net.isIPv6(host) ? `[${host}]` : host}:${port}`, {
        createConnection: () => net.connect({ host, port }),
        // Bounded like the front door we test: no unbounded header lists back.
        maxHeaderListPairs: 256,
      });
      const timer = setTimeout(() => {
        session.destroy();
        reject(new Error(`no HTTP/2 connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        session.removeAllListeners('error');
        resolve(new GrpcConnection(session));
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        session.destroy();
        reject(new Error(`HTTP/2 connection to ${host}:${port}: ${err.message}`));
      });
    });
  }

  get usable(): boolean {
    return !this.#failure && !this.session.closed && !this.session.destroyed;
  }

  close(): void {
    this.session.destroy();
  }

  /** One unary RPC with an empty request message. Never rejects: every outcome is a status code. */
  call(spec: GrpcCallSpec): Promise<GrpcCallResult> {
    return new Promise((resolve) => {
      const deadlineMs = Math.max(1, Math.floor(spec.deadlineMs));
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':scheme': 'http',
        ':path': spec.path,
        ':authority': spec.authority,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${deadlineMs}m`,
      };
      for (const [k, v] of spec.metadata) headers[k] = v;
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.session.request(headers, { endStream: false });
      } catch (err) {
        resolve({ code: 'UNAVAILABLE', message: `cannot start the stream: ${(err as Error).message}` });
        return;
      }
      let response: { httpStatus: number; contentType: string | undefined; grpcStatus: string | undefined; grpcMessage: string | undefined } | undefined;
      let trailers: http2.IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (r: GrpcCallResult) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        resolve(r);
      };
      const timer = setTimeout(() => finish({ code: 'DEADLINE_EXCEEDED', message: `no answer within ${deadlineMs} ms` }), deadlineMs);
      const str = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
      stream.on('response', (h) => {
        response = { httpStatus: Number(h[':status']), contentType: str(h['content-type']), grpcStatus: str(h['grpc-status']), grpcMessage: str(h['grpc-message']) };
      });
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) finish({ code: 'INTERNAL', message: `response message over ${MAX_RESPONSE_BYTES} bytes` });
        else chunks.push(chunk);
      });
      stream.on('error', () => {}); // 'close' decides, with the stream's rstCode
      stream.on('close', () => {
        if (!response) {
          const rst = stream.rstCode;
          const why = this.#failure ?? (rst ? `RST_STREAM ${rst}` : 'the stream closed');
          finish({ code: rst === http2.constants.NGHTTP2_CANCEL ? 'CANCELLED' : 'UNAVAILABLE', message: `before a response: ${why}` });
          return;
        }
        const grpcStatus = str(trailers?.['grpc-status']) ?? response.grpcStatus;
        const message = str(trailers?.['grpc-message']) ?? response.grpcMessage ?? '';
        const grpcContent = /^application\/grpc(\+|;|$)/.test(response.contentType ?? '');
        let code = deriveGrpcCode({ httpStatus: response.httpStatus, contentType: response.contentType, grpcStatus });
        if (response.httpStatus === 200 && !grpcContent && grpcStatus === undefined) code = 'INTERNAL';
        if (grpcStatus === undefined && response.httpStatus === 200 && stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
          code = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? 'UNAVAILABLE' : 'INTERNAL';
        }
        const body = Buffer.concat(chunks);
        const out: GrpcCallResult = { code, message: message || `HTTP ${response.httpStatus}${grpcStatus === undefined ? ', no grpc-status' : ''}`, httpStatus: response.httpStatus };
        if (code === 'OK') {
          if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
            finish({ code: 'INTERNAL', message: `OK with a malformed response message (${body.length} bytes)`, httpStatus: response.httpStatus });
            return;
          }
          out.reply = body.subarray(5);
        }
        finish(out);
      });
      stream.end(EMPTY_GRPC_FRAME);
    });
  }
}
