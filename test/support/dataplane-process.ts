// `sluice dataplane`, a real process subscribed to a snapshot server (controller/publish/server.ts
// in the test), eBPF off: its output collected, stopped with SIGTERM.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { SnapshotServer } from '../../controller/publish/server.ts';
import type { HttpIR, IR } from '../../ir/types.ts';
import { irVersion } from '../../ir/version.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface DataplaneProcess {
  /** Its exit code, null while it runs. */
  exitCode(): number | null;
  /** Everything it wrote (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** `nodeArgs`: Node options before the script (e.g. `--inspect=127.0.0.1:0` to hook its worker threads). */
export function startDataplaneProcess(controllerUrl: string, name: string, adminPort: number, workers: number, nodeArgs: string[] = []): DataplaneProcess {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', ...nodeArgs, join(ROOT, 'bin', 'sluice.js'), 'dataplane', '--controller', controllerUrl, '--name', name, '--workers', String(workers), '--bpf', 'off', '--admin-address', `127.0.0.1:${adminPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return {
    exitCode: () => child.exitCode,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Publishes `http` (no L4 part) as the server's next version, returned. */
export function publishHttp(server: SnapshotServer, http: HttpIR): IR {
  const l4 = { services: [] };
  const ir: IR = { version: irVersion(http, l4), http, l4 };
  server.publish(ir);
  return ir;
}
