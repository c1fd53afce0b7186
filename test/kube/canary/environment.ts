// The canary tests' cluster: the real kube-apiserver and etcd (../cluster.ts), the real
// kube-controller-manager, the test kubelet (pods run as processes in a network namespace), and
// Sluice in Kubernetes mode (a `sluice controller` and a `sluice dataplane` process) serving
// Gateway app/gw (HTTP 80, on 127.0.0.1 at 80 + offset).
import { request } from 'undici';
import { freePort, freePorts } from '../../support/ports.ts';
import { startTestCluster, type KubeClient, type TestCluster } from '../cluster.ts';
import { sluice, waitFor, type Proc } from '../processes.ts';
import { startControllerManager, type ControllerProcess } from './controllers.ts';
import { startFakeKubelet, type FakeKubelet } from './kubelet.ts';

export const NAMESPACE = 'app';

export interface CanaryEnvironment {
  cluster: TestCluster;
  client: KubeClient;
  kubelet: FakeKubelet;
  controllerManager: ControllerProcess;
  /** The dataplane's port for the Gateway's listener 80. */
  port: number;
  /** sluice controller's admin API (`/metrics`, `/api/status`). */
  controllerAdmin: string;
  /** sluice dataplane's admin API (`/metrics`: the per-backend series Prometheus scrapes). */
  dataplaneAdmin: string;
  /** Everything the Sluice processes and the kubelet printed, for a failing test's message. */
  logs(): string;
  /** The dataplane's whole log (JSON lines): when it applied each configuration. */
  dataplaneLogs(): string;
  stop(): Promise<void>;
}

export async function startCanaryEnvironment(): Promise<CanaryEnvironment> {
  const cluster = await startTestCluster();
  const client = cluster.client;
  const stops: (() => Promise<void>)[] = [() => cluster.stop()];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const controllerManager = startControllerManager(cluster);
    stops.push(() => controllerManager.stop());
    const kubelet = await startFakeKubelet(client);
    stops.push(() => kubelet.stop());

    await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    // The serviceaccount controller gives every namespace its `default` ServiceAccount; pods need it.
    await waitFor('the default ServiceAccount', async () => client.getOrUndefined({ apiVersion: 'v1', kind: 'ServiceAccount', namespace: NAMESPACE, name: 'default' }), 60_000);
    const dataplaneService = { namespace: NAMESPACE, name: 'sluice-dataplane' };
    await client.create({ apiVersion: 'v1', kind: 'Service', metadata: dataplaneService, spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80 }] } });
    await client.mergePatch({ apiVersion: 'v1', kind: 'Service', ...dataplaneService }, { status: { loadBalancer: { ingress: [{ ip: '127.0.0.1' }] } } }, 'status');
    await client.create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'sluice' }, spec: { controllerName: 'sluice.dev/gateway-controller' } });
    await client.create({
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: NAMESPACE },
      spec: { gatewayClassName: 'sluice', listeners: [{ name: 'http', protocol: 'HTTP', port: 80, allowedRoutes: { namespaces: { from: 'All' } } }] },
    });

    const [snapshotPort, controllerAdminPort, dataplaneAdminPort] = await freePorts(3);
    const offset = (await freePort()) - 80;
    const controller: Proc = sluice(['controller', '--kubeconfig', cluster.kubeconfigPath, '--snapshot-address', `127.0.0.1:${snapshotPort}`,
      '--admin-address', `127.0.0.1:${controllerAdminPort}`, '--dataplane-service', `${NAMESPACE}/sluice-dataplane`]);
    stops.push(() => controller.stop());
    const dataplane: Proc = sluice(['dataplane', '--controller', `http://127.0.0.1:${snapshotPort}`, '--name', 'dp-1', '--admin-address', `127.0.0.1:${dataplaneAdminPort}`,
      '--listener-port-offset', String(offset), '--bpf', 'off']);
    stops.push(() => dataplane.stop());
    const env: CanaryEnvironment = {
      cluster,
      client,
      kubelet,
      controllerManager,
      port: 80 + offset,
      controllerAdmin: `http://127.0.0.1:${controllerAdminPort}`,
      dataplaneAdmin: `http://127.0.0.1:${dataplaneAdminPort}`,
      logs: () => `--- sluice controller\n${controller.logs().slice(-4000)}\n--- sluice dataplane\n${dataplane.logs().slice(-4000)}\n--- kubelet\n${kubelet.logs().slice(-4000)}`,
      dataplaneLogs: () => dataplane.logs(),
      stop,
    };
    await waitFor('the Gateway Programmed', async () => {
      const gw = await client.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: NAMESPACE, name: 'gw' });
      return gw.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Programmed' && c.status === 'True');
    }, 60_000).catch(async (e: Error) => {
      const gw = await client.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: NAMESPACE, name: 'gw' });
      throw new Error(`${e.message}: ${JSON.stringify(gw.status)}\n${env.logs()}`);
    });
    await waitFor('the dataplane listening', async () => (await request(`http://127.0.0.1:${env.port}/`).then((r) => r.body.dump().then(() => true)).catch(() => false)) || undefined, 30_000);
    return env;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A Deployment whose pods run pod-child.ts with this environment, and its Service (port 80 → 8080). */
export function webApp(name: string, replicas: number, env: Record<string, string>): { deployment: Record<string, unknown>; service: Record<string, unknown> } {
  const labels = { app: name };
  return {
    deployment: {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: NAMESPACE, labels },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 10,
            containers: [{
              name: 'web', image: 'sluice.test/pod-child:1',
              ports: [{ name: 'http', containerPort: 8080 }],
              env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
              // Time for the EndpointSlice change to reach the dataplane before the process stops.
              lifecycle: { preStop: { sleep: { seconds: 2 } } },
            }],
          },
        },
      },
    },
    service: {
      apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NAMESPACE },
      spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    },
  };
}
