// Why the eBPF tests cannot run on this machine, or null. The reason is printed
// and the suite reported as skipped; `.ci/run` installs and mounts what they need.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { OBJECTS_DIR } from '../../../bpf/agent/agent.ts';
import { bpfUnavailableReason } from '../../../bpf/agent/environment.ts';
import { loadNative } from '../../../bpf/native/index.ts';
import { requiredByEnvironment } from '../../support/required.ts';

/** CI runs as root with the toolchain installed: there the eBPF suites must run (SLUICE_BPF_REQUIRED=1). */
export function ebpfTestsRequired(): boolean {
  return requiredByEnvironment('SLUICE_BPF_REQUIRED');
}

export function ebpfSkipReason(): string | null {
  const why = bpfUnavailableReason();
  if (why) return why;
  for (const object of ['sock_lb.o', 'policy.o']) {
    if (!existsSync(join(OBJECTS_DIR, object))) return `${object} is not built (bpf/build-programs.sh needs clang and libbpf-dev)`;
  }
  const native = loadNative();
  if ('reason' in native) return native.reason;
  for (const tool of ['/usr/bin/nsenter', '/usr/sbin/ip', '/bin/ip', '/sbin/ip']) if (existsSync(tool) && tool.endsWith('ip')) return null;
  return 'iproute2 (ip) is missing';
}
