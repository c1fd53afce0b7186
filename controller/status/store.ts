// The computed status of every object, with lastTransitionTime kept stable
// while a condition's status and reason do not change. In standalone mode
// this is what the admin API shows; in Kubernetes mode the status writer
// patches it onto the real objects.
import { objectKey, type KubeObject } from '../sources/objects.ts';
import type { Condition, ObjectStatus } from './conditions.ts';

/** One object's stamped status, the computed status it was stamped from, and the last update that named it. */
interface Entry {
  input: unknown;
  stamped: ObjectStatus;
  seen: number;
}

export class StatusStore {
  private current = new Map<string, Entry>();
  /**
   * Each computed status's key, by its identity: a Translator hands over the same ObjectStatus for
   * an unchanged object, so an update over 10 000 objects with one changed builds one key string.
   */
  private keys = new WeakMap<ObjectStatus, string>();
  private updates = 0;
  /**
   * The last update's statuses when each named another object: the next update that differs from
   * it in a few places, each the same object's status, reads only those (see update).
   */
  private last: readonly ObjectStatus[] | null = null;

  /**
   * Replaces all statuses; returns the keys whose status changed. Entries are updated in place (no
   * new map per update): an unchanged one is only marked seen, one not named this time is removed.
   */
  update(statuses: ObjectStatus[], now: Date): string[] {
    const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z');
    const patched = this.patch(statuses, stamp);
    if (patched !== null) return patched;
    const seen = ++this.updates;
    const changed: string[] = [];
    // Entries this update names (each counted once): when that is all of them, none is to be removed
    // and the sweep below is skipped. Indexed loops: this runs once an edit, often not yet optimised,
    // where a for-of allocates an iterator result per element (10 000 statuses).
    let named = 0;
    for (let i = 0; i < statuses.length; i++) {
      const s = statuses[i]!;
      const key = this.keyOf(s);
      const previous = this.current.get(key);
      if (previous?.seen !== seen) named++;
      // The very status object stamped last time (a Translator reuses an unchanged route's): unchanged.
      if (previous !== undefined && previous.input === s.status) {
        previous.seen = seen;
        continue;
      }
      const status = stampConditions(s.status, previous?.stamped.status, stamp) as Record<string, unknown>;
      this.current.set(key, { input: s.status, stamped: { ...s, status }, seen });
      if (JSON.stringify(status) !== JSON.stringify(previous?.stamped.status)) changed.push(key);
    }
    if (named < this.current.size) {
      this.current.forEach((entry, key) => {
        if (entry.seen === seen) return;
        this.current.delete(key);
        changed.push(key);
      });
    }
    this.last = named === statuses.length ? statuses.slice() : null;
    return changed;
  }

  /** The key of `s`, built once per status object. */
  private keyOf(s: ObjectStatus): string {
    let key = this.keys.get(s);
    if (key === undefined) {
      key = objectKey({ kind: s.kind, metadata: { name: s.name, namespace: s.namespace } });
      this.keys.set(s, key);
    }
    return key;
  }

  /**
   * update() when `statuses` is the last update's (each naming another object) but in at most
   * FEW_CHANGED places, each another status of the same object: only those are stamped, nothing is
   * removed. The loop of update() reads every status and entry (at 10 000 routes ~1.5 ms of each
   * edit, scattered loads); this compares array slots. Null when it does not apply. The same
   * result as update(): test/controller/status-store.test.ts.
   */
  private patch(statuses: ObjectStatus[], stamp: string): string[] | null {
    const last = this.last;
    if (last === null || last.length !== statuses.length) return null;
    const at: number[] = [];
    for (let i = 0; i < statuses.length; i++) if (statuses[i] !== last[i] && at.push(i) > FEW_CHANGED) return null;
    for (const i of at) if (this.keyOf(statuses[i]!) !== this.keyOf(last[i]!)) return null;
    const changed: string[] = [];
    for (const i of at) {
      const s = statuses[i]!;
      const key = this.keyOf(s);
      const previous = this.current.get(key);
      if (previous !== undefined && previous.input === s.status) continue;
      const status = stampConditions(s.status, previous?.stamped.status, stamp) as Record<string, unknown>;
      this.current.set(key, { input: s.status, stamped: { ...s, status }, seen: this.updates });
      if (JSON.stringify(status) !== JSON.stringify(previous?.stamped.status)) changed.push(key);
    }
    // A copy: the caller's array is theirs to change.
    this.last = statuses.slice();
    return changed;
  }

  get(key: string): ObjectStatus | undefined {
    return this.current.get(key)?.stamped;
  }

  /** The objects with their computed status in place of whatever status they carried. */
  withStatus(objects: KubeObject[]): KubeObject[] {
    return objects.map((obj) => {
      const computed = this.current.get(objectKey(obj))?.stamped;
      return computed ? { ...obj, status: computed.status } : obj;
    });
  }
}

/** Most places an update may differ from the last one in for StatusStore.patch. */
const FEW_CHANGED = 256;

/** Walks a status tree and gives every condition a lastTransitionTime. */
function stampConditions(value: unknown, previous: unknown, stamp: string): unknown {
  if (Array.isArray(value)) {
    return value.map((item, i) => stampConditions(item, matchingItem(item, previous, i), stamp));
  }
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const prev = (previous as Record<string, unknown> | undefined)?.[k];
    out[k] = k === 'conditions' && Array.isArray(v) ? v.map((c: Condition) => stampCondition(c, prev, stamp)) : stampConditions(v, prev, stamp);
  }
  return out;
}

function stampCondition(c: Condition, previous: unknown, stamp: string): Condition {
  const old = Array.isArray(previous) ? (previous as Condition[]).find((p) => p.type === c.type) : undefined;
  const same = old && old.status === c.status && old.reason === c.reason;
  return { ...c, lastTransitionTime: same ? old.lastTransitionTime : stamp };
}

/** Listener and parent entries are matched by name / parentRef, not position. */
function matchingItem(item: unknown, previous: unknown, i: number): unknown {
  if (!Array.isArray(previous)) return undefined;
  const it = item as Record<string, unknown>;
  if (typeof it?.name === 'string') return previous.find((p) => p?.name === it.name);
  if (it?.parentRef) return previous.find((p) => JSON.stringify(p?.parentRef) === JSON.stringify(it.parentRef));
  return previous[i];
}
