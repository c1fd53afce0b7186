// The test plays the scheduler and the kubelet of one Node for the real kube-controller-manager:
// pods that Deployments and ReplicaSets create are bound to the Node, get an IP inside a network
// namespace this module makes (joined to ours by a veth pair, so Sluice reaches them), run one
// pod-child.ts per pod on that IP and the first container port, and are marked Running and Ready
// once it listens. A deleted pod gets its preStop sleep (as the kubelet runs
// `lifecycle.preStop.sleep`), then SIGTERM, then is removed (grace period 0, as the kubelet does).
// Needs root (netnsSkipReason() of ../netns-echo.ts).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { KubeClient, KubeObject } from '../client.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');

interface Container {
  name: string;
  image?: string;
  env?: { name: string; value?: string }[];
  ports?: { containerPort: number }[];
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
}

interface RunningPod {
  uid: string;
  ip: string;
  child: ChildProcess;
  stopping: boolean;
}

export interface FakeKubelet {
  readonly node: string;
  /** The node's subnet (`10.203.<n>.0/24`); pod IPs come from it. */
  readonly subnet: string;
  /** Pods this kubelet runs now, by `namespace/name`, with their IPs. */
  pods(): Map<string, string>;
  /** Everything the pod processes printed on stderr, and the kubelet's own errors. */
  logs(): string;
  stop(): Promise<void>;
}

export async function startFakeKubelet(client: KubeClient, node = 'sluice-test-node'): Promise<FakeKubelet> {
  const n = (process.pid % 250) + 1;
  const netns = `slc-${process.pid}`;
  const host = `slch${process.pid % 100000}`;
  const peer = `slcp${process.pid % 100000}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const removeNetns = () => {
    try {
      ip('netns', 'del', netns);
    } catch {
      // already gone
    }
  };
  removeNetns();
  ip('netns', 'add', netns);
  ip('-n', netns, 'link', 'set', 'lo', 'up');
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer, 'netns', netns);
  ip('addr', 'add', `10.203.${n}.1/24`, 'dev', host);
  ip('-n', netns, 'addr', 'add', `10.203.${n}.2/24`, 'dev', peer);
  ip('link', 'set', host, 'up');
  ip('-n', netns, 'link', 'set', peer, 'up');

  const nodeRef = { apiVersion: 'v1', kind: 'Node', name: node };
  if (!(await client.getOrUndefined(nodeRef))) {
    await client.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { 'kubernetes.io/hostname': node, 'kubernetes.io/os': 'linux' } } });
  }
  const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await client.mergePatch(
    nodeRef,
    {
      status: {
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'the test kubelet', lastHeartbeatTime: now(), lastTransitionTime: now() }],
        addresses: [{ type: 'InternalIP', address: `10.203.${n}.2` }, { type: 'Hostname', address: node }],
        capacity: { cpu: '64', memory: '256Gi', pods: '250' },
        allocatable: { cpu: '64', memory: '256Gi', pods: '250' },
      },
    },
    'status',
  );

  const running = new Map<string, RunningPod>();
  const free = Array.from({ length: 240 }, (_, i) => `10.203.${n}.${i + 10}`);
  let output = '';
  let stopped = false;

  const podPath = (pod: KubeObject, sub = '') => `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}${sub}`;

  const startPod = async (pod: KubeObject) => {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const container = (pod.spec.containers as Container[])[0]!;
    const port = container.ports?.[0]?.containerPort ?? 8080;
    const podIp = free.shift();
    if (podIp === undefined) throw new Error('the test kubelet ran out of pod IPs');
    ip('-n', netns, 'addr', 'add', `${podIp}/32`, 'dev', peer);
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) env[e.name] = e.value ?? '';
    const child = spawn('nsenter', [`--net=/var/run/netns/${netns}`, '--', process.execPath, '--disable-warning=ExperimentalWarning',
      join(ROOT, 'test', 'kube', 'canary', 'pod-child.ts'), pod.metadata.name, pod.metadata.namespace!, podIp, String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, ...env },
    });
    child.stderr!.on('data', (d) => (output += `${key}: ${d}`));
    running.set(key, { uid: pod.metadata.uid, ip: podIp, child, stopping: false });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`pod ${key} exited ${code}`)));
    });
    const t = now();
    const ready = [
      { type: 'PodScheduled', status: 'True', lastTransitionTime: t },
      { type: 'Initialized', status: 'True', lastTransitionTime: t },
      { type: 'ContainersReady', status: 'True', lastTransitionTime: t },
      { type: 'Ready', status: 'True', lastTransitionTime: t },
    ];
    await client.call('PATCH', podPath(pod, '/status'), {
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          phase: 'Running',
          hostIP: `10.203.${n}.2`,
          hostIPs: [{ ip: `10.203.${n}.2` }],
          podIP: podIp,
          podIPs: [{ ip: podIp }],
          startTime: t,
          conditions: ready,
          containerStatuses: [{ name: container.name, image: container.image ?? '', imageID: '', ready: true, started: true, restartCount: 0, state: { running: { startedAt: t } } }],
        },
      },
    });
  };

  const stopPod = async (key: string, pod: KubeObject | undefined) => {
    const r = running.get(key);
    if (!r || r.stopping) return;
    r.stopping = true;
    const container = pod ? (pod.spec.containers as Container[])[0] : undefined;
    const sleep = container?.lifecycle?.preStop?.sleep?.seconds ?? 0;
    if (sleep > 0) await new Promise((resolve) => setTimeout(resolve, sleep * 1000));
    const exited = new Promise<void>((resolve) => (r.child.exitCode !== null ? resolve() : r.child.once('exit', () => resolve())));
    r.child.kill('SIGTERM');
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    try {
      ip('-n', netns, 'addr', 'del', `${r.ip}/32`, 'dev', peer);
    } catch {
      // gone with the namespace
    }
    free.push(r.ip);
    running.delete(key);
    if (pod) {
      await client.request('DELETE', podPath(pod), { body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: r.uid } } });
    }
  };

  const busy = new Set<string>();
  const sync = async () => {
    const pods = (await client.call<{ items: KubeObject[] }>('GET', '/api/v1/pods')).items;
    const seen = new Set<string>();
    for (const pod of pods) {
      const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
      seen.add(key);
      if (busy.has(key)) continue;
      const work = async () => {
        if (pod.metadata.deletionTimestamp) {
          if (running.has(key)) await stopPod(key, pod);
          else if (pod.spec.nodeName === node) await client.request('DELETE', podPath(pod), { body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0 } });
        } else if (!pod.spec.nodeName) {
          await client.call('POST', podPath(pod, '/binding'), {
            body: { apiVersion: 'v1', kind: 'Binding', metadata: { name: pod.metadata.name }, target: { apiVersion: 'v1', kind: 'Node', name: node } },
          });
        } else if (pod.spec.nodeName === node && !running.has(key) && !pod.status?.podIP) {
          await startPod(pod);
        }
      };
      busy.add(key);
      work()
        .catch((err: Error) => (output += `kubelet: ${key}: ${err.message}\n`))
        .finally(() => busy.delete(key));
    }
    // Pods removed without us (a namespace deleted by force): stop their processes.
    for (const key of running.keys()) if (!seen.has(key)) void stopPod(key, undefined);
  };
  const loop = (async () => {
    while (!stopped) {
      await sync().catch((err: Error) => (output += `kubelet: ${err.message}\n`));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();

  return {
    node,
    subnet: `10.203.${n}.0/24`,
    pods: () => new Map([...running].filter(([, r]) => !r.stopping).map(([k, r]) => [k, r.ip])),
    logs: () => output,
    async stop() {
      stopped = true;
      await loop;
      for (const r of running.values()) r.child.kill('SIGKILL');
      running.clear();
      removeNetns();
    },
  };
}
