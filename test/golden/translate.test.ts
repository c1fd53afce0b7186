// Objects → IR + statuses, one folder per scenario under translate/:
// input/*.yaml (plus optional options.yaml) → output.yaml.
import { describe, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { redactIR } from '../../controller/ir/version.ts';
import { ManifestFolder } from '../../controller/sources/manifest-folder.ts';
import { translate } from '../../controller/translate/translate.ts';
import { expectGolden } from './golden.ts';

const root = join(import.meta.dirname, 'translate');
const FIXED_CLOCK = () => new Date('2026-01-01T00:00:00Z');

describe('translate golden cases', () => {
  for (const name of readdirSync(root).sort()) {
    it(name, () => {
      const dir = join(root, name);
      const optionsFile = join(dir, 'options.yaml');
      const options = existsSync(optionsFile) ? parse(readFileSync(optionsFile, 'utf8')) : {};
      const load = new ManifestFolder(join(dir, 'input'), FIXED_CLOCK).load();
      const result = translate(load.snapshot, {
        controllerName: options.controllerName ?? 'sluice.dev/gateway-controller',
        bindAddress: options.bindAddress ?? '127.0.0.1',
        servedClassNames: options.gatewayClasses ?? [],
        ingress: { classNames: ['cilium'], controllers: ['sluice.dev/ingress-controller'], enforceHttps: true, ...options.ingress },
        ...(options.policy ? { policy: options.policy } : {}),
      });
      expectGolden(join(dir, 'output.yaml'), {
        problems: [...load.problems.map((p) => `${p.file}: ${p.message}`), ...result.problems.map((p) => p.message)],
        ir: redactIR(result.ir),
        statuses: result.statuses,
      });
    });
  }
});
