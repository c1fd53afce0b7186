// Child processes for the benchmark (pinned with taskset), readiness probes, and per-process-tree
// resource sampling from /proc (RSS and CPU time).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, join } from 'node:path';

const OUTPUT_LIMIT = 64 * 1024;
const running = new Set<Proc>();

export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  private output = '';
  private readonly exited: Promise<void>;

  constructor(name: string, command: string[], cwd?: string) {
    this.name = name;
    const [cmd, ...args] = command;
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    const collect = (d: Buffer): void => {
      this.output += d.toString();
      if (this.output.length > OUTPUT_LIMIT) this.output = this.output.slice(-OUTPUT_LIMIT);
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.once('error', (err) => {
        collect(Buffer.from(`spawn error: ${err.message}\n`));
        resolve();
      });
    });
    running.add(this);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  logs(): string {
    return this.output;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
    if (this.alive) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    running.delete(this);
  }
}

/** Last resort on exit: whatever is still running gets SIGKILL. */
export function killAll(): void {
  for (const proc of running) {
    if (proc.alive) proc.child.kill('SIGKILL');
  }
  running.clear();
}

export { freePorts } from '../support/ports.ts';

export function findExecutable(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = join(dir, name);
    if (existsSync(file)) return file;
  }
  return null;
}

export function commandOutput(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function httpGet(port: number, path: string, headers: Record<string, string> = {}, timeoutMs = 2000): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls until `GET path` answers 200 (the process must stay alive meanwhile). */
export async function waitFor200(proc: Proc | null, port: number, path: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<HttpReply> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    if (proc !== null && !proc.alive) throw new Error(`${proc.name} exited (code ${proc.child.exitCode}, signal ${proc.child.signalCode}):\n${tail(proc.logs())}`);
    try {
      const reply = await httpGet(port, path, headers);
      if (reply.status === 200) return reply;
      last = `status ${reply.status}: ${reply.body.slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${proc?.name ?? 'server'} on port ${port}: GET ${path} not 200 after ${timeoutMs} ms (last: ${last})${proc ? `\n${tail(proc.logs())}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

const CLOCK_TICKS = Number(commandOutput('getconf', ['CLK_TCK'])) || 100;

/** `pid` and all its descendants, from the ppid field of /proc/<pid>/stat. */
function processTree(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat) parentOf.set(pid, stat.ppid);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

function readStat(pid: number): { ppid: number; cpuTicks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Busy and total ticks of one CPU from /proc/stat (busy includes steal). */
export function cpuTicks(cpu: number): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `));
    if (!line) return { busy: 0, total: 0 };
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = user + nice + system + irq + softirq + (steal || 0);
    return { busy, total: busy + idle + iowait };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** How busy `cpu` is over `ms` (0-100), from /proc/stat. */
export async function cpuBusyPercent(cpu: number, ms: number): Promise<number> {
  const a = cpuTicks(cpu);
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTicks(cpu);
  return b.total > a.total ? (100 * (b.busy - a.busy)) / (b.total - a.total) : 0;
}

export interface Usage {
  /** Highest sampled RSS of the process tree, MB. */
  rssMb: number;
  /** CPU time of the tree over the sampled interval, % of one core. */
  cpuPercent: number;
  /**
   * Busy time of the tree's CPU not spent by the tree (other processes, interrupts), % of that
   * CPU: interference from whatever else runs on the machine. NaN when not sampled.
   */
  otherPercent: number;
}

/** Samples a process tree's RSS every second and its CPU time between start and stop. */
export class UsageSampler {
  private readonly pids: number[];
  private readonly startTicks: number;
  private readonly startedAt = performance.now();
  private maxRssKb = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly cpu: number | null;
  private readonly startCpu: { busy: number; total: number } | null;

  /** `cpu`: the CPU the tree is pinned to, for the interference measure (null: none). */
  constructor(root: number, cpu: number | null) {
    this.pids = processTree(root);
    this.cpu = cpu;
    this.startCpu = cpu === null ? null : cpuTicks(cpu);
    this.startTicks = this.ticks();
    this.timer = setInterval(() => this.sample(), 1000);
  }

  private ticks(): number {
    let sum = 0;
    for (const pid of this.pids) sum += readStat(pid)?.cpuTicks ?? 0;
    return sum;
  }

  private sample(): void {
    let kb = 0;
    for (const pid of this.pids) kb += rssKb(pid);
    this.maxRssKb = Math.max(this.maxRssKb, kb);
  }

  stop(): Usage {
    clearInterval(this.timer);
    this.sample();
    const seconds = (performance.now() - this.startedAt) / 1000;
    const ownTicks = this.ticks() - this.startTicks;
    const cpuSeconds = ownTicks / CLOCK_TICKS;
    let otherPercent = Number.NaN;
    if (this.cpu !== null && this.startCpu !== null) {
      const end = cpuTicks(this.cpu);
      const total = end.total - this.startCpu.total;
      if (total > 0) otherPercent = Math.max(0, (100 * (end.busy - this.startCpu.busy - ownTicks)) / total);
    }
    return { rssMb: this.maxRssKb / 1024, cpuPercent: seconds > 0 ? (100 * cpuSeconds) / seconds : 0, otherPercent };
  }
}
