// Starts a real `sluice run` child process for end-to-end tests and waits
// until its admin API says it is ready.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { freePort, freePortOffset } from './ports.ts';

export { freePort };

const ROOT = join(import.meta.dirname, '..', '..');

export interface SluiceProcess {
  admin: string;
  /** The child's process id (for prlimit and the like). */
  pid: number;
  /** Everything the process printed so far. */
  logs(): string;
  status(): Promise<any[]>;
  stop(): Promise<void>;
}


export interface StartOptions {
  /** Started under this descriptor limit (soft and hard, `prlimit --nofile`, as `ulimit -n` would). */
  descriptorLimit?: number;
  /** Options for the child's Node itself, before the script (e.g. `--heapsnapshot-signal=SIGUSR2`). */
  nodeArgs?: string[];
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/** The startup check's line when the admin port a test picked is one of the listener ports (both picked free, neither held). */
const ADMIN_PORT_CLASH = /SLU_STARTUP_PORT .*(?:is also wanted by the admin API|\(the admin API\) is already in use)/;

export async function startSluice(args: string[], readyTimeoutMs = 15000, options: StartOptions = {}): Promise<SluiceProcess> {
  // The admin port and the test's listener offset are each free when picked but not held: they can
  // coincide (seen once in CI). Sluice refuses that at start (exit 3); pick another admin port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSluiceOnce(args, readyTimeoutMs, options);
    } catch (error) {
      if (attempt >= 3 || !ADMIN_PORT_CLASH.test((error as Error).message)) throw error;
    }
  }
}

async function startSluiceOnce(args: string[], readyTimeoutMs: number, options: StartOptions): Promise<SluiceProcess> {
  const adminPort = await freePort();
  const admin = `http://127.0.0.1:${adminPort}`;
  // eBPF stays off unless a test asks for it: tests run side by side and must not share pinned maps.
  const command = [process.execPath, '--disable-warning=ExperimentalWarning', ...(options.nodeArgs ?? []), join(ROOT, 'bin', 'sluice.js'), 'run', '--admin-address', `127.0.0.1:${adminPort}`, ...(args.includes('--bpf') ? [] : ['--bpf', 'off']), ...args];
  if (options.descriptorLimit !== undefined) command.unshift('prlimit', `--nofile=${options.descriptorLimit}:${options.descriptorLimit}`, '--');
  const child: ChildProcess = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...(options.env ? { env: options.env } : {}) });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sluice exited with ${child.exitCode}:\n${output}`);
    try {
      const r = await fetch(`${admin}/readyz`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`sluice not ready after ${readyTimeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    admin,
    pid: child.pid!,
    logs: () => output,
    status: async () => ((await (await fetch(`${admin}/api/status`)).json()) as { items: any[] }).items,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/**
 * `sluice run --manifests dir` with its port-80 listener moved to a free port, returned once
 * `ready(port)` gives 200 (by default GET /ready there answers 200).
 */
export async function runServing(
  dir: string,
  flags: string[] = [],
  ready: (port: number) => Promise<number> = (port) => fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status),
): Promise<{ sluice: SluiceProcess; port: number }> {
  const offset = await freePortOffset([80]);
  const port = 80 + offset;
  const sluice = await startSluice(['--manifests', dir, '--listener-port-offset', String(offset), ...flags], 30_000);
  for (let tries = 0; (await ready(port).catch(() => 0)) !== 200; tries++) {
    if (tries > 200) {
      await sluice.stop();
      throw new Error(`not served\n${sluice.logs()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { sluice, port };
}
