// Runs a `sluice` command (`run`, `controller`, `dataplane`) as a child process and talks to its
// admin API.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { sleep } from './poll.ts';

export interface SluiceOptions {
  projectRoot: string;
  /** Arguments after `bin/sluice.js`, e.g. runArgs(...). */
  args: string[];
  adminAddress: string;
  logFile: string;
  /** How messages name the process (default "sluice"). */
  label?: string;
}

/** Arguments of `sluice run` for the conformance runner. */
export function runArgs(o: {
  manifestDir: string;
  bindAddress: string;
  portOffset: number;
  adminAddress: string;
  controllerName: string;
  extraArgs?: string[];
}): string[] {
  return [
    'run',
    '--manifests',
    o.manifestDir,
    '--bind-address',
    o.bindAddress,
    '--listener-port-offset',
    String(o.portOffset),
    // The suite adds the offset itself, as a Service would, and expects the spec's redirect ports.
    '--redirect-port-offset',
    '0',
    '--admin-address',
    o.adminAddress,
    '--controller-name',
    o.controllerName,
    // Conformance runs side by side with other suites: no shared pinned BPF state.
    '--bpf',
    'off',
    ...(o.extraArgs ?? []),
  ];
}

export class SluiceProcess {
  readonly options: SluiceOptions;
  #child: ChildProcess | undefined;
  #log: WriteStream | undefined;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  #exited: Promise<void> = Promise.resolve();

  constructor(options: SluiceOptions) {
    this.options = options;
  }

  get label(): string {
    return this.options.label ?? 'sluice';
  }

  get adminUrl(): string {
    return `http://${this.options.adminAddress}`;
  }

  /** Set once the process exited (unexpectedly or not). */
  get exitInfo(): string | undefined {
    if (!this.#exit) return undefined;
    return this.#exit.signal ? `signal ${this.#exit.signal}` : `exit code ${this.#exit.code}`;
  }

  start(): void {
    const o = this.options;
    this.#log = createWriteStream(o.logFile, { flags: 'a' });
    const args = ['--disable-warning=ExperimentalWarning', 'bin/sluice.js', ...o.args];
    this.#log.write(`# ${process.execPath} ${args.join(' ')}\n`);
    const child = spawn(process.execPath, args, { cwd: o.projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout?.pipe(this.#log, { end: false });
    child.stderr?.pipe(this.#log, { end: false });
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        this.#log?.write(`# ${this.label} exited: ${signal ? `signal ${signal}` : `code ${code}`}\n`);
        resolve();
      });
      child.once('error', (err) => {
        this.#exit = { code: -1, signal: null };
        this.#log?.write(`# cannot start ${this.label}: ${err.message}\n`);
        resolve();
      });
    });
  }

  /** Polls GET /readyz until 200; throws when Sluice exits or the timeout passes. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (this.#exit) throw new Error(`${this.label} ${this.exitInfo} before becoming ready`);
      try {
        const res = await fetch(`${this.adminUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
        last = `readyz answered ${res.status}: ${(await res.text()).trim()}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(200);
    }
    throw new Error(`${this.label} not ready after ${Math.round(timeoutMs / 1000)} s (${last})`);
  }

  /** GET /api/status items. */
  async status(): Promise<any[]> {
    if (this.#exit) throw new Error(`${this.label} ${this.exitInfo}`);
    const res = await fetch(`${this.adminUrl}/api/status`, { signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`GET /api/status answered ${res.status}`);
    const body = (await res.json()) as { items?: unknown };
    if (!Array.isArray(body.items)) throw new Error('GET /api/status: no items list');
    return body.items;
  }

  /** GET /api/config version (the configuration in force), or undefined when there is none or no answer. */
  async configVersion(): Promise<string | undefined> {
    if (this.#exit) return undefined;
    try {
      const res = await fetch(`${this.adminUrl}/api/config`, { signal: AbortSignal.timeout(5000) });
      if (res.status !== 200) return undefined;
      return ((await res.json()) as { version?: string }).version;
    } catch {
      return undefined;
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child && !this.#exit) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => (this.#log ? this.#log.end(() => resolve()) : resolve()));
  }

  /** Synchronous best-effort kill (process 'exit' handlers). */
  killNow(): void {
    if (this.#child && !this.#exit) this.#child.kill('SIGKILL');
  }
}

export { freePort } from '../../support/ports.ts';
