// Command line of the conformance runner.

import { parseArgs } from 'node:util';

export type TargetName = 'standalone' | 'kubernetes';

export interface RunnerArgs {
  suite: string;
  /** standalone: a `sluice run` over a manifest folder; kubernetes: controller + dataplane on a real API server. */
  target: TargetName;
  casesDir?: string;
  suiteFile?: string;
  only: string[];
  verbose: boolean;
  /** Upper bound for every status-check timeout (development aid); default: the suite's timeouts. */
  maxStatusTimeoutSeconds?: number;
  controllerName: string;
  portOffset: number;
  bindAddress?: string;
  keepTemp: boolean;
  /** ingress: how long a `loadBalancerAddress: absent` status case watches (seconds). */
  absentWindowSeconds: number;
  /** ingress: how long `present` status cases and setup.waitForLoadBalancerAddress poll (seconds). */
  statusTimeoutSeconds: number;
  /** ingress: time budget per http case to pass the required number of times in a row (seconds). */
  caseBudgetSeconds: number;
  /** ingress: only keys listed in a case's `asserted` can fail it; other mismatches are printed as notes. */
  assertedOnly: boolean;
}

export const USAGE = `Usage: npm run conformance -- --suite gateway-api|ingress [flags]

  --suite NAME                 suite to run: gateway-api or ingress
  --target NAME                standalone (default): objects go to a manifest folder that \`sluice run\` watches;
                               kubernetes: objects go through a real kube-apiserver (test/kube) to \`sluice
                               controller\` + \`sluice dataplane\`, statuses are read from the real objects
                               (needs root and test/kube/build-binaries.sh; runs in its own network namespace)
  --cases DIR                  folder of case files (default: the suite's cases/ folder; gateway-api also reads
                               cases-new-kinds/)
  --suite-file FILE            gateway-api: suite.json to use (default: DIR/../suite.json if present, else the suite's own)
  --only NAME[,NAME]           run only these tests (repeatable); ingress: case ids or group ids
  --verbose                    print progress and details
  --max-status-timeout SEC     cap every status-check timeout (development aid; default: the suite's values)
  --controller-name NAME       controllerName of the runner's GatewayClass (default sluice.dev/gateway-controller)
  --listener-port-offset N     Gateway listener port P is reached at P+N (default 20000)
  --bind-address CIDR          address range for Gateways (default: a random 127.x.0.0/16)
  --keep                       keep the temporary folder (manifests, Sluice log) even when everything passed
  --absent-window SEC          ingress: how long a loadBalancerAddress "absent" case watches (default 10; upstream 300)
  --status-timeout SEC         ingress: how long "present" cases and setup.waitForLoadBalancerAddress poll (default 60)
  --case-budget SEC            ingress: time for an http case to pass 3 times in a row (default 30)
  --asserted-only              ingress: only expect keys listed in a case's "asserted" can fail it (default: every key)
`;

export class ArgsError extends Error {}

export function parseRunnerArgs(argv: string[]): RunnerArgs {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        suite: { type: 'string' },
        target: { type: 'string', default: 'standalone' },
        cases: { type: 'string' },
        'suite-file': { type: 'string' },
        only: { type: 'string', multiple: true },
        verbose: { type: 'boolean', short: 'v', default: false },
        'max-status-timeout': { type: 'string' },
        'controller-name': { type: 'string', default: 'sluice.dev/gateway-controller' },
        'listener-port-offset': { type: 'string', default: '20000' },
        'bind-address': { type: 'string' },
        keep: { type: 'boolean', default: false },
        'absent-window': { type: 'string', default: '10' },
        'status-timeout': { type: 'string', default: '60' },
        'case-budget': { type: 'string', default: '30' },
        'asserted-only': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ArgsError((err as Error).message);
  }
  if (values.help) throw new ArgsError('');
  const suite = values.suite as string | undefined;
  if (!suite) throw new ArgsError('--suite is required');
  const target = values.target as string;
  if (target !== 'standalone' && target !== 'kubernetes') throw new ArgsError(`--target ${target}: expected standalone or kubernetes`);
  const offset = Number(values['listener-port-offset']);
  if (!Number.isInteger(offset) || offset < 0 || offset > 65000) throw new ArgsError(`--listener-port-offset ${values['listener-port-offset']}: expected 0..65000`);
  let maxStatus: number | undefined;
  if (values['max-status-timeout'] !== undefined) {
    maxStatus = Number(values['max-status-timeout']);
    if (!Number.isFinite(maxStatus) || maxStatus <= 0) throw new ArgsError(`--max-status-timeout ${values['max-status-timeout']}: expected seconds > 0`);
  }
  const seconds = (flag: string): number => {
    const n = Number(values[flag]);
    if (!Number.isFinite(n) || n <= 0) throw new ArgsError(`--${flag} ${values[flag]}: expected seconds > 0`);
    return n;
  };
  const absentWindowSeconds = seconds('absent-window');
  const statusTimeoutSeconds = seconds('status-timeout');
  const caseBudgetSeconds = seconds('case-budget');
  const only = ((values.only as string[] | undefined) ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  return {
    suite,
    target,
    casesDir: values.cases as string | undefined,
    suiteFile: values['suite-file'] as string | undefined,
    only,
    verbose: Boolean(values.verbose),
    maxStatusTimeoutSeconds: maxStatus,
    controllerName: values['controller-name'] as string,
    portOffset: offset,
    bindAddress: values['bind-address'] as string | undefined,
    keepTemp: Boolean(values.keep),
    absentWindowSeconds,
    statusTimeoutSeconds,
    caseBudgetSeconds,
    assertedOnly: Boolean(values['asserted-only']),
  };
}
