// In-process token buckets with continuous refill, kept in a bounded LRU map.
//
// A bucket holds `capacity` tokens at most and starts full; it gains `ratePerMs` tokens per
// millisecond, computed lazily on access (no timers). An admitted request takes one token; a
// rejected one takes nothing. Several buckets are decided together: all of them must hold a
// token, and then all of them give one — or none does (`takeAll`).
//
// Eviction drops the least recently used bucket (approximately, see `touch`). A bucket idle for capacity / rate is full
// again, so evicting it loses nothing; only a churn of more than `maxKeys` distinct clients
// within that time can forget a partly drained bucket (which then admits more, never fewer).

/** Float slack: 6 s × (10 / 60 000 ms) must count as one whole token. */
export const EPSILON = 1e-9;

export interface BucketSpec {
  /** Size and initial content. */
  capacity: number;
  /** Refill, tokens per millisecond. */
  ratePerMs: number;
}

interface BucketState {
  tokens: number;
  /** When `tokens` was computed, in the clock's milliseconds. */
  at: number;
  /** Position in recency order (see `touch`). */
  seq: number;
}

/** One bucket's view after a decision: what the RateLimit headers report. */
export interface BucketReport {
  /** Whole tokens left. */
  remaining: number;
  /** Milliseconds until the bucket holds one whole token again (0 while it does). */
  resetMs: number;
}

/** One bucket of a decision: what to take from, and (filled in) what happened. */
export interface BucketItem {
  key: string;
  spec: BucketSpec;
  /** False for a shadow rule: decided as its own group, never rejects. */
  enforced: boolean;
  report: BucketReport | null;
  taken: boolean;
  /** The bucket had no whole token when decided. */
  lacked: boolean;
}

/** What RateLimitService needs of a bucket store: LocalBuckets (one thread), SharedBuckets (worker threads). */
export interface Buckets {
  readonly size: number;
  peek(key: string, spec: BucketSpec, now: number): number;
  takeAll(items: readonly BucketItem[], now: number): boolean;
  refund(key: string, spec: BucketSpec, now: number): void;
}

export class LocalBuckets implements Buckets {
  readonly maxKeys: number;
  /** Map order is recency order: the first entry is the least recently used. */
  private readonly states = new Map<string, BucketState>();
  private seq = 0;
  private readonly bumpAge: number;

  constructor(maxKeys: number) {
    if (!(Number.isInteger(maxKeys) && maxKeys > 0)) throw new Error(`maxKeys ${maxKeys}: a whole number above 0`);
    this.maxKeys = maxKeys;
    this.bumpAge = Math.max(1, Math.floor(maxKeys / 4));
  }

  get size(): number {
    return this.states.size;
  }

  /** Tokens in the bucket at `now` (a bucket never seen is full). */
  peek(key: string, spec: BucketSpec, now: number): number {
    const state = this.states.get(key);
    return state === undefined ? spec.capacity : refill(state, spec, now);
  }

  /**
   * Decides `items` together: the enforced ones admit only if each holds a whole token, and
   * then each gives one; shadow items are their own all-or-nothing group, taken only when the
   * request is admitted. Fills each item's report, taken and lacked; returns whether the
   * enforced group admits.
   */
  takeAll(items: readonly BucketItem[], now: number): boolean {
    const n = items.length;
    let allowed = true;
    let shadowAllowed = true;
    const states = n === 1 ? null : new Array<BucketState>(n);
    let single: BucketState | undefined;
    for (let i = 0; i < n; i++) {
      const item = items[i];
      const state = this.touch(item.key, item.spec, now);
      if (states === null) single = state;
      else states[i] = state;
      if (state.tokens < 1 - EPSILON) {
        if (item.enforced) allowed = false;
        else shadowAllowed = false;
      }
    }
    for (let i = 0; i < n; i++) {
      const item = items[i];
      const state = states === null ? single! : states[i];
      const take = allowed && (item.enforced || shadowAllowed);
      if (take) state.tokens = Math.max(0, state.tokens - 1);
      item.taken = take;
      item.report = report(state.tokens, item.spec);
      item.lacked = !take && item.report.remaining < 1;
    }
    return allowed;
  }

  /** Gives back one token taken by `takeAll` (another part of the decision said no). */
  refund(key: string, spec: BucketSpec, now: number): void {
    const state = this.states.get(key);
    if (state === undefined) return; // evicted meanwhile: it is full again for our purposes
    state.tokens = Math.min(spec.capacity, refill(state, spec, now) + 1);
    state.at = now;
  }

  clear(): void {
    this.states.clear();
  }

  /**
   * The bucket, refilled to `now`, created full when missing. An entry is moved to the recent
   * end only when a quarter of the capacity has been used since it last was: a bucket used at
   * least that often is never evicted, and hot buckets cost no Map re-insertion.
   */
  private touch(key: string, spec: BucketSpec, now: number): BucketState {
    let state = this.states.get(key);
    if (state === undefined) {
      state = { tokens: spec.capacity, at: now, seq: ++this.seq };
      this.states.set(key, state);
      if (this.states.size > this.maxKeys) this.states.delete(this.states.keys().next().value as string);
      return state;
    }
    state.tokens = refill(state, spec, now);
    state.at = now;
    if (this.seq - state.seq > this.bumpAge) {
      this.states.delete(key);
      state.seq = ++this.seq;
      this.states.set(key, state);
    }
    return state;
  }
}

function refill(state: BucketState, spec: BucketSpec, now: number): number {
  const elapsed = now - state.at;
  if (elapsed <= 0) return state.tokens > spec.capacity ? spec.capacity : state.tokens;
  return Math.min(spec.capacity, state.tokens + elapsed * spec.ratePerMs);
}

export function report(tokens: number, spec: BucketSpec): BucketReport {
  const whole = Math.max(0, Math.floor(tokens + EPSILON));
  return { remaining: whole, resetMs: whole >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / spec.ratePerMs - EPSILON)) };
}
