// The IR version is a function of content only (ir/version.ts): equal content, equal version,
// however its objects' keys are ordered and whichever shapes the hasher met before; different
// content, a different version. Checked against stableJson (sorted-key JSON) over random values.
import fc from 'fast-check';
import { IrHasher, stableJson } from '../../ir/version.ts';
import type { HttpIR, L4IR } from '../../ir/types.ts';

/** The same value with every object's keys in another order (reversed, then rotated by `turn`). */
function reordered(value: unknown, turn: number): unknown {
  if (Array.isArray(value)) return value.map((v) => reordered(v, turn));
  if (typeof value !== 'object' || value === null) return value;
  const keys = Object.keys(value).reverse();
  const n = keys.length === 0 ? 0 : turn % keys.length;
  const out: Record<string, unknown> = {};
  for (const key of [...keys.slice(n), ...keys.slice(0, n)]) out[key] = reordered((value as Record<string, unknown>)[key], turn);
  return out;
}

// Objects with a `name` and an object field may be hashed apart (cached by identity): the arbitrary makes some.
const key = fc.constantFrom('name', 'match', 'path', 'type', 'value', 'routes', 'a', 'b', 'weight');
const leaf = fc.oneof(fc.string({ maxLength: 4 }), fc.integer({ min: -3, max: 3 }), fc.boolean(), fc.constant(null), fc.double({ noNaN: false }));
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, tie('object'), fc.array(tie('value'), { maxLength: 4 })),
  object: fc.dictionary(key, tie('value'), { maxKeys: 5 }),
}));

const version = (hasher: IrHasher, v: unknown) => hasher.version({ listeners: [v] } as unknown as HttpIR, {} as L4IR);
const json = (v: unknown) => stableJson({ http: { listeners: [v] }, l4: {} });
/** The same content with no object in two places (each place encoded on its own). */
const unshared = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

// The real limits, and limits so small that the arbitrary's small values take every path: named
// entities hashed apart as array elements, arrays in chunks.
const LIMITS = [{}, { digestFrom: 12, chunkedFrom: 3 }];

describe('IR version', () => {
  it.each(LIMITS)('is equal for equal content in any key order, and different for different content (limits %j)', (limits) => {
    // One hasher for the whole run (as a translator keeps one): the shapes and digests it remembers must never decide a version.
    const hasher = new IrHasher(limits);
    fc.assert(
      fc.property(value, value, fc.nat(8), (a, b, turn) => {
        expect(version(hasher, reordered(a, turn))).toBe(version(new IrHasher(limits), a));
        expect(version(hasher, a) === version(hasher, b)).toBe(json(a) === json(b));
        expect(version(hasher, a)).toBe(version(new IrHasher(limits), unshared(a)));
      }),
      { numRuns: 2000 },
    );
  });

  it.each(LIMITS)('hashes an object it met in another place (a field, a short or a chunked array) as a fresh hasher hashes that content (limits %j)', (limits) => {
    // A digest is remembered by identity; whether an entity stands as its digest depends on its place
    // (a field's value always, an array element only when long): the same object met first in one
    // place, then in another, must read as its content does there.
    const named = fc.record({ name: fc.string({ maxLength: 3 }), spec: value, tag: fc.string({ maxLength: 40 }) });
    const hasher = new IrHasher(limits);
    fc.assert(
      fc.property(fc.array(named, { minLength: 1, maxLength: 5 }), fc.array(fc.array(fc.nat(9), { maxLength: 8 }), { minLength: 2, maxLength: 4 }), (objects, layouts) => {
        for (const picks of layouts) {
          const at = (i: number) => objects[i % objects.length]!;
          const placed = { field: at(picks[0] ?? 0), short: picks.map(at), long: [...picks, ...picks, ...picks].map(at), nested: { inner: at(picks[1] ?? 1) } };
          expect(version(hasher, placed)).toBe(version(new IrHasher(limits), unshared(placed)));
        }
      }),
      { numRuns: 500 },
    );
  });

  it.each([{}, { digestFrom: 40, chunkedFrom: 16 }])('hashes long arrays (chunked) by content only: edited in place, from scratch or from shared elements (limits %j)', (limits) => {
    // Routes of one long virtual host; a few edits (replace, insert, append, remove, move) on arrays that share the
    // unchanged elements with the previous one, as a translator's IR does.
    // Some long enough to be hashed apart with the small limits.
    const route = (i: number, tag = '') => ({ name: `r${i}${tag}`, match: { path: i % 3 === 0 ? `/p${i}/and/a/longer/path` : `/p${i}` } });
    const edit = fc.record({ at: fc.nat(2999), op: fc.constantFrom('replace', 'insert', 'append', 'remove', 'move'), to: fc.nat(2999) });
    fc.assert(
      fc.property(fc.integer({ min: 65, max: 3000 }), fc.array(edit, { minLength: 1, maxLength: 6 }), (n, edits) => {
        const hasher = new IrHasher(limits);
        let routes = Array.from({ length: n }, (_, i) => route(i));
        let before = version(hasher, { routes });
        edits.forEach(({ at, op, to }, e) => {
          const next = [...routes];
          const i = at % next.length;
          if (op === 'replace') next[i] = route(i, `-e${e}`);
          else if (op === 'insert') next.splice(i, 0, route(i, `-new${e}`));
          else if (op === 'append') next.push(route(next.length, `-new${e}`));
          else if (op === 'remove') next.splice(i, 1);
          else next.splice(to % next.length, 0, next.splice(i, 1)[0]!);
          const after = version(hasher, { routes: next });
          // Equal to a fresh hasher on fresh objects of the same content; different when the content differs.
          expect(after).toBe(version(new IrHasher(limits), { routes: structuredClone(next) }));
          expect(after === before).toBe(json({ routes: next }) === json({ routes }));
          routes = next;
          before = after;
        });
      }),
      { numRuns: 60 },
    );
  });

  it('leaves out undefined fields as JSON does, and writes non-finite numbers as null', () => {
    const hasher = new IrHasher();
    expect(version(hasher, { a: 1, b: undefined })).toBe(version(hasher, { a: 1 }));
    expect(version(hasher, { a: Infinity, b: [NaN] })).toBe(version(hasher, { a: null, b: [null] }));
    expect(version(hasher, { a: -0 })).toBe(version(hasher, { a: 0 }));
    expect(version(hasher, { a: 1 })).not.toBe(version(hasher, { a: '1' }));
  });
});
