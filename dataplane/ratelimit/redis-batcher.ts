// Coalesces global rate-limit decisions into few Redis round trips, Nagle-like and without a
// timer: a lane with nothing in flight sends at the end of the current event-loop turn
// (setImmediate), together with whatever else arrived in that turn — when idle, a lone decision
// is sent microseconds later; decisions arriving while a lane's round trip is outstanding wait for
// it and then go together, with those of the turn that reads its reply. A batch is one script call that decides each of its requests in turn,
// all-or-nothing per request (BATCH_SCRIPT). A lane is one Redis Cluster slot group (the keys'
// hash tag), or everything on a single Redis.
//
// Every decision keeps its own deadline (`timeoutMs` after it was asked), whether it is queued or
// in flight: one timer, armed for the oldest pending decision (a list of the unsettled ones, in
// arrival order), fails those past their deadline.
// A round trip whose decisions have all timed out no longer holds its lane (a stalled or lost
// reply does not stop the lane), and its late reply is dropped.

import type { BackendErrorReason } from './metrics.ts';

/**
 * Sends one batch: `numKeys` keys, then the script's arguments, flat. Resolves with the script's
 * reply: one string of numbers separated by commas (BATCH_SCRIPT).
 */
export type BatchSender = (numKeys: number, keysThenArgs: string[]) => Promise<unknown>;

export interface BatcherEvents {
  /** A round trip of `lane` answered `answered` live decisions after `ms`. */
  answered(lane: string, ms: number, answered: number): void;
  /**
   * `decisions` decisions of `lane` failed together: one round trip's error, or their deadlines
   * passed in one sweep (one failure of Redis, however many requests it held).
   */
  failed(lane: string, reason: BackendErrorReason, message: string, decisions: number): void;
}

/** Requests per script call, default: bounds one call's time inside Redis (each request is a few hash ops). */
export const DEFAULT_BATCH_LIMIT = 256;
/** Decisions waiting in one lane; beyond it a decision fails at once (bounded memory). */
export const MAX_QUEUED = 8192;
/** A deadline timer fires for every decision within this many ms of its deadline: fewer timers. */
const DEADLINE_SLACK_MS = 1;

/**
 * One request's decision, as the batcher carries it: the caller's own object (the limiter's
 * per-request state extends it), told its answer by a call, not a promise: no promise, closure or
 * reply copy per decision on the way back.
 */
export abstract class PendingDecision {
  /** Its buckets (Redis keys), in the order of the spec's rules. */
  keys: readonly string[] = [];
  /** ARGV: its rules' `capacity:refill-per-µs:enforced` items, separated by spaces (BATCH_SCRIPT). */
  spec = '';
  lane = '';
  deadline = 0;
  settled = false;
  /** The round trip carrying it, once sent. */
  batch: Batch | null = null;
  /** Neighbours among the unsettled decisions, in deadline order (= arrival order: one timeout for all). */
  prev: PendingDecision | null = null;
  next: PendingDecision | null = null;

  /**
   * Redis answered: `reply[offset]` is the enforced (bit 1) and shadow (bit 2) verdict, then per
   * key: whole tokens left, ms until one whole token. `reply` is the batch's, shared: read, not kept.
   */
  abstract decided(reply: readonly number[], offset: number): void;
  /** Redis did not answer it (reason: timeout, unavailable, script): the failure mode decides. */
  abstract failed(reason: BackendErrorReason): void;
}

class Batch {
  readonly lane: Lane;
  readonly entries: PendingDecision[];
  /** Decisions not yet timed out (a reply or error settles the rest at once). */
  pending: number;
  /** Replied, failed or abandoned: no longer holds its lane. */
  done = false;

  constructor(lane: Lane, entries: PendingDecision[]) {
    this.lane = lane;
    this.entries = entries;
    this.pending = entries.length;
  }
}

class Lane {
  readonly name: string;
  queue: PendingDecision[] = [];
  inFlight = 0;
  scheduled = false;
  constructor(name: string) {
    this.name = name;
  }
}

/** Digits a reply's number may have: beyond 15 a double is no longer exact (the script's are far smaller). */
const MAX_DIGITS = 15;

/**
 * The numbers of a reply string `1,99,0,3,98,0`, into `out` (reused); false when it is not such a
 * string (a non-string, an empty item, a sign, a non-digit, a number of more than 15 digits).
 */
export function parseReply(reply: unknown, out: number[]): boolean {
  out.length = 0;
  if (typeof reply !== 'string') return false;
  let value = 0;
  let digits = 0;
  for (let i = 0; i < reply.length; i++) {
    const c = reply.charCodeAt(i);
    if (c === 44) {
      if (digits === 0) return false;
      out.push(value);
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (++digits > MAX_DIGITS) return false;
      value = value * 10 + (c - 48);
    } else return false;
  }
  if (digits > 0) out.push(value);
  else if (reply.length > 0) return false;
  return true;
}

/**
 * Why a parsed reply does not answer `entries` (null: it does): it must hold exactly their values
 * (a reply of another length is not this call's: no decision of it is trusted), each verdict 0-3.
 */
export function replyMismatch(numbers: readonly number[], entries: readonly PendingDecision[]): string | null {
  let offset = 0;
  for (const e of entries) offset += 1 + 2 * e.keys.length;
  if (offset !== numbers.length) return `script reply has ${numbers.length} values, ${offset} expected`;
  offset = 0;
  for (const e of entries) {
    if (numbers[offset]! > 3) return `script reply has verdict ${numbers[offset]} at ${offset}`;
    offset += 1 + 2 * e.keys.length;
  }
  return null;
}

export class RedisBatcher {
  private readonly send: BatchSender;
  private readonly timeoutMs: number;
  private readonly batchLimit: number;
  private readonly events: BatcherEvents;
  private readonly lanes = new Map<string, Lane>();
  private head: PendingDecision | null = null;
  private tail: PendingDecision | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** One reply's numbers: replies are read one at a time, synchronously. */
  private readonly numbers: number[] = [];

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
   * Queues one request's decision (its `keys` and `spec` set); it is told its answer or failure
   * later, never synchronously except for a full queue. `lane`: requests of one lane may share a script call.
   */
  take(lane: string, entry: PendingDecision): void {
    let l = this.lanes.get(lane);
    if (l === undefined) {
      l = new Lane(lane);
      this.lanes.set(lane, l);
    }
    entry.lane = lane;
    entry.deadline = performance.now() + this.timeoutMs;
    if (l.queue.length >= MAX_QUEUED) {
      const message = `more than ${MAX_QUEUED} decisions waiting for Redis`;
      this.events.failed(lane, 'unavailable', message, 1);
      this.fail(entry, 'unavailable');
      return;
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
  }

  /** Fails everything pending (the store is closing). */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    while (this.head !== null) this.fail(this.head, 'unavailable');
    this.lanes.clear();
  }

  private dispatch(lane: Lane, entries: PendingDecision[]): void {
    const batch = new Batch(lane, entries);
    lane.inFlight++;
    let numKeys = 0;
    for (const e of entries) {
      e.batch = batch;
      numKeys += e.keys.length;
    }
    // KEYS: every request's keys in order. ARGV: per request, its spec (its key count is the spec's item count).
    const flat = new Array<string>(numKeys + entries.length);
    let k = 0;
    let a = numKeys;
    for (const e of entries) {
      const keys = e.keys;
      for (let i = 0; i < keys.length; i++) flat[k++] = keys[i]!;
      flat[a++] = e.spec;
    }
    const started = performance.now();
    let sent: Promise<unknown>;
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

  private replied(batch: Batch, reply: unknown, ms: number): void {
    if (batch.done) return; // abandoned: its decisions timed out, the reply comes too late
    const numbers = this.numbers;
    const wrong = !parseReply(reply, numbers) ? 'script reply not a string of numbers' : replyMismatch(numbers, batch.entries);
    // A decision whose deadline passed while the reply was on its way (the sweep not yet run) is a timeout too.
    const now = performance.now();
    let offset = 0;
    let answered = 0;
    let failed = 0;
    let late = 0;
    try {
      for (const e of batch.entries) {
        if (!e.settled) {
          if (wrong !== null) {
            this.fail(e, 'script');
            failed++;
          } else if (e.deadline <= now) {
            this.fail(e, 'timeout');
            late++;
          } else {
            this.settle(e);
            answered++;
            e.decided(numbers, offset);
          }
        }
        offset += 1 + 2 * e.keys.length;
      }
    } finally {
      // Even if a decision's own code threw: the call's outcome is counted and the lane released.
      if (answered > 0) this.events.answered(batch.lane.name, ms, answered);
      if (failed > 0) this.events.failed(batch.lane.name, 'script', wrong!, failed);
      if (late > 0) this.events.failed(batch.lane.name, 'timeout', `answered after ${this.timeoutMs} ms`, late);
      this.finish(batch);
    }
  }

  private errored(batch: Batch, err: unknown): void {
    if (batch.done) return;
    const message = err instanceof Error ? err.message : String(err);
    const reason: BackendErrorReason = /timed out/i.test(message) ? 'timeout' : /ERR|script|NOSCRIPT|WRONGTYPE|CROSSSLOT/.test(message) ? 'script' : 'unavailable';
    const failing: PendingDecision[] = [];
    for (const e of batch.entries) if (!e.settled) failing.push(e);
    // The store hears of the failure first (its breaker, its metrics), then each decision its mode.
    if (failing.length > 0) this.events.failed(batch.lane.name, reason, message, failing.length);
    for (const e of failing) this.fail(e, reason);
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
    // Not at once: a reply is read amid the turn's other I/O, and the requests read after it in
    // the same turn join this call (one call per lane and turn, not a small one and then the rest
    // a round trip later). Those queued wait at most the rest of the turn.
    if (!lane.scheduled) this.schedule(lane);
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
    let chunk: PendingDecision[] = [];
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

  private fail(entry: PendingDecision, reason: BackendErrorReason): void {
    this.settle(entry);
    entry.failed(reason);
  }

  /** Out of the deadline list at once: a settled decision is garbage while still young. */
  private settle(entry: PendingDecision): void {
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
    let expired: PendingDecision[] | null = null;
    while (this.head !== null && this.head.deadline <= now) {
      const e = this.head;
      this.settle(e); // unlinks it: the next is the head
      (expired ??= []).push(e);
      const batch = e.batch;
      // A round trip none of whose decisions still waits gives its lane up.
      if (batch !== null && !batch.done && --batch.pending === 0) (given ??= []).push(batch);
    }
    if (this.head !== null) this.arm(this.head.deadline);
    if (expired !== null) {
      // The store hears of the failures first (per lane: one failure of Redis), then each decision its mode.
      const message = `no answer within ${this.timeoutMs} ms`;
      const perLane = new Map<string, number>();
      for (const e of expired) perLane.set(e.lane, (perLane.get(e.lane) ?? 0) + 1);
      for (const [lane, n] of perLane) this.events.failed(lane, 'timeout', message, n);
      for (const e of expired) e.failed('timeout');
    }
    if (given !== null) for (const batch of given) this.finish(batch);
  }
}
