// Command line of the conformance runner.

import { parseArgs } from 'node:util';

export interface RunnerArgs {
  suite: string;
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
}

export const USAGE = `Usage: npm run conformance -- --suite gateway-api [flags]

  --suite NAME                 suite to run: gateway-api (ingress: not implemented yet)
  --cases DIR                  folder of case files (default: the suite's cases/ folder)
  --suite-file FILE            suite.json to use (default: DIR/../suite.json if present, else the suite's own)
  --only NAME[,NAME]           run only these tests (repeatable)
  --verbose                    print progress and details
  --max-status-timeout SEC     cap every status-check timeout (development aid; default: the suite's values)
  --controller-name NAME       controllerName of the runner's GatewayClass (default sluice.dev/gateway-controller)
  --listener-port-offset N     Gateway listener port P is reached at P+N (default 20000)
  --bind-address CIDR          address range for Gateways (default: a random 127.x.0.0/16)
  --keep                       keep the temporary folder (manifests, Sluice log) even when everything passed
`;

export class ArgsError extends Error {}

export function parseRunnerArgs(argv: string[]): RunnerArgs {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        suite: { type: 'string' },
        cases: { type: 'string' },
        'suite-file': { type: 'string' },
        only: { type: 'string', multiple: true },
        verbose: { type: 'boolean', short: 'v', default: false },
        'max-status-timeout': { type: 'string' },
        'controller-name': { type: 'string', default: 'sluice.dev/gateway-controller' },
        'listener-port-offset': { type: 'string', default: '20000' },
        'bind-address': { type: 'string' },
        keep: { type: 'boolean', default: false },
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
  const offset = Number(values['listener-port-offset']);
  if (!Number.isInteger(offset) || offset < 0 || offset > 65000) throw new ArgsError(`--listener-port-offset ${values['listener-port-offset']}: expected 0..65000`);
  let maxStatus: number | undefined;
  if (values['max-status-timeout'] !== undefined) {
    maxStatus = Number(values['max-status-timeout']);
    if (!Number.isFinite(maxStatus) || maxStatus <= 0) throw new ArgsError(`--max-status-timeout ${values['max-status-timeout']}: expected seconds > 0`);
  }
  const only = ((values.only as string[] | undefined) ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  return {
    suite,
    casesDir: values.cases as string | undefined,
    suiteFile: values['suite-file'] as string | undefined,
    only,
    verbose: Boolean(values.verbose),
    maxStatusTimeoutSeconds: maxStatus,
    controllerName: values['controller-name'] as string,
    portOffset: offset,
    bindAddress: values['bind-address'] as string | undefined,
    keepTemp: Boolean(values.keep),
  };
}
