// Runs every test runner of the project in turn — typecheck, the layer rule, jest, the Gateway
// API and Ingress conformance suites (standalone, then through a real
// kube-apiserver) — and prints one closing line summing them:
// "N passed, M failed, K skipped". Exits non-zero when anything failed.
// `npm test` and .ci/run both use it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsUnavailableReason } from '../conformance/lib/netns.ts';
import { binariesSkipReason, kubeTestsRequired } from '../kube/cluster.ts';

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

const node = process.execPath;
const total: Counts = { passed: 0, failed: 0, skipped: 0 };
const add = (name: string, c: Counts) => {
  total.passed += c.passed;
  total.failed += c.failed;
  total.skipped += c.skipped;
  console.log(`== ${name}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
};

/** A runner that exits non-zero has failed, whatever its summary counted: one more failure then. */
function withExitStatus(name: string, status: number, counts: Counts): Counts {
  if (status === 0 || counts.failed > 0) return counts;
  console.log(`${name} exited with status ${status} although it counted no failure`);
  return { ...counts, failed: counts.failed + 1 };
}

function run(args: string[]): { status: number; output: string } {
  const r = spawnSync(node, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  return { status: r.status ?? 1, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// 1. Types (one check).
const tsc = run(['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'tsconfig.json']);
add('typecheck', tsc.status === 0 ? { passed: 1, failed: 0, skipped: 0 } : { passed: 0, failed: 1, skipped: 0 });

// 2. The layer rule (.dependency-cruiser.cjs, ARCHITECTURE.md): one check; the violations are printed.
// The arguments are those of `npm run lint:layers`, read from package.json so the two cannot drift.
const [, ...layerArgs] = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts['lint:layers'].split(' ');
const layers = run(['node_modules/dependency-cruiser/bin/dependency-cruise.mjs', ...layerArgs]);
add('layers', layers.status === 0 ? { passed: 1, failed: 0, skipped: 0 } : { passed: 0, failed: 1, skipped: 0 });

// 3. Jest: unit, golden, e2e.
const out = join(mkdtempSync(join(tmpdir(), 'sluice-jest-')), 'results.json');
const jest = run([
  '--experimental-vm-modules',
  '--disable-warning=ExperimentalWarning',
  'node_modules/jest/bin/jest.js',
  '--json',
  `--outputFile=${out}`,
  ...process.argv.slice(2),
]);
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  const suiteErrors = r.numRuntimeErrorTestSuites ?? 0;
  add('jest', withExitStatus('jest', jest.status, { passed: r.numPassedTests, failed: r.numFailedTests + suiteErrors, skipped: r.numPendingTests + r.numTodoTests }));
} catch {
  add('jest', { passed: 0, failed: 1, skipped: 0 });
  if (jest.status === 0) console.log('jest wrote no results');
}

// 4. The conformance suites against a real `sluice run`, then through a real kube-apiserver
// (`--target kubernetes`: root and the binaries test/kube/build-binaries.sh makes).
const kubernetesTarget = netnsUnavailableReason() ?? binariesSkipReason(['kube-apiserver', 'etcd']);
for (const target of ['standalone', 'kubernetes']) {
  for (const suite of ['gateway-api', 'ingress']) {
    const name = `conformance ${suite}${target === 'kubernetes' ? ' (kubernetes)' : ''}`;
    if (target === 'kubernetes' && kubernetesTarget) {
      console.log(`== ${name}: skipped: ${kubernetesTarget}`);
      add(name, kubeTestsRequired() ? { passed: 0, failed: 1, skipped: 0 } : { passed: 0, failed: 0, skipped: 1 });
      continue;
    }
    const conformance = run(['--disable-warning=ExperimentalWarning', 'test/conformance/run.ts', '--suite', suite, '--target', target]);
    const lastLines = conformance.output.split('\n').filter(Boolean).reverse().join('\n');
    const line = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/m.exec(lastLines);
    if (line) add(name, withExitStatus(name, conformance.status, { passed: Number(line[1]), failed: Number(line[2]), skipped: Number(line[3] ?? 0) }));
    else add(name, { passed: 0, failed: 1, skipped: 0 });
  }
}

console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(total.failed > 0 ? 1 : 0);
