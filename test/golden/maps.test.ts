// Policies and Services → ir.l4 → BPF map entries: for every translate golden
// case whose IR has an l4 part, the entries the agent would write, one line
// each (maps/<case>.yaml). The bytes behind each line are checked by the
// agent's unit tests and the root e2e tests.
import { describe, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { MAP_ORDER, desiredState } from '../../bpf/agent/desired.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';
import { expectGolden } from './golden.ts';

const cases = join(import.meta.dirname, 'translate');
const FIXED_CLOCK = () => new Date('2026-01-01T00:00:00Z');

describe('l4 → map entries golden cases', () => {
  for (const name of readdirSync(cases).sort()) {
    const dir = join(cases, name);
    const optionsFile = join(dir, 'options.yaml');
    const options = existsSync(optionsFile) ? parse(readFileSync(optionsFile, 'utf8')) : {};
    const load = new ManifestFolder(join(dir, 'input'), FIXED_CLOCK).load();
    const { ir } = translate(load.snapshot, {
      controllerName: 'sluice.dev/gateway-controller',
      bindAddress: options.bindAddress ?? '127.0.0.1',
      servedClassNames: options.gatewayClasses ?? [],
      ingress: { classNames: ['cilium'], controllers: ['sluice.dev/ingress-controller'], enforceHttps: true, ...options.ingress },
      ...(options.policy ? { policy: options.policy } : {}),
    });
    if (ir.l4.services.length === 0 && !ir.l4.policy) continue;
    it(name, () => {
      const { state, skipped } = desiredState(ir.l4, { gatewayCgroups: [{ id: 4242n, identity: 8 }], traceForwarded: true });
      const maps = Object.fromEntries(MAP_ORDER.map((m) => [m, [...state[m].values()].map((e) => e.describe).sort()]));
      expectGolden(join(import.meta.dirname, 'maps', `${name}.yaml`), { skipped, maps });
    });
  }
});
