// Golden files: `expected` is compared with what the code produces now, and
// UPDATE_GOLDEN=1 rewrites it instead. The YAML diff is what a reviewer reads.
import { expect } from '@jest/globals';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

export const updating = process.env.UPDATE_GOLDEN === '1';

export function expectGolden(path: string, value: unknown): void {
  const actual = stringify(value, { aliasDuplicateObjects: false, lineWidth: 0 });
  if (updating || !existsSync(path)) {
    writeFileSync(path, actual);
    if (!updating) throw new Error(`wrote missing golden file ${path}; check it and run again`);
    return;
  }
  expect(actual).toBe(readFileSync(path, 'utf8'));
}
