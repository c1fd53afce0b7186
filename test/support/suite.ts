// One rule for suites that need something of the machine (root and BPF, the
// kube binaries, helm): `describe` when they can run; otherwise `describe.skip`
// with the reason printed — or, where the environment requires them
// (SLUICE_KUBE_REQUIRED, SLUICE_BPF_REQUIRED ... in CI), a failure naming the reason.
import { describe } from '@jest/globals';

export function describeIfPossible(what: string, reason: string | null, required = false): typeof describe.skip {
  if (!reason) return describe;
  if (required) throw new Error(`${what} must run here (this environment requires them), but: ${reason}`);
  // stderr, not console.log: jest shows no console output of a file whose every test is skipped.
  process.stderr.write(`skipped: ${what}: ${reason}\n`);
  return describe.skip;
}

/** True when the environment variable says a suite must run here (CI sets it after installing what the suite needs). */
export function requiredByEnvironment(variable: string): boolean {
  return /^(1|true|yes)$/i.test(process.env[variable] ?? '');
}
