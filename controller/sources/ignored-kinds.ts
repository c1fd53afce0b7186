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
  ['haproxy.org', 'HAProxy'],
  ['gatekeeper.sh', 'OPA Gatekeeper'],
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
  // The Gateway API Inference Extension (InferencePool, InferenceObjective): another API of the
  // Gateway API project, which Sluice does not implement (routes naming an InferencePool are refused there).
  if (group === 'inference.networking.k8s.io' || group === 'inference.networking.x-k8s.io') {
    return `${head}: a kind of the Gateway API Inference Extension, which Sluice does not implement`;
  }
  if (group === 'gateway.networking.x-k8s.io') {
    return `${head}: a kind of the Gateway API's experimental x-k8s.io group, which Sluice does not read${kind === 'XListenerSet' ? ' (ListenerSet, gateway.networking.k8s.io/v1, is read)' : ''}`;
  }
  return same ? `${head}: another API's ${kind}${same}` : `${head}: Sluice does not read this kind`;
}

/**
 * What a tool's own file in the folder is, when a document is one (kustomize's kustomization.yaml,
 * kind's cluster configuration): not a Kubernetes object, so neither "needs metadata.name" nor
 * "does not read this kind" says the point, which is that the folder is read as it is written.
 */
export function toolFileText(apiVersion: string, kind: string): string | null {
  const group = groupOf(apiVersion);
  if (group === 'kustomize.config.k8s.io') {
    return `${kind} (${apiVersion}) is kustomize's file, not a Kubernetes object: Sluice reads every manifest in the folder as it is written and applies no kustomization (its resources, patches, namespace, namePrefix, images); to serve what kubectl apply -k would apply, write it out first: kubectl kustomize DIR > OTHER_DIR/all.yaml, and give --manifests OTHER_DIR`;
  }
  if (group === 'kind.x-k8s.io') return `${kind} (${apiVersion}) is kind's cluster configuration, not a Kubernetes object; ignored`;
  return null;
}

/**
 * Annotation prefixes (by domain suffix) other gateway and ingress implementations read on the
 * Gateway API objects, Ingresses and Services they serve, with the name to show. Tools' annotations
 * (cert-manager's, kubectl's) and meshes' (Linkerd's) are not settings of a gateway and not listed;
 * nor is Cilium (its Ingress annotations have their own lines, its Service ones are the load balancer's).
 */
const ANNOTATION_OWNERS: [suffix: string, owner: string][] = [
  ['konghq.com', 'Kong'],
  ['projectcontour.io', 'Contour'],
  ['istio.io', 'Istio'],
  ['traefik.io', 'Traefik'],
  ['traefik.ingress.kubernetes.io', 'Traefik'],
  ['nginx.org', 'NGINX'],
  ['nginx.com', 'NGINX'],
  ['gateway.envoyproxy.io', 'Envoy Gateway'],
  ['haproxy.org', 'HAProxy'],
  ['haproxy.com', 'HAProxy'],
];

/** The implementation whose annotation `key` is (konghq.com/plugins: Kong), if one of ANNOTATION_OWNERS. */
export function annotationOwner(key: string): string | undefined {
  const slash = key.indexOf('/');
  if (slash < 0) return undefined;
  const prefix = key.slice(0, slash);
  return ANNOTATION_OWNERS.find(([suffix]) => prefix === suffix || prefix.endsWith(`.${suffix}`))?.[1];
}

/**
 * `annotations a, b (Kong's) are not read by Sluice` for the annotations of `annotations` that other
 * implementations read, grouped by owner; null when there are none.
 */
export function foreignAnnotationsText(annotations: Record<string, string> | undefined): string | null {
  if (annotations === undefined) return null;
  // Most objects carry none: answered without sorting or allocating.
  let any = false;
  for (const key in annotations) {
    if (annotationOwner(key) !== undefined) {
      any = true;
      break;
    }
  }
  if (!any) return null;
  const byOwner = new Map<string, string[]>();
  // Sorted keys: the same annotations read the same whatever order the file wrote them in.
  for (const key of Object.keys(annotations).sort()) {
    const owner = annotationOwner(key);
    if (owner !== undefined) byOwner.set(owner, [...(byOwner.get(owner) ?? []), key]);
  }
  if (byOwner.size === 0) return null;
  const parts = [...byOwner].map(([owner, keys]) => `${keys.join(', ')} (${owner}'s)`);
  const count = [...byOwner.values()].reduce((n, keys) => n + keys.length, 0);
  return `${count === 1 ? 'annotation' : 'annotations'} ${parts.join('; ')} ${count === 1 ? 'is' : 'are'} another implementation's, not read by Sluice: what ${count === 1 ? 'it asks' : 'they ask'} for is not done`;
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
