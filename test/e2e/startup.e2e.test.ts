// `sluice run` checks every port and path before it starts or writes anything: a busy port or an
// unreadable folder gives one line per problem naming the flag to change, exit code 3, and leaves
// no demo backend listening and no certificate written.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownCgroupPath } from '../../bpf/agent/environment.ts';
import { STARTUP_CHECK_EXIT_CODE } from '../../cmd/startup-checks.ts';
import { freePort, freePortOffset } from '../support/ports.ts';
import { startSluice } from '../support/sluice-process.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** An HTTPS Gateway whose certificate `--demo-backends` would write, and a demo backend on `backendPort`. */
const manifests = (backendPort: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: cilium
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - {name: https, port: 8443, protocol: HTTPS, hostname: app.example.com, tls: {certificateRefs: [{name: app-tls}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app-1, labels: {kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{name: http, port: ${backendPort}}]
endpoints: [{addresses: [127.0.0.1], targetRef: {kind: Pod, name: app-pod}}]
`;

async function hold(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('sluice run startup checks', () => {
  let dir: string;
  let held: Server[];
  let offset: number;
  let adminPort: number;
  let backendPort: number;

  const run = (...extra: string[]) =>
    spawnSync(
      process.execPath,
      [
        '--disable-warning=ExperimentalWarning',
        join(ROOT, 'bin', 'sluice.js'),
        'run',
        '--manifests',
        dir,
        '--demo-backends',
        '--bpf',
        'off',
        '--admin-address',
        `127.0.0.1:${adminPort}`,
        '--listener-port-offset',
        String(offset),
        ...extra,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-startup-'));
    held = [];
    offset = await freePortOffset([8080, 8443]);
    [adminPort, backendPort] = [await freePort(), await freePort()];
    writeFileSync(join(dir, 'app.yaml'), manifests(backendPort));
  });

  afterEach(async () => {
    await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a busy admin port: one line naming it and --admin-address, exit 3, nothing started or written', async () => {
    held.push(await hold(adminPort));
    const r = run();
    expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
    expect(r.stderr).toBe(`sluice: SLU_STARTUP_PORT 127.0.0.1:${adminPort} (the admin API) is already in use; choose another with --admin-address\n`);
    expect(r.stdout).toBe('');
    expect(readdirSync(dir)).toEqual(['app.yaml']);
    expect(await listening(backendPort)).toBe(false);
    expect(await listening(8080 + offset)).toBe(false);
  });

  it('every busy port at once, each on its line with the flag to change', async () => {
    held.push(await hold(8443 + offset), await hold(backendPort));
    const r = run();
    expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      `sluice: SLU_STARTUP_PORT 127.0.0.1:${8443 + offset} (listener port 8443 + --listener-port-offset ${offset}) is already in use; choose another offset with --listener-port-offset (or another --bind-address)`,
      `sluice: SLU_STARTUP_PORT 127.0.0.1:${backendPort} (demo backend app-pod) is already in use; stop what listens there, or change that EndpointSlice endpoint (--demo-backends starts an echo server there)`,
    ]);
    expect(readdirSync(dir)).toEqual(['app.yaml']);
    expect(await listening(adminPort)).toBe(false);
    expect(await listening(8080 + offset)).toBe(false);
  });

  it('a port the offset pushes past 65535 is refused by name', () => {
    offset = 60_000;
    const r = run();
    expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
    expect(r.stderr).toContain('sluice: SLU_STARTUP_PORT listener port 8080 + --listener-port-offset 60000 is beyond 65535; lower --listener-port-offset\n');
    expect(readdirSync(dir)).toEqual(['app.yaml']);
  });

  it('--bpf on where eBPF cannot run (here: pins on a folder that is not bpffs): one line, exit 3, nothing left', () => {
    const notBpfFs = join(dir, 'pins');
    const r = run('--bpf', 'on', '--bpf-pin-dir', notBpfFs);
    expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
    expect(r.stderr).toMatch(/^sluice: SLU_STARTUP_BPF --bpf on, but eBPF is unavailable here: .+; fix that, or use --bpf auto \(userspace when unavailable\)\n$/);
    expect(readdirSync(dir).filter((f) => f !== 'pins')).toEqual(['app.yaml']);
    expect(existsSync(join(notBpfFs, `run-${r.pid}`))).toBe(false);
    const cgroup = ownCgroupPath();
    if (cgroup) expect(existsSync(join(cgroup, `sluice-run-${r.pid}`))).toBe(false);
  });

  it('sluice dataplane --bpf on where eBPF cannot run: the same one line and exit 3', () => {
    const notBpfFs = join(dir, 'pins');
    const r = spawnSync(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', join(ROOT, 'bin', 'sluice.js'), 'dataplane', '--controller', 'http://127.0.0.1:1', '--bpf', 'on', '--bpf-pin-dir', notBpfFs, '--admin-address', '127.0.0.1:0'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
    expect(r.stderr).toMatch(/^sluice: SLU_STARTUP_BPF --bpf on, but eBPF is unavailable here: .+; fix that, or use --bpf auto \(userspace when unavailable\)\n$/);
  });

  it('with every port free it starts (the checks let their ports go)', async () => {
    const sluice = await startSluice(['--manifests', dir, '--demo-backends', '--listener-port-offset', String(offset)]);
    try {
      expect(await listening(backendPort)).toBe(true);
      expect(readdirSync(dir).sort()).toEqual(['app.yaml', 'generated-tls-default-app-tls.yaml']);
    } finally {
      await sluice.stop();
    }
  });
});
