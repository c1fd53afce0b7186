// The real controllers of the canary tests as child processes against the test cluster:
// kube-controller-manager (Deployments → ReplicaSets → Pods, EndpointSlices, ServiceAccounts,
// garbage collection) and Flagger, as test/kube/build-binaries.sh builds them.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubeBinDir, type TestCluster } from '../cluster.ts';

const BUILD_SCRIPT = join(import.meta.dirname, '..', 'build-binaries.sh');

export type CanaryBinary = 'kube-controller-manager' | 'flagger' | 'rollouts-controller';

/** The version build-binaries.sh pins for a binary, read from the script. */
function pinned(name: CanaryBinary): string {
  const variable = { 'kube-controller-manager': 'KUBE_VERSION', flagger: 'FLAGGER_VERSION', 'rollouts-controller': 'ARGO_ROLLOUTS_VERSION' }[name];
  return new RegExp(`^${variable}=(\\S+)$`, 'm').exec(readFileSync(BUILD_SCRIPT, 'utf8'))?.[1] ?? '?';
}

/** Why these binaries cannot be used (missing, or built at another version than the script pins), or null. */
export function canaryBinariesSkipReason(names: CanaryBinary[]): string | null {
  for (const name of names) {
    const path = join(kubeBinDir(), name);
    try {
      accessSync(path, constants.X_OK);
    } catch {
      return `${path} is missing: run test/kube/build-binaries.sh canary`;
    }
    const stamp = join(kubeBinDir(), `.${name}.stamp`);
    const version = existsSync(stamp) ? readFileSync(stamp, 'utf8').split(' ')[1] : undefined;
    if (version !== pinned(name)) return `${path} is ${version ?? 'unstamped'}, the script pins ${pinned(name)}: run test/kube/build-binaries.sh canary`;
  }
  return null;
}

export interface ControllerProcess {
  /** The log file (stdout and stderr). */
  log: string;
  logs(): string;
  stop(): Promise<void>;
}

function startLogged(binary: CanaryBinary, args: string[], log: string): ControllerProcess {
  const out = createWriteStream(log);
  const child: ChildProcess = spawn(join(kubeBinDir(), binary), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    log,
    logs: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      out.end();
    },
  };
}

/**
 * kube-controller-manager with every default controller but the node ones (the test kubelet's
 * Node sends no heartbeats; nodelifecycle would taint it and evict its pods). Service account
 * tokens are signed with the cluster's key. No serving port: nothing scrapes it.
 */
export function startControllerManager(cluster: TestCluster): ControllerProcess {
  return startLogged(
    'kube-controller-manager',
    [
      `--kubeconfig=${cluster.kubeconfigPath}`,
      '--leader-elect=false',
      '--controllers=*,-node-lifecycle-controller,-taint-eviction-controller,-node-ipam-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller,-persistentvolume-binder-controller,-persistentvolume-expander-controller,-persistentvolume-attach-detach-controller',
      `--service-account-private-key-file=${join(cluster.dir, 'sa.key')}`,
      `--root-ca-file=${join(cluster.dir, 'ca.crt')}`,
      '--secure-port=0',
      // Rollouts in tests move quickly: sync ReplicaSets and Deployments without the 1 s batching.
      '--concurrent-deployment-syncs=5',
      '--concurrent-replicaset-syncs=5',
      '--v=1',
    ],
    join(cluster.dir, 'kube-controller-manager.log'),
  );
}

/** Flagger with the Gateway API v1 router, analysing with the given Prometheus. */
export function startFlagger(cluster: TestCluster, prometheusUrl: string, extra: string[] = []): ControllerProcess {
  return startLogged(
    'flagger',
    [
      `-kubeconfig=${cluster.kubeconfigPath}`,
      '-mesh-provider=gatewayapi:v1',
      `-metrics-server=${prometheusUrl}`,
      '-enable-leader-election=false',
      '-log-level=info',
      ...extra,
    ],
    join(cluster.dir, 'flagger.log'),
  );
}
