// RequestMirror: a copy of the request goes to another backend and its answer is dropped.
// Fire and forget: a slow or failing mirror never affects the real request, and copies are sent
// only after the real request was dispatched.

import type { Dispatcher } from 'undici';
import type { MirrorPlan } from '../filters/chain.ts';

/** A copy to send: headers and target as the filters before the mirror left them. */
export interface MirrorCopy {
  plan: MirrorPlan;
  target: string;
  headers: string[];
}

/**
 * The most of a mirror's answer that is read (and dropped) to keep its connection; an answer that
 * announces more is cut at its head, one without a length (chunked, an HTTP/2 stream, a gRPC
 * answer) once it passed this: nobody reads it, and a mirror streaming without end would
 * otherwise be read for ever, a connection and CPU per copy (Envoy bounds its shadow requests by
 * the route timeout instead).
 */
export const MIRROR_ANSWER_LIMIT_BYTES = 64 * 1024;

/**
 * The most copies in flight to one mirror backend (by name), in this process (each worker has its
 * own): Envoy's default circuit breaker (max_requests and max_pending_requests, 1024 each), which
 * also bounds its shadow requests. A copy past it is dropped, not queued: a mirror that accepts and
 * never answers would otherwise hold a connection per copy, and the gateway's descriptors with them.
 */
export const MIRROR_IN_FLIGHT_LIMIT = 1024;

/**
 * A copy's deadline, in all, when its route sets no request timeout: Envoy's route timeout default
 * (15 s), which Envoy gives its shadow requests. Never more than the backend idle bound.
 */
export const MIRROR_COPY_TIMEOUT_MS = 15_000;

/** Copies in flight by mirror backend name; a name leaves at its last copy's end. */
const inFlight = new Map<string, number>();

/**
 * Reads and drops the mirror's answer (failures are of no interest to anyone), within
 * MIRROR_ANSWER_LIMIT_BYTES and, in all, the backend idle bound: a copy has no client who could
 * leave, so a backend trickling a small answer must not hold its connection either.
 */
class Discard implements Dispatcher.DispatchHandler {
  private readonly method: string;
  /** The mirror backend whose in-flight count this copy holds until it settles. */
  private backend: string | null;
  private controller: Dispatcher.DispatchController | null = null;
  private timer: NodeJS.Timeout | undefined;
  private expired = false;
  private read = 0;

  constructor(method: string, backend: string, deadlineMs: number) {
    this.method = method;
    this.backend = backend;
    if (deadlineMs > 0) this.timer = setTimeout(expire, deadlineMs, this);
  }

  cut(reason: string): void {
    this.expired = true;
    clearTimeout(this.timer);
    this.controller?.abort(new Error(reason));
  }

  /** Ended one way or another: the copy's slot is free (once). */
  settle(): void {
    clearTimeout(this.timer);
    const backend = this.backend;
    if (backend === null) return;
    this.backend = null;
    const left = (inFlight.get(backend) ?? 1) - 1;
    if (left > 0) inFlight.set(backend, left);
    else inFlight.delete(backend);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.expired) controller.abort(new Error('mirror copy past its deadline'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    const length = headers['content-length'];
    if (statusCode >= 200 && this.method !== 'HEAD' && typeof length === 'string' && Number(length) > MIRROR_ANSWER_LIMIT_BYTES) this.cut('mirror answer too long to read');
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if ((this.read += chunk.length) > MIRROR_ANSWER_LIMIT_BYTES) this.cut('mirror answer too long to read');
  }

  onResponseEnd(): void {
    this.settle();
  }

  onResponseError(): void {
    this.settle();
  }
}

function expire(discard: Discard): void {
  discard.cut('mirror copy past its deadline');
}

/** Whether this request is one of the mirror's `percent` share. */
export function mirrorSampled(plan: MirrorPlan): boolean {
  return plan.percent >= 100 || Math.random() * 100 < plan.percent;
}

/**
 * Sends the copy; false when it was dropped because MIRROR_IN_FLIGHT_LIMIT copies to its backend
 * are in flight (the caller counts it). `body` is the request body, buffered (a stream is read
 * once, by the real upstream: requests whose body was too large to buffer are not mirrored).
 * `routeTimeoutMs`: the route's request timeout (0: none), the copy's deadline as in Envoy.
 */
export function mirrorRequest(copy: MirrorCopy, method: string, body: Buffer | null, routeTimeoutMs: number): boolean {
  const backend = copy.plan.backend;
  const held = inFlight.get(backend.name) ?? 0;
  if (held >= MIRROR_IN_FLIGHT_LIMIT) return false;
  const endpoint = backend.nextEndpoint();
  if (endpoint === undefined) return true;
  // L7 network policy holds for copies too: an endpoint sees only the requests its rules allow.
  const policy = backend.policies?.get(endpoint.key);
  if (policy !== undefined && policy.decide(method, copy.target, copy.headers).verdict === 'DROPPED') return true;
  // A copy has no exchange to watch it: its own timer bounds it, in all (few requests).
  const idleMs = endpoint.idle?.timeoutMs ?? 0;
  const deadlineMs = routeTimeoutMs > 0 ? routeTimeoutMs : MIRROR_COPY_TIMEOUT_MS;
  inFlight.set(backend.name, held + 1);
  const discard = new Discard(method, backend.name, idleMs > 0 && idleMs < deadlineMs ? idleMs : deadlineMs);
  try {
    endpoint.pool.dispatch({ path: copy.target, method, headers: copy.headers, body }, discard);
  } catch {
    // Invalid for undici (it validated synchronously): the mirror is simply not sent.
    discard.cut('not sent');
    discard.settle();
  }
  return true;
}
