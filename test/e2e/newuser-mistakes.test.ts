// The mistakes a new user makes with the CLI, each answered by one line naming the flag, file or
// what to change — never a stack trace, never a quiet start that serves nothing: a flag value of
// the wrong shape, a file where a folder belongs, status/observe with nothing running, the
// controller started outside a cluster without --kubeconfig, a bind address this machine does not
// have, a folder with nothing to serve, --demo-backends in a folder the user cannot write; and how
// `sluice run` stops: Ctrl-C while it starts, SIGTERM with a request in flight, a second signal.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF_FS, ownCgroupPath } from '../../bpf/agent/environment.ts';
import { ebpfSkipReason, ebpfTestsRequired } from '../bpf/support/skip.ts';
import { STARTUP_CHECK_EXIT_CODE } from '../../cmd/startup-checks.ts';
import { freePort, startSluice, type SluiceProcess } from '../support/sluice-process.ts';
import { describeIfPossible, findOnPath } from '../support/suite.ts';
import { waitFor } from '../support/wait.ts';
import { appGatewayYaml, GATEWAY_YAML, gatewayYaml } from './backends.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'sluice.js');
const sluice = (...args: string[]) => spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, ...args], { encoding: 'utf8', timeout: 30_000 });

/** A usage error: exit 2, the reason on the first line, the command's usage after it, no stack trace. */
function expectUsageError(r: ReturnType<typeof sluice>, line: string, command: string): void {
  expect(r.stderr.split('\n')[0]).toBe(`sluice: ${line}`);
  expect(r.stderr).toContain(`Usage: sluice ${command}`);
  expect(r.stderr).not.toMatch(/^\s+at .*:\d+:\d+\)?$/m); // a stack frame
  expect(r.status).toBe(2);
}

describe('a flag value of the wrong shape is a usage error naming the flag', () => {
  it('--admin-address without a port, and --snapshot-address', () => {
    expectUsageError(sluice('run', '--manifests', ROOT, '--admin-address', '9999'), '--admin-address 9999: expected HOST:PORT, e.g. 127.0.0.1:9901', 'run');
    expectUsageError(sluice('run', '--manifests', ROOT, '--admin-address', '127.0.0.1:99999'), '--admin-address 127.0.0.1:99999: the port must be at most 65535', 'run');
    expectUsageError(sluice('status', '--admin-address', 'localhost'), '--admin-address localhost: expected HOST:PORT, e.g. 127.0.0.1:9901', 'status');
    expectUsageError(sluice('controller', '--kubeconfig', BIN, '--snapshot-address', '18000'), '--snapshot-address 18000: expected HOST:PORT, e.g. 127.0.0.1:9901', 'controller');
  });

  it('--log-level with a level the logger does not have', () => {
    expectUsageError(sluice('run', '--manifests', ROOT, '--log-level', 'verbose'), '--log-level verbose: expected one of trace, debug, info, warn, error', 'run');
    expectUsageError(sluice('dataplane', '--controller', 'http://127.0.0.1:1', '--log-level', 'WARN'), '--log-level WARN: expected one of trace, debug, info, warn, error', 'dataplane');
  });

  it('dataplane --controller that is not an http(s) URL', () => {
    expectUsageError(sluice('dataplane', '--controller', 'sluice-controller:18000'), '--controller sluice-controller:18000: expected an http:// or https:// URL, e.g. http://sluice-controller:18000', 'dataplane');
  });

  it('--access-log where no file can be written (a folder that does not exist, a folder), before anything starts', () => {
    expectUsageError(sluice('run', '--manifests', ROOT, '--access-log', '/no/such/folder/access.log'), '--access-log /no/such/folder/access.log: cannot be written (ENOENT: no such file or directory)', 'run');
    expectUsageError(sluice('dataplane', '--controller', 'http://127.0.0.1:1', '--access-log', tmpdir()), `--access-log ${tmpdir()}: cannot be written (a folder)`, 'dataplane');
  });

  it('--manifests naming a file (as kubectl apply -f takes one) names the folder to give instead', () => {
    expectUsageError(sluice('translate', '--manifests', join(ROOT, 'examples', 'quickstart', 'quickstart.yaml')), `--manifests ${join(ROOT, 'examples', 'quickstart', 'quickstart.yaml')}: not a folder but a file; name the folder that holds it (--manifests ${join(ROOT, 'examples', 'quickstart')})`, 'translate');
    expectUsageError(sluice('run', '--manifests', '/no/such/folder'), '--manifests /no/such/folder: not a folder (nothing is there)', 'run');
  });

  it('status and observe when nothing answers at --admin-address say so, and what to check', async () => {
    const admin = `127.0.0.1:${await freePort()}`;
    const status = sluice('status', '--admin-address', admin);
    expect(status.stderr).toBe(`sluice status: cannot read http://${admin}/api/status: nothing listens there (connection refused): is sluice running, with this --admin-address?\n`);
    expect(status.status).toBe(1);
    const observe = sluice('observe', '--admin-address', admin);
    expect(observe.stderr).toBe(`sluice observe: cannot reach ${admin}: nothing listens there (connection refused): is sluice running, with this --admin-address?\n`);
    expect(observe.status).toBe(1);
  });

  it('controller --kubeconfig that cannot be read', () => {
    const r = sluice('controller', '--kubeconfig', '/no/such/kubeconfig');
    expectUsageError(r, "--kubeconfig /no/such/kubeconfig: ENOENT: no such file or directory, open '/no/such/kubeconfig'", 'controller');
  });
});

describeIfPossible(
  'sluice controller outside a cluster',
  existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token') ? 'this machine is a Pod: it has an in-cluster ServiceAccount' : null,
)('sluice controller outside a cluster', () => {
  it('without --kubeconfig says to give one, instead of retrying API discovery for ever', () => {
    expectUsageError(
      sluice('controller', '--admin-address', '127.0.0.1:0', '--snapshot-address', '127.0.0.1:0'),
      'no in-cluster ServiceAccount here (/var/run/secrets/kubernetes.io/serviceaccount/token): give --kubeconfig FILE (e.g. ~/.kube/config), or run it in a Pod (charts/sluice)',
      'controller',
    );
  });
});

describe('sluice run: an address this machine cannot bind', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-newuser-bind-'));
    writeFileSync(join(dir, 'gw.yaml'), GATEWAY_YAML);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--bind-address that is no address here names --bind-address (not the port offset) as what to change', async () => {
    const admin = `127.0.0.1:${await freePort()}`;
    for (const address of ['10.0.0.300', '192.0.2.1']) {
      const r = sluice('run', '--manifests', dir, '--bpf', 'off', '--admin-address', admin, '--listener-port-offset', '30000', '--bind-address', address);
      expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
      expect(r.stderr).toMatch(new RegExp(`^sluice: SLU_STARTUP_PORT ${address.replaceAll('.', '\\.')}:30080 \\(listener port 80 \\+ --listener-port-offset 30000\\) names (no address this machine can resolve|an address this machine does not have); choose another --bind-address\\n$`));
    }
  });
});

describe('a folder with nothing to serve', () => {
  let dir: string;
  let running: SluiceProcess | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-newuser-empty-'));
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const status = (admin: string) =>
    new Promise<string>((resolve) => execFile(process.execPath, [BIN, 'status', '--admin-address', admin], { encoding: 'utf8' }, (_err, stdout) => resolve(stdout)));

  it('translate warns that no listener would be served', () => {
    writeFileSync(join(dir, 'notes.txt'), 'not a manifest\n');
    const r = sluice('translate', '--manifests', dir);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(`warning: SLU_NOTHING_SERVED no object was read from ${dir} (files ending in .yaml, .yml or .json, in sub-folders too): no listener would be served\n`);
  });

  it('run says so in /api/status and the log, and the line resolves once a Gateway is added', async () => {
    const port = await freePort();
    running = await startSluice(['--manifests', dir, '--listener-port-offset', String(port - 80)]);
    const admin = running.admin.replace('http://', '');
    expect(await status(admin)).toBe(`SLU_NOTHING_SERVED no object was read from ${dir} (files ending in .yaml, .yml or .json, in sub-folders too): no listener is served until one is added (the folder is watched)\n`);
    // A Service alone is something read, still nothing to listen for.
    writeFileSync(join(dir, 'svc.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec: {ports: [{port: 80}]}\n');
    await waitFor('the line to name the object read', async () => ((await status(admin)).includes('no Gateway or Ingress among the 1 objects read') ? true : undefined));
    writeFileSync(join(dir, 'gw.yaml'), GATEWAY_YAML);
    await waitFor('no problem left', async () => ((await status(admin)) === 'no problems\n' ? true : undefined));
    expect(running.logs()).toMatch(/"msg":"resolved: SLU_NOTHING_SERVED no Gateway or Ingress among the 1 objects read/);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
  });
});

const asRoot = process.getuid?.() === 0;
describeIfPossible('sluice run as a user who is not root', asRoot && findOnPath(['setpriv']) ? null : 'needs root and setpriv (util-linux) to run sluice as nobody')('sluice run as a user who is not root', () => {
  let dir: string;
  beforeAll(() => {
    // An HTTPS listener whose certificate --demo-backends would write, in a folder readable by all, writable by root only.
    dir = mkdtempSync(join(tmpdir(), 'sluice-newuser-readonly-'));
    writeFileSync(join(dir, 'gw.yaml'), gatewayYaml(['{name: https, port: 8443, protocol: HTTPS, hostname: app.example.com, tls: {certificateRefs: [{name: app-tls}]}}']));
    chmodSync(dir, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--demo-backends that must write a certificate there is a failed startup check naming the folder, not an error with a stack every 2 s', async () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--disable-warning=ExperimentalWarning', BIN, 'run', '--manifests', dir, '--demo-backends', '--admin-address', `127.0.0.1:${await freePort()}`, '--listener-port-offset', String((await freePort()) - 8443)], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe(`sluice: SLU_STARTUP_PATH ${dir}: --demo-backends writes self-signed certificates here (generated-*.yaml) but cannot: EACCES: permission denied; run as the folder's owner, or copy the folder somewhere writable\n`);
    expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
    expect(readdirSync(dir).filter((f) => f.startsWith('generated-'))).toEqual([]);
  });

  it('a Gateway on port 80: one line saying to run as root or which --listener-port-offset serves it, exit 3', async () => {
    const port80 = mkdtempSync(join(tmpdir(), 'sluice-newuser-port80-'));
    try {
      writeFileSync(join(port80, 'gw.yaml'), GATEWAY_YAML);
      chmodSync(port80, 0o755);
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--disable-warning=ExperimentalWarning', BIN, 'run', '--manifests', port80, '--admin-address', `127.0.0.1:${await freePort()}`], { encoding: 'utf8', timeout: 30_000 });
      expect(r.stderr).toBe(
        'sluice: SLU_STARTUP_PORT 127.0.0.1:80 (listener port 80) may not be bound by this user (ports below 1024 need root or CAP_NET_BIND_SERVICE); run as root, or lift it above 1023 with --listener-port-offset (e.g. --listener-port-offset 8000 serves port 80 on 8080)\n',
      );
      expect(r.status).toBe(STARTUP_CHECK_EXIT_CODE);
    } finally {
      rmSync(port80, { recursive: true, force: true });
    }
  });
});

describeIfPossible('Ctrl-C while sluice run starts with eBPF', ebpfSkipReason(), ebpfTestsRequired())('Ctrl-C while sluice run starts with eBPF', () => {
  let dir: string;
  let pinRoot: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-newuser-sigint-'));
    pinRoot = join(BPF_FS, `sluice-test-newuser-${process.pid}`);
    writeFileSync(join(dir, 'gw.yaml'), GATEWAY_YAML);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pinRoot, { recursive: true, force: true });
  });

  it('a SIGINT once its eBPF is attached, before it serves: it finishes starting, closes, and leaves no cgroup or pinned program behind', async () => {
    const admin = `127.0.0.1:${await freePort()}`;
    const offset = (await freePort()) - 80;
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, 'run', '--manifests', dir, '--bpf', 'on', '--bpf-pin-dir', pinRoot, '--admin-address', admin, '--listener-port-offset', String(offset)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // The first line is the eBPF one, logged once the programs are attached in the process's own cgroup.
    await new Promise<void>((resolve) => {
      let sent = false;
      const onData = (d: Buffer) => {
        output += d;
        if (!sent && output.includes('"msg":"eBPF on')) {
          sent = true;
          child.kill('SIGINT');
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (d: Buffer) => (output += d));
    });
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(output).toMatch(/"signal":"SIGINT","msg":"shutting down"/);
    expect(existsSync(join(pinRoot, `run-${child.pid}`))).toBe(false);
    const cgroup = ownCgroupPath();
    if (cgroup) expect(existsSync(join(cgroup, `sluice-run-${child.pid}`))).toBe(false);
  });
});

/** `sluice run` on a Gateway whose route goes to `backend`, with its output and exit code. */
async function runOnBackend(backend: { address(): unknown }) {
  const folder = mkdtempSync(join(tmpdir(), 'sluice-newuser-signal-'));
  writeFileSync(join(folder, 'app.yaml'), appGatewayYaml({ port: (backend.address() as AddressInfo).port }));
  const port = await freePort();
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, 'run', '--manifests', folder, '--bpf', 'off', '--admin-address', `127.0.0.1:${await freePort()}`, '--listener-port-offset', String(port - 80)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logged = (msg: string) => waitFor(msg, () => (stdout.includes(`"msg":"${msg}`) ? true : undefined));
  await logged('sluice standalone is running');
  return {
    child,
    port,
    exited,
    logged,
    stderr: () => stderr,
    close() {
      child.kill('SIGKILL');
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

describe('stopping sluice run with requests in flight', () => {
  it('SIGTERM: the request in flight is answered, a new connection is refused meanwhile, exit code 0', async () => {
    const slow = createHttpServer((_req, res) => setTimeout(() => res.end('slow answer'), 1500));
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const run = await runOnBackend(slow);
    try {
      let reached = false;
      slow.once('request', () => (reached = true));
      const inFlight = fetch(`http://127.0.0.1:${run.port}/`).then(async (r) => `${r.status} ${await r.text()}`);
      await waitFor('the request to reach the backend', () => (reached ? true : undefined));
      run.child.kill('SIGTERM');
      await run.logged('shutting down');
      await expect(fetch(`http://127.0.0.1:${run.port}/`)).rejects.toThrow();
      expect(await inFlight).toBe('200 slow answer');
      expect(await run.exited).toBe(0);
    } finally {
      run.close();
      slow.close();
    }
  });

  it('a second signal, while the first waits for a request in flight to drain, exits at once with exit code 130', async () => {
    // A backend that takes the request and never answers: the first signal's drain waits on it.
    let connections = 0;
    const silent = createServer(() => void connections++);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const run = await runOnBackend(silent);
    try {
      const inFlight = fetch(`http://127.0.0.1:${run.port}/`).catch(() => 'cut');
      await waitFor('the request to reach the backend', () => (connections > 0 ? true : undefined));
      run.child.kill('SIGINT');
      await run.logged('shutting down');
      run.child.kill('SIGINT');
      expect(await run.exited).toBe(130);
      expect(run.stderr()).toBe('sluice: SIGINT again: exiting now, without waiting for connections to drain\n');
      expect(await inFlight).toBe('cut');
    } finally {
      run.close();
      silent.close();
    }
  });
});
