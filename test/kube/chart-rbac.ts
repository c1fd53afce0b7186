// The chart's RBAC with some resources left out of its ClusterRole (an older chart, or one trimmed
// by hand), for the tests of a controller that may not read a kind: the objects created, a
// kubeconfig of the controller's ServiceAccount, and a `sluice controller` started with it.
import { join } from 'node:path';
import { renderChart } from '../chart/render.ts';
import { freePorts } from '../support/ports.ts';
import type { KubeObject, TestCluster } from './cluster.ts';
import { sluice, type Proc } from './processes.ts';

const RBAC_KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

export interface TrimmedRbac {
  /** For `sluice controller --kubeconfig`: the chart's controller ServiceAccount. */
  kubeconfig: string;
  /** Grants what was left out: the ClusterRole's rules as the chart renders them. */
  grant(): Promise<void>;
}

/** Creates the chart's RBAC in `namespace` (which must exist) without the ClusterRole resources that start with `leftOut` (`tlsroutes` takes `tlsroutes/status` too). */
export async function chartRbacWithout(cluster: TestCluster, release: string, namespace: string, leftOut: string): Promise<TrimmedRbac> {
  const rendered = renderChart({}, release, namespace).filter((o) => RBAC_KINDS.has(o.kind));
  let clusterRole: KubeObject | undefined;
  let fullRules: unknown;
  for (const obj of rendered) {
    const trimmed = obj.kind === 'ClusterRole'
      ? { ...obj, rules: (obj.rules as { resources?: string[] }[]).map((r) => ({ ...r, ...(r.resources ? { resources: r.resources.filter((x) => !x.startsWith(leftOut)) } : {}) })) }
      : obj;
    const created = await cluster.client.create({ ...trimmed, metadata: { ...obj.metadata, namespace: obj.kind.startsWith('Cluster') ? undefined : namespace } });
    if (obj.kind === 'ClusterRole') {
      clusterRole = created;
      fullRules = obj.rules;
    }
  }
  const account = rendered.find((o) => o.kind === 'ServiceAccount' && /controller/.test(o.metadata.name));
  const token = await cluster.serviceAccountToken(namespace, account!.metadata.name);
  return {
    kubeconfig: cluster.writeKubeconfig(join(cluster.dir, 'controller.kubeconfig'), { token }),
    grant: async () => {
      await cluster.client.replace({ ...clusterRole!, rules: fullRules });
    },
  };
}

export interface RestrictedController extends TrimmedRbac {
  controller: Proc;
  readyz(): Promise<{ status: number; body: string }>;
}

/** `sluice controller` (a real process) on the chart's RBAC without `leftOut` (see chartRbacWithout): started, not awaited. */
export async function startControllerWithout(cluster: TestCluster, release: string, namespace: string, leftOut: string): Promise<RestrictedController> {
  const rbac = await chartRbacWithout(cluster, release, namespace, leftOut);
  const [snapshotPort, adminPort] = await freePorts(2);
  const controller = sluice(['controller', '--kubeconfig', rbac.kubeconfig, '--snapshot-address', `127.0.0.1:${snapshotPort}`, '--admin-address', `127.0.0.1:${adminPort}`, '--name', 'controller-0']);
  return {
    ...rbac,
    controller,
    readyz: async () => {
      const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      return { status: res.status, body: await res.text() };
    },
  };
}
