// RequestMirror: a copy of the request goes to another backend and its answer is dropped.
// Fire and forget: a slow or failing mirror never affects the real request.

import type { Dispatcher } from 'undici';
import type { MirrorPlan } from '../filters/chain.ts';

/** Reads and drops the mirror's answer; failures are of no interest to anyone. */
const DISCARD: Dispatcher.DispatchHandler = {
  onRequestStart() {},
  onResponseStart() {},
  onResponseData() {},
  onResponseEnd() {},
  onResponseError() {},
};

/**
 * Sends the copy when the mirror's percentage samples this request. Only requests without a
 * body are mirrored: the body is a stream read once, by the real upstream.
 */
export function mirrorRequest(plan: MirrorPlan, method: string, target: string, headers: string[]): void {
  if (plan.percent < 100 && Math.random() * 100 >= plan.percent) return;
  const endpoint = plan.backend.nextEndpoint();
  if (endpoint === undefined) return;
  try {
    endpoint.pool.dispatch({ path: target, method, headers, body: null }, DISCARD);
  } catch {
    // Invalid for undici (it validated synchronously): the mirror is simply not sent.
  }
}
