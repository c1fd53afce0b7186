// Token buckets in shared memory, for worker threads that must enforce one local limit together
// (`--workers N`): every worker maps the same SharedArrayBuffer, and a decision takes a spin lock
// (Atomics) around its reads and writes, so a limit of 100 per minute admits 100 across all
// workers, and a multi-bucket decision stays all-or-nothing exactly as in LocalBuckets.
//
// The table is fixed-size, open-addressed: a key's 53-bit hash picks a window of WINDOW slots;
// a new key takes an empty slot of its window or, when it has none, the one touched longest ago
// (a bucket idle for capacity / rate is full again, so evicting it loses nothing — the same bound
// as LocalBuckets' LRU: only churn can forget a partly drained bucket, which then admits more,
// never fewer). Slots are never deleted, so a lookup scans its window without tombstones.
//
// Clocks: `now` must be one monotonic base for every thread (performance.now() counts from each
// thread's own start); sharedClock below is process-wide.

import { EPSILON, report, type BucketItem, type Buckets, type BucketSpec } from './token-bucket.ts';

/** Slots a key may occupy, starting at its hash. */
const WINDOW = 8;
/** Float64 fields per slot: hash (0 = empty), tokens, at (ms), last touch (for eviction). */
const FIELDS = 4;
const HASH = 0;
const TOKENS = 1;
const AT = 2;
const TOUCHED = 3;
/** Int32 header: the lock word and the occupied-slot count. */
const LOCK = 0;
const COUNT = 1;
const HEADER_BYTES = 8;

/** Milliseconds on the process's monotonic clock: the same base in every worker thread. */
export function sharedClock(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

/** The memory for `maxKeys` buckets: create once in the primary, pass to every worker. */
export function sharedBucketMemory(maxKeys: number): SharedArrayBuffer {
  if (!(Number.isInteger(maxKeys) && maxKeys > 0)) throw new Error(`maxKeys ${maxKeys}: a whole number above 0`);
  return new SharedArrayBuffer(HEADER_BYTES + slotCount(maxKeys) * FIELDS * 8);
}

/** Twice the keys (load factor ½ keeps windows mostly free), a power of two, at least a window. */
function slotCount(maxKeys: number): number {
  let n = WINDOW;
  while (n < maxKeys * 2) n *= 2;
  return n;
}

export class SharedBuckets implements Buckets {
  private readonly header: Int32Array;
  private readonly slots: Float64Array;
  private readonly mask: number;
  /** Hashes of recently seen keys (bounded): the limiter reuses its key strings. */
  private readonly hashes = new Map<string, number>();
  /** Scratch: the slot of each item of a decision. */
  private indexes: number[] = [];

  constructor(memory: SharedArrayBuffer) {
    this.header = new Int32Array(memory, 0, 2);
    this.slots = new Float64Array(memory, HEADER_BYTES);
    const n = this.slots.length / FIELDS;
    if (!(n >= WINDOW && (n & (n - 1)) === 0)) throw new Error('shared bucket memory: not made by sharedBucketMemory');
    this.mask = n - 1;
  }

  get size(): number {
    return Atomics.load(this.header, COUNT);
  }

  peek(key: string, spec: BucketSpec, now: number): number {
    this.lock();
    try {
      const slot = this.find(this.hash(key));
      return slot < 0 ? spec.capacity : refill(this.slots, slot, spec, now);
    } finally {
      this.unlock();
    }
  }

  /** As LocalBuckets.takeAll, under the lock: no other worker decides between the check and the take. */
  takeAll(items: readonly BucketItem[], now: number): boolean {
    const n = items.length;
    const indexes = this.indexes;
    indexes.length = n;
    const s = this.slots;
    let allowed = true;
    let shadowAllowed = true;
    this.lock();
    try {
      for (let i = 0; i < n; i++) {
        const item = items[i];
        const slot = this.touch(this.hash(item.key), item.spec, now, indexes, i);
        indexes[i] = slot;
        if (s[slot + TOKENS] < 1 - EPSILON) {
          if (item.enforced) allowed = false;
          else shadowAllowed = false;
        }
      }
      for (let i = 0; i < n; i++) {
        const item = items[i];
        const slot = indexes[i];
        const take = allowed && (item.enforced || shadowAllowed);
        if (take) s[slot + TOKENS] = Math.max(0, s[slot + TOKENS] - 1);
        item.taken = take;
        item.report = report(s[slot + TOKENS], item.spec);
        item.lacked = !take && item.report.remaining < 1;
      }
    } finally {
      this.unlock();
    }
    return allowed;
  }

  refund(key: string, spec: BucketSpec, now: number): void {
    this.lock();
    try {
      const slot = this.find(this.hash(key));
      if (slot < 0) return; // evicted meanwhile: full again for our purposes
      this.slots[slot + TOKENS] = Math.min(spec.capacity, refill(this.slots, slot, spec, now) + 1);
      this.slots[slot + AT] = now;
    } finally {
      this.unlock();
    }
  }

  /** The slot offset holding `hash`, or -1. Under the lock. */
  private find(hash: number): number {
    const s = this.slots;
    const start = hash & this.mask;
    for (let w = 0; w < WINDOW; w++) {
      const slot = ((start + w) & this.mask) * FIELDS;
      if (s[slot + HASH] === hash) return slot;
    }
    return -1;
  }

  /**
   * The bucket's slot, refilled to `now`, created full when missing. A new key never evicts a
   * slot an earlier item of the same decision holds (`held[0..upto)`). Under the lock.
   */
  private touch(hash: number, spec: BucketSpec, now: number, held: readonly number[], upto: number): number {
    const s = this.slots;
    const found = this.find(hash);
    if (found >= 0) {
      s[found + TOKENS] = refill(s, found, spec, now);
      s[found + AT] = now;
      s[found + TOUCHED] = now;
      return found;
    }
    const start = hash & this.mask;
    let victim = -1;
    for (let w = 0; w < WINDOW; w++) {
      const slot = ((start + w) & this.mask) * FIELDS;
      if (s[slot + HASH] === 0) {
        victim = slot;
        Atomics.add(this.header, COUNT, 1);
        break;
      }
      if (heldBy(held, upto, slot)) continue;
      if (victim < 0 || s[slot + TOUCHED] < s[victim + TOUCHED]) victim = slot;
    }
    // WINDOW > items of one decision is not guaranteed (64 rules), but a full window of held slots is: the first one is shared then.
    if (victim < 0) victim = start * FIELDS;
    s[victim + HASH] = hash;
    s[victim + TOKENS] = spec.capacity;
    s[victim + AT] = now;
    s[victim + TOUCHED] = now;
    return victim;
  }

  /** cyrb53: a 53-bit hash, exact in a Float64 slot; 0 is kept for "empty". */
  private hash(key: string): number {
    let h = this.hashes.get(key);
    if (h !== undefined) return h;
    let h1 = 0xdeadbeef;
    let h2 = 0x41c6ce57;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    h = 4294967296 * (2097151 & h2) + (h1 >>> 0);
    if (h === 0) h = 1;
    if (this.hashes.size >= 4096) this.hashes.clear();
    this.hashes.set(key, h);
    return h;
  }

  /**
   * A spin lock: the critical sections are a few slot reads and writes, shorter than parking a
   * thread. After many spins (a worker descheduled while holding it) wait in 1 ms naps.
   */
  private lock(): void {
    const header = this.header;
    let spins = 0;
    while (Atomics.compareExchange(header, LOCK, 0, 1) !== 0) {
      if (++spins > 1000) Atomics.wait(header, LOCK, 1, 1);
    }
  }

  private unlock(): void {
    Atomics.store(this.header, LOCK, 0);
    Atomics.notify(this.header, LOCK, 1);
  }
}

function heldBy(held: readonly number[], upto: number, slot: number): boolean {
  for (let i = 0; i < upto; i++) if (held[i] === slot) return true;
  return false;
}

function refill(s: Float64Array, slot: number, spec: BucketSpec, now: number): number {
  const tokens = s[slot + TOKENS];
  const elapsed = now - s[slot + AT];
  if (elapsed <= 0) return tokens > spec.capacity ? spec.capacity : tokens;
  return Math.min(spec.capacity, tokens + elapsed * spec.ratePerMs);
}
