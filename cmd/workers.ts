// `--workers N`: N worker threads (cmd/worker-thread.ts, started by cmd/worker-boot.js) serve the
// same listeners, each binding its own socket per port with SO_REUSEPORT, so the kernel spreads
// new connections over them and no thread hands connections to another. The primary keeps
// everything that is one per process — translation or the snapshot subscription, the admin API,
// the eBPF agent and the access log — and here: every configuration version goes to every worker
// (a version is applied when all have applied it), Redis settings likewise, metrics are collected
// from each and summed (WorkerMetricsRegistry), request flows stay in each worker's ring until
// read (WorkerFlows), and a worker that dies is replaced and given the current version.
//
// Why threads with SO_REUSEPORT rather than processes behind a primary that accepts and hands
// sockets out (node:cluster's round robin): local rate limits must be exact across workers, which
// threads get from one SharedArrayBuffer (dataplane/ratelimit/shared-buckets.ts) and processes
// could only get by a round trip to the primary per decision; and handing out costs the primary
// an accept plus an IPC send per connection (measured: README "Workers").
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { AggregatorRegistry, Counter, Gauge, Registry, type Metric, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { backoffDelay } from '../ir/backoff.ts';
import type { Flow, FlowFilter } from '../ir/flow.ts';
import type { FlowBuffer } from '../dataplane/flows/flow-buffer.ts';
import type { HttpIR, L4IR } from '../ir/types.ts';
import { DRAIN_TIMEOUT_MS, type ApplyResult, type ListenerResult } from '../dataplane/dataplane.ts';
import { releaseWorkerConnections, sharedConnectionMemory, type FrontDoorLimits } from '../dataplane/front-door.ts';
import type { RedisSettings } from '../dataplane/ratelimit/limiter.ts';
import { IrDeltaEncoder } from '../ir/delta.ts';
import { sharedBucketMemory } from '../dataplane/ratelimit/shared-buckets.ts';
import { newSessionKey } from '../dataplane/upstream/session.ts';
import { MALFORMED_WORKER_MESSAGE, VERSION_CRASHED, VERSION_LATE, VERSION_REJECTED, readFromWorker, type FromWorker } from './worker-messages.ts';

export type { FromWorker } from './worker-messages.ts';

export interface WorkerInit {
  index: number;
  logLevel: string;
  portOffset: number;
  redirectPortOffset: number;
  frontDoor?: FrontDoorLimits;
  /**
   * Null: request flows off. Each worker keeps the latest `bufferSize` of its own and sends them to
   * the primary as they come only while `relay` is on (someone follows).
   */
  flows: { sampleRate: number; bufferSize: number; relay?: boolean } | null;
  /**
   * The access log (AccessLog's arguments): each worker writes its forwarded requests' lines itself
   * (appending to the file, or to the process's stdout); the primary writes drops and audits.
   * Absent: as without --access-log (stdout, for the Gateways that ask for it).
   */
  accessLog?: { path: string; fields: readonly string[]; onByDefault: boolean };
  rateLimit: { redisTimeoutMs: number; replicas: number; maxLocalKeys: number };
  redis: RedisSettings | null;
  buckets: { local: SharedArrayBuffer; fallback: SharedArrayBuffer };
  /** The process-wide connection count (--max-connections bounds all workers together). */
  connections: SharedArrayBuffer;
  /** TLS session ticket keys (48 bytes), one set for all workers: a client resumes whichever worker it reaches. */
  ticketKeys: Uint8Array;
  /** The process's session persistence key (arrives as a Uint8Array: workerData is structured-cloned); the pool makes one when absent. */
  sessionKey?: Uint8Array;
}

export type ToWorker =
  /**
   * `ir`: a delta against the version before (ir/delta.ts), full for a new worker, as JSON text:
   * made once for every worker, a string is copied whole by postMessage (~10 ms for the 20 MB of a
   * full 10 000-route version, against ~300-500 ms to structured-clone its objects, per worker, on
   * the primary's thread), and each worker parses its copy itself.
   */
  | { type: 'apply'; id: number; version: string; ir: string }
  | { type: 'redis'; id: number; settings: RedisSettings | null }
  | { type: 'metrics'; id: number }
  | { type: 'read-flows'; id: number; filter: FlowFilter; last: number | undefined }
  | { type: 'relay-flows'; id: number; on: boolean }
  | { type: 'close'; id: number };

/** The answers a request may get (besides `failed`). */
const ANSWERS: Record<ToWorker['type'], FromWorker['type']> = { apply: 'applied', redis: 'done', metrics: 'metrics', 'read-flows': 'flows-read', 'relay-flows': 'done', close: 'done' };

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** Restarts of a worker that keeps dying wait longer each time (a worker that lived this long starts the count afresh). */
const RESTART_BACKOFF = { initialMs: 100, maxMs: 5_000 };
const STABLE_AFTER_MS = 10_000;
/** A worker gets this long beyond the drain timeout to finish closing before it is terminated. */
const CLOSE_GRACE_MS = 2_000;
/**
 * Longest wait for a worker: to acknowledge a version, and to answer anything at all (it is asked
 * for metrics every second). One that has not acknowledged a version by then (its thread stuck, or
 * a failed apply) while another worker applied it is ended and replaced (the replacement starts on
 * the version, in full), so that the workers never serve different versions for longer; one that
 * answers nothing for as long is ended and replaced too (its socket would keep taking its share of
 * new connections and never serve them): what Envoy's watchdog does with a stuck worker thread
 * (its kill_timeout). 30 s is ~10x the slowest first version measured (10 000 routes to 2 workers:
 * 2.8-4.4 s, README "Route scale"); when no worker applied a version in time the version itself is
 * slow, and none is ended for it.
 */
export const WORKER_TIMEOUT_MS = 30_000;
/** The watchdog gives every worker a new window when it itself ran this late (the primary's thread was busy: answers wait unread). */
const WATCHDOG_LATE_MS = 5_000;
/** A worker that does not answer a metrics request within this is left out of that scrape. */
const METRICS_TIMEOUT_MS = 2_000;
/**
 * The primary reads every worker's metrics this often besides scrapes, so that what a worker that
 * dies had counted is kept (all but its last second at most) and totals never go back.
 */
const METRICS_REFRESH_MS = 1_000;

/**
 * How workers' gauges combine (prom-client sums by default, right for counts such as open
 * connections): a listener is up only when every worker bound it, a state flag is on when any
 * worker has it, and shared or identical values are taken once.
 */
const GAUGE_AGGREGATORS: Record<string, 'min' | 'max' | 'first'> = {
  sluice_listener_up: 'min',
  sluice_config_version_info: 'max',
  sluice_load_shedding: 'max',
  sluice_ratelimit_fallback_active: 'max',
  // The buckets are shared: every worker reports the same table.
  sluice_ratelimit_tracked_keys: 'first',
};

/**
 * `auto`: the CPUs this process may run on — the scheduler affinity (os.availableParallelism)
 * capped by the cgroup v2 CPU quota (cpu.max, rounded up), as Envoy's --concurrency and Go's
 * GOMAXPROCS (1.25) read them; at least 1.
 */
export function autoWorkers(readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): number {
  const affinity = availableParallelism();
  const quota = cgroupCpuQuota(readFile);
  return Math.max(1, quota === null ? affinity : Math.min(affinity, Math.ceil(quota)));
}

/** CPUs the cgroup v2 quota allows (quota / period), or null when unlimited or unknown. */
export function cgroupCpuQuota(readFile: (path: string) => string): number | null {
  try {
    const line = readFile('/proc/self/cgroup').split('\n').find((l) => l.startsWith('0::'));
    if (line === undefined) return null;
    // The tightest quota on the way up counts (a parent's limit binds its children).
    let best: number | null = null;
    for (let dir = line.slice(3); ; dir = dir.slice(0, dir.lastIndexOf('/'))) {
      const quota = readCpuMax(readFile, `/sys/fs/cgroup${dir === '/' ? '' : dir}/cpu.max`);
      if (quota !== null && (best === null || quota < best)) best = quota;
      if (dir === '' || dir === '/') break;
    }
    return best;
  } catch {
    return null;
  }
}

function readCpuMax(readFile: (path: string) => string, path: string): number | null {
  let text: string;
  try {
    text = readFile(path);
  } catch {
    return null;
  }
  const [max, period] = text.trim().split(/\s+/);
  const q = Number(max);
  const p = Number(period);
  return max === 'max' || !(q > 0 && p > 0) ? null : q / p;
}

/** `--workers` value: a count, or `auto`; a string is a usage error. */
export function parseWorkers(value: string): number | string {
  if (value === 'auto') return autoWorkers();
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 1024 ? n : `--workers ${value}: expected auto or a whole number from 1 to 1024`;
}

/**
 * A version whose workers end this many times while they apply it — crash, exit, or stuck until the
 * watchdog ends them — within WORKER_CRASH_WINDOW_MS is rejected, counted over every worker of the
 * pool: a death counts until that worker (its replacement) acknowledges the version, whatever the
 * others do — a version that ends only worker 1, each time it is started on it, is as bad as one
 * that ends them all (what differs between workers: when a request came, a full version or a delta,
 * memory). Rejected, it is all or nothing as one process's configuration is: every worker goes back
 * to the version served before it (those that applied it meanwhile too), replacements start there.
 * One death proves nothing of the version (a request that crashed the thread, memory pressure from
 * elsewhere), and with N workers the first round alone ends N of them at once; a replacement that
 * dies on it too makes it the version's doing. What the alternatives do: Envoy refuses an xDS update
 * it cannot apply and keeps the previous one (a crash there is the whole process), nginx keeps its
 * old workers when the new configuration fails to load, and systemd stops restarting a unit after
 * StartLimitBurst (5) failures in 10 s.
 */
export const WORKER_CRASH_LIMIT = 3;
/**
 * 120 s: a crashing version gets its deaths within a second or two (the restart backoff starts at
 * 100 ms); one whose compile never ends is ended by the watchdog, 30 s a round, so 2 workers take
 * ~60 s and 1 left of several ~90 s. Deaths further apart are not a loop.
 */
export const WORKER_CRASH_WINDOW_MS = 120_000;
/** Versions rejected for ending their workers that are remembered (applied again, refused at once, not crashed again). */
const MAX_CRASHED_VERSIONS = 16;

/** Counted by the pool per version, not summed from the workers (each counts every version it applies). */
const CONFIG_APPLIES = 'sluice_config_applies_total';

/** Versions sent to a worker and not acknowledged yet that are remembered (a late acknowledgement must name one). */
const MAX_UNACKNOWLEDGED = 64;

interface Slot {
  index: number;
  worker: Worker;
  startedAt: number;
  /** Requests waiting for their answer (`answer`: the type that answers them, besides `failed`). */
  pending: Map<number, { answer: FromWorker['type']; resolve(message: FromWorker): void; reject(error: Error): void }>;
  /** Versions sent by request id, until acknowledged (also after the wait for them timed out). */
  unacknowledged: Map<number, string>;
  /** The last version this worker acknowledged (null before its first: it serves nothing yet), the request that sent it, and its result. */
  version: string | null;
  versionId: number;
  result: ApplyResult | null;
  /** When it last sent anything (performance.now(); its start before that). */
  heardAt: number;
  /** A version it failed after the wait for it gave up (a late refusal or error): it will not serve it. */
  failedLate?: string;
  /** It did not answer the last metrics request (its last sample stands in; logged once until it answers again). */
  metricsMissed?: boolean;
  /** Why the pool ended it (counted as the restart's reason instead of error/exit). */
  ended?: 'apply_timeout' | 'apply_failed' | 'unresponsive' | 'malformed_message' | 'version_rejected';
}

/**
 * Thrown by WorkerPool.apply when no worker acknowledged the version within the bound, and none
 * failed it: the workers may still apply it (a slow version), or their replacements will (the
 * watchdog ends a stuck one; a replacement starts on the newest version). `settled` resolves with
 * the result once every worker serves it — the pool's `version` is then this one —, with the
 * VersionRejected when it is rejected meanwhile (it ended its replacements too: SLU_VERSION_CRASHED),
 * or with null when a newer version is applied first, or the pool closes. `late`: the result, or
 * null for either of the last two.
 */
export class VersionLate extends Error {
  readonly code = VERSION_LATE;
  /** The message without its code (a problem line puts the code first itself). */
  readonly detail: string;
  readonly settled: Promise<ApplyResult | VersionRejected | null>;
  readonly late: Promise<ApplyResult | null>;

  constructor(detail: string, settled: Promise<ApplyResult | VersionRejected | null>) {
    super(`${VERSION_LATE} ${detail}`);
    this.detail = detail;
    this.settled = settled;
    this.late = settled.then((result) => (result instanceof VersionRejected ? null : result));
  }
}

/**
 * A version refused as a whole — by every worker's dataplane (a compile error: `code`
 * SLU_VERSION_REJECTED), by the one process's, or for ending its workers WORKER_CRASH_LIMIT times in
 * a row (SLU_VERSION_CRASHED). The last good version keeps serving, and is the one a replacement
 * worker starts on; a newer version is still tried.
 */
export class VersionRejected extends Error {
  readonly code: typeof VERSION_REJECTED | typeof VERSION_CRASHED;
  /** The message without its code (a problem line puts the code first itself). */
  readonly detail: string;

  constructor(code: VersionRejected['code'], detail: string) {
    super(`${code} ${detail}`);
    this.code = code;
    this.detail = detail;
  }
}

/** A version and its IR, as sent to the workers. */
interface Served {
  version: string;
  http: HttpIR;
  l4: L4IR | undefined;
}

/** One worker's state, as /api/config and /readyz show it. */
export interface WorkerVersion {
  worker: number;
  /** The version it serves; null while it starts (or is replaced) and serves nothing. */
  version: string | null;
}

export interface WorkerPoolOptions {
  count: number;
  init: Omit<WorkerInit, 'index' | 'buckets' | 'connections' | 'redis' | 'ticketKeys'>;
  logger: Logger;
  /** The primary's registry: worker metrics are summed into it, and the pool's own are registered there. */
  registry: WorkerMetricsRegistry;
  /** Request flows the workers recorded, in batches, while relayFlows(true). */
  onFlows(flows: Flow[]): void;
  /** WORKER_TIMEOUT_MS unless given (tests): the wait for a version's acknowledgement and other answers. */
  timeoutMs?: number;
  /** How long a worker may answer nothing before it is ended; `timeoutMs` unless given (tests). */
  watchdogMs?: number;
  /**
   * A version apply() returned as applied was rejected afterwards (it ended workers
   * WORKER_CRASH_LIMIT times: SLU_VERSION_CRASHED): every worker is being put back on `serving`,
   * the version served before it (null: none was; its workers are ended, replacements serve nothing).
   */
  onTakenBack?(rejected: VersionRejected, serving: string | null): void;
}

/** The Dataplane's surface (apply, version, close) over N worker threads. */
export class WorkerPool {
  private readonly options: WorkerPoolOptions;
  private readonly logger: Logger;
  private readonly slots: (Slot | null)[];
  private readonly buckets: WorkerInit['buckets'];
  private readonly connections: SharedArrayBuffer;
  private readonly ticketKeys: Uint8Array;
  private readonly failures: number[];
  private readonly restarts: Counter<'reason'>;
  private readonly applyFailures: Counter<'worker' | 'reason'>;
  private readonly timeoutMs: number;
  private readonly watchdogMs: number;
  /** When the watchdog last looked (performance.now()). */
  private watchedAt = performance.now();
  /** The newest version sent (a replacement starts on it); the last good one again once it is rejected. */
  private current: Served | null = null;
  /** The version served (null before the first): what serves when a newer one is rejected. */
  private good: Served | null = null;
  /**
   * The version served before `good` (another one: `good` sent again leaves it), what every worker
   * goes back to when `good` is rejected after it was served — never the rejected version itself.
   */
  private before: Served | null = null;
  /**
   * Deaths of workers while they applied `version` (performance.now()), by worker index: a worker's
   * are forgotten once it (its replacement) acknowledges the version; all go when it is rejected.
   */
  private deaths: { version: string; at: Map<number, number[]> } | null = null;
  /** Versions rejected for ending their workers (newest last). */
  private readonly crashed: string[] = [];
  private readonly rejections: Counter<'reason'>;
  /** The version apply() gave up waiting for (VersionLate), until every worker serves it, it is rejected, or a newer one comes. */
  private late: { version: string; settle(result: ApplyResult | VersionRejected | null): void } | null = null;
  /** sluice_config_applies_total, counted here once per version (the workers' own, one per worker, are left out). */
  private readonly applies: Counter<'result'>;
  /** Versions go to workers as deltas: only what changed is cloned, and the workers' compilers reuse the rest. */
  private readonly encoder = new IrDeltaEncoder();
  private redis: RedisSettings | null = null;
  private relay = false;
  private applied: string | null = null;
  private nextId = 1;
  /** Every worker's (and every replacement's): a token one worker hands out is honoured by all. */
  private readonly sessionKey: Uint8Array;
  private closing = false;
  /** Each live worker's metrics at the last collection. */
  private readonly lastMetrics = new Map<Slot, MetricsJson>();
  /** Counters and histograms of the workers that died, summed (their last collection). */
  private retired: MetricsJson = [];
  private readonly refresh: NodeJS.Timeout;

  constructor(options: WorkerPoolOptions) {
    this.options = options;
    this.logger = options.logger;
    this.sessionKey = options.init.sessionKey ?? newSessionKey();
    const keys = options.init.rateLimit.maxLocalKeys;
    this.buckets = { local: sharedBucketMemory(keys), fallback: sharedBucketMemory(keys) };
    this.connections = sharedConnectionMemory(options.count);
    this.ticketKeys = randomBytes(48);
    this.failures = new Array<number>(options.count).fill(0);
    this.slots = new Array<Slot | null>(options.count).fill(null);
    const registers = [options.registry];
    new Gauge({ name: 'sluice_workers', help: 'Worker threads serving traffic (--workers)', registers, collect: () => undefined }).set(options.count);
    this.restarts = new Counter({ name: 'sluice_worker_restarts_total', help: 'Worker threads replaced after they died or were ended, by reason (error, exit, apply_timeout, apply_failed, unresponsive, malformed_message, version_rejected; start_failed: a replacement thread could not be created, tried again)', labelNames: ['reason'], registers });
    this.applyFailures = new Counter({
      name: 'sluice_worker_apply_failures_total',
      help: 'Configuration versions a worker thread did not apply, by worker and reason (timeout: no acknowledgement within 30 s; rejected: its dataplane refused the version, a compile error; error: it failed the version)',
      labelNames: ['worker', 'reason'],
      registers,
    });
    this.rejections = new Counter({
      name: 'sluice_worker_versions_rejected_total',
      help: `Configuration versions the workers were not left on, by reason (rejected: every worker refused it, ${VERSION_REJECTED}; crashed: it ended workers ${WORKER_CRASH_LIMIT} times while they applied it, ${VERSION_CRASHED})`,
      labelNames: ['reason'],
      registers,
    });
    this.applies = new Counter({
      name: CONFIG_APPLIES,
      help: 'Configuration versions applied or rejected, by result (applied, rejected): once per version, whatever the worker count',
      labelNames: ['result'],
      registers,
    });
    this.timeoutMs = options.timeoutMs ?? WORKER_TIMEOUT_MS;
    this.watchdogMs = options.watchdogMs ?? this.timeoutMs;
    for (let i = 0; i < options.count; i++) this.slots[i] = this.spawn(i);
    options.registry.attachWorkers(() => this.collectMetrics());
    this.refresh = setInterval(() => {
      this.watch();
      void this.collectMetrics();
    }, METRICS_REFRESH_MS);
    this.refresh.unref();
  }

  /** The version every worker serving has applied (a worker that lagged was replaced), or null before the first. */
  get version(): string | null {
    return this.applied;
  }

  /** Each worker's applied version (a worker being replaced serves nothing: null). */
  workerVersions(): WorkerVersion[] {
    return this.slots.map((slot, worker) => ({ worker, version: slot?.version ?? null }));
  }

  get size(): number {
    return this.slots.length;
  }

  /**
   * Applies a version in every worker; a listener is served when every worker bound it. A worker
   * that dies meanwhile is left out (its replacement starts on this version). Throws VersionLate
   * (none acknowledged in time, none refused it) or VersionRejected (none applied it and none will:
   * the last good version stays the one served, and the one replacements start on).
   */
  async apply(version: string, http: HttpIR, l4?: L4IR): Promise<ApplyResult> {
    try {
      const result = await this.applyVersion(version, http, l4);
      this.applies.inc({ result: 'applied' });
      return result;
    } catch (err) {
      if (err instanceof VersionRejected) this.applies.inc({ result: 'rejected' });
      throw err;
    }
  }

  /** Whether apply() refuses `version` at once (it ended its workers before): a caller may skip what it does before applying. */
  refuses(version: string): boolean {
    return this.crashed.includes(version);
  }

  private async applyVersion(version: string, http: HttpIR, l4?: L4IR): Promise<ApplyResult> {
    this.settleLate(null);
    if (this.refuses(version)) throw new VersionRejected(VERSION_CRASHED, `version ${version} ended its workers ${WORKER_CRASH_LIMIT} times before: not sent again; still serving ${this.good?.version ?? 'nothing'}`);
    this.current = { version, http, l4 };
    this.deaths = { version, at: new Map() };
    const delta = JSON.stringify(this.encoder.encode(http, l4));
    const slots = this.live();
    const answers = await Promise.all(slots.map((slot) => this.applyIn(slot, version, delta).then((result) => ({ slot, result }), (error: Error) => ({ slot, error }))));
    const results = answers.flatMap((a) => ('result' in a && a.result.type === 'applied' ? [a.result.result] : []));
    const lagging = answers.flatMap((a) => ('error' in a ? [{ slot: a.slot, error: a.error }] : []));
    for (const { slot, error } of lagging) {
      const { timedOut, rejected } = error as { timedOut?: boolean; rejected?: boolean };
      this.applyFailures.inc({ worker: String(slot.index), reason: timedOut === true ? 'timeout' : rejected === true ? 'rejected' : 'error' });
      this.logger.error({ worker: slot.index, version, err: error.message }, `worker ${slot.index} did not apply version ${version}: ${error.message}`);
    }
    this.throwIfCrashed(version, results.length);
    if (results.length === 0) {
      const why = `no worker applied version ${version}: ${lagging.map((l) => `worker ${l.slot.index}: ${l.error.message}`).join('; ')}`;
      // None refused it (too slow, or ended meanwhile: replacements start on it): it may still be served.
      if (this.current?.version === version && lagging.every((l) => (l.error as { timedOut?: boolean; exited?: boolean }).timedOut === true || (l.error as { exited?: boolean }).exited === true)) {
        const late = new Promise<ApplyResult | VersionRejected | null>((settle) => (this.late = { version, settle }));
        this.converged();
        throw new VersionLate(`${why}; still serving ${this.good?.version ?? 'nothing'} until every worker serves it`, late);
      }
      // Refused (every worker's compile failed), or failed: no worker serves it, none will (a
      // replacement starts on the last good version), and each keeps serving the one before.
      if (this.current?.version === version) this.reject(VERSION_REJECTED, 'rejected', `was not applied by any worker (${lagging[0]?.error.message ?? 'none serving'})`);
      throw new VersionRejected(VERSION_REJECTED, `${why}; still serving ${this.good?.version ?? 'nothing'}`);
    }
    // The others applied it: a worker left on an older version is ended (its replacement starts on
    // this one and serves nothing before), so that every serving worker serves this version.
    await Promise.all(lagging.map(({ slot, error }) => this.end(slot, (error as { timedOut?: boolean }).timedOut === true ? 'apply_timeout' : 'apply_failed')));
    if (this.applied === null) await this.options.registry.learnWorkerMetrics();
    // Those failed count as deaths on it (apply_failed; the slow ones, apply_timeout, do not): enough reject it meanwhile.
    this.throwIfCrashed(version, results.length);
    this.applied = version;
    this.serve({ version, http, l4 });
    return { version, listeners: mergeListeners(results) };
  }

  /** `version` is the one served now; the one served before it (when another) is the one to go back to. */
  private serve(version: Served): void {
    if (this.good?.version !== version.version) this.before = this.good;
    this.good = version;
  }

  /** Rejected meanwhile for ending its workers (exited()): those that applied it are put back already, and apply() must not serve it. */
  private throwIfCrashed(version: string, applied: number): void {
    if (this.current?.version === version || !this.crashed.includes(version)) return;
    const by = applied === 0 ? 'no worker applied it' : `applied by ${applied} of ${this.slots.length} workers, taken back`;
    throw new VersionRejected(VERSION_CRASHED, `version ${version} ended its workers ${WORKER_CRASH_LIMIT} times while they applied it (${by}); still serving ${this.good?.version ?? 'nothing'}`);
  }

  setRedis(settings: RedisSettings | null): void {
    if (JSON.stringify(settings) === JSON.stringify(this.redis)) return;
    this.redis = settings;
    for (const slot of this.live()) this.tell(slot, { type: 'redis', id: 0, settings });
  }

  /** Whether workers send each request flow as it comes (costly: only while someone needs every flow at once). */
  relayFlows(on: boolean): void {
    if (on === this.relay) return;
    this.relay = on;
    for (const slot of this.live()) this.tell(slot, { type: 'relay-flows', id: 0, on });
  }

  /** Each live worker's latest `last` flows that pass `filter` (a worker that does not answer in time is left out). */
  async readFlows(filter: FlowFilter, last: number | undefined): Promise<Flow[][]> {
    const answers = await Promise.all(this.live().map((slot) => this.ask(slot, { type: 'read-flows', id: 0, filter, last })));
    return answers.flatMap((a) => (a?.type === 'flows-read' ? [a.flows] : []));
  }

  /** Graceful: each worker drains its connections (DRAIN_TIMEOUT_MS at most) and exits. */
  async close(): Promise<void> {
    this.closing = true;
    this.settleLate(null);
    clearInterval(this.refresh);
    await Promise.all(
      this.live().map(async (slot) => {
        const exited = new Promise<void>((resolve) => slot.worker.once('exit', () => resolve()));
        const deadline = setTimeout(() => {
          this.logger.warn({ worker: slot.index, ms: DRAIN_TIMEOUT_MS + CLOSE_GRACE_MS }, `worker ${slot.index} did not finish closing within ${DRAIN_TIMEOUT_MS + CLOSE_GRACE_MS} ms: terminating it (its connections left are cut)`);
          void slot.worker.terminate();
        }, DRAIN_TIMEOUT_MS + CLOSE_GRACE_MS);
        await this.request(slot, { type: 'close', id: 0 }).catch(() => undefined);
        await exited;
        clearTimeout(deadline);
      }),
    );
  }

  /**
   * Ends worker `index` at once, as a crash would (its connections are cut); it is replaced.
   * For tests and the bench: nothing else in a thread can be killed from outside.
   */
  async terminate(index: number): Promise<void> {
    await this.slots[index]?.worker.terminate();
  }

  /** Ends and replaces a worker that has answered nothing for the timeout (its thread is stuck). */
  private watch(): void {
    const now = performance.now();
    const late = now - this.watchedAt > WATCHDOG_LATE_MS;
    this.watchedAt = now;
    for (const slot of this.live()) {
      if (late) slot.heardAt = Math.max(slot.heardAt, now);
      const silentMs = now - slot.heardAt;
      if (silentMs <= this.watchdogMs || slot.ended !== undefined) continue;
      this.logger.error({ worker: slot.index, silentMs: Math.round(silentMs) }, `worker ${slot.index} has answered nothing for ${Math.round(silentMs)} ms (its thread is stuck): ending it; a new one starts`);
      void this.end(slot, 'unresponsive');
    }
  }

  /** Ends a worker the pool gave up on (it is replaced as a dead one is, the restart counted by `reason`). */
  private async end(slot: Slot, reason: NonNullable<Slot['ended']>): Promise<void> {
    slot.ended ??= reason;
    await slot.worker.terminate();
  }

  /** The thread ids serving now (a replaced worker has a new one). */
  threadIds(): number[] {
    return this.live().map((s) => s.worker.threadId);
  }

  private live(): Slot[] {
    return this.slots.filter((s): s is Slot => s !== null);
  }

  private spawn(index: number): Slot {
    const flows = this.options.init.flows === null ? null : { ...this.options.init.flows, relay: this.relay };
    const init: WorkerInit = { ...this.options.init, flows, index, buckets: this.buckets, connections: this.connections, ticketKeys: this.ticketKeys, redis: this.redis, sessionKey: this.sessionKey };
    const worker = new Worker(new URL('./worker-boot.js', import.meta.url), { workerData: init });
    const slot: Slot = { index, worker, startedAt: performance.now(), pending: new Map(), unacknowledged: new Map(), version: null, versionId: 0, result: null, heardAt: performance.now() };
    worker.on('message', (data: unknown) => this.received(slot, data));
    let error: Error | null = null;
    worker.on('error', (err) => {
      error = err;
      this.logger.error({ worker: index, err: err.message, stack: err.stack }, `worker ${index} failed`);
    });
    // A message that cannot be deserialised would be lost to its request: the worker is broken.
    worker.on('messageerror', (err) => this.misbehaved(slot, `a message that cannot be deserialised (${err.message})`));
    worker.on('exit', (code) => this.exited(slot, code, error));
    // The current version first: messages wait in the worker's queue until it listens.
    const current = this.current;
    if (current) {
      this.request(slot, { type: 'apply', id: 0, version: current.version, ir: JSON.stringify(this.encoder.encode(current.http, current.l4, true)) }).catch((err: Error & { exited?: boolean; timedOut?: boolean; rejected?: boolean }) => {
        // Failed, not ended (counted as a death then) nor stuck (the watchdog's): as a late failure.
        if (err.exited !== true && err.timedOut !== true) return this.failedLate(slot, current.version, err.message, err.rejected === true, 'on start: it serves nothing');
        this.logger.error({ worker: index, version: current.version, err: err.message }, `worker ${index} could not apply the current version on start: it serves nothing`);
      });
    }
    return slot;
  }

  /** One message from a worker: checked (readFromWorker, and against what was asked of it) before it is used. */
  private received(slot: Slot, data: unknown): void {
    // Ended by the pool: what it still had queued is not wanted (its replacement will say its own).
    if (slot.ended !== undefined) return;
    const message = readFromWorker(data);
    if (typeof message === 'string') return this.misbehaved(slot, message);
    slot.heardAt = performance.now();
    if (message.type === 'flows') return this.options.onFlows(message.flows);
    if (message.id >= this.nextId) return this.misbehaved(slot, `an answer to request ${message.id}, never sent`);
    const waiting = slot.pending.get(message.id);
    if (waiting !== undefined && message.type !== 'failed' && message.type !== waiting.answer) return this.misbehaved(slot, `a ${message.type} answer to a request answered by ${waiting.answer}`);
    if (message.type === 'applied') {
      // Its own (late ones too, after the wait timed out), of the version it was sent, in order.
      const sent = slot.unacknowledged.get(message.id);
      if (sent === undefined) return this.misbehaved(slot, `an acknowledgement of request ${message.id}, which sent it no version (or was acknowledged already)`);
      if (message.result.version !== sent) return this.misbehaved(slot, `an acknowledgement of version ${JSON.stringify(message.result.version).slice(0, 80)} for request ${message.id}, which sent version ${sent}`);
      slot.unacknowledged.delete(message.id);
      // The version works in this worker: its deaths on it before were not the version's doing (the others' still count).
      if (this.deaths?.version === sent) this.deaths.at.delete(slot.index);
      if (message.id > slot.versionId) {
        slot.version = sent;
        slot.versionId = message.id;
        slot.result = message.result;
      }
    } else if (message.type === 'failed') {
      const sent = slot.unacknowledged.get(message.id);
      slot.unacknowledged.delete(message.id);
      // Nobody waits for it any more (the wait timed out): a version that worker will not serve.
      if (waiting === undefined && sent !== undefined) this.failedLate(slot, sent, message.error, message.rejected === true);
    }
    slot.pending.delete(message.id);
    if (message.type === 'failed') waiting?.reject(Object.assign(new Error(message.error), { resync: message.resync === true, rejected: message.rejected === true }));
    else waiting?.resolve(message);
    if (message.type === 'applied') this.converged();
  }

  /**
   * A worker that sent what it must not (a malformed message, an answer to nothing): logged with
   * MALFORMED_WORKER_MESSAGE, ended and replaced as a failed one — nothing of the message used.
   */
  private misbehaved(slot: Slot, why: string): void {
    if (slot.ended !== undefined) return;
    this.logger.error({ code: MALFORMED_WORKER_MESSAGE, worker: slot.index, reason: why }, `${MALFORMED_WORKER_MESSAGE} worker ${slot.index} sent ${why}: ending it; a new one starts`);
    void this.end(slot, 'malformed_message');
  }

  /**
   * A worker failed the current version after apply() gave up waiting (it refused it, could not
   * decode it — nobody resyncs it now —, or failed it): logged and counted as a failure in time
   * is. Failed by every worker, the version is rejected (SLU_VERSION_REJECTED: each serves the last
   * good one); applied by another, this worker is ended and its replacement starts on it (converged);
   * else the others' answers decide. Before, such an answer was dropped: the late version never
   * settled, and one worker could serve it beside another on the version before it for good.
   */
  private failedLate(slot: Slot, version: string, error: string, rejected: boolean, when = 'after the wait for it'): void {
    if (slot.ended !== undefined) return;
    this.applyFailures.inc({ worker: String(slot.index), reason: rejected ? 'rejected' : 'error' });
    this.logger.error({ worker: slot.index, version, err: error }, `worker ${slot.index} did not apply version ${version} (${when}): ${error}`);
    // An older version's (a newer one was sent since): what the worker serves is that one's to settle.
    if (this.current?.version !== version) return;
    slot.failedLate = version;
    const slots = this.live();
    if (this.late?.version === version && slots.length === this.slots.length && slots.every((s) => s.failedLate === version)) {
      return this.reject(VERSION_REJECTED, 'rejected', `was not applied by any worker (${error})`);
    }
    this.converged();
  }

  /** A version apply() gave up waiting for, once every worker serves it (late, or replacements that started on it): now the pool's. */
  private converged(): void {
    const late = this.late;
    if (late === null) return;
    const slots = this.live();
    const serving = slots.filter((s) => s.version === late.version && s.ended === undefined);
    // One that failed it while another serves it, and still serves the version before: ended, its
    // replacement starts on it (as in time). One that serves nothing (a replacement that failed it
    // on start) serves no other version: left, as in time, rather than restarted in a loop.
    if (serving.length > 0) for (const s of slots) if (s.failedLate === late.version && s.version !== null) void this.end(s, 'apply_failed');
    if (slots.length < this.slots.length || serving.length === 0 || !slots.every((s) => serving.includes(s) || (s.version === null && s.failedLate === late.version))) return;
    this.logger.warn({ version: late.version }, `every worker serves version ${late.version} now (applied late): it is the version served`);
    this.applied = late.version;
    if (this.current?.version === late.version) this.serve(this.current);
    this.settleLate({ version: late.version, listeners: mergeListeners(serving.map((s) => s.result!)) });
  }

  /**
   * The current version will not be served: the last good one is current again (replacements start
   * on it; every worker serving still serves it), and one awaited late is given up. Logged with its
   * code and counted. One that was served already (apply() returned it: some workers applied it,
   * the others died on it) is taken back from every worker (takeBack).
   */
  private reject(code: VersionRejected['code'], reason: 'rejected' | 'crashed', why: string): void {
    const bad = this.current!.version;
    // Returned as applied (apply() or a late settle), or applied by some workers while apply() still waits for the others.
    const returned = this.good?.version === bad;
    const served = returned || this.live().some((s) => s.version === bad);
    if (returned) {
      this.good = this.before;
      // What was served before that one is not kept: rejected too, the workers serve nothing.
      this.before = null;
    }
    this.current = this.good;
    this.deaths = null;
    this.rejections.inc({ reason });
    const serving = this.good?.version ?? null;
    const then = served
      ? serving === null
        ? 'no version was served before it: the workers that applied it are ended, replacements serve nothing until a newer one'
        : `every worker goes back to ${serving}, the version served before it`
      : serving === null ? 'no version was served before it: a replacement serves nothing until a newer one' : `replacements start on ${serving}, the version served`;
    this.logger.error({ code, version: bad, serving }, `${code} version ${bad} ${why}: rejected; ${then}`);
    const rejected = new VersionRejected(code, `version ${bad} ${why}; still serving ${serving ?? 'nothing'}`);
    // Awaited late (its apply() returned VersionLate): it is refused now.
    this.settleLate(rejected);
    if (served) this.takeBack(returned ? rejected : null);
  }

  /**
   * Every worker off the current version, served by some and then rejected: back on the version
   * served before it, applied as any version is (each keeps its connections; one that does not
   * apply it is ended and replaced, and its replacement starts there), or — none served before —
   * ended. The pool's version is the one served before at once; the owner is told (onTakenBack)
   * when apply() had returned the version as applied (`rejected`; else apply() throws it).
   */
  private takeBack(rejected: VersionRejected | null): void {
    const back = this.good;
    this.applied = back?.version ?? null;
    const slots = this.live().filter((s) => s.ended === undefined);
    if (back === null) {
      for (const slot of slots) void this.end(slot, 'version_rejected');
    } else {
      const delta = JSON.stringify(this.encoder.encode(back.http, back.l4));
      for (const slot of slots) {
        this.applyIn(slot, back.version, delta).then(
          () => this.logger.info({ worker: slot.index, version: back.version }, `worker ${slot.index} is back on version ${back.version}`),
          (error: Error) => {
            // A newer version sent meanwhile is what this worker is to serve now (its own apply handles it).
            if (this.current !== back || this.slots[slot.index] !== slot) return;
            this.applyFailures.inc({ worker: String(slot.index), reason: (error as { timedOut?: boolean }).timedOut === true ? 'timeout' : 'error' });
            this.logger.error({ worker: slot.index, version: back.version, err: error.message }, `worker ${slot.index} could not go back to version ${back.version} (${error.message}): ending it; a new one starts on it`);
            void this.end(slot, 'version_rejected');
          },
        );
      }
    }
    if (rejected !== null) this.options.onTakenBack?.(rejected, this.applied);
  }

  /**
   * A worker ended while it applied the current version (its acknowledgement outstanding): counted
   * against the version — unless the pool ended it for being slower than the others (apply_timeout):
   * another worker applied the version, so it works, and a slow apply (a loaded or stalled machine)
   * is no crash. Its replacement starts on the version; one stuck in it for good is the watchdog's
   * (unresponsive), and counts.
   */
  private diedApplying(slot: Slot): void {
    const deaths = this.deaths;
    if (slot.ended === 'apply_timeout') return;
    if (deaths === null || this.current?.version !== deaths.version || ![...slot.unacknowledged.values()].includes(deaths.version)) return;
    const now = performance.now();
    deaths.at.set(slot.index, [...(deaths.at.get(slot.index) ?? []), now]);
    let count = 0;
    for (const [index, at] of deaths.at) {
      const recent = at.filter((t) => now - t < WORKER_CRASH_WINDOW_MS);
      deaths.at.set(index, recent);
      count += recent.length;
    }
    if (count < WORKER_CRASH_LIMIT) return;
    this.crashed.push(deaths.version);
    if (this.crashed.length > MAX_CRASHED_VERSIONS) this.crashed.shift();
    this.reject(VERSION_CRASHED, 'crashed', `ended its workers ${count} times (within ${WORKER_CRASH_WINDOW_MS / 1000} s) while they applied it`);
  }

  /** Ends the wait for a late version; one applied or rejected after apply() returned is counted here. */
  private settleLate(result: ApplyResult | VersionRejected | null): void {
    const late = this.late;
    this.late = null;
    if (late === null) return;
    if (result !== null) this.applies.inc({ result: result instanceof VersionRejected ? 'rejected' : 'applied' });
    late.settle(result);
  }

  private exited(slot: Slot, code: number, error: Error | null): void {
    for (const waiting of slot.pending.values()) waiting.reject(Object.assign(new Error(`worker ${slot.index} exited (code ${code})`), { exited: true }));
    slot.pending.clear();
    // Its connections died with it (a worker that drained has counted them out already).
    releaseWorkerConnections(this.connections, slot.index);
    const last = this.lastMetrics.get(slot);
    this.lastMetrics.delete(slot);
    if (last !== undefined && !this.closing) void this.retire(last);
    if (this.slots[slot.index] !== slot) return;
    this.slots[slot.index] = null;
    if (this.closing) return;
    this.diedApplying(slot);
    const lived = performance.now() - slot.startedAt;
    this.failures[slot.index] = lived > STABLE_AFTER_MS ? 1 : this.failures[slot.index] + 1;
    const delay = backoffDelay(this.failures[slot.index], RESTART_BACKOFF);
    this.restarts.inc({ reason: slot.ended ?? (error ? 'error' : 'exit') });
    this.logger.error({ worker: slot.index, code, restartInMs: delay }, `worker ${slot.index} exited (code ${code}); starting a new one`);
    setTimeout(() => this.respawn(slot.index), delay).unref();
  }

  /**
   * A replacement in an empty slot. A thread that cannot even be created (Node throws
   * ERR_WORKER_INIT_FAILED when the system has no thread or memory left for it) is tried again with
   * the backoff: thrown in a timer it would end the process, and every other worker with it.
   */
  private respawn(index: number): void {
    if (this.closing || this.slots[index] !== null) return;
    try {
      this.slots[index] = this.spawn(index);
    } catch (error) {
      this.failures[index]++;
      const delay = backoffDelay(this.failures[index], RESTART_BACKOFF);
      this.restarts.inc({ reason: 'start_failed' });
      this.logger.error({ worker: index, err: (error as Error).message, restartInMs: delay }, `worker ${index} could not be started; trying again`);
      setTimeout(() => this.respawn(index), delay).unref();
    }
  }

  /**
   * A version in one worker (one that lost track of the deltas gets it in full), acknowledged within
   * the apply timeout or rejected with `timedOut` (a late acknowledgement still records its version).
   */
  private async applyIn(slot: Slot, version: string, ir: string): Promise<FromWorker> {
    const deadline = performance.now() + this.timeoutMs;
    try {
      return await this.request(slot, { type: 'apply', id: 0, version, ir });
    } catch (error) {
      if (!(error as { resync?: boolean }).resync || this.current === null) throw error;
      this.logger.warn({ worker: slot.index, err: (error as Error).message }, 'worker needs the configuration in full');
      // The newest version in full (deltas sent after the one it refused refer to what it lacks too).
      return this.request(slot, { type: 'apply', id: 0, version: this.current.version, ir: JSON.stringify(this.encoder.encode(this.current.http, this.current.l4, true)) }, Math.max(1, deadline - performance.now()));
    }
  }

  /**
   * A message and its answer, rejected (`timedOut`) when none comes within `timeoutMs`: the wait
   * is forgotten then, so a stuck worker holds no more of them than it is sent in that time.
   */
  private request(slot: Slot, message: ToWorker, timeoutMs = this.timeoutMs): Promise<FromWorker> {
    const id = this.nextId++;
    if (message.type === 'apply') {
      slot.unacknowledged.set(id, message.version);
      // A worker that stops acknowledging is ended (bounded wait, watchdog): this only caps the map.
      if (slot.unacknowledged.size > MAX_UNACKNOWLEDGED) slot.unacknowledged.delete(slot.unacknowledged.keys().next().value!);
    }
    return new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { timedOut: true }));
      }, timeoutMs);
      timer.unref();
      const settle = <T>(then: (value: T) => void) => (value: T) => {
        clearTimeout(timer);
        then(value);
      };
      slot.pending.set(id, { answer: ANSWERS[message.type], resolve: settle(resolve), reject: settle(reject) });
      slot.worker.postMessage({ ...message, id });
    });
  }

  /** A message whose answer does not matter, only its failure (logged, naming the worker). */
  private tell(slot: Slot, message: ToWorker): void {
    this.request(slot, message).catch((err: Error) => this.logger.error({ worker: slot.index, message: message.type, err: err.message }, `worker ${slot.index} did not take ${message.type}: ${err.message}`));
  }

  /** A request whose answer is null when the worker fails it or does not answer within METRICS_TIMEOUT_MS. */
  private ask(slot: Slot, message: ToWorker): Promise<FromWorker | null> {
    return this.request(slot, message, METRICS_TIMEOUT_MS).catch(() => null);
  }

  /** Each live worker's metrics, plus `sluice_worker_http_requests_total{worker}` (how evenly they share). */
  private async collectMetrics(): Promise<MetricsJson[]> {
    const answers = await Promise.all(
      this.live().map(async (slot) => {
        const answer = await this.ask(slot, { type: 'metrics', id: 0 });
        if (answer?.type !== 'metrics') {
          // Left out, its counters would go back in the sum (a reset to Prometheus' rate()): its last
          // sample stands in (a stuck worker is ended by the watchdog; a dead one's are retired).
          const last = this.lastMetrics.get(slot);
          if (slot.metricsMissed !== true && this.slots[slot.index] === slot) this.logger.warn({ worker: slot.index }, `worker ${slot.index} did not answer for its metrics within ${METRICS_TIMEOUT_MS} ms: its last sample stands in until it does`);
          slot.metricsMissed = true;
          return last === undefined ? null : { index: slot.index, metrics: last };
        }
        slot.metricsMissed = false;
        // Each worker counts every version it applies: the pool counts each version once instead.
        const metrics = answer.metrics.filter((m) => m.name !== CONFIG_APPLIES);
        if (this.slots[slot.index] === slot) this.lastMetrics.set(slot, metrics);
        return { index: slot.index, metrics };
      }),
    );
    const retired = this.retired.length > 0 ? [this.retired] : [];
    return retired.concat(answers.flatMap((a) => {
      if (a === null) return [];
      const requests = a.metrics.find((m) => m.name === 'sluice_http_requests_total');
      const total = requests?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
      const perWorker = {
        name: 'sluice_worker_http_requests_total',
        help: 'HTTP requests answered, by worker thread (--workers)',
        type: 'counter',
        aggregator: 'sum',
        values: [{ labels: { worker: String(a.index) }, value: total }],
      } as unknown as MetricsJson[number];
      return [[...a.metrics.map(withAggregator), perWorker]];
    }));
  }

  /** Folds a dead worker's counters and histograms into the retired totals (its gauges die with it). */
  private async retire(last: MetricsJson): Promise<void> {
    const kept = last.filter((m) => String(m.type) === 'counter' || String(m.type) === 'histogram');
    this.retired = this.retired.length === 0 ? kept : ((await AggregatorRegistry.aggregate([this.retired, kept]).getMetricsAsJSON()) as MetricsJson);
  }
}

function withAggregator(metric: MetricsJson[number]): MetricsJson[number] {
  const aggregator = GAUGE_AGGREGATORS[metric.name];
  return aggregator === undefined ? metric : { ...metric, aggregator };
}

/** One result per listener: served when every worker served it, else the first worker's failure. */
function mergeListeners(results: ApplyResult[]): ListenerResult[] {
  const merged = new Map<string, ListenerResult>();
  for (const result of results) {
    for (const l of result.listeners) {
      const seen = merged.get(l.name);
      if (seen === undefined || (seen.ok && !l.ok)) merged.set(l.name, l);
    }
  }
  return [...merged.values()];
}

/**
 * The flows of a process with workers, as the admin API and the web view read them: the primary's
 * ring (the eBPF agent's connection flows, and the workers' drops and audits, sent as they come)
 * and each worker's (its forwarded requests), merged in time order when read. Sending every
 * request's flow to the primary as it happened cost 2 workers 0.79x the requests per CPU-second of
 * 1 (0.97x without flows; this 2-core box): the structured clone on both sides, and the garbage.
 * Workers send forwarded requests only while a follower needs each one (`sluice observe -f`, the
 * web view); they write their own access log lines.
 */
export class WorkerFlows {
  private readonly ring: FlowBuffer;
  private readonly pool: WorkerPool;
  private readonly followers = new Set<(flow: Flow) => void>();

  /** `ring`: the primary's own flows (the kernel's). */
  constructor(ring: FlowBuffer, pool: WorkerPool) {
    this.ring = ring;
    this.pool = pool;
  }

  /**
   * The latest `last` flows that pass `filter`, every thread's, oldest first. Drops and audits are
   * all in the primary's ring (workers send them at once): a read of only those (the web view's)
   * is answered at once, not as a promise.
   */
  flows(filter: FlowFilter, last: number = this.ring.size): Flow[] | Promise<Flow[]> {
    const own = this.ring.flows(filter, last);
    if (filter.verdict !== undefined && !filter.verdict.includes('FORWARDED')) return own;
    return this.pool.readFlows(filter, last).then((theirs) => mergeFlows([own, ...theirs], last));
  }

  follow(listener: (flow: Flow) => void): () => void {
    this.followers.add(listener);
    const unfollow = this.ring.subscribeFlows(listener);
    this.update();
    return () => {
      this.followers.delete(listener);
      unfollow();
      this.update();
    };
  }

  /** A forwarded request's flow a worker relayed: to the followers. */
  relayed(flow: Flow): void {
    for (const listener of this.followers) {
      try {
        listener(flow);
      } catch {
        // A follower's bug must not stop the others (as FlowBuffer's subscribers).
      }
    }
  }

  private update(): void {
    this.pool.relayFlows(this.followers.size > 0);
  }
}

/** The latest `last` of several rings' flows, oldest first. */
function mergeFlows(rings: Flow[][], last: number): Flow[] {
  // ISO 8601 UTC times of one width sort as strings; sort() is stable (each ring's order stays).
  const merged = rings.flat().sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  return last === 0 ? [] : merged.slice(-last);
}

/**
 * The process registry: its own metrics, and with workers attached the workers' metrics summed
 * (prom-client's AggregatorRegistry, the one node:cluster setups use), in the text exposition and
 * for readers of single metrics (the web view's rates).
 */
export class WorkerMetricsRegistry extends Registry {
  private source: (() => Promise<MetricsJson[]>) | null = null;
  /** Names the workers reported at their last collection. */
  private readonly workerNames = new Set<string>();

  attachWorkers(source: () => Promise<MetricsJson[]>): void {
    this.source = source;
  }

  /** Collects once, so that getSingleMetric knows the workers' metrics before the first scrape. */
  async learnWorkerMetrics(): Promise<void> {
    await this.aggregated();
  }

  /**
   * The workers' metrics summed, this registry's own of the same names added in (the flow
   * metrics: the primary counts the kernel's flows and the drops, the workers their forwarded
   * requests), so that each name is one family; `shared`: those names.
   */
  private async aggregated(): Promise<{ merged: Registry; shared: Set<string> } | null> {
    if (this.source === null) return null;
    const collected = await this.source();
    const names = new Set<string>();
    for (const metrics of collected) for (const m of metrics) names.add(m.name);
    for (const name of names) this.workerNames.add(name);
    const own = ((await super.getMetricsAsJSON()) as MetricsJson).filter((m) => names.has(m.name));
    return { merged: AggregatorRegistry.aggregate([own, ...collected]), shared: new Set(own.map((m) => m.name)) };
  }

  override async metrics(): Promise<string> {
    const workers = await this.aggregated();
    if (workers === null) return super.metrics();
    const ownNames = ((await super.getMetricsAsJSON()) as MetricsJson).map((m) => m.name).filter((name) => !workers.shared.has(name));
    const parts = [...(await Promise.all(ownNames.map((name) => super.getSingleMetricAsString(name)))), await workers.merged.metrics()];
    return parts.filter((text) => text !== '').map((text) => (text.endsWith('\n') ? text : `${text}\n`)).join('');
  }

  override async getMetricsAsJSON(): Promise<MetricsJson> {
    const own = (await super.getMetricsAsJSON()) as MetricsJson;
    const workers = await this.aggregated();
    return workers === null ? own : [...own.filter((m) => !workers.shared.has(m.name)), ...((await workers.merged.getMetricsAsJSON()) as MetricsJson)];
  }

  /** A worker metric reads as a metric whose get() sums the workers (and this registry's own of that name) at that moment. */
  override getSingleMetric<T extends string>(name: string): Metric<T> | undefined {
    if (!this.workerNames.has(name)) return super.getSingleMetric<T>(name);
    const get = async (): Promise<MetricObjectWithValues<MetricValue<T>>> => {
      const metric = (await this.aggregated())?.merged.getSingleMetric(name);
      return (metric ? await metric.get() : { name, help: '', type: 'counter', aggregator: 'sum', values: [] }) as unknown as MetricObjectWithValues<MetricValue<T>>;
    };
    return { get } as unknown as Metric<T>;
  }
}
