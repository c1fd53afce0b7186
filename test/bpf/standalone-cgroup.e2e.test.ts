// `sluice run` with eBPF and no --bpf-cgroup attaches to a cgroup it made for itself
// (`<its cgroup>/sluice-run-<pid>`), never to the one it was started in (the host's root cgroup
// for `npm start` as root), and removes that cgroup and its pins when it exits.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF_FS, cgroup2Mount, ownCgroupPath } from '../../bpf/agent/environment.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, type NamedBackend } from '../e2e/backends.ts';
import { freePort, startSluice } from '../support/sluice-process.ts';
import { describeIfPossible } from '../support/suite.ts';
import { ebpfSkipReason, ebpfTestsRequired } from './support/skip.ts';

const bpftoolMissing = existsSync('/usr/sbin/bpftool') ? null : 'bpftool is missing (to list the programs attached to a cgroup)';
const suite = describeIfPossible('eBPF standalone cgroup tests', ebpfSkipReason() ?? bpftoolMissing, ebpfTestsRequired());

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`;

/** Names of the programs attached to a cgroup (that cgroup only, not its descendants). */
function attachedPrograms(cgroup: string): string[] {
  const out = execFileSync('/usr/sbin/bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((p) => p.name).sort() : [];
}

/** The cgroup v2 path of a process, under the mount. */
function cgroupOf(pid: number, mount: string): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))!;
  return join(mount, line.slice(3));
}

suite('sluice run: eBPF in a cgroup of its own', () => {
  let dir: string;
  let pinRoot: string;
  let backend: NamedBackend;
  let home: string;
  let mount: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-bpf-cgroup-'));
    pinRoot = join(BPF_FS, `sluice-test-standalone-${process.pid}`);
    backend = await startNamedBackend('web');
    writeFileSync(join(dir, 'app.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('web', backend)}---\n${ROUTE}`);
    home = ownCgroupPath()!;
    mount = cgroup2Mount()!;
  });

  afterAll(async () => {
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(pinRoot, { recursive: true, force: true });
  });

  it('--bpf auto attaches to sluice-run-<pid> only, and leaves nothing attached or pinned after exit', async () => {
    const before = attachedPrograms(home);
    const port = await freePort();
    const sluice = await startSluice(['--manifests', dir, '--bpf', 'auto', '--bpf-pin-dir', pinRoot, '--listener-port-offset', String(port - 80)]);
    const dedicated = join(home, `sluice-run-${sluice.pid}`);
    try {
      expect(sluice.logs()).toContain('eBPF on');
      expect(cgroupOf(sluice.pid, mount)).toBe(dedicated);
      expect(attachedPrograms(dedicated).length).toBeGreaterThanOrEqual(5);
      expect(attachedPrograms(home)).toEqual(before);
      expect(readdirSync(pinRoot)).toEqual([`run-${sluice.pid}`]);
      // The proxy's connections to the backend go through the attached programs and still flow.
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect({ status: res.status, body: await res.text() }).toMatchObject({ status: 200, body: expect.stringContaining('"backend":"web"') });
    } finally {
      await sluice.stop();
    }
    expect(existsSync(dedicated)).toBe(false);
    expect(existsSync(pinRoot)).toBe(false);
    expect(attachedPrograms(home)).toEqual(before);
  });

  it('a dedicated cgroup and pins left by a SIGKILLed instance are removed by the next start', async () => {
    const port = await freePort();
    const first = await startSluice(['--manifests', dir, '--bpf', 'auto', '--bpf-pin-dir', pinRoot, '--listener-port-offset', String(port - 80)]);
    const stale = join(home, `sluice-run-${first.pid}`);
    process.kill(first.pid, 'SIGKILL');
    await first.stop();
    expect(existsSync(stale)).toBe(true);
    expect(readdirSync(pinRoot)).toEqual([`run-${first.pid}`]);
    const second = await startSluice(['--manifests', dir, '--bpf', 'auto', '--bpf-pin-dir', pinRoot, '--listener-port-offset', String(port - 80)]);
    try {
      expect(existsSync(stale)).toBe(false);
      expect(readdirSync(pinRoot)).toEqual([`run-${second.pid}`]);
    } finally {
      await second.stop();
    }
  });
});
