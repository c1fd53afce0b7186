// `sluice run --workers 2` over a folder of its own (the Gateway of backends.ts, Service `app` to a
// named backend, route version `routeVersion`), for the workers' end-to-end tests; `stop` ends the
// process and the backend and removes the folder.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GATEWAY_YAML, serviceYaml, startNamedBackend, versionedRouteYaml, type NamedBackend } from './backends.ts';
import { freePort, startSluice, type SluiceProcess, type StartOptions } from '../support/sluice-process.ts';

export interface WorkersRun {
  dir: string;
  backend: NamedBackend;
  sluice: SluiceProcess;
  /** Where the Gateway's port 80 listener is bound (--listener-port-offset). */
  port: number;
  stop(): Promise<void>;
}

export async function startWorkersRun(name: string, routeVersion: number, options: StartOptions = {}): Promise<WorkersRun> {
  const dir = mkdtempSync(join(tmpdir(), `sluice-${name}-`));
  const backend = await startNamedBackend('app');
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY_YAML);
  writeFileSync(join(dir, 'service.yaml'), serviceYaml('app', backend));
  writeFileSync(join(dir, 'route.yaml'), versionedRouteYaml(routeVersion));
  const port = await freePort();
  const sluice = await startSluice(['--manifests', dir, '--workers', '2', '--listener-port-offset', String(port - 80)], 60_000, options);
  return {
    dir,
    backend,
    sluice,
    port,
    stop: async () => {
      await sluice.stop();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
