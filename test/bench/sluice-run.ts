// `sluice run` as a benchmark's system under test: one manifest file in a folder of the run's
// temp dir, listeners moved by a port offset, admin on a free port, warnings-only logs. Shared by
// the proxy bench (run.ts) and the route-scale bench (route-scale.ts).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, httpGet, Proc, tail, waitFor200 } from './processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface SluiceRun {
  /** Where the Gateway's port-80 listener is bound. */
  port: number;
  adminPort: number;
  proc: Proc;
}

export interface SluiceRunOptions {
  node: string;
  /** The run's temp folder: manifests go in `<dir>/<name>`. */
  dir: string;
  name: string;
  yaml: string;
  /** Command prefix (taskset), may be empty. */
  pin: string[];
  profileDir?: string | null;
  /** More Node flags (say, --trace-gc), before the script. */
  nodeArgs?: string[];
  /** How long translation and the first apply may take (large tables take seconds). */
  readyTimeoutMs?: number;
  /** Checks the benchmarked request once ready; throws when it is not served as expected. */
  verify(proc: Proc, port: number): Promise<void>;
  /** More `sluice run` flags (e.g. --workers 2). */
  args?: string[];
  /** Another checkout to run `bin/sluice.js` from (a before/after comparison); default this one. */
  root?: string;
}

export async function startSluiceRun(options: SluiceRunOptions): Promise<SluiceRun> {
  const [port, adminPort] = await freePorts(2);
  const manifestDir = join(options.dir, options.name);
  mkdirSync(manifestDir, { recursive: true });
  writeFileSync(join(manifestDir, 'bench.yaml'), options.yaml);
  const profile = options.profileDir ? ['--cpu-prof', '--cpu-prof-dir', options.profileDir] : [];
  const proc = new Proc(
    'sluice',
    [
      ...options.pin,
      options.node,
      '--disable-warning=ExperimentalWarning',
      ...profile,
      ...(options.nodeArgs ?? []),
      join(options.root ?? ROOT, 'bin', 'sluice.js'),
      'run',
      '--bpf',
      'off',
      '--manifests',
      manifestDir,
      '--listener-port-offset',
      String(port - 80),
      '--admin-address',
      `127.0.0.1:${adminPort}`,
      '--log-level',
      'warn',
      ...(options.args ?? []),
    ],
    options.root ?? ROOT,
  );
  try {
    await waitFor200(proc, adminPort, '/readyz', options.readyTimeoutMs ?? 30_000);
    await options.verify(proc, port);
  } catch (error) {
    let status = '';
    try {
      status = (await httpGet(adminPort, '/api/status')).body.slice(0, 4000);
    } catch {
      // admin not up
    }
    await proc.stop();
    throw new Error(`${(error as Error).message}${status ? `\n/api/status: ${status}` : ''}\nsluice output:\n${tail(proc.logs())}`);
  }
  return { port, adminPort, proc };
}
