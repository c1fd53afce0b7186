// The one retry backoff of Sluice, for everything that retries a remote peer: the dataplane
// reconnecting to the controller and re-sending acks, the Kubernetes source restarting a failed
// list/watch or API discovery, the status writer after a conflict, the rate limiter's Redis
// client reconnecting. Here (a pure utility in `ir/`) because both the controller and the
// dataplane use it and neither may import the other.

/** Retry delays: `initialMs` doubling per consecutive failure, never above `maxMs`. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/**
 * The delay before retry number `failures` (1 for the first retry): the exponential ceiling
 * `min(maxMs, initialMs × 2^(failures−1))`, with "equal jitter" — uniformly between half and all
 * of it (AWS Architecture Blog, "Exponential Backoff And Jitter") — so that peers which failed
 * together (replicas that lost the same controller, informers of one API server) spread out while
 * each still waits at least half the ceiling. `random` returns [0, 1); tests pass a fixed one.
 */
export function backoffDelay(failures: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
