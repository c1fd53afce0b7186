// Conformance runner: `npm run conformance -- --suite gateway-api|ingress [--target standalone|kubernetes]
// [--cases DIR] [--only NAME] [--verbose]`.
// Prints one line per test (PASS / FAIL / SKIP) and then exactly
// `N passed, M failed, K skipped`; exits non-zero when anything failed.
// Suite-specific code lives in its own module (./gateway-api/, ./ingress/); a new suite
// plugs in through SUITES below. Where Sluice runs is the target's business (lib/target.ts);
// `--target kubernetes` first re-executes the runner in network and PID namespaces of its own
// (lib/netns.ts).

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLAIMED_FEATURES } from './claimed-features.ts';
import { ArgsError, parseRunnerArgs, USAGE, type RunnerArgs } from './lib/args.ts';
import { insideRunnerNetns, netnsUnavailableReason, reexecInNetns } from './lib/netns.ts';
import { Reporter } from './lib/report.ts';

export interface SuiteModule {
  runSuite(ctx: {
    projectRoot: string;
    args: RunnerArgs;
    report: Reporter;
    claimedFeatures: readonly string[];
    registerCleanup(fn: () => Promise<void>): void;
  }): Promise<void>;
}

const SUITES: Record<string, (() => Promise<SuiteModule>) | { notImplemented: string }> = {
  'gateway-api': () => import('./gateway-api/suite.ts'),
  ingress: () => import('./ingress/suite.ts'),
};

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

async function main(argv: string[]): Promise<number> {
  let args: RunnerArgs;
  try {
    args = parseRunnerArgs(argv);
  } catch (err) {
    if (err instanceof ArgsError) {
      if (err.message) process.stderr.write(`conformance: ${err.message}\n\n`);
      process.stderr.write(USAGE);
      return err.message ? 2 : 0;
    }
    throw err;
  }
  const entry = SUITES[args.suite];
  if (!entry) {
    process.stderr.write(`conformance: unknown suite ${JSON.stringify(args.suite)} (known: ${Object.keys(SUITES).join(', ')})\n`);
    return 2;
  }
  if ('notImplemented' in entry) {
    process.stderr.write(`conformance: --suite ${args.suite}: ${entry.notImplemented}\n`);
    return 2;
  }
  if (args.target === 'kubernetes' && !insideRunnerNetns()) {
    const { binariesSkipReason } = await import('../kube/cluster.ts');
    const why = netnsUnavailableReason() ?? binariesSkipReason(['kube-apiserver', 'etcd']);
    if (why) {
      process.stderr.write(`conformance: --target kubernetes: ${why}\n`);
      return 2;
    }
    return reexecInNetns();
  }
  const report = new Reporter({ verbose: args.verbose });
  const cleanups: (() => Promise<void>)[] = [];
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`conformance: ${signal}, stopping\n`);
    void Promise.allSettled(cleanups.map((fn) => fn())).then(() => {
      process.stdout.write(`${report.summary()}\n`);
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const suite = await entry();
  try {
    await suite.runSuite({
      projectRoot,
      args,
      report,
      // Both targets claim the same: the kubernetes target's cluster has the experimental-channel CRDs.
      claimedFeatures: CLAIMED_FEATURES,
      registerCleanup: (fn) => cleanups.push(fn),
    });
  } catch (err) {
    await Promise.allSettled(cleanups.map((fn) => fn()));
    if (err instanceof ArgsError) {
      process.stderr.write(`conformance: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`conformance: ${(err as Error).stack ?? err}\n`);
    process.stdout.write(`${report.summary()}\n`);
    return 1;
  }
  process.stdout.write(`${report.summary()}\n`);
  return report.failed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`conformance: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
