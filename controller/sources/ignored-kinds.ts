// The line for a manifest object Sluice does not read, saying whose it is where the API group
// tells: other projects' examples mix their own kinds (Envoy Gateway's EnvoyProxy and policies,
// Cilium's CiliumEnvoyConfig, Istio's Gateway) with the Gateway API's, and "Sluice does not read
// this kind" alone reads like a Sluice gap when the object is another implementation's extension.
import { readApiGroupOf } from '../schema/validate.ts';
import { SNAPSHOT_FIELD_BY_KIND } from './objects.ts';

/** API groups of other implementations and projects, by suffix, with the name to show. */
const OWNERS: [suffix: string, owner: string][] = [
  ['gateway.envoyproxy.io', 'Envoy Gateway'],
  ['cilium.io', 'Cilium'],
  ['istio.io', 'Istio'],
  ['linkerd.io', 'Linkerd'],
  ['konghq.com', 'Kong'],
  ['traefik.io', 'Traefik'],
  ['traefik.containo.us', 'Traefik'],
  ['projectcontour.io', 'Contour'],
  ['nginx.org', 'NGINX'],
  ['kuadrant.io', 'Kuadrant'],
  ['cert-manager.io', 'cert-manager'],
  ['monitoring.coreos.com', 'the Prometheus Operator'],
];

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/** `ignoring <apiVersion> <kind> <name>: …`, naming the object's owner where its group tells. */
export function ignoredKindText(apiVersion: string, kind: string, name: string): string {
  const group = groupOf(apiVersion);
  const head = `ignoring ${apiVersion} ${kind} ${name}`;
  const read = readApiGroupOf(kind);
  // A kind Sluice reads, of another group (Istio's Gateway, Kuadrant's RateLimitPolicy).
  const same = read !== undefined && read !== group ? `; Sluice reads ${kind} of ${read || 'the core group'} only` : '';
  // Kinds are case-sensitive (the API server answers "no matches for kind"): name the one meant.
  const meant = meantKind(kind, Object.keys(SNAPSHOT_FIELD_BY_KIND));
  if (meant) return `${head}: kinds are case-sensitive; did you mean kind: ${meant}?`;
  // Removed in Kubernetes 1.22; old examples still carry it.
  if (kind === 'Ingress' && group === 'extensions') {
    return `${head}: extensions/v1beta1 Ingress was removed in Kubernetes 1.22; write it as networking.k8s.io/v1 (backend serviceName/servicePort become service.name/service.port.number, and each path needs a pathType)`;
  }
  const owner = OWNERS.find(([suffix]) => group === suffix || group.endsWith(`.${suffix}`))?.[1];
  if (owner) return `${head}: a kind of ${owner}'s API, not Sluice's${same}`;
  if (group === 'gateway.networking.x-k8s.io') {
    return `${head}: a kind of the Gateway API's experimental x-k8s.io group, which Sluice does not read${kind === 'XListenerSet' ? ' (ListenerSet, gateway.networking.k8s.io/v1, is read)' : ''}`;
  }
  return same ? `${head}: another API's ${kind}${same}` : `${head}: Sluice does not read this kind`;
}

/** ` (kinds are case-sensitive: kind: Service)` when `kind` is one of `kinds` in the wrong case, else '': for a message about a reference. */
export function kindSlip(kind: string, kinds: readonly string[]): string {
  const meant = meantKind(kind, kinds);
  return meant === undefined ? '' : ` (kinds are case-sensitive: kind: ${meant})`;
}

/** The one of `kinds` that `kind` differs from in case only (HttpRoute: HTTPRoute), if any. */
export function meantKind(kind: string, kinds: readonly string[]): string | undefined {
  const lower = kind.toLowerCase();
  return kinds.find((k) => k !== kind && k.toLowerCase() === lower);
}
