// An echo backend the API server accepts as an EndpointSlice address: the API
// refuses loopback endpoints, so the echo server runs in a network namespace
// this test makes, joined to ours by a veth pair (10.202.<n>.1 here, .2 there).
// Needs root; `netnsSkipReason()` says why not. `stop()` removes everything.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

export interface NetnsEcho {
  address: string;
  port: number;
  stop(): void;
}

export function netnsSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'backends in a network namespace need root';
  if (!['/usr/sbin/ip', '/sbin/ip', '/bin/ip', '/usr/bin/ip'].some((p) => existsSync(p))) return 'iproute2 (ip) is missing';
  return null;
}

/**
 * `env` is the echo-basic container's environment (e.g. {GRPC_ECHO_SERVER: '1'} for the gRPC mode,
 * TLS_SERVER_CERT naming a file); `port` is its main port (HTTP_PORT, TCP_PORT or UDP_PORT).
 */
export async function startNetnsEcho(pod: string, namespace: string, port = 8080, env: Record<string, string> = {}): Promise<NetnsEcho> {
  const n = (process.pid % 250) + 1;
  const ns = `slk-${process.pid}`;
  const host = `slkh${process.pid % 100000}`;
  const peer = `slkp${process.pid % 100000}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = () => {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  };
  stop();
  ip('netns', 'add', ns);
  try {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer, 'netns', ns);
    ip('addr', 'add', `10.202.${n}.1/24`, 'dev', host);
    ip('-n', ns, 'addr', 'add', `10.202.${n}.2/24`, 'dev', peer);
    ip('link', 'set', host, 'up');
    ip('-n', ns, 'link', 'set', peer, 'up');
    const child = spawn('nsenter', [`--net=/var/run/netns/${ns}`, '--', process.execPath, '--disable-warning=ExperimentalWarning',
      join(ROOT, 'test', 'kube', 'echo-child.ts'), pod, namespace, String(port)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`echo server in ${ns} exited ${code}`)));
    });
    return {
      address: `10.202.${n}.2`,
      port,
      stop: () => {
        child.kill('SIGKILL');
        stop();
      },
    };
  } catch (err) {
    stop();
    throw err;
  }
}
