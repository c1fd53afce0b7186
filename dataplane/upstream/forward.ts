// One proxied request. The client's body is streamed up (undici reads the request stream), the
// upstream body is streamed down with backpressure both ways, and the upstream request is
// aborted the moment the client goes away, so a disconnect never strands an upstream
// connection mid-response.
//
// A request makes one or more attempts (UpstreamAttempt, one undici dispatch each). Retries
// (route retry policy) happen only before anything was sent downstream, and only when the body
// can be sent again: no body, or one buffered because the route retries or mirrors (up to
// REPLAY_BODY_LIMIT_BYTES). Mirrors get the same buffered body, after the real request was
// dispatched. Timers exist only when the route has timeouts.

import type { ServerResponse } from 'node:http';
import { Http2ServerResponse } from 'node:http2';
import { Transform, type Duplex, type Readable, type Writable } from 'node:stream';
import type { Logger } from 'pino';
import { errors, type Dispatcher } from 'undici';
import type { BackendChoice, ForwardPlan } from '../config/route-table.ts';
import { writeResponseHead, type DownstreamResponse } from '../downstream.ts';
import { addCorsHeaders } from '../filters/cors.ts';
import { headerValue } from '../header-fields.ts';
import { GRPC_STATUS, respondTrailersOnly } from '../grpc/grpc.ts';
import { sendLocalReply } from '../local-reply.ts';
import { CLIENT_CLOSED_CODE } from '../metrics.ts';
import type { RequestFlow } from '../flows/request-flows.ts';
import { ACCESS_DENIED_BODY, type EndpointPolicy } from '../policy/http-policy.ts';
import { awaitClient } from '../response-send.ts';
import type { BackendTarget } from './backend.ts';
import { downstreamResponseHeaders } from './headers.ts';
import { mirrorRequest, type MirrorCopy } from './mirror.ts';
import type { Watched } from './idle-watch.ts';
import { ClientStack, type UpstreamEndpoint } from './pools.ts';
import type { SessionBinding } from './session.ts';
import { openTunnel, type ClientUpgrade } from './tunnel.ts';

/**
 * Request bodies up to this size are buffered when the route has a retry policy or a mirror, so
 * that every attempt and every mirror can send them. A larger body (by Content-Length, or once
 * that many bytes arrived) is streamed through once: no retry, no mirror, and
 * `sluice_http_request_body_not_replayable_total` counts it. Bounds the memory a request can
 * pin: 64 KiB times the concurrent requests on such routes.
 */
export const REPLAY_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * An HTTP/1.1 response body of at most this many bytes, whole in its last chunk, goes out in the
 * same string as the head: Node's end(buffer) hands the socket the head (a string) and the body
 * (a Buffer) as a writev of two (a chunk array, a string copied into a fresh buffer), end(string)
 * prepends the head and makes one write of one string. The body is a latin1 string first, so its
 * bytes are copied a few times more: worth it for small bodies (an API's JSON), not for large
 * ones (measured: ~0.4 us less CPU per 64-byte response; break-even by the copies near 2 KiB).
 */
export const ONE_WRITE_MAX_BYTES = 1024;

/**
 * Interim (1xx) responses one attempt takes before its final one; past this the backend is
 * refusing to answer and the attempt fails (502). undici restarts its wait for a head with every
 * one, so without a count a backend dripping 103s would hold the request for ever; a real server
 * sends one or two (RFC 9110 §15.2: 100, 102, 103).
 */
export const MAX_INFORMATIONAL_RESPONSES = 10;

/**
 * Fields an upstream response head may carry; more is a bad answer (502). The front door's bound
 * for requests (Node's maxHeadersCount): undici bounds only the head's bytes (16 KiB), which
 * thousands of tiny fields fit, and the head relayed from them, fields respelled and the gateway's
 * own added, can then pass 16 KiB and be refused by the client (Envoy refuses past 100).
 */
export const MAX_RESPONSE_FIELDS = 1000;

/** undici's errors for a backend silent longer than --backend-idle-timeout: 504, as a route timeout. */
const SILENT = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Errors of a connection that was never made: a session's endpoint that gives one is left for another (once). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

class AttemptCancelledError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'AttemptCancelledError';
  }
}

/** One client request forwarded upstream (retries, timeouts, mirrors): `new ProxyExchange(...).start()`; `choice.backend` must have at least one endpoint. */
export class ProxyExchange {
  // The request's own fields rather than one object holding them: one allocation fewer per request (issue #14).
  private readonly method: string;
  /** Path and query, as sent upstream (after any rewrite). */
  private readonly target: string;
  private readonly headers: string[];
  /** Copies for the route's mirrors (already sampled); null when none. */
  private readonly mirrors: MirrorCopy[] | null;
  /** An HTTP/1.1 upgrade to ask the upstream for: a 101 opens a tunnel, any other answer is relayed as usual. */
  private readonly upgrade: ClientUpgrade | null;
  /** A gRPC call's `grpc-timeout` in ms (0: none): bounds the exchange like the route's request timeout, ending in DEADLINE_EXCEEDED. */
  private readonly deadlineMs: number;
  /**
   * The body must go up as it arrives (a gRPC call: a bidirectional stream may wait for answers
   * before it ends), so mirrors get their copy when it has ended instead of holding it back.
   */
  private readonly streamed: boolean;
  /** The request's flow record when flows are on (dataplane/flows); finished with the answer. */
  private readonly flow: RequestFlow | null;
  /** The route's session persistence: the endpoint the client's token names (first attempt), the token to hand out. */
  private readonly session: SessionBinding<BackendChoice> | null;
  private readonly res: DownstreamResponse;
  private readonly route: string;
  private readonly plan: ForwardPlan;
  private readonly choice: BackendChoice;
  private readonly backend: BackendTarget;
  private readonly corsHeaders: string[] | null;
  private readonly logger: Logger;
  private readonly startedAt: number;
  private current: UpstreamAttempt | null = null;
  private attempts = 0;
  private status = 0;
  /** The L7 policy the request was last checked against (see admitted). */
  private decidedBy: EndpointPolicy | null = null;
  /** Answered, cut or abandoned: nothing more may be written or recorded. */
  private finished = false;
  private waitingForDrain = false;
  /** Runs while bytes wait for the client (--response-send-timeout); see dataplane/response-send.ts. */
  private sendTimer: NodeJS.Timeout | undefined;
  /** Body bytes the upstream response has still to send by its Content-Length; -1: no length. */
  private bodyLeft = -1;
  /** The last chunk of a body of known length, sent with `end()` (see responseData). */
  private lastChunk: Buffer | null = null;
  private requestTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** What each attempt sends: the client's stream, or the buffered body once read. */
  private body: Buffer | Readable | null;
  /** Whether `body` can be sent again (retries, mirrors): null or buffered. */
  private replayable: boolean;

  /** `body`: the client's request stream when it carries a body. */
  constructor(
    method: string,
    target: string,
    headers: string[],
    body: Readable | null,
    mirrors: MirrorCopy[] | null,
    upgrade: ClientUpgrade | null,
    deadlineMs: number,
    streamed: boolean,
    flow: RequestFlow | null,
    session: SessionBinding<BackendChoice> | null,
    res: DownstreamResponse,
    route: string,
    plan: ForwardPlan,
    choice: BackendChoice,
    backend: BackendTarget,
    corsHeaders: string[] | null,
    logger: Logger,
    startedAt: number,
  ) {
    this.method = method;
    this.target = target;
    this.headers = headers;
    this.mirrors = mirrors;
    this.upgrade = upgrade;
    this.deadlineMs = deadlineMs;
    this.streamed = streamed;
    this.flow = flow;
    this.session = session;
    this.res = res;
    this.route = route;
    this.plan = plan;
    this.choice = choice;
    this.backend = backend;
    this.corsHeaders = corsHeaders;
    this.logger = logger;
    this.startedAt = startedAt;
    this.body = body;
    this.replayable = body === null;
    // A closure per exchange: measured cheaper than a ServerResponse subclass holding the exchange
    // for one shared listener (the subclass's construction costs more than the closure).
    res.on('close', () => this.downstreamClosed());
    // Started before any body buffering: the request timeout covers the whole exchange.
    const deadline = deadlineMs;
    if (deadline > 0 && (plan.requestTimeoutMs === 0 || deadline < plan.requestTimeoutMs)) this.requestTimer = setTimeout(deadlineExceeded, deadline, this);
    else if (plan.requestTimeoutMs > 0) this.requestTimer = setTimeout(requestTimedOut, plan.requestTimeoutMs, this);
  }

  start(): void {
    // Not yet replaced by a buffered copy or a tee: the client's stream, or null.
    const body = this.body as Readable | null;
    if (body !== null && this.streamed && this.mirrors !== null && this.plan.retry === null) this.teeBody(body);
    else if (body !== null && (this.plan.retry !== null || this.mirrors !== null)) this.bufferBody(body);
    else this.begin();
  }

  /**
   * A streamed body with mirrors: it goes up at once, a copy of up to REPLAY_BODY_LIMIT_BYTES is kept
   * and sent to the mirrors when the body ends (a longer one is not mirrored, counted as not replayable).
   */
  private teeBody(body: Readable): void {
    let chunks: Buffer[] | null = [];
    let length = 0;
    const tee = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        if (chunks !== null && (length += chunk.length) <= REPLAY_BODY_LIMIT_BYTES) chunks.push(chunk);
        else if (chunks !== null) {
          chunks = null;
          this.bodyNotReplayable();
        }
        done(null, chunk);
      },
      flush: (done) => {
        const mirrors = this.mirrors;
        if (chunks !== null && mirrors !== null) {
          this.sendMirrors(mirrors, Buffer.concat(chunks, length));
        }
        done();
      },
    });
    // The client went away mid-body: the downstream 'close' ends the exchange; the upstream stream is cut.
    body.on('error', (error) => tee.destroy(error));
    body.pipe(tee);
    this.body = tee;
    this.attempt();
  }

  /** The first attempt, then the mirrors: a mirror never goes ahead of the real request. */
  private begin(): void {
    this.attempt();
    const mirrors = this.mirrors;
    if (mirrors === null || this.finished) return;
    // A streamed body is read once, by the real upstream (counted in bodyNotReplayable).
    if (!this.replayable) return;
    this.sendMirrors(mirrors, this.body as Buffer | null);
  }

  /** A copy to each mirror; one over its in-flight bound is dropped and counted (mirror.ts). */
  private sendMirrors(mirrors: MirrorCopy[], body: Buffer | null): void {
    for (let i = 0; i < mirrors.length; i++) {
      const mirror = mirrors[i];
      if (!mirrorRequest(mirror, this.method, body, this.plan.requestTimeoutMs)) this.choice.metrics.recordMirrorDropped(mirror.plan.backend.name);
    }
  }

  /** Reads the body into memory, up to REPLAY_BODY_LIMIT_BYTES, then begins. */
  private bufferBody(body: Readable): void {
    const declared = headerValue(this.headers, 'content-length');
    if (declared !== undefined && Number(declared) > REPLAY_BODY_LIMIT_BYTES) {
      this.bodyNotReplayable();
      this.begin();
      return;
    }
    new BodyBuffer(this, body);
  }

  bodyBuffered(body: Buffer): void {
    this.body = body;
    this.replayable = true;
    if (!this.finished) this.begin();
  }

  /** Too large after all (chunked, no Content-Length): the stream, its first bytes put back, goes up once. */
  bodyTooLarge(): void {
    if (this.finished) return;
    this.bodyNotReplayable();
    this.begin();
  }

  private bodyNotReplayable(): void {
    this.choice.metrics.recordBodyNotReplayable();
    this.logger.debug({ route: this.route, limit: REPLAY_BODY_LIMIT_BYTES }, 'request body too large to buffer: sent once, without retries or mirrors');
  }

  attempt(): void {
    if (this.finished) return;
    const endpoint = this.pickEndpoint();
    const flow = this.flow;
    // The endpoint itself (address, port): flows read those two only, no copy per request.
    if (flow) flow.endpoint = endpoint;
    const policies = this.backend.policies;
    if (policies !== null && !this.admitted(policies.get(endpoint.key))) return;
    const attempt = new UpstreamAttempt(this, endpoint);
    this.current = attempt;
    this.attempts++;
    if (this.plan.backendTimeoutMs > 0) attempt.timer = setTimeout(backendTimedOut, this.plan.backendTimeoutMs, this, attempt);
    // A route (or gRPC) deadline bounds the exchange as the user asked: the pools' idle bound
    // (--backend-idle-timeout) is off for it, so a slow backend given 10 minutes gets them.
    const idle = endpoint.idle;
    if (idle != null && this.plan.requestTimeoutMs === 0 && this.plan.backendTimeoutMs === 0 && this.deadlineMs === 0) {
      // A request body still going up is the client's pace, not the backend's silence (undici's
      // head wait does not run out while it writes either; a stalled upload is the front door's).
      attempt.held = attempt.uploading = this.body !== null;
      idle.add(attempt);
    }
    try {
      endpoint.pool.dispatch({ path: this.target, method: this.method, headers: this.headers, body: this.body, upgrade: this.upgrade?.protocol ?? null }, attempt);
    } catch (error) {
      // undici validates synchronously (method, path, header values): nothing was sent.
      attempt.unwatch();
      this.attemptFailed(attempt, error as Error);
    }
  }

  /**
   * The first attempt of a session goes to the endpoint its token names; later attempts (retries,
   * an unreachable session endpoint) are load balanced over the backend, away from that endpoint.
   */
  private pickEndpoint(): UpstreamEndpoint {
    const pinned = this.session?.target?.endpoint;
    if (pinned === undefined) return this.backend.nextEndpoint()!;
    if (this.attempts === 0) return pinned;
    const endpoint = this.backend.nextEndpoint()!;
    return endpoint === pinned ? this.backend.nextEndpoint()! : endpoint;
  }

  /** A session's response carries a new token when the client had none valid or another endpoint answered. */
  private addSessionHeader(headers: string[], endpoint: UpstreamEndpoint): void {
    const session = this.session;
    if (session === null) return;
    const header = session.plan.responseHeader(session, this.choice, endpoint, Date.now());
    if (header !== null) headers.push(header[0], header[1]);
  }

  /**
   * L7 network policy on the endpoint just picked, before anything is sent to it: a denied request
   * gets Cilium's 403 and never reaches the endpoint; in audit mode it goes on, recorded AUDIT. A
   * retry to an endpoint with the same policy is not decided twice (mismatch actions change headers).
   */
  private admitted(policy: EndpointPolicy | undefined): boolean {
    if (policy === undefined) return true;
    if (policy === this.decidedBy) return true;
    const decision = policy.decide(this.method, this.target, this.headers);
    this.decidedBy = policy;
    if (this.flow) this.flow.decision = decision;
    if (decision.verdict !== 'DROPPED') return true;
    this.finish();
    this.flow?.finish(403);
    sendLocalReply(this.res, 403, ACCESS_DENIED_BODY, this.choice.filters.responseModifiers, this.choice.metrics, this.startedAt, this.corsHeaders);
    return false;
  }

  responseStart(attempt: UpstreamAttempt, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.finished) return;
    if (this.plan.retry?.codes.has(statusCode) && this.canRetry()) {
      attempt.discard = true; // read to the end (keeps the connection), then retry
      return;
    }
    const refused = refusedResponse(statusCode, headers);
    if (refused !== null) {
      attempt.cancel(refused);
      this.fail(attempt, new Error(refused), 502);
      return;
    }
    this.status = statusCode;
    // A 204 has no body whatever its fields say (RFC 9112 §6.3), and a sender MUST NOT put a length
    // on it (RFC 9110 §8.6): dropped, so no client waits for a body. undici does not reuse a
    // connection whose 204 announced one (its bytes could be a body).
    if (statusCode === 204) delete headers['content-length'];
    const length = headers['content-length'];
    // undici's parser has checked it (digits only, one value); a HEAD answer has no body to count.
    // Over HTTP/1.1 only (a ClientStack): there the chunk completing the length ends the response in
    // the same parser pass; an HTTP/2 stream may end any time later, and its last chunk held back
    // meanwhile reached the client only then (or never, when the idle bound cut it first).
    this.bodyLeft = typeof length === 'string' && this.method !== 'HEAD' && attempt.endpoint.pool instanceof ClientStack ? Number(length) : -1;
    const responseHeaders = downstreamResponseHeaders(headers, this.choice.filters.responseModifiers);
    if (responseHeaders.length > 2 * MAX_RESPONSE_FIELDS) {
      attempt.cancel('too many upstream response fields');
      this.fail(attempt, new Error(`upstream response with more than ${MAX_RESPONSE_FIELDS} fields`), 502);
      return;
    }
    if (this.corsHeaders !== null) addCorsHeaders(responseHeaders, this.corsHeaders);
    this.addSessionHeader(responseHeaders, attempt.endpoint);
    if (statusCode === 200 && this.res instanceof Http2ServerResponse && headerValue(responseHeaders, 'grpc-status') !== undefined) {
      // A gRPC trailers-only answer (grpc-status in the headers: the call ended with them): relayed
      // as one HEADERS frame with END_STREAM, as gRPC clients need it. What else arrives is dropped.
      this.complete(statusCode);
      respondTrailersOnly(this.res, responseHeaders);
      return;
    }
    try {
      writeResponseHead(this.res, statusCode, responseHeaders);
    } catch (error) {
      // An upstream header Node refuses to send (invalid characters): a bad upstream answer.
      attempt.cancel('invalid upstream response headers');
      this.fail(attempt, error as Error, 502);
    }
  }

  /** The upstream answered the upgrade with 101: the tunnel takes both connections over. */
  upgraded(attempt: UpstreamAttempt, headers: Record<string, string | string[] | undefined>, upstream: Duplex): void {
    clearTimeout(attempt.timer);
    const upgrade = this.upgrade;
    if (this.finished || upgrade === null) {
      upstream.destroy();
      return;
    }
    const switchedTo = headers.upgrade;
    if (typeof switchedTo !== 'string' || switchedTo.trim().toLowerCase() !== upgrade.protocol) {
      // Not what the client asked for (say, h2c for a WebSocket request): never tunnelled.
      upstream.destroy();
      this.fail(attempt, new Error(`upstream switched to ${JSON.stringify(switchedTo)} instead of ${upgrade.protocol}`), 502);
      return;
    }
    this.complete(101);
    const responseHeaders = downstreamResponseHeaders(headers, this.choice.filters.responseModifiers);
    this.addSessionHeader(responseHeaders, attempt.endpoint);
    openTunnel(upgrade, upstream, responseHeaders, this.route, this.logger);
  }

  responseData(attempt: UpstreamAttempt, chunk: Buffer): void {
    if (this.finished) return;
    // The chunk that completes a body of known length: undici ends the response right after it (same
    // parser pass), and Node's end(chunk) sends it in one write with 'finish' attached, where
    // write() then end() costs a cork tick and a finish tick more (issue #14).
    if (this.bodyLeft > 0 && (this.bodyLeft -= chunk.length) === 0) {
      this.lastChunk = chunk;
      return;
    }
    // Both response kinds are Writables; their overloads just don't unify.
    if ((this.res as Writable).write(chunk)) return;
    attempt.controller?.pause();
    // A backend held back for a slow client is not silent (its bound is the response send timeout's).
    attempt.held = attempt.paused = true;
    this.sendTimer ??= awaitClient(this.res);
    if (!this.waitingForDrain) {
      this.waitingForDrain = true;
      // Made here, not per exchange: most responses never wait for the client.
      this.res.on('drain', () => {
        clearTimeout(this.sendTimer);
        // After the end, what is left must still reach the client within the bound.
        this.sendTimer = this.finished && !this.res.writableFinished ? awaitClient(this.res) : undefined;
        const current = this.current;
        if (current === null) return;
        // Still held while the client's body goes up (full duplex: the backend may wait for its end).
        current.paused = false;
        current.held = current.uploading;
        current.quietTicks = 0;
        current.controller?.resume();
      });
    }
  }

  responseEnd(attempt: UpstreamAttempt, trailers: Record<string, string | string[] | undefined> | undefined): void {
    clearTimeout(attempt.timer);
    if (this.finished) return;
    if (attempt.discard) {
      this.retry(attempt, `status ${attempt.discardedStatus}`);
      return;
    }
    this.complete(this.status);
    if (trailers !== undefined) addTrailers(this.res, trailers);
    const last = this.lastChunk;
    if (last === null) this.res.end();
    else {
      this.lastChunk = null;
      // latin1 maps each byte to one character and back: the bytes sent are the upstream's.
      if (last.length <= ONE_WRITE_MAX_BYTES && !(this.res instanceof Http2ServerResponse)) (this.res as ServerResponse).end(last.toString('latin1'), 'latin1');
      else (this.res as Writable).end(last);
    }
    // The end waits behind bytes the client has not taken (a write held back before, or this last
    // one: an HTTP/2 stream without window takes none of a body sent whole by end()): bounded until
    // the response's 'close'. A response written out at once has nothing queued and costs no timer.
    if ((this.waitingForDrain || this.res.writableLength > 0) && !this.res.writableFinished) this.sendTimer ??= awaitClient(this.res);
  }

  attemptFailed(attempt: UpstreamAttempt, error: Error): void {
    clearTimeout(attempt.timer);
    if (this.finished) return;
    // Refused at connect(): with eBPF on, L3/L4 policy may be why (the flow record says so).
    if (this.flow && (error as { code?: string }).code === 'ECONNREFUSED') this.flow.connectionRefused = true;
    if (!this.res.headersSent && this.canRetry()) {
      this.retry(attempt, error.message);
      return;
    }
    const code = (error as { code?: string }).code;
    // GEP-1619 leaves a failed session endpoint to implementations ("MAY fall back"): one more
    // attempt at another endpoint of the backend, whose token the answer then carries.
    if (!this.res.headersSent && this.attempts === 1 && this.replayable && attempt.endpoint === this.session?.target?.endpoint && this.backend.endpoints.length > 1 && UNREACHABLE.has(code ?? '')) {
      this.retry(attempt, `session endpoint unreachable: ${error.message}`);
      return;
    }
    // 502: the one upstream we tried failed. 503: the backend as a whole did, every attempt
    // the retry policy allowed failed (what Envoy-based gateways answer too), or the endpoint
    // never answered the connect within the backend connect timeout (Envoy: 503, flag UF). 504: the
    // last attempt's backend was silent past the idle bound, after retries too (as a backendRequest timeout).
    this.fail(attempt, error, code === 'UND_ERR_INVALID_ARG' ? 400 : SILENT.has(code ?? '') ? 504 : this.attempts > 1 || code === 'UND_ERR_CONNECT_TIMEOUT' ? 503 : 502);
  }

  backendTimedOut(attempt: UpstreamAttempt): void {
    if (this.finished || attempt !== this.current) return;
    attempt.cancel('backend request timeout');
    if (!this.res.headersSent && this.canRetry()) {
      this.retry(attempt, 'backend request timeout');
      return;
    }
    this.fail(attempt, new Error(`no complete response within the backend request timeout (${this.plan.backendTimeoutMs} ms)`), 504);
  }

  requestTimedOut(): void {
    if (this.finished) return;
    const attempt = this.current;
    attempt?.cancel('request timeout');
    clearTimeout(this.retryTimer);
    this.fail(attempt, new Error(`no complete response within the request timeout (${this.plan.requestTimeoutMs} ms)`), 504);
  }

  /** The gRPC client's deadline passed: DEADLINE_EXCEEDED (HTTP 504 in the log), what the client would conclude itself. */
  deadlineExceeded(): void {
    if (this.finished) return;
    const attempt = this.current;
    attempt?.cancel('grpc-timeout');
    clearTimeout(this.retryTimer);
    this.fail(attempt, new Error(`no complete response within grpc-timeout (${this.deadlineMs} ms)`), 504, GRPC_STATUS.DEADLINE_EXCEEDED);
  }

  private canRetry(): boolean {
    const retry = this.plan.retry;
    return retry !== null && this.attempts <= retry.attempts && this.replayable;
  }

  private retry(attempt: UpstreamAttempt, reason: string): void {
    this.logger.debug({ route: this.route, backend: this.backend.name, endpoint: attempt.endpoint.key, attempt: this.attempts, reason }, 'retrying upstream request');
    const backoff = this.plan.retry?.backoffMs ?? 0;
    // Never re-enter undici from inside one of its callbacks.
    this.retryTimer = setTimeout(retryNow, backoff, this);
  }

  /** Answers with an error status, or cuts the response if it had already started. */
  private fail(attempt: UpstreamAttempt | null, error: Error, status: number, grpcStatus?: number): void {
    const res = this.res;
    this.logger.warn(
      {
        route: this.route,
        backend: this.backend.name,
        endpoint: attempt?.endpoint.key,
        attempts: this.attempts,
        status,
        err: { message: error.message, code: (error as { code?: string }).code },
        headersSent: res.headersSent,
      },
      'upstream request failed',
    );
    if (!res.headersSent) {
      this.finish();
      this.flow?.finish(status);
      sendLocalReply(res, status, STATUS_TEXT[status] ?? 'Error\n', this.choice.filters.responseModifiers, this.choice.metrics, this.startedAt, this.corsHeaders, grpcStatus);
    } else {
      // Mid-body failure: cut the connection so the client sees a truncated response, not a
      // complete-looking one.
      this.complete(this.status);
      res.destroy(error);
    }
  }

  private complete(status: number): void {
    this.finish();
    // One clock read for both records.
    const now = performance.now();
    this.flow?.finish(status, undefined, now);
    this.choice.metrics.record(status, this.startedAt, now);
  }

  private finish(): void {
    this.finished = true;
    clearTimeout(this.requestTimer);
    clearTimeout(this.retryTimer);
  }

  /** The client's response closed (answered, or the client went away): the latter cancels the attempt. */
  downstreamClosed(): void {
    clearTimeout(this.sendTimer);
    if (this.finished) return;
    this.current?.cancel('client closed the connection');
    this.complete(CLIENT_CLOSED_CODE);
  }
}

/**
 * Why a response head that undici's parser took is still not relayed, or null. A status outside
 * 100..599 is invalid (RFC 9110 §15: a client SHOULD treat it as a 5xx; relayed, it reaches clients
 * that may not). A transfer coding other than chunked (gzip, or chunked not last, which leaves the
 * body read to the close still encoded): Transfer-Encoding is hop-by-hop and Sluice decodes only
 * chunked, so relaying the body without it would hand the client encoded bytes as the content.
 */
function refusedResponse(statusCode: number, headers: Record<string, string | string[] | undefined>): string | null {
  if (statusCode > 599) return `invalid upstream status ${statusCode}`;
  const coding = headers['transfer-encoding'];
  if (coding !== undefined && (typeof coding !== 'string' || coding.trim().toLowerCase() !== 'chunked')) return `upstream transfer coding ${JSON.stringify(coding)} not supported`;
  return null;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request\n',
  502: 'Bad Gateway\n',
  503: 'Service Unavailable\n',
  504: 'Gateway Timeout\n',
};

/**
 * Passes the upstream's trailers on (gRPC's status travels in them). HTTP/2 clients get a
 * trailing HEADERS frame; HTTP/1.1 clients get them after the last chunk when the response is
 * chunked (Node drops them otherwise, as it must).
 */
function addTrailers(res: DownstreamResponse, trailers: Record<string, string | string[] | undefined>): void {
  let copy: Record<string, string | string[]> | null = null;
  for (const name in trailers) {
    const value = trailers[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */) continue;
    (copy ??= {})[name] = value;
  }
  if (copy === null) return;
  try {
    (res as ServerResponse).addTrailers(copy);
  } catch {
    // A trailer Node refuses (invalid characters): the response ends without it.
  }
}

/**
 * Collects a request body for replay. Allocated only for requests that need it, so the common
 * path carries neither its state nor its listeners.
 */
class BodyBuffer {
  private readonly exchange: ProxyExchange;
  private readonly body: Readable;
  private chunks: Buffer[] = [];
  private length = 0;

  constructor(exchange: ProxyExchange, body: Readable) {
    this.exchange = exchange;
    this.body = body;
    body.on('data', this.onData);
    body.on('end', this.onEnd);
    // The client went away mid-body: the downstream 'close' handles that; the error is noise.
    body.on('error', ignoreBodyError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.length <= REPLAY_BODY_LIMIT_BYTES) return;
    this.stop();
    this.body.pause(); // undici resumes it when it starts sending
    this.body.unshift(Buffer.concat(this.chunks, this.length));
    this.chunks = [];
    this.exchange.bodyTooLarge();
  };

  private readonly onEnd = (): void => {
    this.stop();
    const chunks = this.chunks;
    this.exchange.bodyBuffered(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.length));
  };

  private stop(): void {
    this.body.removeListener('data', this.onData);
    this.body.removeListener('end', this.onEnd);
  }
}

function ignoreBodyError(): void {}

// Timer callbacks as plain functions with arguments: no closure per request.
function requestTimedOut(exchange: ProxyExchange): void {
  exchange.requestTimedOut();
}
function deadlineExceeded(exchange: ProxyExchange): void {
  exchange.deadlineExceeded();
}
function backendTimedOut(exchange: ProxyExchange, attempt: UpstreamAttempt): void {
  exchange.backendTimedOut(attempt);
}
function retryNow(exchange: ProxyExchange): void {
  exchange.attempt();
}

/**
 * One dispatch to one endpoint. Once cancelled, undici's remaining callbacks are ignored. Watched by
 * the endpoint's idle bound (IdleWatch) while it waits for the backend, when the route has no deadline.
 */
class UpstreamAttempt implements Dispatcher.DispatchHandler, Watched {
  readonly exchange: ProxyExchange;
  readonly endpoint: UpstreamEndpoint;
  controller: Dispatcher.DispatchController | null = null;
  timer: NodeJS.Timeout | undefined = undefined;
  /** A retryable status: its body is read and dropped, then the next attempt starts. */
  discard = false;
  discardedStatus = 0;
  /** Interim responses so far (MAX_INFORMATIONAL_RESPONSES). */
  private informational = 0;
  private cancelled = false;
  /** A final response head came: silence from now on is a stalled body. */
  private responded = false;
  // Watched (see idle-watch.ts).
  quietTicks = 0;
  /** `uploading || paused`, the one field the watch reads. */
  held = false;
  /** The request body is still going up (the client's pace, not the backend's silence). */
  uploading = false;
  /** The response is paused for a slow client (the response send timeout's to bound). */
  paused = false;
  watchPrev: Watched | null = null;
  watchNext: Watched | null = null;
  watched = false;

  constructor(exchange: ProxyExchange, endpoint: UpstreamEndpoint) {
    this.exchange = exchange;
    this.endpoint = endpoint;
  }

  /** Silent past --backend-idle-timeout: 504 before a response head (as a route timeout), a cut after it; the upstream connection is closed. */
  idleExpired(): void {
    if (this.cancelled) return;
    // undici's own errors, as its headersTimeout / bodyTimeout gave them (logs, SILENT).
    const error = this.responded ? new errors.BodyTimeoutError() : new errors.HeadersTimeoutError();
    this.cancel(error.message);
    this.exchange.attemptFailed(this, error);
  }

  /** Off the endpoint's idle watch (a no-op when not on it). */
  unwatch(): void {
    if (this.watched) this.endpoint.idle?.remove(this);
  }

  cancel(reason: string): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.unwatch();
    clearTimeout(this.timer);
    // Aborting destroys the upstream connection: nothing is left half-read on it. A request
    // still waiting for a connection is aborted as soon as it gets one (onRequestStart).
    this.controller?.abort(new AttemptCancelledError(reason));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cancelled) controller.abort(new AttemptCancelledError('cancelled while waiting for a connection'));
  }

  onRequestSent(): void {
    this.uploading = false;
    this.held = this.paused;
    this.quietTicks = 0;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.cancelled) return;
    // Each head restarts the wait (an interim one too, as undici's head wait did; their count is bounded).
    this.quietTicks = 0;
    if (statusCode < 200) {
      // 1xx: Node answers 100-continue itself; the others are dropped, up to a count.
      if (++this.informational > MAX_INFORMATIONAL_RESPONSES) {
        this.cancel('informational response flood');
        this.exchange.attemptFailed(this, new Error(`more than ${MAX_INFORMATIONAL_RESPONSES} informational responses`));
      }
      return;
    }
    this.responded = true;
    this.exchange.responseStart(this, statusCode, headers);
    if (this.discard) this.discardedStatus = statusCode;
  }

  onRequestUpgrade(_controller: Dispatcher.DispatchController, _statusCode: number, headers: Record<string, string | string[] | undefined>, socket: Duplex): void {
    // Called for a 101 only; undici delivers any other answer to an upgrade as a response.
    if (this.cancelled) {
      socket.destroy();
      return;
    }
    // The tunnel has an idle bound of its own.
    this.unwatch();
    this.exchange.upgraded(this, headers, socket);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.quietTicks = 0;
    if (this.cancelled || this.discard) return;
    this.exchange.responseData(this, chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers?: Record<string, string | string[] | undefined>): void {
    this.unwatch();
    if (this.cancelled) return;
    this.exchange.responseEnd(this, trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    this.unwatch();
    if (this.cancelled) return;
    this.exchange.attemptFailed(this, error);
  }
}
