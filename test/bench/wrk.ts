// Runs wrk and parses its `--latency` report.

import { spawn } from 'node:child_process';

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Socket errors (connect + read + write + timeout). */
  socketErrors: number;
  non2xx: number;
  raw: string;
}

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  durationSec: number;
  headers: Record<string, string>;
  /** Command prefix, e.g. `['taskset', '-c', '1']`. */
  pin: string[];
  wrk: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function duration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * UNIT_MS[m[2]];
}

export function parseWrk(raw: string): WrkResult {
  const percentile = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)\\s*$`, 'm').exec(raw);
    return m ? duration(m[1]) : Number.NaN;
  };
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(raw);
  const total = /^\s*(\d+) requests in /m.exec(raw);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(raw);
  if (!rps) throw new Error(`could not parse wrk output:\n${raw}`);
  return {
    requestsPerSec: Number(rps[1]),
    requests: total ? Number(total[1]) : Number.NaN,
    p50Ms: percentile('50'),
    p75Ms: percentile('75'),
    p90Ms: percentile('90'),
    p99Ms: percentile('99'),
    socketErrors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    raw,
  };
}

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [
    ...options.pin,
    options.wrk,
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.durationSec}s`,
    '--latency',
    ...Object.entries(options.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
    options.url,
  ];
  const [command, ...rest] = args;
  const child = spawn(command, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${out}`);
  return parseWrk(out);
}
