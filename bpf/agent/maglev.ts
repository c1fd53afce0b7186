// Weighted Maglev: every service gets a table of LB_SLOTS slots, each naming one
// backend. The kernel picks a slot per connection (random, or by client hash),
// so a backend's share of connections is its share of slots.
//
// Each backend walks its own permutation of the slots (offset and skip from a
// hash of its address, as in the Maglev paper) and claims the next free slot
// on its turn. Quotas make the counts exact: weights 3:1 over 1021 slots give
// 766:255. Because permutations depend only on the backend itself, removing
// one backend leaves most of the others' slots where they were.
import { createHash } from 'node:crypto';
import { LB_SLOTS } from './codec.ts';

export interface MaglevBackend {
  /** Backend id written into the table. */
  id: number;
  /** Stable identity for the permutation, e.g. `10.0.0.1:8080/TCP`. */
  key: string;
  weight: number;
}

/** Slots per backend, proportional to weight (largest remainder; every backend with weight > 0 gets at least one). */
export function maglevQuotas(weights: number[], slots = LB_SLOTS): number[] {
  const total = weights.reduce((a, w) => a + Math.max(0, w), 0);
  if (total === 0) return weights.map(() => 0);
  const exact = weights.map((w) => (Math.max(0, w) / total) * slots);
  const quotas = exact.map((x, i) => (weights[i]! > 0 ? Math.max(1, Math.floor(x)) : 0));
  let left = slots - quotas.reduce((a, q) => a + q, 0);
  const byRemainder = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).filter(({ i }) => weights[i]! > 0).sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; left > 0; k = (k + 1) % byRemainder.length, left--) quotas[byRemainder[k]!.i]!++;
  // Minimums of 1 can overshoot when there are more backends than slots allow; trim the largest.
  while (left < 0) {
    const largest = quotas.indexOf(Math.max(...quotas));
    quotas[largest]!--;
    left++;
  }
  return quotas;
}

// Tables are pure functions of their backends; most applies change few services, so keep recent ones.
const cache = new Map<string, Uint32Array>();
const CACHE_LIMIT = 20_000;

export function maglevTable(backends: MaglevBackend[], slots = LB_SLOTS): Uint32Array {
  // Order by key so the table depends on the set of backends, not on the order they arrived in.
  const sorted = [...backends].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const cacheKey = `${slots}|${sorted.map((b) => `${b.id}=${b.key}*${b.weight}`).join(',')}`;
  const cached = cache.get(cacheKey);
  if (cached) return cached;
  const table = computeTable(sorted, slots);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(cacheKey, table);
  return table;
}

function computeTable(sorted: MaglevBackend[], slots: number): Uint32Array {
  const table = new Uint32Array(slots);
  if (sorted.length === 0) return table;
  const quotas = maglevQuotas(sorted.map((b) => b.weight), slots);
  const perms = sorted.map((b) => permutation(b.key, slots));
  const next = new Array<number>(sorted.length).fill(0);
  const taken = new Uint8Array(slots);
  const claimed = new Array<number>(sorted.length).fill(0);
  let filled = 0;
  while (filled < slots) {
    for (let i = 0; i < sorted.length && filled < slots; i++) {
      if (claimed[i]! >= quotas[i]!) continue;
      let slot: number;
      do {
        slot = (perms[i]!.offset + next[i]! * perms[i]!.skip) % slots;
        next[i]!++;
      } while (taken[slot]);
      taken[slot] = 1;
      table[slot] = sorted[i]!.id;
      claimed[i]!++;
      filled++;
    }
  }
  return table;
}

function permutation(key: string, slots: number): { offset: number; skip: number } {
  const digest = createHash('sha256').update(key).digest();
  return { offset: digest.readUInt32LE(0) % slots, skip: (digest.readUInt32LE(4) % (slots - 1)) + 1 };
}
