// charts/sluice: `helm lint` and `helm template` with the default values and with the non-default
// sets in test/chart/values/, the rendered objects parsed and checked for behaviour (replicas,
// leader election, Service type and ports, no API access for the dataplane, security contexts,
// eBPF capabilities only when enabled), the ClusterRole compared with the kinds the controller
// reads (controller/sources/kinds.ts, one entry per SNAPSHOT_FIELD_BY_KIND kind: a new kind
// without RBAC fails here), the values schema refusing bad values, the chart's CRDs equal to crds/,
// and the chart README naming every value. Skips (saying why) when helm is not built; with
// SLUICE_KUBE_REQUIRED=1 that is a failure instead.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

import { KIND_APIS } from '../../controller/sources/kinds.ts';
import { NAMED_UNREAD_APIS } from '../../controller/sources/kube-ignored.ts';
import { SNAPSHOT_FIELD_BY_KIND } from '../../controller/sources/objects.ts';
// Kinds whose status the controller writes; the rest are only read.
import { STATUS_WRITTEN_KINDS } from '../../controller/status/writer.ts';
import { binariesSkipReason, KubeApiError, kubeTestsRequired, startTestCluster, type TestCluster } from '../kube/cluster.ts';
import { CHART_DIR, findOne, helm, HelmError, renderChart, withValuesFile, type KubeObject } from './render.ts';
import { describeIfPossible } from '../support/suite.ts';

const helmMissing = binariesSkipReason(['helm']);
const describeHelm = describeIfPossible('chart tests', helmMissing, kubeTestsRequired());
// (Without helm the line above already said why; no second line for the same reason.)
const describeCluster = helmMissing ? describe.skip : describeIfPossible('chart tests against the API server', binariesSkipReason(['kube-apiserver', 'etcd']), kubeTestsRequired());

const ROOT = join(import.meta.dirname, '..', '..');
const VALUES_DIR = join(import.meta.dirname, 'values');
const FIXTURES = readdirSync(VALUES_DIR).filter((f) => f.endsWith('.yaml')).sort();
const fixture = (name: string): object => parse(readFileSync(join(VALUES_DIR, name), 'utf8')) ?? {};

const RELEASE = 'edge';
const NS = 'gateways';
const render = (values: object = {}) => renderChart(values, RELEASE, NS);

const READ_VERBS = ['get', 'list', 'watch'];
const STATUS_VERBS = ['get', 'patch'];
/** The eBPF agent's capabilities (measured: each one removed makes loading or attaching fail). */
const BPF_CAPABILITIES = ['BPF', 'NET_ADMIN', 'PERFMON'];

// ---- helpers ---------------------------------------------------------------------------------

const kindCounts = (objects: KubeObject[]) => {
  const counts: Record<string, number> = {};
  for (const o of objects) counts[o.kind] = (counts[o.kind] ?? 0) + 1;
  return counts;
};
const deployment = (objects: KubeObject[], component: string) => findOne(objects, 'Deployment', `${RELEASE}-${component}`);
const podSpec = (objects: KubeObject[], component: string) => deployment(objects, component).spec.template.spec;
const container = (objects: KubeObject[], component: string) => podSpec(objects, component).containers[0];
const args = (objects: KubeObject[], component: string): string[] => container(objects, component).args;
/** `--flag=value` → value; undefined when absent; throws when given twice. */
function flag(list: string[], name: string): string | undefined {
  const hits = list.filter((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (hits.length > 1) throw new Error(`--${name} given ${hits.length} times`);
  if (!hits.length) return undefined;
  return hits[0]!.includes('=') ? hits[0]!.slice(hits[0]!.indexOf('=') + 1) : '';
}
const envVar = (c: any, name: string) => (c.env ?? []).find((e: any) => e.name === name);

/** Every (apiGroup, resource, verb) a set of RBAC rules grants, as "group/resource:verb" (core group ""). */
function permissions(rules: any[]): Set<string> {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs ?? []) out.add(`${g}/${res}:${v}`);
  }
  return out;
}

/** The ClusterRole permissions the controller needs, derived from the kinds it reads. */
function expectedClusterPermissions(withNodes: boolean): Set<string> {
  const out = new Set<string>();
  for (const api of KIND_APIS) for (const v of READ_VERBS) out.add(`${api.group}/${api.plural}:${v}`);
  // Listed only to name their objects (kube-ignored.ts).
  for (const { group, plurals } of NAMED_UNREAD_APIS) for (const plural of plurals) out.add(`${group}/${plural}:list`);
  for (const kind of STATUS_WRITTEN_KINDS) {
    const api = KIND_APIS.find((a) => a.kind === kind)!;
    for (const v of STATUS_VERBS) out.add(`${api.group}/${api.plural}/status:${v}`);
  }
  if (withNodes) for (const v of READ_VERBS) out.add(`/nodes:${v}`);
  return out;
}

function expectHelmFailure(values: object, message: RegExp): void {
  let err: unknown;
  try {
    render(values);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(HelmError);
  expect((err as HelmError).message).toMatch(message);
}

/** Values documented as a whole (Kubernetes structures passed through). */
const OPAQUE_VALUES = new Set(['resources', 'podSecurityContext', 'livenessProbe', 'readinessProbe']);

/** Leaf paths of a values object ("a.b.c"); arrays, empty maps and OPAQUE_VALUES are leaves. */
function leafPaths(value: unknown, prefix = ''): string[] {
  const key = prefix.split('.').pop()!;
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length === 0 || OPAQUE_VALUES.has(key)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}

// ---- tests -----------------------------------------------------------------------------------

describeHelm('charts/sluice (helm lint, helm template)', () => {
  test('helm lint passes with the default values and with every values set in test/chart/values/', () => {
    expect(FIXTURES).toEqual(expect.arrayContaining(['nodeport.yaml', 'bpf-disabled.yaml', 'servicemonitor.yaml', 'redis.yaml', 'classes-renamed.yaml', 'classes-not-created.yaml']));
    expect(helm(['lint', '--strict', CHART_DIR])).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    for (const f of FIXTURES) {
      expect(helm(['lint', '--strict', CHART_DIR, '-f', join(VALUES_DIR, f), '--namespace', NS])).toMatch(/0 chart\(s\) failed/);
    }
  });

  test('every values set renders, and every object is namespaced in the release namespace or cluster-scoped by design', () => {
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding', 'GatewayClass', 'IngressClass']);
    for (const values of [{}, ...FIXTURES.map(fixture)]) {
      const objects = render(values);
      for (const o of objects) {
        expect(o.apiVersion).toBeTruthy();
        expect(o.metadata.labels?.['app.kubernetes.io/instance']).toBe(RELEASE);
        if (clusterScoped.has(o.kind)) expect(o.metadata.namespace).toBeUndefined();
        else expect(o.metadata.namespace).toBe(NS);
      }
    }
  });

  test('default values: the kinds and their counts', () => {
    expect(kindCounts(render())).toEqual({
      Deployment: 2,
      Service: 2,
      ServiceAccount: 2,
      Secret: 1,
      ClusterRole: 1,
      ClusterRoleBinding: 1,
      Role: 1,
      RoleBinding: 1,
      PodDisruptionBudget: 2,
      GatewayClass: 1,
      IngressClass: 1,
    });
  });

  test('controller: 2 replicas, leader election with a Lease in its namespace, the flags the process takes', () => {
    const objects = render();
    expect(deployment(objects, 'controller').spec.replicas).toBe(2);
    const a = args(objects, 'controller');
    expect(a[0]).toBe('controller');
    expect(flag(a, 'leader-election-namespace')).toBe('$(POD_NAMESPACE)');
    expect(flag(a, 'leader-election-id')).toBe('sluice-controller');
    expect(flag(a, 'leader-address')).toBe('http://$(POD_IP):18000');
    expect(flag(a, 'snapshot-address')).toBe('0.0.0.0:18000');
    expect(flag(a, 'snapshot-token-file')).toBe('/var/run/sluice/token/token');
    expect(flag(a, 'admin-address')).toBe('0.0.0.0:9901');
    expect(flag(a, 'controller-name')).toBe('sluice.dev/gateway-controller');
    expect(flag(a, 'gateway-classes')).toBe('cilium');
    expect(flag(a, 'ingress-classes')).toBe('cilium');
    expect(flag(a, 'gateway-namespace')).toBe('$(POD_NAMESPACE)');
    expect(flag(a, 'kubeconfig')).toBeUndefined(); // in-cluster
    const c = container(objects, 'controller');
    expect(envVar(c, 'POD_NAMESPACE').valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
    expect(envVar(c, 'POD_IP').valueFrom.fieldRef.fieldPath).toBe('status.podIP');
    expect(envVar(c, 'POD_NAME').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    // --dataplane-service names the rendered dataplane Service.
    const service = findOne(objects, 'Service', `${RELEASE}-dataplane`);
    expect(flag(a, 'dataplane-service')).toBe(`$(POD_NAMESPACE)/${service.metadata.name}`);
    // The controller is the one that talks to the API server.
    expect(podSpec(objects, 'controller').automountServiceAccountToken).toBe(true);
    expect(podSpec(objects, 'controller').serviceAccountName).toBe(`${RELEASE}-controller`);
  });

  test('the dataplane subscribes to the controller Service with the shared token, and its labels are the gateway identity the controller is told', () => {
    const objects = render();
    const a = args(objects, 'dataplane');
    expect(a[0]).toBe('dataplane');
    const controllerService = findOne(objects, 'Service', `${RELEASE}-controller`);
    expect(controllerService.spec.ports).toEqual([expect.objectContaining({ name: 'snapshots', port: 18000, targetPort: 'snapshots' })]);
    expect(controllerService.spec.selector).toEqual(deployment(objects, 'controller').spec.selector.matchLabels);
    expect(flag(a, 'controller')).toBe(`http://${RELEASE}-controller.${NS}.svc:18000`);
    expect(flag(a, 'snapshot-token-file')).toBe('/var/run/sluice/token/token');
    expect(flag(a, 'name')).toBe('$(POD_NAME)');
    expect(flag(a, 'bind-address')).toBeUndefined(); // the controller decides what dataplanes bind (0.0.0.0 behind the Service)
    expect(flag(a, 'rate-limit-replicas')).toBe('2');
    expect(flag(a, 'redis-url')).toBeUndefined();
    expect(flag(a, 'workers')).toBe('1');

    // Both mount the same token Secret at /var/run/sluice/token (key `token`).
    const secret = findOne(objects, 'Secret');
    expect(Buffer.from(secret.data.token, 'base64').toString()).toMatch(/^[A-Za-z0-9]{48}$/);
    for (const component of ['controller', 'dataplane']) {
      const spec = podSpec(objects, component);
      const volume = spec.volumes.find((v: any) => v.name === 'snapshot-token');
      expect(volume.secret.secretName).toBe(secret.metadata.name);
      expect(volume.secret.items).toEqual([{ key: 'token', path: 'token' }]);
      expect(spec.containers[0].volumeMounts).toContainEqual({ name: 'snapshot-token', mountPath: '/var/run/sluice/token', readOnly: true });
    }

    // --gateway-labels: exactly labels the dataplane pods carry, and they select only dataplane pods.
    const gatewayLabels = Object.fromEntries(flag(args(objects, 'controller'), 'gateway-labels')!.split(',').map((kv) => kv.split('=') as [string, string]));
    expect(gatewayLabels).toEqual(expect.objectContaining({ 'app.kubernetes.io/name': 'sluice', 'app.kubernetes.io/component': 'dataplane' }));
    const podLabels = deployment(objects, 'dataplane').spec.template.metadata.labels;
    for (const [k, v] of Object.entries(gatewayLabels)) expect(podLabels[k]).toBe(v);
    expect(deployment(objects, 'controller').spec.template.metadata.labels['app.kubernetes.io/component']).not.toBe('dataplane');
  });

  test('workers: 1 by default, a count, or auto, which reads the CPU limit the pod is given', () => {
    expect(flag(args(render({ dataplane: { workers: 4 } }), 'dataplane'), 'workers')).toBe('4');
    const auto = render({ dataplane: { workers: 'auto', resources: { limits: { cpu: '1500m', memory: '1Gi' } } } });
    expect(flag(args(auto, 'dataplane'), 'workers')).toBe('auto');
    // What `auto` reads: the container's cgroup cpu.max, which the kubelet sets from this limit (2 workers here).
    expect(container(auto, 'dataplane').resources.limits.cpu).toBe('1500m');
  });

  test('the dataplane has no Kubernetes API access: no ServiceAccount token, no binding', () => {
    for (const values of [{}, ...FIXTURES.map(fixture)]) {
      const objects = render(values);
      const spec = podSpec(objects, 'dataplane');
      expect(spec.automountServiceAccountToken).toBe(false);
      const sa = findOne(objects, 'ServiceAccount', spec.serviceAccountName);
      expect(sa.automountServiceAccountToken).toBe(false);
      expect(JSON.stringify(spec.volumes)).not.toMatch(/serviceAccountToken|kube-api-access/);
      for (const b of objects.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
        for (const s of b.subjects) expect(s.name).not.toBe(spec.serviceAccountName);
      }
    }
  });

  test('Service: LoadBalancer by default, 80/443 to the offset ports the dataplane binds; NodePort 30080/30443 as an option', () => {
    const lb = render();
    const service = findOne(lb, 'Service', `${RELEASE}-dataplane`);
    expect(service.spec.type).toBe('LoadBalancer');
    expect(service.spec.selector).toEqual(deployment(lb, 'dataplane').spec.selector.matchLabels);
    expect(service.spec.ports).toEqual([
      { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
      { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' },
    ]);
    expect(flag(args(lb, 'dataplane'), 'listener-port-offset')).toBe('8000');
    const containerPorts = container(lb, 'dataplane').ports.map((p: any) => p.containerPort);
    for (const p of service.spec.ports) expect(containerPorts).toContain(p.targetPort);
    // The admin API (/api/config, /api/flows) is not exposed to clients.
    expect(service.spec.ports.map((p: any) => p.port)).not.toContain(9901);

    const np = render(fixture('nodeport.yaml'));
    const nodePort = findOne(np, 'Service', `${RELEASE}-dataplane`);
    expect(nodePort.spec.type).toBe('NodePort');
    expect(nodePort.spec.ports.map((p: any) => [p.port, p.targetPort, p.nodePort])).toEqual([
      [80, 8080, 30080],
      [443, 8443, 30443],
    ]);
  });

  test('listenerPortOffset 0: ports bound as they are, allowed to the non-root process by the namespaced sysctl', () => {
    const objects = render(fixture('listener-ports.yaml'));
    const service = findOne(objects, 'Service', `${RELEASE}-dataplane`);
    expect(service.spec.type).toBe('ClusterIP');
    expect(service.spec.ports.map((p: any) => [p.port, p.targetPort, p.protocol])).toEqual([
      [80, 80, 'TCP'],
      [443, 443, 'TCP'],
      [8080, 8080, 'TCP'],
      [8080, 8080, 'UDP'],
    ]);
    expect(container(objects, 'dataplane').ports.filter((p: any) => p.containerPort === 8080).map((p: any) => p.protocol)).toEqual(['TCP', 'UDP']);
    expect(podSpec(objects, 'dataplane').securityContext.sysctls).toEqual([{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }]);
    expect(podSpec(render(), 'dataplane').securityContext.sysctls).toBeUndefined();
    expect(flag(args(objects, 'dataplane'), 'listener-port-offset')).toBe('0');
    // existingSecret: no Secret rendered, the pods mount the named one.
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(podSpec(objects, 'dataplane').volumes.find((v: any) => v.name === 'snapshot-token').secret.secretName).toBe('my-snapshot-token');
    expect(objects.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
    expect(container(objects, 'controller').image).toBe('ghcr.io/sluice-dev/sluice@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
  });

  test('security contexts: non-root, read-only root filesystem, no privilege escalation, every capability dropped, RuntimeDefault seccomp', () => {
    for (const values of [{}, fixture('bpf-disabled.yaml')]) {
      const objects = render(values);
      for (const component of ['controller', 'dataplane']) {
        const spec = podSpec(objects, component);
        expect(spec.securityContext).toEqual(expect.objectContaining({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } }));
        expect(spec.hostNetwork).toBeUndefined();
        expect(spec.hostPID).toBeUndefined();
        const sc = spec.containers[0].securityContext;
        expect(sc).toEqual(expect.objectContaining({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false }));
        expect(sc.capabilities.drop).toEqual(['ALL']);
        // Liveness on /healthz and readiness on /readyz, on the admin port.
        const c = spec.containers[0];
        const admin = c.ports.find((p: any) => p.name === 'admin');
        expect(admin.containerPort).toBe(9901);
        expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
        expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
        expect(c.resources.requests).toEqual(expect.objectContaining({ cpu: expect.any(String), memory: expect.any(String) }));
      }
      expect(container(objects, 'controller').securityContext).toEqual(expect.objectContaining({ runAsNonRoot: true }));
      expect(container(objects, 'controller').securityContext.capabilities.add).toBeUndefined();
    }
  });

  test('eBPF enabled (default): root with exactly BPF, NET_ADMIN and PERFMON, the host bpffs, a pin folder per pod', () => {
    const objects = render();
    const c = container(objects, 'dataplane');
    expect(c.securityContext).toEqual(expect.objectContaining({ runAsUser: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true }));
    expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'], add: BPF_CAPABILITIES });
    expect(flag(c.args, 'bpf')).toBe('auto');
    expect(flag(c.args, 'bpf-pin-dir')).toBe('$(SLUICE_BPF_PIN_DIR)');
    expect(envVar(c, 'SLUICE_BPF_PIN_DIR').value).toBe('/sys/fs/bpf/sluice/$(POD_NAMESPACE)/$(POD_NAME)');
    const spec = podSpec(objects, 'dataplane');
    const hostPaths = spec.volumes.filter((v: any) => v.hostPath);
    expect(hostPaths).toEqual([{ name: 'bpffs', hostPath: { path: '/sys/fs/bpf', type: 'Directory' } }]);
    expect(c.volumeMounts).toContainEqual({ name: 'bpffs', mountPath: '/sys/fs/bpf' });
    // preStop unpins this pod's objects, after the drain delay.
    expect(c.lifecycle.preStop.exec.command.join(' ')).toMatch(/sleep 5; rm -rf -- "\$SLUICE_BPF_PIN_DIR"/);
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(5);
    // The controller gets neither.
    expect(podSpec(objects, 'controller').volumes.filter((v: any) => v.hostPath)).toEqual([]);
  });

  test('eBPF disabled: --bpf off, non-root, no capability added, no host path', () => {
    const objects = render(fixture('bpf-disabled.yaml'));
    const c = container(objects, 'dataplane');
    expect(flag(c.args, 'bpf')).toBe('off');
    expect(flag(c.args, 'bpf-pin-dir')).toBeUndefined();
    expect(c.securityContext).toEqual(expect.objectContaining({ runAsNonRoot: true }));
    expect(c.securityContext.runAsUser).toBeUndefined();
    expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    expect(JSON.stringify(objects)).not.toMatch(/hostPath|"BPF"|PERFMON|NET_ADMIN/);
    expect(envVar(c, 'SLUICE_BPF_PIN_DIR')).toBeUndefined();
    expect(c.lifecycle.preStop.exec.command.join(' ')).not.toMatch(/rm /);
  });

  test('ClusterRole: no wildcard, exactly read access to every kind the controller reads and status access where it writes status', () => {
    // Every kind of SNAPSHOT_FIELD_BY_KIND has an API entry (kinds.ts checks too); the RBAC is derived from those.
    expect(KIND_APIS.map((a) => a.kind).sort()).toEqual(Object.keys(SNAPSHOT_FIELD_BY_KIND).sort());
    for (const kind of STATUS_WRITTEN_KINDS) expect(SNAPSHOT_FIELD_BY_KIND).toHaveProperty(kind);

    for (const [values, withNodes] of [
      [{}, false],
      [fixture('nodeport.yaml'), true],
    ] as const) {
      const objects = render(values);
      const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
      for (const role of roles) {
        for (const rule of role.rules) {
          for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames']) expect(rule[field] ?? []).not.toContain('*');
          expect(rule.nonResourceURLs).toBeUndefined();
          // Never anything that writes objects, escalates or impersonates.
          for (const v of rule.verbs) expect(['get', 'list', 'watch', 'patch', 'update', 'create']).toContain(v);
        }
      }
      const clusterRole = findOne(objects, 'ClusterRole', `${RELEASE}-controller`);
      const granted = permissions(clusterRole.rules);
      const expected = expectedClusterPermissions(withNodes);
      const missing = [...expected].filter((p) => !granted.has(p)).sort();
      const extra = [...granted].filter((p) => !expected.has(p)).sort();
      expect({ missing, extra }).toEqual({ missing: [], extra: [] });
      // Writes only ever target a status subresource.
      for (const p of granted) if (!/:(get|list|watch)$/.test(p)) expect(p).toMatch(/\/status:/);

      const binding = findOne(objects, 'ClusterRoleBinding', `${RELEASE}-controller`);
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole.metadata.name });
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: `${RELEASE}-controller`, namespace: NS }]);
    }
  });

  test('Role: the controller may read and renew only its own Lease, in its own namespace', () => {
    const objects = render();
    const role = findOne(objects, 'Role');
    expect(role.metadata.namespace).toBe(NS);
    expect(role.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['sluice-controller'], verbs: ['get', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
    const binding = findOne(objects, 'RoleBinding');
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: `${RELEASE}-controller`, namespace: NS }]);
    expect(flag(args(objects, 'controller'), 'leader-election-id')).toBe(role.rules[0].resourceNames[0]);
  });

  test('GatewayClass and IngressClass: cilium by default, renamed, or not created (and the controller serves the names)', () => {
    const objects = render();
    expect(findOne(objects, 'GatewayClass', 'cilium').spec.controllerName).toBe('sluice.dev/gateway-controller');
    const ingressClass = findOne(objects, 'IngressClass', 'cilium');
    expect(ingressClass.spec.controller).toBe('sluice.dev/ingress-controller');
    expect(ingressClass.metadata.annotations).toBeUndefined();
    expect(flag(args(objects, 'controller'), 'ingress-enforce-https')).toBe('true');

    const renamed = render(fixture('classes-renamed.yaml'));
    expect(findOne(renamed, 'GatewayClass', 'sluice').spec.controllerName).toBe('sluice.dev/gateway-controller');
    expect(findOne(renamed, 'IngressClass', 'sluice').metadata.annotations).toEqual({ 'ingressclass.kubernetes.io/is-default-class': 'true' });
    expect(flag(args(renamed, 'controller'), 'gateway-classes')).toBe('sluice');
    expect(flag(args(renamed, 'controller'), 'ingress-classes')).toBe('sluice');
    expect(flag(args(renamed, 'controller'), 'ingress-enforce-https')).toBe('false');

    const none = render(fixture('classes-not-created.yaml'));
    expect(none.filter((o) => o.kind === 'GatewayClass' || o.kind === 'IngressClass')).toEqual([]);
    expect(flag(args(none, 'controller'), 'gateway-classes')).toBe('cilium');
  });

  test('PodDisruptionBudgets select each Deployment', () => {
    const objects = render();
    for (const component of ['controller', 'dataplane']) {
      const pdb = findOne(objects, 'PodDisruptionBudget', `${RELEASE}-${component}`);
      expect(pdb.apiVersion).toBe('policy/v1');
      expect(pdb.spec.maxUnavailable).toBe(1);
      expect(pdb.spec.selector.matchLabels).toEqual(deployment(objects, component).spec.selector.matchLabels);
    }
  });

  test('ServiceMonitor: off by default; on, it scrapes /metrics of both processes through headless Services', () => {
    expect(render().filter((o) => o.kind === 'ServiceMonitor')).toEqual([]);
    const objects = render(fixture('servicemonitor.yaml'));
    const sm = findOne(objects, 'ServiceMonitor');
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels.release).toBe('kube-prometheus-stack');
    expect(sm.spec.endpoints).toEqual([{ port: 'admin', path: '/metrics', interval: '15s', scrapeTimeout: '10s' }]);
    const selected = objects.filter(
      (o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v),
    );
    expect(selected.map((s) => s.metadata.name).sort()).toEqual([`${RELEASE}-controller-metrics`, `${RELEASE}-dataplane-metrics`]);
    for (const s of selected) {
      expect(s.spec.clusterIP).toBe('None');
      expect(s.spec.ports).toEqual([expect.objectContaining({ name: 'admin', port: 9901, targetPort: 'admin' })]);
      const component = s.spec.selector['app.kubernetes.io/component'];
      expect(s.spec.selector).toEqual(deployment(objects, component).spec.selector.matchLabels);
    }
  });

  test('Redis: URL flag, credentials from an existing Secret, CA from a Secret, replicas for failureMode Local', () => {
    const objects = render(fixture('redis.yaml'));
    const c = container(objects, 'dataplane');
    expect(deployment(objects, 'dataplane').spec.replicas).toBe(3);
    expect(flag(c.args, 'redis-url')).toBe('rediss://redis-0.cache.svc:6380,rediss://redis-1.cache.svc:6380');
    expect(flag(c.args, 'redis-timeout')).toBe('100');
    expect(flag(c.args, 'redis-type')).toBe('cluster');
    expect(flag(c.args, 'redis-batch-limit')).toBe('64');
    expect(flag(c.args, 'rate-limit-replicas')).toBe('4');
    expect(flag(c.args, 'redis-tls-ca')).toBe('/var/run/sluice/redis-ca/ca.crt');
    for (const [name, key] of [
      ['SLUICE_REDIS_URL', 'url'],
      ['SLUICE_REDIS_USERNAME', 'username'],
      ['SLUICE_REDIS_PASSWORD', 'password'],
      ['SLUICE_REDIS_TYPE', 'type'],
    ]) {
      expect(envVar(c, name!).valueFrom.secretKeyRef).toEqual({ name: 'sluice-redis', key, optional: true });
    }
    const ca = podSpec(objects, 'dataplane').volumes.find((v: any) => v.name === 'redis-ca');
    expect(ca.secret).toEqual(expect.objectContaining({ secretName: 'sluice-redis-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] }));
    expect(c.volumeMounts).toContainEqual({ name: 'redis-ca', mountPath: '/var/run/sluice/redis-ca', readOnly: true });
    // Without Redis values: no Redis flag or variable; the replica count still follows the Deployment.
    const plain = container(render({ dataplane: { replicas: 5 } }), 'dataplane');
    expect(plain.args.filter((a: string) => a.startsWith('--redis-') && !a.startsWith('--redis-timeout') && !a.startsWith('--redis-batch-limit'))).toEqual([]);
    expect(flag(plain.args, 'redis-batch-limit')).toBe('256');
    expect((plain.env ?? []).filter((e: any) => e.name.startsWith('SLUICE_REDIS'))).toEqual([]);
    expect(flag(plain.args, 'rate-limit-replicas')).toBe('5');
  });

  test('values.schema.json refuses bad values, and templates refuse inconsistent ones', () => {
    expectHelmFailure({ service: { type: 'Foo' } }, /service\/type/);
    expectHelmFailure({ servce: { type: 'NodePort' } }, /servce/);
    expectHelmFailure({ bpf: { mode: 'maybe' } }, /bpf\/mode/);
    expectHelmFailure({ controller: { replicas: 0 } }, /controller\/replicas/);
    expectHelmFailure({ redis: { url: 'http://redis:6379' } }, /redis\/url/);
    expectHelmFailure({ redis: { type: 'sentinel' } }, /redis\/type/);
    expectHelmFailure({ redis: { batchLimit: 0 } }, /redis\/batchLimit/);
    expectHelmFailure({ service: { ports: [{ name: 'HTTP', port: 80 }] } }, /service\/ports\/0\/name/);
    expectHelmFailure({ dataplane: { listenerPortOffset: -1 } }, /listenerPortOffset/);
    expectHelmFailure({ dataplane: { workers: 0 } }, /dataplane\/workers/);
    expectHelmFailure({ dataplane: { workers: 'all' } }, /dataplane\/workers/);
    expectHelmFailure({ gatewayClass: { name: '' } }, /gatewayClass.name is empty/);
    expectHelmFailure({ service: { ports: [{ name: 'admin-clash', port: 1901 }] } }, /collides with dataplane.adminPort/);
    expectHelmFailure({ service: { ports: [{ name: 'too-high', port: 60000 }] } }, /above 65535/);
    // helm lint reports the same schema violation.
    withValuesFile({ service: { type: 'Foo' } }, (file) => expect(() => helm(['lint', CHART_DIR, '-f', file])).toThrow(/service\/type/));
  });

  test('the chart CRDs are crds/ of the repository, byte for byte', () => {
    const repo = readdirSync(join(ROOT, 'crds')).sort();
    const chart = readdirSync(join(CHART_DIR, 'crds')).sort();
    expect(chart).toEqual(repo);
    for (const f of repo) expect(readFileSync(join(CHART_DIR, 'crds', f), 'utf8')).toBe(readFileSync(join(ROOT, 'crds', f), 'utf8'));
    // helm installs them (--include-crds shows what helm install creates first).
    const crds = renderChart({}, RELEASE, NS, { includeCrds: true }).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(['ratelimitpolicies.sluice.dev']);
  });

  test('the chart README documents every value, and the schema knows every value', () => {
    const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'));
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'));
    const undocumented: string[] = [];
    const unknown: string[] = [];
    for (const path of leafPaths(values)) {
      if (!readme.includes(`\`${path}\``)) undocumented.push(path);
      let node = schema;
      for (const key of path.split('.')) node = node?.properties?.[key] ?? (node?.additionalProperties === false ? undefined : node?.additionalProperties);
      if (!node) unknown.push(path);
    }
    expect({ undocumented, unknown }).toEqual({ undocumented: [], unknown: [] });
  });
});

// The rendered objects as the API server sees them: every field known (strict field validation),
// every value valid, and the Pod Security levels the README states. Dry runs, so values sets that
// share cluster-scoped names (the `cilium` classes) do not collide.
describeCluster('charts/sluice against a real kube-apiserver', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startTestCluster();
  }, 240_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  async function ensureNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    if (await cluster.client.getOrUndefined({ apiVersion: 'v1', kind: 'Namespace', name })) return;
    await cluster.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  }

  /** POST with dryRun=All and strict field validation; resolves with the error, or null when accepted. */
  async function dryRunCreate(obj: KubeObject): Promise<KubeApiError | null> {
    const path = await cluster.client.path({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace });
    try {
      await cluster.client.call('POST', path, { body: obj, query: { dryRun: 'All', fieldValidation: 'Strict' } });
      return null;
    } catch (err) {
      if (err instanceof KubeApiError) return err;
      throw err;
    }
  }

  /** Creates the ServiceAccounts for real (Pods must name existing ones), then dry-runs each Deployment's pod. */
  async function podErrors(objects: KubeObject[], namespace: string): Promise<Record<string, string | null>> {
    for (const sa of objects.filter((o) => o.kind === 'ServiceAccount')) {
      if (!(await cluster.client.getOrUndefined({ apiVersion: 'v1', kind: 'ServiceAccount', namespace, name: sa.metadata.name }))) {
        await cluster.client.create(sa);
      }
    }
    const out: Record<string, string | null> = {};
    for (const component of ['controller', 'dataplane']) {
      const template = deployment(objects, component).spec.template;
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, name: `${component}-probe`, namespace }, spec: template.spec };
      const err = await dryRunCreate(pod);
      out[component] = err ? JSON.stringify(err.body?.message ?? err.message) : null;
    }
    return out;
  }

  test('every object of every values set is valid for the API server (strict fields, dry run)', async () => {
    await ensureNamespace(NS);
    for (const [name, values] of [['defaults', {}], ...FIXTURES.map((f) => [f, fixture(f)])] as [string, object][]) {
      // ServiceMonitor is the Prometheus Operator's CRD, not installed here; its shape is checked above.
      for (const obj of render(values).filter((o) => o.kind !== 'ServiceMonitor')) {
        const err = await dryRunCreate(obj);
        expect({ values: name, object: `${obj.kind}/${obj.metadata.name}`, error: err?.body?.message ?? null }).toEqual({
          values: name,
          object: `${obj.kind}/${obj.metadata.name}`,
          error: null,
        });
      }
    }
  }, 120_000);

  test('Pod Security: without eBPF both pods meet `restricted`; the eBPF dataplane needs `privileged` (baseline refuses it)', async () => {
    const restricted = 'chart-psa-restricted';
    const baseline = 'chart-psa-baseline';
    await ensureNamespace(restricted, { 'pod-security.kubernetes.io/enforce': 'restricted' });
    await ensureNamespace(baseline, { 'pod-security.kubernetes.io/enforce': 'baseline' });

    const noBpf = await podErrors(renderChart(fixture('bpf-disabled.yaml'), RELEASE, restricted), restricted);
    expect(noBpf).toEqual({ controller: null, dataplane: null });
    // Unshifted listener ports: the sysctl is one of the safe ones `restricted` allows.
    const unshifted = await podErrors(renderChart({ ...fixture('bpf-disabled.yaml'), dataplane: { listenerPortOffset: 0 } }, RELEASE, restricted), restricted);
    expect(unshifted).toEqual({ controller: null, dataplane: null });

    const withBpf = await podErrors(renderChart({}, RELEASE, baseline), baseline);
    expect(withBpf.controller).toBeNull();
    expect(withBpf.dataplane).toMatch(/hostPath/);
    expect(withBpf.dataplane).toMatch(/BPF|NET_ADMIN|PERFMON/);
  }, 60_000);
});
