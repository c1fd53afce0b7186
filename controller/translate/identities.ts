// Security identities for L3/L4 policy (pure): numbers derived from label sets,
// IPv4 prefixes, and the label forms Cilium uses for endpoints.
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

// ---------------------------------------------------------------- IPv4 prefixes

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits cleared). */
  ip: number;
  len: number;
}

/** `a.b.c.d` → unsigned 32-bit number; null when it is not a dotted-quad IPv4 address. */
export function parseIPv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let ip = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    ip = ip * 256 + Number(p);
  }
  return ip;
}

/** `a.b.c.d/len` with host bits cleared; null when it is not an IPv4 prefix. */
export function parseCidr(text: string): Cidr | null {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) return null;
  const ip = parseIPv4(m[1]!);
  const len = Number(m[2]);
  if (ip === null || len > 32) return null;
  return { ip: (ip & mask(len)) >>> 0, len };
}

export function isIPv6(text: string): boolean {
  return text.includes(':');
}

function mask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export function formatIPv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.ip)}/${c.len}`;
}

/** True when every address of `inner` is in `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.len >= outer.len && ((inner.ip & mask(outer.len)) >>> 0) === outer.ip;
}

export function addressInCidr(ip: number, c: Cidr): boolean {
  return ((ip & mask(c.len)) >>> 0) === c.ip;
}

/** Address order, then shorter prefix first. */
export function compareCidrs(a: Cidr, b: Cidr): number {
  return a.ip - b.ip || a.len - b.len;
}
