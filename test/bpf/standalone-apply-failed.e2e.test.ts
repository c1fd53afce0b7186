// `sluice run --bpf on`, a real process with the real BPF agent, given a version whose eBPF maps
// cannot be written: the agent puts the maps back, the proxy keeps the last good version, and the
// failure is listed among the problems (/api/status, SLU_APPLY_FAILED) until a version is applied.
// The one fake: the map write's failure. A bpf_map_update_elem the kernel refuses cannot be
// provoked on demand without filling a 65 536-entry map or starving the process's memory cgroup,
// so the test makes the next map write of the running process throw (the native addon's
// mapUpdate, through the process's own inspector, `--inspect=127.0.0.1:0`: no hook in the product).
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF_FS } from '../../bpf/agent/environment.ts';
import { ADDON_PATH } from '../../bpf/native/index.ts';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, versionedRouteYaml, type NamedBackend } from '../e2e/backends.ts';
import { request } from '../dataplane/support/client.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { describeIfPossible } from '../support/suite.ts';
import { evaluateInMainOf } from '../support/thread-inspector.ts';
import { waitFor } from '../support/wait.ts';
import { ebpfSkipReason, ebpfTestsRequired } from './support/skip.ts';

const suite = describeIfPossible('eBPF apply-failure tests', ebpfSkipReason(), ebpfTestsRequired());

/** A Service with a cluster IP: a version holding it writes new entries into the maps. */
const VIP_SERVICE = `apiVersion: v1
kind: Service
metadata: {name: vip, namespace: default}
spec:
  clusterIP: 10.96.0.77
  ports: [{name: http, port: 80}]
`;

interface Problem {
  code: string;
  message: string;
}

suite('sluice run: a version whose eBPF maps cannot be written', () => {
  let dir: string;
  let pinRoot: string;
  let backend: NamedBackend;
  let sluice: SluiceProcess;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-apply-failed-'));
    pinRoot = join(BPF_FS, `sluice-test-apply-failed-${process.pid}`);
    backend = await startNamedBackend('app');
    writeFileSync(join(dir, 'app.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('app', backend)}---\n${versionedRouteYaml(1)}`);
    port = await freePort();
    sluice = await startSluice(['--manifests', dir, '--bpf', 'on', '--bpf-pin-dir', pinRoot, '--listener-port-offset', String(port - 80)], 30_000, { nodeArgs: ['--inspect=127.0.0.1:0'] });
  }, 60_000);

  afterAll(async () => {
    await sluice?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(pinRoot, { recursive: true, force: true });
  });

  const version = async () => ((await (await fetch(`${sluice.admin}/api/config`)).json()) as { version: string }).version;
  const problems = async () => ((await (await fetch(`${sluice.admin}/api/status`)).json()) as { problems: Problem[] }).problems;
  const answers = async () => Promise.all(Array.from({ length: 5 }, async () => (await request(port, '/')).headers['x-version']));
  const until = (what: string, done: () => Promise<boolean>) => waitFor(what, async () => (await done()) || undefined, 30_000);

  it('keeps the last good version and lists SLU_APPLY_FAILED until a version is applied', async () => {
    expect(sluice.logs()).toContain('eBPF on');
    expect(await answers()).toEqual(Array(5).fill('v1'));
    const served = await version();
    // The process re-executes itself at start (bin/sluice.js): its inspector is the last one named.
    const url = [...sluice.logs().matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
    expect(url).toBeDefined();
    const armed = await evaluateInMainOf(url!, `(() => {
      const addon = process.getBuiltinModule('node:module').createRequire(${JSON.stringify(ADDON_PATH)})(${JSON.stringify(ADDON_PATH)});
      const update = addon.mapUpdate;
      let fail = true;
      addon.mapUpdate = function (...args) {
        if (!fail) return update.apply(this, args);
        fail = false;
        throw Object.assign(new Error('bpf_map_update_elem: Cannot allocate memory'), { code: 'ENOMEM' });
      };
      return typeof update;
    })()`);
    expect(armed).toBe('function');

    // A new version with a Service VIP (new map entries) and a new answer.
    writeFileSync(join(dir, 'app.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('app', backend)}---\n${VIP_SERVICE}---\n${versionedRouteYaml(2)}`);
    await until('the failure listed', async () => (await problems()).some((p) => p.code === 'SLU_APPLY_FAILED'));
    const listed = (await problems()).find((p) => p.code === 'SLU_APPLY_FAILED')!;
    expect(listed.message).toMatch(new RegExp(`^version \\S+ could not be applied \\(BPF maps not written \\(.*Cannot allocate memory.*\\): restored to the version before\\); still serving ${served}$`));
    expect(await version()).toBe(served);
    expect(await answers()).toEqual(Array(5).fill('v1'));

    // The next change is applied (the map writes work again) and the problem resolved.
    writeFileSync(join(dir, 'app.yaml'), `${GATEWAY_YAML}---\n${serviceYaml('app', backend)}---\n${VIP_SERVICE}---\n${versionedRouteYaml(3)}`);
    await until('v3 applied and the problem resolved', async () => (await version()) !== served && !(await problems()).some((p) => p.code === 'SLU_APPLY_FAILED'));
    expect(await answers()).toEqual(Array(5).fill('v3'));
    expect(sluice.logs()).toMatch(/resolved: SLU_APPLY_FAILED version \S+ could not be applied/);
  }, 90_000);
});
