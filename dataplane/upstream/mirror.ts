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
 * Reads and drops the mirror's answer (failures are of no interest to anyone), within
 * MIRROR_ANSWER_LIMIT_BYTES and, in all, the backend idle bound: a copy has no client who could
 * leave, so a backend trickling a small answer must not hold its connection either.
 */
class Discard implements Dispatcher.DispatchHandler {
  private readonly method: string;
  private controller: Dispatcher.DispatchController | null = null;
  private timer: NodeJS.Timeout | undefined;
  private expired = false;
  private read = 0;

  constructor(method: string, deadlineMs: number) {
    this.method = method;
    if (deadlineMs > 0) this.timer = setTimeout(expire, deadlineMs, this);
  }

  cut(reason: string): void {
    this.expired = true;
    clearTimeout(this.timer);
    this.controller?.abort(new Error(reason));
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
    clearTimeout(this.timer);
  }

  onResponseError(): void {
    clearTimeout(this.timer);
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
 * Sends the copy. `body` is the request body, buffered (a stream is read once, by the real
 * upstream: requests whose body was too large to buffer are not mirrored).
 */
export function mirrorRequest(copy: MirrorCopy, method: string, body: Buffer | null): void {
  const endpoint = copy.plan.backend.nextEndpoint();
  if (endpoint === undefined) return;
  // L7 network policy holds for copies too: an endpoint sees only the requests its rules allow.
  const policy = copy.plan.backend.policies?.get(endpoint.key);
  if (policy !== undefined && policy.decide(method, copy.target, copy.headers).verdict === 'DROPPED') return;
  // A copy has no exchange to watch it: its own timer bounds it, in all, by the idle bound (few requests).
  const discard = new Discard(method, endpoint.idle?.timeoutMs ?? 0);
  try {
    endpoint.pool.dispatch({ path: copy.target, method, headers: copy.headers, body }, discard);
  } catch {
    discard.cut('not sent');
    // Invalid for undici (it validated synchronously): the mirror is simply not sent.
  }
}
