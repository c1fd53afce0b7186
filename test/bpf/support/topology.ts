// A small network made by the test itself: one client namespace (no default
// route, so an untranslated VIP fails locally with ENETUNREACH instead of
// leaving the machine) wired by veth pairs to N backend namespaces, plus a
// cgroup v2 folder the client processes run in (the BPF programs attach there).
// Names carry the test's pid; `destroy()` removes everything it made.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount } from '../../../bpf/agent/environment.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const NODE = process.execPath;

export interface Topology {
  id: string;
  clientNetns: string;
  /** Backend i (1-based) answers on `backendAddress(i)`. */
  backendAddress(i: number): string;
  backendNetns(i: number): string;
  cgroupPath: string;
  pinDir: string;
  /** Runs a Node script in the client namespace and cgroup; resolves with its stdout. */
  runClient(script: string, args: string[]): Promise<string>;
  /** Starts a Node script in the client namespace and cgroup. */
  spawnClient(script: string, args: string[]): ChildProcess;
  /** Runs a Node script in backend i's namespace (outside the cgroup); resolves with its stdout. */
  runInBackend(i: number, script: string, args: string[]): Promise<string>;
  /** Starts the echo backends (each answers its name, `be<i>`, on the given ports). */
  startBackends(ports: number[]): Promise<void>;
  destroy(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeTopology(backends: number): Topology {
  const id = `${process.pid % 100000}`;
  const clientNetns = `slc-${id}`;
  const backendNetns = (i: number) => `slb${i}-${id}`;
  const backendAddress = (i: number) => `10.201.${i}.2`;
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup v2 mount');
  const cgroupPath = join(mount, `sluice-test-${id}`);
  const pinDir = `/sys/fs/bpf/sluice-test-${id}`;
  const children = new Set<ChildProcess>();

  const destroy = (): void => {
    for (const child of children) child.kill('SIGKILL');
    for (const ns of [clientNetns, ...Array.from({ length: backends }, (_, i) => backendNetns(i + 1))]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // not made yet
      }
    }
    try {
      execFileSync('rm', ['-rf', pinDir]);
    } catch {
      // nothing pinned
    }
    // The cgroup can only go once its processes are gone; they were SIGKILLed above.
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        rmdirSync(cgroupPath);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        execFileSync('sleep', ['0.05']);
      }
    }
  };

  try {
    ip('netns', 'add', clientNetns);
    ip('-n', clientNetns, 'link', 'set', 'lo', 'up');
    for (let i = 1; i <= backends; i++) {
      const ns = backendNetns(i);
      ip('netns', 'add', ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      const clientSide = `slc${i}-${id}`;
      const backendSide = `slb${i}-${id}`;
      ip('link', 'add', clientSide, 'netns', clientNetns, 'type', 'veth', 'peer', 'name', backendSide, 'netns', ns);
      ip('-n', clientNetns, 'addr', 'add', `10.201.${i}.1/24`, 'dev', clientSide);
      ip('-n', ns, 'addr', 'add', `${backendAddress(i)}/24`, 'dev', backendSide);
      ip('-n', clientNetns, 'link', 'set', clientSide, 'up');
      ip('-n', ns, 'link', 'set', backendSide, 'up');
    }
    mkdirSync(cgroupPath, { recursive: true });
  } catch (err) {
    destroy();
    throw err;
  }

  // nsenter, not `ip netns exec`: the latter remounts /sys and hides bpffs and cgroups.
  const inNetns = (ns: string, cgroup: string | null, script: string, args: string[]): ChildProcess => {
    const enterCgroup = cgroup ? `echo $$ > ${cgroup}/cgroup.procs && ` : '';
    const child = spawn(
      'nsenter',
      [`--net=/var/run/netns/${ns}`, '--', 'sh', '-c', `${enterCgroup}exec "$@"`, 'sh', NODE, '--disable-warning=ExperimentalWarning', script, ...args],
      { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT },
    );
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };

  return {
    id,
    clientNetns,
    backendAddress,
    backendNetns,
    cgroupPath,
    pinDir,
    spawnClient: (script, args) => inNetns(clientNetns, cgroupPath, script, args),
    runClient: (script, args) => output(inNetns(clientNetns, cgroupPath, script, args), script),
    runInBackend: (i, script, args) => output(inNetns(backendNetns(i), null, script, args), script),
    startBackends: async (ports) => {
      const ready: Promise<void>[] = [];
      for (let i = 1; i <= backends; i++) {
        const child = inNetns(backendNetns(i), null, join(ROOT, 'test/bpf/support/backend.ts'), [`be${i}`, ...ports.map(String)]);
        ready.push(new Promise((resolve, reject) => {
          child.stdout!.once('data', () => resolve());
          child.once('exit', (code) => reject(new Error(`backend be${i} exited ${code}`)));
        }));
      }
      await Promise.all(ready);
    },
    destroy,
  };
}

function output(child: ChildProcess, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited ${code}: ${err}`))));
  });
}

/** The cgroup's processes (to check nothing of the test is left). */
export function cgroupProcesses(path: string): number[] {
  return readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value));
}
