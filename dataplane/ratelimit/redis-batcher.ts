// Coalesces global rate-limit decisions into few Redis round trips, Nagle-like and without a
// timer: a lane with nothing in flight sends at the end of the current event-loop turn
// (setImmediate), together with whatever else arrived in that turn — when idle, a lone decision
// is sent microseconds later; decisions arriving while a lane's round trip is outstanding wait for
// it and then go together. A batch is one script call that decides each of its requests in turn,
// all-or-nothing per request (BATCH_SCRIPT). A lane is one Redis Cluster slot group (the keys'
// hash tag), or everything on a single Redis.
//
// Every decision keeps its own deadline (`timeoutMs` after it was asked), whether it is queued or
// in flight: one timer, armed for the oldest pending decision (a list of the unsettled ones, in
// arrival order), fails those past their deadline.
// A round trip whose decisions have all timed out no longer holds its lane (a stalled or lost
// reply does not stop the lane), and its late reply is dropped.

import type { BackendErrorReason } from './metrics.ts';

/** Sends one batch: `numKeys` keys, then the script's arguments, flat. Resolves with the flat reply. */
export type BatchSender = (numKeys: number, keysThenArgs: string[]) => Promise<number[]>;

export interface BatcherEvents {
  /** A round trip of `lane` answered `answered` live decisions after `ms`. */
  answered(lane: string, ms: number, answered: number): void;
  /**
   * `decisions` decisions of `lane` failed together: one round trip's error, or their deadlines
   * passed in one sweep (one failure of Redis, however many requests it held).
   */
  failed(lane: string, reason: BackendErrorReason, message: string, decisions: number): void;
}

export class BatchFailure extends Error {
  readonly reason: BackendErrorReason;
  constructor(reason: BackendErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Requests per script call, default: bounds one call's time inside Redis (each request is a few hash ops). */
export const DEFAULT_BATCH_LIMIT = 256;
/** Decisions waiting in one lane; beyond it a decision fails at once (bounded memory). */
export const MAX_QUEUED = 8192;
/** A deadline timer fires for every decision within this many ms of its deadline: fewer timers. */
const DEADLINE_SLACK_MS = 1;

class Entry {
  readonly lane: string;
  readonly keys: readonly string[];
  readonly args: readonly string[];
  readonly deadline: number;
  resolve!: (reply: number[]) => void;
  reject!: (err: BatchFailure) => void;
  settled = false;
  /** The round trip carrying it, once sent. */
  batch: Batch | null = null;
  /** Neighbours among the unsettled decisions, in deadline order (= arrival order: one timeout for all). */
  prev: Entry | null = null;
  next: Entry | null = null;
  readonly promise: Promise<number[]>;

  constructor(lane: string, keys: readonly string[], args: readonly string[], deadline: number) {
    this.lane = lane;
    this.keys = keys;
    this.args = args;
    this.deadline = deadline;
    this.promise = new Promise<number[]>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

class Batch {
  readonly lane: Lane;
  readonly entries: Entry[];
  /** Decisions not yet timed out (a reply or error settles the rest at once). */
  pending: number;
  /** Replied, failed or abandoned: no longer holds its lane. */
  done = false;

  constructor(lane: Lane, entries: Entry[]) {
    this.lane = lane;
    this.entries = entries;
    this.pending = entries.length;
  }
}

class Lane {
  readonly name: string;
  queue: Entry[] = [];
  inFlight = 0;
  scheduled = false;
  constructor(name: string) {
    this.name = name;
  }
}

export class RedisBatcher {
  private readonly send: BatchSender;
  private readonly timeoutMs: number;
  private readonly batchLimit: number;
  private readonly events: BatcherEvents;
  private readonly lanes = new Map<string, Lane>();
  private head: Entry | null = null;
  private tail: Entry | null = null;
  private timer: NodeJS.Timeout | null = null;

  /** `batchLimit` 1: every decision is its own script call, sent at once (nothing coalesced). */
  constructor(send: BatchSender, options: { timeoutMs: number; batchLimit?: number; events: BatcherEvents }) {
    this.send = send;
    this.timeoutMs = options.timeoutMs;
    this.batchLimit = Math.max(1, Math.floor(options.batchLimit ?? DEFAULT_BATCH_LIMIT));
    this.events = options.events;
  }

  /** Decisions queued or in flight (for tests). */
  get pending(): number {
    let n = 0;
    for (let e = this.head; e !== null; e = e.next) n++;
    return n;
  }

  /**
   * One request's buckets: `keys`, and per key capacity, refill per µs, enforced ('1') or shadow.
   * Resolves with {enforced admits, shadow would, then per key: whole tokens left, ms to one};
   * rejects with BatchFailure. `lane`: requests of one lane may share a script call.
   */
  take(lane: string, keys: readonly string[], args: readonly string[]): Promise<number[]> {
    let l = this.lanes.get(lane);
    if (l === undefined) {
      l = new Lane(lane);
      this.lanes.set(lane, l);
    }
    const entry = new Entry(lane, keys, args, performance.now() + this.timeoutMs);
    if (l.queue.length >= MAX_QUEUED) {
      const message = `more than ${MAX_QUEUED} decisions waiting for Redis`;
      this.fail(entry, 'unavailable', message);
      this.events.failed(lane, 'unavailable', message, 1);
      return entry.promise;
    }
    if (this.tail === null) this.head = entry;
    else {
      this.tail.next = entry;
      entry.prev = this.tail;
    }
    this.tail = entry;
    if (this.timer === null) this.arm(entry.deadline);
    if (this.batchLimit === 1) {
      this.dispatch(l, [entry]);
    } else {
      l.queue.push(entry);
      if (l.inFlight === 0 && !l.scheduled) this.schedule(l);
    }
    return entry.promise;
  }

  /** Fails everything pending (the store is closing). */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    while (this.head !== null) this.fail(this.head, 'unavailable', 'rate limiter closed');
    this.lanes.clear();
  }

  private dispatch(lane: Lane, entries: Entry[]): void {
    const batch = new Batch(lane, entries);
    lane.inFlight++;
    let numKeys = 0;
    let numArgs = 0;
    for (const e of entries) {
      e.batch = batch;
      numKeys += e.keys.length;
      numArgs += 1 + e.args.length;
    }
    // KEYS: every request's keys in order. ARGV: per request, its key count, then its key args.
    const flat = new Array<string>(numKeys + numArgs);
    let k = 0;
    let a = numKeys;
    for (const e of entries) {
      for (let i = 0; i < e.keys.length; i++) flat[k++] = e.keys[i]!;
      flat[a++] = String(e.keys.length);
      for (let i = 0; i < e.args.length; i++) flat[a++] = e.args[i]!;
    }
    const started = performance.now();
    let sent: Promise<number[]>;
    try {
      sent = this.send(numKeys, flat);
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      (reply) => this.replied(batch, reply, performance.now() - started),
      (err: unknown) => this.errored(batch, err),
    );
  }

  private replied(batch: Batch, reply: number[], ms: number): void {
    if (batch.done) return; // abandoned: its decisions timed out, the reply comes too late
    let offset = 0;
    let answered = 0;
    let short = 0;
    for (const e of batch.entries) {
      const size = 2 + 2 * e.keys.length;
      if (!e.settled) {
        if (reply.length < offset + size) {
          this.fail(e, 'script', `script reply too short: ${reply.length} values`);
          short++;
        } else {
          this.settle(e);
          answered++;
          e.resolve(reply.slice(offset, offset + size));
        }
      }
      offset += size;
    }
    if (answered > 0) this.events.answered(batch.lane.name, ms, answered);
    if (short > 0) this.events.failed(batch.lane.name, 'script', `script reply too short: ${reply.length} values`, short);
    this.finish(batch);
  }

  private errored(batch: Batch, err: unknown): void {
    if (batch.done) return;
    const message = err instanceof Error ? err.message : String(err);
    const reason: BackendErrorReason = /timed out/i.test(message) ? 'timeout' : /ERR|script|NOSCRIPT|WRONGTYPE|CROSSSLOT/.test(message) ? 'script' : 'unavailable';
    let failed = 0;
    for (const e of batch.entries) {
      if (e.settled) continue;
      this.fail(e, reason, message);
      failed++;
    }
    if (failed > 0) this.events.failed(batch.lane.name, reason, message, failed);
    this.finish(batch);
  }

  /** The batch no longer holds its lane: send what queued meanwhile. */
  private finish(batch: Batch): void {
    if (batch.done) return;
    batch.done = true;
    const lane = batch.lane;
    lane.inFlight--;
    if (lane.inFlight > 0) return;
    if (lane.queue.length === 0) {
      if (!lane.scheduled) this.lanes.delete(lane.name); // idle lanes are not kept (names follow configurations)
      return;
    }
    this.flush(lane); // they waited a round trip already
  }

  /** An idle lane sends at the end of this event-loop turn: with what else arrived in the turn. */
  private schedule(lane: Lane): void {
    lane.scheduled = true;
    setImmediate(() => {
      lane.scheduled = false;
      if (lane.inFlight === 0) this.flush(lane);
    });
  }

  /** Sends a lane's queue, at most `batchLimit` decisions per script call. */
  private flush(lane: Lane): void {
    const queue = lane.queue;
    lane.queue = [];
    let chunk: Entry[] = [];
    for (const e of queue) {
      if (e.settled) continue; // timed out while queued
      chunk.push(e);
      if (chunk.length === this.batchLimit) {
        this.dispatch(lane, chunk);
        chunk = [];
      }
    }
    if (chunk.length > 0) this.dispatch(lane, chunk);
    else if (lane.inFlight === 0) this.lanes.delete(lane.name);
  }

  private fail(entry: Entry, reason: BackendErrorReason, message: string): void {
    this.settle(entry);
    entry.reject(new BatchFailure(reason, message));
  }

  /** Out of the deadline list at once: a settled decision is garbage while still young. */
  private settle(entry: Entry): void {
    entry.settled = true;
    const { prev, next } = entry;
    if (prev === null) {
      if (this.head === entry) this.head = next;
    } else prev.next = next;
    if (next === null) {
      if (this.tail === entry) this.tail = prev;
    } else next.prev = prev;
    entry.prev = entry.next = null;
  }

  private arm(at: number): void {
    this.timer = setTimeout(() => this.expire(), Math.max(0, at - performance.now()));
    this.timer.unref();
  }

  /** Fails decisions past their deadline (oldest first), then re-arms for the oldest left. */
  private expire(): void {
    this.timer = null;
    const now = performance.now() + DEADLINE_SLACK_MS;
    // Lanes are released after the sweep, so a queue is not sent with decisions about to expire.
    let given: Batch[] | null = null;
    let expired: Map<string, number> | null = null;
    const message = `no answer within ${this.timeoutMs} ms`;
    while (this.head !== null && this.head.deadline <= now) {
      const e = this.head;
      this.fail(e, 'timeout', message); // unlinks it: the next is the head
      expired ??= new Map();
      expired.set(e.lane, (expired.get(e.lane) ?? 0) + 1);
      const batch = e.batch;
      // A round trip none of whose decisions still waits gives its lane up.
      if (batch !== null && !batch.done && --batch.pending === 0) (given ??= []).push(batch);
    }
    if (this.head !== null) this.arm(this.head.deadline);
    if (expired !== null) for (const [lane, n] of expired) this.events.failed(lane, 'timeout', message, n);
    if (given !== null) for (const batch of given) this.finish(batch);
  }
}
