// Security identities for L3/L4 policy (pure): numbers derived from label sets,
// and the label forms Cilium uses for endpoints.
//
// An identity number is a hash of what it stands for, so it only changes when
// its own labels change: map entries do not churn when unrelated objects come
// and go. Collisions are resolved by probing upwards, keys taken in sorted order.
import { createHash } from 'node:crypto';

/** Endpoint identities: [256, 2^24). */
export const ENDPOINT_IDENTITY_BASE = 256;
export const ENDPOINT_IDENTITY_SPAN = 2 ** 24 - ENDPOINT_IDENTITY_BASE;
/** CIDR identities have bit 24 set: [2^24, 2^25). */
export const CIDR_IDENTITY_BASE = 2 ** 24;
export const CIDR_IDENTITY_SPAN = 2 ** 24;

/** The label Cilium gives an endpoint's namespace; selectors name it to leave their policy's namespace. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
/** Prefix of the namespace's own labels on an endpoint, as Cilium writes them. */
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';

/**
 * Gives every key a number in [base, base + span): the key's hash, or the next
 * free number upwards (wrapping) when another key took it. Keys are placed in
 * sorted order, so the result depends only on the set of keys.
 */
export function allocateIdentities(keys: Iterable<string>, base: number, span: number): Map<string, number> {
  const sorted = [...new Set(keys)].sort(compareStrings);
  const taken = new Set<number>();
  const out = new Map<string, number>();
  for (const key of sorted) {
    let offset = hashOffset(key, span);
    while (taken.has(offset)) offset = (offset + 1) % span;
    taken.add(offset);
    out.set(key, base + offset);
  }
  return out;
}

function hashOffset(key: string, span: number): number {
  return createHash('sha256').update(key).digest().readUIntBE(0, 6) % span;
}

/** Code-unit order: the same everywhere, whatever the locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- labels

/** What an endpoint identity is made of: its pod labels, namespace and the namespace's labels. */
export interface EndpointLabels {
  namespace: string;
  pod: Record<string, string>;
  namespaceLabels: Record<string, string>;
}

/**
 * Pod labels that change with every rollout and so never take part in an identity
 * (as in Cilium's default label filter): a new ReplicaSet must not renumber its pods.
 */
export const VOLATILE_POD_LABELS = new Set([
  'pod-template-hash',
  'pod-template-generation',
  'controller-revision-hash',
  'controller-uid',
  'batch.kubernetes.io/controller-uid',
]);

/** A pod's labels without the volatile ones. */
export function identityPodLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (!VOLATILE_POD_LABELS.has(k)) out[k] = v;
  return out;
}

/** The identity's labels as the IR shows them: sorted `k8s:key=value`. */
export function identityLabels(e: EndpointLabels): string[] {
  return Object.entries(ciliumLabelMap(e))
    .map(([k, v]) => `k8s:${k}=${v}`)
    .sort(compareStrings);
}

/** The labels a Cilium endpoint selector is matched against (source prefixes stripped). */
export function ciliumLabelMap(e: EndpointLabels): Record<string, string> {
  const out = identityPodLabels(e.pod);
  for (const [k, v] of Object.entries(e.namespaceLabels)) out[`${NAMESPACE_LABELS_PREFIX}${k}`] = v;
  out[NAMESPACE_LABEL] = e.namespace;
  return out;
}

/** A label map with every value a string (YAML may have parsed `version: 2` as a number). */
export function stringMap(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = String(v);
  return out;
}
