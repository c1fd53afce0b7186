// The dataplane's side of the snapshot protocol (ir/protocol.ts documents it):
// keeps one stream open to the leading controller, applies the newest version it receives (one
// apply at a time) and acknowledges each apply.
//
// Nothing here ever tears configuration down: when the controller is away the dataplane keeps
// serving what it applied last, and a reconnect that changes nothing applies nothing (`have`).
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { IrDeltaDecoder, type EncodedIR } from '../../ir/delta.ts';
import type { IR } from '../../ir/types.ts';
import {
  ACKS_PATH,
  HEARTBEAT_TIMEOUT_MS,
  MAX_REDIRECTS,
  SNAPSHOTS_PATH,
  isValidName,
  isValidVersion,
  type Ack,
  type ListenerAck,
  type SnapshotMessage,
} from '../../ir/protocol.ts';
import { backoffDelay, type Backoff } from '../../ir/backoff.ts';

export interface ApplyOutcome {
  /** false: the version was rejected as a whole and the previous one keeps serving. */
  ok: boolean;
  listeners: ListenerAck[];
  error?: string;
  /**
   * With `ok: false`: the version may still be served later (workers that apply it after the
   * bounded wait). Resolves with the outcome then — acknowledged again, as served, or as rejected
   * with its reason when it turns out refused (it crashed the workers) — or null when nothing
   * more will be said of it (a newer version came first). With `ok: true` (or a late one served):
   * resolves `ok: false` with `serving` when the version is taken back afterwards (it crashed some
   * workers: they went back to the version served before it), acknowledged again so.
   */
  late?: Promise<ApplyOutcome | null>;
  /** With `ok: false` from `late` after an `ok: true`: the version served again (null: none). */
  serving?: string | null;
}

export interface SnapshotSubscriberOptions {
  /** The controller's base URL (`http(s)://host:port`), usually a Service in front of every replica. */
  url: string;
  token?: string;
  /** This dataplane's name (its pod name): unique among dataplanes. */
  name: string;
  logger: Logger;
  /**
   * Makes `version` the served configuration, or keeps the previous one and says why not. Called
   * one at a time. A throw counts as `{ ok: false, error: message }`.
   */
  apply(version: string, ir: IR): Promise<ApplyOutcome>;
  /** PEM CA certificate(s) to trust for an https `url` (default: the system's). */
  ca?: string;
  /** No byte for this long (at least 3 × the controller's heartbeat): the stream is dead. Default 15 s. */
  heartbeatTimeoutMs?: number;
  /** Reconnect and ack retry delays (defaults 200 ms doubling up to 5 s, jittered). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Longest message line accepted; a longer one ends the stream (default MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
  /** Longest time one message may take to arrive, first byte to newline; longer ends the stream (default MESSAGE_TIMEOUT_MS). */
  messageTimeoutMs?: number;
}

interface StreamOutcome {
  /** A hello was received: the controller answered properly (the backoff starts over). */
  hello: boolean;
  /**
   * The controller misbehaved after its hello: a message could not be read or applied as a whole
   * (not JSON, too long, a delta naming what this stream never sent), or took too long to arrive.
   */
  faulty?: boolean;
  reason: string;
  retryAfterMs?: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const ACK_TIMEOUT_MS = 10_000;
/** One message's bound: ~10x the IR of 50 000 routes (a line is one whole version). */
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
/**
 * One message's time bound, from its first byte to its newline. Every byte resets the heartbeat
 * watchdog, so without it a controller (or a proxy in between) dripping a byte at a time could
 * hold a stream — and the memory of the line so far — for ever. 60 s: the total time Node's HTTP
 * server gives a request's headers (`headersTimeout`) and nginx a client's (`client_header_timeout`),
 * both against such dripping; a full 10 000-route snapshot (~20 MB) needs only ~350 KB/s for it.
 */
export const MESSAGE_TIMEOUT_MS = 60_000;
/** Of an error answer's body, this much is read (for the log); the rest is not waited for. */
const MAX_ERROR_BODY = 4096;

export class SnapshotSubscriber {
  private readonly options: SnapshotSubscriberOptions;
  private readonly logger: Logger;
  private readonly agent: Agent;
  private readonly stopController = new AbortController();
  private readonly backoff: Backoff;
  private applied: string | null = null;
  /** The newest snapshot received and not yet applied (newer ones replace it). */
  private pending: SnapshotMessage | null = null;
  private applying: Promise<void> | null = null;
  /** Applies begun (a late outcome counts only while no other began after its own). */
  private applies = 0;
  /** The ack of the version served now (re-sent to a controller that did not see it). */
  private servingAck: Ack | null = null;
  /** The ack of the version served before it (served again when that one is taken back). */
  private servingBefore: Ack | null = null;
  /** The latest ack queued, and the one still to deliver (null once delivered). */
  private lastAck: Ack | null = null;
  private unsentAck: Ack | null = null;
  private acking: Promise<void> | null = null;
  /** Where acks go: the origin that serves the current stream (the leader), else the configured URL. */
  private ackBase: string;
  private running: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private isConnected = false;

  constructor(options: SnapshotSubscriberOptions) {
    if (!isValidName(options.name)) throw new Error(`dataplane name ${JSON.stringify(options.name)}: expected [A-Za-z0-9._:-], 1 to 253 characters`);
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`controller URL ${options.url}: expected http:// or https://`);
    this.options = options;
    this.logger = options.logger;
    this.ackBase = url.origin;
    this.backoff = { initialMs: options.backoff?.initialMs ?? 200, maxMs: options.backoff?.maxMs ?? 5_000 };
    // Timeouts are ours (the heartbeat watchdog, the ack deadline), not undici's.
    this.agent = new Agent({ headersTimeout: 0, bodyTimeout: 0, ...(options.ca ? { connect: { ca: options.ca } } : {}) });
  }

  start(): void {
    if (this.running || this.stopping) return;
    this.running = this.run();
  }

  /** Stops streaming and acking; resolves once an apply in progress has finished. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopController.abort();
    this.stopping = (async () => {
      await this.running;
      await this.applying;
      await this.acking;
      await this.agent.destroy();
    })();
    return this.stopping;
  }

  /** The version served now (the last successful apply), or null. */
  current(): string | null {
    return this.applied;
  }

  /** A stream to the leading controller is open. */
  connected(): boolean {
    return this.isConnected;
  }

  private get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  // ------------------------------------------------------------------ stream

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const outcome = await this.streamOnce();
      if (this.stopped) break;
      // A controller that says hello and then sends what cannot be applied is not a working
      // stream: the backoff keeps growing (no reconnect loop at the first step's pace).
      if (outcome.hello && outcome.faulty !== true) failures = 0;
      failures++;
      const delay = Math.max(backoffDelay(failures, this.backoff), Math.min(outcome.retryAfterMs ?? 0, this.backoff.maxMs));
      const fields = { controller: this.options.url, reason: outcome.reason, retryInMs: delay, attempt: failures, serving: this.applied };
      // Loud when a working stream breaks, then about once a minute while the controller stays away.
      if ((outcome.hello && outcome.faulty !== true) || failures === 1 || failures % 12 === 0) this.logger.warn(fields, `snapshot stream: ${outcome.reason}; still serving ${this.applied ?? 'nothing'}`);
      else this.logger.debug(fields, 'snapshot stream: retrying');
      await sleep(delay, undefined, { signal: this.stopController.signal }).catch(() => undefined);
    }
  }

  /** One connection: follows redirects, reads messages until the stream ends or fails. Never throws. */
  private async streamOnce(): Promise<StreamOutcome> {
    const watchdog = new AbortController();
    const signal = AbortSignal.any([this.stopController.signal, watchdog.signal]);
    let timeoutMs = this.options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    let silent = false;
    let timer: NodeJS.Timeout | undefined;
    // The message being received: its own deadline (the heartbeat's is reset by every byte).
    const messageTimeoutMs = this.options.messageTimeoutMs ?? MESSAGE_TIMEOUT_MS;
    let slow = null as string | null; // set by the timer (a closure: not narrowed to null)
    let messageTimer: NodeJS.Timeout | undefined;
    const messageStarted = (): void => {
      messageTimer ??= setTimeout(() => {
        slow = `one message took longer than ${messageTimeoutMs} ms to arrive`;
        watchdog.abort(new Error(slow));
      }, messageTimeoutMs);
    };
    const messageEnded = (): void => {
      clearTimeout(messageTimer);
      messageTimer = undefined;
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        watchdog.abort(new Error(`no data from the controller for ${timeoutMs} ms`));
      }, timeoutMs);
    };
    const outcome: StreamOutcome = { hello: false, reason: '' };
    arm();
    try {
      // Versions as deltas against what this stream sent (ir/delta.ts); a controller that does not
      // know the parameter sends snapshots, which are handled as before.
      const query = new URLSearchParams({ name: this.options.name, delta: '1' });
      const decoder = new IrDeltaDecoder();
      // While an apply runs, what is served is about to change: ask for the latest whatever it is.
      if (this.applied !== null && !this.applying) query.set('have', this.applied);
      let url = new URL(`${SNAPSHOTS_PATH}?${query}`, this.options.url);
      for (let hop = 0; ; hop++) {
        const res = await request(url, { method: 'GET', headers: this.headers({ accept: 'application/x-ndjson' }), dispatcher: this.agent, signal });
        if (REDIRECTS.has(res.statusCode)) {
          await res.body.dump();
          const next = this.redirectTarget(url, res.headers.location, hop);
          if (typeof next === 'string') return { ...outcome, reason: next };
          url = next;
          continue;
        }
        if (res.statusCode !== 200) {
          const text = await readSome(res.body);
          const retryAfter = Number(res.headers['retry-after']);
          return { ...outcome, reason: `${url.origin} answered ${res.statusCode}: ${text}`, ...(retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}) };
        }
        this.ackBase = url.origin;
        res.body.setEncoding('utf8');
        const parts: string[] = [];
        let partial = 0; // characters in `parts` (UTF-16 units: at most the bytes they came from)
        const maxMessage = this.options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
        for await (const chunk of res.body as AsyncIterable<string>) {
          arm();
          let start = 0;
          for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
            parts.push(chunk.slice(start, nl));
            start = nl + 1;
            messageEnded();
            const line = parts.join('');
            parts.length = 0;
            partial = 0;
            if (line.length > maxMessage) throw this.malformed(outcome, `a message longer than ${maxMessage} bytes`);
            if (line.trim() === '') continue;
            let timeout: number | null;
            try {
              timeout = this.onLine(line, url.origin, decoder);
            } catch (err) {
              throw this.malformed(outcome, describe(err));
            }
            if (timeout !== null) {
              outcome.hello = true;
              timeoutMs = Math.max(timeoutMs, timeout);
              arm();
            }
          }
          if (start < chunk.length) {
            messageStarted();
            partial += chunk.length - start;
            if (partial > maxMessage) throw this.malformed(outcome, `a message longer than ${maxMessage} bytes`);
            parts.push(chunk.slice(start));
          }
        }
        return { ...outcome, reason: 'the controller ended the stream' };
      }
    } catch (err) {
      const tooSlow = slow;
      if (tooSlow !== null) {
        // Not a working stream, even after its hello: the backoff keeps growing.
        this.logger.warn({ controller: this.options.url, reason: tooSlow }, `snapshot stream: ${tooSlow}; reconnecting`);
        return { ...outcome, faulty: true, reason: tooSlow };
      }
      const reason = silent ? `no data from the controller for ${timeoutMs} ms` : this.stopped ? 'stopped' : describe(err);
      return { ...outcome, reason };
    } finally {
      clearTimeout(timer);
      clearTimeout(messageTimer);
      watchdog.abort();
      this.isConnected = false;
    }
  }

  /** A message that cannot be applied whole: nothing of it is, the stream ends and the next starts with a full snapshot. */
  private malformed(outcome: StreamOutcome, why: string): Error {
    outcome.faulty = true;
    return new Error(`malformed message from the controller (${why}); reconnecting for a full snapshot`);
  }

  /** Handles one message; for a hello, returns the watchdog timeout it implies (else null). */
  private onLine(line: string, origin: string, decoder: IrDeltaDecoder): number | null {
    const message = JSON.parse(line) as { type?: unknown } & Record<string, unknown>; // a broken line breaks the stream: reconnect
    switch (message.type) {
      case 'hello': {
        const version = isValidVersion(message.version) ? message.version : null;
        const heartbeatMs = typeof message.heartbeatMs === 'number' && message.heartbeatMs > 0 ? message.heartbeatMs : 0;
        this.isConnected = true;
        this.logger.info({ controller: origin, server: message.server, version, serving: this.applied }, `connected to the controller at ${origin}`);
        // A controller that restarted, or a new leader, learns what this dataplane serves.
        if (version !== null && version === this.applied && !this.applying && this.servingAck) this.queueAck(this.servingAck);
        return 3 * heartbeatMs;
      }
      case 'snapshot': {
        if (!isValidVersion(message.version) || typeof message.ir !== 'object' || message.ir === null) {
          this.logger.error({ controller: origin }, 'ignoring a malformed snapshot message');
          return null;
        }
        this.pending = message as unknown as SnapshotMessage;
        this.kickApply();
        return null;
      }
      case 'delta': {
        if (!isValidVersion(message.version) || typeof message.ir !== 'object' || message.ir === null) {
          this.logger.error({ controller: origin }, 'ignoring a malformed delta message');
          return null;
        }
        // Throws on a delta naming parts this stream never sent: the stream ends, the next starts full.
        const { http, l4 } = decoder.decode(message.ir as EncodedIR);
        if (l4 === undefined) throw new Error(`delta for version ${message.version} has no l4 part`);
        this.pending = { type: 'snapshot', version: message.version, ir: { version: message.version, http, l4 } };
        this.kickApply();
        return null;
      }
      default:
        return null; // heartbeat, or a message type newer than this dataplane
    }
  }

  private redirectTarget(from: URL, location: string | string[] | undefined, hop: number): URL | string {
    if (typeof location !== 'string' || location === '') return `${from.origin} redirected without a Location`;
    if (hop + 1 > MAX_REDIRECTS) return `more than ${MAX_REDIRECTS} redirects (last to ${location})`;
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      return `${from.origin} redirected to an invalid URL ${JSON.stringify(location)}`;
    }
    if (from.protocol === 'https:' && next.protocol !== 'https:') return `refusing a redirect from https to ${next.protocol} (${next.origin})`;
    if (next.protocol !== 'http:' && next.protocol !== 'https:') return `refusing a redirect to ${next.protocol}`;
    this.logger.debug({ from: from.origin, to: next.origin }, 'following the controller to the leader');
    return next;
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    return { ...extra, ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}) };
  }

  // ------------------------------------------------------------------ apply

  private kickApply(): void {
    if (this.applying || this.stopped) return;
    this.applying = this.applyLoop().finally(() => {
      this.applying = null;
      if (this.pending) this.kickApply(); // arrived after the loop's last look
    });
  }

  private async applyLoop(): Promise<void> {
    while (this.pending && !this.stopped) {
      const snapshot = this.pending;
      this.pending = null;
      if (snapshot.version === this.applied) {
        // Already served (e.g. re-sent after a reconnect during an apply): say so if the last ack said otherwise.
        if (this.servingAck && this.lastAck !== this.servingAck) this.queueAck(this.servingAck);
        continue;
      }
      const started = performance.now();
      let outcome: ApplyOutcome;
      const apply = ++this.applies;
      try {
        outcome = await this.options.apply(snapshot.version, snapshot.ir);
      } catch (err) {
        outcome = { ok: false, listeners: [], error: describe(err) };
      }
      const ms = Math.round(performance.now() - started);
      if (outcome.ok) this.applied = snapshot.version;
      const ack: Ack = {
        name: this.options.name,
        version: snapshot.version,
        ok: outcome.ok,
        listeners: outcome.listeners ?? [],
        ...(outcome.ok ? {} : { error: outcome.error ?? 'rejected' }),
        serving: this.applied,
      };
      if (outcome.ok) {
        this.serving(ack);
        this.logger.info({ version: snapshot.version, ms }, `applied version ${snapshot.version}`);
      } else {
        this.logger.error({ version: snapshot.version, error: ack.error, serving: this.applied, ms }, `version ${snapshot.version} rejected; still serving ${this.applied ?? 'nothing'}`);
      }
      if (outcome.late) void this.servedLate(snapshot.version, outcome.late, apply);
      if (!this.stopped) this.queueAck(ack);
    }
  }

  /**
   * A version rejected for now that is settled later: the controller learns it by a second ack —
   * served (as for an apply), or rejected for good with the reason (it crashed the workers).
   */
  private async servedLate(version: string, late: Promise<ApplyOutcome | null>, apply: number): Promise<void> {
    const outcome = await late.catch(() => null);
    // Not after a newer apply began (the dataplane resolves null then; this does not rely on it).
    if (outcome === null || this.stopped || apply !== this.applies) return;
    if (!outcome.ok) {
      const error = outcome.error ?? 'rejected';
      const takenBack = outcome.serving !== undefined && this.applied === version;
      if (takenBack) {
        // Served, then taken back: the version before it is served again.
        this.applied = outcome.serving ?? null;
        this.servingAck = this.servingBefore?.version === this.applied ? this.servingBefore : null;
      }
      this.logger.error({ version, error, serving: this.applied }, `version ${version} rejected after its ${takenBack ? 'apply (taken back)' : 'late apply'}; still serving ${this.applied ?? 'nothing'}`);
      this.queueAck({ name: this.options.name, version, ok: false, listeners: [], error, serving: this.applied });
      return;
    }
    this.applied = version;
    const ack: Ack = { name: this.options.name, version, ok: true, listeners: outcome.listeners ?? [], serving: version };
    this.serving(ack);
    this.logger.warn({ version }, `version ${version} applied late: now serving it`);
    this.queueAck(ack);
    if (outcome.late) await this.servedLate(version, outcome.late, apply);
  }

  private serving(ack: Ack): void {
    if (this.servingAck?.version !== ack.version) this.servingBefore = this.servingAck;
    this.servingAck = ack;
  }

  // ------------------------------------------------------------------ acks

  private queueAck(ack: Ack): void {
    this.lastAck = ack;
    this.unsentAck = ack;
    this.kickAcks();
  }

  private kickAcks(): void {
    if (this.acking || this.stopped) return;
    this.acking = this.ackLoop().finally(() => {
      this.acking = null;
      if (this.unsentAck) this.kickAcks();
    });
  }

  /** Delivers `unsentAck`, retrying with backoff; a newer ack queued meanwhile replaces it. */
  private async ackLoop(): Promise<void> {
    let failures = 0;
    while (this.unsentAck && !this.stopped) {
      const ack = this.unsentAck;
      try {
        await this.postAck(ack);
        if (this.unsentAck === ack) this.unsentAck = null;
        failures = 0;
      } catch (err) {
        if (this.stopped) return;
        failures++;
        const delay = backoffDelay(failures, this.backoff);
        const fields = { version: ack.version, reason: describe(err), retryInMs: delay, attempt: failures };
        if (failures === 1 || failures % 12 === 0) this.logger.warn(fields, `acknowledgement of ${ack.version} not delivered: ${fields.reason}`);
        await sleep(delay, undefined, { signal: this.stopController.signal }).catch(() => undefined);
      }
    }
  }

  private async postAck(ack: Ack): Promise<void> {
    const body = JSON.stringify(ack);
    const signal = AbortSignal.any([this.stopController.signal, AbortSignal.timeout(ACK_TIMEOUT_MS)]);
    let url = new URL(ACKS_PATH, this.ackBase);
    for (let hop = 0; ; hop++) {
      const res = await request(url, {
        method: 'POST',
        headers: this.headers({ 'content-type': 'application/json' }),
        body,
        dispatcher: this.agent,
        signal,
      });
      if (res.statusCode === 307 || res.statusCode === 308) {
        await res.body.dump();
        const next = this.redirectTarget(url, res.headers.location, hop);
        if (typeof next === 'string') throw new Error(next);
        url = next;
        continue;
      }
      if (res.statusCode >= 200 && res.statusCode < 300) {
        await res.body.dump();
        return;
      }
      const text = await readSome(res.body);
      if (res.statusCode === 400) {
        // Retrying the same body cannot help: a bug on one side. Say so and drop it.
        this.logger.error({ version: ack.version, answer: text }, 'the controller refused an acknowledgement as malformed');
        return;
      }
      throw new Error(`${url.origin} answered ${res.statusCode}: ${text}`);
    }
  }
}

/** The start of a response body, for error messages: at most MAX_ERROR_BODY bytes read, the rest not waited for. */
async function readSome(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_ERROR_BODY) break; // leaving the loop destroys the body
    }
  } catch {
    // what arrived is enough for the message
  }
  body.destroy();
  const text = Buffer.concat(chunks).toString('utf8', 0, Math.min(size, MAX_ERROR_BODY));
  return text.length > 300 ? `${text.slice(0, 300)}…` : text.trim();
}

function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  const message = e?.message ?? String(err);
  return cause && !message.includes(cause) ? `${message} (${cause})` : message;
}
