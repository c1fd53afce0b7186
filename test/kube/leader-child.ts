// One LeaderElector in its own process, for test/kube/leader.test.ts: the test SIGKILLs this process
// to get a leader that stops renewing without releasing the Lease (a crashed or partitioned
// controller), which no in-process trick reproduces faithfully.
//
//   node test/kube/leader-child.ts <kubeconfig> <namespace> <lease> <identity> [address]
//
// Prints one line per event on stdout: `started-leading`, `stopped-leading`; `stopped` after a
// clean shutdown on SIGTERM (which releases the Lease when leading).
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';

import { LeaderElector } from '../../controller/leader.ts';

const [kubeconfig, namespace, name, identity, address] = process.argv.slice(2);
if (!kubeconfig || !namespace || !name || !identity) {
  process.stderr.write('usage: leader-child.ts <kubeconfig> <namespace> <lease> <identity> [address]\n');
  process.exit(2);
}
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(kubeconfig);
const elector = new LeaderElector({
  kubeConfig,
  namespace,
  name,
  identity,
  ...(address ? { address } : {}),
  logger: pino({ level: process.env.SLUICE_TEST_LOG ?? 'warn' }, pino.destination(2)),
  onStartedLeading: () => process.stdout.write('started-leading\n'),
  onStoppedLeading: () => process.stdout.write('stopped-leading\n'),
});
elector.start();
process.on('SIGTERM', () => {
  void elector.stop().then(() => {
    process.stdout.write('stopped\n');
    process.exit(0);
  });
});
