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

/** Reads and drops the mirror's answer; failures are of no interest to anyone. */
const DISCARD: Dispatcher.DispatchHandler = {
  onRequestStart() {},
  onResponseStart() {},
  onResponseData() {},
  onResponseEnd() {},
  onResponseError() {},
};

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
  try {
    // A copy has no exchange to watch it: undici's own timers bound a silent mirror (few requests).
    const silence = endpoint.idle?.timeoutMs ?? 0;
    endpoint.pool.dispatch({ path: copy.target, method, headers: copy.headers, body, headersTimeout: silence, bodyTimeout: silence }, DISCARD);
  } catch {
    // Invalid for undici (it validated synchronously): the mirror is simply not sent.
  }
}
