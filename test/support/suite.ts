// One rule for suites that need something of the machine (root and BPF, the
// kube binaries, helm): `describe` when they can run; otherwise `describe.skip`
// with the reason printed — or, where the environment requires them
// (SLUICE_KUBE_REQUIRED in CI), a failure naming the reason.
import { describe } from '@jest/globals';

export function describeIfPossible(what: string, reason: string | null, required = false): typeof describe.skip {
  if (!reason) return describe;
  if (required) throw new Error(`${what} must run here (SLUICE_KUBE_REQUIRED is set), but: ${reason}`);
  // stderr, not console.log: jest shows no console output of a file whose every test is skipped.
  process.stderr.write(`skipped: ${what}: ${reason}\n`);
  return describe.skip;
}
