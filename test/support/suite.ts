// One rule for suites that need something of the machine (root and BPF, the
// kube binaries, helm): `describe` when they can run; otherwise `describe.skip`
// with the reason printed — or, where the environment requires them
// (SLUICE_KUBE_REQUIRED, SLUICE_BPF_REQUIRED ... in CI), a failure naming the reason.
import { describe } from '@jest/globals';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

// Also used outside jest (the conformance runner reaches it through test/kube/cluster.ts), so it
// lives in a module that does not import @jest/globals.
export { requiredByEnvironment } from './required.ts';

export function describeIfPossible(what: string, reason: string | null, required = false): typeof describe.skip {
  if (!reason) return describe;
  if (required) throw new Error(`${what} must run here (this environment requires them), but: ${reason}`);
  // stderr, not console.log: jest shows no console output of a file whose every test is skipped.
  process.stderr.write(`skipped: ${what}: ${reason}\n`);
  return describe.skip;
}


/** The first of `names` that is an executable on the PATH (a tool a suite needs), or null. */
export function findOnPath(names: string[]): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of names) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // not here
      }
    }
  }
  return null;
}
