// Brings the kernel maps to a desired state with the fewest writes: entries
// whose bytes already match are left alone (an agent restarted on unchanged
// state writes nothing), new and changed entries are written map by map in
// dependency order, and stale entries are deleted last, in reverse order.
import { MAP_ORDER, type DesiredState, type ManagedMap } from './desired.ts';

/** The map operations the reconciler needs (a subset of the native addon). */
export interface MapOps {
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  mapDelete(fd: number, key: Buffer): boolean;
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null;
}

export interface MapHandle {
  fd: number;
  keySize: number;
  valueSize: number;
}

export interface ReconcileStats {
  written: number;
  deleted: number;
  unchanged: number;
}

/** Maps the agent owns whole: keys found there that are not desired are deleted. */
export function reconcileMaps(ops: MapOps, maps: Record<ManagedMap, MapHandle>, desired: DesiredState): ReconcileStats {
  const stats: ReconcileStats = { written: 0, deleted: 0, unchanged: 0 };
  const stale = new Map<ManagedMap, Buffer[]>();
  for (const name of MAP_ORDER) {
    const map = maps[name];
    const want = desired[name];
    const present = existingKeys(ops, map);
    for (const [hex, entry] of want) {
      const current = present.has(hex) ? ops.mapLookup(map.fd, entry.key, map.valueSize) : null;
      if (current && current.equals(entry.value)) {
        stats.unchanged++;
        continue;
      }
      ops.mapUpdate(map.fd, entry.key, entry.value);
      stats.written++;
    }
    stale.set(name, [...present.entries()].filter(([hex]) => !want.has(hex)).map(([, key]) => key));
  }
  for (const name of [...MAP_ORDER].reverse()) {
    for (const key of stale.get(name)!) if (ops.mapDelete(maps[name].fd, key)) stats.deleted++;
  }
  return stats;
}

/**
 * reconcileMaps, all or nothing: when a write fails the maps are brought back to `previous` (the
 * state they held, written whole before) and the error is thrown, saying whether they were. A
 * write fails before any stale entry is deleted (deletes come last), so going back rewrites keys
 * that are all still there — it needs no room a full map lacks — and deletes what was added.
 */
export function reconcileOrRestore(ops: MapOps, maps: Record<ManagedMap, MapHandle>, desired: DesiredState, previous: DesiredState): ReconcileStats {
  try {
    return reconcileMaps(ops, maps, desired);
  } catch (err) {
    const failure = (err as Error).message;
    try {
      reconcileMaps(ops, maps, previous);
    } catch (again) {
      throw new Error(`BPF maps not written (${failure}), and not restored (${(again as Error).message}): they hold part of both until the next version is written whole`, { cause: err });
    }
    throw new Error(`BPF maps not written (${failure}): restored to the version before`, { cause: err });
  }
}

function existingKeys(ops: MapOps, map: MapHandle): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  let key = ops.mapNextKey(map.fd, null, map.keySize);
  while (key) {
    keys.set(key.toString('hex'), key);
    key = ops.mapNextKey(map.fd, key, map.keySize);
  }
  return keys;
}
