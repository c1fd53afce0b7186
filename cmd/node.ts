// Everything that serves traffic on one node, fed by IR versions: the proxy
// (Dataplane), its rate-limit buckets, and the BPF agent when eBPF is on. Used
// in-process by `sluice run` and as its own process by `sluice dataplane`.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { BpfAgent } from '../bpf/agent/agent.ts';
import { bpfUnavailableReason, enterDedicatedCgroup, ownCgroupPath, type DedicatedCgroup } from '../bpf/agent/environment.ts';
import type { HttpIR, IR, L4IR } from '../ir/types.ts';
import { viaServiceVips } from '../dataplane/config/kernel-lb.ts';
import { Dataplane, type ApplyResult } from '../dataplane/dataplane.ts';
import type { FrontDoorLimits } from '../dataplane/front-door.ts';
import { RateLimitService, type RedisSettings } from '../dataplane/ratelimit/limiter.ts';
import { DEFAULT_FLOW_BUFFER_SIZE, FlowBuffer } from '../dataplane/flows/flow-buffer.ts';
import { ACCESS_LOG_FIELDS, AccessLog, gatewayAccessLogs } from '../dataplane/flows/access-log.ts';
import { FlowMetrics } from '../dataplane/flows/flow-metrics.ts';
import { StartupCheckFailed } from './startup-checks.ts';
import { VersionLate, VersionRejected, WorkerFlows, WorkerMetricsRegistry, WorkerPool, type WorkerVersion } from './workers.ts';
import { VERSION_REJECTED } from './worker-messages.ts';
import type { Problem } from '../controller/problems.ts';
import { newSessionKey } from '../dataplane/upstream/session.ts';

/** The kernel part of no version: no Service VIP, no policy. */
const NO_L4: L4IR = { services: [] };

export interface BpfOptions {
  /** on: refuse to start without eBPF; auto: use it when the machine allows, else say why once. */
  mode: 'auto' | 'on' | 'off';
  pinDir: string;
  /** Default: this process's own cgroup, or a dedicated one (`dedicatedCgroup`). */
  cgroupPath?: string;
  /**
   * Without cgroupPath: attach to a cgroup Sluice creates for itself and moves into, removed with
   * its pins on close (`sluice run`: never a cgroup it shares with others unless told to).
   */
  dedicatedCgroup?: boolean;
  traceForwarded: boolean;
}

export interface NodeRateLimitOptions {
  redisTimeoutMs: number;
  replicas: number;
  maxLocalKeys: number;
}

export interface DataplaneNodeOptions {
  portOffset: number;
  /** See DataplaneOptions.redirectPortOffset; 0 when absent. */
  redirectPortOffset?: number;
  logger: Logger;
  registry: Registry;
  rateLimit: NodeRateLimitOptions;
  /** Client timeouts and connection limits (--*-timeout, --max-connections* flags); defaults when absent. */
  frontDoor?: FrontDoorLimits;
  /** Absent: eBPF off, without a log line. */
  bpf?: BpfOptions;
  /** Flow records (--flow-* flags); absent: defaults (every request recorded, 4096 kept). */
  flows?: NodeFlowOptions;
  /** Worker threads serving the listeners (--workers); 1 or absent: this thread serves them. */
  workers?: number;
  /** Signs session persistence tokens (--session-key-file); absent: a random key, shared by this process's workers only. */
  sessionKey?: Buffer;
}

/** What serves the listeners: the in-process Dataplane, or a WorkerPool of them. */
interface Proxy {
  readonly version: string | null;
  apply(version: string, http: HttpIR, l4?: L4IR): Promise<ApplyResult>;
  /** Whether apply() refuses a version at once (WorkerPool: it crashed the workers before). */
  refuses?(version: string): boolean;
  close(): Promise<void>;
}

export interface NodeFlowOptions {
  /** Request flows at all (--request-flows); the kernel's are governed by --bpf-trace-forwarded. */
  requests: boolean;
  /** Share of forwarded requests recorded, 0–1 (drops and audits always are). */
  sampleRate: number;
  bufferSize: number;
  /** --access-log: a file or `-` (stdout), and the fields of each line; absent: no access log. */
  accessLog?: { path: string; fields: readonly string[] };
}

export class DataplaneNode {
  /** Where global rate limits find Redis (the workers' services, with --workers). */
  readonly rateLimits: { setRedis(settings: RedisSettings | null): void };
  /** Null when eBPF is off or unavailable. */
  readonly agent: BpfAgent | null;
  /**
   * Every flow of this node: the kernel's connections and the proxy's requests, in one ring (with
   * --workers, forwarded requests stay in each worker's ring until read: WorkerFlows).
   */
  readonly flows: FlowBuffer | WorkerFlows;
  private readonly accessLog: AccessLog;
  private readonly dataplane: Proxy;
  private readonly logger: Logger;
  /** The cgroup eBPF attached to when Sluice made it; released on close. */
  private readonly dedicatedCgroup: DedicatedCgroup | null;
  /** The IR last served (null before the first): the kernel part a refused version's is replaced by. */
  private good: IR | null = null;
  /** The IR served before `good`: served again when the workers take `good` back (it crashed some of them after it was applied). */
  private previous: IR | null = null;
  private readonly takenBackListeners: ((rejected: VersionRejected, serving: IR | null) => void)[] = [];
  /** Versions given to the kernel, counted: one refused late is rolled back only while no newer one was given. */
  private given = 0;

  constructor(options: DataplaneNodeOptions) {
    const { logger, registry } = options;
    this.logger = logger;
    ({ agent: this.agent, dedicated: this.dedicatedCgroup } = startBpfAgent(options.bpf, logger, registry));
    const ring = new FlowBuffer(options.flows?.bufferSize ?? DEFAULT_FLOW_BUFFER_SIZE);
    this.flows = ring;
    this.agent?.follow((flow) => ring.push(flow));
    ring.subscribeRecorder(new FlowMetrics(registry));
    // Without --access-log, only Gateways that ask for it (sluice.dev/access-log) are logged, to stdout.
    const accessLog = options.flows?.accessLog ?? { path: '-', fields: ACCESS_LOG_FIELDS };
    this.accessLog = new AccessLog(accessLog.path, accessLog.fields, registry, (err) => logger.error({ path: accessLog.path, err: err.message }, 'access log cannot be written: its lines are dropped (sluice_access_log_dropped_total)'), options.flows?.accessLog !== undefined);
    ring.subscribeRecorder(this.accessLog);
    const workers = options.workers ?? 1;
    // Only these fields: callers' rateLimit objects may carry more (standalone's `redis` flag settings), which the service must not take as its Redis.
    const { redisTimeoutMs, replicas, maxLocalKeys } = options.rateLimit;
    const rateLimit = { redisTimeoutMs, replicas, maxLocalKeys };
    // One key for every worker: a token one worker hands out is honoured by all of them.
    const sessionKey = options.sessionKey ?? newSessionKey();
    if (workers > 1) {
      // Their metrics are summed into this registry: it must be the process's (processRegistry()).
      if (!(registry instanceof WorkerMetricsRegistry)) throw new Error('--workers: the registry must come from processRegistry()');
      const pool = new WorkerPool({
        count: workers,
        logger,
        registry,
        onTakenBack: (rejected, serving) => this.takenBack(rejected, serving),
        onFlows: (flows) => {
          for (const flow of flows) {
            // Drops and audits come always, into the ring (counted and logged there); forwarded
            // requests only while followed, and are counted and logged by their worker.
            if (flow.verdict !== 'FORWARDED') ring.push(flow);
            else workerFlows.relayed(flow);
          }
        },
        init: {
          logLevel: logger.level,
          portOffset: options.portOffset,
          redirectPortOffset: options.redirectPortOffset ?? 0,
          ...(options.frontDoor ? { frontDoor: options.frontDoor } : {}),
          flows: options.flows?.requests === false ? null : { sampleRate: options.flows?.sampleRate ?? 1, bufferSize: ring.size },
          rateLimit,
          sessionKey,
          accessLog: { ...accessLog, onByDefault: options.flows?.accessLog !== undefined },
        },
      });
      const workerFlows = new WorkerFlows(ring, pool);
      this.flows = workerFlows;
      this.rateLimits = pool;
      this.dataplane = pool;
      return;
    }
    const rateLimits = new RateLimitService({ registry, logger: logger.child({ component: 'ratelimit' }), ...rateLimit });
    this.rateLimits = rateLimits;
    const flows = options.flows?.requests === false ? {} : { flows: { buffer: this.flows, sampleRate: options.flows?.sampleRate ?? 1 } };
    this.dataplane = new Dataplane({
      ...flows, portOffset: options.portOffset, redirectPortOffset: options.redirectPortOffset ?? 0, logger, registry, rateLimits, sessionKey, ...(options.frontDoor ? { frontDoor: options.frontDoor } : {}) });
    this.closeRateLimits = () => rateLimits.close();
  }

  /**
   * With --workers, a version apply() returned as served and the workers took back later (it ended
   * some of them 3 times: SLU_VERSION_CRASHED): `serving` is the IR served again, the one before it
   * (null: none). The kernel part is put back here; the listener updates what it reports.
   */
  onTakenBack(listener: (rejected: VersionRejected, serving: IR | null) => void): void {
    this.takenBackListeners.push(listener);
  }

  private takenBack(rejected: VersionRejected, serving: string | null): void {
    const refused = this.good;
    if (refused === null || refused.version === serving) return;
    this.good = this.previous?.version === serving ? this.previous : null;
    this.previous = null;
    this.restoreKernel(refused, this.given);
    if (this.good !== null) this.accessLog.configure(gatewayAccessLogs(this.good.http));
    for (const listener of this.takenBackListeners) listener(rejected, this.good);
  }

  /** The in-process rate limiter's Redis connection (workers close their own). */
  private readonly closeRateLimits: () => Promise<void> = async () => undefined;

  /** The version being served, or null before the first. */
  get version(): string | null {
    return this.dataplane.version;
  }

  /** With --workers, the version each worker serves; undefined with one thread. */
  workers(): WorkerVersion[] | undefined {
    return this.dataplane instanceof WorkerPool ? this.dataplane.workerVersions() : undefined;
  }

  /**
   * Applies one IR version (logging each port that could not be bound). The kernel learns the VIPs
   * before the proxy starts connecting to them, so a version is all or nothing from the outside: one
   * the proxy does not serve has its kernel part replaced by the served version's again.
   * Throws when the BPF maps cannot be written (the agent puts back what they held); the proxy then
   * keeps the last good version. Throws VersionRejected when the dataplane refused the version
   * (every worker's, or the one thread's): the last good one keeps serving, in the kernel too. With
   * --workers, VersionLate when no worker applied it in time (its `settled` settles as this would
   * have, the kernel rolled back when it is rejected).
   */
  async apply(ir: IR): Promise<ApplyResult> {
    // Known bad (it crashed the workers before): refused (and counted) by the pool at once, the kernel not even written.
    if (this.dataplane.refuses?.(ir.version) === true) await this.dataplane.apply(ir.version, ir.http, ir.l4);
    this.agent?.apply(ir.l4);
    const given = ++this.given;
    const http = this.agent ? viaServiceVips(ir.http, ir.l4) : ir.http;
    let outcome: ApplyResult;
    try {
      outcome = await this.dataplane.apply(ir.version, http, ir.l4);
    } catch (err) {
      if (err instanceof VersionLate) {
        throw new VersionLate(err.detail, err.settled.then((settled) => {
          if (settled instanceof VersionRejected) this.restoreKernel(ir, given);
          else if (settled !== null) this.served(ir, settled);
          return settled;
        }));
      }
      // Refused or failed: the proxy keeps the last good version, and so does the kernel.
      this.restoreKernel(ir, given);
      throw err;
    }
    // The one-thread Dataplane answers a version it refused (a compile error) with every listener
    // failed and keeps the last good table: not served, as the workers report it.
    if (this.dataplane.version !== ir.version) {
      this.restoreKernel(ir, given);
      throw new VersionRejected(VERSION_REJECTED, `version ${ir.version} was not applied (${outcome.listeners.find((l) => l.error !== undefined)?.error ?? 'refused'}); still serving ${this.dataplane.version ?? 'nothing'}`);
    }
    return this.served(ir, outcome);
  }

  /**
   * The kernel part of a version the proxy does not serve replaced by the served version's (none
   * before the first: Service VIPs and policy of no version), unless a newer version was given to
   * the kernel since. Rewriting only overwrites what differs and deletes last, as every version's
   * write; a write that fails leaves the maps as they were before it (BpfAgent.apply).
   */
  private restoreKernel(refused: IR, given: number): void {
    if (this.agent === null || given !== this.given) return;
    const serving = this.good?.version ?? null;
    try {
      this.agent.apply(this.good?.l4 ?? NO_L4);
      this.logger.warn({ version: refused.version, serving }, `eBPF: version ${refused.version} is not served; its Service VIPs and network policy were taken out of the kernel again (${serving === null ? 'no version is served' : `back to version ${serving}, the one served`})`);
    } catch (err) {
      this.logger.error({ version: refused.version, serving, err: (err as Error).message }, `eBPF: version ${refused.version} is not served, and its kernel part could not be replaced: ${(err as Error).message}`);
    }
  }

  /** What follows a version served: the access log's Gateways, each port not bound logged. */
  private served(ir: IR, outcome: ApplyResult): ApplyResult {
    this.previous = this.good;
    this.good = ir;
    this.accessLog.configure(gatewayAccessLogs(ir.http));
    for (const l of outcome.listeners) if (!l.ok) this.logger.error({ listener: l.name, error: l.error }, `cannot listen on ${l.name}: ${l.error ?? 'failed'}`);
    return outcome;
  }

  async close(): Promise<void> {
    await this.dataplane.close();
    await this.closeRateLimits();
    await this.accessLog.close();
    this.agent?.close();
    this.dedicatedCgroup?.release();
  }
}

/**
 * Why DataplaneNode.apply did not serve `version`, with its stable code: the refusal's or the late
 * apply's own, else SLU_APPLY_FAILED (e.g. the eBPF maps could not be written) — what `sluice run`
 * lists in /api/status and `sluice dataplane` acknowledges (`error`: the code, then the message).
 */
export function applyProblem(err: unknown, version: string, serving: string | null): Problem {
  if (err instanceof VersionRejected || err instanceof VersionLate) return { code: err.code, message: err.detail };
  return { code: 'SLU_APPLY_FAILED', message: `version ${version} could not be applied (${(err as Error).message}); still serving ${serving ?? 'nothing'}` };
}

/** The dataplane; `--bpf on` where eBPF cannot run is a failed startup check (one line), not a stack trace. */
export function startNode(options: DataplaneNodeOptions): DataplaneNode {
  try {
    return new DataplaneNode(options);
  } catch (err) {
    if (!(err instanceof BpfUnavailable)) throw err;
    throw new StartupCheckFailed([{ code: 'SLU_STARTUP_BPF', message: `--bpf on, but eBPF is unavailable here: ${err.reason}; fix that, or use --bpf auto (userspace when unavailable)` }]);
  }
}

/** `--bpf on` where eBPF cannot run: the process must not start. */
export class BpfUnavailable extends Error {
  readonly reason: string;

  constructor(reason: string) {
    super(`--bpf on: eBPF is unavailable: ${reason}`);
    this.name = 'BpfUnavailable';
    this.reason = reason;
  }
}

/** The BPF agent, or null (with one log line saying why) when eBPF is off or unavailable. */
function startBpfAgent(options: BpfOptions | undefined, logger: Logger, registry: Registry): { agent: BpfAgent | null; dedicated: DedicatedCgroup | null } {
  const off = { agent: null, dedicated: null };
  if (!options) return off;
  if (options.mode === 'off') {
    logger.info('eBPF off (--bpf off): endpoints are picked in userspace and network policy is not enforced');
    return off;
  }
  let cgroupPath = options.cgroupPath ?? null;
  let pinDir = options.pinDir;
  let dedicated: DedicatedCgroup | null = null;
  let unavailable = 'no cgroup v2 mount';
  if (!cgroupPath && options.dedicatedCgroup) {
    // A cgroup of our own is made only where eBPF can work: nothing to undo otherwise.
    const why = bpfUnavailableReason();
    const entered = why ? { reason: why } : enterDedicatedCgroup(options.pinDir);
    if ('reason' in entered) unavailable = entered.reason;
    else ({ path: cgroupPath, pinDir } = dedicated = entered);
  } else {
    cgroupPath ??= ownCgroupPath();
  }
  const started = cgroupPath
    ? BpfAgent.start({ pinDir, cgroupPath, traceForwarded: options.traceForwarded, logger: logger.child({ component: 'bpf' }), registry })
    : { reason: unavailable };
  if ('agent' in started) {
    logger.info({ pinDir, cgroup: cgroupPath, dedicated: dedicated !== null }, 'eBPF on: the kernel picks endpoints for Service VIPs and enforces network policy');
    return { agent: started.agent, dedicated };
  }
  dedicated?.release();
  if (options.mode === 'on') throw new BpfUnavailable(started.reason);
  logger.info({ reason: started.reason }, `eBPF off (${started.reason}): endpoints are picked in userspace and network policy is not enforced`);
  return off;
}
