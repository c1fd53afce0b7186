// What the kernel side needs, checked up front so that a machine without it
// gets one clear sentence instead of a stack trace: Linux, root (CAP_BPF,
// CAP_NET_ADMIN, CAP_SYS_ADMIN), a BPF filesystem, cgroup v2 and kernel BTF.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const BPF_FS_MAGIC = 0xcafe4a11;
export const BPF_FS = '/sys/fs/bpf';

/** Why eBPF cannot be used here, or null. Mounts the BPF filesystem when it is missing and we are root. */
export function bpfUnavailableReason(): string | null {
  if (process.platform !== 'linux') return 'eBPF needs Linux';
  if (process.getuid?.() !== 0) return 'eBPF needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)';
  if (!isBpfFs(BPF_FS)) {
    try {
      execFileSync('mount', ['-t', 'bpf', 'bpf', BPF_FS], { stdio: 'ignore' });
    } catch {
      return `no BPF filesystem at ${BPF_FS} and mounting one failed`;
    }
    if (!isBpfFs(BPF_FS)) return `no BPF filesystem at ${BPF_FS}`;
  }
  if (!cgroup2Mount()) return 'no cgroup v2 mount';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'the kernel has no BTF (/sys/kernel/btf/vmlinux)';
  return null;
}

function isBpfFs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Where cgroup v2 is mounted (/sys/fs/cgroup on pure v2 hosts, /sys/fs/cgroup/unified on hybrid ones). */
export function cgroup2Mount(): string | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash > 0 && fields[dash + 1] === 'cgroup2') return fields[4]!;
  }
  return null;
}

/** This process's cgroup v2 directory. */
export function ownCgroupPath(): string | null {
  const mount = cgroup2Mount();
  if (!mount) return null;
  const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
  return line ? join(mount, line.slice(3)) : null;
}

/** A cgroup Sluice made for itself and moved into; `release()` moves the process back and removes it. */
export interface DedicatedCgroup {
  path: string;
  /** Where this process's pins go (removed by `release()` too: the kernel then detaches the programs). */
  pinDir: string;
  release(): void;
}

const DEDICATED_PREFIX = 'sluice-run-';

/**
 * Creates `<own cgroup>/sluice-run-<pid>` and moves this process into it, so programs attached there
 * see Sluice's sockets and nobody else's (the cgroup it came from may be the host's root). Its pins
 * go under `<pinRoot>/run-<pid>`. Leftovers of instances that died without releasing (SIGKILL) are
 * removed first. Under cgroup v2 a non-root cgroup holding processes may still have children as long
 * as it enables no domain controllers for them, which a cgroup holding processes cannot do anyway.
 */
export function enterDedicatedCgroup(pinRoot: string): DedicatedCgroup | { reason: string } {
  const home = ownCgroupPath();
  if (!home) return { reason: 'no cgroup v2 mount' };
  removeStaleInstances(home, pinRoot);
  const path = join(home, `${DEDICATED_PREFIX}${process.pid}`);
  const pinDir = join(pinRoot, `run-${process.pid}`);
  try {
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'cgroup.procs'), String(process.pid));
  } catch (err) {
    tryRmdir(path);
    return { reason: `cannot create and enter a cgroup of its own at ${path}: ${(err as Error).message}` };
  }
  let released = false;
  return {
    path,
    pinDir,
    release() {
      if (released) return;
      released = true;
      rmSync(pinDir, { recursive: true, force: true });
      tryRmdir(pinRoot); // only when no other instance pins there
      try {
        writeFileSync(join(home, 'cgroup.procs'), String(process.pid));
      } catch {
        // The cgroup we came from is gone: ours cannot be removed while we are in it.
        return;
      }
      tryRmdir(path);
    },
  };
}

/** Dedicated cgroups and pin folders whose process is gone. */
function removeStaleInstances(home: string, pinRoot: string): void {
  const alive = (pid: string) => existsSync(`/proc/${pid}`);
  for (const name of listDir(pinRoot)) {
    const pid = /^run-(\d+)$/.exec(name)?.[1];
    if (pid && !alive(pid)) rmSync(join(pinRoot, name), { recursive: true, force: true });
  }
  for (const name of listDir(home)) {
    const pid = name.startsWith(DEDICATED_PREFIX) ? name.slice(DEDICATED_PREFIX.length) : null;
    if (pid && /^\d+$/.test(pid) && !alive(pid)) tryRmdir(join(home, name));
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function tryRmdir(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // Still holds a process (or is gone already): left for the next start.
  }
}
