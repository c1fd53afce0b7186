// Where a suite's objects go and where Sluice runs (`--target`). The suites talk only to a
// SluiceTarget:
//   standalone  one `sluice run` watching the ManifestStore's folder; what Sluice read and the
//               statuses it computed both come from its admin /api/status.
//   kubernetes  (./kubernetes-target.ts) a real kube-apiserver + etcd, `sluice controller` and
//               `sluice dataplane`; flush() applies the objects through the API, what Sluice read
//               comes from the controller's /api/status (its informers), statuses from the real
//               objects through the API.

import { randomInt } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunnerArgs, TargetName } from './args.ts';
import { keyOf, ManifestStore, pendingSync, type KObject } from './manifest-store.ts';
import type { Reporter } from './report.ts';
import { freePort, runArgs, SluiceProcess } from './sluice-process.ts';

export interface SluiceTarget {
  readonly name: TargetName;
  /** Holds the manifests (a record of them for kubernetes) and the logs. */
  readonly tempDir: string;
  /** The objects the suite wants; `await store.flush()` makes them real. */
  readonly store: ManifestStore;
  /** What listeners bind: an address or IPv4 CIDR (Gateways get their own address from it). */
  readonly bindAddress: string;
  /**
   * First two octets for echo pods' addresses when the suite's loopback default cannot be used
   * (kubernetes: the API refuses loopback endpoints); undefined: the suite's default.
   */
  readonly podPrefix: string | undefined;
  /** Log files of every Sluice process started so far. */
  readonly logFiles: string[];
  /** Set once a Sluice process exited. */
  readonly exitInfo: string | undefined;
  /** True between a successful start() and stop(). */
  readonly running: boolean;
  /** Makes flush() work (kubernetes: starts the API server); start() does it too. Idempotent. */
  prepare(): Promise<void>;
  /** Starts Sluice (the first call also prepares the target), with extra controller flags. */
  start(extraArgs?: string[]): Promise<void>;
  /** Stops Sluice; start() may follow. */
  stop(): Promise<void>;
  /** Stops everything the target started. */
  close(): Promise<void>;
  /** Synchronous best-effort kill (process 'exit' handlers). */
  killNow(): void;
  /** Every object Sluice has read, as its admin /api/status lists them. */
  listed(): Promise<any[]>;
  /** The objects of `kinds` with the status the checks judge. */
  statusObjects(kinds: readonly string[]): Promise<any[]>;
  /** The configuration version the dataplane serves. */
  configVersion(): Promise<string | undefined>;
  /** What of `present` / `absent` the listed items do not reflect yet (pendingSync). */
  pending(listed: any[], present: KObject[], absent: KObject[], relevant?: (o: KObject) => boolean): string[];
  /** Objects the last flushes could not make real (API refusals), then forgotten. */
  takeApplyProblems(): string[];
}

export interface TargetOptions {
  projectRoot: string;
  args: RunnerArgs;
  report: Reporter;
  /** Temp folder name prefix. */
  tempPrefix: string;
}

export function defaultBindAddress(args: RunnerArgs): string {
  return args.bindAddress ?? `127.${randomInt(100, 200)}.0.0/16`;
}

export function listedIndex(items: any[]): Map<string, any> {
  return new Map(items.filter((i) => typeof i?.kind === 'string' && i.metadata?.name).map((i) => [keyOf(i), i]));
}

/** What both targets keep: the temp folder, the manifest store, the bind range, the logs. */
export abstract class TargetBase {
  readonly tempDir: string;
  readonly store: ManifestStore;
  readonly bindAddress: string;
  readonly logFiles: string[] = [];
  protected readonly opts: TargetOptions;

  constructor(opts: TargetOptions) {
    this.opts = opts;
    this.tempDir = mkdtempSync(join(tmpdir(), opts.tempPrefix));
    this.store = new ManifestStore(join(this.tempDir, 'manifests'));
    this.bindAddress = defaultBindAddress(opts.args);
  }

  /** A Sluice child process whose output goes to a new log file in the temp folder. */
  protected sluice(label: string, adminAddress: string, logName: string, args: string[]): SluiceProcess {
    const logFile = join(this.tempDir, logName);
    this.logFiles.push(logFile);
    const proc = new SluiceProcess({ projectRoot: this.opts.projectRoot, label, adminAddress, logFile, args });
    process.once('exit', () => proc.killNow());
    return proc;
  }
}

export class StandaloneTarget extends TargetBase implements SluiceTarget {
  readonly name = 'standalone' as const;
  readonly podPrefix = undefined;
  #proc: SluiceProcess | undefined;

  get exitInfo(): string | undefined {
    return this.#proc?.exitInfo;
  }

  async prepare(): Promise<void> {}

  get running(): boolean {
    return Boolean(this.#proc && !this.#proc.exitInfo);
  }

  async start(extraArgs: string[] = []): Promise<void> {
    await this.stop();
    const { args, report } = this.opts;
    const adminAddress = `127.0.0.1:${await freePort('127.0.0.1')}`;
    const logName = this.logFiles.length ? `sluice-${this.logFiles.length + 1}.log` : 'sluice.log';
    const runFlags = { manifestDir: this.store.dir, bindAddress: this.bindAddress, portOffset: args.portOffset, adminAddress, controllerName: args.controllerName, extraArgs };
    const proc = this.sluice('sluice', adminAddress, logName, runArgs(runFlags));
    this.#proc = proc;
    report.verbose(`temp dir ${this.tempDir}; sluice run ${extraArgs.join(' ')} (admin ${adminAddress}, gateways in ${this.bindAddress}, port offset ${args.portOffset}, log ${logName})`);
    proc.start();
    await proc.waitReady(60_000);
  }

  async stop(): Promise<void> {
    await this.#proc?.stop();
    this.#proc = undefined;
  }

  close(): Promise<void> {
    return this.stop();
  }

  killNow(): void {
    this.#proc?.killNow();
  }

  listed(): Promise<any[]> {
    if (!this.#proc) return Promise.reject(new Error('sluice is not running'));
    return this.#proc.status();
  }

  async statusObjects(kinds: readonly string[]): Promise<any[]> {
    return (await this.listed()).filter((i) => kinds.includes(i?.kind));
  }

  async configVersion(): Promise<string | undefined> {
    return this.#proc?.configVersion();
  }

  pending(listed: any[], present: KObject[], absent: KObject[], relevant?: (o: KObject) => boolean): string[] {
    const index = listedIndex(listed);
    return pendingSync((o) => index.get(keyOf(o)), present, absent, relevant);
  }

  takeApplyProblems(): string[] {
    return [];
  }
}

/** The target `--target` names; the kubernetes one is loaded only when asked for. */
export async function createTarget(opts: TargetOptions): Promise<SluiceTarget> {
  if (opts.args.target === 'kubernetes') {
    const { KubernetesTarget } = await import('./kubernetes-target.ts');
    return new KubernetesTarget(opts);
  }
  return new StandaloneTarget(opts);
}
