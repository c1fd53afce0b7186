import { describe, expect, it } from '@jest/globals';
import { condition } from '../../controller/status/conditions.ts';
import { StatusStore } from '../../controller/status/store.ts';

const gateway = (programmed: boolean) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  namespace: 'ns',
  name: 'gw',
  status: {
    conditions: [condition('Accepted', true, 'Accepted', 'ok', 1)],
    listeners: [{ name: 'http', conditions: [condition('Programmed', programmed, programmed ? 'Programmed' : 'Invalid', 'x', 1)] }],
  },
});

describe('StatusStore', () => {
  it('keeps lastTransitionTime while status and reason stay, and moves it when they change', () => {
    const store = new StatusStore();
    store.update([gateway(true)], new Date('2026-01-01T00:00:00Z'));
    const changed = store.update([gateway(false)], new Date('2026-01-02T00:00:00Z'));
    const status = store.get('Gateway/ns/gw')!.status as any;
    expect(changed).toEqual(['Gateway/ns/gw']);
    expect(status.conditions[0].lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    expect(status.listeners[0].conditions[0].lastTransitionTime).toBe('2026-01-02T00:00:00Z');
    expect(store.update([gateway(false)], new Date('2026-01-03T00:00:00Z'))).toEqual([]);
  });

  it('the same status object again (what a Translator hands over for an unchanged route) keeps its stamped entry; a changed one is stamped', () => {
    const store = new StatusStore();
    const same = gateway(true);
    store.update([same], new Date('2026-01-01T00:00:00Z'));
    const stamped = store.get('Gateway/ns/gw');
    expect(store.update([same], new Date('2026-01-02T00:00:00Z'))).toEqual([]);
    expect(store.get('Gateway/ns/gw')).toBe(stamped);
    expect(store.update([gateway(false)], new Date('2026-01-03T00:00:00Z'))).toEqual(['Gateway/ns/gw']);
    expect((store.get('Gateway/ns/gw')!.status as any).listeners[0].conditions[0].lastTransitionTime).toBe('2026-01-03T00:00:00Z');
  });

  it('an update names only what changed: an unchanged status keeps its stamped entry, one no longer computed is removed and named', () => {
    const store = new StatusStore();
    const named = (name: string, programmed: boolean) => ({ ...gateway(programmed), name });
    const a = named('a', true);
    const b = named('b', true);
    store.update([a, b, named('c', true)], new Date('2026-01-01T00:00:00Z'));
    const stampedA = store.get('Gateway/ns/a');
    expect(store.update([a, b, named('c', false)], new Date('2026-01-02T00:00:00Z'))).toEqual(['Gateway/ns/c']);
    expect(store.get('Gateway/ns/a')).toBe(stampedA);
    expect(store.update([a, named('c', false)], new Date('2026-01-03T00:00:00Z'))).toEqual(['Gateway/ns/b']);
    expect(store.get('Gateway/ns/b')).toBeUndefined();
    expect(store.withStatus([{ apiVersion: 'v1', kind: 'Gateway', metadata: { namespace: 'ns', name: 'b' } } as never])[0]).not.toHaveProperty('status');
    // Back again: stamped anew, named as changed.
    expect(store.update([a, b, named('c', false)], new Date('2026-01-04T00:00:00Z'))).toEqual(['Gateway/ns/b']);
    expect((store.get('Gateway/ns/b')!.status as any).conditions[0].lastTransitionTime).toBe('2026-01-04T00:00:00Z');
  });

  it('an update that names one object twice and leaves another out still removes that one (each entry counted once)', () => {
    const store = new StatusStore();
    const named = (name: string) => ({ ...gateway(true), name });
    const a = named('a');
    store.update([a, named('b'), named('c')], new Date('2026-01-01T00:00:00Z'));
    // As many statuses as entries, but b is not among them.
    expect(store.update([a, named('a'), named('c')], new Date('2026-01-02T00:00:00Z'))).toEqual(['Gateway/ns/b']);
    expect(store.get('Gateway/ns/b')).toBeUndefined();
    expect(store.get('Gateway/ns/a')).toBeDefined();
  });

  it('an update that differs from the last in a few places, each the same object, reads only those: the same entries and changes as the full pass (random updates)', () => {
    // The reference store never takes that path (its patch() is switched off: a test-only reach
    // into a private method), so both must agree on every update.
    const patched = new StatusStore();
    const full = new StatusStore();
    (full as unknown as { patch: () => null }).patch = () => null;
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 48271) % 2147483647; // Park-Miller: the product stays exact in a double
      return seed % n;
    };
    const names = Array.from({ length: 12 }, (_, i) => `g${i}`);
    const make = (name: string) => ({ ...gateway(random(2) === 0), name });
    let statuses = names.slice(0, 8).map(make);
    let patchedTaken = 0;
    for (let step = 0; step < 400; step++) {
      const next = statuses.slice();
      const op = random(10);
      if (op < 6) {
        // A few places: another status of the same object (maybe equal, maybe not).
        for (let k = 0; k <= random(3); k++) {
          const i = random(next.length);
          next[i] = make(next[i]!.name);
        }
      } else if (op === 6 && next.length > 1) next.splice(random(next.length), 1);
      else if (op === 7) {
        const missing = names.filter((n) => !next.some((s) => s.name === n));
        if (missing.length > 0) next.splice(random(next.length + 1), 0, make(missing[random(missing.length)]!));
      } else if (op === 8) next[random(next.length)] = make(next[random(next.length)]!.name); // maybe one object named twice
      // op 9: the very same statuses again
      const now = new Date(Date.UTC(2026, 0, 1, 0, step));
      if (next.length === statuses.length && next.some((s, i) => s !== statuses[i])) patchedTaken++;
      const a = patched.update(next, now);
      const b = full.update(next, now);
      expect([...a].sort()).toEqual([...b].sort());
      for (const name of names) expect(patched.get(`Gateway/ns/${name}`)).toEqual(full.get(`Gateway/ns/${name}`));
      statuses = next;
    }
    expect(patchedTaken).toBeGreaterThan(100);
  });
});
