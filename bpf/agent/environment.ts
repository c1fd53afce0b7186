// What the kernel side needs, checked up front so that a machine without it
// gets one clear sentence instead of a stack trace: Linux, root (CAP_BPF,
// CAP_NET_ADMIN, CAP_SYS_ADMIN), a BPF filesystem, cgroup v2 and kernel BTF.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
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
