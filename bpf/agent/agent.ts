// The BPF agent: loads bpf/build/{sock_lb,policy}.o with maps pinned under
// <pinDir>/maps, attaches every program to the gateway's cgroup through links
// pinned under <pinDir>/links (a restart swaps programs atomically, so no
// connection sees a gap), turns each ir.l4 into map entries, and turns ring
// buffer events into flow records.
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { IDENTITY_INGRESS, type L4IR } from '../../ir/types.ts';
import { loadNative, type LoadedObject, type RingBufHandle, type SluiceBpfNative } from '../native/index.ts';
import { COUNTER, COUNTER_SLOTS, checkCodec, decodeFlowEvent, u32Key } from './codec.ts';
import { MAP_ORDER, desiredState, type DesiredOptions, type DesiredState, type ManagedMap } from './desired.ts';
import { bpfUnavailableReason } from './environment.ts';
import { FlowContext, flowMatches, type FlowFilter, type FlowRecord } from './flows.ts';
import { reconcileOrRestore, type MapHandle, type ReconcileStats } from './reconcile.ts';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/sluice';
export const OBJECTS_DIR = join(import.meta.dirname, '..', 'build');
const OBJECTS = ['sock_lb.o', 'policy.o'];
const KEPT_FLOWS = 1000;

export interface AgentOptions {
  /** Where maps and links are pinned; one folder per Sluice instance on a host. */
  pinDir: string;
  /** The gateway's cgroup (v2 directory): programs attach here and its sockets carry the ingress identity. */
  cgroupPath: string;
  /** Emit a flow for every forwarded connection too, not only drops and audits (default true). */
  traceForwarded?: boolean;
  objectsDir?: string;
  logger: Logger;
  registry?: Registry;
}

export type AgentStart = { agent: BpfAgent } | { reason: string };

export class BpfAgent {
  private readonly objects: LoadedObject[] = [];
  private readonly maps: Record<ManagedMap, MapHandle>;
  private ringBuf: RingBufHandle | null = null;
  private readonly context = new FlowContext();
  private readonly recent: FlowRecord[] = [];
  private readonly followers = new Set<(flow: FlowRecord) => void>();
  private readonly cgroupId: bigint;
  private readonly possibleCpus: number;
  private readonly verdicts: Counter<'verdict' | 'direction' | 'namespace'> | null;
  private lastCounters = new Array<number>(COUNTER_SLOTS).fill(0);
  private closed = false;
  /** The state last written whole (null before the first apply): what a failed write goes back to. */
  private written: DesiredState | null = null;

  /** Loads and attaches, or says why it cannot (never throws for a missing capability). */
  static start(options: AgentOptions): AgentStart {
    const why = bpfUnavailableReason();
    if (why) return { reason: why };
    const loaded = loadNative();
    if ('reason' in loaded) return { reason: loaded.reason };
    try {
      return { agent: new BpfAgent(loaded.native, options) };
    } catch (err) {
      return { reason: (err as Error).message };
    }
  }

  private readonly native: SluiceBpfNative;
  private readonly options: AgentOptions;
  private countersFd = -1;

  private constructor(native: SluiceBpfNative, options: AgentOptions) {
    this.native = native;
    this.options = options;
    const dir = options.objectsDir ?? OBJECTS_DIR;
    mkdirSync(join(options.pinDir, 'maps'), { recursive: true });
    mkdirSync(join(options.pinDir, 'links'), { recursive: true });
    this.cgroupId = statSync(options.cgroupPath, { bigint: true }).ino;
    this.possibleCpus = native.numPossibleCpus();
    try {
      for (const file of OBJECTS) {
        const path = join(dir, file);
        const problems = checkCodec(native.btfStructs(path));
        if (problems.length) throw new Error(`${file} does not match the agent's codec: ${problems.join('; ')}`);
        this.objects.push(native.openObject(path, join(options.pinDir, 'maps')));
      }
      const all = Object.assign({}, ...this.objects.map((o) => o.maps)) as LoadedObject['maps'];
      this.maps = Object.fromEntries(MAP_ORDER.map((name) => {
        const m = all[name];
        if (!m) throw new Error(`map ${name} is missing from the BPF objects`);
        return [name, m];
      })) as unknown as Record<ManagedMap, MapHandle>;
      // Programs first attach (or swap in) only after the maps are open, so the links never point at a program without its state.
      for (const object of this.objects) {
        for (const program of Object.keys(object.programs)) {
          native.attachCgroup(object.handle, program, options.cgroupPath, join(options.pinDir, 'links', program));
        }
      }
      this.ringBuf = new native.RingBuf(all.sl_events!.fd, (samples) => this.onSamples(samples));
      this.countersFd = all.sl_counters!.fd;
    } catch (err) {
      this.close();
      throw err;
    }
    this.verdicts = options.registry ? new Counter({
      name: 'sluice_policy_verdict_total',
      help: 'Connections from the gateway by policy verdict (from flow events)',
      labelNames: ['verdict', 'direction', 'namespace'],
      registers: [options.registry],
    }) : null;
    if (options.registry) {
      const self = this;
      new Counter({
        name: 'sluice_drops_total',
        help: 'Connections and packets the BPF programs refused, by reason (kernel counters)',
        labelNames: ['reason'],
        registers: [options.registry],
        collect() {
          const now = self.counters();
          const delta = (i: number): number => Math.max(0, now[i]! - self.lastCounters[i]!);
          this.inc({ reason: 'POLICY_DENY' }, delta(COUNTER.dropPolicyDeny));
          this.inc({ reason: 'DEFAULT_DENY' }, delta(COUNTER.dropDefaultDeny));
          this.inc({ reason: 'NO_BACKEND' }, delta(COUNTER.dropNoBackend));
          self.lastCounters = now;
        },
      });
    }
  }

  /**
   * Writes the maps for this IR; returns what changed. All or nothing: when a write fails (the
   * kernel refuses an entry, or memory) the maps are put back to the state last written whole —
   * none before the first: emptied — and the error thrown says whether that worked.
   */
  apply(l4: L4IR): ReconcileStats {
    const { state, skipped } = desiredState(l4, this.desiredOptions());
    for (const line of skipped) this.options.logger.warn({ component: 'bpf' }, line);
    const stats = reconcileOrRestore(this.native, this.maps, state, this.written ?? desiredState({ services: [] }, this.desiredOptions()).state);
    this.written = state;
    this.context.update(l4);
    return stats;
  }

  private desiredOptions(): DesiredOptions {
    return { gatewayCgroups: [{ id: this.cgroupId, identity: IDENTITY_INGRESS }], traceForwarded: this.options.traceForwarded ?? true };
  }

  /** Kernel counters summed over CPUs, indexed by COUNTER. */
  counters(): number[] {
    const out = new Array<number>(COUNTER_SLOTS).fill(0);
    for (let i = 0; i < COUNTER_SLOTS; i++) {
      const value = this.native.mapLookup(this.countersFd, u32Key(i), this.possibleCpus * 8);
      if (!value) continue;
      for (let cpu = 0; cpu < this.possibleCpus; cpu++) out[i]! += Number(value.readBigUInt64LE(cpu * 8));
    }
    return out;
  }

  /** The latest flows (oldest first) that pass the filter. */
  flows(filter: FlowFilter = {}): FlowRecord[] {
    return this.recent.slice(-KEPT_FLOWS).filter((f) => flowMatches(f, filter));
  }

  /** Calls `listener` for every new flow until the returned function is called. */
  follow(listener: (flow: FlowRecord) => void): () => void {
    this.followers.add(listener);
    return () => this.followers.delete(listener);
  }

  /** Stops reading events and closes the objects. Links and maps stay pinned: the programs keep working for the next agent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ringBuf?.close();
    this.ringBuf = null;
    for (const object of this.objects) this.native.closeObject(object.handle);
    this.followers.clear();
  }

  private onSamples(samples: Buffer[]): void {
    // bpf_ktime_get_ns and process.hrtime share CLOCK_MONOTONIC: convert once per batch.
    const nowNs = process.hrtime.bigint();
    const nowMs = Date.now();
    for (const sample of samples) {
      let flow: FlowRecord;
      try {
        const event = decodeFlowEvent(sample);
        flow = this.context.record(event, nowMs - Number(nowNs - event.tsNs) / 1e6);
      } catch (err) {
        this.options.logger.warn({ component: 'bpf', err: (err as Error).message }, 'unreadable flow event');
        continue;
      }
      this.recent.push(flow);
      // Trim in batches: shift() per event would move 1000 entries for every event of a flood.
      if (this.recent.length >= 2 * KEPT_FLOWS) this.recent.splice(0, this.recent.length - KEPT_FLOWS);
      this.verdicts?.inc({ verdict: flow.verdict, direction: flow.direction, namespace: flow.destination.namespace ?? '' });
      for (const follower of this.followers) follower(flow);
    }
  }
}

/** Removes every pin of an instance: the kernel detaches its programs and frees its maps. */
export function removePins(pinDir: string): void {
  rmSync(pinDir, { recursive: true, force: true });
}
