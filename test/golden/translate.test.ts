// Objects → IR + statuses, one folder per scenario under translate/:
// input/*.yaml (plus optional options.yaml) → output.yaml.
import { describe, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { redactIR } from '../../ir/version.ts';
import { translate } from '../../controller/translate/translate.ts';
import { expectGolden } from './golden.ts';
import { loadInputs, TRANSLATE_CASES as root, translateOptionsOf } from './translate-case.ts';

describe('translate golden cases', () => {
  for (const name of readdirSync(root).sort()) {
    it(name, () => {
      const dir = join(root, name);
      const load = loadInputs(dir);
      const result = translate(load.snapshot, translateOptionsOf(dir));
      expectGolden(join(dir, 'output.yaml'), {
        problems: [...load.problems.map((p) => `${p.file}: ${p.message}`), ...result.problems.map((p) => p.message)],
        ir: redactIR(result.ir),
        statuses: result.statuses,
      });
    });
  }
});
