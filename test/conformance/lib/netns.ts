// The kubernetes target runs in a network namespace (and a PID namespace) of its own. The API
// server refuses EndpointSlice addresses in 127.0.0.0/8, and test traffic may only go to loopback
// or to namespaces the test made itself; so run.ts re-executes itself under
// `unshare --net --pid --fork --kill-child`, and inside the fresh namespace brings `lo` up and
// makes POD_RANGE local to it (`ip route add local 10.77.0.0/16 dev lo`: every address of the
// range is a local address, so echo pods bind them, the dataplane reaches them and the API server
// takes them as endpoints; nothing of it exists outside the namespace). etcd, kube-apiserver,
// Sluice and the echo pods all live in there; when the runner (PID 1 of the PID namespace) exits,
// the kernel ends whatever it left behind and the network namespace goes away with it.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { constants } from 'node:os';

/** Set in the environment of the re-executed runner: the network namespace it was started from. */
export const NETNS_MARKER = 'SLUICE_CONFORMANCE_NETNS';
/** Local to the runner's namespace: echo pods take their addresses from it. */
export const POD_RANGE = '10.77.0.0/16';
/** First two octets of POD_RANGE. */
export const POD_PREFIX = '10.77';

function currentNetns(): string {
  try {
    return readlinkSync('/proc/self/ns/net');
  } catch {
    return '';
  }
}

/** True in the re-executed runner: the marker is set and names another namespace than this one. */
export function insideRunnerNetns(): boolean {
  const from = process.env[NETNS_MARKER];
  const here = currentNetns();
  return Boolean(from && here) && from !== here;
}

function onPath(name: string): boolean {
  return ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/local/sbin'].some((d) => existsSync(`${d}/${name}`));
}

/** Why the runner cannot make its namespace here, or null. */
export function netnsUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the kubernetes target needs root (it runs in a network namespace of its own: unshare --net, ip route)';
  if (!onPath('unshare')) return 'unshare (util-linux) is missing';
  if (!onPath('ip')) return 'ip (iproute2) is missing';
  return null;
}

/**
 * Runs this same runner again inside new network and PID namespaces; resolves with its exit code.
 * SIGINT / SIGTERM are passed on (a second one kills it).
 */
export function reexecInNetns(): Promise<number> {
  const args = ['--net', '--pid', '--fork', '--kill-child', '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  // Its own process group, so one kill() reaches unshare and the runner inside.
  const child = spawn('unshare', args, { stdio: ['ignore', 'inherit', 'inherit'], detached: true, env: { ...process.env, [NETNS_MARKER]: currentNetns() } });
  let signals = 0;
  const forward = (signal: NodeJS.Signals) => {
    signals++;
    try {
      process.kill(-child.pid!, signals > 1 ? 'SIGKILL' : signal);
    } catch {
      // already gone
    }
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(`conformance: cannot run unshare: ${err.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
  });
}

/** Devices the kernel puts in every new network namespace when their tunnel modules are loaded. */
const FALLBACK_DEVICES = new Set(['tunl0', 'sit0', 'ip6tnl0', 'gre0', 'gretap0', 'erspan0', 'ip_vti0', 'ip6_vti0', 'ip6gre0']);

/**
 * Inside the runner's namespace: lo up and POD_RANGE local. Refuses to touch any other namespace
 * (the marker must name another one, and this one may hold nothing but lo and fallback devices).
 */
export function prepareNetns(): void {
  if (!insideRunnerNetns()) throw new Error('not in the network namespace run.ts made; refusing to change routes');
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '');
  const others = links.filter((l) => l !== 'lo' && !FALLBACK_DEVICES.has(l));
  if (others.length) throw new Error(`not a fresh network namespace (it has ${others.join(', ')}); refusing to change routes`);
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const routes = execFileSync('ip', ['route', 'show', 'table', 'local'], { encoding: 'utf8' });
  if (!routes.includes(`local ${POD_RANGE} `)) execFileSync('ip', ['route', 'add', 'local', POD_RANGE, 'dev', 'lo']);
}
