// What every suite's runSuite() receives from run.ts.
import type { RunnerArgs } from './args.ts';
import type { Reporter } from './report.ts';

export interface SuiteContext {
  /** The project checkout; case paths are relative to its parent (the folder holding shared/). */
  projectRoot: string;
  args: RunnerArgs;
  report: Reporter;
  claimedFeatures: readonly string[];
  /** Registers teardown work for an interrupted run (SIGINT). */
  registerCleanup(fn: () => Promise<void>): void;
}
