// The chart's RBAC with some resources left out of its ClusterRole (an older chart, or one trimmed
// by hand), for the tests of a controller that may not read a kind: the objects created, and a
// kubeconfig of the controller's ServiceAccount.
import { join } from 'node:path';
import { renderChart } from '../chart/render.ts';
import type { KubeObject, TestCluster } from './cluster.ts';

const RBAC_KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

export interface TrimmedRbac {
  /** For `sluice controller --kubeconfig`: the chart's controller ServiceAccount. */
  kubeconfig: string;
  /** The ClusterRole as created (trimmed). */
  clusterRole: KubeObject;
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
    clusterRole: clusterRole!,
    grant: async () => {
      await cluster.client.replace({ ...clusterRole!, rules: fullRules });
    },
  };
}
