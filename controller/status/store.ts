// The computed status of every object, with lastTransitionTime kept stable
// while a condition's status and reason do not change. In standalone mode
// this is what the admin API shows; in Kubernetes mode the status writer
// patches it onto the real objects.
import { objectKey, type KubeObject } from '../sources/objects.ts';
import type { Condition, ObjectStatus } from './conditions.ts';

export class StatusStore {
  private current = new Map<string, ObjectStatus>();
  /** The computed status each entry was stamped from. */
  private inputs = new Map<string, unknown>();

  /** Replaces all statuses; returns the keys whose status changed. */
  update(statuses: ObjectStatus[], now: Date): string[] {
    const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z');
    const next = new Map<string, ObjectStatus>();
    const inputs = new Map<string, unknown>();
    const changed: string[] = [];
    for (const s of statuses) {
      const key = objectKey({ kind: s.kind, metadata: { name: s.name, namespace: s.namespace } });
      const previous = this.current.get(key);
      inputs.set(key, s.status);
      // The very status object stamped last time (a Translator reuses an unchanged route's): unchanged.
      if (previous !== undefined && this.inputs.get(key) === s.status) {
        next.set(key, previous);
        continue;
      }
      const status = stampConditions(s.status, previous?.status, stamp) as Record<string, unknown>;
      next.set(key, { ...s, status });
      if (JSON.stringify(status) !== JSON.stringify(previous?.status)) changed.push(key);
    }
    for (const key of this.current.keys()) if (!next.has(key)) changed.push(key);
    this.current = next;
    this.inputs = inputs;
    return changed;
  }

  get(key: string): ObjectStatus | undefined {
    return this.current.get(key);
  }

  /** The objects with their computed status in place of whatever status they carried. */
  withStatus(objects: KubeObject[]): KubeObject[] {
    return objects.map((obj) => {
      const computed = this.current.get(objectKey(obj));
      return computed ? { ...obj, status: computed.status } : obj;
    });
  }
}

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
