// The backend idle bound (--backend-idle-timeout) on coarse ticks. undici's own headersTimeout and
// bodyTimeout would do it, but per request: undici arms a "fast timer" object at every dispatch
// and keeps it in its timer list until its next half-second tick, so every request's timer
// outlives two scavenges and dies in the old generation (measured at 64 connections: ~80 bytes
// promoted per request, a mark-compact every ~2 s, none without it; issue #14). Here an exchange in
// flight is a node of an intrusive list (no allocation), activity zeroes its count of quiet ticks
// (one field write), and one unref'd interval per bound walks the list while it is not empty.

/** What the watch bounds: one upstream attempt. */
export interface Watched {
  /** Ticks since the last sign of life; zeroed by activity (see IdleWatch). */
  quietTicks: number;
  /** Not counted while true: a request body still being sent, a response paused for a slow client. */
  held: boolean;
  watchPrev: Watched | null;
  watchNext: Watched | null;
  /** On the list: `watchPrev` alone cannot tell the head from a node that left. */
  watched: boolean;
  /** Silent past the bound: called once, after it left the list. */
  idleExpired(): void;
}

/** Ticks per bound: an attempt expires after its bound and at most two ticks more (a quarter, or 2 s). */
const TICKS_PER_BOUND = 8;
const MIN_TICK_MS = 10;
const MAX_TICK_MS = 1_000;

export class IdleWatch {
  readonly timeoutMs: number;
  private readonly tickMs: number;
  /** Quiet ticks past which a watched attempt expires: more than the bound has surely passed. */
  private readonly limit: number;
  private head: Watched | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
    this.tickMs = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.ceil(timeoutMs / TICKS_PER_BOUND)));
    // A node is zeroed at some point within a tick; counting `limit` further full ticks after that
    // one leaves at least `limit` ticks of silence before it expires.
    this.limit = Math.ceil(timeoutMs / this.tickMs);
  }

  add(node: Watched): void {
    if (node.watched) return;
    node.watched = true;
    node.quietTicks = 0;
    node.watchPrev = null;
    node.watchNext = this.head;
    if (this.head !== null) this.head.watchPrev = node;
    this.head = node;
    if (this.timer === null) {
      this.timer = setInterval(this.tick, this.tickMs);
      this.timer.unref();
    }
  }

  remove(node: Watched): void {
    if (!node.watched) return;
    node.watched = false;
    const prev = node.watchPrev;
    const next = node.watchNext;
    if (prev === null) this.head = next;
    else prev.watchNext = next;
    if (next !== null) next.watchPrev = prev;
    node.watchPrev = node.watchNext = null;
  }

  /** Attempts on the list (a test reads it). */
  get size(): number {
    let n = 0;
    for (let node = this.head; node !== null; node = node.watchNext) n++;
    return n;
  }

  private readonly tick = (): void => {
    for (let node = this.head; node !== null; ) {
      const next = node.watchNext;
      if (node.held) node.quietTicks = 0;
      else if (++node.quietTicks > this.limit) {
        this.remove(node);
        node.idleExpired();
      }
      node = next;
    }
    if (this.head === null && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  };
}
